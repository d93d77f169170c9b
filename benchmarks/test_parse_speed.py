"""Parsing speed of real NTU `.skeleton` files (`occbench data prepare`'s per-file work), one thread.

Reads the six real sample files of ``../shared/data/ntu-samples`` (skipped without them) and reports
files per second; `prepare` runs one such parser per core. No baseline: this is the reader's own
speed, for the preparation-time estimate in docs/data.md. ``python -m pytest benchmarks/test_parse_speed.py -s``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from occbench.data.skeleton import read_skeleton

SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ntu-samples"
FILES = sorted(SAMPLES.glob("*.skeleton"))


@pytest.mark.skipif(not FILES, reason=f"no real NTU samples at {SAMPLES}")
def test_parse_real_files(benchmark):
    sequences = benchmark.pedantic(lambda: [read_skeleton(path) for path in FILES], rounds=20, warmup_rounds=2)
    assert len(sequences) == len(FILES)
    rate = len(FILES) / benchmark.stats.stats.median
    benchmark.extra_info["files_per_second"] = rate
    print(f"\nparsed {len(FILES)} real NTU files: {rate:.0f} files/s on one thread")
