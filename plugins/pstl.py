"""PSTL (Zhou et al., AAAI 2023): Barlow Twins on a triplet of partial skeleton views.

One shared encoder and one shared projector, no momentum encoder, no negatives (methods.md §5;
facts from YujieOuO/PSTL ``procedure.py`` BTProcessor and ``model.py``). Per batch:

* the stream is computed first (``to_stream``: joint for the tables), then three views are made
  **independently**: each is its own ``pstl_view`` (crop, shear 1.0, rotate, flip) with its own draw,
  one draw per batch, as the published code calls crop/shear/rotate/flip three times on the batch;
* anchor view: as augmented;
* MATM view: the second augmented view; per sample the frame motion energy is the mean over C, V, M of
  (x[t+1] - x[t])² (0 for the last frame); the T - mask_frame calmest frames are kept in their order,
  then one random sorted subset of T - 2·mask_frame of them (the same positions for the whole batch),
  e.g. 50 -> 40 -> 30 frames;
* CSM view: the third augmented view, encoded with ``ignore_joints``: mask_joint draws without
  replacement from the multiset in which joint j appears deg(j) times (the degree in the ST-GCN graph
  without self-links, derived from ``ntu.EDGES``: 48 entries); duplicates make fewer unique joints
  (7.34 on average for 8 draws). One list per batch; the encoder removes those joints from the graph;
* loss = L_BT(anchor, MATM) + L_BT(anchor, CSM), ``barlow_twins_loss`` with λ = 2e-4; each view goes
  through the encoder and projector on its own (their BatchNorms see one view's batch statistics).

Projector: Linear(256, P) - BN - ReLU - Linear(P, P) - BN - ReLU - Linear(P, P), P = projector_dim
(6144 in the paper: 77.09 M parameters). All three Linear layers are bias-free as in the published
``BTwins`` (both revisions of ``model.py``); methods.md names the bias only for the first. PyTorch's
default initialisation, as published (their ``init_weights`` is applied to the linear classifier only).

Occlusion: the visibility mask goes through the stream and the augmentations, so occluded joints are 0
in every view. Choices where the published code is silent or unreproducible: the MATM energy is taken
on the coordinates as they are (an occluded joint appearing or disappearing counts as motion, as it
would in the published code on zero-filled data); ties in the energy keep the earlier frame (stable
sort; ``torch.topk`` leaves ties unspecified); random draws come from the engine's generator.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from occbench.augment import pstl_view
from occbench.data.ntu import EDGES, NUM_JOINTS
from occbench.encoders import to_stream
from occbench.errors import OccbenchError
from occbench.hookspecs import hookimpl
from occbench.methods import Method, barlow_twins_loss
from occbench.settings import integer, number


def graph_degrees() -> torch.Tensor:
    """(25,) long: the number of neighbours of each joint in the ST-GCN graph (self-links not counted)."""
    degrees = torch.zeros(NUM_JOINTS, dtype=torch.long)
    for a, b in EDGES:
        degrees[a] += 1
        degrees[b] += 1
    return degrees


DEGREES = graph_degrees()  # [3, 2, 2, 1, 2, ..., 4 (joint 20), 1, 2, 1, 2]: 48 in all


def draw_from_multiset(counts: torch.Tensor, k: int, generator: torch.Generator | None) -> torch.Tensor:
    """k entries drawn without replacement from the multiset in which j appears counts[j] times
    (``random.sample`` of the published code); (k,) long on the CPU, duplicates possible."""
    pool = torch.tensor([j for j, count in enumerate(counts.tolist()) for _ in range(count)], dtype=torch.long)
    if k > len(pool):
        raise OccbenchError(f"cannot draw {k} joints from a multiset of {len(pool)}")
    device = generator.device if generator is not None else "cpu"
    return pool[torch.randperm(len(pool), generator=generator, device=device)[:k].cpu()]


def motion_attention_temporal_mask(x: torch.Tensor, mask_frame: int, generator: torch.Generator | None,
                                   visible: torch.Tensor | None = None):
    """MATM: keep the T - mask_frame lowest-motion frames of each sample (in order), then the same random
    sorted T - 2·mask_frame of those positions for every sample. (N, C, T, V, M) -> (N, C, T - 2m, V, M);
    with the visibility mask (N, T, V, M), returns (frames, their mask)."""
    n, c, t, v, m = x.shape
    calm_count, kept = t - mask_frame, t - 2 * mask_frame
    if mask_frame < 0 or kept < 1:
        raise OccbenchError(f"MATM: mask_frame={mask_frame} leaves no frames of {t}; need T > 2 * mask_frame")
    energy = torch.zeros(n, t, dtype=x.dtype, device=x.device)
    energy[:, :-1] = (x[:, :, 1:] - x[:, :, :-1]).pow(2).mean(dim=(1, 3, 4))
    calm = torch.argsort(energy, dim=1, stable=True)[:, :calm_count].sort(dim=1).values  # (N, T - m)
    device = generator.device if generator is not None else "cpu"
    chosen = torch.randperm(calm_count, generator=generator, device=device)[:kept].sort().values
    frames = calm[:, chosen.to(x.device)]  # (N, T - 2m) frame indices, increasing
    out = x.gather(2, frames[:, None, :, None, None].expand(n, c, kept, v, m))
    if visible is None:
        return out
    return out, visible.gather(1, frames[:, :, None, None].expand(n, kept, v, m))


def barlow_twins_projector(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False), nn.BatchNorm1d(dim), nn.ReLU(inplace=True),
        nn.Linear(dim, dim, bias=False),
    )


class PSTL(Method):
    name = "pstl"
    title = "PSTL"
    citation = "Zhou et al., AAAI 2023"
    order = 40
    colour = "#E69F00"
    recipes: ClassVar[dict] = {"linear": "pstl"}  # PSTL's published probe (Adam, cosine, 150 epochs)
    requires = ("ignore_joints",)
    defaults: ClassVar[dict] = {"projector_dim": 6144, "lambd": 2e-4, "mask_joint": 8, "mask_frame": 10,
                                "shear_amplitude": 1.0}
    schema: ClassVar[dict] = {"projector_dim": integer(1), "lambd": number(0), "mask_joint": integer(0, NUM_JOINTS),
                              "mask_frame": integer(0), "shear_amplitude": number(0)}
    # paper: PSTL's published settings and its own schedule (Adam 5e-3, 150 epochs, cosine, 10 warm-up).
    # quick: MATM keeps T - 2 * mask_frame frames, 8 of the quick profile's 12 (the paper: 30 of 50); Adam
    # lr 2e-3 is the paper's 5e-3 for batch 128 scaled by sqrt(32 / 128) and rounded, the best of the rates
    # tried, and so is the one warm-up epoch (docs/results.md).
    profiles: ClassVar[dict] = {
        "paper": {"projector_dim": 6144, "lambd": 2e-4, "mask_joint": 8, "mask_frame": 10, "shear_amplitude": 1.0,
                  "pretrain": {"epochs": 150, "optimizer": {"type": "Adam", "lr": 5e-3, "weight_decay": 1e-5},
                               "schedule": {"type": "cosine", "warmup_epochs": 10}}},
        "quick": {"projector_dim": 512, "mask_frame": 2,
                  "pretrain": {"epochs": 6, "optimizer": {"lr": 2e-3},
                               "schedule": {"type": "cosine", "warmup_epochs": 1}}},
    }

    def __init__(self, settings: dict | None = None):
        super().__init__(settings)
        self.projector = barlow_twins_projector(self.encoders[self.streams[0]].feature_dim,
                                                self.settings["projector_dim"])

    def joint_weights(self, batch) -> torch.Tensor:
        """How often each joint appears in the spatial-mask multiset: CSM's graph degrees."""
        return DEGREES

    def training_step(self, batch, epoch, generator):
        stream = self.streams[0]
        encoder, s = self.encoders[stream], self.settings
        ignore = draw_from_multiset(self.joint_weights(batch), s["mask_joint"], generator)
        x, mask = to_stream(batch.x, stream, batch.mask)
        views = [pstl_view(x, mask, s["shear_amplitude"], generator=generator) for _ in range(3)]
        (anchor, anchor_mask), (temporal, temporal_mask), (spatial, spatial_mask) = views
        temporal, temporal_mask = motion_attention_temporal_mask(temporal, s["mask_frame"], generator,
                                                                 visible=temporal_mask)
        z_anchor = self.projector(encoder(anchor, mask=anchor_mask))
        z_temporal = self.projector(encoder(temporal, mask=temporal_mask))
        z_spatial = self.projector(encoder(spatial, mask=spatial_mask, ignore_joints=ignore.unique().tolist()))
        loss_temporal = barlow_twins_loss(z_anchor, z_temporal, s["lambd"])
        loss_spatial = barlow_twins_loss(z_anchor, z_spatial, s["lambd"])
        return {"loss": loss_temporal + loss_spatial, "loss_temporal": loss_temporal, "loss_spatial": loss_spatial}


@hookimpl
def occbench_register_methods(registry):
    registry.add("pstl", PSTL)
