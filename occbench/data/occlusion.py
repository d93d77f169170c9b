"""Occlude a prepared dataset: realistic furniture, random joints, or the Kinect's own "inferred" joints.

Every kind hides joints of present bodies only: an occluded joint gets x=y=z=0 and mask False (the
published occluded-NTU convention), joints that were already hidden stay hidden, `present` and
`inferred` are copied unchanged. Each sample draws from its own RNG seeded by (seed, sample name),
so the result does not depend on chunking or sample order.

realistic
    1 to 2 pieces of furniture (table, chair, sofa, shelf, cabinet, low table) built from oriented
    boxes of random realistic size, turned by a random yaw about the vertical (y) axis and placed
    between the camera (the origin of NTU camera space) and the person: along the horizontal ray to the
    person's spine base at a random fraction of its length, shifted sideways, standing on the estimated
    floor (a low percentile of the person's foot height; the Kinect's tilt is ignored). A joint is
    occluded in a frame when the segment from the camera to it meets a box (slab test, boxes closed:
    touching an edge counts, and a joint inside a box is occluded). The furniture is static over the
    clip, so which joints it hides changes with the motion. The boxes are stored per sample in
    `occluders.npy`, float32 (N, 7 * max pieces, 8), one row per box:
    centre x y z, half size x y z (in the box's own frame), yaw (radians, right-handed about +y: the
    box's own x axis points along (cos yaw, 0, -sin yaw)), kind (1 + index in FURNITURE; 0 = empty row).
random
    The paper's random occlusion: per sample, exactly round(fraction * present joint-frames) joint-frames
    chosen uniformly at random (a joint-level choice per frame; all three coordinates are hidden).
    On an unoccluded source the occluded fraction is therefore `fraction` up to one joint-frame.
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
OCCLUDER_FIELDS = ("cx", "cy", "cz", "hx", "hy", "hz", "yaw", "kind")
MAX_PIECES = 4

SPINE_BASE = 0
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
        "distance": (0.3, 0.75),  # where along the camera-person ray, as a fraction of its length
        "shift": (-0.4, 0.4),  # sideways displacement from the ray, metres
        "yaw": (-180.0, 180.0),  # rotation about the vertical axis, degrees
        "scale": 1.0,  # multiplies every furniture dimension
        "clearance": 0.25,  # metres kept free between the furniture and the person's spine base
    },
    "random": {"fraction": 0.3},
    "inferred": {},
}
_CAMERA_CLEARANCE = 0.5  # the Kinect sees nothing nearer than about 0.5 m
_FLOOR_PERCENTILE = 5  # robust to a few glitched foot positions


def occlude(
    source: SkeletonDataset, out: str | Path, kind: str, seed: int = 0, overwrite: bool = False,
    progress: bool = False, **params,
) -> SkeletonDataset:
    """Write an occluded copy of `source` to `out` (see the module doc for the kinds and `DEFAULTS`)."""
    params = check_params(kind, params)
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
        "params": _jsonable(params), "source": str(source.path),
    }
    if kind == "realistic":
        stage["occluders"] = {"file": "occluders.npy", "fields": list(OCCLUDER_FIELDS), "furniture": FURNITURE}
    return derive(
        source, out, transform, stage, overwrite=overwrite, extra=extra,
        progress=f"occlude {kind}" if progress else None,
    )


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


def segment_hits_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Whether the segment from the camera (origin) to each point meets each box: bool (..., K).

    points (..., 3); boxes (..., K, 7 or 8) as in OCCLUDER_FIELDS, leading dimensions broadcast with
    those of points. Boxes are closed (a segment touching a face or edge hits) and solid (a point inside
    a box hits). Rows whose kind column (if given) is 0 never hit.
    """
    points, boxes = np.asarray(points), np.asarray(boxes)
    dtype = np.result_type(points.dtype, boxes.dtype, np.float32)
    point = points[..., None, :].astype(dtype, copy=False)
    px, py, pz = point[..., 0], point[..., 1], point[..., 2]
    cx, cy, cz = (boxes[..., i].astype(dtype, copy=False) for i in range(3))
    yaw = boxes[..., 6].astype(dtype, copy=False)
    cos, sin = np.cos(yaw), np.sin(yaw)
    # In each box's own frame (the inverse of its yaw): where the camera is, and the segment's direction.
    start = (-(cos * cx - sin * cz), -cy, -(sin * cx + cos * cz))
    direction = (cos * px - sin * pz, py, sin * px + cos * pz)
    enter, leave = np.zeros((), dtype), np.ones((), dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        for axis in range(3):
            half = boxes[..., 3 + axis].astype(dtype, copy=False)
            # Slab test; a direction of 0 gives infinities that rule the slab in or out for all t
            # (fmin/fmax skip the NaN of a segment lying in a face plane through the camera).
            inverse = 1 / direction[axis]
            t1, t2 = (-half - start[axis]) * inverse, (half - start[axis]) * inverse
            enter = np.fmax(enter, np.fmin(t1, t2))
            leave = np.fmin(leave, np.fmax(t1, t2))
    hit = enter <= leave
    if boxes.shape[-1] > 7:
        hit &= boxes[..., 7] != 0
    return hit


def occluded_by_boxes(
    data: np.ndarray, boxes: np.ndarray, where: np.ndarray | None = None, batch_elements: int = 4_000_000
) -> np.ndarray:
    """(N, T, V, M) bool: joints of data (N, 3, T, V, M) hidden by any of their sample's boxes (N, K, 8).

    Only the joints in `where` (N, T, V, M; default all) are tested, the rest are False.
    """
    points = np.moveaxis(np.asarray(data), 1, -1)  # (N, T, V, M, 3)
    occluded = np.zeros(points.shape[:-1], bool)
    k = int((boxes[..., 7] != 0).sum(axis=1).max(initial=0))  # rows are filled from the front
    if k == 0:
        return occluded
    where = np.ones(occluded.shape, bool) if where is None else np.asarray(where, bool)
    sample = np.nonzero(where)[0]
    tested = points[where]  # (P, 3)
    hits = np.zeros(len(tested), bool)
    step = max(1, batch_elements // k)  # bounds the (P, K) temporaries
    for start in range(0, len(tested), step):
        part = slice(start, start + step)
        hits[part] = segment_hits_boxes(tested[part], boxes[sample[part], :k]).any(axis=-1)
    occluded[where] = hits
    return occluded


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


def place_furniture(local: np.ndarray, yaw: float, position: np.ndarray, kind: str) -> np.ndarray:
    """(B, 8) occluder rows: `local` boxes turned by `yaw` about +y and moved so the piece's own origin
    (its footprint centre on the floor) lands on `position` (x, floor y, z)."""
    cos, sin = np.cos(yaw), np.sin(yaw)
    x, z = local[:, 0], local[:, 2]
    centre = np.stack([cos * x + sin * z, local[:, 1], -sin * x + cos * z], -1) + position
    code = np.full((len(local), 1), FURNITURE.index(kind) + 1)
    return np.concatenate([centre, local[:, 3:6], np.full((len(local), 1), yaw), code], axis=1)


def furniture_for_sample(rng: np.random.Generator, data: np.ndarray, mask: np.ndarray, params: dict) -> np.ndarray:
    """(7 * max pieces, 8) float32 occluder rows for one sample (data (3, T, V, M), mask (T, V, M))."""
    rows = np.zeros((BOXES_PER_PIECE * params["pieces"][1], len(OCCLUDER_FIELDS)), np.float32)
    anchor = _person_anchor(data, mask)
    if anchor is None:  # nothing visible: nothing to hide
        return rows
    target, floor = anchor
    reach = float(np.hypot(target[0], target[2]))
    ahead = np.array([target[0], target[2]]) / max(reach, 1e-6)  # horizontal unit vector to the person
    side = np.array([ahead[1], -ahead[0]])
    pieces = rng.integers(params["pieces"][0], params["pieces"][1] + 1)
    boxes = []
    for _ in range(pieces):
        kind = params["furniture"][rng.integers(len(params["furniture"]))]
        local = build_furniture(kind, rng, params["scale"])
        yaw = np.deg2rad(rng.uniform(*params["yaw"]))
        # How far the rotated footprint reaches along the ray, so the piece stays off camera and person.
        extent = _footprint_reach(local, yaw, ahead)
        lo = _CAMERA_CLEARANCE + extent
        hi = max(lo, reach - params["clearance"] - extent)
        along = np.clip(rng.uniform(*params["distance"]) * reach, lo, hi)
        where = ahead * along + side * rng.uniform(*params["shift"])
        boxes.append(place_furniture(local, yaw, np.array([where[0], floor, where[1]]), kind))
    if boxes:
        placed = np.concatenate(boxes)
        rows[: len(placed)] = placed
    return rows


def _person_anchor(data: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float] | None:
    """The person's spine base (median over visible frames and bodies) and the floor height."""
    points = np.moveaxis(np.asarray(data), 0, -1)  # (T, V, M, 3)
    mask = np.asarray(mask, bool)
    if not mask.any():
        return None
    spine = points[:, SPINE_BASE][mask[:, SPINE_BASE]]
    target = np.median(spine if len(spine) else points[mask], axis=0)
    feet = points[:, list(FEET)][mask[:, list(FEET)]]
    heights = feet[:, 1] if len(feet) else points[mask][:, 1]
    return target, float(np.percentile(heights, _FLOOR_PERCENTILE))


def _footprint_reach(local: np.ndarray, yaw: float, ahead: np.ndarray) -> float:
    lo = (local[:, [0, 2]] - local[:, [3, 5]]).min(axis=0)
    hi = (local[:, [0, 2]] + local[:, [3, 5]]).max(axis=0)
    half = (hi - lo) / 2
    # The piece's own x and z axes in world (x, z) after the yaw.
    own_x = np.array([np.cos(yaw), -np.sin(yaw)])
    own_z = np.array([np.sin(yaw), np.cos(yaw)])
    offset = np.abs((lo + hi) / 2 @ np.stack([own_x, own_z]) @ ahead)
    return float(half[0] * abs(own_x @ ahead) + half[1] * abs(own_z @ ahead) + offset)


# --- report -------------------------------------------------------------------------------------


def occlusion_report(dataset: SkeletonDataset, chunk: int = 1024) -> pd.DataFrame:
    """Occluded fraction per joint over present joint-frames, plus an "all" row.

    Index: joint (0..24, then "all"). Columns: name, group (head/torso/arms/legs), present and
    occluded (joint-frame counts over the whole pool), fraction, and one fraction column per
    "split/part" (e.g. "xsub/train").
    """
    n = len(dataset)
    occluded = np.zeros((n, NUM_JOINTS), np.int64)
    present = np.zeros(n, np.int64)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        body_frames = np.asarray(dataset.present[start:stop], bool)
        hidden = body_frames[:, :, None, :] & ~np.asarray(dataset.mask[start:stop], bool)
        occluded[start:stop] = hidden.sum(axis=(1, 3))
        present[start:stop] = body_frames.sum(axis=(1, 2))
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
