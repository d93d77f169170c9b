"""Facts about NTU RGB+D 60/120: sample names, official splits, excluded samples, joints, classes.

Sources (see ../shared/reference/data.md): shahroudy/NTURGB-D README and missing-skeleton lists,
ST-GCN / CTR-GCN split scripts. Arrays use ST-GCN's layout (C, T, V, M) = (3, T, 25, 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from occbench.errors import OccbenchError

NUM_JOINTS = 25
MAX_BODIES = 2
CENTER_JOINT = 20  # spine-shoulder (1-based 21): the ST-GCN graph centre and the "relative" origin
LEFT_SHOULDER, RIGHT_SHOULDER = 4, 8

# (child, parent) pairs, 0-based, from ST-GCN's ntu-rgb+d graph; the centre is its own parent.
BONES: tuple[tuple[int, int], ...] = tuple(
    (a - 1, b - 1)
    for a, b in [
        (1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9), (11, 10),
        (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18), (20, 19),
        (21, 21), (22, 23), (23, 8), (24, 25), (25, 12),
    ]
)
PARENT: tuple[int, ...] = tuple(parent for _, parent in sorted(BONES))
EDGES: tuple[tuple[int, int], ...] = tuple((c, p) for c, p in BONES if c != p)  # the 24 graph edges
LEFT_RIGHT_SWAP = (0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15, 20, 23, 24, 21, 22)

JOINT_NAMES = (
    "spine base", "spine mid", "neck", "head", "left shoulder", "left elbow", "left wrist", "left hand",
    "right shoulder", "right elbow", "right wrist", "right hand", "left hip", "left knee", "left ankle",
    "left foot", "right hip", "right knee", "right ankle", "right foot", "spine shoulder",
    "left hand tip", "left thumb", "right hand tip", "right thumb",
)

NTU60_TRAIN_SUBJECTS = frozenset({1, 2, 4, 5, 8, 9, 13, 14, 15, 16, 17, 18, 19, 25, 27, 28, 31, 34, 35, 38})
NTU120_TRAIN_SUBJECTS = NTU60_TRAIN_SUBJECTS | {
    45, 46, 47, 49, 50, 52, 53, 54, 55, 56, 57, 58, 59, 70, 74, 78, 80, 81, 82, 83, 84, 85, 86, 89, 91,
    92, 93, 94, 95, 97, 98, 100, 103,
}
XVIEW_TRAIN_CAMERAS = frozenset({2, 3})

_NAME = re.compile(r"S(\d{3})C(\d{3})P(\d{3})R(\d{3})A(\d{3})")


@dataclass(frozen=True)
class SampleName:
    """The fields of an NTU file name SsssCcccPpppRrrrAaaa."""

    setup: int
    camera: int
    subject: int
    replication: int
    action: int  # 1-based, as in the name

    @property
    def label(self) -> int:
        return self.action - 1

    def __str__(self) -> str:
        return (
            f"S{self.setup:03d}C{self.camera:03d}P{self.subject:03d}"
            f"R{self.replication:03d}A{self.action:03d}"
        )


def parse_name(name: str) -> SampleName:
    """Parse 'S001C002P003R002A013' (a path or a '.skeleton' suffix is fine). Anything else around the
    name, or a number 0, is an error: a label read from a near-miss ('A0011', 'copy of S001...') would be
    made up."""
    stem = str(name).replace("\\", "/").rsplit("/", 1)[-1].removesuffix(".skeleton")
    match = _NAME.fullmatch(stem)
    if not match or 0 in (numbers := [int(g) for g in match.groups()]):
        raise OccbenchError(
            f"{name}: not an NTU sample name (expected SsssCcccPpppRrrrAaaa with numbers from 001, "
            "e.g. S001C002P003R002A013)"
        )
    return SampleName(*numbers)


BENCHMARKS = {
    # benchmark: (number of classes, highest setup, its splits)
    "ntu60": (60, 17, ("xsub", "xview")),
    "ntu120": (120, 32, ("xsub", "xset")),
}


# Usable samples (after the missing-skeleton exclusion) and (train, test) sizes of each official split.
# NTU-120 xset is 54,468 / 59,477 with the official 535-name list (papers often print 54,471).
OFFICIAL_SIZES = {
    "ntu60": (56578, {"xsub": (40091, 16487), "xview": (37646, 18932)}),
    "ntu120": (113945, {"xsub": (63026, 50919), "xset": (54468, 59477)}),
}


def benchmark_splits(benchmark: str) -> tuple[str, ...]:
    return BENCHMARKS[check_benchmark(benchmark)][2]


def check_benchmark(benchmark: str) -> str:
    if benchmark not in BENCHMARKS:
        raise OccbenchError(f"unknown benchmark {benchmark!r}: use one of {', '.join(BENCHMARKS)}")
    return benchmark


def in_benchmark(name: SampleName, benchmark: str) -> bool:
    num_class, max_setup, _ = BENCHMARKS[benchmark]
    return name.setup <= max_setup and name.action <= num_class


def is_train(name: SampleName, benchmark: str, split: str) -> bool:
    """Whether a sample is in the training part of an official split (else it is in the test part)."""
    if split == "xsub":
        subjects = NTU60_TRAIN_SUBJECTS if benchmark == "ntu60" else NTU120_TRAIN_SUBJECTS
        return name.subject in subjects
    if split == "xview":
        return name.camera in XVIEW_TRAIN_CAMERAS
    if split == "xset":
        return name.setup % 2 == 0
    raise OccbenchError(f"unknown split {split!r}: use xsub, xview (NTU-60) or xsub, xset (NTU-120)")


@cache
def missing_skeletons(benchmark: str) -> frozenset[str]:
    """The officially excluded samples: 302 for NTU-60, 535 for NTU-120."""
    text = resources.files("occbench.data").joinpath("resources/ntu_missing_skeletons.txt").read_text()
    names = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    max_setup = BENCHMARKS[check_benchmark(benchmark)][1]
    return frozenset(n for n in names if parse_name(n).setup <= max_setup)


@cache
def class_names(benchmark: str = "ntu120") -> tuple[str, ...]:
    text = resources.files("occbench.data").joinpath("resources/ntu_classes.txt").read_text()
    names = tuple(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return names[: BENCHMARKS[check_benchmark(benchmark)][0]]
