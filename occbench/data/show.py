"""Draw one sample: a few frames as the camera sees them (top row) and from above (bottom row).

The camera view is a perspective projection (x/z, y/z), so a joint hidden by furniture lies inside
the furniture's silhouette there. The top view is a floor plan (x, z after undoing the camera's
pitch, as occlusion.py estimates it) with the camera at the bottom and the Kinect v2 depth field of
view; it shows the furniture standing between the camera and the person.

Occluded joints have lost their coordinates. When the dataset was written by `occlude` (its last
stage) and that stage's source dataset still exists, they are drawn in red at their true positions
from the source; otherwise they are left out.
For a `.skeleton` file the joints the Kinect marked "inferred" are drawn the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's backend alone
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon

from occbench.data import ntu
from occbench.data.dataset import SkeletonDataset
from occbench.data.occlusion import KIND, TILT, YAW, estimate_tilt, rotation_x, rotation_y
from occbench.data.skeleton import INFERRED, read_skeleton
from occbench.errors import OccbenchError

BODY_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:olive", "tab:cyan", "tab:gray")
HIDDEN_COLOUR = "tab:red"
FURNITURE_COLOUR = "saddlebrown"
DEPTH_FOV = np.deg2rad(70.6)  # Kinect v2 depth camera, horizontal


@dataclass
class View:
    """What to draw, with bodies before joints: (T, M, V, ...)."""

    name: str
    xyz: np.ndarray  # float (T, M, V, 3); true positions of hidden joints where `known`
    present: np.ndarray  # bool (T, M)
    hidden: np.ndarray  # bool (T, M, V): occluded (or Kinect-inferred) joints of present bodies
    known: np.ndarray  # bool (T, M, V): joints whose position can be drawn
    length: int
    boxes: np.ndarray | None  # (K, 9) occluder rows, see OCCLUDER_FIELDS in occbench.data.occlusion
    class_name: str | None
    hidden_label: str  # "occluded" or "Kinect-inferred"
    note: str  # second title line

    @property
    def tilt(self) -> float:
        """The camera pitch: the one the occluders were placed under, else estimated from the spine."""
        if self.boxes is not None and (self.boxes[:, KIND] != 0).any():
            return float(self.boxes[self.boxes[:, KIND] != 0][0, TILT])
        visible = (self.known & ~self.hidden & self.present[:, :, None]).transpose(0, 2, 1)
        return estimate_tilt(self.xyz.transpose(0, 2, 1, 3), visible)


def show_sample(
    sample: str | Path | int, out: str | Path, data: str | Path | None = None, frames: int = 4
) -> Path:
    """Draw `frames` evenly spaced frames of a sample to the image `out` and return its path.

    sample: a `.skeleton` file, or a sample name or index (int or digits) in the prepared dataset at `data`.
    out: an image file (.png, .pdf, .svg), or a directory to write <sample name>.png into.
    """
    if frames < 1:
        raise OccbenchError(f"frames {frames}: draw at least 1 frame")
    if not isinstance(sample, int) and Path(sample).is_file():
        view = _from_file(Path(sample))
    elif data is not None:
        view = _from_dataset(SkeletonDataset(data), sample if isinstance(sample, int) else str(sample))
    elif str(sample).endswith(".skeleton") or "/" in str(sample):
        raise OccbenchError(f"{sample}: no such .skeleton file; check the path")
    else:
        raise OccbenchError(f"sample {sample!r}: not a .skeleton file; pass --data DIR to find it in a dataset")
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / f"{view.name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    figure = _draw(view, _pick_frames(view, frames))
    figure.savefig(out, dpi=110)
    return out


# --- loading ------------------------------------------------------------------------------------


def _from_file(path: Path) -> View:
    seq = read_skeleton(path)
    present = seq.tracking[:, :, 0] >= 0
    hidden = (seq.tracking == INFERRED) & present[:, :, None]
    return View(
        name=seq.name, xyz=seq.xyz, present=present, hidden=hidden,
        known=np.broadcast_to(present[:, :, None], hidden.shape), length=seq.frames, boxes=None,
        class_name=_ntu_class(seq.name, None), hidden_label="Kinect-inferred",
        note=f"{path.name}: inferred joints in red, at the position the Kinect guessed",
    )


def _from_dataset(ds: SkeletonDataset, key: str | int) -> View:
    i = ds.sample(key)
    name = ds.names[i]
    xyz = np.array(ds.data[i], np.float32).transpose(1, 3, 2, 0)  # (T, M, V, 3), a writable copy
    mask = np.asarray(ds.mask[i]).transpose(0, 2, 1)
    present = np.asarray(ds.present[i])
    hidden = present[:, :, None] & ~mask
    known = mask.copy()
    stages = ds.meta.get("stages", [])
    stage = stages[-1] if stages else {}
    note = ""
    if stage.get("stage") == "occlude":
        note = f"{stage.get('kind')} occlusion, seed {stage.get('seed')}; "
        truth = _true_positions(stage.get("source"), name, xyz.shape)
        if truth is None:
            note += "occluded joints not drawn (the source dataset is gone or changed)"
        else:
            true_xyz, true_known = truth
            fill = hidden & true_known
            xyz[fill], known = true_xyz[fill], known | fill
            note += "occluded joints in red at their true positions"
    labels = ds.meta.get("class_names")
    label = int(ds.label[i])
    class_name = labels[label] if labels and label < len(labels) else _ntu_class(name, label)
    return View(
        name=name, xyz=xyz, present=present, hidden=hidden, known=known, length=int(ds.length[i]),
        boxes=np.asarray(ds.extra["occluders"][i]) if "occluders" in ds.extra else None, class_name=class_name,
        hidden_label="occluded", note=note or f"{ds.path.name}",
    )


def _true_positions(source: str | None, name: str, shape: tuple) -> tuple[np.ndarray, np.ndarray] | None:
    """The source dataset's positions and visibility for `name`, if it still exists and fits."""
    if not source:
        return None
    try:
        ds = SkeletonDataset(source)
        i = ds.sample(name)
    except OccbenchError:
        return None
    xyz = np.asarray(ds.data[i], np.float32).transpose(1, 3, 2, 0)
    if xyz.shape != shape:
        return None
    return xyz, np.asarray(ds.mask[i]).transpose(0, 2, 1)


def _ntu_class(name: str, label: int | None) -> str | None:
    try:
        label = ntu.parse_name(name).label if label is None else label
    except OccbenchError:
        return None
    names = ntu.class_names("ntu120")
    return names[label] if 0 <= label < len(names) else None


def _pick_frames(view: View, count: int) -> np.ndarray:
    candidates = np.flatnonzero(view.present[: view.length].any(axis=1))
    if len(candidates) == 0:
        raise OccbenchError(f"sample {view.name}: no body in any frame; nothing to draw")
    picks = np.linspace(0, len(candidates) - 1, min(count, len(candidates))).round().astype(int)
    return candidates[np.unique(picks)]


# --- drawing ------------------------------------------------------------------------------------


def _draw(view: View, frames: np.ndarray) -> Figure:
    figure = Figure(figsize=(3.0 * len(frames) + 0.6, 7.4), layout="constrained")
    axes = figure.subplots(2, len(frames), squeeze=False, height_ratios=(1, 1.1))
    camera = _camera_view
    plan = partial(_plan_view, tilt=view.tilt)
    limits = {camera: _camera_limits(view, frames), plan: _plan_limits(view, frames, plan)}
    for column, t in enumerate(frames):
        front, top = axes[0, column], axes[1, column]
        for ax, project in ((front, camera), (top, plan)):
            _draw_frame(ax, view, t, project)
            _draw_boxes(ax, view.boxes, project)
            ax.set_xlim(limits[project][0])
            ax.set_ylim(limits[project][1])
            ax.set_aspect("equal")
            ax.tick_params(labelsize=7)
        _draw_camera(top, limits[plan][1][1])
        front.set_title(f"frame {t + 1} of {view.length}", fontsize=9)
        front.set_xlabel("x / z  (as the camera sees it)", fontsize=8)
        top.set_xlabel("x (m)  (from above, levelled)", fontsize=8)
    axes[0, 0].set_ylabel("y / z", fontsize=8)
    axes[1, 0].set_ylabel("depth (m)", fontsize=8)
    figure.suptitle(_title(view), fontsize=10)
    figure.legend(handles=_legend(view), loc="outside lower center", ncol=4, fontsize=8, frameon=False)
    return figure


def _title(view: View) -> str:
    fraction = view.hidden.sum() / max(1, view.present.sum() * ntu.NUM_JOINTS)
    parts = [view.name, view.class_name, f"{view.hidden_label} {fraction:.1%} of joint-frames"]
    return " · ".join(p for p in parts if p) + (f"\n{view.note}" if view.note else "")


def _camera_view(points: np.ndarray) -> np.ndarray:
    """Perspective projection: where a point appears to the camera."""
    z = np.maximum(points[..., 2], 1e-3)
    return np.stack([points[..., 0] / z, points[..., 1] / z], -1)


def _plan_view(points: np.ndarray, tilt: float) -> np.ndarray:
    """Floor plan (x, z) in the levelled frame of a camera pitched by `tilt` (see occlusion.py)."""
    return (points @ rotation_x(tilt).T)[..., [0, 2]]


def _draw_frame(ax, view: View, t: int, project) -> None:
    for m in np.flatnonzero(view.present[t]):
        colour = BODY_COLOURS[m % len(BODY_COLOURS)]
        known, hidden = view.known[t, m], view.hidden[t, m]
        xy = project(view.xyz[t, m])
        for child, parent in ntu.EDGES:
            if known[child] and known[parent]:
                either = hidden[child] or hidden[parent]
                ax.plot(*xy[[child, parent]].T, color=HIDDEN_COLOUR if either else colour,
                        ls="--" if either else "-", lw=1.0 if either else 1.6, alpha=0.8)
        ax.scatter(*xy[known & ~hidden].T, s=10, color=colour, zorder=3)
        ax.scatter(*xy[known & hidden].T, s=22, marker="x", color=HIDDEN_COLOUR, zorder=4, lw=1.2)


def _box_corners(box: np.ndarray) -> np.ndarray:
    """(8, 3) camera-space corners of an occluder row (see OCCLUDER_FIELDS in occlusion.py)."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    # Row vectors: own axes -> levelled frame (Ry) -> camera space (Rx transposed).
    return (signs * box[3:6]) @ rotation_y(box[YAW]).T @ rotation_x(box[TILT]) + box[:3]


def _draw_boxes(ax, boxes: np.ndarray | None, project) -> None:
    if boxes is None:
        return
    for box in boxes[boxes[:, KIND] != 0]:
        corners = _box_corners(box)
        if (corners[:, 2] <= 0.05).any():  # not wholly in front of the camera: no silhouette
            continue
        # The projection of a convex box is the convex hull of its projected corners.
        ax.add_patch(Polygon(_hull(project(corners)), facecolor=FURNITURE_COLOUR, edgecolor=FURNITURE_COLOUR,
                             alpha=0.3, lw=0.8, zorder=2))


def _hull(points: np.ndarray) -> np.ndarray:
    """Convex hull of 2D points, counter-clockwise (Andrew's monotone chain)."""
    pts = sorted(map(tuple, np.round(points, 9)))

    def turns_left(a, b, c) -> bool:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]) > 0

    def chain(seq) -> list:
        kept: list = []
        for p in seq:
            while len(kept) >= 2 and not turns_left(kept[-2], kept[-1], p):
                kept.pop()
            kept.append(p)
        return kept[:-1]

    return np.array(chain(pts) + chain(reversed(pts)))


def _draw_camera(top, depth: float) -> None:
    top.plot([0], [0], marker="^", ms=9, color="black", zorder=5)
    for sign in (-1, 1):
        top.plot([0, depth * np.tan(sign * DEPTH_FOV / 2)], [0, depth], color="gray", lw=0.6, ls=":")


def _shown_points(view: View, frames: np.ndarray) -> np.ndarray:
    points = view.xyz[frames][view.known[frames] & view.present[frames][:, :, None]]
    if len(points) == 0:  # every joint hidden and its true position unknown
        points = np.array([[-0.5, -1.0, 3.0], [0.5, 1.0, 3.0]])
    return points


def _camera_limits(view: View, frames: np.ndarray):
    # Around the person only: furniture near the camera may fill much of the field of view.
    xy = _camera_view(_shown_points(view, frames))
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = 0.3 * (hi - lo).max() + 0.02
    return (lo[0] - pad, hi[0] + pad), (lo[1] - pad, hi[1] + pad)


def _plan_limits(view: View, frames: np.ndarray, plan):
    xz = [plan(_shown_points(view, frames)), np.zeros((1, 2))]
    if view.boxes is not None:
        xz += [plan(_box_corners(box)) for box in view.boxes[view.boxes[:, KIND] != 0]]
    xz = np.concatenate(xz)
    lo, hi = xz.min(axis=0) - 0.3, xz.max(axis=0) + 0.3
    return (lo[0], hi[0]), (min(lo[1], -0.2), hi[1])


def _legend(view: View) -> list:
    bodies = min(int(view.present.any(axis=0).sum()), len(BODY_COLOURS)) or 1
    handles = [
        Line2D([], [], color=BODY_COLOURS[m], marker="o", ms=4, label=f"body {m + 1}") for m in range(bodies)
    ]
    handles.append(Line2D([], [], color=HIDDEN_COLOUR, marker="x", ls="--", label=f"{view.hidden_label} joint"))
    if view.boxes is not None:
        handles.append(Patch(facecolor=FURNITURE_COLOUR, alpha=0.3, label="occluder (furniture)"))
    return handles
