"""Wall time of the quick grid: `occbench run` with no arguments, from an empty cache, data generation included.

Opt-in (about 10 minutes on 2 cores): ``OCCBENCH_BENCH_GRID=1 python -m pytest benchmarks/test_quick_grid.py``.
It runs the real command in a fresh process with a fresh OCCBENCH_HOME and results folder, once
(pytest-benchmark pedantic, one round), and prints the time of each stage kind from the stage records.
The goal (under 10 minutes on 2 CPU cores) is reported, not asserted: a benchmark does not fail
because a machine is slow or shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("OCCBENCH_BENCH_GRID"), reason="opt-in: OCCBENCH_BENCH_GRID=1")


def test_quick_grid_wall_time(benchmark, tmp_path):
    env = {**os.environ, "OCCBENCH_HOME": str(tmp_path / "home")}

    def run():
        done = subprocess.run([sys.executable, "-m", "occbench", "run", "--results", str(tmp_path / "results")],
                              env=env, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]

    benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = defaultdict(float)
    for marker in (tmp_path / "home" / "work").glob("*/*/done.json"):
        seconds[marker.parent.parent.name] += json.loads(marker.read_text()).get("wall_seconds", 0.0)
    total = benchmark.stats.stats.max
    benchmark.extra_info.update({"stage_seconds": dict(seconds), "threads": os.environ.get("OMP_NUM_THREADS")})
    print(f"\nquick grid: {total / 60:.1f} min (goal < 10 min on 2 cores); by stage kind: "
          + ", ".join(f"{kind} {value:.0f} s" for kind, value in sorted(seconds.items())))
