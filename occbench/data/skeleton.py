"""Read and write NTU RGB+D `.skeleton` text files.

Layout (shahroudy/NTURGB-D, Matlab/read_skeleton_file.m): the frame count; per frame a body count; per
body a 10-field info line (bodyID, clippedEdges, hand states and confidences, isRestricted, leanX,
leanY, trackingState), the joint count (25) and 25 joint lines of 12 fields (x y z, depthX depthY,
colorX colorY, orientation w x y z, trackingState). Lines end in CRLF or LF.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from occbench.data.ntu import NUM_JOINTS
from occbench.errors import SkeletonFormatError, read_bytes

JOINT_FIELDS = 12
INFO_FIELDS = 10
TRACKED, INFERRED, NOT_TRACKED = 2, 1, 0  # Kinect v2 trackingState
FLOAT32_MAX = float(np.finfo(np.float32).max)

# Kinect v2 intrinsics (approximate) used only to write plausible 2D fields in synthetic files.
_DEPTH_F, _DEPTH_C = 365.0, (256.0, 212.0)
_COLOR_F, _COLOR_C = 1081.0, (960.0, 540.0)


@dataclass
class SkeletonSequence:
    """One `.skeleton` file. Body slot m holds the m-th body listed in each frame (as ST-GCN's gendata)."""

    name: str
    xyz: np.ndarray  # float32 (T, B, 25, 3), camera space in metres; 0 where a slot has no body
    tracking: np.ndarray  # int8 (T, B, 25): Kinect trackingState, -1 where a slot has no body
    body_ids: np.ndarray  # int64 (T, B): Kinect tracking ids, 0 where a slot has no body

    @property
    def frames(self) -> int:
        return self.xyz.shape[0]

    @property
    def body_count(self) -> np.ndarray:
        return (self.tracking[:, :, 0] >= 0).sum(axis=1)


def read_skeleton(path: str | Path) -> SkeletonSequence:
    """Parse one file; any deviation from the layout raises SkeletonFormatError naming file and line."""
    path = Path(path)
    if not path.is_file():  # a folder, a dangling link, a FIFO (which would block) or a device
        what = "a folder" if path.is_dir() else "not a regular file" if path.exists() else "missing (a dangling link?)"
        raise SkeletonFormatError(path, None, f"{what}, named like a skeleton file")
    raw = read_bytes(path)
    try:
        lines = raw.decode("ascii").splitlines()
    except UnicodeDecodeError:
        raise SkeletonFormatError(path, None, "not a text file (non-ASCII bytes)") from None
    return _parse(path, lines)


def _parse(path: Path, lines: list[str]) -> SkeletonSequence:
    def fail(index: int, problem: str):
        raise SkeletonFormatError(path, index + 1, problem)

    def integer(index: int, what: str) -> int:
        if index >= len(lines):
            fail(index, f"file ends early: expected {what} (truncated file)")
        fields = lines[index].split()
        if len(fields) != 1 or not fields[0].isdigit():
            fail(index, f"expected {what} (one non-negative integer), got {lines[index].strip()[:40]!r}")
        return int(fields[0])

    if not lines or not "".join(lines).strip():
        raise SkeletonFormatError(path, None, "empty file")
    n_frames = integer(0, "the frame count")
    frame_bodies: list[list[tuple[int, int]]] = []  # per frame: (bodyID, line index of first joint)
    i = 1
    for _ in range(n_frames):
        n_bodies = integer(i, "a body count")
        i += 1
        bodies = []
        for _ in range(n_bodies):
            if i >= len(lines):
                fail(i, "file ends early: expected a body info line (truncated file)")
            info = lines[i].split()
            if len(info) != INFO_FIELDS:
                fail(i, f"expected a body info line of {INFO_FIELDS} fields, got {len(info)}")
            if not info[0].isdigit():
                fail(i, f"body id {info[0][:24]!r} is not an integer")
            joints = integer(i + 1, "the joint count")
            if joints != NUM_JOINTS:
                fail(i + 1, f"expected {NUM_JOINTS} joints per body, got {joints}")
            first = i + 2
            if first + NUM_JOINTS > len(lines):
                fail(len(lines), "file ends inside a body's joint lines (truncated file)")
            for k in range(first, first + NUM_JOINTS):
                if len(lines[k].split()) != JOINT_FIELDS:
                    fail(k, f"expected a joint line of {JOINT_FIELDS} fields, got {len(lines[k].split())}")
            bodies.append((int(info[0]), first))
            i = first + NUM_JOINTS
        frame_bodies.append(bodies)
    for k in range(i, len(lines)):
        if lines[k].strip():
            fail(k, f"unexpected content after the last of {n_frames} frames")

    n_slots = max((len(b) for b in frame_bodies), default=0)
    starts = [first for bodies in frame_bodies for _, first in bodies]
    text = " ".join(lines[k] for first in starts for k in range(first, first + NUM_JOINTS))
    try:
        values = np.array(text.split(), dtype=np.float64).reshape(len(starts), NUM_JOINTS, JOINT_FIELDS)
    except ValueError:
        for first in starts:
            for k in range(first, first + NUM_JOINTS):
                try:
                    [float(v) for v in lines[k].split()]
                except ValueError:
                    fail(k, f"non-numeric field in joint line {lines[k].strip()[:60]!r}")
        raise
    if not np.isfinite(values[:, :, :3]).all():
        body, joint, _ = np.argwhere(~np.isfinite(values[:, :, :3]))[0]
        fail(starts[body] + int(joint), "non-finite joint coordinate (nan or inf)")
    if (np.abs(values[:, :, :3]) > FLOAT32_MAX).any():  # it would become inf in the float32 arrays
        body, joint, _ = np.argwhere(np.abs(values[:, :, :3]) > FLOAT32_MAX)[0]
        fail(starts[body] + int(joint), "joint coordinate beyond float32's range")
    states = values[:, :, 11]
    if not np.isin(states, (NOT_TRACKED, INFERRED, TRACKED)).all():
        body, joint = np.argwhere(~np.isin(states, (NOT_TRACKED, INFERRED, TRACKED)))[0]
        fail(starts[body] + int(joint), f"trackingState {states[body, joint]:g}: expected 0, 1 or 2")

    xyz = np.zeros((n_frames, n_slots, NUM_JOINTS, 3), np.float32)
    tracking = np.full((n_frames, n_slots, NUM_JOINTS), -1, np.int8)
    body_ids = np.zeros((n_frames, n_slots), np.int64)
    frame_of = np.repeat(np.arange(n_frames), [len(b) for b in frame_bodies])
    slot_of = np.concatenate([np.arange(len(b)) for b in frame_bodies]) if starts else np.zeros(0, int)
    xyz[frame_of, slot_of] = values[:, :, :3]
    tracking[frame_of, slot_of] = values[:, :, 11].astype(np.int8)
    body_ids[frame_of, slot_of] = [bid for bodies in frame_bodies for bid, _ in bodies]
    return SkeletonSequence(path.name.removesuffix(".skeleton"), xyz, tracking, body_ids)


def write_skeleton(
    path: str | Path,
    xyz: np.ndarray,
    present: np.ndarray,
    tracking: np.ndarray | None = None,
    body_ids: np.ndarray | None = None,
) -> None:
    """Write a `.skeleton` file in the official layout (CRLF line ends).

    xyz: (T, B, 25, 3) camera-space metres; present: (T, B) bool, which bodies are listed in a frame
    (in slot order); tracking: (T, B, 25) trackingState, default all tracked; body_ids: (B,) ids.
    The 2D depth and colour fields are projected with approximate Kinect v2 intrinsics, the joint
    orientations are written as the identity quaternion.
    """
    xyz = np.asarray(xyz, np.float64)
    n_frames, n_slots = xyz.shape[:2]
    if tracking is None:
        tracking = np.full((n_frames, n_slots, NUM_JOINTS), TRACKED)
    if body_ids is None:
        body_ids = 72057594037927936 + np.arange(n_slots) * 1013 + 1
    z = np.where(np.abs(xyz[..., 2]) < 1e-6, 1e-6, xyz[..., 2])
    depth = np.stack([_DEPTH_C[0] + _DEPTH_F * xyz[..., 0] / z, _DEPTH_C[1] - _DEPTH_F * xyz[..., 1] / z], -1)
    color = np.stack([_COLOR_C[0] + _COLOR_F * xyz[..., 0] / z, _COLOR_C[1] - _COLOR_F * xyz[..., 1] / z], -1)
    # Python floats format several times faster than numpy scalars.
    fields = np.concatenate([xyz, depth, color], axis=-1).tolist()  # (T, B, 25, 7)
    states = np.asarray(tracking, int).tolist()
    row = "%.7g %.7g %.7g %.7g %.7g %.7g %.7g 1 0 0 0 %d"
    out = [str(n_frames)]
    for t in range(n_frames):
        slots = np.flatnonzero(present[t])
        out.append(str(len(slots)))
        for b in slots:
            out.append(f"{int(body_ids[b])} 0 1 1 1 1 0 0 0 2")
            out.append(str(NUM_JOINTS))
            out.extend(row % (*joint, state) for joint, state in zip(fields[t][b], states[t][b], strict=True))
    Path(path).write_bytes(("\r\n".join(out) + "\r\n").encode("ascii"))
