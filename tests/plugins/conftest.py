import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a small shared CPU two threads oversubscribe and run these steps ~5x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
