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


@pytest.fixture(scope="module")
def dask_cluster():
    """The LocalCluster of every Dask test: 2 worker processes of 1 thread (issue 16's CI).

    Yields a ``distributed.Client``; tests that kill a worker leave the cluster whole
    (its nanny starts a new worker process). One per module, closed before the
    docstring examples run (a cluster left open makes their in-process clients leak a
    socket). Skips without the dask extra.
    """
    distributed = pytest.importorskip("distributed", reason="needs the dask extra")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        client.run(_warm_up_worker)  # the compiled core and the task module, once per worker
        yield client


def _warm_up_worker() -> None:
    from idest.neighbors import _core, _distributed  # noqa: F401
