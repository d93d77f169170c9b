"""CFSEM (Park & Kim, IEEE Access 2025): coarse-to-fine spatio-temporal masking with a non-contrastive
cross-correlation loss.

Published (the abstract only, reference/new-methods.md §4.1): body-level and part-level masking (global
information), hand masking (fine-grained movement), temporal-axis shuffling (temporal patterns), and a
loss on a cross-correlation matrix (Barlow Twins-like). Nothing else is published and there is no code;
every choice below is occbench's, after new-methods.md §4.3-4.4:

* PSTL's machinery: the shared ST-GCN, its Barlow Twins projector (6144-d), loss (lambda 2e-4) and
  schedule (Adam 5e-3, 150 epochs, cosine, 10 warm-up); every view is its own PSTL augmentation;
* views against the anchor, all at once ("coarse to fine" as parallel views): body level, `body_joints`
  joints drawn uniformly per sample over the whole body; part level, `parts` of the five NTU body parts
  (trunk, two arms, two legs; SkeleMixCLR's partition) per sample; hands, both hands (hand, tip,
  thumb); temporal, the frames cut into `segments` equal segments put in a random order other than
  their own, per sample (MS2L's temporal jigsaw, as a view);
* a masked joint is zeroed and marked not visible (as occlusion is), so a mask-aware encoder sees it
  as missing; loss = the sum of the Barlow Twins losses of the four (anchor, view) pairs.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import torch

from occbench.augment import pstl_view
from occbench.encoders import to_stream
from occbench.hookspecs import hookimpl
from occbench.methods import Method, barlow_twins_loss, uniform
from occbench.settings import integer, number
from occbench_plugins.pstl import PSTL, barlow_twins_projector

BODY_PARTS = ((0, 1, 2, 3, 20), (4, 5, 6, 7, 21, 22), (8, 9, 10, 11, 23, 24), (12, 13, 14, 15), (16, 17, 18, 19))
HANDS = (7, 21, 22, 11, 23, 24)  # left hand, tip, thumb; right hand, tip, thumb (0-based)
FROM_PSTL = ("projector_dim", "lambd", "shear_amplitude", "pretrain")  # what CFSEM takes of PSTL's profiles


def hide(x: torch.Tensor, mask: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the (N, V) bool `joints` of each sample in every frame and body, and mark them not visible."""
    keep = ~joints[:, None, :, None]  # (N, 1, V, 1)
    return x * keep[:, None], mask & keep


def random_joints(n: int, count: int, generator, device) -> torch.Tensor:
    """(N, 25) bool: `count` joints drawn uniformly without replacement per sample."""
    chosen = uniform((n, 25), generator, device).argsort(dim=1)[:, :count]
    return torch.zeros(n, 25, dtype=torch.bool, device=device).scatter(1, chosen, True)


def random_parts(n: int, count: int, generator, device) -> torch.Tensor:
    """(N, 25) bool: the joints of `count` of the five body parts, drawn per sample."""
    parts = torch.zeros(len(BODY_PARTS), 25, dtype=torch.bool, device=device)
    for i, joints in enumerate(BODY_PARTS):
        parts[i, list(joints)] = True
    chosen = uniform((n, len(BODY_PARTS)), generator, device).argsort(dim=1)[:, :count]
    return parts[chosen].any(dim=1)


def shuffle_segments(x: torch.Tensor, mask: torch.Tensor, segments: int, generator):
    """Cut the T frames into `segments` equal segments (any remainder stays last) and put them in a random
    order other than their own, per sample."""
    n, t = x.shape[0], x.shape[2]
    size = t // segments
    orders = torch.tensor([p for p in itertools.permutations(range(segments)) if p != tuple(range(segments))])
    pick = orders[(uniform((n,), generator, "cpu") * len(orders)).long().clamp_max(len(orders) - 1)]  # (N, S)
    frames = (pick[:, :, None] * size + torch.arange(size)).reshape(n, -1)
    frames = torch.cat([frames, torch.arange(segments * size, t).expand(n, -1)], dim=1).to(x.device)
    return (x.gather(2, frames[:, None, :, None, None].expand_as(x)),
            mask.gather(1, frames[:, :, None, None].expand_as(mask)))


class CFSEM(Method):
    name = "cfsem"
    title = "CFSEM"
    citation = "Park & Kim, IEEE Access 2025"
    order = 60
    colour = "#56B4E9"
    recipes: ClassVar[dict] = {"linear": "pstl"}  # PSTL's probe, as the rest of PSTL's machinery
    defaults: ClassVar[dict] = {"projector_dim": 6144, "lambd": 2e-4, "shear_amplitude": 1.0, "body_joints": 8,
                                "parts": 1, "segments": 3}
    schema: ClassVar[dict] = {"projector_dim": integer(1), "lambd": number(0), "shear_amplitude": number(0),
                              "body_joints": integer(0, 25), "parts": integer(0, len(BODY_PARTS)),
                              "segments": integer(2, 5)}
    profiles: ClassVar[dict] = {
        "paper": {**{key: PSTL.profiles["paper"][key] for key in FROM_PSTL},
                  "body_joints": 8, "parts": 1, "segments": 3},
        # quick: PSTL's, with the off-diagonal weight scaled to the quick projector as Barlow Twins' lambda goes
        # with 1/D (2e-4 x 6144 / 512; with PSTL's 2e-4 one seed of three learned less than its random weights
        # under occlusion, docs/results.md)
        "quick": {**{key: value for key, value in PSTL.profiles["quick"].items() if key in FROM_PSTL},
                  "lambd": 2.4e-3},
    }

    def __init__(self, settings: dict | None = None):
        super().__init__(settings)
        self.projector = barlow_twins_projector(self.encoders["joint"].feature_dim, self.settings["projector_dim"])

    def training_step(self, batch, epoch, generator):
        s, encoder = self.settings, self.encoders["joint"]
        x, mask = to_stream(batch.x, "joint", batch.mask)
        n, device = len(x), x.device
        anchor, body, part, hands, temporal = (pstl_view(x, mask, s["shear_amplitude"], generator=generator)
                                               for _ in range(5))
        hand_joints = torch.zeros(n, 25, dtype=torch.bool, device=device)
        hand_joints[:, list(HANDS)] = True
        views = {"body": hide(*body, random_joints(n, s["body_joints"], generator, device)),
                 "part": hide(*part, random_parts(n, s["parts"], generator, device)),
                 "hands": hide(*hands, hand_joints),
                 "temporal": shuffle_segments(*temporal, s["segments"], generator)}
        z_anchor = self.projector(encoder(anchor[0], mask=anchor[1]))
        losses = {f"loss_{name}": barlow_twins_loss(z_anchor, self.projector(encoder(view, mask=visible)), s["lambd"])
                  for name, (view, visible) in views.items()}
        return {"loss": sum(losses.values()), **losses}


@hookimpl
def occbench_register_methods(registry):
    registry.add("cfsem", CFSEM)
