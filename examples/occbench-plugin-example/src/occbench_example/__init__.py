"""An example occbench plugin: a method with its own encoder, an imputer and a progress log (README.md)."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

from occbench.augment import normal_view
from occbench.hookspecs import hookimpl
from occbench.impute import Imputer
from occbench.methods import MoCoMethod, info_nce
from occbench.settings import integer, number

# --- a method with its own encoder -----------------------------------------------------------------


class FrameMLP(nn.Module):
    """Each frame's 25 joints of each body through a two-layer MLP, averaged over the visible frames.

    It follows occbench's encoder contract (occbench/encoders.py): a `feature_dim` and a forward from
    skeletons (N, 3, T, 25, M) and their visibility mask (N, T, 25, M) to (N, feature_dim) features.
    """

    capabilities = frozenset()  # no feature map, no joint removal, no layers() for layer-wise decay
    schema = {"hidden": integer(1), "feature_dim": integer(1)}

    def __init__(self, hidden: int = 128, feature_dim: int = 64):
        super().__init__()
        self.feature_dim = feature_dim
        self.mlp = nn.Sequential(nn.Linear(3 * 25, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        n, c, t, v, m = x.shape
        frames = x.permute(0, 4, 2, 3, 1).reshape(n, m, t, v * c)  # (N, M, T, 75)
        features = self.mlp(frames)  # (N, M, T, D)
        seen = mask.any(dim=2).permute(0, 2, 1) if mask is not None else (x != 0).any(1).any(2).permute(0, 2, 1)
        weight = seen[..., None].float()  # a frame counts where some joint of the body is visible
        pooled = (features * weight).sum(dim=2) / weight.sum(dim=2).clamp_min(1)  # (N, M, D)
        return pooled.mean(dim=1)


class FrameCLR(MoCoMethod):
    """MoCo v2 as SkeletonCLR, on FrameMLP: two sheared, cropped views; InfoNCE against a queue."""

    name = "frameclr"
    title = "FrameCLR"
    citation = "occbench-plugin-example"
    encoder_class = FrameMLP
    defaults = {**MoCoMethod.defaults, "shear_amplitude": 0.5}
    schema = {**MoCoMethod.schema, "shear_amplitude": number(0, 5)}
    # its own settings for each named profile: paper (MoCo v2's, a wider encoder) and quick (2 CPU cores)
    profiles = {
        "paper": {**MoCoMethod.profiles["paper"], "encoder": {"hidden": 256, "feature_dim": 128}},
        "quick": {**MoCoMethod.profiles["quick"], "encoder": {"hidden": 64, "feature_dim": 32},
                  "pretrain": {"epochs": 2}},
    }

    def training_step(self, batch, epoch, generator):
        shear = self.settings["shear_amplitude"]
        query_view, query_mask = normal_view(batch.x, batch.mask, shear, generator=generator)
        key_view, key_mask = normal_view(batch.x, batch.mask, shear, generator=generator)
        q = self.query(query_view, "joint", query_mask)
        k = self.key(key_view, "joint", key_mask)
        loss = info_nce(self.logits(q, k, "joint"))
        self.enqueue(k, "joint")
        return {"loss": loss}


@hookimpl
def occbench_register_methods(registry):
    registry.add("frameclr", FrameCLR)


# --- an imputer ------------------------------------------------------------------------------------


class NearestFrame(Imputer):
    """Each occluded joint takes its position in the nearest frame (earlier or later) where it is visible;
    a joint never visible in a sample stays occluded. occbench reads the split, writes the imputed
    dataset with its masks and provenance, and measures the error; the plugin only fills."""

    name = "nearest"
    title = "nearest visible frame"
    order = 100

    def fill(self, job):
        filled = 0
        for rows in job.chunks():
            block = job.read(rows)  # data (n, 3, T, 25, 2); observed, target (n, T, 25, 2)
            frames = block.observed.shape[1]
            t = np.arange(frames)[None, :, None, None]
            before = np.maximum.accumulate(np.where(block.observed, t, -1), axis=1)
            after = np.minimum.accumulate(np.where(block.observed, t, frames)[:, ::-1], axis=1)[:, ::-1]
            later = (before < 0) | ((after < frames) & (after - t < t - before))
            donor = np.where(later, after, before)
            fill = block.target & (donor >= 0) & (donor < frames)
            values = np.take_along_axis(block.data, donor.clip(0, frames - 1)[:, None], axis=2)
            job.write(rows, values, fill)
            filled += int(fill.sum())
        return {"filled": filled}


@hookimpl
def occbench_register_imputers(registry):
    registry.add("nearest", NearestFrame())


# --- a progress log --------------------------------------------------------------------------------


@hookimpl
def occbench_stage_finished(event):
    """One JSON line per finished stage: what it was, how long it took, and its result if it has one."""
    record = event.record
    line = {"kind": event.kind, "label": event.label, "key": event.key, "seconds": event.seconds,
            "cached": event.cached, "top1": record["metrics"].get("top1") if record else None}
    with open(os.environ.get("OCCBENCH_EXAMPLE_LOG", "occbench-example.log"), "a") as log:
        log.write(json.dumps(line) + "\n")
