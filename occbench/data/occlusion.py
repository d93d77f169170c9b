"""Occlude a prepared dataset: realistic furniture, random joints, or the Kinect's own "inferred" joints.

Every kind hides joints of present bodies only: an occluded joint gets x=y=z=0 and mask False (the
published occluded-NTU convention), joints that were already hidden stay hidden, `present` and
`inferred` are copied unchanged. Each sample draws from its own RNG seeded by (seed, sample name),
so the result does not depend on chunking or sample order.

realistic
    1 to 2 pieces of furniture (table, chair, sofa, shelf, cabinet, low table) built from oriented
    boxes of random realistic size, turned by a random yaw about the vertical and placed between the
    camera (the origin of NTU camera space) and the person: along the horizontal ray to the person's
    spine base at a random fraction of its length, shifted sideways, standing on the estimated floor,
    not overlapping each other. "Vertical" is the camera's y axis tilted by the camera's pitch (NTU's
    Kinects look down by up to ~20 degrees), estimated per sample from the median direction of the
    person's spine; the floor is a low percentile of the foot height in that levelled frame.
    A joint is occluded in a frame when the segment from the camera to it meets a box (slab test;
    boxes are closed, so a segment touching an edge hits, and solid, so a joint inside a box is
    occluded). The furniture is static over the clip, so which joints it hides changes with the motion.
    The boxes are stored per sample in `occluders.npy`, float32 (N, 7 * max pieces, 9), one row per box
    (OCCLUDER_FIELDS): centre x y z in camera space, half sizes x y z along the box's own axes, yaw and
    tilt (radians), kind (1 + index in FURNITURE; 0 = empty row, rows are filled from the front).
    A point p is inside the box when |Ry(yaw)^T Rx(tilt) (p - centre)| <= half sizes, with
    Rx(a) = [[1, 0, 0], [0, cos a, -sin a], [0, sin a, cos a]] (camera -> levelled frame) and
    Ry(a) = [[cos a, 0, sin a], [0, 1, 0], [-sin a, 0, cos a]] (box -> levelled frame).
    Severity `realistic@s` (s in [0, 1], `realistic_density`) turns a density into these parameters: more
    and larger pieces, nearer the person and nearer the ray as s grows (occbench's choice, calibrated on
    the embedded data to hide about 5% to 50% of joint-frames). A bare `realistic` keeps `DEFAULTS`.
random
    The paper's random occlusion: per sample, exactly round(fraction * present joint-frames) joint-frames
    chosen uniformly at random (a joint-level choice per frame; all three coordinates are hidden).
    On an unoccluded source the occluded fraction is therefore `fraction` up to one joint-frame.
    Severity `random@s` is fraction s.
inferred
    The joints the Kinect marked "inferred" (trackingState 1): the sensor's own notion of not seen.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import occbench
from occbench.data.dataset import SkeletonDataset, derive
from occbench.data.ntu import JOINT_NAMES, NUM_JOINTS
from occbench.errors import OccbenchError

KINDS = ("realistic", "random", "inferred")
FURNITURE = ("table", "chair", "sofa", "shelf", "cabinet", "low_table")
BOXES_PER_PIECE = 7  # the most boxes one piece of furniture uses (a shelf with a back panel)
OCCLUDER_FIELDS = ("cx", "cy", "cz", "hx", "hy", "hz", "yaw", "tilt", "kind")
YAW, TILT, KIND = (OCCLUDER_FIELDS.index(field) for field in ("yaw", "tilt", "kind"))
MAX_PIECES = 4

SPINE_BASE, SPINE_SHOULDER = 0, 20
FEET = (14, 15, 18, 19)  # ankles and feet: the floor is estimated from them
JOINT_GROUPS = {
    "head": (2, 3),
    "torso": (0, 1, 20),
    "arms": (4, 5, 6, 7, 8, 9, 10, 11, 21, 22, 23, 24),
    "legs": (12, 13, 14, 15, 16, 17, 18, 19),
}

DEFAULTS: dict[str, dict] = {
    "realistic": {
        "pieces": (1, 2),  # number of pieces of furniture per sample, inclusive range
        "furniture": FURNITURE,  # the kinds to draw from, uniformly
        "distance": (0.5, 0.9),  # where along the camera-person ray, as a fraction of its length
        "shift": (-0.8, 0.8),  # sideways displacement from the ray, metres
        "yaw": (-180.0, 180.0),  # rotation about the vertical axis, degrees
        "scale": 1.0,  # multiplies every furniture dimension
        "clearance": 0.25,  # metres kept free between the furniture and the person's spine base
        "tilt": "auto",  # the camera's pitch in degrees, or "auto": estimated from the person's spine
    },
    "random": {"fraction": 0.3},
    "inferred": {},
}
SPEC_KINDS = ("none", *KINDS)  # what an occlusion spec may name; "none" leaves the data as it is
SEVERITY_KINDS = ("random", "realistic")  # the kinds that take a severity: kind@s, s in [0, 1]

_CAMERA_CLEARANCE = 0.5  # the Kinect sees nothing nearer than about 0.5 m
_FLOOR_PERCENTILE = 5  # robust to a few glitched foot positions
_MAX_TILT = 35.0  # degrees; a larger estimate comes from a lying or bending person, not the camera
_PLACEMENT_TRIES = 10


def occlude(
    source: SkeletonDataset, out: str | Path, kind: str, seed: int = 0, overwrite: bool = False,
    progress: bool = False, **params,
) -> SkeletonDataset:
    """Write an occluded copy of `source` to `out` (see the module doc for the kinds and `DEFAULTS`).

    `kind` may be a spec with a severity (`random@0.3`, `realistic@0.2`, see `parse_occlusion`); the
    parameters it implies cannot be given again in `params`.
    """
    if kind == "none":
        raise OccbenchError("occlusion 'none' leaves the data as it is: use the source dataset itself")
    spec = kind
    kind, implied = parse_occlusion(spec) if isinstance(spec, str) and "@" in spec else (spec, {})
    repeated = sorted(k for k in implied if params.get(k) is not None)
    if repeated:
        raise OccbenchError(f"occlusion {spec!r} already sets {repeated[0]}; give either the severity or "
                            f"{repeated[0]}, not both")
    params = check_params(kind, {**params, **implied})
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise OccbenchError(f"seed {seed!r}: give a non-negative whole number")
    names = source.names
    extra = None
    if kind == "realistic":
        max_boxes = BOXES_PER_PIECE * params["pieces"][1]
        extra = {"occluders": (np.float32, (max_boxes, len(OCCLUDER_FIELDS)))}

    def transform(arrays: dict, index: np.ndarray) -> dict:
        chunk_names = [names[i] for i in index]
        added = {}
        if kind == "realistic":
            boxes = np.stack([
                furniture_for_sample(sample_rng(seed, name), data, mask, params)
                for name, data, mask in zip(chunk_names, arrays["data"], arrays["mask"], strict=True)
            ])
            visible = np.asarray(arrays["mask"], bool) & np.asarray(arrays["present"], bool)[:, :, None]
            occluded = occluded_by_boxes(arrays["data"], boxes, where=visible)
            added["occluders"] = boxes
        elif kind == "random":
            occluded = random_occlusion(arrays["present"], chunk_names, seed, params["fraction"])
        else:
            occluded = np.asarray(arrays["inferred"], bool)
        return {**arrays, **apply_occlusion(arrays, occluded), **added}

    stage = {
        "stage": "occlude", "occbench": occbench.__version__, "kind": kind, "seed": int(seed),
        "params": _jsonable(params), "source": str(source.path.resolve()),
    }
    if spec != kind:
        stage["spec"] = spec
    if kind == "realistic":
        stage["occluders"] = {"file": "occluders.npy", "fields": list(OCCLUDER_FIELDS), "furniture": FURNITURE}
    return derive(
        source, out, transform, stage, overwrite=overwrite, extra=extra,
        progress=f"occlude {kind}" if progress else None,
    )


def parse_occlusion(spec: str) -> tuple[str, dict]:
    """(kind, params) of an occlusion spec: `none`, a bare kind, or `kind@severity` with severity in [0, 1].

    A bare kind means its `DEFAULTS` ({} here), exactly as before severities existed, so existing caches
    and records keep their meaning. `random@s` hides the fraction s of joint-frames; `realistic@s` is a
    furniture density (`realistic_density`). `inferred` has no severity. OccbenchError on anything else.
    """
    usage = (f"write one of {', '.join(SPEC_KINDS)}, or {'@s, '.join(SEVERITY_KINDS)}@s with a severity s in "
             "[0, 1], e.g. random@0.3")
    if not isinstance(spec, str):
        raise OccbenchError(f"occlusion {spec!r}: not a name; {usage}")
    kind, at, severity = spec.partition("@")
    if kind not in SPEC_KINDS:
        raise OccbenchError(f"occlusion {spec!r}: unknown kind {kind!r}; {usage}")
    if not at:
        return kind, {}
    if kind not in SEVERITY_KINDS:
        raise OccbenchError(f"occlusion {spec!r}: {kind} takes no severity; write {kind} alone")
    if not severity:
        raise OccbenchError(f"occlusion {spec!r}: nothing after '@'; write a severity in [0, 1], e.g. "
                            f"{kind}@0.3, or {kind} alone for its default")
    value = occlusion_severity(spec)
    return kind, {"fraction": value} if kind == "random" else realistic_density(value)


def occlusion_severity(spec: str) -> float | None:
    """The number after `@` in a spec (None for a bare kind); OccbenchError unless it is in [0, 1]."""
    kind, at, severity = spec.partition("@")
    if not at:
        return None
    try:
        value = float(severity)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value):
        raise OccbenchError(f"occlusion {spec!r}: severity {severity!r} is not a number; write one in [0, 1], "
                            f"e.g. {kind}@0.3")
    if not 0 <= value <= 1:
        raise OccbenchError(f"occlusion {spec!r}: severity {value:g} is outside [0, 1]; write one inside it, "
                            f"e.g. {kind}@0.3")
    return value


def realistic_density(s: float) -> dict:
    """The realistic parameters of density s in [0, 1]: more, larger furniture, nearer the person and the ray.

    occbench's choice, not a published one (the paper's realistic occlusion has a single level). Each
    parameter moves linearly (the most pieces in whole steps) from a sparse setting at s = 0 to a dense
    one at s = 1; the ends were calibrated so that on the embedded dataset the hidden fraction of present joint-frames
    grows with s from about 5% to about 50% (the table in docs/data.md). Furniture nearer the person
    hides more of them: the camera looks down over it, so its shadow on the person reaches up to its top.
    """
    s = float(s)
    shift = round(1.2 - 1.0 * s, 6)  # rounded so that the stored parameters read as written
    return {
        "pieces": (1, 1 + int(3 * s + 0.5)),  # up to 1, 2, 3, 4 pieces from s = 0, 1/6, 1/2, 5/6
        "distance": (round(0.35 + 0.5 * s, 6), round(0.6 + 0.35 * s, 6)),
        "shift": (-shift, shift),
        "scale": round(0.8 + 0.6 * s, 6),
    }


def check_params(kind: str, params: dict) -> dict:
    """The parameters of `kind` with defaults filled in, normalised; OccbenchError on anything bad."""
    if kind not in KINDS:
        raise OccbenchError(f"unknown occlusion kind {kind!r}: use one of {', '.join(KINDS)}")
    defaults = DEFAULTS[kind]
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        allowed = ", ".join(defaults) or "none"
        raise OccbenchError(f"unknown parameter {unknown[0]!r} for {kind} occlusion: it takes {allowed}")
    merged = {**defaults, **{k: v for k, v in params.items() if v is not None}}
    if kind == "random":
        merged["fraction"] = _number("fraction", merged["fraction"], 0.0, 1.0)
    elif kind == "realistic":
        merged = _check_realistic(merged)
    return merged


def _check_realistic(p: dict) -> dict:
    pieces = _pair("pieces", p["pieces"], 0, MAX_PIECES)
    if pieces != tuple(int(v) for v in pieces):
        raise OccbenchError(f"pieces {p['pieces']!r}: give whole numbers, e.g. 1,2")
    furniture = (p["furniture"],) if isinstance(p["furniture"], str) else tuple(p["furniture"])
    for name in furniture:
        if name not in FURNITURE:
            raise OccbenchError(f"unknown furniture {name!r}: use some of {', '.join(FURNITURE)}")
    if not furniture:
        raise OccbenchError(f"furniture: name at least one of {', '.join(FURNITURE)}")
    return {
        "pieces": (int(pieces[0]), int(pieces[1])),
        "furniture": furniture,
        "distance": _pair("distance", p["distance"], 0.0, 1.0),
        "shift": _pair("shift", p["shift"], -5.0, 5.0),
        "yaw": _pair("yaw", p["yaw"], -360.0, 360.0),
        "scale": _number("scale", p["scale"], 0.1, 5.0),
        "clearance": _number("clearance", p["clearance"], 0.0, 5.0),
        "tilt": "auto" if p["tilt"] == "auto" else _number("tilt", p["tilt"], -_MAX_TILT, _MAX_TILT),
    }


def _number(name: str, value, lo: float, hi: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise OccbenchError(f"{name} {value!r}: not a number; give a value in [{lo:g}, {hi:g}]") from None
    if not lo <= value <= hi:
        raise OccbenchError(f"{name} {value:g} is outside [{lo:g}, {hi:g}]; choose a value inside it")
    return value


def _pair(name: str, value, lo: float, hi: float) -> tuple[float, float]:
    if isinstance(value, str):
        value = value.split(",")
    try:
        a, b = (_number(name, v, lo, hi) for v in value)
    except (TypeError, ValueError):
        raise OccbenchError(f"{name} {value!r}: give a range as two numbers, e.g. {lo:g},{hi:g}") from None
    if a > b:
        raise OccbenchError(f"{name} {a:g},{b:g}: the range is reversed; give the smaller number first")
    return a, b


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def sample_rng(seed: int, name: str) -> np.random.Generator:
    """The RNG of one sample: a function of the seed and the sample name only."""
    digest = hashlib.sha256(name.encode()).digest()
    return np.random.default_rng([int(seed), *np.frombuffer(digest[:16], np.uint32).tolist()])


def apply_occlusion(arrays: dict, occluded: np.ndarray) -> dict:
    """New data and mask with `occluded` (N, T, V, M) hidden; absent bodies are never touched."""
    occluded = occluded & np.asarray(arrays["present"], bool)[:, :, None, :]
    mask = np.asarray(arrays["mask"], bool) & ~occluded
    data = np.where(mask[:, None], arrays["data"], 0).astype(np.float32)
    return {"data": data, "mask": mask}


# --- random -------------------------------------------------------------------------------------


def random_occlusion(present: np.ndarray, names: list[str], seed: int, fraction: float) -> np.ndarray:
    """(N, T, V, M) bool: per sample, round(fraction * present joint-frames) joint-frames at random."""
    n, frames, bodies = present.shape
    occluded = np.zeros((n, frames, NUM_JOINTS, bodies), bool)
    for i, name in enumerate(names):
        candidates = np.flatnonzero(np.broadcast_to(present[i][:, None, :], occluded.shape[1:]))
        k = int(round(fraction * len(candidates)))
        chosen = sample_rng(seed, name).choice(candidates, size=k, replace=False)
        occluded[i].flat[chosen] = True
    return occluded


# --- realistic: ray casting ---------------------------------------------------------------------


def rotation_x(angle) -> np.ndarray:
    """(..., 3, 3) Rx(angle): camera coordinates -> the levelled frame when angle is the camera's tilt."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([one, zero, zero], -1), np.stack([zero, c, -s], -1), np.stack([zero, s, c], -1)], -2)


def rotation_y(angle) -> np.ndarray:
    """(..., 3, 3) Ry(angle): a box's own axes -> the levelled frame when angle is its yaw."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(c), np.zeros_like(c)
    return np.stack([np.stack([c, zero, s], -1), np.stack([zero, one, zero], -1), np.stack([-s, zero, c], -1)], -2)


def segment_hits_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether the segment from the camera (origin) to each point meets each box: bool (..., K).

    points (..., 3); boxes (..., K, 9) rows as in OCCLUDER_FIELDS (or 8 without the kind column),
    their leading dimensions broadcast with those of points. Boxes are closed (a segment touching a
    face or edge hits) and solid (a point inside a box hits). Rows of kind 0 never hit.
    """
    points = np.asarray(points)
    dtype = np.result_type(points.dtype, np.asarray(boxes).dtype, np.float32)
    point = points[..., None, :].astype(dtype, copy=False)
    return _hits(point[..., 0], point[..., 1], point[..., 2], _slab_bounds(boxes, dtype))


def _slab_bounds(boxes: np.ndarray, dtype=np.float32) -> np.ndarray:
    """(15, ..., K): per box, in its own frame, where its slabs lie (low x y z, high x y z), then the
    rotation from camera coordinates to its own frame (row-major). Empty rows get an unreachable slab."""
    boxes = np.asarray(boxes, dtype)
    to_box = np.swapaxes(rotation_y(boxes[..., YAW]), -1, -2) @ rotation_x(boxes[..., TILT])
    centre = (to_box @ boxes[..., 0:3, None])[..., 0]
    low, high = centre - boxes[..., 3:6], centre + boxes[..., 3:6]
    if boxes.shape[-1] > KIND:  # an infinitely far y slab is never entered
        empty = boxes[..., KIND] == 0
        low[..., 1][empty], high[..., 1][empty] = np.inf, np.inf
    rows = [to_box[..., i, j] for i in range(3) for j in range(3)]
    return np.stack([*np.moveaxis(low, -1, 0), *np.moveaxis(high, -1, 0), *rows]).astype(dtype, copy=False)


def _hits(px: np.ndarray, py: np.ndarray, pz: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    # The segment is t * point, t in [0, 1]; in a box's frame it has direction d, and it is inside the
    # slab of one axis for t between low / d and high / d. A direction of 0 gives infinities that rule
    # the slab in or out for every t (fmin/fmax skip the NaN of a segment lying in a face plane that
    # passes through the camera).
    enter, leave = 0, 1
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(3):
            m = bounds[6 + 3 * axis : 9 + 3 * axis]
            inverse = 1 / (m[0] * px + m[1] * py + m[2] * pz)
            t1, t2 = bounds[axis] * inverse, bounds[3 + axis] * inverse
            enter = np.fmax(enter, np.fmin(t1, t2))
            leave = np.fmin(leave, np.fmax(t1, t2))
    return enter <= leave


def occluded_by_boxes(
    data: np.ndarray, boxes: np.ndarray, where: np.ndarray | None = None, batch_elements: int = 65536
) -> np.ndarray:
    """(N, T, V, M) bool: joints of data (N, 3, T, V, M) hidden by any of their sample's boxes (N, K, 9).

    Only the joints in `where` (N, T, V, M; default all) are tested, the rest are False. All samples,
    frames, joints and boxes are tested at once, in batches small enough to stay in the CPU cache.
    """
    points = np.moveaxis(np.asarray(data, np.float32), 1, -1)  # (N, T, V, M, 3)
    occluded = np.zeros(points.shape[:-1], bool)
    where = np.ones(occluded.shape, bool) if where is None else np.asarray(where, bool)
    index = np.flatnonzero(where)
    sample = index // where[0].size
    tested = points.reshape(-1, 3)[index]
    used = (boxes[..., KIND] != 0).sum(axis=1)  # rows are filled from the front
    # Samples with the same number of boxes go together, so no time is spent on empty rows.
    for k in np.unique(used[used > 0]):
        group = used[sample] == k
        hits = _any_hit(tested[group], sample[group], _slab_bounds(boxes[:, :k]), batch_elements)
        occluded.flat[index[group]] = hits
    return occluded


def _any_hit(points: np.ndarray, sample: np.ndarray, bounds: np.ndarray, batch_elements: int) -> np.ndarray:
    """(P,) whether each point (P, 3) is hidden by any box of its sample (bounds (15, N, k))."""
    hits = np.zeros(len(points), bool)
    step = max(1, batch_elements // bounds.shape[-1])
    for start in range(0, len(points), step):
        part = slice(start, start + step)
        xyz = points[part, :, None]
        own = bounds.take(sample[part], axis=1)  # (15, P, k): each point with its own sample's boxes
        hits[part] = _hits(xyz[:, 0], xyz[:, 1], xyz[:, 2], own).any(axis=-1)
    return hits


# --- realistic: furniture -----------------------------------------------------------------------


def _slab(x0: float, x1: float, y0: float, y1: float, z0: float, z1: float) -> list[float]:
    """A box given by its extents, as centre + half sizes."""
    return [(x0 + x1) / 2, (y0 + y1) / 2, (z0 + z1) / 2, (x1 - x0) / 2, (y1 - y0) / 2, (z1 - z0) / 2]


def _legs(w: float, d: float, top: float, side: float, inset: float) -> list[list[float]]:
    x, z = w / 2 - inset - side / 2, d / 2 - inset - side / 2
    return [_slab(a - side / 2, a + side / 2, 0, top, b - side / 2, b + side / 2) for a in (-x, x) for b in (-z, z)]


def _table(u: Callable) -> list[list[float]]:
    w, d, h, t = u(0.8, 1.6), u(0.6, 0.9), u(0.70, 0.78), u(0.03, 0.05)
    return [_slab(-w / 2, w / 2, h - t, h, -d / 2, d / 2), *_legs(w, d, h - t, u(0.04, 0.07), u(0.02, 0.08))]


def _low_table(u: Callable) -> list[list[float]]:
    w, d, h, t = u(0.9, 1.3), u(0.5, 0.7), u(0.40, 0.50), u(0.03, 0.06)
    return [_slab(-w / 2, w / 2, h - t, h, -d / 2, d / 2), *_legs(w, d, h - t, u(0.04, 0.08), u(0.0, 0.05))]


def _chair(u: Callable) -> list[list[float]]:
    w, d, seat, t = u(0.40, 0.50), u(0.40, 0.50), u(0.42, 0.48), u(0.03, 0.06)
    back, thick = u(0.80, 1.00), u(0.02, 0.05)
    return [
        _slab(-w / 2, w / 2, seat - t, seat, -d / 2, d / 2),
        _slab(-w / 2, w / 2, seat, back, d / 2 - thick, d / 2),  # the back is on the chair's +z side
        *_legs(w, d, seat - t, u(0.03, 0.04), 0.0),
    ]


def _sofa(u: Callable) -> list[list[float]]:
    w, d, seat, back, depth = u(1.4, 2.2), u(0.8, 1.0), u(0.38, 0.46), u(0.75, 0.95), u(0.15, 0.25)
    arm, arm_h = u(0.10, 0.20), u(0.55, 0.65)
    front = d / 2 - depth
    return [
        _slab(-w / 2 + arm, w / 2 - arm, 0, seat, -d / 2, front),
        _slab(-w / 2, w / 2, 0, back, front, d / 2),
        _slab(-w / 2, -w / 2 + arm, 0, arm_h, -d / 2, front),
        _slab(w / 2 - arm, w / 2, 0, arm_h, -d / 2, front),
    ]


def _shelf(u: Callable) -> list[list[float]]:
    w, d, h, t, plinth = u(0.6, 1.0), u(0.28, 0.40), u(0.75, 1.5), u(0.02, 0.04), u(0.05, 0.10)
    boards = [plinth + (h - plinth) * k / 3 for k in (1, 2)]
    boxes = [
        _slab(-w / 2, -w / 2 + t, 0, h, -d / 2, d / 2),
        _slab(w / 2 - t, w / 2, 0, h, -d / 2, d / 2),
        _slab(-w / 2 + t, w / 2 - t, h - t, h, -d / 2, d / 2),
        _slab(-w / 2 + t, w / 2 - t, 0, plinth, -d / 2, d / 2),
        *(_slab(-w / 2 + t, w / 2 - t, y - t / 2, y + t / 2, -d / 2, d / 2) for y in boards),
    ]
    if u(0, 1) < 0.5:  # a bookcase with a back panel rather than an open shelf
        boxes.append(_slab(-w / 2 + t, w / 2 - t, plinth, h - t, d / 2 - 0.01, d / 2))
    return boxes


def _cabinet(u: Callable) -> list[list[float]]:
    w, d, h = u(0.6, 1.2), u(0.4, 0.6), u(0.7, 1.1)
    return [_slab(-w / 2, w / 2, 0, h, -d / 2, d / 2)]


_BUILDERS = {
    "table": _table, "chair": _chair, "sofa": _sofa, "shelf": _shelf, "cabinet": _cabinet,
    "low_table": _low_table,
}


def build_furniture(kind: str, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """(B, 6) boxes (centre, half sizes) of one random piece in its own frame: floor at y = 0,
    footprint centred on x = z = 0, the front (a chair's seat, a sofa's seat) towards -z."""
    if kind not in _BUILDERS:
        raise OccbenchError(f"unknown furniture {kind!r}: use one of {', '.join(FURNITURE)}")
    return np.array(_BUILDERS[kind](lambda lo, hi: rng.uniform(lo, hi)), np.float64) * scale


def place_furniture(
    local: np.ndarray, yaw: float, position: np.ndarray, kind: str, tilt: float = 0.0
) -> np.ndarray:
    """(B, 9) occluder rows: `local` boxes turned by `yaw` about the vertical and moved so that the
    piece's own origin (its footprint centre on the floor) lands on `position` (x, floor y, z in the
    levelled frame of a camera tilted by `tilt`); the rows hold their centres in camera space."""
    levelled = local[:, :3] @ rotation_y(yaw).T + position
    centre = levelled @ rotation_x(tilt)  # Rx(tilt)^T: levelled frame -> camera space
    columns = [np.full((len(local), 1), v) for v in (yaw, tilt, FURNITURE.index(kind) + 1)]
    return np.concatenate([centre, local[:, 3:6], *columns], axis=1)


def estimate_tilt(points: np.ndarray, mask: np.ndarray) -> float:
    """The camera's pitch (radians) that makes the person's median spine direction vertical.

    points (T, V, M, 3) camera space; mask (T, V, M). People are upright most of the time, standing
    or sitting, so the spine base -> spine shoulder direction is a usable estimate of "up".
    """
    both = mask[:, SPINE_BASE] & mask[:, SPINE_SHOULDER]
    spine = points[:, SPINE_SHOULDER][both] - points[:, SPINE_BASE][both]
    if len(spine) == 0:
        return 0.0
    angle = np.median(np.arctan2(-spine[:, 2], spine[:, 1]))
    return float(np.clip(angle, -np.deg2rad(_MAX_TILT), np.deg2rad(_MAX_TILT)))


def furniture_for_sample(rng: np.random.Generator, data: np.ndarray, mask: np.ndarray, params: dict) -> np.ndarray:
    """(7 * max pieces, 9) float32 occluder rows for one sample (data (3, T, V, M), mask (T, V, M))."""
    rows = np.zeros((BOXES_PER_PIECE * params["pieces"][1], len(OCCLUDER_FIELDS)), np.float32)
    mask = np.asarray(mask, bool)
    if not mask.any():  # nothing visible: nothing to hide
        return rows
    points = np.moveaxis(np.asarray(data, np.float64), 0, -1)  # (T, V, M, 3)
    tilt = estimate_tilt(points, mask) if params["tilt"] == "auto" else float(np.deg2rad(params["tilt"]))
    target, floor = _person_anchor(points, mask, tilt)
    reach = max(float(np.hypot(target[0], target[2])), 1e-6)
    ahead = np.array([target[0], target[2]]) / reach  # horizontal unit vector towards the person
    side = np.array([ahead[1], -ahead[0]])
    placed, footprints = [], []
    for _ in range(rng.integers(params["pieces"][0], params["pieces"][1] + 1)):
        kind = params["furniture"][rng.integers(len(params["furniture"]))]
        local = build_furniture(kind, rng, params["scale"])
        for _ in range(_PLACEMENT_TRIES):
            yaw = float(np.deg2rad(rng.uniform(*params["yaw"])))
            corners = _plan_corners(local, yaw)
            # Keep the whole footprint off the camera and `clearance` short of the person.
            near, far = -(corners @ ahead).min(), (corners @ ahead).max()
            lo = _CAMERA_CLEARANCE + near
            along = np.clip(rng.uniform(*params["distance"]) * reach, lo, max(lo, reach - params["clearance"] - far))
            spot = ahead * along + side * rng.uniform(*params["shift"])
            footprint = np.stack([(corners + spot).min(axis=0), (corners + spot).max(axis=0)])
            if not any(_overlap(footprint, other) for other in footprints):
                break
        else:
            continue  # no free spot for this piece: leave it out
        footprints.append(footprint)
        placed.append(place_furniture(local, yaw, np.array([spot[0], floor, spot[1]]), kind, tilt))
    if placed:
        placed = np.concatenate(placed)
        rows[: len(placed)] = placed
    return rows


def _person_anchor(points: np.ndarray, mask: np.ndarray, tilt: float) -> tuple[np.ndarray, float]:
    """The person's spine base (median over visible frames and bodies) and the floor height, both in
    the levelled frame. points (T, V, M, 3) camera space, mask (T, V, M) with something visible."""
    level = rotation_x(tilt).T  # row vectors: p @ Rx^T = (Rx p)^T
    spine = points[:, SPINE_BASE][mask[:, SPINE_BASE]]
    feet = points[:, list(FEET)][mask[:, list(FEET)]]
    anywhere = points[mask] if len(spine) == 0 or len(feet) == 0 else None
    target = np.median((spine if len(spine) else anywhere) @ level, axis=0)
    heights = ((feet if len(feet) else anywhere) @ level)[:, 1]
    return target, float(np.percentile(heights, _FLOOR_PERCENTILE))


def _plan_corners(local: np.ndarray, yaw: float) -> np.ndarray:
    """(4B, 2) floor-plan (x, z) corners of a piece's boxes after its yaw, relative to its origin."""
    signs = np.array([[-1, -1], [-1, 1], [1, -1], [1, 1]])
    corners = (local[:, None, [0, 2]] + signs * local[:, None, [3, 5]]).reshape(-1, 2)
    c, s = np.cos(yaw), np.sin(yaw)
    return corners @ np.array([[c, -s], [s, c]])  # x' = c x + s z, z' = -s x + c z


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool((a[0] < b[1]).all() and (b[0] < a[1]).all())


# --- report -------------------------------------------------------------------------------------


def occluded_fraction(dataset: SkeletonDataset, split: str | None = None, part: str | None = None) -> float:
    """The fraction (0..1) of present joint-frames hidden (mask False) in `dataset`, or in one split's part.

    The whole pool without a split; all of a split's parts without a part. It counts every hidden joint
    of a present body, so on an occluded copy it includes joints the source already lacked (none on
    the embedded data, whose clean copy measures 0).
    """
    if part is not None and split is None:
        raise OccbenchError(f"part {part!r}: name the split too, e.g. split='xsub', part={part!r}")
    rows = np.arange(len(dataset))
    if split is not None:
        if split not in dataset.splits:
            raise OccbenchError(f"{dataset.path}: no split {split!r}; use one of {', '.join(dataset.splits)}")
        parts = dataset.splits[split]
        if part is not None and part not in parts:
            raise OccbenchError(f"{dataset.path}: split {split} has no part {part!r}; use one of {', '.join(parts)}")
        rows = parts[part] if part is not None else np.concatenate([*parts.values()])
    occluded, present = _hidden_counts(dataset, np.unique(np.asarray(rows, np.int64)))
    if present.sum() == 0:
        where = "" if split is None else f" {split}" + ("" if part is None else f"/{part}")
        raise OccbenchError(f"{dataset.path}{where}: no present joint-frames to measure occlusion on")
    return float(occluded.sum() / (present.sum() * NUM_JOINTS))


def _hidden_counts(dataset: SkeletonDataset, rows: np.ndarray, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per sample of `rows` (sorted, unique): hidden joint-frames per joint (n, V), present body-frames (n,)."""
    occluded = np.zeros((len(rows), NUM_JOINTS), np.int64)
    present = np.zeros(len(rows), np.int64)
    for start in range(0, len(rows), chunk):
        index = rows[start : start + chunk]
        contiguous = len(index) and index[-1] - index[0] == len(index) - 1
        picked = slice(index[0], index[-1] + 1) if contiguous else index  # a slice reads the memmap in one go
        body_frames = np.asarray(dataset.present[picked], bool)
        hidden = body_frames[:, :, None, :] & ~np.asarray(dataset.mask[picked], bool)
        occluded[start : start + len(index)] = hidden.sum(axis=(1, 3))
        present[start : start + len(index)] = body_frames.sum(axis=(1, 2))
    return occluded, present


def occlusion_report(dataset: SkeletonDataset, chunk: int = 1024) -> pd.DataFrame:
    """Occluded fraction per joint over present joint-frames, plus an "all" row.

    Index: joint (0..24, then "all"). Columns: name, group (head/torso/arms/legs), present and
    occluded (joint-frame counts over the whole pool), fraction, and one fraction column per
    "split/part" (e.g. "xsub/train").
    """
    n = len(dataset)
    occluded, present = _hidden_counts(dataset, np.arange(n), chunk)
    group_of = {j: g for g, joints in JOINT_GROUPS.items() for j in joints}
    table = pd.DataFrame(
        {
            "name": [*JOINT_NAMES, "all"],
            "group": [group_of[j] for j in range(NUM_JOINTS)] + ["all"],
            "present": [int(present.sum())] * NUM_JOINTS + [int(present.sum()) * NUM_JOINTS],
            "occluded": [*occluded.sum(axis=0).tolist(), int(occluded.sum())],
        },
        index=pd.Index([*range(NUM_JOINTS), "all"], name="joint", dtype=object),
    )
    table["fraction"] = _fractions(occluded, present, np.arange(n))
    for split, parts in dataset.splits.items():
        for part, index in parts.items():
            table[f"{split}/{part}"] = _fractions(occluded, present, index)
    return table


def _fractions(occluded: np.ndarray, present: np.ndarray, index: np.ndarray) -> list[float]:
    total = present[index].sum()
    counts = occluded[index].sum(axis=0)
    if total == 0:
        return [float("nan")] * (NUM_JOINTS + 1)
    return [*(counts / total).tolist(), float(counts.sum() / (total * NUM_JOINTS))]

