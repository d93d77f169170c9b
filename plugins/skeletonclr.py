"""SkeletonCLR (Li et al., CVPR 2021): MoCo v2 on one stream of skeleton sequences.

Two normal views (temporal crop + shear 0.5, drawn per sample); the query view through the encoder and
MLP head, the key view through the momentum encoder; InfoNCE against a queue of 32768 keys
(momentum 0.999, temperature 0.07). Everything but the views and the loss lives in MoCoMethod.
"""

from occbench.augment import normal_view
from occbench.hookspecs import hookimpl
from occbench.methods import MoCoMethod, info_nce
from occbench.settings import number


class SkeletonCLR(MoCoMethod):
    name = "skeletonclr"
    title = "SkeletonCLR"
    citation = "Li et al., CVPR 2021"
    order = 10
    colour = "#0072B2"
    defaults = {**MoCoMethod.defaults, "shear_amplitude": 0.5}
    schema = {**MoCoMethod.schema, "shear_amplitude": number(0)}

    def training_step(self, batch, epoch, generator):
        shear = self.settings["shear_amplitude"]
        query_view, query_mask = normal_view(batch.x, batch.mask, shear, generator=generator)
        key_view, key_mask = normal_view(batch.x, batch.mask, shear, generator=generator)
        q, k = self.query(query_view, "joint", query_mask), self.key(key_view, "joint", key_mask)
        loss = info_nce(self.logits(q, k, "joint"))
        self.enqueue(k, "joint")
        return {"loss": loss}


@hookimpl
def occbench_register_methods(registry):
    registry.add("skeletonclr", SkeletonCLR)
