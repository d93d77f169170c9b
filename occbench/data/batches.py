"""A split held on the training device as tensors, and seeded batches drawn from it.

The 50-frame NTU-60 xsub training set is about 1.2 GB, so it fits in GPU memory: keeping it there
removes the data loader from the training loop entirely (no worker processes, no host-to-device copies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from occbench.data.dataset import Part
from occbench.errors import OccbenchError


@dataclass
class Batch:
    x: torch.Tensor  # (B, 3, T, 25, 2) float
    mask: torch.Tensor  # (B, T, 25, 2) bool, visible joints
    label: torch.Tensor  # (B,) long
    missing: torch.Tensor  # (B, 25) bool: joint occluded in any frame of any body (OPSTL's ASM input)
    index: torch.Tensor  # (B,) positions in the split part


@dataclass
class EvalData:
    """What an evaluation protocol receives beside the encoder."""

    train: DeviceData
    val: DeviceData
    num_class: int
    generator: torch.Generator
    progress: str | None = None  # a label for progress bars, None for none


class DeviceData:
    """One part of one split as tensors on `device`."""

    def __init__(self, part: Part, device: str | torch.device = "cpu", missing: np.ndarray | None = None):
        self.device = torch.device(device)
        if not np.isfinite(part.data).all():
            bad = part.names[int(np.flatnonzero(~np.isfinite(part.data).reshape(len(part), -1).all(axis=1))[0])]
            raise OccbenchError(f"sample {bad} (and maybe others) holds NaN or infinite coordinates: prepare the "
                                "data again, or import it with the occluded joints as 0")
        self.x = torch.as_tensor(np.ascontiguousarray(part.data), device=self.device)
        self.mask = torch.as_tensor(part.mask, device=self.device)
        self.label = torch.as_tensor(part.label, dtype=torch.long, device=self.device)
        if missing is None:
            missing = occluded_joints(part)
        self.missing = torch.as_tensor(missing, device=self.device)
        self.names = part.names

    def __len__(self) -> int:
        return len(self.label)

    @property
    def num_class(self) -> int:
        return int(self.label.max().item()) + 1 if len(self) else 0

    def batch(self, index: torch.Tensor) -> Batch:
        return Batch(self.x[index], self.mask[index], self.label[index], self.missing[index], index)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
                drop_last: bool = True, subset: torch.Tensor | None = None):
        """Shuffled (or ordered) batches; `subset` restricts to those positions (semi-supervised)."""
        pool = subset.to(self.device) if subset is not None else torch.arange(len(self), device=self.device)
        if shuffle:
            order = torch.randperm(len(pool), generator=generator, device=generator.device if generator else "cpu")
            pool = pool[order.to(self.device)]
        stop = len(pool) - len(pool) % batch_size if drop_last and len(pool) >= batch_size else len(pool)
        for start in range(0, stop, batch_size):
            yield self.batch(pool[start : start + batch_size])

    def inputs(self, batch_size: int = 256):
        """Every sample's (input, mask), in order, `batch_size` at a time (feature extraction, BatchNorm
        statistics)."""
        return ((batch.x, batch.mask) for batch in self.batches(batch_size, shuffle=False, drop_last=False))


def occluded_joints(part: Part) -> np.ndarray:
    """(N, 25) flags: the joint is occluded in at least one frame of a present body."""
    occluded = part.present[:, :, None, :] & ~part.mask  # (N, T, V, M)
    return occluded.any(axis=(1, 3))
