"""The embedded default dataset: procedurally generated NTU-like skeleton actions.

Real NTU RGB+D cannot be downloaded here, so occbench generates look-alike recordings and writes them as
real `.skeleton` files, which then go through exactly the reader and preparation real NTU goes through.

How one file is made:

1. A performer (`physique`): height 1.50-1.95 m, per-person proportions (segment lengths are scaled so
   the standing head centre stays at the same fraction of height), handedness, tempo, vigour, posture.
2. A motion program per class (`_PROGRAMS`) writes joint-angle channels over time (spine bend and twist,
   shoulder elevation and azimuth, elbow and knee flexion, ...) and, for contact actions (drinking,
   clapping, handshake, hug), wrist targets solved by two-bone inverse kinematics. Each sample draws
   its own speed, amplitude, timing, start pose and small idle sway.
3. Forward kinematics on the 25-joint Kinect v2 tree puts both performers into one shared frame; the
   feet are kept on the floor (and planted where the program says so).
4. NTU's camera geometry: three Kinects at the same height, at 0 (camera 1), +45 and -45 degrees (cameras
   2 and 3) around the performer, who faces camera 2 in odd and camera 3 in even replications; so camera
   1 always sees a 45-degree view. Heights, tilts and distances differ per setup.
5. A Kinect sensor model per camera: depth-dependent, temporally correlated joint noise; trackingState 1
   ("inferred") in runs, driven by self-occlusion seen from that camera (the far arm in a side view, a
   partner in front), hands near other body parts, and a small base rate on the extremities; inferred
   joints also drift.

Randomness is keyed by names, never by generation order: a performer by (seed, subject), a setup by
(seed, setup), a performance by (seed, name without camera), a camera's sensor by (seed, full name).
The same config and seed therefore give byte-identical files, the three cameras of one performance see
the same 3D motion, and a sample does not change when other samples are added (except that a pair's
partner is drawn from the performers of that setup, and clip lengths from [min_frames, max_frames]).

Bone lengths are anthropometric (upper arm 0.27 m, thigh 0.40 m for a 1.70 m performer) so that they add
up to the performer's height. Kinect's own skeleton is shorter in the limbs (thighs of ~0.33 m in real NTU
files): a known, deliberate difference.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from occbench.data.ntu import NUM_JOINTS, SampleName
from occbench.data.skeleton import INFERRED, TRACKED, write_skeleton
from occbench.data.synth_config import SynthConfig
from occbench.errors import OccbenchError

FPS = 30.0
GENERATOR, VERSION = "occbench.synth", 1

# (name, two_person) in label order; the first 12 (the default) hold three interactions.
ACTIONS: tuple[tuple[str, bool], ...] = (
    # the default 12: pairs that are easy to tell apart by eye but share most of their motion
    ("drink water", False),
    ("make a phone call", False),
    ("wave hand", False),
    ("point forward", False),
    ("clap hands", False),
    ("cross arms", False),
    ("kick", False),
    ("squat", False),
    ("sit down", False),
    ("handshake", True),
    ("push other person", True),
    ("hug", True),
    # for larger configurations
    ("punch", False),
    ("raise both arms", False),
    ("bow", False),
    ("jump up", False),
    ("throw", False),
    ("turn around", False),
    ("walk toward each other", True),
    ("high-five", True),
)


def synthesize(out: str | Path, config: SynthConfig | None = None, progress: bool = False) -> list[Path]:
    """Write one SsssCcccPpppRrrrAaaa.skeleton per (performance, camera) and synthetic.json into `out`.

    Files of an earlier run with other settings are not removed; use an empty folder.
    """
    from tqdm import tqdm

    config = config or SynthConfig()
    _check(config)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    members = setup_subjects(config)
    performances = [
        (setup, subject, rep, action)
        for setup in sorted(members)
        for subject in members[setup]
        for rep in range(1, config.replications + 1)
        for action in range(1, config.classes + 1)
    ]
    cameras = {setup: _cameras(config.seed, setup, config.cameras) for setup in members}
    written = []
    for setup, subject, rep, action in tqdm(performances, desc="synth", unit="performance",
                                            disable=None if progress else True):
        written += _render(out, config, members[setup], setup, subject, rep, action, cameras[setup])
    info = {"generator": GENERATOR, "version": VERSION, "config": asdict(config),
            "classes": [name for name, _ in ACTIONS[: config.classes]]}
    (out / "synthetic.json").write_text(json.dumps(info, indent=2) + "\n")
    return sorted(written)


def _check(config: SynthConfig) -> None:
    limits = {"classes": (1, len(ACTIONS)), "subjects": (1, 999), "setups": (1, 999), "cameras": (1, 3),
              "replications": (1, 999), "min_frames": (2, 10_000), "max_frames": (2, 10_000)}
    for name, (lo, hi) in limits.items():
        value = getattr(config, name)
        if not isinstance(value, int) or not lo <= value <= hi:
            raise OccbenchError(f"synth: {name} must be an integer in {lo}..{hi}, got {value!r}")
    if config.min_frames > config.max_frames:
        raise OccbenchError(
            f"synth: min_frames ({config.min_frames}) exceeds max_frames ({config.max_frames})"
        )


def setup_subjects(config: SynthConfig) -> dict[int, list[int]]:
    """Which performers appear in which setup: {setup: sorted subject ids}.

    Subjects fill the setups in turn; every third subject also performs in the least-filled setup of the
    other parity, so the cross-setup split sees some performers on both sides (as NTU-120 does) while
    the file count stays near subjects x classes x replications x cameras x 4/3.
    """
    members: dict[int, list[int]] = {s: [] for s in range(1, config.setups + 1)}
    for subject in range(1, config.subjects + 1):
        members[(subject - 1) % config.setups + 1].append(subject)
    for subject in range(3, config.subjects + 1, 3):
        home = (subject - 1) % config.setups + 1
        others = [s for s in members if s != home and subject not in members[s]]
        if others:
            best = min(others, key=lambda s: ((s - home) % 2 == 0, len(members[s]), s))
            members[best].append(subject)
    return {s: sorted(m) for s, m in members.items() if m}


def _key(seed: int, *parts) -> np.random.Generator:
    """An RNG from a name, so results never depend on the order things are generated in."""
    digest = hashlib.sha256(repr((int(seed), *parts)).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, np.uint32))


# --------------------------------------------------------------------------------------------------
# Performers

# metres for the 1.70 m reference performer, and the proportion group each segment varies with
_SEGMENTS = {
    "spine_low": (0.27, "torso"), "spine_up": (0.22, "torso"), "neck": (0.08, "head"), "head": (0.13, "head"),
    "shoulder": (0.16, "width"), "upper_arm": (0.27, "arm"), "forearm": (0.245, "arm"),
    "hand": (0.075, "hand"), "tip": (0.065, "hand"), "thumb": (0.045, "hand"), "hip": (0.075, "hips"),
    "thigh": (0.40, "leg"), "shin": (0.385, "leg"), "ankle": (0.075, "leg"), "foot": (0.115, "leg"),
}
_GROUP_SD = {"torso": 0.03, "head": 0.03, "width": 0.05, "arm": 0.03, "hand": 0.05, "hips": 0.06, "leg": 0.03}
REFERENCE_HEIGHT = 1.70
_HEAD_FRACTION = 1.59 / REFERENCE_HEIGHT  # standing head-centre height / body height
_SHOULDER_DIR = np.array([0.985, -0.17, 0.0])  # spine-shoulder -> left shoulder, per unit length
_HIP_DIR = np.array([0.93, -0.37, 0.0])  # spine-base -> left hip
_FOOT_DIR = np.array([0.0, -0.3, 1.0]) / np.hypot(0.3, 1.0)  # ankle -> foot, flat on the floor


@dataclass(frozen=True)
class Physique:
    """A performer's body and style; the same person in every setup they appear in."""

    height: float
    seg: dict  # segment name -> metres
    right_handed: bool
    tempo: float  # multiplies the speed of rhythmic movements
    vigour: float  # multiplies movement amplitudes
    slouch: float  # degrees of forward spine bend at rest
    arm_rest: float  # degrees of arm elevation at rest
    elbow_rest: float  # degrees of elbow flexion at rest
    stance: float  # degrees of hip abduction at rest
    sway: float  # metres of idle body sway

    @property
    def scale(self) -> float:
        return self.height / REFERENCE_HEIGHT

    @property
    def reach(self) -> float:
        return self.seg["upper_arm"] + self.seg["forearm"]


def physique(subject: int, seed: int = 0) -> Physique:
    rng = _key(seed, "subject", subject)
    height = float(np.clip(rng.normal(1.70, 0.09), 1.50, 1.95))
    group = {g: rng.normal(1.0, sd) for g, sd in _GROUP_SD.items()}
    seg = {name: length * group[g] for name, (length, g) in _SEGMENTS.items()}
    # Proportions vary, stature does not: rescale so the head centre sits at the usual fraction of height.
    standing = (seg["ankle"] + seg["shin"] + seg["thigh"] + -_HIP_DIR[1] * seg["hip"] + seg["spine_low"]
                + seg["spine_up"] + seg["neck"] + seg["head"])
    k = _HEAD_FRACTION * height / standing
    return Physique(
        height=height, seg={name: float(v * k) for name, v in seg.items()},
        right_handed=bool(rng.random() > 0.12), tempo=float(rng.normal(1.0, 0.1)),
        vigour=float(np.clip(rng.normal(1.0, 0.1), 0.75, 1.25)), slouch=float(rng.normal(4.0, 3.0)),
        arm_rest=float(rng.uniform(5.0, 12.0)), elbow_rest=float(rng.uniform(8.0, 22.0)),
        stance=float(rng.uniform(2.0, 6.0)), sway=float(rng.uniform(0.004, 0.015)),
    )


# --------------------------------------------------------------------------------------------------
# Poses: joint-angle channels (degrees) over T frames, written by the motion programs


class _Arm:
    """Angle channels of one arm, in the upper-torso frame (x = the performer's left, y = up, z = front).

    el: elevation of the upper arm (0 hanging, 90 horizontal, 180 overhead); az: its direction around the
    vertical (0 front, 90 out to the side, negative across the body); flex: elbow flexion, the forearm
    bending toward `bend`; swing: extra rotation of the whole arm forward about the shoulder axis.
    An optional wrist target (solved by inverse kinematics) takes over with weight `weight`.
    """

    def __init__(self, T: int, body: Physique):
        self.el = np.full(T, body.arm_rest)
        self.az = np.full(T, 90.0)
        self.flex = np.full(T, body.elbow_rest)
        self.wrist = np.zeros(T)
        self.swing = np.zeros(T)
        self.bend: np.ndarray = np.array([0.0, 0.25, 1.0])
        self.target: np.ndarray | Callable | None = None  # (T, 3) torso frame, or f(joints) -> shared frame
        self.weight = np.zeros(T)
        self.pole = np.array([0.35, -1.0, -0.15])  # where the elbow points, x mirrored per side


class _Leg:
    """flex: hip flexion in the level (unpitched) body frame; abd: outward; rot: toes out; knee; toe:
    foot pitch (toes down)."""

    def __init__(self, T: int, body: Physique):
        self.flex, self.knee, self.toe = np.zeros(T), np.full(T, 3.0), np.zeros(T)
        self.abd, self.rot = np.full(T, body.stance), np.full(T, 8.0)


class _Pose:
    """Everything one performer does in one performance. Sides are keyed by lateral sign: +1 left,
    -1 right."""

    def __init__(self, T: int, body: Physique):
        self.body = body
        self.root = np.zeros((T, 3))  # own-frame translation (x left, z front); height is set by the feet
        self.yaw, self.pitch, self.roll = np.zeros(T), np.zeros(T), np.zeros(T)  # pelvis
        self.bend, self.lean, self.twist = np.full(T, body.slouch), np.zeros(T), np.zeros(T)  # spine
        self.neck, self.look = np.full(T, 5.0), np.zeros(T)  # neck pitch (forward) and yaw
        self.hang = np.zeros(T)  # arms follow gravity when the trunk pitches
        self.lift = np.zeros(T)  # jump height
        self.anchor: int | None = 0  # planted feet: 0 both, +-1 one side, None (walking, turning)
        self.arm = {+1: _Arm(T, body), -1: _Arm(T, body)}
        self.leg = {+1: _Leg(T, body), -1: _Leg(T, body)}
        self.place = (0.0, 0.0, 0.0)  # x, z, heading (radians) in the shared frame


# --------------------------------------------------------------------------------------------------
# Motion programs. Written for a right-handed performer: `dom` is the dominant side (-1 right, +1 left),
# so a left-handed performer mirrors the one-handed actions. Interactions use the right hand.


def _ramp(x: np.ndarray, a: float, b: float) -> np.ndarray:
    s = np.clip((x - a) / max(b - a, 1e-6), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def _pulse(x: np.ndarray, start: float, width: float) -> np.ndarray:
    s = np.clip((x - start) / width, 0.0, 1.0)
    return np.sin(np.pi * s) ** 2


def _mix(a, b, w):
    return a + (b - a) * w


class _Ctx:
    """Per-performance randomness and timing shared by the motion programs."""

    def __init__(self, rng: np.random.Generator, bodies: list[Physique]):
        self.rng, self.bodies = rng, bodies
        self.speed = bodies[0].tempo * rng.normal(1.0, 0.1)
        self.amp = bodies[0].vigour * rng.normal(1.0, 0.1)
        self.dom = -1 if bodies[0].right_handed else +1
        self.gap = 0.0  # distance between the two performers at the start (two-person classes)
        self.busy: list[set[int]] = [set() for _ in bodies]  # arms a program uses, per body

    def start(self, T: int) -> None:
        self.T = T
        self.t = np.arange(T) / FPS  # seconds
        self.tau = np.linspace(0.0, 1.0, T)  # fraction of the clip
        self.poses = [_Pose(T, b) for b in self.bodies]
        for pose in self.poses:
            if self.rng.random() < 0.25:  # some stand with forearms forward, hands loosely together
                for side in (+1, -1):
                    arm = pose.arm[side]
                    arm.el[:], arm.az[:], arm.flex[:] = self.u(8, 22), self.u(0, 35), self.u(60, 95)
                    arm.bend = np.array([-side * 0.6, 0.1, 1.0])

    def u(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def env(self, on=(0.05, 0.25), rise=(0.12, 0.3), off=(0.65, 0.9), fall=(0.1, 0.2)) -> np.ndarray:
        """Rest -> action -> rest over the clip, breakpoints drawn per sample (fractions of the clip).
        As in NTU, a clip may start just before the action and stop before the return is complete."""
        a, b = self.u(*on), self.u(*rise)
        c, d = max(self.u(*off), a + b + 0.1), self.u(*fall)
        return _ramp(self.tau, a, a + b) * (1 - _ramp(self.tau, c, c + d))

    def around(self, at: float, before: float, hold: float, after: float) -> np.ndarray:
        """0 -> 1 in the `before` seconds up to `at` (a fraction of the clip), held for `hold` seconds,
        back to 0 in `after` seconds."""
        off = at + self.seconds(hold)
        rise = _ramp(self.tau, at - self.seconds(before), at)
        return rise * (1 - _ramp(self.tau, off, off + self.seconds(after)))

    def osc(self, hz: float) -> np.ndarray:
        return np.sin(2 * np.pi * hz * self.speed * self.rng.normal(1.0, 0.1) * self.t + self.u(0, 2 * np.pi))

    def times(self, n: int, lo: float, hi: float) -> list[float]:
        """n event times (fractions of the clip) spread over [lo, hi]."""
        edges = np.linspace(lo, hi, n + 1)
        return [self.u(edges[i], edges[i] + 0.6 * (edges[i + 1] - edges[i])) for i in range(n)]

    def seconds(self, duration: float) -> float:
        """A duration in seconds as a fraction of this clip, at this performer's speed."""
        return duration / self.speed / self.t[-1]


def _raise(arm: _Arm, el, az, w: np.ndarray, flex=None) -> None:
    """Move an arm from where it is toward elevation `el` and azimuth `az` with weight w; the azimuth
    gets there first, so a hanging arm swings up in its final plane rather than through the side."""
    arm.az = _mix(arm.az, az, np.clip(2 * w, 0, 1))
    arm.el = _mix(arm.el, el, w)
    if flex is not None:
        arm.flex = _mix(arm.flex, flex, w)
    arm.bend = _mix(arm.bend, np.array([0.0, 0.25, 1.0]), np.clip(2 * w, 0, 1)[:, None])


def _reach(arm: _Arm, target, weight, pole=None) -> None:
    arm.target, arm.weight = target, np.clip(weight, 0.0, 1.0)
    if pole is not None:
        arm.pole = np.asarray(pole, float)


def _torso(body: Physique, x: float, y: float, z: float) -> np.ndarray:
    """A constant torso-frame point (relative to spine-shoulder), scaled to the performer."""
    return np.array([x, y, z]) * body.scale


def _gait(c: _Ctx, p: _Pose, travel: np.ndarray, stride: float, step_phase: float = 0.0) -> None:
    """Walk `travel` metres along the performer's own front (negative: backward), legs and arms in step."""
    p.root[:, 2] += travel
    phase = 2 * np.pi * travel / stride + step_phase
    active = np.clip(np.abs(np.gradient(travel)) * FPS / 0.5, 0.0, 1.0)
    for side in (+1, -1):
        ph = phase + (0.0 if side > 0 else np.pi)
        leg = p.leg[side]
        leg.flex += active * 24 * np.sin(ph)
        leg.knee += active * (5 + 50 * np.clip(np.cos(ph), 0, None) ** 2)
        p.arm[side].swing += active * 16 * np.sin(ph + np.pi)
    p.anchor = None


def _drink(c: _Ctx) -> None:
    p, d = c.poses[0], c.dom
    e = c.env(off=(0.6, 0.85))
    sips = 0.015 * c.osc(c.u(0.5, 1.0))
    cup = _torso(p.body, d * c.u(0.0, 0.06), c.u(0.03, 0.08), c.u(0.1, 0.15))
    _reach(p.arm[d], cup + np.outer(sips, [0, 1, 0]), e, pole=(0.3, -1.0, -0.1))
    c.busy[0].add(d)
    if c.chance(0.2):  # a big mug, held with both hands
        _reach(p.arm[-d], cup + _torso(p.body, -d * 0.07, -0.04, 0.0), e, pole=(0.3, -1.0, -0.1))
        c.busy[0].add(-d)
    p.neck -= c.u(5, 20) * c.amp * _ramp(c.tau, 0.3, 0.5) * e  # tip the head back to drink


def _phone(c: _Ctx) -> None:
    p, d = c.poses[0], c.dom
    e = c.env(on=(0.02, 0.2), rise=(0.1, 0.25), off=(0.8, 1.0))
    ear = _torso(p.body, d * c.u(0.08, 0.12), c.u(0.0, 0.06), c.u(0.03, 0.09))  # the wrist, below the ear
    _reach(p.arm[d], ear, e, pole=(0.5, -1.0, 0.1))
    c.busy[0].add(d)
    p.neck += c.u(0, 10) * e
    p.look += d * c.u(0, 15) * e
    if c.chance(0.4):  # talking with the other hand
        p.arm[-d].flex += (c.u(30, 60) + 15 * c.osc(0.8)) * e
        c.busy[0].add(-d)


def _wave(c: _Ctx) -> None:
    p, d = c.poses[0], c.dom
    e = c.env()
    sides = (d, -d) if c.chance(0.15) else (d,)
    el, az, flex, swing = c.u(60, 140), c.u(30, 90), c.u(70, 110), c.u(15, 40) * c.amp
    wave = c.osc(c.u(1.5, 3.0))
    for side in sides:
        _raise(p.arm[side], el, az, e, flex=flex + swing * wave)
        p.arm[side].bend = _mix(p.arm[side].bend, np.array([0.0, 1.0, 0.3]), e[:, None])  # forearm up
        c.busy[0].add(side)
    p.look += d * c.u(0, 12) * e


def _point(c: _Ctx) -> None:
    p, d = c.poses[0], c.dom
    e = c.env(rise=(0.1, 0.2), off=(0.6, 0.95))
    az = c.u(-20, 60) + (c.u(-40, 40) * _ramp(c.tau, 0.45, 0.6) if c.chance(0.3) else 0)  # maybe re-aim
    _raise(p.arm[d], c.u(45, 120), az, e, flex=c.u(3, 25))
    c.busy[0].add(d)
    p.look += d * c.u(0, 20) * e


def _clap(c: _Ctx) -> None:
    p = c.poses[0]
    e = c.env()
    height, depth = c.u(-0.3, 0.05), c.u(0.25, 0.45)
    gap = 0.03 + c.u(0.05, 0.12) * c.amp * (0.5 + 0.5 * c.osc(c.u(1.8, 3.2)))
    for side in (+1, -1):
        target = _torso(p.body, 0, height, depth) + np.outer(side * gap, [1, 0, 0])
        _reach(p.arm[side], target, e, pole=(0.35, -1.0, 0.0))
    c.busy[0] |= {+1, -1}


def _cross_arms(c: _Ctx) -> None:
    p, top = c.poses[0], c.dom if c.chance(0.5) else -c.dom
    e = c.env(on=(0.02, 0.2), rise=(0.12, 0.25), off=(0.75, 1.0))
    height, depth = c.u(-0.2, -0.08), c.u(0.12, 0.18)
    _reach(p.arm[top], _torso(p.body, -top * 0.11, height, depth), e, pole=(0.6, -1.0, 0.0))
    _reach(p.arm[-top], _torso(p.body, top * 0.12, height + 0.04, depth + 0.03), e, pole=(0.6, -1.0, 0.0))
    c.busy[0] |= {+1, -1}
    p.neck -= c.u(0, 8) * e


def _punch(c: _Ctx) -> None:
    p, d = c.poses[0], c.dom
    e = c.env(on=(0.03, 0.15), rise=(0.1, 0.2), off=(0.75, 0.92))
    guard = {s: _torso(p.body, s * 0.10, c.u(-0.05, 0.05), 0.22) for s in (+1, -1)}
    both = c.chance(0.3)  # jab-cross combinations
    strikes = {+1: np.zeros(c.T), -1: np.zeros(c.T)}
    for i, start in enumerate(c.times(int(c.rng.integers(1, 5)), 0.2, 0.75)):
        side = -d if both and i % 2 else d
        strikes[side] = np.maximum(strikes[side], _pulse(c.tau, start, c.seconds(0.35)))
    for side in (+1, -1):
        shoulder = p.body.seg["shoulder"] * _SHOULDER_DIR * [side, 1, 1]
        hit = shoulder + np.array([-side * 0.08, c.u(-0.05, 0.12), 0.97 * p.body.reach])
        path = guard[side] + strikes[side][:, None] * (hit - guard[side])
        _reach(p.arm[side], path, e, pole=(0.3, -1.0, 0.0))
        p.twist += side * 22 * c.amp * strikes[side]
    c.busy[0] |= {+1, -1}
    p.bend += 6 * e


def _throw(c: _Ctx) -> None:
    p, d = c.poses[0], c.dom
    start = c.u(0.15, 0.4)
    wind = _ramp(c.tau, start, start + c.seconds(0.5))
    release = _ramp(c.tau, start + c.seconds(0.55), start + c.seconds(0.75))
    settle = _ramp(c.tau, start + c.seconds(1.0), start + c.seconds(1.6))
    arm = p.arm[d]
    arm.el = _mix(_mix(_mix(arm.el, c.u(125, 150), wind), c.u(70, 95), release), arm.el, settle)
    arm.az = _mix(_mix(_mix(arm.az, c.u(100, 125), wind), c.u(-15, 10), release), arm.az, settle)
    arm.flex = _mix(_mix(_mix(arm.flex, c.u(85, 110), wind), c.u(5, 20), release), arm.flex, settle)
    arm.bend = _mix(arm.bend, np.array([0.0, 1.0, -0.3]), (wind * (1 - settle))[:, None])
    _raise(p.arm[-d], c.u(50, 80), c.u(0, 30), wind * (1 - settle))  # the other arm aims
    c.busy[0] |= {+1, -1}
    p.twist += (d * 25 * wind - d * 45 * release) * (1 - settle) * c.amp
    p.bend += (12 * release - 6 * wind) * (1 - settle)
    p.leg[-d].flex += 20 * _pulse(c.tau, start, c.seconds(0.8))


def _raise_arms(c: _Ctx) -> None:
    p = c.poses[0]
    e = c.env(rise=(0.2, 0.35))
    az, top = (c.u(10, 35) if c.chance(0.5) else c.u(65, 90)), c.u(140, 175)
    shake = 6 * c.osc(1.8) * c.chance(0.5)
    for side in (+1, -1):
        _raise(p.arm[side], top + shake, az, e, flex=c.u(5, 30))
    c.busy[0] |= {+1, -1}
    p.neck -= c.u(0, 15) * e
    p.bend -= 4 * e


def _kick(c: _Ctx) -> None:
    p, d = c.poses[0], c.dom
    width, k, snap = c.seconds(0.8), np.zeros(c.T), np.zeros(c.T)
    for start in c.times(1 + int(c.chance(0.3)), 0.2, 0.7):
        k += _pulse(c.tau, start, width)
        snap += _pulse(c.tau, start + 0.3 * width, 0.4 * width)  # the knee straightens at the top
    leg = p.leg[d]
    if c.chance(0.3):  # side kick
        leg.abd += c.u(35, 60) * c.amp * k
        leg.flex += c.u(10, 30) * k
        p.lean += d * 15 * k
    else:
        leg.flex += c.u(40, 80) * c.amp * k
        p.bend -= 8 * k
    leg.knee += k * c.u(60, 90) * (1 - 0.85 * snap)  # chamber, snap out, chamber back
    leg.toe += 25 * k
    p.leg[-d].knee += 10 * k
    p.anchor = -d
    for side in (+1, -1):
        p.arm[side].el += c.u(10, 35) * k
        p.arm[side].flex += c.u(20, 50) * k
    c.busy[0] |= {+1, -1}


def _own_knees(J: list[np.ndarray], side: int) -> np.ndarray:
    knee, hip = (13, 12) if side > 0 else (17, 16)
    return J[0][:, knee] + 0.25 * (J[0][:, hip] - J[0][:, knee]) + [0, 0.06, 0]


def _squat(c: _Ctx) -> None:
    p = c.poses[0]
    reps = 1 + int(c.chance(0.4))
    depth = sum(_pulse(c.tau, s, c.u(0.55, 0.8) / reps) for s in c.times(reps, 0.05, 0.45))
    depth = c.u(0.6, 1.0) * np.clip(depth, 0, 1) ** 0.7  # dwell at the bottom
    for side in (+1, -1):
        p.leg[side].flex += c.u(85, 110) * depth
        p.leg[side].knee += c.u(105, 130) * depth
        p.leg[side].abd += 8 * depth
    p.pitch += c.u(25, 40) * depth
    p.hang += p.pitch
    arms = c.rng.choice(["forward", "hang", "knees"], p=[0.5, 0.3, 0.2])
    for side in (+1, -1):
        if arms == "forward":  # out front for balance
            _raise(p.arm[side], c.u(60, 90), c.u(0, 20), np.clip(depth * 1.5, 0, 1))
        elif arms == "knees":
            _reach(p.arm[side], lambda J, s=side: _own_knees(J, s), np.clip(depth * 1.5, 0, 1))
    c.busy[0] |= {+1, -1}


def _sit(c: _Ctx) -> None:
    p = c.poses[0]
    start = c.u(0.1, 0.35)
    down = _ramp(c.tau, start, start + c.seconds(c.u(0.9, 1.3)))
    mid = np.sin(np.pi * down)  # leaning forward to lower the weight
    for side in (+1, -1):
        p.leg[side].flex += c.u(80, 95) * down
        p.leg[side].knee += c.u(80, 95) * down
        p.leg[side].abd += c.u(0, 10) * down
    arms = c.rng.choice(["thighs", "lap", "hang"], p=[0.5, 0.3, 0.2])
    for side in (+1, -1):
        if arms == "thighs":
            _reach(p.arm[side], lambda J, s=side: _own_knees(J, s), down)
        elif arms == "lap":
            _raise(p.arm[side], c.u(20, 35), c.u(0, 20), down, flex=c.u(50, 80))
    c.busy[0] |= {+1, -1}
    p.pitch += c.u(25, 40) * mid - c.u(0, 8) * down
    p.hang += p.pitch


def _bow(c: _Ctx) -> None:
    p = c.poses[0]
    e = c.env(on=(0.1, 0.3), rise=(0.15, 0.25), off=(0.5, 0.8), fall=(0.15, 0.25))
    p.pitch += c.u(25, 60) * c.amp * e
    p.bend += c.u(0, 15) * e
    p.neck += c.u(0, 15) * e
    p.hang += p.pitch
    for side in (+1, -1):
        p.arm[side].az = _mix(p.arm[side].az, 0.0, e)
    c.busy[0] |= {+1, -1}


def _jump(c: _Ctx) -> None:
    p = c.poses[0]
    n = 1 + int(c.chance(0.4))
    flight = c.u(0.25, 0.4) * c.amp
    crouch, air, up = np.zeros(c.T), np.zeros(c.T), np.zeros(c.T)
    for s in c.times(n, 0.1, 0.55):
        prep, hang_time = c.seconds(0.4), flight / c.t[-1]  # flight time is physics, not tempo
        takeoff = s + 0.8 * prep
        crouch += _pulse(c.tau, s, prep) + 0.8 * _pulse(c.tau, takeoff + hang_time - 0.1 * prep, prep)
        x = np.clip((c.tau - takeoff) / hang_time, 0, 1)
        air += 4 * x * (1 - x)
        up += _pulse(c.tau, s + 0.4 * prep, 0.6 * prep + hang_time)
    p.lift += 9.81 * flight**2 / 8 * air
    swing = c.u(60, 150)
    for side in (+1, -1):
        p.leg[side].flex += 45 * crouch
        p.leg[side].knee += 70 * crouch
        p.leg[side].toe += 30 * air
        p.arm[side].az = _mix(p.arm[side].az, 10.0, np.clip(2 * (crouch + up), 0, 1))
        p.arm[side].el += swing * up - 25 * crouch
    c.busy[0] |= {+1, -1}
    p.pitch += 25 * crouch


def _turn(c: _Ctx) -> None:
    p = c.poses[0]
    start = c.u(0.1, 0.3)
    turn = _ramp(c.tau, start, start + c.u(0.45, 0.65))
    p.yaw += (1 if c.chance(0.5) else -1) * c.u(150, 200) * turn
    p.look += np.clip(0.1 * np.gradient(p.yaw) * FPS, -25, 25)  # the head leads the turn
    steps = np.sin(np.pi * turn)  # stepping in place while turning
    cadence = 2 * np.pi * np.cumsum(steps) / FPS * 1.6 * c.speed
    for side in (+1, -1):
        lift = np.clip(np.sin(cadence + (0 if side > 0 else np.pi)), 0, None) * steps
        p.leg[side].flex += 20 * lift
        p.leg[side].knee += 40 * lift
    p.anchor = None


# Interactions: body 0 (the performer) at the shared origin facing +z, body 1 (a partner) at z = gap
# facing -z. Targets that depend on the other body are functions of the shared-frame joints.


def _pair(c: _Ctx, gap: float) -> tuple[_Pose, _Pose]:
    a, b = c.poses
    c.gap = gap
    b.place = (0.0, gap, np.pi)
    return a, b


def _body_axes(J: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A body's own left, up and front unit vectors (T, 3) from its shoulders and spine."""
    left = _unit(J[:, 4] - J[:, 8])
    up = _unit(J[:, 20] - J[:, 0])
    return left, up, _unit(np.cross(left, up))


def _handshake(c: _Ctx) -> None:
    a, b = _pair(c, c.u(1.0, 1.3))
    e = c.env(on=(0.05, 0.25))
    lag = c.seconds(c.u(0.05, 0.2))
    steps = [c.u(0.08, 0.2) * _ramp(c.tau, 0.02, 0.3), c.u(0.05, 0.15) * _ramp(c.tau, 0.02 + lag, 0.3 + lag)]
    for pose, step in ((a, steps[0]), (b, steps[1])):
        _gait(c, pose, step, 1.2)
        pose.anchor = 0
    shake = c.u(0.015, 0.04) * c.osc(c.u(2.5, 4.0)) * _ramp(c.tau, 0.35, 0.45)
    height = c.u(0.53, 0.62) * np.mean([body.height for body in c.bodies])
    z = (c.gap + steps[0][-1] - steps[1][-1]) / 2  # hands meet halfway
    meet = np.stack([np.full(c.T, c.u(-0.03, 0.03)), height + shake, np.full(c.T, z)], -1)
    weights = (e, np.interp(c.tau - lag, c.tau, e))
    for i, (pose, w) in enumerate(zip((a, b), weights, strict=True)):
        _reach(pose.arm[-1], lambda J: meet, w, pole=(0.4, -1.0, -0.2))
        c.busy[i].add(-1)
        pose.bend += c.u(0, 8) * w
    if c.chance(0.2):  # the performer covers the handshake with the other hand
        _reach(a.arm[+1], lambda J: meet + [0.0, 0.06, -0.03], e, pole=(0.4, -1.0, -0.2))
        c.busy[0].add(+1)


def _push(c: _Ctx) -> None:
    a, b = _pair(c, c.u(0.75, 0.95))
    hit = c.u(0.35, 0.55)
    thrust = c.around(hit, 0.3, 0.3, 0.4)
    shove = _ramp(c.tau, hit, hit + c.seconds(0.5))
    hands = (+1, -1) if c.chance(0.75) else (-1,)
    for side in hands:  # to the partner's chest, following it back
        def chest(J, side=side):
            return 0.5 * (J[1][:, 1] + J[1][:, 20]) + [side * 0.12 * (len(hands) > 1), 0.0, -0.12]
        _reach(a.arm[side], chest, thrust, pole=(0.5, -1.0, 0.0))
        c.busy[0].add(side)
    a.bend += c.u(5, 15) * thrust * c.amp
    _gait(c, a, c.u(0.05, 0.2) * thrust, 1.2)
    a.anchor = 0
    _gait(c, b, -c.u(0.2, 0.5) * c.amp * shove, 1.0)
    recoil = _pulse(c.tau, hit, c.seconds(0.8))
    b.bend -= c.u(5, 20) * recoil
    b.neck += 12 * recoil
    for side in (+1, -1):
        b.arm[side].el += c.u(15, 45) * recoil
        b.arm[side].flex += 30 * recoil
    c.busy[1] |= {+1, -1}


def _hug(c: _Ctx) -> None:
    a, b = _pair(c, c.u(0.9, 1.2))
    e = c.env(on=(0.1, 0.3), rise=(0.2, 0.3), off=(0.75, 1.0))
    close, share = c.gap - c.u(0.3, 0.4), c.u(0.4, 0.6)
    for pose, part in ((a, share), (b, 1 - share)):
        _gait(c, pose, part * close * _ramp(c.tau, 0.05, 0.45), 1.1)
        pose.anchor = 0

    # Each puts the right arm over the partner's left shoulder and the left arm around the waist.
    def over(J, o, low):
        left, up, front = _body_axes(J[o])
        return J[o][:, 4] - 0.12 * front - low * up

    def around(J, o, low):
        left, up, front = _body_axes(J[o])
        return J[o][:, 1] - 0.14 * front - 0.08 * left - low * up

    for i, (pose, other) in enumerate(((a, 1), (b, 0))):
        low = c.u(0.0, 0.15)
        _reach(pose.arm[-1], lambda J, o=other, k=low: over(J, o, k), e, pole=(0.9, 0.2, -0.4))
        _reach(pose.arm[+1], lambda J, o=other, k=low: around(J, o, k), e, pole=(0.9, -0.5, -0.4))
        c.busy[i] |= {+1, -1}
        pose.look -= c.u(10, 30) * e
        pose.bend += c.u(0, 10) * e


def _walk_toward(c: _Ctx) -> None:
    a, b = _pair(c, c.u(1.6, 2.0))  # more and they would leave the cameras' range
    end = c.u(0.7, 0.9)
    for i, pose in enumerate((a, b)):
        start = c.u(0.05, 0.25)
        dist = (c.gap - end) / 2 * c.rng.normal(1.0, 0.05)
        _gait(c, pose, dist * _ramp(c.tau, start, start + c.u(0.55, 0.7)), c.u(1.1, 1.4), c.u(0, 6.3))
        c.busy[i] |= {+1, -1}


def _high_five(c: _Ctx) -> None:
    a, b = _pair(c, c.u(0.85, 1.1))
    hit = c.u(0.4, 0.6)
    e = c.around(hit, 0.5, 0.15, 0.45)
    height = c.u(0.9, 1.05) * np.mean([body.height for body in c.bodies])
    meet = np.array([c.u(-0.05, 0.05), height, c.gap / 2])
    impact = _pulse(c.tau, hit - c.seconds(0.1), c.seconds(0.2))
    for i, (pose, toward) in enumerate(((a, 1.0), (b, -1.0))):
        target = np.tile(meet, (c.T, 1)) - np.outer(impact, [0, 0, 0.06 * toward])
        _reach(pose.arm[-1], lambda J, t=target: t, e, pole=(0.9, -0.3, -0.5))
        c.busy[i].add(-1)
        pose.bend -= 4 * e


_PROGRAMS: dict[str, Callable[[_Ctx], None]] = {
    "drink water": _drink, "make a phone call": _phone, "wave hand": _wave, "point forward": _point,
    "clap hands": _clap, "cross arms": _cross_arms, "kick": _kick, "squat": _squat, "sit down": _sit,
    "handshake": _handshake, "push other person": _push, "hug": _hug, "punch": _punch,
    "raise both arms": _raise_arms, "bow": _bow, "jump up": _jump, "throw": _throw, "turn around": _turn,
    "walk toward each other": _walk_toward, "high-five": _high_five,
}
# Typical clip length per class, as a fraction of [min_frames, max_frames].
_LENGTH = {"sit down": 0.7, "turn around": 0.65, "walk toward each other": 0.7, "hug": 0.65, "wave hand": 0.4,
           "clap hands": 0.4, "punch": 0.45, "point forward": 0.45, "high-five": 0.45}

# Things people do with a free hand while performing something else (torso-frame wrist targets).
_HABITS = {"touch face": (0.03, 0.1, 0.13), "scratch head": (0.09, 0.22, 0.0),
           "hand on hip": (0.2, -0.47, -0.02), "adjust clothes": (0.05, -0.35, 0.16)}


def _habits(c: _Ctx, i: int, pose: _Pose) -> None:
    """Unscripted movements: a free hand wanders off, weight shifts, a glance aside."""
    for side in (+1, -1):
        if side not in c.busy[i] and c.chance(0.35):
            x, y, z = _HABITS[str(c.rng.choice(list(_HABITS)))]
            start = c.u(0.0, 0.6)
            w = _ramp(c.tau, start, start + c.seconds(0.4)) * (1 - _ramp(c.tau, start + c.u(0.2, 0.5), 1.0))
            _reach(pose.arm[side], _torso(pose.body, side * x, y, z), w)
    if c.chance(0.3):
        w = _pulse(c.tau, c.u(-0.2, 0.7), c.u(0.3, 0.6))
        pose.lean += c.u(-4, 4) * w
        pose.root[:, 0] += c.u(-0.05, 0.05) * w
    if c.chance(0.3):
        pose.look += c.u(-35, 35) * _pulse(c.tau, c.u(-0.2, 0.7), c.u(0.2, 0.5))


def _idle(c: _Ctx, pose: _Pose) -> None:
    """What no program asks for but every person does: sway, small posture changes."""
    def noise(sd: float, hz: float = 0.5) -> np.ndarray:
        f = c.rng.uniform(0.3 * hz, hz, 3)
        return sd * np.sin(2 * np.pi * f * c.t[:, None] + c.rng.uniform(0, 2 * np.pi, 3)).sum(1) / 1.22

    sway = pose.body.sway
    pose.root += np.stack([noise(sway, 0.4), np.zeros(c.T), noise(sway, 0.4)], -1)
    pose.yaw += c.rng.normal(0, 4)  # the performer never faces exactly the same way
    pose.roll += noise(1.0)
    pose.lean += noise(1.5)
    pose.twist += noise(2.0) + c.rng.normal(0, 3)
    pose.bend += noise(1.5)
    pose.neck += noise(3.0) + c.rng.normal(0, 3)
    pose.look += noise(5.0) + c.rng.normal(0, 5)
    for side in (+1, -1):
        arm, leg = pose.arm[side], pose.leg[side]
        arm.el += noise(2.5, 0.8) + c.rng.normal(0, 2)
        arm.az += noise(5.0, 0.8) + c.rng.normal(0, 8)
        arm.flex += noise(4.0, 0.8) + c.rng.normal(0, 4)
        arm.wrist += noise(8.0, 0.8) + c.rng.normal(0, 8)
        leg.flex += noise(1.0)
        leg.abd += c.rng.normal(0, 1.5)
        leg.rot += c.rng.normal(0, 4)


# --------------------------------------------------------------------------------------------------
# Forward kinematics (all joints at once over the frames)


def _rot(axis: int, degrees) -> np.ndarray:
    a = np.radians(np.asarray(degrees, float))
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    rows = {0: (o, z, z, z, c, -s, z, s, c), 1: (c, z, s, z, o, z, -s, z, c), 2: (c, -s, z, s, c, z, z, z, o)}
    return np.stack(rows[axis], -1).reshape(*a.shape, 3, 3)


def _apply(R: np.ndarray, v) -> np.ndarray:
    return np.matmul(R, np.asarray(v, float)[..., None])[..., 0]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _perp(v, u: np.ndarray, fallback) -> np.ndarray:
    """The unit part of v perpendicular to u (T, 3); `fallback` (or, failing that, the front or up
    direction) where v is nearly parallel to u."""
    def part(x):
        x = np.broadcast_to(np.asarray(x, float), u.shape)
        return x - (x * u).sum(-1, keepdims=True) * u

    q, f, front, up = part(v), part(fallback), part([0, 0, 1]), part([0, 1, 0])
    size = lambda x: np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    spare = np.where(size(f) > 0.2, f, np.where(size(front) > size(up), front, up))
    return _unit(np.where(size(q) > 0.2, q, spare + q))


def _trunk_and_legs(pose: _Pose) -> tuple[np.ndarray, np.ndarray]:
    """Joints (T, 25, 3) in the shared frame except the arms, and the upper-torso frames (T, 3, 3)."""
    L, T = pose.body.seg, len(pose.yaw)
    x0, z0, heading = pose.place
    level = _rot(1, pose.yaw + np.degrees(heading))
    pelvis = level @ _rot(0, pose.pitch) @ _rot(2, pose.roll)
    half = [_rot(0, pose.bend / 2) @ _rot(2, pose.lean / 2) @ _rot(1, pose.twist / 2)] * 2
    mid = pelvis @ half[0]
    chest = mid @ half[1]
    J = np.zeros((T, NUM_JOINTS, 3))
    J[:, 0] = _apply(_rot(1, np.degrees(heading)), pose.root) + [x0, 0.0, z0]
    J[:, 1] = J[:, 0] + _apply(pelvis, [0, L["spine_low"], 0])
    J[:, 20] = J[:, 1] + _apply(mid, [0, L["spine_up"], -0.01])
    J[:, 2] = J[:, 20] + _apply(chest, [0, L["neck"], 0.01])
    J[:, 3] = J[:, 2] + _apply(chest @ _rot(0, pose.neck) @ _rot(1, pose.look), [0, L["head"], 0.02])
    for side, (sh, hip) in {+1: (4, 12), -1: (8, 16)}.items():
        J[:, sh] = J[:, 20] + _apply(chest, L["shoulder"] * _SHOULDER_DIR * [side, 1, 1])
        J[:, hip] = J[:, 0] + _apply(pelvis, L["hip"] * _HIP_DIR * [side, 1, 1])
        leg = pose.leg[side]
        toes_out = level @ _rot(1, side * leg.rot)
        thigh = toes_out @ _rot(2, side * leg.abd) @ _rot(0, -leg.flex)
        J[:, hip + 1] = J[:, hip] + _apply(thigh, [0, -L["thigh"], 0])
        J[:, hip + 2] = J[:, hip + 1] + _apply(thigh @ _rot(0, leg.knee), [0, -L["shin"], 0])
        J[:, hip + 3] = J[:, hip + 2] + _apply(toes_out @ _rot(0, leg.toe), L["foot"] * _FOOT_DIR)
    _ground(pose, J)
    return J, chest


def _ground(pose: _Pose, J: np.ndarray) -> None:
    """Stand the body on the floor (y = 0) and keep planted feet where they started."""
    L = pose.body.seg
    foot_drop = -L["foot"] * _FOOT_DIR[1]
    contact = np.minimum(J[:, [14, 18], 1] - L["ankle"], J[:, [15, 19], 1] - (L["ankle"] - foot_drop))
    shift = np.zeros((len(J), 3))
    shift[:, 1] = -contact.min(1) + pose.lift
    if pose.anchor is not None:
        ankles = {0: [14, 18], +1: [14], -1: [18]}[pose.anchor]
        rel = J[:, ankles].mean(1) - J[:, 0]
        shift[:, [0, 2]] = -(rel - rel[:1])[:, [0, 2]]
    J += shift[:, None]


def _arms(pose: _Pose, J: np.ndarray, chest: np.ndarray, everyone: list[np.ndarray]) -> None:
    """Fill the arm joints of J in place, from angles or inverse kinematics on wrist targets."""
    L = pose.body.seg
    hang = _rot(0, -pose.hang)
    for side, (elbow, wrist, hand, tip, thumb) in {+1: (5, 6, 7, 21, 22), -1: (9, 10, 11, 23, 24)}.items():
        arm = pose.arm[side]
        el, az = np.radians(arm.el), np.radians(arm.az)
        u = np.stack([side * np.sin(el) * np.sin(az), -np.cos(el), np.sin(el) * np.cos(az)], -1)
        swing = hang @ _rot(0, -arm.swing)
        u = _apply(swing, u)
        w = _perp(_apply(swing, arm.bend), u, [0, 1, 0.2])
        flex = np.radians(arm.flex)
        a, b = L["upper_arm"], L["forearm"]
        s = L["shoulder"] * _SHOULDER_DIR * [side, 1, 1]  # in the torso frame, relative to spine-shoulder
        if arm.target is not None:
            goal = arm.target
            if callable(goal):  # a shared-frame point: into this torso's frame
                goal = _apply(np.swapaxes(chest, -1, -2), goal(everyone) - J[:, 20])
            free = s + a * u + b * (np.cos(flex)[:, None] * u + np.sin(flex)[:, None] * w)
            k = arm.weight[:, None]
            arc = 4 * k * (1 - k) * np.array([0.0, 0.0, 0.12])  # hands travel in front of the body
            goal = free + k * (goal - free) + arc
            u, w, flex = _ik(s, goal, a, b, arm.pole * [side, 1, 1])
        fore = np.cos(flex)[:, None] * u + np.sin(flex)[:, None] * w
        across = -np.sin(flex)[:, None] * u + np.cos(flex)[:, None] * w
        bend = np.radians(arm.wrist)[:, None]
        palm = np.cos(bend) * fore + np.sin(bend) * across
        palm_across = -np.sin(bend) * fore + np.cos(bend) * across
        local = {elbow: s + a * u}
        local[wrist] = local[elbow] + b * fore
        local[hand] = local[wrist] + L["hand"] * palm
        local[tip] = local[hand] + L["tip"] * palm
        local[thumb] = local[hand] + L["thumb"] * _unit(0.35 * palm + 0.94 * palm_across)
        for j, v in local.items():
            J[:, j] = J[:, 20] + _apply(chest, v)


def _ik(s: np.ndarray, goal: np.ndarray, a: float, b: float, pole: np.ndarray):
    """Two-bone inverse kinematics: upper-arm direction, bend direction and elbow flexion reaching `goal`."""
    reach = goal - s
    d = np.linalg.norm(reach, axis=-1, keepdims=True)
    along = reach / np.maximum(d, 1e-9)
    d = np.clip(d, abs(a - b) + 0.02, 0.995 * (a + b))
    side = _perp(pole, along, [0, -1, 0])
    cos_in = np.clip((a * a + d * d - b * b) / (2 * a * d), -1, 1)
    elbow = a * (cos_in * along + np.sqrt(1 - cos_in**2) * side)
    u = elbow / a
    fore = (d * along - elbow) / b
    cos_f = np.clip((u * fore).sum(-1), -1, 1)
    return u, _perp(fore, u, -side), np.arccos(cos_f)


def _perform(c: _Ctx, action: str) -> np.ndarray:
    """Run the program and the kinematics: joints (T, bodies, 25, 3) in the shared frame."""
    _PROGRAMS[action](c)
    for i, pose in enumerate(c.poses):
        _habits(c, i, pose)
        _idle(c, pose)
    stages = [_trunk_and_legs(pose) for pose in c.poses]
    everyone = [J for J, _ in stages]
    for pose, (J, chest) in zip(c.poses, stages, strict=True):
        _arms(pose, J, chest, everyone)
    return np.stack(everyone, 1)


# --------------------------------------------------------------------------------------------------
# Scene: NTU camera geometry


_CAMERA_AZIMUTH = {1: 0.0, 2: 45.0, 3: -45.0}  # degrees around the stage, camera 2 on camera 1's right


@dataclass(frozen=True)
class _Camera:
    position: np.ndarray  # world (y up, floor at y = 0)
    rotation: np.ndarray  # rows: the camera's x (its left), y (up) and z (viewing direction) in world

    def view(self, xyz: np.ndarray) -> np.ndarray:
        return (xyz - self.position) @ self.rotation.T


def _cameras(seed: int, setup: int, count: int) -> dict[int, _Camera]:
    """One setup's Kinects: same height (0.8-1.8 m), each 2.7-3.4 m from the stage, tilted at it."""
    rng = _key(seed, "setup", setup)
    height, aim = rng.uniform(0.8, 1.8), rng.uniform(0.5, 1.0)
    cams = {}
    for cam in range(1, count + 1):
        azimuth = np.radians(_CAMERA_AZIMUTH[cam] + rng.normal(0, 3))
        dist = rng.uniform(2.7, 3.4)
        position = np.array([dist * np.sin(azimuth), height + rng.normal(0, 0.02), dist * np.cos(azimuth)])
        look = _unit(np.array([rng.normal(0, 0.1), aim, rng.normal(0, 0.1)]) - position)
        left = _unit(np.cross([0.0, 1.0, 0.0], look))
        up = np.cross(look, left)
        roll = np.radians(rng.normal(0, 1.5))
        left, up = np.cos(roll) * left + np.sin(roll) * up, -np.sin(roll) * left + np.cos(roll) * up
        cams[cam] = _Camera(position, np.stack([left, up, look]))
    return cams


def _stage(c: _Ctx, replication: int, two_person: bool) -> tuple[np.ndarray, np.ndarray]:
    """Shared frame -> world: (rotation, translation). The performer faces camera 2 or 3 by replication;
    a pair stands side by side to that camera, facing each other."""
    faced = np.radians(_CAMERA_AZIMUTH[2 if replication % 2 else 3])
    heading = faced + np.radians(c.rng.normal(0, 10))
    if two_person:
        heading += np.pi / 2 * (1 if c.rng.random() < 0.5 else -1)
    R = _rot(1, np.degrees(heading))
    centre = np.array([c.rng.normal(0, 0.15), 0.0, c.rng.normal(0, 0.15)])
    return R, centre - R @ np.array([0.0, 0.0, c.gap / 2])


# --------------------------------------------------------------------------------------------------
# Kinect sensor model


# Occluding body parts: (joint, joint, radius at the reference height).
_CAPSULES = ((0, 20, 0.13), (12, 16, 0.09), (2, 3, 0.1), (4, 5, 0.05), (8, 9, 0.05), (5, 6, 0.04),
             (9, 10, 0.04), (12, 13, 0.075), (16, 17, 0.075), (13, 14, 0.05), (17, 18, 0.05))
# Per-joint noise (metres at 3 m) and base rate of "inferred"; Kinect tracks the trunk best.
_NOISE = np.array([.004, .004, .005, .006, .006, .008, .01, .012, .006, .008, .01, .012,
                   .005, .007, .009, .012, .005, .007, .009, .012, .004, .015, .015, .015, .015])
_BASE_INFERRED = np.array([0, 0, 0, 0, .01, .01, .02, .04, .01, .01, .02, .04,
                           0, .005, .025, .04, 0, .005, .025, .04, 0, .05, .05, .05, .05])
# How likely a hidden joint is reported as inferred: Kinect guesses a hidden arm from the body shape,
# but keeps a leg hidden behind the other leg (it still sees the gap between them).
_HIDDEN_INFERRED = np.array([0, 0, 0, 0, .6, .6, .6, .6, .6, .6, .6, .6,
                             0, .2, .25, .25, 0, .2, .25, .25, 0, .6, .6, .6, .6])
_LIMB = np.flatnonzero(_BASE_INFERRED > 0)
_CAP_A, _CAP_B = (np.array([c[k] for c in _CAPSULES]) for k in (0, 1))
_CAP_R = np.array([c[2] for c in _CAPSULES])
_CAP_OWN = (_LIMB[None] == _CAP_A[:, None]) | (_LIMB[None] == _CAP_B[:, None])  # (capsule, limb joint)
_HAND_GROUP = {+1: [6, 7, 21, 22], -1: [10, 11, 23, 24]}
_ARM = {+1: {4, 5, 6, 7, 21, 22}, -1: {8, 9, 10, 11, 23, 24}}


def _hidden(xyz: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """(T, B, 25) bool: a limb joint lies behind a body part (of anyone) as seen from the camera."""
    x, y = xyz[..., 0] / xyz[..., 2], xyz[..., 1] / xyz[..., 2]  # image plane
    # shapes: (T, occluder body, capsule, 1, 1) against (T, 1, 1, body, limb joint)
    ax, ay, az = (v[:, :, _CAP_A, None, None] for v in (x, y, xyz[..., 2]))
    dx, dy, dz = (v[:, :, _CAP_B, None, None] - a for v, a in ((x, ax), (y, ay), (xyz[..., 2], az)))
    px, py = x[:, None, None, :, _LIMB] - ax, y[:, None, None, :, _LIMB] - ay
    r = np.clip((px * dx + py * dy) / np.maximum(dx * dx + dy * dy, 1e-12), 0, 1)  # nearest point on axis
    depth = az + r * dz
    radius = (_CAP_R[None, :] * scales[:, None])[None, :, :, None, None]
    near = (px - r * dx) ** 2 + (py - r * dy) ** 2 < (radius / depth) ** 2
    behind = near & (xyz[:, None, None, :, _LIMB, 2] > depth + 0.35 * radius)
    B = xyz.shape[1]
    behind &= ~(np.eye(B, dtype=bool)[:, None, :, None] & _CAP_OWN[None, :, None, :])  # not its own bone
    hidden = np.zeros(xyz.shape[:3], bool)
    hidden[:, :, _LIMB] = behind.any(axis=(1, 2))
    return hidden


def _crowded(xyz: np.ndarray) -> np.ndarray:
    """(T, B, 25) bool: a hand within 10 cm of another body part (its own or the partner's), which
    confuses Kinect's tracker."""
    T, B = xyz.shape[:2]
    everyone = xyz.reshape(T, 1, B * NUM_JOINTS, 3)
    out = np.zeros(xyz.shape[:3], bool)
    for b in range(B):
        for side, group in _HAND_GROUP.items():
            others = [k for k in range(B * NUM_JOINTS) if k - b * NUM_JOINTS not in _ARM[side]]
            d2 = ((xyz[:, b, group, None] - everyone[:, :, others]) ** 2).sum(-1)  # (T, 4, others)
            out[:, b, group] = d2.min(-1) < 0.10**2
    return out


def _ar1(rng: np.random.Generator, shape: tuple, rho: float) -> np.ndarray:
    """Unit-variance AR(1) noise along the first axis (frames): Kinect's errors persist for a while."""
    from scipy.signal import lfilter  # imported here: scipy.signal takes a second to import

    e = rng.normal(0.0, 1.0, shape)
    e[0] /= np.sqrt(1 - rho * rho)  # start in the stationary distribution
    return lfilter([np.sqrt(1 - rho * rho)], [1.0, -rho], e, axis=0)


def _kinect(rng: np.random.Generator, xyz: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noisy positions and trackingState for one camera's view (T, B, 25, 3) of the true joints."""
    from scipy.special import ndtri

    p = _BASE_INFERRED + _HIDDEN_INFERRED * _hidden(xyz, scales) + 0.3 * _crowded(xyz)
    p = np.clip(p * (0.7 + 0.1 * xyz[..., 2]), 1e-9, 0.95)  # farther is harder
    # A joint is inferred while a slowly varying latent stays below its p-quantile: the rate is p, and
    # the tracker loses and regains joints in runs of several frames, as in real files.
    inferred = _ar1(rng, p.shape, 0.9) < ndtri(p)
    sigma = _NOISE[:, None] * xyz[..., 2:3] / 3.0
    jitter = 0.6 * rng.normal(0, 1, xyz.shape) + 0.8 * _ar1(rng, xyz.shape, 0.7)
    drift = 0.02 * _ar1(rng, xyz.shape, 0.9) * inferred[..., None]  # inferred joints are guesses
    tracking = np.where(inferred, INFERRED, TRACKED).astype(np.int8)
    return xyz + sigma * jitter + drift, tracking


# --------------------------------------------------------------------------------------------------
# One performance, all cameras


def _frames(c: _Ctx, config: SynthConfig, action: str) -> int:
    q = _LENGTH.get(action, 0.5) + c.rng.normal(0, 0.25) - 0.3 * (c.speed - 1)
    return int(round(config.min_frames + (config.max_frames - config.min_frames) * np.clip(q, 0, 1)))


def _performance(config: SynthConfig, cohort: list[int], setup: int, subject: int, replication: int,
                action: int) -> tuple[np.ndarray, np.ndarray]:
    """The world-frame joints (T, bodies, 25, 3) of one performance and the bodies' heights (B,)."""
    name, two_person = ACTIONS[action - 1]
    rng = _key(config.seed, "performance", str(SampleName(setup, 0, subject, replication, action)))
    bodies = [physique(subject, config.seed)]
    if two_person:  # a partner from the same setup, as NTU's pairs were
        others = [s for s in cohort if s != subject]
        partner = int(rng.choice(others)) if others else config.subjects + subject
        bodies.append(physique(partner, config.seed))
    c = _Ctx(rng, bodies)
    c.start(_frames(c, config, name))
    shared = _perform(c, name)
    R, shift = _stage(c, replication, two_person)
    return shared @ R.T + shift, np.array([b.height for b in bodies])


def _render(out: Path, config: SynthConfig, cohort: list[int], setup: int, subject: int, replication: int,
            action: int, cameras: dict[int, _Camera]) -> list[Path]:
    world, heights = _performance(config, cohort, setup, subject, replication, action)
    T, B = world.shape[:2]
    paths = []
    for cam, camera in cameras.items():
        name = str(SampleName(setup, cam, subject, replication, action))
        rng = _key(config.seed, "camera", name)
        xyz, tracking = _kinect(rng, camera.view(world), heights / REFERENCE_HEIGHT)
        first = 72057594037927936 + int(rng.integers(1000, 90000))  # Kinect-style tracking ids
        path = out / f"{name}.skeleton"
        ids = first + np.arange(B) * int(rng.integers(1, 40))
        write_skeleton(path, xyz, np.ones((T, B), bool), tracking, ids)
        paths.append(path)
    return paths
