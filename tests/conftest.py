"""Shared pytest configuration."""

import os

import pytest

# Numba and BLAS threads: the CI machine has 2 cores; keep tests predictable.
os.environ.setdefault("NUMBA_NUM_THREADS", "2")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's small torch models on one thread: on a loaded 2-core machine, intra-op
    threads mostly wait on each other (tiny forward passes ran 100x slower with two)."""
    torch = pytest.importorskip("torch", reason="needs torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
