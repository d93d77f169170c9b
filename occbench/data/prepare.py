"""Raw `.skeleton` folder -> a prepared dataset with the official splits (see dataset.py for the layout).

Follows ST-GCN's gendata conventions (the first two bodies listed in a frame go to slots 0 and 1, no
body matching or denoising; label = action - 1; the official missing-skeleton samples are excluded)
and adds what occlusion needs: the visibility mask (a joint written as x=y=z=0, the occluded-NTU
convention, is not visible), body presence, Kinect "inferred" joints and the true frame count.
Samples are parsed in worker processes and streamed into memory maps, so RAM stays flat.
"""

from __future__ import annotations

import json
import os
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

import occbench
from occbench.data import ntu
from occbench.data.dataset import DatasetWriter, SkeletonDataset, allocate
from occbench.data.skeleton import INFERRED, read_skeleton
from occbench.errors import OccbenchError, SkeletonFormatError, write_error

SYNTHETIC_SPLITS = ("xsub", "xview", "xset")


def prepare(
    raw: str | Path, out: str | Path, benchmark: str | None = None, skip_invalid: bool = False,
    overwrite: bool = False, workers: int | None = None, progress: bool = False,
) -> SkeletonDataset:
    """Prepare `raw` (searched recursively for *.skeleton) into `out`.

    benchmark: ntu60, ntu120, or synthetic (the default when `raw` holds occbench's synthetic.json).
    A malformed file raises SkeletonFormatError unless skip_invalid, which lists it in
    `out/prepare_report.txt` instead.
    """
    raw = Path(raw)
    if not raw.is_dir():
        raise OccbenchError(f"{raw}: no such directory; point --raw at the folder of .skeleton files")
    synthetic = _synthetic_info(raw)
    benchmark = benchmark or ("synthetic" if synthetic else None)
    if benchmark is None:
        raise OccbenchError(f"{raw}: say which benchmark it holds with --benchmark ntu60 or ntu120")
    if benchmark == "synthetic":
        if synthetic is None:
            raise OccbenchError(f"{raw}: no synthetic.json; make it with `occbench data synth --out {raw}`")
        num_class, splits, class_names = len(synthetic["classes"]), SYNTHETIC_SPLITS, synthetic["classes"]
    else:
        num_class, _, splits = ntu.BENCHMARKS[ntu.check_benchmark(benchmark)]
        class_names = list(ntu.class_names(benchmark))

    files, skipped = _select_files(raw, benchmark, skip_invalid)
    if not files:
        raise OccbenchError(f"{raw}: no usable {benchmark} .skeleton files found")
    frames, files, more_skipped = _frame_counts(files, skip_invalid)
    skipped += more_skipped

    started = time.time()
    kept: list[tuple[Path, ntu.SampleName]] = []
    lengths: list[int] = []  # of the samples kept: a skipped file's header does not size the arrays
    with DatasetWriter(out, len(files), max(frames), overwrite=overwrite) as writer:
        for path, result in _parse_all(files, workers, progress):
            if isinstance(result, SkeletonFormatError):
                if not skip_invalid:
                    raise result
                skipped.append((path, result.problem if result.line is None else str(result)))
                continue
            k, f = len(kept), result["length"]
            writer["data"][k, :, :f] = result["data"]
            for name in ("mask", "present", "inferred"):
                writer[name][k, :f] = result[name]
            writer["length"][k], writer["label"][k] = f, result["label"]
            kept.append((path, ntu.parse_name(path.name)))
            lengths.append(f)
        if not kept:
            raise OccbenchError(f"{raw}: every .skeleton file was invalid; see the errors above")
        try:
            if len(kept) < len(files) or max(lengths) < writer.frames:
                writer = _shrink(writer, len(kept), max(lengths))
            _write_report(writer.partial, kept, skipped)
        except OSError as err:
            raise write_error(writer.partial, err, "--out") from None
        writer.names = [str(name) for _, name in kept]
        names = [name for _, name in kept]
        split_index = {
            split: {
                "train": [i for i, n in enumerate(names) if ntu.is_train(n, _rules(benchmark), split)],
                "val": [i for i, n in enumerate(names) if not ntu.is_train(n, _rules(benchmark), split)],
            }
            for split in splits
        }
        meta = {
            "benchmark": benchmark,
            "complete": _complete(benchmark, split_index),
            "num_class": num_class,
            "class_names": class_names,
            "frames": int(writer.frames),
            "source": {"raw": str(raw.resolve()), "files": len(kept), "skipped": len(skipped)},
            "stages": [{
                "stage": "prepare", "occbench": occbench.__version__, "seconds": round(time.time() - started, 1),
                "excluded_missing_skeletons": benchmark != "synthetic", "bodies": "first two listed per frame",
            }],
        }
        if synthetic:
            meta["synthetic"] = synthetic
        return writer.finish(split_index, meta)


def _complete(benchmark: str, split_index: dict) -> bool | None:
    """Whether this is the whole official benchmark; its split sizes are then checked against the paper's."""
    if benchmark not in ntu.OFFICIAL_SIZES:
        return None
    total, sizes = ntu.OFFICIAL_SIZES[benchmark]
    if sum(len(index) for index in next(iter(split_index.values())).values()) < total:
        return False
    for split, (train, val) in sizes.items():
        got = (len(split_index[split]["train"]), len(split_index[split]["val"]))
        if got != (train, val):
            raise OccbenchError(
                f"{benchmark} {split}: {got[0]}/{got[1]} train/test samples, the official split has "
                f"{train}/{val}; check that the raw folder holds exactly the released files"
            )
    return True


def _rules(benchmark: str) -> str:
    # Synthetic subjects follow NTU-60's training-subject list.
    return "ntu60" if benchmark == "synthetic" else benchmark


def _synthetic_info(raw: Path) -> dict | None:
    file = raw / "synthetic.json"
    if not file.is_file():
        return None
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise OccbenchError(f"{file}: not valid JSON ({err.msg}); regenerate with `occbench data synth`") from None


def _select_files(raw: Path, benchmark: str, skip_invalid: bool):
    missing = frozenset() if benchmark == "synthetic" else ntu.missing_skeletons(benchmark)
    files, skipped, seen = [], [], {}
    for path in _skeleton_files(raw, skip_invalid, skipped):
        if not path.is_file():  # a folder, a dangling link or a FIFO: not a recording
            if not skip_invalid:
                raise OccbenchError(f"{path}: not a regular file; remove it or pass --skip-invalid")
            skipped.append((path, "not a regular file"))
            continue
        try:
            name = ntu.parse_name(path.name)
        except OccbenchError as err:
            if not skip_invalid:
                raise OccbenchError(f"{err}; rename it, remove it or pass --skip-invalid") from None
            skipped.append((path, "not an NTU sample name"))
            continue
        if benchmark != "synthetic" and not ntu.in_benchmark(name, benchmark):
            continue  # NTU-120 files in a mixed folder when preparing NTU-60
        if str(name) in missing:
            continue
        if str(name) in seen:
            raise OccbenchError(f"{path}: sample {name} also at {seen[str(name)]}; remove one copy")
        seen[str(name)] = path
        files.append(path)
    return files, skipped


def _skeleton_files(raw: Path, skip_invalid: bool, skipped: list) -> list[Path]:
    """Every *.skeleton under `raw`, sorted. A sub-folder that cannot be listed is an error (or, with
    --skip-invalid, a line of the report): it may hold samples, and a split must never lose them silently."""
    found = []

    def unreadable(err: OSError) -> None:
        if not skip_invalid:
            raise OccbenchError(f"{err.filename}: cannot list ({err.strerror}); fix its permissions or pass "
                                "--skip-invalid")
        skipped.append((Path(err.filename), f"folder not listed ({err.strerror})"))

    for folder, dirs, names in os.walk(raw, onerror=unreadable):
        dirs.sort()
        found += [Path(folder) / name for name in names if name.endswith(".skeleton")]
        # a folder named *.skeleton is no recording: listed here so that it is reported, not skipped
        found += [Path(folder) / name for name in dirs if name.endswith(".skeleton")]
    return sorted(found)


def _frame_counts(files: list[Path], skip_invalid: bool):
    """Read only the first line of each file to size the arrays before parsing. Every frame takes at
    least two bytes (its body count and a newline), so a count beyond half the file's size is a lie that
    would size the arrays of every sample."""
    counts, kept, skipped = [], [], []
    for path in files:
        try:
            with open(path, "rb") as handle:
                first, size = handle.readline(64).strip(), os.fstat(handle.fileno()).st_size
            count = int(first) if first.isdigit() else 0
            error = None
            if count <= 0:
                error = SkeletonFormatError(path, 1, f"expected a positive frame count, got {first[:20]!r}")
            elif count > size // 2:
                error = SkeletonFormatError(path, 1, f"{count} frames announced, more than its {size} bytes can "
                                                     "hold (each frame takes at least 2)")
        except OSError as err:
            error = SkeletonFormatError(path, None, f"cannot read ({err.strerror}); check its permissions")
        if error is None:
            counts.append(count)
            kept.append(path)
            continue
        if not skip_invalid:
            raise error
        skipped.append((path, str(error)))
    return counts or [1], kept, skipped


def _parse_one(path: Path):
    try:
        seq = read_skeleton(path)
    except SkeletonFormatError as err:
        return path, err
    slots = min(seq.xyz.shape[1], ntu.MAX_BODIES)
    frames = seq.frames
    data = np.zeros((3, frames, ntu.NUM_JOINTS, ntu.MAX_BODIES), np.float32)
    present = np.zeros((frames, ntu.MAX_BODIES), bool)
    inferred = np.zeros((frames, ntu.NUM_JOINTS, ntu.MAX_BODIES), bool)
    data[:, :, :, :slots] = seq.xyz[:, :slots].transpose(3, 0, 2, 1)
    present[:, :slots] = seq.tracking[:, :slots, 0] >= 0
    inferred[:, :, :slots] = (seq.tracking[:, :slots] == INFERRED).transpose(0, 2, 1)
    mask = present[:, None, :] & np.any(data != 0, axis=0)
    label = ntu.parse_name(path.name).label
    return path, {
        "data": data, "mask": mask, "present": present, "inferred": inferred, "length": frames, "label": label,
    }


def _parse_all(files: list[Path], workers: int | None, progress: bool):
    from tqdm import tqdm

    workers = workers or min(len(os.sched_getaffinity(0)), 8)
    bar = tqdm(total=len(files), desc="prepare", unit="file", disable=None if progress else True)
    with Pool(workers) if workers > 1 and len(files) > 64 else _Serial() as pool:
        for item in pool.imap(_parse_one, files, chunksize=16):
            bar.update()
            yield item
    bar.close()


def _shrink(writer: DatasetWriter, n: int, frames: int) -> DatasetWriter:
    """Skipped files leave empty rows at the end, and their headers may have asked for more frames than
    any kept sample has: rewrite the arrays with only the first n rows and `frames` frames."""
    for name, array in list(writer.arrays.items()):
        array.flush()
        shape = tuple(n if axis == 0 else frames if axis == FRAME_AXIS[name] else size
                      for axis, size in enumerate(array.shape))
        trimmed = allocate(writer.partial / f"{name}.tmp.npy", array.dtype, shape)
        trimmed[:] = array[tuple(slice(0, size) for size in shape)]
        trimmed.flush()
        del array, trimmed
        writer.arrays.pop(name)
        os.replace(writer.partial / f"{name}.tmp.npy", writer.partial / f"{name}.npy")
        writer.arrays[name] = np.load(writer.partial / f"{name}.npy", mmap_mode="r+")
    writer.n, writer.frames = n, frames
    return writer


FRAME_AXIS = {"data": 2, "mask": 1, "present": 1, "inferred": 1, "length": None, "label": None}


def _write_report(folder: Path, kept, skipped) -> None:
    lines = [f"prepared {len(kept)} samples; skipped {len(skipped)} invalid file(s)"]
    lines += [f"skipped\t{path}\t{why}" for path, why in skipped]
    (folder / "prepare_report.txt").write_text("\n".join(lines) + "\n")


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, items, chunksize=1):
        return map(fn, items)
