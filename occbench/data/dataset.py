"""A prepared skeleton dataset on disk: one pool of samples plus the index lists of its splits.

Every stage of the data pipeline (prepare, synth, import, occlude, preprocess, impute) reads and writes
this one layout, so each can be inspected, cached and resumed on its own:

    DIR/data.npy      float32 (N, 3, T, 25, 2)  x, y, z per frame, joint, body; 0 where not visible
    DIR/mask.npy      bool    (N, T, 25, 2)     True where the joint is visible
    DIR/present.npy   bool    (N, T, 2)         True where the body exists in the frame (before occlusion)
    DIR/inferred.npy  bool    (N, T, 25, 2)     joints the Kinect marked "inferred" (trackingState 1)
    DIR/length.npy    int32   (N,)              true frame count
    DIR/label.npy     int64   (N,)              0-based action label
    DIR/names.txt     N sample names (SsssCcccPpppRrrrAaaa)
    DIR/splits.json   {split: {"train": [indices], "val": [indices]}}
    DIR/meta.json     benchmark, number of classes, frames, provenance of every stage applied
    DIR/<other>.npy   optional per-sample arrays a stage adds (e.g. the occluders of realistic occlusion)

Occluded joints are those of present bodies that are not visible: ``present[:, :, None] & ~mask``.
Writers fill ``DIR.partial`` and rename it into place at the end, so a killed job never leaves a
half-written dataset behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.data.ntu import MAX_BODIES, NUM_JOINTS
from occbench.errors import OccbenchError, brief, write_error

ARRAYS = {  # name: (dtype, shape after N given T)
    "data": (np.float32, lambda t: (3, t, NUM_JOINTS, MAX_BODIES)),
    "mask": (np.bool_, lambda t: (t, NUM_JOINTS, MAX_BODIES)),
    "present": (np.bool_, lambda t: (t, MAX_BODIES)),
    "inferred": (np.bool_, lambda t: (t, NUM_JOINTS, MAX_BODIES)),
    "length": (np.int32, lambda t: ()),
    "label": (np.int64, lambda t: ()),
}
PARTS = ("train", "val")


@dataclass
class Part:
    """The samples of one part (train or val) of one split, loaded into memory."""

    data: np.ndarray
    mask: np.ndarray
    present: np.ndarray
    length: np.ndarray
    label: np.ndarray
    names: list[str]
    index: np.ndarray  # positions in the pool

    def __len__(self) -> int:
        return len(self.label)


class SkeletonDataset:
    """Read access to a prepared dataset directory (arrays are read-only memory maps)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / "meta.json").is_file():
            hint = "run `occbench data synth`, `occbench data prepare` or `occbench data import` first"
            if not self.path.exists():
                raise OccbenchError(f"{self.path}: no such directory; {hint}")
            raise OccbenchError(f"{self.path}: not a prepared occbench dataset (no meta.json); {hint}")
        self.meta = json.loads((self.path / "meta.json").read_text())
        self.splits = {
            split: {part: np.asarray(idx, np.int64) for part, idx in parts.items()}
            for split, parts in json.loads((self.path / "splits.json").read_text()).items()
        }
        self.names = (self.path / "names.txt").read_text().split()
        arrays = {}
        for name in ARRAYS:
            file = self.path / f"{name}.npy"
            try:
                arrays[name] = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as err:
                raise OccbenchError(f"{file}: unreadable ({brief(err)}); prepare the dataset again") from None
            if len(arrays[name]) != len(self.names):
                raise OccbenchError(
                    f"{file}: {len(arrays[name])} samples but names.txt lists {len(self.names)}; "
                    "prepare the dataset again"
                )
        self.extra = {
            file.stem: np.load(file, mmap_mode="r")
            for file in sorted(self.path.glob("*.npy"))
            if file.stem not in ARRAYS
        }
        self.data, self.mask, self.present = arrays["data"], arrays["mask"], arrays["present"]
        self.inferred, self.length, self.label = arrays["inferred"], arrays["length"], arrays["label"]

    def __len__(self) -> int:
        return len(self.names)

    @property
    def frames(self) -> int:
        return self.data.shape[2]

    @property
    def num_class(self) -> int:
        return int(self.meta["num_class"])

    def part(self, split: str, part: str) -> Part:
        if split not in self.splits:
            raise OccbenchError(
                f"{self.path}: no split {split!r}; it has {', '.join(self.splits) or 'none'}"
            )
        index = self.splits[split][part]
        return Part(
            data=np.asarray(self.data[index]),
            mask=np.asarray(self.mask[index]),
            present=np.asarray(self.present[index]),
            length=np.asarray(self.length[index]),
            label=np.asarray(self.label[index]),
            names=[self.names[i] for i in index],
            index=index,
        )

    def sample(self, key: str | int) -> int:
        """Position of a sample given its name or position."""
        if isinstance(key, int) or str(key).isdigit():
            i = int(key)
            if not 0 <= i < len(self):
                raise OccbenchError(f"{self.path}: sample index {i} out of range (0..{len(self) - 1})")
            return i
        try:
            return self.names.index(str(key).removesuffix(".skeleton"))
        except ValueError:
            raise OccbenchError(f"{self.path}: no sample named {key!r}") from None


class DatasetWriter:
    """Writes a dataset directory incrementally through memory maps, then moves it into place.

    Use as a context manager; on an exception the partial directory is removed and `out` is untouched.
    """

    def __init__(
        self, out: str | Path, n: int, frames: int, overwrite: bool = False, extra: dict | None = None
    ):
        """extra: {name: (dtype, per-sample shape)} for additional per-sample arrays."""
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise OccbenchError(f"{self.out}: a file, not a folder; choose another --out")
        if (self.out / "meta.json").exists() and not overwrite:
            raise OccbenchError(f"{self.out}: a dataset is already there; pass --overwrite to replace it")
        if self.out.exists() and any(self.out.iterdir()) and not (self.out / "meta.json").exists():
            raise OccbenchError(f"{self.out}: exists and is not an occbench dataset; choose another --out")
        self.partial = self.out.with_name(self.out.name + ".partial")
        shutil.rmtree(self.partial, ignore_errors=True)
        self.n, self.frames = n, frames
        self.names: list[str] = [""] * n
        self.arrays: dict[str, np.ndarray] = {}
        try:
            self.partial.mkdir(parents=True)
            for name, (dtype, shape) in ARRAYS.items():
                self.arrays[name] = allocate(self.partial / f"{name}.npy", dtype, (n, *shape(frames)))
            for name, (dtype, shape) in (extra or {}).items():
                self.arrays[name] = allocate(self.partial / f"{name}.npy", dtype, (n, *shape))
        except OSError as err:
            self.arrays.clear()
            shutil.rmtree(self.partial, ignore_errors=True)
            raise write_error(self.partial, err, "--out") from None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.arrays.clear()
            shutil.rmtree(self.partial, ignore_errors=True)

    def finish(self, splits: dict, meta: dict) -> SkeletonDataset:
        for array in self.arrays.values():
            array.flush()
        self.arrays.clear()
        splits = {s: {p: [int(i) for i in idx] for p, idx in parts.items()} for s, parts in splits.items()}
        try:
            (self.partial / "names.txt").write_text("\n".join(self.names) + "\n")
            (self.partial / "splits.json").write_text(json.dumps(splits))
            (self.partial / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            replace_folder(self.partial, self.out)
        except OSError as err:  # the partial folder goes in __exit__; a dataset already at `out` stays
            raise write_error(self.partial, err, "--out") from None
        return SkeletonDataset(self.out)


def replace_folder(partial: Path, out: Path) -> None:
    """Move the finished `partial` folder to `out`, replacing what is there: the old folder is moved
    aside first, so that `out` is at every moment either the old dataset or the new one."""
    if out.exists():
        old = out.with_name(out.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(partial, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, out)


def allocate(path: Path, dtype, shape: tuple) -> np.ndarray:
    """A writable memory-mapped .npy whose blocks are reserved on disk now: a memory map written into a
    sparse file on a full disk dies by SIGBUS, a reservation fails here as a plain OSError (ENOSPC)."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    with open(path, "r+b") as handle:
        size = os.fstat(handle.fileno()).st_size
        try:
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system that cannot reserve
                raise
    return array


def derive(
    source: SkeletonDataset, out: str | Path, transform, stage: dict, frames: int | None = None,
    overwrite: bool = False, chunk: int = 256, progress: str | None = None, extra: dict | None = None,
) -> SkeletonDataset:
    """Write a new dataset whose samples are `transform` applied to chunks of `source`.

    transform(arrays: dict of numpy chunks, index: positions) -> dict with the same keys (it may
    change the frame count to `frames`) plus any `extra` arrays ({name: (dtype, per-sample shape)}).
    `stage` is appended to meta["stages"] as provenance.
    """
    from tqdm import tqdm

    n = len(source)
    with DatasetWriter(out, n, frames or source.frames, overwrite=overwrite, extra=extra) as writer:
        starts = range(0, n, chunk)
        # disable=None shows the bar only on a terminal, so logs and error output stay clean.
        bar = tqdm(starts, desc=progress, unit="chunk", disable=True if progress is None else None, leave=False)
        for start in bar:
            index = np.arange(start, min(n, start + chunk))
            arrays = {name: np.asarray(getattr(source, name)[start : index[-1] + 1]) for name in ARRAYS}
            for name, values in transform(arrays, index).items():
                writer[name][start : index[-1] + 1] = values
        writer.names = list(source.names)
        meta = dict(source.meta, frames=frames or source.frames)
        meta["stages"] = [*source.meta.get("stages", []), stage]
        splits = {s: {p: idx.tolist() for p, idx in parts.items()} for s, parts in source.splits.items()}
        return writer.finish(splits, meta)
