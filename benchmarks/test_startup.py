"""Start time of the commands people type most: `occbench --help` and `occbench table`.

Each is a fresh interpreter (what a shell does), timed by pytest-benchmark. Baselines, in the same run:
a bare interpreter (`python -c pass`, the floor no command can beat) and `python -c "import torch"`
(what every command would cost if the command line imported the training code). Run with
``python -m pytest benchmarks/test_startup.py``; docs/benchmarks.md has the figures.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMANDS = {
    "bare python": ["-c", "pass"],
    "import torch": ["-c", "import torch"],
    "occbench --help": ["-m", "occbench", "--help"],
    "occbench table --compare paper": ["-m", "occbench", "table", "--compare", "paper", "--format", "latex"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_start_time(benchmark, name, tmp_path):
    def start():
        done = subprocess.run([sys.executable, *COMMANDS[name]], cwd=tmp_path, capture_output=True,
                              env={**os.environ, "OCCBENCH_HOME": str(tmp_path)})
        assert done.returncode == 0, done.stderr.decode()[-500:]

    benchmark.pedantic(start, rounds=10, iterations=1, warmup_rounds=1)
