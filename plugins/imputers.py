"""The built-in imputers, on the imputer contract (``occbench.impute.Imputer``): none, the two simple
baselines interp and meanpose, random and the cluster-agnostic KNN imputer.

none
    The occluded data as it is (an identity imputer): occluded joints stay 0 and not visible in the
    mask; nothing is copied.

interp (temporal interpolation; a baseline the paper omitted)
    Each occluded joint of a body, at frame t, linearly interpolated between that joint's nearest
    visible frames before and after t in the same sample and body slot; before its first visible frame
    it takes that frame's position, after its last visible frame that one's (held at the ends). Only
    frames where the body is present within the true length are filled or read (padding frames and
    absent bodies are neither), and the frame index is the time axis (an absent stretch in between
    counts as time that passed). A joint never visible in the sample's body has nothing to interpolate
    and stays occluded (not filled). Each sample uses its own frames only, so training and validation
    samples are filled alike and never from each other. No settings; deterministic.

meanpose (the training set's mean pose after centring; a baseline the paper omitted)
    One pose, 25 joint offsets from a centre, pooled over body slots and frames, from the split's
    training samples only. The centre of a body-frame is not the mean of its visible joints: under
    occlusion that mean moves towards the visible side (hidden legs lift it), so offsets taken from it
    would mix the pose with the occlusion pattern. Instead each body-frame f gets a translation c_f
    and the pose mu the offsets such that c_f + mu_v fits the visible joints v in the least-squares
    sense, over all training body-frames at once: then c_f is the mean over f's visible joints of
    x_fv - mu_v (the translation fitted against the mean pose's same joints) and mu_v the mean over
    the observed training values of x_fv - c_f (each joint's average offset from the fitted centre).
    Eliminating c_f leaves a 25 x 25 linear system in mu whose sums come from one pass over the
    training samples (mu fixed up to a common shift, which cancels in c_f + mu_v; solved with its
    offsets summing to 0). An occluded joint (of a training or a validation sample) is filled with its
    frame's c_f, fitted on that body-frame's visible joints against mu's same joints, plus mu_v. A
    body-frame with no visible joint stays unfilled, and so does a joint whose offset no training
    body-frame determines (never observed with another joint visible). Validation samples never
    contribute to mu. No settings; deterministic (the seed plays no part).

random (the paper's ablation "random imputer", defined here)
    ``variant="donor"`` (default): each occluded joint takes the x, y, z of one training sample of the
    same split, drawn uniformly among the training samples in which that joint (same frame, same body
    slot) is observed: random donors instead of nearest donors. ``variant="uniform"``: each coordinate is
    drawn uniformly within [min, max] of that coordinate axis of that joint over all observed training
    values (pooled over frames and bodies). Validation samples are filled from training samples only.
    Seeded by (seed, split).

knn (the cluster-agnostic KNN imputer, paper §III-D, without the published script's bugs)
    ``job.embed`` (the runner's stage-1 encoder of ``stage1_method``, called on ``Part``s of the
    preprocessed occluded dataset, a chunk of samples at a time; without one, a seeded Gaussian random
    projection of the mask-aware preprocessed coordinates, ``occbench.impute.projection_embed``) embeds
    the split's samples. KMeans on the training embeddings (k = number of classes unless ``clusters`` is
    a number; k-means++, one init, ``max_iter`` 100, seeded); validation samples go to the cluster
    ``kmeans.predict`` gives them. Per cluster, one ``knn_core`` call fills the training and validation
    samples from that cluster's training samples (validation samples never donate; every cluster uses
    its own donors, unlike the published script, which left every test sample with the last cluster's).
    The x, y, z of a joint share one mask, so they share one donor selection (exactly what per-column
    KNN gives, since a donor that has the joint has all three). A joint position no training sample of
    the cluster observes is filled from the nearest clusters (by centroid distance) that observe it, with
    the same KNN rule. Clusters are read one at a time, so memory holds one cluster (plus one fallback
    cluster), never the split.

``stage1_method`` tells the planner whose stage-1 encoder gives the embeddings: "opstl" (default, as in
the paper: one imputed dataset per dataset, split and seed, made with the stage-1 OPSTL encoder
pretrained on the non-imputed occluded data and shared by every method) or another method's.

knn-pstl (the same imputer, registered a second time with ``stage1_method`` "pstl")
    The paper's Table V ablation compares stage 1 with CSM (PSTL's encoder embeds the data) against ASM
    (OPSTL's), under either stage-2 method. One grid holds one setting per imputer name, so the second
    stage-1 choice is a second name: a suite lists ``knn`` and ``knn-pstl`` and its records tell the
    cells apart by imputer. Its settings are its own (``imputers.knn-pstl`` in a profile; none there:
    the defaults, which are the paper's), not those of ``imputers.knn``.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from occbench.data.ntu import MAX_BODIES, NUM_JOINTS
from occbench.errors import OccbenchError
from occbench.hookspecs import hookimpl
from occbench.impute import (
    EMBED_DIM,
    ImputeJob,
    Imputer,
    default_device,
    is_preprocessed,
    knn_core,
    knn_inputs,
    projection_embed,
)
from occbench.settings import ANY, integer, one_of, text


class NoImputer(Imputer):
    """The occluded data as it is: occluded joints stay 0 and not visible in the mask; nothing is copied."""

    name = "none"
    identity = True
    title = "no imputation"
    order = 10


class InterpImputer(Imputer):
    """Each occluded joint linearly interpolated over frames between its nearest visible frames before and
    after, held at the ends; a joint never visible in the sample's body stays occluded."""

    name = "interp"
    title = "temporal interpolation"
    order = 14

    def fill(self, job: ImputeJob) -> dict:
        interpolated = held = unfilled = 0
        for rows in job.chunks():
            block = job.read(rows)
            frames = block.observed.shape[1]
            t = np.arange(frames)[None, :, None, None]
            # the nearest visible frame at or before t (-1: none), and at or after t (frames: none)
            before = np.maximum.accumulate(np.where(block.observed, t, -1), axis=1)
            after = np.minimum.accumulate(np.where(block.observed, t, frames)[:, ::-1], axis=1)[:, ::-1]
            has_before, has_after = before >= 0, after < frames
            lo = np.where(has_before, before, after).clip(0, frames - 1)
            hi = np.where(has_after, after, before).clip(0, frames - 1)
            span = hi - lo
            weight = np.where(span > 0, (t - lo) / np.maximum(span, 1), 0.0).astype(np.float32)
            start = np.take_along_axis(block.data, lo[:, None], axis=2)
            end = np.take_along_axis(block.data, hi[:, None], axis=2)
            fill = block.target & (has_before | has_after)
            job.write(rows, start + weight[:, None] * (end - start), fill)
            both = fill & has_before & has_after
            interpolated += int(both.sum())
            held += int(fill.sum()) - int(both.sum())
            unfilled += int((block.target & ~fill).sum())
        return {"interpolated": interpolated, "held": held, "unfilled": unfilled}


class MeanPoseImputer(Imputer):
    """Each occluded joint at its frame's fitted centre plus the training mean pose's offset of that joint
    (the pose and the centres fitted together on the visible training joints; translation only)."""

    name = "meanpose"
    title = "training mean pose"
    order = 17

    def fill(self, job: ImputeJob) -> dict:
        pose, known = _mean_pose(job)
        filled = unfilled = 0
        for rows in job.chunks():
            block = job.read(rows)
            x = np.moveaxis(block.data, 1, -1).astype(np.float64)  # (n, T, 25, 2, 3)
            offset = pose[None, None, :, None]  # (1, 1, 25, 1, 3)
            seen = block.observed & known[None, None, :, None]
            count = seen.sum(axis=2, keepdims=True)  # visible joints with an offset, per body-frame
            # the translation that fits the visible joints to the pose's same joints: their mean difference
            centre = np.where(seen[..., None], x - offset, 0).sum(axis=2, keepdims=True)
            centre /= np.maximum(count, 1)[..., None]
            fill = block.target & known[None, None, :, None] & (count > 0)
            job.write(rows, np.moveaxis(centre + offset, -1, 1).astype(np.float32), fill)
            filled += int(fill.sum())
            unfilled += int((block.target & ~fill).sum())
        return {"filled": filled, "unfilled": unfilled, "pose_joints": int(known.sum())}


def _mean_pose(job: ImputeJob) -> tuple[np.ndarray, np.ndarray]:
    """(mu (25, 3) float64, known (25,) bool): the training mean pose's joint offsets (least squares of
    x_fv = c_f + mu_v over the visible joints of every training body-frame f, the c_f eliminated), and
    which joints it determines (0 offsets for the others).

    With O_f the visible joints of f and n_f their number, the c_f that fits is the mean of x_fv - mu_v
    over O_f, and the normal equations in mu are A mu = b with A = diag(N) - sum_f 1/n_f 1_{O_f} 1_{O_f}^T
    (N_v: the body-frames that see v) and b_v = sum_{f sees v} (x_fv - mean of f's visible joints): both
    sums over the training samples, read once."""
    a = np.zeros((NUM_JOINTS, NUM_JOINTS))
    b = np.zeros((NUM_JOINTS, 3))
    for rows in job.chunks("train"):
        block = job.read(rows)
        seen = block.observed.transpose(0, 1, 3, 2).reshape(-1, NUM_JOINTS)  # (body-frames, 25)
        x = block.data.transpose(0, 2, 4, 3, 1).reshape(-1, NUM_JOINTS, 3).astype(np.float64)
        keep = seen.sum(1) > 1  # a frame with one visible joint fits it exactly: it says nothing of mu
        seen, x = seen[keep], x[keep]
        count = seen.sum(1)
        a += np.diag(seen.sum(0).astype(np.float64)) - (seen / count[:, None]).T @ seen
        centre = (x * seen[..., None]).sum(1) / count[:, None]
        b += ((x - centre[:, None]) * seen[..., None]).sum(0)
    known = np.diag(a) > 0
    sub = a[np.ix_(known, known)]
    pose = np.zeros((NUM_JOINTS, 3))
    if known.any():
        # A has the common shift in its null space and b is orthogonal to it; adding the shift's
        # projector makes the system regular and picks the offsets that sum to 0
        scale = np.trace(sub) / len(sub)
        pose[known] = np.linalg.lstsq(sub + scale / len(sub), b[known], rcond=None)[0]
    return pose, known


class RandomImputer(Imputer):
    """Each occluded joint from a training sample of the split drawn at random among those that observe
    it (variant "donor"), or uniform within the training range of each coordinate (variant "uniform")."""

    name = "random"
    title = "random donors"
    citation = "Chen et al. (IosPSTL), ablation"
    order = 20
    defaults = {"variant": "donor"}
    schema = {"variant": one_of("donor", "uniform")}

    def fill(self, job: ImputeJob) -> dict:
        """Every row's cells at once, window of frames after window (`job.frame_windows`): the draws follow
        the cells in (row, frame, joint, body) order within each window, and only the donors' cells are read."""
        variant = job.settings["variant"]
        rng = np.random.default_rng([job.seed, zlib.crc32(job.split.encode())])
        if variant == "uniform":
            lo, hi = _training_range(job)
        everyone = job.rows()
        filled = unfilled = 0
        for window in job.frame_windows():
            block = job.read(everyone, window, data=False)
            cell_row, ct, cv, cm = np.nonzero(block.target)
            if len(cell_row) == 0:
                continue
            if variant == "uniform":
                ok = np.isfinite(lo[0, cv])
                values = lo[:, cv].T + rng.random((len(cell_row), 3)) * (hi[:, cv].T - lo[:, cv].T)
            else:
                ok, values = _random_donors(job, block, window, (ct, cv, cm), rng)
            keep = np.flatnonzero(ok)
            unfilled += len(cell_row) - len(keep)
            filled += len(keep)
            if len(keep):
                job.write_cells(cell_row[keep], window.start + ct[keep], cv[keep], cm[keep], values[keep])
        return {"variant": variant, "filled": int(filled), "unfilled": int(unfilled)}


def _random_donors(job: ImputeJob, block, window: slice, cells: tuple, rng) -> tuple[np.ndarray, np.ndarray]:
    """(whether a training sample observes it, the x, y, z of one drawn uniformly among those that do) for
    each cell (frame in the window, joint, body) of the block's target, in order."""
    n_train = job.n_train
    seen = block.observed[:n_train].reshape(n_train, -1)  # (n_train, positions)
    count = seen.sum(0)
    flat = np.ravel_multi_index(cells, block.observed.shape[1:])
    ok = count[flat] > 0
    draw = (rng.random(len(flat)) * np.maximum(count[flat], 1)).astype(np.int64)
    _, sample_of = np.nonzero(seen.T)  # the observers of each position, position after position
    first = np.cumsum(count) - count
    donor = sample_of[np.minimum(first[flat] + draw, max(len(sample_of) - 1, 0))] if len(sample_of) else draw
    values = np.zeros((len(flat), 3), np.float32)
    if ok.any():  # the donors' cells, read from the source
        t, v, m = (axis[ok] for axis in cells)
        values[ok] = job.source.data[job.train[donor[ok]], :, window.start + t, v, m]
    return ok, values


def _training_range(job: ImputeJob) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of each coordinate axis of each joint over the observed training values, (3, 25) each
    (inf and -inf for a joint no training sample observes)."""
    lo = np.full((3, NUM_JOINTS), np.inf)
    hi = np.full((3, NUM_JOINTS), -np.inf)
    for rows in job.chunks("train"):
        block = job.read(rows)
        seen = block.observed[:, None]  # (n, 1, T, 25, 2)
        lo = np.minimum(lo, np.where(seen, block.data, np.inf).min(axis=(0, 2, 4)))
        hi = np.maximum(hi, np.where(seen, block.data, -np.inf).max(axis=(0, 2, 4)))
    return lo, hi


class ClusterCount:
    """The rule of knn's `clusters`: a whole number >= 1, or "num_class" (the dataset's number of classes,
    the paper's choice)."""

    def check(self, key: str, value) -> None:
        if value != "num_class" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise OccbenchError(f'{key}={value!r}: expected an integer >= 1 or "num_class"')


class KnnImputer(Imputer):
    """KMeans on stage-1 embeddings, then distance-weighted KNN (nan-euclidean) inside each cluster;
    validation samples are filled from the training samples of their predicted cluster only."""

    name = "knn"
    title = "cluster-agnostic KNN imputer"
    citation = "Chen et al. (IosPSTL)"
    order = 30
    # stage1_method: whose stage-1 encoder gives the embeddings; device: where the KNN core runs (None:
    # CUDA when there is one)
    defaults = {"n_neighbors": 5, "clusters": "num_class", "max_iter": 100, "stage1_method": "opstl", "device": None}
    schema = {"n_neighbors": integer(1), "clusters": ClusterCount(), "max_iter": integer(1), "stage1_method": text(),
              "device": ANY}

    def stage1_method(self, settings: dict) -> str:
        return self.resolve(settings)["stage1_method"]

    def fill(self, job: ImputeJob) -> dict:
        from sklearn.cluster import KMeans
        from tqdm import tqdm

        settings, n_train = job.settings, job.n_train
        if n_train == 0:
            raise OccbenchError(f"{job.source.path}: the split has no training samples to donate")
        dev = default_device(settings["device"])
        k = settings["n_neighbors"]
        embedding = "encoder" if job.embed is not None else f"random projection ({EMBED_DIM}-d), no encoder given"
        embed = job.embed or projection_embed(job.seed, preprocess_frames=None if is_preprocessed(job.frames) else 50)
        emb_train = job.embeddings(job.rows("train"), embed)
        emb_val = (job.embeddings(job.rows("val"), embed) if len(job.val)
                   else np.zeros((0, emb_train.shape[1]), np.float32))
        wanted = job.source.num_class if settings["clusters"] == "num_class" else settings["clusters"]
        clusters = min(wanted, n_train)
        kmeans = KMeans(n_clusters=clusters, n_init=1, max_iter=settings["max_iter"], random_state=job.seed)
        label_train = kmeans.fit_predict(emb_train.astype(np.float64))
        label_val = kmeans.predict(emb_val.astype(np.float64)) if len(job.val) else np.zeros(0, np.int64)
        centres = kmeans.cluster_centers_
        near = np.argsort(((centres[:, None] - centres[None]) ** 2).sum(-1), axis=1, kind="stable")
        # which joint positions each cluster's training samples observe (masks only)
        cover = np.zeros((clusters, job.source.frames * NUM_JOINTS * MAX_BODIES), bool)
        for rows in job.chunks("train", masks_only=True):
            observed = job.read(rows, data=False).observed.reshape(len(rows), -1)
            labels = label_train[rows]
            for c in np.unique(labels):
                cover[c] |= observed[labels == c].any(0)
        sizes = np.bincount(label_train, minlength=clusters).tolist()
        stats = {"clusters": clusters, "n_neighbors": k, "embedding": embedding, "filled": 0, "by_mean": 0,
                 "by_other_clusters": 0, "unfilled": 0, "cluster_sizes": sizes}
        bar = tqdm(range(clusters), desc="knn impute", unit="cluster", disable=None if job.progress else True,
                   leave=False)
        for c in bar:
            own = np.flatnonzero(label_train == c)
            rows = np.concatenate([own, n_train + np.flatnonzero(label_val == c)])
            if len(rows) == 0:
                continue
            block = job.read(rows)
            values, observed, target = knn_inputs(block, dev)
            filled = torch.zeros_like(target)
            if bool(target.any()):
                receivers = torch.arange(len(rows), device=dev)
                itself = torch.where(receivers < len(own), receivers, -1)  # training receivers are donors too
                ri, pos, vals, how = knn_core(values, observed, target, values[: len(own)], observed[: len(own)], k,
                                              itself=itself)
                done = how > 0
                values[ri[done], :, pos[done]] = vals[done]
                filled[ri[done], pos[done]] = True
                stats["by_mean"] += int((how == 1).sum())
                left = ~done
                if bool(left.any()):
                    moved = _from_other_clusters(job, label_train, near[c], c, cover, values, observed, ri[left],
                                                 pos[left], filled, k)
                    stats["by_other_clusters"] += moved
                    stats["unfilled"] += int(left.sum()) - moved
            stats["filled"] += int(filled.sum())
            data = values.to(torch.float32).cpu().numpy().reshape(block.data.shape)
            job.write(rows, data, filled.cpu().numpy().reshape(block.target.shape))
        return stats


def _from_other_clusters(job, label_train, order, c, cover, values, observed, rows, pos, filled, k) -> int:
    """Fill the cells (rows, pos) of cluster c (order: the clusters by centroid distance from it) that none
    of its training samples observes, from the nearest clusters that observe each
    position (the same KNN rule), in `values` and `filled`. Returns how many it filled."""
    dev = values.device
    pos_np = pos.cpu().numpy()
    choice = np.full(len(pos_np), -1)
    for other in order:
        if other == c:
            continue
        pick = (choice < 0) & cover[other, pos_np]
        choice[pick] = other
        if (choice >= 0).all():
            break
    moved = 0
    for other in np.unique(choice[choice >= 0]):
        sel = torch.from_numpy(choice == other).to(dev)
        cell_rows, cell_pos = rows[sel], pos[sel]
        receivers, local = torch.unique(cell_rows, return_inverse=True)
        fill = torch.zeros(len(receivers), observed.shape[1], dtype=torch.bool, device=dev)
        fill[local, cell_pos] = True
        donors, donors_observed, _ = knn_inputs(job.read(np.flatnonzero(label_train == other)), dev)
        ri, p, vals, how = knn_core(values[receivers], observed[receivers], fill, donors, donors_observed, k)
        done = how > 0
        values[receivers[ri[done]], :, p[done]] = vals[done]
        filled[receivers[ri[done]], p[done]] = True
        moved += int(done.sum())
    return moved


class KnnPstlImputer(KnnImputer):
    """The KNN imputer on the embeddings of PSTL's stage-1 encoder (CSM) instead of OPSTL's (ASM): the
    stage-1 arm of the paper's Table V."""

    name = "knn-pstl"
    title = "cluster-agnostic KNN imputer, PSTL stage-1 encoder"
    label = "knn (PSTL stage 1)"
    order = 28  # beside knn, before it: Table V reads stage 1 CSM, then ASM
    defaults = {**KnnImputer.defaults, "stage1_method": "pstl"}


IMPUTERS = (NoImputer(), InterpImputer(), MeanPoseImputer(), RandomImputer(), KnnPstlImputer(), KnnImputer())


@hookimpl
def occbench_register_imputers(registry):
    for imputer in IMPUTERS:
        registry.add(imputer.name, imputer)
