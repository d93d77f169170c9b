"""CrosSCLR/AimCLR "relative" preprocessing (300 -> 50 frames) in two pipelines, plus motion and bone streams.

Two pipelines (`PIPELINES`), chosen with `preprocess(..., pipeline=)`, `occbench data preprocess
--pipeline` or a profile's `data.pipeline`:

* ``mask-aware`` (the default, occbench's choice, described below) never lets an occluded joint
  influence a visible one and rotates every frame exactly;
* ``published`` is the reference arithmetic step by step (`published_arrays`), zeros and all, so that
  the paper's inputs can be reproduced.

The mask-aware pipeline:

The reference pipeline (CrosSCLR feeder/preprocess_ntu.py, methods.md §1.2) assumes complete skeletons:
its length heuristic, centring and linear resize all mix the zero-filled occluded joints into real
values. This version follows the same steps but never lets an occluded joint influence a visible one:

1. Valid length: the stored true frame count ``length``, never "frames where joint 0 of body 0 is
   non-zero". Frames from ``length`` on are padding; a mask or presence bit there is ignored.
2. Relative coordinates: per frame and body, joint 20 (spine shoulder, CENTER_JOINT) is subtracted
   from every visible joint. Where joint 20 is occluded its position is interpolated linearly in time
   between the frames where it is visible (the nearest visible frame beyond the first/last one). If it
   is never visible for that body, the mean of the visible joints of each frame stands in for it
   (a frame with no visible joint has nothing to centre). Occluded joints stay exactly 0.
3. Resize: the first ``length`` frames are resampled to ``frames`` at the sampling positions of
   cv2.resize INTER_LINEAR (half-pixel centres, src = (dst + 0.5) * length / frames - 0.5, clamped to
   [0, length - 1]), with exact float weights rather than cv2's 11-bit fixed-point ones. The output
   mask (and presence) is that of the nearer source frame (weight >= 0.5, the earlier one on a tie);
   a visible output is the interpolation renormalised over its visible neighbours, so an occluded
   neighbour contributes nothing; an output that is not visible is 0. The new length is ``frames``
   (0 for an empty sample).
4. Rotation about the y axis, per output frame and body, so that the horizontal part (x, z) of
   right shoulder (8) − left shoulder (4) points along +x. The angle is measured only in frames where
   both shoulders are visible (and not vertically aligned), unwrapped, and interpolated linearly in
   time over the other frames (nearest value at the ends); a body whose shoulders are never both
   visible is not rotated. CrosSCLR instead picks one rotation sign per sequence; the full atan2
   angle used here always puts the shoulders on +x.

Each body is centred and rotated on its own, as in CrosSCLR (two-person relative placement is lost).

The published pipeline (CrosSCLR feeder/preprocess_ntu.py with NTUMotionProcessor, methods.md §1.2),
on the arrays the published code reads (0 wherever a joint is not visible, after the true length):

1. Length: the number of frames in which joint 0 of body 0 is not (0, 0, 0), wherever they lie.
2. Relative coordinates: joint 20 of the same frame and body is subtracted from all 25 joints, zeros
   included (an occluded joint becomes minus the centre; an occluded centre leaves its frame uncentred).
3. Resize: the first ``length`` frames to ``frames`` by plain linear interpolation at cv2.resize's
   INTER_LINEAR positions (as in step 3 above, exact float weights), zeros included.
4. Rotation about y per output frame and body by theta = ∓ arccos(sx / (|(sx, sz)| + 1e-4)), where
   (sx, sz) is the horizontal part of joint 8 − joint 4 in that frame; the sign is one per sequence
   and body: − when the sum over the frames of sz is >= 0, + otherwise. A frame whose sz has the other
   sign is therefore turned away from +x (by twice its angle), and a near-zero shoulder vector still
   turns by about 90 degrees (what the published code does; an absent body's zeros stay zeros).

The published code has no mask. Its output's mask here is the input visibility carried through the
resize by the nearer source frame (the rule of step 3 above), so occlusion-aware consumers (OPSTL's
missing-joint flags, the records' occlusion facts) still see which joints were occluded; the data
itself holds the published values there, so this dataset does not keep the usual "0 where not
visible" rule (ST-GCN reads the values and not the mask, as published; the motion and bone streams
zero a vector with an occluded end, as they do for mask-aware data). A sample whose joint 0 of body 0 is never seen has
length 0 (the published code fails on it): it becomes zeros, nothing visible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occbench.data.dataset import SkeletonDataset, derive
from occbench.data.ntu import CENTER_JOINT, LEFT_SHOULDER, PARENT, RIGHT_SHOULDER
from occbench.errors import OccbenchError

_MIN_SHOULDER = 1e-6  # a shorter horizontal shoulder vector has no usable direction
PIPELINES = ("mask-aware", "published")
DEFAULT_PIPELINE = "mask-aware"
_PUBLISHED_NORM_EPS = 1e-4  # added to the shoulder vector's length before the arccos, as published


def check_pipeline(pipeline, where: str = "pipeline") -> str:
    """`pipeline` if it is one of PIPELINES, else a one-line error naming `where`."""
    if pipeline not in PIPELINES:
        raise OccbenchError(f"{where}={pipeline!r}: unknown preprocessing pipeline; use one of {', '.join(PIPELINES)}")
    return pipeline


# --------------------------------------------------------------------------------------------------
# Interpolation over time along the last axis


def _neighbours(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position, the nearest valid index at or before it and at or after it.

    Where one side has none, both are the other side's; where there is none at all, both are 0.
    """
    n = valid.shape[-1]
    t = np.arange(n)
    before = np.maximum.accumulate(np.where(valid, t, -1), axis=-1)
    after = np.flip(np.minimum.accumulate(np.flip(np.where(valid, t, n), -1), axis=-1), -1)
    lo = np.where(before >= 0, before, after)
    hi = np.where(after < n, after, before)
    return lo.clip(0, n - 1), hi.clip(0, n - 1)


def _fill_gaps(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Replace values where not `valid` by linear interpolation along the last axis between the valid
    ones (nearest valid value beyond the ends; 0 where nothing is valid). valid broadcasts to values."""
    lo, hi = _neighbours(valid)
    a = np.take_along_axis(values, lo, -1)
    b = np.take_along_axis(values, hi, -1)
    span = (hi - lo).astype(values.dtype)
    w = np.where(span > 0, (np.arange(values.shape[-1]) - lo) / np.maximum(span, 1), 0).astype(values.dtype)
    return np.where(valid.any(-1, keepdims=True), a + w * (b - a), 0).astype(values.dtype)


# --------------------------------------------------------------------------------------------------
# The steps


def _centre(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Subtract the (interpolated) joint-20 position, or the visible mean, per frame and body."""
    to_time_last = (0, 1, 3, 2)  # (N, 3, T, M) <-> (N, 3, M, T)
    joint = data[:, :, :, CENTER_JOINT].transpose(to_time_last)
    seen = mask[:, :, CENTER_JOINT].transpose(0, 2, 1)[:, None]  # (N, 1, M, T)
    # A frame with no visible joint needs no centre, so the fallback mean is not interpolated.
    mean = data.sum(axis=3) / np.maximum(mask.sum(axis=2), 1)[:, None]
    centre = np.where(seen.any(-1, keepdims=True), _fill_gaps(joint, seen), mean.transpose(to_time_last))
    centre = centre.transpose(to_time_last)
    return np.where(mask[:, None], data - centre[:, :, :, None], 0).astype(np.float32)


def _resize_plan(length: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per sample and output frame: source frames i0 <= i1, weight w of i1, and whether i0 is nearer."""
    last = np.maximum(length.astype(np.float64) - 1, 0)[:, None]
    src = (np.arange(frames) + 0.5) * length[:, None] / frames - 0.5
    src = np.clip(src, 0, last)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, last.astype(np.int64))
    w = (src - i0).astype(np.float32)
    return i0, i1, w, w <= 0.5


def _take_frames(array: np.ndarray, index: np.ndarray, axis: int) -> np.ndarray:
    """array[n, ..., index[n, f], ...] along `axis` (the time axis), index (N, F)."""
    shape = [1] * array.ndim
    shape[0], shape[axis] = index.shape
    return np.take_along_axis(array, index.reshape(shape), axis)


def _nearest(array: np.ndarray, plan, axis: int = 1) -> np.ndarray:
    """Resize a boolean (N, T, ...) array by taking the nearer source frame."""
    i0, i1, _, near = plan
    near = near.reshape(near.shape + (1,) * (array.ndim - 2))
    return np.where(near, _take_frames(array, i0, axis), _take_frames(array, i1, axis))


def _resize(data: np.ndarray, mask: np.ndarray, plan) -> tuple[np.ndarray, np.ndarray]:
    """Linear resize in time, renormalised over visible neighbours; mask from the nearer frame."""
    i0, i1, w, _ = plan
    w_data = w[:, None, :, None, None]
    m0, m1 = _take_frames(mask, i0, 1)[:, None], _take_frames(mask, i1, 1)[:, None]
    a, b = _take_frames(data, i0, 2), _take_frames(data, i1, 2)  # already 0 where not visible
    weight = (1 - w_data) * m0 + w_data * m1
    out_mask = _nearest(mask, plan)
    value = ((1 - w_data) * a + w_data * b) / np.where(weight > 0, weight, 1)
    return np.where(out_mask[:, None], value, 0).astype(np.float32), out_mask


def _rotation_angle(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(N, T, M) angle of the horizontal shoulder vector, interpolated where it is not measurable."""
    shoulder = data[:, :, :, RIGHT_SHOULDER] - data[:, :, :, LEFT_SHOULDER]  # (N, 3, T, M)
    sx, sz = shoulder[:, 0].transpose(0, 2, 1), shoulder[:, 2].transpose(0, 2, 1)  # (N, M, T)
    seen = mask[:, :, RIGHT_SHOULDER] & mask[:, :, LEFT_SHOULDER]
    seen = seen.transpose(0, 2, 1) & (np.hypot(sx, sz) > _MIN_SHOULDER)
    angle = np.arctan2(sz, sx)
    # Carry each measured angle forward over the gaps so that unwrap sees only the real jumps, then
    # interpolate the unwrapped angles (the shorter way round between consecutive measurements).
    before, _ = _neighbours(seen)
    unwrapped = np.unwrap(np.take_along_axis(angle, before, -1), axis=-1)
    return _fill_gaps(unwrapped, seen).transpose(0, 2, 1)


def _rotate(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    angle = _rotation_angle(data, mask)[:, :, None]  # (N, T, 1, M)
    cos, sin = np.cos(angle).astype(np.float32), np.sin(angle).astype(np.float32)
    x, y, z = data[:, 0], data[:, 1], data[:, 2]
    return np.stack([cos * x + sin * z, y, cos * z - sin * x], axis=1)


# --------------------------------------------------------------------------------------------------
# The published pipeline's own steps


def published_length(data: np.ndarray) -> np.ndarray:
    """(N,) the published length: frames in which joint 0 of body 0 is not (0, 0, 0), wherever they lie."""
    return (np.abs(data[:, :, :, 0, 0]).sum(axis=1) != 0).sum(axis=1)


def _linear(array: np.ndarray, plan, axis: int = 2) -> np.ndarray:
    """Plain linear resize in time (zeros included), at the plan's positions."""
    i0, i1, w, _ = plan
    shape = [1] * array.ndim
    shape[0], shape[axis] = w.shape
    w = w.reshape(shape)
    return (1 - w) * _take_frames(array, i0, axis) + w * _take_frames(array, i1, axis)


def _rotate_published(data: np.ndarray) -> np.ndarray:
    """Rotation about y by -/+ arccos of the shoulder direction, one sign per sequence and body."""
    shoulder = (data[:, :, :, RIGHT_SHOULDER] - data[:, :, :, LEFT_SHOULDER]).astype(np.float64)  # (N, 3, T, M)
    sx, sz = shoulder[:, 0], shoulder[:, 2]
    angle = np.arccos(sx / (np.hypot(sx, sz) + _PUBLISHED_NORM_EPS))  # (N, T, M)
    angle = np.where(sz.sum(axis=1, keepdims=True) >= 0, -angle, angle)
    cos, sin = np.cos(angle)[:, :, None], np.sin(angle)[:, :, None]  # (N, T, 1, M)
    x, y, z = data[:, 0], data[:, 1], data[:, 2]
    return np.stack([cos * x - sin * z, y, sin * x + cos * z], axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Public API


def _visible_only(data, mask, present, length) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The inputs as both pipelines read them: nothing present after `length`, nothing visible where no
    body is, and 0 wherever nothing is visible (what sits under the mask never enters a computation)."""
    data, mask, present = np.asarray(data, np.float32), np.asarray(mask, bool), np.asarray(present, bool)
    length = np.clip(np.asarray(length, np.int64), 0, data.shape[2])
    in_length = np.arange(data.shape[2]) < length[:, None]  # (N, T)
    present = present & in_length[:, :, None]
    mask = mask & present[:, :, None, :]
    return np.where(mask[:, None], data, 0), mask, present, length


def _mask_aware(data, mask, present, length, frames):
    plan = _resize_plan(length, frames)
    resized, out_mask = _resize(_centre(data, mask), mask, plan)
    out_length = np.where(length > 0, frames, 0).astype(np.int32)
    return _rotate(resized, out_mask), out_mask, _nearest(present, plan), out_length, plan


def _published(data, mask, present, length, frames):
    used = published_length(data)  # the stored length only bounds what the heuristic can count
    seen = (used > 0)[:, None, None, None]
    plan = _resize_plan(used, frames)
    centred = data - data[:, :, :, CENTER_JOINT : CENTER_JOINT + 1]
    resized = np.where(seen[:, None], _linear(centred, plan), 0).astype(np.float32)
    out_mask = _nearest(mask, plan) & seen
    out_present = _nearest(present, plan) & seen[..., 0]
    out_length = np.where(used > 0, frames, 0).astype(np.int32)
    return _rotate_published(resized), out_mask, out_present, out_length, plan


_PIPELINE_STEPS = {"mask-aware": _mask_aware, "published": _published}


def preprocess_arrays(
    data: np.ndarray,
    mask: np.ndarray,
    present: np.ndarray,
    length: np.ndarray,
    frames: int = 50,
    pipeline: str = DEFAULT_PIPELINE,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centre, resize to `frames` and rotate a batch with `pipeline`; see the module docstring.

    data (N, 3, T, 25, 2), mask (N, T, 25, 2), present (N, T, 2), length (N,) -> the same arrays with
    `frames` frames (float32, bool, bool, int32).
    """
    return _with_plan(data, mask, present, length, frames, pipeline)[:4]


def _with_plan(data, mask, present, length, frames: int, pipeline: str):
    """`preprocess_arrays` and the resize plan it used (which the inferred flags follow)."""
    return _PIPELINE_STEPS[check_pipeline(pipeline)](*_visible_only(data, mask, present, length), frames)


def published_arrays(data, mask, present, length, frames: int = 50):
    """`preprocess_arrays` with the published pipeline."""
    return preprocess_arrays(data, mask, present, length, frames, pipeline="published")


_PROVENANCE = {
    "mask-aware": {
        "length": "stored true frame count",
        "centre": f"joint {CENTER_JOINT}, interpolated in time where occluded; visible mean if never seen",
        "resize": "linear, cv2 half-pixel positions, renormalised over visible neighbours; mask nearest",
        "rotation": f"about y per frame and body: joint {RIGHT_SHOULDER} - joint {LEFT_SHOULDER} to +x",
    },
    "published": {
        "length": "frames where joint 0 of body 0 is non-zero (CrosSCLR/AimCLR)",
        "centre": f"joint {CENTER_JOINT} of the same frame and body, occluded zeros included",
        "resize": "linear, cv2 half-pixel positions, occluded zeros included; mask nearest (data not 0 there)",
        "rotation": f"about y per frame and body: arccos of joint {RIGHT_SHOULDER} - joint {LEFT_SHOULDER}, one "
        "sign per sequence and body",
    },
}


def preprocess(
    source: SkeletonDataset,
    out: str | Path,
    frames: int = 50,
    overwrite: bool = False,
    progress: bool = False,
    pipeline: str = DEFAULT_PIPELINE,
) -> SkeletonDataset:
    """Write the preprocessed copy of `source` to `out` (a new dataset directory) with `pipeline`."""
    check_pipeline(pipeline)  # before any output is written

    def transform(arrays: dict, index: np.ndarray) -> dict:
        data, mask, present, length, plan = _with_plan(arrays["data"], arrays["mask"], arrays["present"],
                                                       arrays["length"], frames, pipeline)
        inferred = _nearest(np.asarray(arrays["inferred"], bool), plan) & mask
        return {"data": data, "mask": mask, "present": present, "length": length,
                "inferred": inferred, "label": arrays["label"]}  # fmt: skip

    stage = {"stage": "preprocess", "pipeline": pipeline, "frames": frames, **_PROVENANCE[pipeline]}
    return derive(
        source, out, transform, stage, frames=frames, overwrite=overwrite,
        progress="preprocess" if progress else None,
    )  # fmt: skip


def pipeline_of(dataset: SkeletonDataset) -> str | None:
    """The pipeline of the dataset's last preprocessing (mask-aware for one made before there was a
    choice), None when it was never preprocessed: what re-preprocessing its imputed copy should use."""
    done = [stage for stage in dataset.meta.get("stages", []) if stage.get("stage") == "preprocess"]
    return done[-1].get("pipeline", DEFAULT_PIPELINE) if done else None


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def _zero_where_not(values, keep):
    """values where keep else 0, for numpy arrays and torch tensors alike."""
    if _is_torch(values):
        return values.masked_fill(~keep, 0)
    return np.where(keep, values, 0).astype(values.dtype)


def _zeros_like(x):
    if _is_torch(x):
        import torch

        return torch.zeros_like(x)
    return np.zeros_like(x)


def motion(x, mask=None):
    """x[t + 1] - x[t] on the time axis of (..., 3, T, V, M); the last frame is 0.

    With a mask (..., T, V, M) returns (motion, mask[t] & mask[t + 1]) and motion is 0 wherever that
    mask is False; without one returns the motion alone. numpy arrays or torch tensors.
    """
    out = _zeros_like(x)
    out[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
    if mask is None:
        return out
    both = _zeros_like(mask)
    both[..., :-1, :, :] = mask[..., 1:, :, :] & mask[..., :-1, :, :]
    return _zero_where_not(out, both[..., None, :, :, :]), both


def bone(x, mask=None):
    """Joint minus its parent (ntu.PARENT) on the joint axis of (..., 3, T, V, M); the centre's bone
    is 0. With a mask (..., T, V, M) returns (bone, mask[j] & mask[parent]) and bone is 0 wherever
    that mask is False; without one returns the bone alone. numpy arrays or torch tensors."""
    parent = list(PARENT)
    out = x - x[..., parent, :]
    if mask is None:
        return out
    both = mask & mask[..., parent, :]
    return _zero_where_not(out, both[..., None, :, :, :]), both
