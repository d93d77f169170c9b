"""OPSTL (Chen et al., the first stage of IosPSTL): PSTL with Adaptive Spatial Masking (ASM) instead of CSM.

Everything but the spatial mask is PSTL (views, MATM, projector, loss; see ``pstl.py``); mask_joint = 9.
ASM (paper §III-C, eq. 6-7; cyfml/OPSTL ``model.py adaptive_spatial_mask``; methods.md §6), per batch:

* n_j = number of samples of the batch in which joint j is occluded in any frame of any body of the
  *un-imputed* occluded sequence (``batch.missing``: the runner fills it from the occluded data even
  when the method trains on imputed data, as OPSTL does);
* if no joint is missing anywhere in the batch: CSM (the graph-degree multiset);
* else the frequency degree f_j = floor(1 + 3·(n_j - min n) / (max n - min n + 0.001)) ∈ {1, 2, 3}
  (all n_j equal and non-zero: every f_j = 1, a uniform mask); joint j appears f_j times in the multiset
  and mask_joint entries are drawn without replacement (duplicates possible), one list per batch.

Bugs of the published code that occbench does not reproduce:

* ``generate_NTU60_occ`` pickles the missing-joint distribution after its loop, i.e. only the last
  sample's 25-vector, while the training ``DataSet`` indexes it per sample; occbench computes every
  sample's own flags (``occbench.data.batches.occluded_joints``);
* ``FTProcessor.train_epoch`` unpacks (data, label) from a loader whose dataset returns
  (data, label, joints) when ``joints_list`` is set, so finetuning crashes; occbench's protocols read
  ``Batch`` fields by name, and the missing flags are used by pretraining only.

Counting n_j reads 25 numbers back from the device once per step (the draw is made on the host).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from occbench.hookspecs import hookimpl
from occbench_plugins.pstl import DEGREES, PSTL


def frequency_degrees(missing_counts: torch.Tensor) -> torch.Tensor:
    """ASM's multiplicities (25,) long from n_j (25,): f_j in {1, 2, 3}, or the graph degrees if all n_j = 0."""
    n = missing_counts.detach().cpu().to(torch.float64)
    if n.sum() == 0:
        return DEGREES
    low, high = n.min(), n.max()
    return ((n - low) * (1 / (high - low + 0.001) * 3) + 1).floor().long()  # the published order of operations


class OPSTL(PSTL):
    name = "opstl"
    title = "OPSTL"
    citation = "Chen et al. (IosPSTL)"
    order = 50
    colour = "#CC79A7"
    imputed_titles: ClassVar[dict] = {"knn": "IosPSTL"}  # the paper's IosPSTL: OPSTL on KNN-imputed data
    defaults: ClassVar[dict] = {**PSTL.defaults, "mask_joint": 9}
    profiles: ClassVar[dict] = {**PSTL.profiles, "paper": {**PSTL.profiles["paper"], "mask_joint": 9}}

    def joint_weights(self, batch) -> torch.Tensor:
        return frequency_degrees(batch.missing.sum(dim=0))


@hookimpl
def occbench_register_methods(registry):
    registry.add("opstl", OPSTL)
