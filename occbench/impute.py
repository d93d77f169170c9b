"""Imputation of occluded joints: the imputer contract, the exact fast KNN core, and the imputation-quality
report. The imputers themselves are plugins (the built-in none, interp, meanpose, random and knn: plugins/imputers.py).

The imputer contract (`Imputer`, the one thing an imputer plugin subclasses)
    An imputer fills the occluded joints of one split of an occluded dataset and writes the result as a
    new dataset. The base class does everything but the filling: it checks and resolves the settings
    (`defaults` and `schema`, the rules of ``occbench.settings``, exactly as a method's), copies the
    split's samples (training, then validation) to the output, reuses a complete earlier result of the
    same imputation, and records the provenance stage. A subclass provides only

        def fill(self, job: ImputeJob) -> dict | None

    which reads blocks of rows through the job (`job.read`: data, what is observed, which cells to
    fill) and writes its values (`job.write`, or `job.write_cells` for scattered cells); what it returns
    goes into the provenance stage. Two class attributes and one method say what the grid must do
    around it: `identity = True` for an imputer that leaves the data as it is (the built-in none: the
    planner then pretrains on the occluded data itself, and the quality report measures "leaving the
    zeros" under its name); `stage1_method(settings)` names the method whose stage-1 encoder,
    pretrained on the occluded data, gives the embeddings the job's `embed` computes (None, the
    default: no encoder); `name` is the name it is registered under (recorded in the provenance).

    Called as ``imputer(raw, frames, split, out, settings, seed, embed=None, progress=False,
    overwrite=False)`` by the runner and by `occbench impute`; raw: the occluded raw-length
    (camera-space) dataset, or None to impute `frames`, the occluded preprocessed one, itself.

What is missing, what is a donor value
    A sample's features are its flattened coordinates (3 x T x 25 x 2). Occluded joints (joints of a
    present body, within the true length, that are not visible) are the cells to fill (`Block.target`).
    Padding frames and absent bodies are *not* missing values: they are not filled, and an imputer
    should not take them as donor values (they are not `Block.observed`); the published script
    treated them as present zeros, so that a one-person sample "donated" zeros for the second body and
    a short sample zeros for the frames after its end. An observed joint is never changed: `job.write`
    refuses cells that are not occluded.

Output of one split: a new dataset (DatasetWriter layout) with the split's samples, training then
validation, ``splits.json`` holding that split only, data filled, ``mask`` = visible or imputed, an extra
array ``imputed`` (N, T, 25, 2) bool marking the filled joints, and a stage {"stage": "impute", "imputer",
"split", "settings", "seed", "source", the plugin's statistics, "seconds"} appended to meta["stages"].
Preprocessing to 50 frames is a separate step (``impute_and_preprocess`` runs both).

knn_fill (the per-cluster core of the knn imputer)
    ``knn_fill(x, n_neighbors=5)`` fills the NaN cells of an (n, d) array exactly as scikit-learn's
    ``KNNImputer(n_neighbors, weights="distance", keep_empty_features=True).fit_transform(x)`` does:
    the nan-euclidean distance sqrt(d / present * sum over coordinates present in both of (xi - xj)^2)
    (no shared coordinate: no distance); for a missing cell (row i, column j) the donors are the rows
    that have column j and a distance to i; the ``n_neighbors`` nearest of them (fewer if fewer exist)
    are averaged with weights 1 / distance, except that donors at distance 0, if any, share the weight
    equally and the others get none; a cell without any donor gets the mean of column j over the rows
    that have it, and a column no row has gets 0. ``knn_fill(x, donors=y)`` is ``fit(y).transform(x)``
    (y's rows donate, x's never do), except that scikit-learn also overwrites x's *present* values in a
    column y lacks by 0 and this never changes a present value. ``knn_core`` is the same on torch
    tensors of joint positions (the x, y, z of a joint share one mask).

    How it is fast and still exact: the squared distances of a batch of receivers to all donors are
    matrix products over per-column-centred values and presence masks (centring leaves the distance
    unchanged and keeps the cancellation error of |a|^2 + |b|^2 - 2ab small; float64 throughout;
    a squared distance below 1e-12 of the rows' squared norms is rounding noise and counts as 0);
    each receiver's donors are sorted once by distance; then for all missing cells at once the
    nearest rows are scanned in rank windows (a gather of "has the column" over the window, a cumulative
    sum, the first k that have it), and only the cells that found fewer than k donors go on to the next,
    doubling window. Nothing is approximated: a cell stops only when it has k donors or no ranked row is
    left. torch, so it runs on the GPU when there is one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

import occbench
from occbench import paths
from occbench.data.dataset import ARRAYS, DatasetWriter, Part, SkeletonDataset
from occbench.data.ntu import JOINT_NAMES, MAX_BODIES, NUM_JOINTS
from occbench.errors import OccbenchError
from occbench.settings import check, typed_like

EMBED_DIM = 256  # the random-projection embedding used when no encoder is given
_ZERO = 1e-12  # squared distances below this fraction of the squared norms are rounding noise
_CELL_BUDGET = 1 << 19  # cells x window entries per selection step (bounds the temporaries)
_DIST_BUDGET = 1 << 24  # receivers x donors per distance batch
_CHUNK_BYTES = 1 << 24  # samples read at a time by the passes over a whole split (copy, coverage, ranges)


# ==================================================================================================
# The KNN core


def default_device(device=None) -> torch.device:
    """`device`, or CUDA when there is one (else the CPU)."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _column_centre(values: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """(g, P) mean of the observed donor values per coordinate (0 where none)."""
    count = observed.sum(0).clamp(min=1).to(values.dtype)
    return values.sum(0) / count


def _distances(rv, ro, dv, do, centre, same: bool = False, block: int = 1024) -> torch.Tensor:
    """nan-euclidean distances (nr, nd) between receivers and donors; inf where no shared coordinate.

    rv (nr, g, P) float64 with 0 where not observed, ro (nr, P) bool; dv, do the same for donors
    (`same`: they are the receivers). The g coordinates of one position share its mask. Scale: total /
    present = P / shared positions. Squared distances are |r|^2 over d's positions + |d|^2 over r's
    positions - 2 r.d, summed over position blocks as matrix products of centred values.
    """
    nr, g, p = rv.shape
    nd = dv.shape[0]
    dev = rv.device
    acc = torch.zeros(nr, nd, dtype=torch.float64, device=dev)
    shared = torch.zeros(nr, nd, dtype=torch.float32, device=dev)  # exact: integer sums < 2**24
    norm_r = torch.zeros(nr, dtype=torch.float64, device=dev)
    norm_d = torch.zeros(nd, dtype=torch.float64, device=dev)
    half = torch.zeros(nr, nd, dtype=torch.float64, device=dev) if same else None
    for start in range(0, p, block):
        sl = slice(start, min(p, start + block))
        rm = ro[:, sl]
        r = (rv[:, :, sl] - centre[:, sl]).mul_(rm[:, None])
        r2, rmf, rm32 = r.square().sum(1), rm.to(torch.float64), rm.to(torch.float32)
        if same:  # B = A^T: one product less
            half.addmm_(r2, rmf.T)
            acc.addmm_(r.reshape(nr, -1), r.reshape(nr, -1).T, alpha=-2)
            norm_r += r2.sum(1)
            shared.addmm_(rm32, rm32.T)
            continue
        dm = do[:, sl]
        d = (dv[:, :, sl] - centre[:, sl]).mul_(dm[:, None])
        d2, dmf = d.square().sum(1), dm.to(torch.float64)
        acc.addmm_(r2, dmf.T)
        acc.addmm_(rmf, d2.T)
        acc.addmm_(r.reshape(nr, -1), d.reshape(nd, -1).T, alpha=-2)
        shared.addmm_(rm32, dm.to(torch.float32).T)
        norm_r += r2.sum(1)
        norm_d += d2.sum(1)
    if same:
        acc += half
        acc += half.T
        norm_d = norm_r
    acc.clamp_(min=0)
    acc[acc <= _ZERO * (norm_r[:, None] + norm_d[None, :])] = 0
    shared = shared.to(torch.float64)
    dist = acc.mul_(p).div_(shared.clamp(min=1)).sqrt_()
    return dist.masked_fill_(shared == 0, math.inf)


def _window0(k: int, rate: float, nd: int) -> int:
    """First scan window: about the number of ranked rows in which k have the position."""
    rate = min(max(rate, 1e-3), 1.0)
    return int(min(max(math.ceil(k / rate) + 1, k), max(nd, 1)))


class _Donors:
    """Donor arrays padded with one empty row (index nd) that stands for "no distance"."""

    def __init__(self, dv: torch.Tensor, do: torch.Tensor):
        nd, g, p = dv.shape
        self.nd, self.g, self.p = nd, g, p
        self.has = torch.cat([do, do.new_zeros(1, p)]).reshape(-1)  # ((nd + 1) * P,)
        values = torch.cat([dv, dv.new_zeros(1, g, p)]).permute(0, 2, 1)  # (nd + 1, P, g)
        self.values = values.reshape(-1) if g == 1 else values.reshape(-1, g).contiguous()

    def gather(self, flat: torch.Tensor) -> torch.Tensor:
        """values at flat (donor * P + position) indices, shape flat.shape + (g,)."""
        if self.g == 1:
            return torch.take(self.values, flat)[..., None]
        return self.values.index_select(0, flat.reshape(-1)).reshape(*flat.shape, self.g)


def _select(base, weight, finite, zero_rows, ri, pos, donors: _Donors, k: int, window: int):
    """Weighted KNN values for the cells (ri[i], pos[i]) of one receiver batch.

    base (b, nd): donor row * P of each receiver's donors by increasing distance (nd * P, an empty row,
    where there is no distance); weight (b, nd) 1 / distance in that order (inf at distance 0, 0 for no
    distance); finite (b,) how many donors have a distance; zero_rows: whether any receiver has a
    donor at distance 0 (then the zero-distance rule is applied per cell).
    Returns (values (m, g) float64, donors found (m,)).
    """
    m, g, nd = len(ri), donors.g, base.shape[1]
    dev = base.device
    values = torch.zeros(m, g, dtype=torch.float64, device=dev)
    found = torch.zeros(m, dtype=torch.int32, device=dev)
    idx = torch.arange(m, device=dev)  # output rows of the cells still scanning
    count = torch.zeros(m, dtype=torch.int32, device=dev)
    wsum = torch.zeros(m, dtype=torch.float64, device=dev)
    vsum = torch.zeros(m, g, dtype=torch.float64, device=dev)
    zcount = torch.zeros(m, dtype=torch.int32, device=dev) if zero_rows else None
    zsum = torch.zeros(m, g, dtype=torch.float64, device=dev) if zero_rows else None
    start, step = 0, window
    while True:
        stop = min(nd, start + step)
        flat = base[:, start:stop].index_select(0, ri).add_(pos[:, None])  # (a, w)
        has = torch.take(donors.has, flat)
        running = has.cumsum(1, dtype=torch.int32)
        if start:
            running += count[:, None]
        take = (running <= k).logical_and_(has)
        w = weight[:, start:stop].index_select(0, ri)
        vals = donors.gather(flat)  # (a, w, g)
        if zero_rows:
            zero = take & torch.isinf(w)
            zcount += zero.sum(1, dtype=torch.int32)
            zsum += (vals * zero[..., None]).sum(1)
            w = torch.where(take & ~zero, w, 0.0)
        else:
            w.mul_(take)
        wsum += w.sum(1)
        vsum += vals.mul_(w[..., None]).sum(1)
        count = running[:, -1].clamp_(max=k)
        # a cell is done with k donors or when no ranked donor with a distance is left
        done = (count >= k).logical_or_(finite.index_select(0, ri) <= stop)
        start, step = stop, (step if start == 0 else 2 * step)
        finished = torch.nonzero(done, as_tuple=True)[0]
        if len(finished):
            out = idx.index_select(0, finished)
            found[out] = count.index_select(0, finished)
            v = vsum.index_select(0, finished) / wsum.index_select(0, finished).clamp(min=1e-300)[:, None]
            if zero_rows:
                z = zcount.index_select(0, finished)
                v = torch.where((z > 0)[:, None], zsum.index_select(0, finished) / z.clamp(min=1)[:, None], v)
            values[out] = v
            if len(finished) == len(idx):
                return values, found
            keep = torch.nonzero(~done, as_tuple=True)[0]
            idx, ri, pos, count, wsum, vsum = (t.index_select(0, keep) for t in (idx, ri, pos, count, wsum, vsum))
            if zero_rows:
                zcount, zsum = zcount.index_select(0, keep), zsum.index_select(0, keep)


def knn_core(rv, ro, fill, dv, do, k: int = 5, fallback_mean: bool = True, same: bool = False, itself=None):
    """Fill the `fill` cells of receivers from donors (torch tensors on one device).

    rv (nr, g, P) float64, 0 where not observed; ro (nr, P) bool observed; fill (nr, P) bool cells to
    fill (not observed); dv (nd, g, P), do (nd, P) the donors (`same`: the receivers themselves). The g
    coordinates of one position share its mask (g = 1 for plain columns, 3 for the x, y, z of a joint).
    itself (nr,) int: the donor row that is the receiver itself, or -1 (it never donates to itself:
    it lacks what it needs; excluding it up front keeps its zero distance out of the way).

    Returns (ri, pos, values (m, g), how (m,) int8): the filled cells in row-major order and how each
    was filled: 2 = from its nearest donors, 1 = the donors' mean of that position (no donor that has it
    shares a coordinate with the receiver; scikit-learn's rule), 0 = not filled (no donor has it).
    """
    rv, dv = rv.to(torch.float64), dv.to(torch.float64)
    nd = dv.shape[0]
    dev = rv.device
    ri_all, pos_all = torch.nonzero(fill, as_tuple=True)
    m_all = len(ri_all)
    values = torch.zeros(m_all, rv.shape[1], dtype=torch.float64, device=dev)
    how = torch.zeros(m_all, dtype=torch.int8, device=dev)
    if m_all == 0 or nd == 0:
        return ri_all, pos_all, values, how
    centre = _column_centre(dv, do)
    have = do.sum(0)  # (P,) donors per position
    rate = float(have[pos_all].sum()) / (m_all * nd)
    window = _window0(k, rate, nd)
    donors = _Donors(dv, do)
    per_row = fill.sum(1)
    first_cell = torch.cumsum(per_row, 0) - per_row
    rows = torch.nonzero(per_row, as_tuple=True)[0]
    counts = per_row[rows].tolist()
    max_rows = max(1, _DIST_BUDGET // nd)
    for d0 in range(0, len(rows), max_rows):
        dist_rows = rows[d0 : d0 + max_rows]
        if same and len(dist_rows) == rv.shape[0]:
            dist = _distances(rv, ro, rv, ro, centre, same=True)
            dist.fill_diagonal_(math.inf)  # a receiver lacks what it needs, so it never donates to itself
        else:
            whole = len(dist_rows) == rv.shape[0]  # every receiver has cells: no copy
            dist = _distances(rv if whole else rv[dist_rows], ro if whole else ro[dist_rows], dv, do, centre)
            if itself is not None:
                own = itself[dist_rows]
                mine = own >= 0
                dist[torch.nonzero(mine, as_tuple=True)[0], own[mine]] = math.inf
        sdist, order = torch.sort(dist, dim=1, stable=True)
        del dist
        finite = torch.isfinite(sdist).sum(1)
        base = order.masked_fill_(torch.isinf(sdist), nd).mul_(donors.p)
        weight = sdist.reciprocal_()  # inf at 0, 0 at inf
        zero_row = torch.isinf(weight[:, 0])
        # selection in batches of receivers bounded by the cell budget
        i, n = 0, len(dist_rows)
        while i < n:
            j, cells = i, 0
            while j < n and (j == i or (cells + counts[d0 + j]) * window <= _CELL_BUDGET):
                cells += counts[d0 + j]
                j += 1
            lo = int(first_cell[dist_rows[i]])
            hi = lo + cells
            local = torch.searchsorted(dist_rows[i:j], ri_all[lo:hi])
            val, found = _select(base[i:j], weight[i:j], finite[i:j], bool(zero_row[i:j].any()), local,
                                 pos_all[lo:hi], donors, k, window)
            values[lo:hi] = val
            how[lo:hi] = (found > 0).to(torch.int8) * 2
            i = j
    # no donor at any distance: the mean of the donors that have the position (scikit-learn's rule)
    no_knn = how == 0
    if fallback_mean and bool(no_knn.any()):
        pos = pos_all[no_knn]
        exists = have[pos] > 0
        mean = dv.sum(0).T / have.clamp(min=1)[:, None].to(torch.float64)  # (P, g)
        values[no_knn] = torch.where(exists[:, None], mean[pos], 0.0)
        how[no_knn] = exists.to(torch.int8)
    return ri_all, pos_all, values, how


def knn_fill(x, n_neighbors: int = 5, donors=None, device=None):
    """Fill the NaN cells of `x` (n, d) by distance-weighted KNN over the nan-euclidean distance.

    Returns a filled copy (numpy in, numpy out with x's float dtype; a torch tensor in, a tensor out).
    Same result as ``sklearn.impute.KNNImputer(n_neighbors=n_neighbors, weights="distance",
    keep_empty_features=True).fit_transform(x)`` (up to the order of exactly tied distances); with
    ``donors`` (m, d) it is ``.fit(donors).transform(x)``: only donors' rows donate. A column no donor
    has is filled with 0. Runs on `device` (default: CUDA when available).
    """
    if isinstance(n_neighbors, bool) or not isinstance(n_neighbors, int | np.integer) or n_neighbors < 1:
        raise OccbenchError(f"n_neighbors {n_neighbors!r}: give a whole number >= 1")
    is_tensor = isinstance(x, torch.Tensor)
    dev = default_device(device)
    xt = _as_2d(x, "x").to(dev)
    dt = xt if donors is None else _as_2d(donors, "donors").to(dev)
    if dt.shape[1] != xt.shape[1]:
        raise OccbenchError(f"donors have {dt.shape[1]} columns but x has {xt.shape[1]}")
    if bool(torch.isinf(xt).any()) or (donors is not None and bool(torch.isinf(dt).any())):
        raise OccbenchError("knn_fill: infinite values; mark missing cells with NaN")
    ro = ~torch.isnan(xt)
    do = ro if donors is None else ~torch.isnan(dt)
    rv = xt.nan_to_num(0.0)[:, None]
    dv = rv if donors is None else dt.nan_to_num(0.0)[:, None]
    ri, pos, values, _ = knn_core(rv, ro, ~ro, dv, do, int(n_neighbors), same=donors is None)
    out = rv[:, 0].clone()
    out[ri, pos] = values[:, 0]
    if is_tensor:
        return out.to(device=x.device, dtype=x.dtype if x.is_floating_point() else torch.float64)
    dtype = x.dtype if np.issubdtype(np.asarray(x).dtype, np.floating) else np.float64
    return out.cpu().numpy().astype(dtype, copy=False)


def _as_2d(x, name: str) -> torch.Tensor:
    t = x.detach() if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x, np.float64))
    if t.ndim != 2:
        raise OccbenchError(f"{name}: expected a 2-d (samples, features) array, got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def knn_inputs(block: Block, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`knn_core`'s receivers (or donors) from a block read with data: (values (n, 3, P) float64 with 0
    where not observed, observed (n, P), target (n, P)) on `device`, P = T x 25 x 2 joint positions."""
    n = len(block.data)
    observed = torch.from_numpy(block.observed.reshape(n, -1)).to(device)
    target = torch.from_numpy(block.target.reshape(n, -1)).to(device)
    values = torch.from_numpy(block.data.reshape(n, 3, -1)).to(device, torch.float64)
    return values * observed[:, None], observed, target


# ==================================================================================================
# The imputer contract


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise OccbenchError(f"seed {seed!r}: give a non-negative whole number")
    return int(seed)


def _split_rows(dataset: SkeletonDataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in dataset.splits:
        raise OccbenchError(f"{dataset.path}: no split {split!r}; it has {', '.join(dataset.splits) or 'none'}")
    parts = dataset.splits[split]
    return np.asarray(parts.get("train", []), np.int64), np.asarray(parts.get("val", []), np.int64)


def _visibility(mask: np.ndarray, present: np.ndarray, length: np.ndarray, start: int = 0):
    """(observed, target), both (n, T, 25, 2): visible joints of present bodies within the true length,
    and occluded ones (the cells to fill). Padding frames and absent bodies are neither. `start`: the
    frame the arrays begin at (a window of frames)."""
    frames = np.arange(start, start + mask.shape[1])
    body = np.asarray(present, bool) & (frames < np.asarray(length)[:, None])[:, :, None]
    mask = np.asarray(mask, bool)
    return mask & body[:, :, None, :], body[:, :, None, :] & ~mask


@dataclass(frozen=True)
class Block:
    """Rows of a split as `ImputeJob.read` gives them, in memory.

    rows: which of the job's rows; data (n, 3, T, 25, 2) float32, 0 where not visible (None when read
    without data); observed (n, T, 25, 2): the visible joints of present bodies within the true length,
    the only values an imputer may take as donors; target (n, T, 25, 2): the occluded joints, the cells
    to fill. T: the dataset's frames, or those of the window read.
    """

    rows: np.ndarray
    data: np.ndarray | None
    observed: np.ndarray
    target: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


class ImputeJob:
    """One split to fill: what `Imputer.fill` reads, and where it writes.

    The job's rows are the output's: 0 .. n_train - 1 are the split's training samples, the others its
    validation samples (which the protocols evaluate on: they must never donate values to any other
    sample). `rows`, `chunks`, `read`, `write` and `embeddings` take these rows.

    source: the occluded dataset being imputed (raw-length camera space, or preprocessed data imputed as
    it is); frames: the preprocessed occluded dataset whose samples `embed` takes (`source` itself when
    that is preprocessed); split; train, val: the pool positions in `source` of the split's training and
    validation samples, and samples, both in row order (row i is sample samples[i] of source);
    settings: the imputer's resolved settings; seed; embed: ``embed(part) -> (len(part), D)`` embeddings
    of an ``occbench.data.dataset.Part`` of `frames` (the stage-1 encoder of `Imputer.stage1_method`),
    or None; progress: whether to show a progress bar.
    """

    def __init__(self, imputer: str, source: SkeletonDataset, frames: SkeletonDataset, split: str, settings: dict,
                 seed: int, embed: Callable | None, progress: bool, writer: DatasetWriter):
        self.imputer = imputer
        self.source, self.frames, self.split = source, frames, split
        self.train, self.val = _split_rows(source, split)
        self.samples = np.concatenate([self.train, self.val])
        self.settings, self.seed, self.embed, self.progress = settings, seed, embed, progress
        self._writer = writer

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def n_train(self) -> int:
        return len(self.train)

    def rows(self, part: str = "all") -> np.ndarray:
        """The rows of "train", "val" or "all"."""
        bounds = {"train": (0, self.n_train), "val": (self.n_train, len(self)), "all": (0, len(self))}
        if part not in bounds:
            raise OccbenchError(f"part {part!r}: use train, val or all")
        return np.arange(*bounds[part])

    def chunks(self, part: str = "all", masks_only: bool = False) -> Iterator[np.ndarray]:
        """The rows of `part` in consecutive chunks of about 16 MB of data, so that a pass over the split
        never holds it whole (masks_only: four times as many rows, for reads without data)."""
        rows = self.rows(part)
        step = _chunk_rows(self.source) * (4 if masks_only else 1)
        for start in range(0, len(rows), step):
            yield rows[start : start + step]

    def frame_windows(self) -> Iterator[slice]:
        """Consecutive windows of frames, each as long as the masks of every row over it keep to about
        8 MB: for passes over all rows at once, window by window (`read(rows, window, data=False)`)."""
        frames = self.source.frames
        step = max(1, (_CHUNK_BYTES // 2) // max(1, len(self) * NUM_JOINTS * MAX_BODIES))
        for start in range(0, frames, step):
            yield slice(start, min(frames, start + step))

    def read(self, rows, window: slice | None = None, data: bool = True) -> Block:
        """The `rows` (an array of the job's rows) of the occluded source: all frames, or a `window` of
        them; without `data`, the masks only."""
        rows = np.asarray(rows, np.int64)
        samples = self.samples[rows]
        start, stop, _ = (window or slice(None)).indices(self.source.frames)
        frames = slice(start, stop)
        mask, present = self.source.mask[samples, frames], self.source.present[samples, frames]
        observed, target = _visibility(mask, present, self.source.length[samples], start)
        values = np.asarray(self.source.data[samples, :, frames], np.float32) if data else None
        return Block(rows, values, observed, target)

    def write(self, rows, data: np.ndarray, filled: np.ndarray) -> None:
        """Fill the `filled` cells (n, T, 25, 2) of the distinct `rows` with `data`'s values there (n, 3,
        T, 25, 2); they become visible in `mask` and marked in `imputed`. Every other cell keeps its
        value. Only occluded joints may be filled (a block's target)."""
        rows, filled = np.asarray(rows, np.int64), np.asarray(filled, bool)
        shape = (len(rows), self.source.frames, NUM_JOINTS, MAX_BODIES)
        if filled.shape != shape or np.shape(data) != (shape[0], 3, *shape[1:]):
            raise OccbenchError(f"imputer {self.imputer}: write got data {np.shape(data)} and filled {filled.shape} "
                                f"for {len(rows)} rows; expected {(shape[0], 3, *shape[1:])} and {shape}")
        samples = self.samples[rows]
        _, target = _visibility(self.source.mask[samples], self.source.present[samples], self.source.length[samples])
        self._check(filled & ~target, np.moveaxis(np.asarray(data), 1, -1)[filled])
        if not (np.diff(rows) > 0).all():  # memory maps write fastest in order (a copy only when needed)
            order = np.argsort(rows)
            rows, data, filled = rows[order], np.asarray(data)[order], filled[order]
        writer = self._writer
        values = np.asarray(writer["data"][rows])
        np.copyto(values, data, where=filled[:, None])
        writer["data"][rows] = values
        writer["imputed"][rows] = np.asarray(writer["imputed"][rows]) | filled
        writer["mask"][rows] = np.asarray(writer["mask"][rows]) | filled

    def write_cells(self, rows, frames, joints, bodies, values: np.ndarray) -> None:
        """Fill single cells: cell i is joint joints[i] of body bodies[i] at frame frames[i] of row
        rows[i], values[i] its x, y, z ((k, 3)). For fills that touch few cells of many rows (`write`
        reads and writes whole rows)."""
        rows, frames, joints, bodies = (np.asarray(a, np.int64) for a in (rows, frames, joints, bodies))
        values = np.asarray(values, np.float32)
        if not len(rows) == len(frames) == len(joints) == len(bodies) == len(values) or values.shape[1:] != (3,):
            raise OccbenchError(f"imputer {self.imputer}: write_cells got {len(rows)} rows, {len(frames)} frames, "
                                f"{len(joints)} joints, {len(bodies)} bodies and values {values.shape}; expected "
                                f"as many of each and values (k, 3)")
        samples = self.samples[rows]
        source = self.source
        occluded = (~source.mask[samples, frames, joints, bodies] & source.present[samples, frames, bodies]
                    & (frames < source.length[samples]))
        self._check(~occluded, values)
        order = np.argsort(rows, kind="stable")
        rows, frames, joints, bodies, values = (a[order] for a in (rows, frames, joints, bodies, values))
        self._writer["data"][rows, :, frames, joints, bodies] = values
        self._writer["imputed"][rows, frames, joints, bodies] = True
        self._writer["mask"][rows, frames, joints, bodies] = True

    def _check(self, not_occluded: np.ndarray, values: np.ndarray) -> None:
        """Refuse a fill of cells that are not occluded (it would change an observed joint, or put a joint
        in a padding frame or an absent body) or of values that are not finite numbers."""
        wrong = int(not_occluded.sum())
        if wrong:
            raise OccbenchError(f"imputer {self.imputer}: wrote {wrong} cells that are not occluded joints (visible "
                                "joints, padding frames or absent bodies); fill only a block's target")
        if not np.isfinite(values).all():
            raise OccbenchError(f"imputer {self.imputer}: wrote values that are not finite numbers (nan or inf)")

    def embeddings(self, rows, embed: Callable) -> np.ndarray:
        """(len(rows), D) float32: embed(Part) of the same samples of `frames`, a chunk at a time."""
        return _embed_rows(embed, self.frames, self.source, self.samples[np.asarray(rows, np.int64)])


_PROVENANCE = ("stage", "occbench", "imputer", "split", "settings", "seed", "source", "seconds")


class Imputer:
    """Base of every imputer (the contract: this module's doc). A plugin subclasses it, sets `name` (and
    `defaults`, `schema` if it has settings), implements `fill`, and registers an instance:
    ``registry.add(name, MyImputer())``.

    defaults: its settings and their values; schema: their types and ranges (``occbench.settings``
    rules; a setting left out is typed like its default), checked when a grid is planned, so that a
    misspelt or ill-typed setting fails before anything runs. identity: it leaves the data as it is
    (`fill` is never called, nothing is written). `stage1_method(settings)`: the method whose stage-1
    encoder the job's `embed` is (None: no encoder).
    """

    name: ClassVar[str] = ""
    defaults: ClassVar[dict] = {}
    schema: ClassVar[dict] = {}
    identity: ClassVar[bool] = False
    # How tables name it (each record carries these, as it does a method's): its title, the paper it comes
    # from, and its place in a table (ascending; ties by title; the built-ins: 10 to 30).
    title: ClassVar[str] = ""
    citation: ClassVar[str] = ""
    order: ClassVar[float] = 1000

    def fill(self, job: ImputeJob) -> dict | None:
        """Fill the occluded joints of the job's rows (`job.read`, then `job.write`); returns statistics
        for the provenance stage (JSON-able values), or None."""
        raise NotImplementedError(f"{type(self).__name__}.fill: an imputer fills the job's occluded joints")

    def stage1_method(self, settings: dict) -> str | None:
        """The method whose stage-1 encoder, pretrained on the occluded data, gives `job.embed`; None: no
        encoder (`job.embed` is None). settings: the grid's, not resolved."""
        return None

    @classmethod
    def settings_schema(cls) -> dict:
        return typed_like(cls.defaults, cls.schema)

    def check_settings(self, settings: dict, where: str | None = None) -> None:
        """A one-line OccbenchError for a setting the imputer does not have (suggesting the close name),
        or whose value its schema does not allow; `where`: the settings' dotted key."""
        check(self.settings_schema(), settings, where or f"imputers.{self.name}")

    def resolve(self, settings: dict | None = None, where: str | None = None) -> dict:
        """The settings checked, over the defaults."""
        settings = {} if settings is None else settings
        self.check_settings(settings, where)
        return {**self.defaults, **settings}

    def __call__(self, raw: SkeletonDataset | None, frames: SkeletonDataset | None, split: str, out: str | Path,
                 settings: dict | None = None, seed: int = 0, embed: Callable | None = None, progress: bool = False,
                 overwrite: bool = False) -> SkeletonDataset:
        """Impute one split of `raw` (or, without it, of `frames`) into a new dataset at `out`, and return it;
        an identity imputer returns its input as it is. A complete dataset at `out` made by the same
        imputation (imputer, settings, seed, split and source) is returned as it is unless `overwrite`;
        any other is an error unless `overwrite`."""
        settings = self.resolve(settings)
        seed = _check_seed(seed)
        source = raw if raw is not None else frames
        if source is None:
            raise OccbenchError("give the occluded raw-length dataset, the preprocessed one, or both")
        if self.identity:
            return source
        train, val = _split_rows(source, split)
        out = Path(out)
        stage = {"stage": "impute", "occbench": occbench.__version__, "imputer": self.name or type(self).__name__,
                 "split": split, "settings": _jsonable(settings), "seed": seed, "source": str(source.path.resolve())}
        earlier = None if overwrite else _earlier_result(out, stage)
        if earlier is not None:
            return earlier
        started = time.time()
        with _start_output(source, len(train) + len(val), out, overwrite) as writer:
            _copy_split(source, writer, np.concatenate([train, val]))
            job = ImputeJob(stage["imputer"], source, source if frames is None else frames, split, settings, seed,
                            embed, progress, writer)
            stage |= self._statistics(self.fill(job))
            stage["seconds"] = round(time.time() - started, 1)
            return _finish_output(writer, source, split, len(train), stage)

    def _statistics(self, stats) -> dict:
        if stats is None:
            return {}
        if not isinstance(stats, dict):
            raise OccbenchError(f"imputer {self.name}: fill returned a {type(stats).__name__}; return a dict of "
                                "statistics for the provenance, or None")
        taken = [key for key in stats if key in _PROVENANCE]
        if taken:
            raise OccbenchError(f"imputer {self.name}: fill's statistics {', '.join(taken)} would replace the "
                                "provenance's own; name them otherwise")
        return _jsonable(stats)

    def __repr__(self) -> str:
        return f"<imputer {self.name or type(self).__name__}>"


def registered_imputer(registry, name: str) -> Imputer:
    """The imputer registered as `name` (unknown: the registry's error); one that is not an `Imputer` is a
    one-line error naming its plugin."""
    component = registry[name]
    if isinstance(component, Imputer):
        return component
    owner = registry.owner(name)
    if isinstance(component, type) and issubclass(component, Imputer):
        hint = f"register an instance: registry.add({name!r}, {component.__name__}())"
    else:
        hint = "subclass occbench.impute.Imputer (docs/plugins.md)"
    raise OccbenchError(f"imputer {name!r} of plugin {owner.name} ({owner.distribution}) is "
                        f"{component!r}, not an occbench.impute.Imputer; {hint}")


def identity_imputer(registry, prefer=()) -> str | None:
    """The name of an imputer that leaves the data as it is (`Imputer.identity`): the first of `prefer` (a
    grid's imputers) that is one, else the registry's first; None when none is installed."""
    for name in [*prefer, *registry.names()]:
        if name in registry and isinstance(registry[name], Imputer) and registry[name].identity:
            return name
    return None


def _chunk_rows(source: SkeletonDataset) -> int:
    return max(1, _CHUNK_BYTES // (source.data[0].nbytes if len(source) else 1))


def _earlier_result(out: Path, stage: dict) -> SkeletonDataset | None:
    """The dataset at `out` if it is complete and its last stage is `stage` (but for its statistics)."""
    if not (out / "meta.json").is_file():
        return None
    try:
        earlier = SkeletonDataset(out)
    except OccbenchError:
        return None
    last = (earlier.meta.get("stages") or [{}])[-1]
    same = all(last.get(key) == value for key, value in stage.items() if key != "occbench")
    return earlier if same else None


def _start_output(source: SkeletonDataset, n: int, out: Path, overwrite: bool) -> DatasetWriter:
    """A DatasetWriter for n samples of the source, with its extra arrays and `imputed`."""
    extra = {"imputed": (np.bool_, (source.frames, NUM_JOINTS, MAX_BODIES))}
    for name, array in source.extra.items():
        if name != "imputed":
            extra[name] = (array.dtype, array.shape[1:])
    return DatasetWriter(out, n, source.frames, overwrite=overwrite, extra=extra)


def _copy_split(source: SkeletonDataset, writer: DatasetWriter, samples: np.ndarray) -> None:
    """Copy the split's samples into the writer, chunk by chunk; the fills then overwrite some joints."""
    chunk = _chunk_rows(source)
    for start in range(0, len(samples), chunk):
        pick = samples[start : start + chunk]
        dest = slice(start, start + len(pick))
        for name in ARRAYS:
            writer[name][dest] = getattr(source, name)[pick]
        for name in source.extra:
            if name != "imputed":
                writer[name][dest] = source.extra[name][pick]
        if "imputed" in source.extra:  # imputing an imputed dataset: keep what was filled before
            writer["imputed"][dest] = source.extra["imputed"][pick]
    writer.names = [source.names[i] for i in samples]


def _finish_output(writer: DatasetWriter, source: SkeletonDataset, split: str, n_train: int, stage: dict):
    n = writer.n
    splits = {split: {"train": list(range(n_train)), "val": list(range(n_train, n))}}
    meta = dict(source.meta)
    meta["stages"] = [*source.meta.get("stages", []), stage]
    return writer.finish(splits, meta)


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ==================================================================================================
# Embeddings


def projection_embed(seed: int = 0, dim: int = EMBED_DIM, preprocess_frames: int | None = 50) -> Callable:
    """The embedding used when no encoder is given: embed(part) -> a seeded Gaussian random projection
    (dim) of the part's coordinates (occluded joints 0), first put through the mask-aware preprocessing
    to `preprocess_frames` frames unless None (data already preprocessed). Not the paper's (which uses
    the stage-1 encoder): it keeps `occbench impute` usable on its own and roughly preserves distances."""
    from occbench.data.preprocess import preprocess_arrays

    matrices: dict[int, np.ndarray] = {}

    def embed(part: Part) -> np.ndarray:
        data = part.data
        if preprocess_frames is not None:
            data = preprocess_arrays(data, part.mask, part.present, part.length, preprocess_frames)[0]
        flat = np.asarray(data, np.float32).reshape(len(data), -1)
        if flat.shape[1] not in matrices:
            gen = np.random.default_rng([seed, 0x5EED])
            matrices[flat.shape[1]] = (gen.standard_normal((flat.shape[1], dim)) / math.sqrt(dim)).astype(np.float32)
        return flat @ matrices[flat.shape[1]]

    return embed


def is_preprocessed(dataset: SkeletonDataset) -> bool:
    """Whether the dataset went through the preprocessing (relative coordinates, resized): `frames` of a job
    imputing preprocessed data is its source itself."""
    return any(stage.get("stage") == "preprocess" for stage in dataset.meta.get("stages", []))


def _embed_rows(embed: Callable, frames: SkeletonDataset, source: SkeletonDataset, rows: np.ndarray) -> np.ndarray:
    """Embeddings of the source's `rows`: embed(Part) on the same samples of `frames` (matched by name),
    a chunk of samples at a time so that the split is never loaded whole."""
    if frames is source or frames.names == source.names:
        index = np.asarray(rows, np.int64)
    else:
        position = {name: i for i, name in enumerate(frames.names)}
        try:
            index = np.array([position[source.names[i]] for i in rows], np.int64)
        except KeyError as err:
            raise OccbenchError(f"{frames.path}: has no sample {err.args[0]} of {source.path}") from None
    chunk = 4 * _chunk_rows(frames)
    out = []
    for start in range(0, len(index), chunk):
        pick = index[start : start + chunk]
        part = Part(data=np.asarray(frames.data[pick]), mask=np.asarray(frames.mask[pick]),
                    present=np.asarray(frames.present[pick]), length=np.asarray(frames.length[pick]),
                    label=np.asarray(frames.label[pick]), names=[frames.names[i] for i in pick], index=pick)
        emb = np.asarray(embed(part), np.float32)
        if emb.ndim != 2 or len(emb) != len(pick):
            raise OccbenchError(f"embed returned shape {emb.shape} for {len(pick)} samples; expected ({len(pick)}, D)")
        out.append(emb)
    return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


# ==================================================================================================
# Imputing and preprocessing


@dataclass(frozen=True)
class Imputed:
    """What `impute_and_preprocess` returns: `data` imputed at the resolution it was given (raw-length
    camera space normally; the quality report compares it with the ground truth) and `frames`, the
    model-ready preprocessed data the methods pretrain on. For an identity imputer both are the inputs
    themselves."""

    data: SkeletonDataset
    frames: SkeletonDataset


def impute_and_preprocess(
    imputer: Imputer, raw: SkeletonDataset | None, frames: SkeletonDataset | None, split: str, out: str | Path,
    settings: dict | None = None, seed: int = 0, embed: Callable | None = None, progress: bool = False,
    overwrite: bool = False, preprocess_frames: int | None = None,
) -> Imputed:
    """Impute one split, then re-run the preprocessing with the pipeline `frames` was made with (mask-aware
    when there is no `frames` or it says none).

    raw: the occluded raw-length (camera-space) dataset, imputed into `out/imputed`, then preprocessed to
    `preprocess_frames` frames (default: frames.frames, or 50) into `out/frames`. Without raw, `frames`
    itself (50-frame relative data) is imputed into `out/imputed` and used as is (the preprocessing is
    re-run only if preprocess_frames is given). An identity imputer writes nothing: Imputed(raw, frames).
    A complete earlier result of the same imputation is reused unless `overwrite` (`Imputer.__call__`).
    """
    from occbench.data.preprocess import DEFAULT_PIPELINE, pipeline_of, preprocess

    if raw is None and frames is None:
        raise OccbenchError("give the occluded raw-length dataset, the 50-frame dataset, or both")
    if imputer.identity:
        imputer.resolve(settings)
        return Imputed(raw if raw is not None else frames, frames if frames is not None else raw)
    where = paths.impute_outputs(Path(out))
    imputed = imputer(raw, frames, split, where["imputed"], settings, seed, embed, progress, overwrite)
    if preprocess_frames is None:
        if raw is None:
            return Imputed(imputed, imputed)
        preprocess_frames = frames.frames if frames is not None else 50
    pipeline = (pipeline_of(frames) if frames is not None else None) or DEFAULT_PIPELINE
    done = where["frames"]
    if not overwrite and (done / "meta.json").is_file():
        cached = SkeletonDataset(done)
        stages = cached.meta.get("stages", [])
        if (len(stages) >= 2 and stages[-2] == imputed.meta["stages"][-1] and cached.frames == preprocess_frames
                and pipeline_of(cached) == pipeline):
            return Imputed(imputed, cached)
    return Imputed(imputed, preprocess(imputed, done, frames=preprocess_frames, overwrite=True, progress=progress,
                                       pipeline=pipeline))


# ==================================================================================================
# Imputation quality against the ground truth


def ground_truth(dataset: SkeletonDataset) -> tuple[SkeletonDataset, SkeletonDataset] | None:
    """(occluded, truth) for an occluded or imputed dataset, from its stages; None without a clean source
    or when a stage other than imputation (e.g. preprocess) came after the occlusion.

    occluded: the source of the last impute stage (or the dataset itself); truth: the source of the
    occlude stage (the clean dataset occbench occluded; synthetic or prepared NTU).
    """
    stages = dataset.meta.get("stages", [])
    impute = [s for s in stages if s.get("stage") == "impute"]
    occlude = [s for s in stages if s.get("stage") == "occlude"]
    if not occlude:
        return None
    last = max(i for i, s in enumerate(stages) if s.get("stage") == "occlude")
    if any(s.get("stage") != "impute" for s in stages[last + 1 :]):
        return None  # preprocessed (or otherwise changed) after occlusion: not comparable with the source
    try:
        occluded = SkeletonDataset(impute[-1]["source"]) if impute else dataset
        truth = SkeletonDataset(occlude[-1]["source"])
    except OccbenchError:
        return None
    return occluded, truth


def imputation_error(
    dataset: SkeletonDataset, split: str | None = None, occluded: SkeletonDataset | None = None,
    truth: SkeletonDataset | None = None, chunk: int = 256,
) -> pd.DataFrame:
    """MPJPE on the occluded joints: mean Euclidean distance (in the data's units, metres for NTU camera
    space) between `dataset`'s positions and the true ones, over the joints that are occluded in
    `occluded` and visible in `truth` (present bodies, within the true length).

    For an identity imputer (the built-in none) pass the occluded dataset itself: its occluded joints are
    0, so its error is that of leaving zeros. occluded and truth default to `ground_truth(dataset)`;
    samples are matched by name. Returns a long table: part (train/val/all), joint (name, then "all"),
    mpjpe, count (joints).
    """
    if occluded is None or truth is None:
        found = ground_truth(dataset)
        if found is None:
            raise OccbenchError(
                f"{dataset.path}: no ground truth: not occluded by occbench from a clean dataset, or preprocessed "
                "after the occlusion (compare the raw-length occluded or imputed data)"
            )
        occluded, truth = occluded or found[0], truth or found[1]
    if dataset.frames != truth.frames:
        raise OccbenchError(
            f"{dataset.path} has {dataset.frames} frames but its ground truth {truth.path} has {truth.frames}: "
            "compare the raw-length imputation (before preprocessing)"
        )
    if split is None:
        if len(dataset.splits) != 1:
            raise OccbenchError(f"{dataset.path}: name the split to evaluate: {', '.join(dataset.splits)}")
        split = next(iter(dataset.splits))
    train, val = _split_rows(dataset, split)
    occ_pos = {name: i for i, name in enumerate(occluded.names)}
    truth_pos = {name: i for i, name in enumerate(truth.names)}
    rows = []
    total_sum, total_count = np.zeros(NUM_JOINTS), np.zeros(NUM_JOINTS)
    for part, index in (("train", train), ("val", val)):
        err_sum, count = np.zeros(NUM_JOINTS), np.zeros(NUM_JOINTS)
        for start in range(0, len(index), chunk):
            pick = index[start : start + chunk]
            names = [dataset.names[i] for i in pick]
            try:
                o_rows = np.array([occ_pos[n] for n in names], np.int64)
                t_rows = np.array([truth_pos[n] for n in names], np.int64)
            except KeyError as err:
                missing = err.args[0]
                raise OccbenchError(f"sample {missing} of {dataset.path} is missing from the ground truth") from None
            _, hidden = _visibility(occluded.mask[o_rows], occluded.present[o_rows], occluded.length[o_rows])
            seen, _ = _visibility(truth.mask[t_rows], truth.present[t_rows], truth.length[t_rows])
            hidden &= seen  # (n, T, 25, 2)
            diff = np.asarray(dataset.data[pick], np.float64) - np.asarray(truth.data[t_rows], np.float64)
            dist = np.sqrt((diff**2).sum(1))  # (n, T, 25, 2)
            err_sum += np.where(hidden, dist, 0).sum(axis=(0, 1, 3))
            count += hidden.sum(axis=(0, 1, 3))
        total_sum += err_sum
        total_count += count
        rows += _error_rows(part, err_sum, count)
    rows += _error_rows("all", total_sum, total_count)
    return pd.DataFrame(rows, columns=["part", "joint", "mpjpe", "count"])


def _error_rows(part: str, err_sum: np.ndarray, count: np.ndarray) -> list:
    def mean(s, c):
        return float(s / c) if c else float("nan")

    rows = [(part, JOINT_NAMES[j], mean(err_sum[j], count[j]), int(count[j])) for j in range(NUM_JOINTS)]
    return rows + [(part, "all", mean(err_sum.sum(), count.sum()), int(count.sum()))]


def error_table(errors: dict[str, pd.DataFrame], part: str = "val") -> pd.DataFrame:
    """MPJPE per joint (rows, "all" last) and imputer (columns) for one part, plus the joint count."""
    columns = {name: df[df["part"] == part].set_index("joint")["mpjpe"] for name, df in errors.items()}
    table = pd.DataFrame(columns)
    first = next(iter(errors.values()))
    table["occluded joints"] = first[first["part"] == part].set_index("joint")["count"]
    table.index.name = "joint"
    return table


def quality_record(errors: pd.DataFrame) -> dict:
    """A JSON-able summary of one imputation_error table, for the results store."""
    record = {"mpjpe": {}, "count": {}, "per_joint": {}}
    for part, df in errors.groupby("part", sort=False):
        overall = df[df["joint"] == "all"].iloc[0]
        record["mpjpe"][part] = None if math.isnan(overall["mpjpe"]) else float(overall["mpjpe"])
        record["count"][part] = int(overall["count"])
        record["per_joint"][part] = {
            row.joint: None if math.isnan(row.mpjpe) else float(row.mpjpe)
            for row in df.itertuples() if row.joint != "all"
        }
    return record


def error_plot(errors: dict[str, pd.DataFrame], out_png: str | Path, part: str = "val", units: str = "m") -> Path:
    """Grouped bar chart of the MPJPE per joint (and overall) of each imputer."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = error_table(errors, part).drop(columns="occluded joints")
    fig, ax = plt.subplots(figsize=(13, 4.5))
    width = 0.8 / max(1, table.shape[1])
    x = np.arange(len(table))
    for i, name in enumerate(table.columns):
        ax.bar(x + (i - (table.shape[1] - 1) / 2) * width, table[name].to_numpy(), width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(table.index, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"MPJPE on occluded joints ({units})")
    ax.set_title(f"Imputation error per joint ({part})")
    ax.legend()
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png

def impute_command(
    imputer: str, data: str | Path, out: str | Path, split: str | None = None, frames: str | Path | None = None,
    seed: int = 0, settings: dict | None = None, compare: tuple[str, ...] | None = None,
    overwrite: bool = False, progress: bool = False, disabled_plugins: tuple[str, ...] = (),
) -> dict:
    """`occbench impute`: run one registered imputer on its own and report its quality.

    data: the occluded dataset to impute: raw-length camera space (imputed, then preprocessed to the
    frame count of `frames`, default 50) or already preprocessed 50-frame data (imputed as is). frames:
    the preprocessed dataset an encoder-using imputer embeds (default: data, preprocessed on the fly).
    For each split (default: all): out/SPLIT/NAME/imputed and, for raw-length data,
    out/SPLIT/NAME/frames. When the data has a ground truth at its own frame count, the error on the
    occluded joints of `imputer` and of the `compare` imputers (default: the registry's identity
    imputer, i.e. leaving the zeros) goes to out/quality.csv, out/quality.md and out/quality_SPLIT.png.
    No stage-1 encoder is given here: knn clusters a random projection of the preprocessed coordinates
    (see projection_embed). Returns {"outputs": {split: {"data", "frames"}}, "quality": {split: {imputer:
    quality_record}}, "report": the markdown tables or None}.
    """
    from occbench.data.preprocess import preprocess
    from occbench.plugins import load_plugins

    host = load_plugins(disabled_plugins)
    chosen = registered_imputer(host.imputers, imputer)
    chosen.check_settings(settings or {})  # an unknown name or setting fails before any work
    if compare is None:
        compare = tuple(filter(None, [identity_imputer(host.imputers)]))
    imputers = {name: registered_imputer(host.imputers, name) for name in dict.fromkeys([imputer, *compare])}
    source = SkeletonDataset(data)
    frames_ds = SkeletonDataset(frames) if frames is not None else None
    splits = [split] if split else list(source.splits)
    relative = is_preprocessed(source)
    raw_arg, frames_arg = (None, source) if relative else (source, frames_ds)
    found = ground_truth(source)
    has_truth = found is not None and found[1].frames == source.frames
    names = [imputer, *[c for c in compare if c != imputer]] if has_truth else [imputer]
    out = Path(out)
    result: dict = {"outputs": {}, "quality": {}, "report": None}
    tables = []
    for s in splits:
        made = {}
        for name in names:
            imputed_at = paths.impute_outputs(out, s, name)["imputed"]
            made[name] = imputers[name](raw_arg, frames_arg, s, imputed_at, settings if name == imputer else None,
                                        seed, embed=None, progress=progress, overwrite=overwrite)
        ready = made[imputer]
        if not relative and ready is not source:
            target = frames_ds.frames if frames_ds is not None else 50
            ready = preprocess(made[imputer], paths.impute_outputs(out, s, imputer)["frames"], frames=target,
                               overwrite=True, progress=progress)
        result["outputs"][s] = {"data": str(made[imputer].path), "frames": str(ready.path)}
        if not has_truth:
            continue
        errors = {name: imputation_error(ds, s, *found) for name, ds in made.items()}
        result["quality"][s] = {name: quality_record(df) for name, df in errors.items()}
        error_plot(errors, paths.impute_outputs(out, s, imputer)["plot"])
        tables += [df.assign(split=s, imputer=name) for name, df in errors.items()]
    if tables:
        long = pd.concat(tables, ignore_index=True)[["split", "imputer", "part", "joint", "mpjpe", "count"]]
        long.to_csv(paths.impute_outputs(out)["csv"], index=False)
        lines = []
        for s in splits:
            for part in ("train", "val"):
                sub = {n: long[(long.split == s) & (long.imputer == n)].drop(columns=["split", "imputer"])
                       for n in names}
                table = error_table(sub, part)
                table["occluded joints"] = table["occluded joints"].astype(int).astype(str)
                lines += [f"## {s} / {part}: MPJPE on occluded joints (data units)", "",
                          table.to_markdown(floatfmt=".4f"), ""]
        result["report"] = "\n".join(lines)
        paths.impute_outputs(out)["table"].write_text(result["report"])
    return result
