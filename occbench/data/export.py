"""Export a prepared occbench dataset to the layouts that published training code reads.

The inverse of ``occbench data import`` (occbench/data/layouts.py), for people whose training script is
built on a published feeder rather than on an occbench plugin:

``crossclr`` — the ST-GCN / CrosSCLR / AimCLR folder: per split (``xsub/``, ``xview/``, ``xset/``)
    ``{part}_data.npy`` float32 (N, 3, T, 25, 2) with occluded joints 0, ``{part}_label.pkl`` = pickle of
    (sample names with their ``.skeleton`` suffix, int labels) as ST-GCN's gendata writes it, for the
    parts train and val, and beside them ``{part}_mask.npy`` bool (N, T, 25, 2), True where a joint is
    visible (or imputed). The published feeders open their data and label files by name, so the mask
    file is invisible to them; the importer looks only for ``{part}_{data_nan,data,position}.npy``.
``ctrgcn`` — the SGN / CTR-GCN / MAMP ``.npz``: per split one file holding x_train, y_train, x_test,
    y_test (x float32 (N, T, 150), per frame [body 1 25 x xyz | body 2 25 x xyz]; y one-hot float32
    (N, classes)) and mask_train, mask_test bool (N, T, 50), the visibility of x's 50 joints in the
    same order. CTR-GCN's feeder reads its arrays by key, so the extra keys are ignored. NTU datasets
    get the published file names (NTU60_CS, NTU60_CV, NTU120_CSub, NTU120_CSet), which name only those
    splits; another benchmark (the embedded synthetic one) gets ``{split}.npz`` for any split.

The coordinates are written as the dataset holds them: camera space for a prepared, occluded or
imputed dataset, relative and rotated after ``occbench data preprocess``. In particular the ctrgcn
export does not apply SGN's translation (joint 1 of the first frame subtracted): that would change
the data, and the import could not undo it.

Both layouts are written part by part in chunks of samples, so the arrays of an NTU-sized dataset are
never held in memory: .npy files through memory maps; npz members as streams into an uncompressed
(ZIP64) archive, as ``np.savez`` lays them out, so readers see an ordinary npz. Everything is written
to ``OUT.partial`` and renamed to OUT at the end, so a failure leaves no half-written export.

The importer infers visibility from zeros and does not read the mask files, so a round trip is exact in
data and labels, and in the mask except for a visible joint that is exactly 0 (the centre joint of
preprocessed data) and, in ctrgcn, an occluded joint 1 of body 1 in its first frame (docs/data.md).
"""

from __future__ import annotations

import pickle
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from occbench.data.dataset import PARTS, SkeletonDataset, replace_folder
from occbench.data.layouts import CHUNK, CROSSCLR_SPLITS, CTRGCN_FILES
from occbench.data.ntu import MAX_BODIES, NUM_JOINTS
from occbench.errors import OccbenchError, write_error

LAYOUTS = ("crossclr", "ctrgcn")
MASK_SUFFIX = "mask"  # {part}_mask.npy: not a data variant the importer or the published feeders look for
CTRGCN_PARTS = {"train": "train", "val": "test"}  # occbench part: npz key suffix
CTRGCN_NAMES = {benchmark_split: stem for stem, benchmark_split in CTRGCN_FILES.items()}  # (benchmark, split): stem


def export_layout(
    dataset: SkeletonDataset | str | Path,
    layout: str,
    out: str | Path,
    splits: list[str] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write `dataset` in `layout` ('crossclr' or 'ctrgcn') at the folder `out`; returns `out`.

    splits: the splits to write; None means every split of the dataset the layout can express.
    """
    if layout not in LAYOUTS:
        raise OccbenchError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if not isinstance(dataset, SkeletonDataset):
        dataset = SkeletonDataset(dataset)
    files = _files(dataset, layout, splits)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OccbenchError(f"{out}: a file, not a folder; choose another --out")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise OccbenchError(f"{out}: exists and is not empty; pass --overwrite to replace it or choose another --out")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir(parents=True)
        for split, target in files.items():
            writer = _write_crossclr if layout == "crossclr" else _write_ctrgcn
            writer(dataset, split, partial / target, progress)
        replace_folder(partial, out)
    except OSError as err:
        shutil.rmtree(partial, ignore_errors=True)
        raise write_error(partial, err, "--out") from None
    except BaseException:  # an OccbenchError, Ctrl-C: nothing half-written stays behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return out


def _files(dataset: SkeletonDataset, layout: str, wanted: list[str] | None) -> dict[str, str]:
    """{split: its folder (crossclr) or file (ctrgcn) under OUT} for the splits to write."""
    benchmark = dataset.meta.get("benchmark")
    if layout == "crossclr":
        expressible = {s: s for s in dataset.splits if s in CROSSCLR_SPLITS}
        why = f"a CrosSCLR folder holds only {', '.join(CROSSCLR_SPLITS)}"
    elif benchmark in ("ntu60", "ntu120"):
        expressible = {s: f"{CTRGCN_NAMES[benchmark, s]}.npz" for s in dataset.splits
                       if (benchmark, s) in CTRGCN_NAMES}
        why = f"CTR-GCN's {benchmark} files are {', '.join(n for (b, _), n in CTRGCN_NAMES.items() if b == benchmark)}"
    else:
        expressible = {s: f"{s}.npz" for s in dataset.splits}
        why = ""
    have = ", ".join(dataset.splits) or "none"
    if wanted is None:
        if not expressible:
            raise OccbenchError(f"{dataset.path}: none of its splits ({have}) fits the {layout} layout ({why}); "
                                "export another dataset or choose another --layout")
        return expressible
    for split in wanted:
        if split not in dataset.splits:
            raise OccbenchError(f"{dataset.path}: no split {split!r}; it has {have}")
        if split not in expressible:
            raise OccbenchError(f"split {split!r} cannot be written in the {layout} layout ({why}); "
                                "choose another --split or --layout")
    return {split: expressible[split] for split in dict.fromkeys(wanted)}


def _rows(array: np.ndarray, index: np.ndarray) -> np.ndarray:
    """array[index] read from a memory map in file order (much faster than the split's order)."""
    order = np.argsort(index, kind="stable")
    values = np.empty((len(index), *array.shape[1:]), array.dtype)
    values[order] = array[index[order]]
    return values


def _chunks(dataset: SkeletonDataset, rows: np.ndarray, desc: str, progress: bool) -> Iterator[tuple]:
    """(start, data float32 (n, 3, T, 25, 2) with hidden joints 0, mask bool (n, T, 25, 2)) per chunk."""
    from tqdm import tqdm

    # disable=None shows the bar only on a terminal, so logs and error output stay clean.
    bar = tqdm(range(0, len(rows), CHUNK), desc=desc, unit="chunk", disable=None if progress else True, leave=False)
    for start in bar:
        index = rows[start : start + CHUNK]
        data, mask = _rows(dataset.data, index).astype(np.float32), _rows(dataset.mask, index).astype(bool)
        yield start, np.where(mask[:, None], data, np.float32(0)), mask


def _write_crossclr(dataset: SkeletonDataset, split: str, folder: Path, progress: bool) -> None:
    folder.mkdir()
    for part in PARTS:
        rows = dataset.splits[split][part]
        n, frames = len(rows), dataset.frames
        data = np.lib.format.open_memmap(folder / f"{part}_data.npy", mode="w+", dtype=np.float32,
                                         shape=(n, 3, frames, NUM_JOINTS, MAX_BODIES))
        mask = np.lib.format.open_memmap(folder / f"{part}_{MASK_SUFFIX}.npy", mode="w+", dtype=np.bool_,
                                         shape=(n, frames, NUM_JOINTS, MAX_BODIES))
        for start, values, visible in _chunks(dataset, rows, f"{split}/{part}", progress):
            data[start : start + len(values)] = values
            mask[start : start + len(values)] = visible
        data.flush()
        mask.flush()
        del data, mask
        names = [f"{dataset.names[i]}.skeleton" for i in rows]  # as ST-GCN's gendata names samples
        labels = [int(label) for label in np.asarray(dataset.label[rows])]
        with open(folder / f"{part}_label.pkl", "wb") as handle:
            pickle.dump((names, labels), handle)


def _write_ctrgcn(dataset: SkeletonDataset, split: str, file: Path, progress: bool) -> None:
    frames, classes = dataset.frames, dataset.num_class
    joints = MAX_BODIES * NUM_JOINTS
    # ZIP_STORED, as np.savez writes: each member is a plain .npy a reader can stream. A zip archive has
    # one member open for writing at a time, so x and its mask are two passes over the part (the second
    # reads only the mask, a twelfth of the data).
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for part, key in CTRGCN_PARTS.items():
            rows = dataset.splits[split][part]
            n = len(rows)
            with _npy_member(archive, f"x_{key}", np.float32, (n, frames, joints * 3)) as stream:
                for _, values, _ in _chunks(dataset, rows, f"{split}/{part}", progress):
                    # (n, 3, T, 25, 2) -> (n, T, 2, 25, 3) -> per frame [body 1 25 x xyz | body 2 25 x xyz]
                    stream.write(np.ascontiguousarray(values.transpose(0, 2, 4, 3, 1)).tobytes())
            with _npy_member(archive, f"mask_{key}", np.bool_, (n, frames, joints)) as stream:
                for start in range(0, n, CHUNK):
                    visible = _rows(dataset.mask, rows[start : start + CHUNK]).astype(bool)
                    stream.write(np.ascontiguousarray(visible.transpose(0, 1, 3, 2)).tobytes())
            one_hot = np.zeros((n, classes), np.float32)
            one_hot[np.arange(n), np.asarray(dataset.label[rows], np.int64)] = 1
            with _npy_member(archive, f"y_{key}", np.float32, one_hot.shape) as stream:
                stream.write(one_hot.tobytes())


@contextmanager
def _npy_member(archive: zipfile.ZipFile, key: str, dtype, shape: tuple):
    """A writable stream for the member `key`.npy of `archive`, its .npy header already written; the
    caller writes the C-ordered bytes of the array."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    with archive.open(f"{key}.npy", "w", force_zip64=True) as stream:
        np.lib.format.write_array_header_1_0(stream, header)
        yield stream
