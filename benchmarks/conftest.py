import os

import pytest
import torch


@pytest.fixture(scope="module")
def bench_threads():
    """Torch and BLAS/OpenMP threads for a whole benchmark module (OCCBENCH_BENCH_THREADS, default 2)."""
    from threadpoolctl import threadpool_limits

    threads = int(os.environ.get("OCCBENCH_BENCH_THREADS", "2"))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    with threadpool_limits(threads):
        yield threads
    torch.set_num_threads(before)
