"""Import skeleton arrays that people already have on disk into an occbench dataset directory.

Two layouts are understood (see ../shared/reference/data.md §3 and §5.3):

``crossclr`` — ST-GCN / CrosSCLR / AimCLR / OPSTL: a folder with split subfolders (``xsub/``,
    ``xview/``, ``xset/``), or one such split folder itself, each holding per part (train, val)
    ``{part}_label.pkl`` = pickle of (names, labels) and one data file, looked for in this order:
    ``{part}_data_nan.npy`` (OPSTL: NaN = occluded), ``{part}_data.npy`` (N, 3, 300, 25, 2, raw metres),
    ``{part}_position.npy`` (N, 3, 50, 25, 2, CrosSCLR's relative 50-frame data).
    The pool is the union of the samples of all splits, deduplicated by name (a sample in xsub-train
    and xview-val is stored once); a split folder not named xsub/xview/xset keeps its folder name.
``ctrgcn`` — SGN / CTR-GCN ``.npz`` (NTU60_CS, NTU60_CV, NTU120_CSub, NTU120_CSet): keys x_train
    (N, 300, 150), y_train (one-hot), x_test, y_test; per frame [body 1 25×xyz | body 2 25×xyz].
    The path is one such file or a folder of them; several files are deduplicated by content (the
    same sample is byte-identical in CS and CV). No names are stored, so samples are named
    ``ctrgcn_<split>_<part>_<row>`` after their first occurrence. The test part becomes ``val``.

Visibility (occluded-NTU convention of OPSTL/Trans4SOAR: an occluded joint is x = y = z = 0):

- NaN or inf coordinates always mean occluded;
- with ``zeros_are_occluded`` a joint whose x, y and z are all 0 is occluded too; without it, every
  finite joint of a present body is visible;
- ``present[t, m]``: some joint of body m is non-zero (or NaN) in frame t. A body whose joints are all
  zero in a frame therefore counts as *absent* there, not as fully occluded; only the NaN files can
  express "present but fully occluded";
- ``length``: the last frame in which any body is present, plus 1.

Layout quirks handled:

- ``_position.npy`` data are centred on joint 20, which is therefore exactly 0 by construction: it is
  kept visible wherever its body is present. Occlusion cannot be recovered from these files (centring
  moved zero-filled joints to −centre); import the ``_data.npy`` files of occluded data instead.
- CTR-GCN data are already centred: joint 1 of body 1 in its first frame was subtracted from every
  frame (SGN ``seq_translation``), so that joint is exactly 0 there and is kept visible. As with
  position files, occlusion zeros applied *before* that translation cannot be recovered.
- CTR-GCN's NTU-120 npz copies body 1 into the body 2 slot for single-actor samples: a body 2 that
  equals body 1 exactly in every frame is taken as such a copy and marked absent (zeros, not present).

Input files are read memory-mapped (npz members are streamed) and written chunk by chunk, so the
300-frame NTU arrays (~10 GB for NTU-60) are never loaded whole.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import pickle
import re
import tokenize
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occbench.data.dataset import PARTS, DatasetWriter, SkeletonDataset
from occbench.data.ntu import BENCHMARKS, CENTER_JOINT, MAX_BODIES, NUM_JOINTS, check_benchmark
from occbench.errors import OccbenchError, brief, read_bytes

CROSSCLR_SPLITS = ("xsub", "xview", "xset")
DATA_VARIANTS = ("data_nan", "data", "position")  # file suffixes, in order of preference
CTRGCN_FILES = {  # file stem: (benchmark, split)
    "NTU60_CS": ("ntu60", "xsub"),
    "NTU60_CV": ("ntu60", "xview"),
    "NTU120_CSub": ("ntu120", "xsub"),
    "NTU120_CSet": ("ntu120", "xset"),
}
CTRGCN_ORIGIN_JOINT = 1  # SGN/CTR-GCN translate by joint 1 (spine mid) of the first frame
CHUNK = 256

# --------------------------------------------------------------------------------------------------
# Restricted unpickling

# Pickled ndarrays and numpy scalars need these constructors (numpy 1 names them numpy.core, numpy 2
# numpy._core); all other globals are refused, because unpickling may call any global it names.
_NUMPY_GLOBALS = {
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in [
        (f"{core}.multiarray", "_reconstruct"),
        (f"{core}.multiarray", "scalar"),
        (f"{core}.numeric", "_frombuffer"),
    ]
} | {("numpy", "ndarray"), ("numpy", "dtype")}
_NUMPY2 = int(np.__version__.split(".")[0]) >= 2
# Protocols <= 2 spell sets and bytes through these globals (__builtin__ is Python 2's builtins).
_BUILTIN_GLOBALS = {("builtins", "set"), ("__builtin__", "set"), ("_codecs", "encode")}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _BUILTIN_GLOBALS:
            return set if name == "set" else codecs.encode
        if (module, name) in _NUMPY_GLOBALS:
            if module.startswith("numpy.core") and _NUMPY2:  # numpy-1 pickle: skip numpy 2's warning shim
                module = module.replace("numpy.core", "numpy._core")
            elif module.startswith("numpy._core") and not _NUMPY2:
                module = module.replace("numpy._core", "numpy.core")
            return getattr(__import__(module, fromlist=[name]), name)
        raise OccbenchError(
            f"{self.path}: refused to unpickle global {module}.{name} (only plain containers, strings, "
            "numbers and numpy arrays are allowed); regenerate the file or check where it came from"
        )


def safe_load_pickle(path: str | Path) -> object:
    """Unpickle a file that may only hold lists, tuples, dicts, sets, str, bytes, numbers, bool, None
    and numpy arrays/scalars; any other global raises OccbenchError naming the file and the global."""
    path = Path(path)
    raw = read_bytes(path)
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), path).load()
    except OccbenchError:
        raise
    except Exception as err:  # a damaged pickle can raise nearly anything
        raise OccbenchError(
            f"{path}: not a readable pickle ({type(err).__name__}: {brief(err)}); regenerate it"
        ) from None


# --------------------------------------------------------------------------------------------------
# Layout detection


def detect_layout(path: str | Path) -> str:
    """'stgcn' (the ST-GCN folder layout of CrosSCLR, AimCLR and OPSTL) or 'ctrgcn'; OccbenchError if
    `path` is neither."""
    path = Path(path)
    if not path.exists():
        raise OccbenchError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix == ".npz":
        return "ctrgcn"
    if path.is_dir():
        if _crossclr_split_dirs(path):
            return "stgcn"
        if sorted(path.glob("*.npz")):
            return "ctrgcn"
    raise OccbenchError(
        f"{path}: not a known layout; expected a CrosSCLR/ST-GCN folder (xsub/train_data.npy + "
        "xsub/train_label.pkl, or one such split folder) or a CTR-GCN .npz (e.g. NTU60_CS.npz)"
    )


def _crossclr_split_dirs(path: Path) -> dict[str, Path]:
    """{split: folder}: the split subfolders of `path`, or `path` itself when it is a split folder."""

    def is_split(folder: Path) -> bool:
        names = [f"{part}_label.pkl" for part in PARTS]
        names += [f"{part}_{variant}.npy" for part in PARTS for variant in DATA_VARIANTS]
        return folder.is_dir() and any((folder / name).is_file() for name in names)

    found = {split: path / split for split in CROSSCLR_SPLITS if is_split(path / split)}
    if not found and is_split(path):
        found = {path.resolve().name: path}
    return found


# --------------------------------------------------------------------------------------------------
# Turning raw chunks into occbench arrays


def _visibility(
    x: np.ndarray, zeros_are_occluded: bool, exempt: np.ndarray | None = None, given: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """x float (n, 3, T, V, M) with NaN/0 conventions -> data, mask, present, length.

    exempt: bool broadcastable to (n, T, V, M), joints that are 0 by construction (a centring origin)
    and count as visible wherever their body is present.
    given: bool (n, T, V, M), the visibility written beside the data by `occbench data export`; it
    replaces the zero and origin rules (a visible joint may be exactly 0, e.g. a centre joint).
    """
    bad = ~np.isfinite(x).all(axis=1)
    x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    nonzero = (x != 0).any(axis=1)
    if given is not None:
        present = (nonzero | bad | given).any(axis=2)
        visible = ~bad & given
    else:
        present = (nonzero | bad).any(axis=2)
        visible = ~bad & present[:, :, None]
    if zeros_are_occluded and given is None:
        visible &= nonzero if exempt is None else nonzero | exempt
    frames = np.arange(x.shape[2])
    last = np.where(present.any(axis=2), frames, -1).max(axis=1, initial=-1)
    return {
        "data": np.where(visible[:, None], x, 0).astype(np.float32),
        "mask": visible,
        "present": present,
        "length": (last + 1).astype(np.int32),
    }


def _check_shape(shape: tuple, file: Path) -> None:
    """(n, 3, T, 25, M<=2), as ST-GCN's gendata writes it."""
    if len(shape) != 5 or shape[1] != 3 or shape[3] != NUM_JOINTS or not 1 <= shape[4] <= MAX_BODIES:
        raise OccbenchError(
            f"{file}: shape {tuple(shape)} is not (N, 3, T, {NUM_JOINTS}, {MAX_BODIES}) as ST-GCN's "
            "gendata writes it; regenerate the file"
        )


def _pad_bodies(x: np.ndarray, file: Path) -> np.ndarray:
    """Pad (n, 3, T, 25, M) to M = 2 bodies."""
    _check_shape(x.shape, file)
    if x.shape[4] < MAX_BODIES:
        x = np.concatenate([x, np.zeros((*x.shape[:4], MAX_BODIES - x.shape[4]), x.dtype)], axis=4)
    return x


# --------------------------------------------------------------------------------------------------
# Sources: the parts (split × train/val) that import_layout reads


def _read_all(start: int, stop: int) -> bool:
    return True


@dataclass
class _PartSource:
    """One part (train/val) of one split: sample names, labels and a chunked reader of its data."""

    split: str
    part: str
    file: Path
    variant: str  # data_nan | data | position | npz
    names: list[str]
    labels: np.ndarray
    frames: int
    chunks: Callable  # (wanted(start, stop) -> bool) -> iterator of (start, float32 (n, 3, T, 25, 2))
    keys: list = field(default_factory=list)  # what deduplicates the pool: names or content hashes
    rows: np.ndarray | None = None  # pool position of each sample, set by _pool

    def exempt(self, block: np.ndarray) -> np.ndarray | None:
        """Joints that are 0 by construction (a centring origin) and so not occluded."""
        if self.variant == "npz":
            return _ctrgcn_origin(block)
        if self.variant == "position":
            exempt = np.zeros((1, 1, NUM_JOINTS, 1), bool)
            exempt[:, :, CENTER_JOINT] = True
            return exempt
        return None


# What numpy raises for a damaged .npy: its header is a Python literal, parsed as one.
UNREADABLE = (OSError, ValueError, EOFError, SyntaxError, tokenize.TokenError, zipfile.BadZipFile)


def _load_npy(file: Path) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except UNREADABLE as err:
        raise OccbenchError(
            f"{file}: unreadable or truncated .npy ({brief(err)}); regenerate or download it again"
        ) from None


def _read_label_pkl(file: Path) -> tuple[list[str], np.ndarray]:
    content = safe_load_pickle(file)
    if not (isinstance(content, (tuple, list)) and len(content) == 2):
        raise OccbenchError(
            f"{file}: expected a pickled (names, labels) pair as ST-GCN's gendata writes; regenerate it"
        )
    try:
        names, labels = list(content[0]), np.asarray(content[1]).reshape(-1)
    except (TypeError, ValueError):
        raise OccbenchError(f"{file}: the labels are not a flat list of integers; regenerate it") from None
    if len(names) != len(labels):
        raise OccbenchError(f"{file}: {len(names)} names but {len(labels)} labels; regenerate it")
    if not all(isinstance(n, str) and n and not re.search(r"\s", n) for n in names):
        raise OccbenchError(f"{file}: sample names must be non-empty strings without spaces; regenerate it")
    return [n.removesuffix(".skeleton") for n in names], _check_labels(labels, file)


def _check_labels(labels: np.ndarray, file: Path) -> np.ndarray:
    if labels.size and (labels.dtype.kind not in "iu" or labels.min() < 0):
        raise OccbenchError(f"{file}: labels must be non-negative integers (0-based); regenerate it")
    if labels.size and labels.max() > MAX_LABEL:  # 2**63 would turn negative as int64, and pass as a class
        raise OccbenchError(f"{file}: label {labels.max()} is no class of NTU RGB+D; regenerate it")
    return labels.astype(np.int64)


MAX_LABEL = 119  # NTU-120's last class; a benchmark's own count is checked once it is known


def _check_coordinates(dtype: np.dtype, file: Path) -> None:
    """Real floating point or integer coordinates only (bool, complex, dates, text, records are not)."""
    if dtype.kind not in "fiu":
        raise OccbenchError(f"{file}: coordinates of dtype {dtype}; expected real floating point (float32) values")


def _as_float32(raw: np.ndarray, file: Path) -> np.ndarray:
    with np.errstate(over="ignore"):  # found below, and reported as an error
        block = np.asarray(raw, dtype=np.float32)
    overflow = np.isinf(block)
    if overflow.any() and not np.isinf(np.asarray(raw)[overflow].astype(np.float64)).all():
        raise OccbenchError(f"{file}: coordinates beyond float32's range (e.g. 1e39); check how it was written")
    return block


def _check_parts(parts: list) -> None:
    """A sample listed twice in one part, or in both parts of one split (a test-set leak), is an error."""
    by_split: dict = {}
    for part in parts:
        keys = part.keys
        if len(set(keys)) != len(keys):
            seen: set = set()
            twice = next(part.names[i] for i, key in enumerate(keys) if key in seen or seen.add(key))
            raise OccbenchError(f"{part.file}: sample {twice} is listed twice in {part.split}/{part.part}; "
                                "regenerate it")
        by_split.setdefault(part.split, []).append(part)
    for split, both in by_split.items():
        if len(both) == 2:
            train, val = both
            common = set(train.keys) & set(val.keys)
            if common:
                name = train.names[next(i for i, key in enumerate(train.keys) if key in common)]
                raise OccbenchError(f"{train.file}: sample {name} is in both the train and the test part of "
                                    f"{split} ({len(common)} such samples): a test-set leak; regenerate the split")


def _crossclr_part(split: str, folder: Path, part: str) -> _PartSource | None:
    pkl = folder / f"{part}_label.pkl"
    files = [folder / f"{part}_{v}.npy" for v in DATA_VARIANTS]
    files = [f for f in files if f.is_file()]
    if not files and not pkl.is_file():
        return None
    if not files:
        raise OccbenchError(f"{pkl}: no {part}_data.npy or {part}_position.npy beside it; add the data file")
    if not pkl.is_file():
        raise OccbenchError(f"{files[0]}: no {pkl.name} beside it (sample names and labels); add it")
    file = files[0]
    array = _load_npy(file)
    _check_coordinates(array.dtype, file)
    _check_shape(array.shape, file)
    names, labels = _read_label_pkl(pkl)
    if len(array) != len(names):
        raise OccbenchError(
            f"{file}: {len(array)} samples but {pkl.name} lists {len(names)}; "
            "the two files do not belong together, regenerate them"
        )
    variant = file.stem.removeprefix(f"{part}_")
    mask_file = folder / f"{part}_mask.npy"  # written by `occbench data export`
    mask = _load_npy(mask_file) if mask_file.is_file() and variant == "data" else None
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != (*array.shape[:1], *array.shape[2:])):
        raise OccbenchError(f"{mask_file}: bool {(*array.shape[:1], *array.shape[2:])} expected beside {file.name}, "
                            f"found {mask.dtype} {mask.shape}; export the dataset again")
    return _PartSource(
        split, part, file, variant, names, labels, array.shape[2], _memmap_chunks(array, file, mask), keys=names
    )


def _crossclr_parts(path: Path) -> list[_PartSource]:
    folders = _crossclr_split_dirs(path)
    parts = [
        p for split, folder in folders.items() for part in PARTS if (p := _crossclr_part(split, folder, part))
    ]
    if not parts:
        raise OccbenchError(f"{path}: no {{train,val}}_label.pkl with data in it or in xsub/xview/xset")
    return parts


def _memmap_chunks(array: np.ndarray, file: Path, mask: np.ndarray | None = None) -> Callable:
    def chunks(wanted=_read_all) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, len(array), CHUNK):
            if not wanted(start, min(start + CHUNK, len(array))):
                continue  # all its samples came from another split: do not read them
            try:
                block = _as_float32(array[start : start + CHUNK], file)
            except OSError as err:
                raise OccbenchError(f"{file}: read failed ({brief(err)}); check the disk or the file") from None
            yield start, _pad_bodies(block, file), None if mask is None else np.asarray(mask[start : start + CHUNK])

    return chunks


class _NpzArray:
    """One array of an .npz, streamed in row chunks: np.load would read it whole into memory."""

    def __init__(self, file: Path, key: str):
        self.file, self.key = file, key
        with self._open() as stream:
            self.shape, self.dtype = self._header(stream)

    @contextmanager
    def _open(self):
        try:
            with zipfile.ZipFile(self.file) as archive, archive.open(f"{self.key}.npy") as stream:
                yield stream
        except KeyError:
            raise OccbenchError(
                f"{self.file}: no array {self.key!r} (CTR-GCN npz files hold x_train, y_train, x_test, "
                "y_test); regenerate it"
            ) from None
        except UNREADABLE as err:
            raise OccbenchError(f"{self.file}: unreadable or truncated .npz ({brief(err)}); regenerate it") from None

    @staticmethod
    def _header(stream) -> tuple[tuple[int, ...], np.dtype]:
        fmt = np.lib.format
        version = fmt.read_magic(stream)
        shape, fortran, dtype = (
            fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        )(stream)
        if fortran or dtype.hasobject:
            raise ValueError("Fortran-ordered or object arrays cannot be streamed")
        return shape, dtype

    def __len__(self) -> int:
        return self.shape[0] if self.shape else 0

    def chunks(self) -> Iterator[tuple[int, np.ndarray]]:
        row = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        with self._open() as stream:
            self._header(stream)
            for start in range(0, len(self), CHUNK):
                n = min(CHUNK, len(self) - start)
                raw = stream.read(n * row)
                if len(raw) != n * row:
                    raise EOFError(
                        f"{self.key} ends after {start + len(raw) // max(row, 1)} of {len(self)} rows"
                    )
                yield start, np.frombuffer(raw, self.dtype).reshape(n, *self.shape[1:])

    def load(self) -> np.ndarray:
        blocks = [block for _, block in self.chunks()]
        return np.concatenate(blocks) if blocks else np.zeros(self.shape, self.dtype)


def _ctrgcn_block(x: np.ndarray) -> np.ndarray:
    """(n, T, 150) per frame [body1 25×xyz | body2 25×xyz] -> (n, 3, T, 25, 2), body copies removed."""
    n, t = x.shape[:2]
    x = x.reshape(n, t, MAX_BODIES, NUM_JOINTS, 3).transpose(0, 4, 1, 3, 2).astype(np.float32)
    # NTU-120 npz fills the body-2 slot of single-actor samples with a copy of body 1.
    copy = (x[..., 1] == x[..., 0]).all(axis=(1, 2, 3)) & (x[..., 0] != 0).any(axis=(1, 2, 3))
    x[copy, ..., 1] = 0
    return x


def _ctrgcn_origin(x: np.ndarray) -> np.ndarray:
    """(n, T, 25, 2) bool: joint 1 of body 1 in its first present frame, the origin CTR-GCN subtracted."""
    present = (x[..., 0] != 0).any(axis=(1, 3))  # (n, T)
    exempt = np.zeros((x.shape[0], x.shape[2], NUM_JOINTS, MAX_BODIES), bool)
    rows = np.flatnonzero(present.any(axis=1))
    exempt[rows, present[rows].argmax(axis=1), CTRGCN_ORIGIN_JOINT, 0] = True
    return exempt


def _ctrgcn_part(file: Path, split: str, key: str, part: str) -> tuple[_PartSource, str | None]:
    x, y = _NpzArray(file, f"x_{key}"), _NpzArray(file, f"y_{key}")
    _check_coordinates(x.dtype, file)
    if len(x.shape) != 3 or x.shape[2] != MAX_BODIES * NUM_JOINTS * 3:
        raise OccbenchError(f"{file}: x_{key} has shape {x.shape}, expected (N, T, 150); regenerate it")
    if len(y.shape) not in (1, 2) or len(y) != len(x):
        raise OccbenchError(
            f"{file}: y_{key} has shape {y.shape} for {len(x)} samples in x_{key}; regenerate it"
        )
    labels = y.load()
    if labels.ndim == 2:  # one-hot rows, as CTR-GCN writes them; anything else would argmax to a made-up class
        if labels.dtype.kind not in "biuf" or labels.shape[1] == 0:
            raise OccbenchError(f"{file}: y_{key} of dtype {labels.dtype} and shape {labels.shape} is not one-hot "
                                "labels; regenerate it")
        hot = labels == 1
        wrong = np.flatnonzero((hot.sum(axis=1) != 1) | ((labels != 0) & ~hot).any(axis=1))
        if len(wrong):
            raise OccbenchError(f"{file}: row {wrong[0]} of y_{key} is not one-hot ({len(wrong)} such rows); "
                                "regenerate it")
        labels = labels.argmax(axis=1)
    labels = _check_labels(labels, file)
    width = {60: "ntu60", 120: "ntu120"}.get(y.shape[1]) if len(y.shape) == 2 else None

    with zipfile.ZipFile(file) as archive:  # written by `occbench data export`: bool (N, T, 50)
        mask = _NpzArray(file, f"mask_{key}") if f"mask_{key}.npy" in archive.namelist() else None
    if mask is not None and (mask.dtype != np.bool_ or mask.shape != (*x.shape[:2], MAX_BODIES * NUM_JOINTS)):
        raise OccbenchError(f"{file}: mask_{key} of {mask.dtype} {mask.shape} does not fit x_{key}; export it again")

    def chunks(wanted=_read_all) -> Iterator[tuple[int, np.ndarray, np.ndarray | None]]:
        masks = mask.chunks() if mask is not None else None
        for start, block in x.chunks():  # a zip stream is read in order, skipped chunks included
            given = next(masks)[1] if masks is not None else None
            if wanted(start, start + len(block)):
                if given is not None:  # (n, T, 50) in x's joint order -> (n, T, 25, 2)
                    given = given.reshape(len(block), -1, MAX_BODIES, NUM_JOINTS).transpose(0, 1, 3, 2)
                yield start, _ctrgcn_block(_as_float32(block, file)), given

    names = [f"ctrgcn_{split}_{part}_{i:06d}" for i in range(len(x))]
    # An npz names no samples: they are known by content, which deduplicates the files (CS and CV hold
    # the same samples byte for byte) and finds a sample in both parts of a split (a test-set leak).
    keys = [_digest(row) for _, block in x.chunks() for row in block]
    return _PartSource(split, part, file, "npz", names, labels, x.shape[1], chunks, keys=keys), width


def _ctrgcn_parts(path: Path) -> tuple[list[_PartSource], str | None]:
    files = [path] if path.is_file() else sorted(path.glob("*.npz"))
    files = [f for f in files if f.stem in CTRGCN_FILES] or files  # known names win over other npz
    parts, benchmarks = [], set()
    for file in files:
        benchmark, split = CTRGCN_FILES.get(file.stem, (None, file.stem.lower()))
        for key, part in (("train", "train"), ("test", "val")):
            source, width = _ctrgcn_part(file, split, key, part)
            parts.append(source)
            benchmarks |= {benchmark or width} - {None}
    if len(benchmarks) > 1:
        raise OccbenchError(f"{path}: mixes NTU-60 and NTU-120 files; import them separately")
    return parts, next(iter(benchmarks), None)


def _digest(sample: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(sample).tobytes(), digest_size=16).digest()


# --------------------------------------------------------------------------------------------------
# Import


def _infer_benchmark(parts: list[_PartSource], hint: str | None, given: str | None) -> str:
    top = max((int(p.labels.max()) for p in parts if len(p.labels)), default=-1)
    if given is not None:
        benchmark = check_benchmark(given)
    elif hint is not None:
        benchmark = hint
    else:
        setups = [int(m.group(1)) for p in parts for n in p.names[:2000] if (m := _SETUP.match(n))]
        ntu120 = top >= 60 or any(p.split == "xset" for p in parts) or max(setups, default=0) > 17
        benchmark = "ntu120" if ntu120 else "ntu60"
    if top >= BENCHMARKS[benchmark][0]:
        raise OccbenchError(
            f"{parts[0].file}: label {top} does not fit {benchmark} ({BENCHMARKS[benchmark][0]} classes); "
            "pass the right --benchmark or check the labels"
        )
    return benchmark


_SETUP = re.compile(r"S(\d{3})C\d{3}P\d{3}R\d{3}A\d{3}")


def _pool(parts: list[_PartSource]) -> tuple[list[str], np.ndarray]:
    """Deduplicate the samples of all parts into one pool (first occurrence wins); set part.rows."""
    index: dict = {}
    names, labels = [], []
    for part in parts:
        part.rows = np.empty(len(part.keys), np.int64)
        for i, key in enumerate(part.keys):
            if key not in index:
                index[key] = len(names)
                names.append(part.names[i])
                labels.append(part.labels[i])
            elif labels[index[key]] != part.labels[i]:
                raise OccbenchError(
                    f"{part.file}: sample {part.names[i]} has label {part.labels[i]} here but "
                    f"{labels[index[key]]} in another split; the files disagree, regenerate them"
                )
            part.rows[i] = index[key]
    return names, np.asarray(labels, np.int64)


def import_layout(
    path: str | Path,
    out: str | Path,
    benchmark: str | None = None,
    zeros_are_occluded: bool = True,
    overwrite: bool = False,
    progress: bool = False,
) -> SkeletonDataset:
    """Convert a CrosSCLR/ST-GCN folder or CTR-GCN npz at `path` into an occbench dataset at `out`.

    benchmark: 'ntu60' or 'ntu120'; when None it comes from the npz name or one-hot width, else from
    the samples (a label >= 60, an xset split or a setup > 17 means NTU-120).
    zeros_are_occluded: joints at x = y = z = 0 are occluded (the occluded-NTU convention).
    """
    path = Path(path)
    layout = detect_layout(path)
    parts, hint = _ctrgcn_parts(path) if layout == "ctrgcn" else (_crossclr_parts(path), None)
    benchmark = _infer_benchmark(parts, hint, benchmark)
    frames = sorted({p.frames for p in parts})
    if len(frames) > 1:
        raise OccbenchError(f"{path}: its files have different frame counts {frames}; import them one by one")
    _check_parts(parts)
    names, labels = _pool(parts)
    with DatasetWriter(out, len(names), frames[0], overwrite=overwrite) as writer:
        _write_samples(writer, parts, len(names), zeros_are_occluded, progress)
        writer["label"][:] = labels
        writer.names = names
        splits: dict[str, dict[str, list[int]]] = {}
        for part in parts:
            splits.setdefault(part.split, {p: [] for p in PARTS})[part.part] = part.rows.tolist()
        variants = sorted({p.variant for p in parts}, key=(*DATA_VARIANTS, "npz").index)
        source = {
            "layout": layout,
            "path": str(path.resolve()),
            "files": sorted({str(p.file.resolve()) for p in parts}),
        }
        stage = {
            "stage": "import",
            "layout": layout,
            "variant": "+".join(variants),
            "samples": len(names),
            "zeros_are_occluded": zeros_are_occluded,
            "centred": _centring_note(variants),
        }
        meta = {
            "benchmark": benchmark,
            "num_class": BENCHMARKS[benchmark][0],
            "frames": frames[0],
            "source": source,
            "stages": [stage],
        }
        return writer.finish(splits, meta)


def _write_samples(writer: DatasetWriter, parts: list[_PartSource], n: int, zeros: bool, progress: bool):
    from tqdm import tqdm

    written = np.zeros(n, bool)
    with tqdm(total=n, desc="import", unit="sample", disable=not progress, leave=False) as bar:
        for part in parts:

            def wanted(start: int, stop: int, rows=part.rows) -> bool:
                return not written[rows[start:stop]].all()

            for start, block, given in part.chunks(wanted):
                rows = part.rows[start : start + len(block)]
                new = ~written[rows]
                block = block[new]
                if given is not None:
                    given = given[new]
                exempt = part.exempt(block) if given is None else None
                for key, values in _visibility(block, zeros, exempt, given).items():
                    writer[key][rows[new]] = values
                written[rows[new]] = True
                bar.update(int(new.sum()))


def _centring_note(variants: list[str]) -> str | None:
    if "npz" in variants:
        return "by CTR-GCN: joint 1 of body 1 in its first frame subtracted from every frame"
    if "position" in variants:
        return "by CrosSCLR: joint 20 subtracted per frame, resized to 50 frames, rotated about y"
    return None
