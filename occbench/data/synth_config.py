"""The settings of the embedded dataset's generator (`occbench.data.synth`).

Apart from the generator so that the command line can show their defaults without importing numpy.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SynthConfig:
    classes: int = 12  # the first `classes` entries of ACTIONS
    subjects: int = 10  # performer ids 1..subjects
    setups: int = 4  # setup ids 1..setups: camera height, tilt and distances differ per setup
    cameras: int = 3  # camera ids 1..cameras (NTU: 1 at 0 degrees, 2 and 3 at +-45)
    replications: int = 2
    min_frames: int = 40
    max_frames: int = 90
    seed: int = 0
