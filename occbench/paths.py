"""Where occbench reads and writes, and how its caches are keyed: the one module that decides either.

Three places hold what a run makes, each with one default that every command shares:

* results (the JSON record of every finished cell): ``./results``, in the folder the command runs
  from; ``occbench run --results DIR`` writes elsewhere, ``occbench table --results DIR`` reads it.
* the stage cache (datasets, checkpoints and encoders of every stage of a grid):
  ``$OCCBENCH_HOME/work``; ``occbench run --work DIR``.
* the embedded dataset (its ``.skeleton`` files and every prepared form of them):
  ``$OCCBENCH_HOME/embedded``; ``occbench data pipeline --home DIR`` puts it under another home.

``OCCBENCH_HOME`` defaults to ``~/.cache/occbench``. What occbench ships (the catalogue, the published
records, the NTU name lists) is package data beside this file: an installed occbench never reads the
source tree it was built from.

Every cache key is `digest` of a JSON payload that includes `CACHE_VERSION`. Paths kept inside a cache
are relative to the folder that holds them, so a cache can move.

This module imports only the standard library: `occbench --help` and `occbench table` start from it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
CATALOGUE = PACKAGE / "registry.yaml"  # the built-in catalogue; `occbench run --registry` reads another
PUBLISHED = PACKAGE / "published"  # the paper's tables as result records
NTU_RESOURCES = PACKAGE / "data" / "resources"  # the official NTU class names and missing-skeleton lists

DEFAULT_RESULTS = Path("results")
DEFAULT_HOME = "~/.cache/occbench"

# Bump when a stage's output for the same settings changes (a bug fix in training, say): every cached
# stage and embedded dataset is then made anew. 3: one version for the stage cache and the embedded data.
# 4: the visibility mask reaches the encoder in evaluation (2s-CrosSCLR's motion stream changes).
CACHE_VERSION = 4

# The files of a stage folder.
DONE = "done.json"  # written last, atomically: the stage is complete
DESCRIPTION = "stage.json"  # kind, label, key and settings, for a person reading the cache
LOCK = "lock"
ENCODER = "encoder.pth"  # a pretraining's encoder weights
CHECKPOINT = "last.pth"  # a pretraining's resumable state
CHECKPOINT_DIGEST = "last.pth.digest"  # the digest of its bytes, checked before it is resumed from

# The datasets a data or imputation stage writes in its folder (and `occbench impute` in its --out).
RAW = "raw"  # at the recorded length, in camera space
FRAMES = "frames"  # preprocessed to the profile's frame count

MAX_NAME = 200  # file names stay well under the 255 bytes of common file systems


def home(given: str | Path | None = None) -> Path:
    return Path(given or os.environ.get("OCCBENCH_HOME") or DEFAULT_HOME).expanduser()


def results_folder(given: str | Path | None = None) -> Path:
    return Path(given).expanduser() if given else DEFAULT_RESULTS


def work_folder(given: str | Path | None = None) -> Path:
    return Path(given).expanduser() if given else home() / "work"


def embedded_root(home_folder: str | Path | None = None) -> Path:
    return home(home_folder) / "embedded"


def embedded_folder(generator: dict, home_folder: str | Path | None = None) -> Path:
    """The embedded dataset made by the generator settings `generator`: one folder per distinct setting."""
    return embedded_root(home_folder) / digest({"generator": generator}, length=10)


def embedded_parts(root: Path, occlusion: str, seed: int, frames: int,
                   pipeline: str = "mask-aware") -> dict[str, Path]:
    """The folders of one embedded chain (`embedded_folder`), by role; one occluded pair per occlusion spec
    (`random@0.3` in a name safe on every file system: a bare kind's folders keep their names), and one
    preprocessed pair per preprocessing pipeline (the default, mask-aware, keeps the names it had before
    there was a choice: `frame50`; another is `frame50-published`)."""
    occlusion = _safe(occlusion)
    preprocessed = f"frame{frames}" if pipeline == "mask-aware" else f"frame{frames}-{_safe(pipeline)}"
    return {"skeletons": root / "skeletons", "raw": root / RAW, "occluded_raw": root / f"{RAW}-{occlusion}-seed{seed}",
            "clean": root / preprocessed, "occluded": root / f"{preprocessed}-{occlusion}-seed{seed}"}


def impute_outputs(out: Path, split: str | None = None, imputer: str | None = None) -> dict[str, Path]:
    """What `occbench impute --out OUT` writes: per split and imputer the imputed dataset at its recorded
    length and preprocessed, and for every split together the quality report."""
    folder = Path(out) if split is None else Path(out) / split / imputer
    return {"imputed": folder / "imputed", "frames": folder / FRAMES, "table": Path(out) / "quality.md",
            "csv": Path(out) / "quality.csv", "plot": Path(out) / f"quality_{split}.png"}


def digest(payload: dict, length: int = 16) -> str:
    """The cache key of `payload` (JSON-able, key order irrelevant), versioned by CACHE_VERSION."""
    text = json.dumps({"version": CACHE_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_digest(path: str | Path) -> str:
    """The digest of a file's bytes (a checkpoint's, kept beside it)."""
    hasher = hashlib.blake2b(digest_size=16)
    _hash_file(hasher, Path(path))
    return hasher.hexdigest()


def content_digest(path: str | Path) -> str:
    """The digest a stage keeps of what it hands on (an encoder file, a dataset folder: every file's name
    and bytes), checked when it is used again. Remembered per file size and time, so a process reads each
    dataset once however many stages use it."""
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stamp not in _DIGESTS:
        hasher = hashlib.blake2b(digest_size=16)
        for file in files:
            if file != path:  # a folder's: its files' names too
                hasher.update(str(file.relative_to(path)).encode() + b"\0")
            _hash_file(hasher, file)
        _DIGESTS[stamp] = hasher.hexdigest()
    return _DIGESTS[stamp]


_DIGESTS: dict[tuple, str] = {}


def _hash_file(hasher, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)


def stage_key(kind: str, settings: dict, needs: list[str]) -> str:
    return digest({"kind": kind, "settings": settings, "needs": needs})


def stage_folder(work: Path, kind: str, key: str) -> Path:
    return Path(work) / kind / key


def slurm_folder(work: Path) -> Path:
    """submitit's job scripts and logs."""
    return Path(work) / "slurm"


def relative_to(folder: Path, path: str | Path) -> str:
    """`path` as kept in a cache under `folder`: relative when inside it, absolute otherwise."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path)


def resolve(folder: Path, kept: str) -> Path:
    """The inverse of `relative_to` (an absolute path stays as it is)."""
    return Path(folder) / kept


def record_name(cell: dict) -> str:
    """A readable file name for the record of `cell`, unique per cell, e.g.
    ``opstl-J-knn-ntu60-xsub-realistic-linear-paper-seed0.json`` (fields that are null are left out; a cell
    pretrained on another occlusion than it was evaluated on has ``-pretrained_none`` after its occlusion)."""
    fields = ("method", "stream", "imputer", "dataset", "split", "occlusion", "protocol", "profile")
    pretrained = cell.get("pretrain_occlusion")
    parts = []
    for name in fields:
        if cell.get(name) is not None:
            parts.append(_safe(str(cell[name])))
        if name == "occlusion" and pretrained not in (None, cell.get("occlusion")):  # pretrained on other data
            parts.append(f"pretrained_{_safe(str(pretrained))}")
    stem = "-".join(parts)
    seed = f"-seed{cell.get('seed')}.json"
    if len(stem) + len(seed) > MAX_NAME:  # a profile named after many --cfg-options: shortened, kept unique
        stem = f"{stem[: MAX_NAME - len(seed) - 17]}-{digest({'cell': cell}, length=16)}"
    return stem + seed


def note_name(cell: dict) -> str:
    """The file of the status note (failed, submitted) of a cell that has no record yet."""
    return record_name(cell).removesuffix(".json") + ".status.json"


def _safe(part: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "+._=" else "_" for ch in part).strip("_") or "_"
