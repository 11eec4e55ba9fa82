"""Sharded k-NN on a Dask cluster: the same answer as in-process idest.knn, bit for bit."""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import idest

distributed = pytest.importorskip("distributed", reason="needs the dask extra")
da = pytest.importorskip("dask.array", reason="needs the dask extra")

from idest.neighbors import sharded_knn  # noqa: E402
from idest.neighbors._distributed import (  # noqa: E402
    NpyRows,
    _Source,
    _task_threads,
    build_graph,
    default_shard_rows,
)


@pytest.fixture
def client(dask_cluster):
    """The module's cluster (tests/conftest.py), once every worker is back."""
    dask_cluster.wait_for_workers(2, timeout=60)
    return dask_cluster


def assert_same(nn, ref):
    """Index for index and bit for bit."""
    assert nn.indices.dtype == ref.indices.dtype and nn.distances.dtype == ref.distances.dtype
    np.testing.assert_array_equal(nn.indices, ref.indices)
    assert np.array_equal(nn.distances.view(np.int64), ref.distances.view(np.int64))


def duplicate_data(seed: int = 0) -> np.ndarray:
    """Exact-duplicate groups (one larger than k) on shard boundaries, near-duplicates, ties."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(420, 24)).astype(np.float32)
    X[95:125] = X[95]  # 30 copies straddle the boundaries at 100 and 120 (k = 10 < 29)
    X[196:204] = X[3]  # copies of a row of the first shard, across the boundary at 200
    X[300:310] = X[300] + rng.normal(scale=1e-6, size=(10, 24)).astype(np.float32)  # near
    X[350:360] = np.round(X[350:360])  # integer rows: exact non-zero distance ties
    X[360:380] = X[350:360].repeat(2, axis=0) + np.float32(1.0)
    return X


@pytest.mark.parametrize("shard_rows", [100, 120, 420])
def test_self_search_equals_in_process(client, shard_rows):
    X = duplicate_data()
    ref = idest.knn(X, 10)
    assert_same(sharded_knn(X, 10, client=client, shard_rows=shard_rows), ref)


def test_lattice_ties_and_sgemm_tiles(client):
    """Integer lattice (every distance is tied) at D > 64, where the core takes SGEMM tiles."""
    rng = np.random.default_rng(1)
    X = rng.integers(0, 3, size=(300, 80)).astype(np.float64)
    X[140:170] = X[0]
    assert_same(sharded_knn(X, 12, client=client, shard_rows=150), idest.knn(X, 12))


def test_knn_client_keyword_and_query_reference(client):
    X = duplicate_data(2)
    Q = np.concatenate([X[90:130], X[350:380]]).astype(np.float64)  # mixed dtypes: float64
    assert_same(idest.knn(X, 6, client=client), idest.knn(X, 6))
    assert_same(sharded_knn(Q, 6, client=client, reference=X, shard_rows=100),
                idest.knn(Q, 6, reference=X))
    assert_same(sharded_knn(Q, 400, client=client, reference=X, shard_rows=130),
                idest.knn(Q, 400, reference=X))  # k above the shard size


def test_equal_distances_from_different_squared_distances(client):
    """Two squared distances one ulp apart share a square root: the exact order is by the
    squared distance, which puts the higher index first; a merge by (distance, index)
    alone would return the other row."""
    u = [1.5118216247002567, 1.9504636963259352, 1.1441596127196338, 1.9486494471372438]
    v = [1.5118216247002567, 1.9504636963259352, 1.1441596127196338, 1.9486494471372435]
    X = np.random.default_rng(0).normal(size=(60, 4)) * 10 + 50
    X[0], X[1], X[59] = 0.0, u, v
    ref = idest.knn(X, 2)
    assert ref.distances[0, 0] == ref.distances[0, 1] and list(ref.indices[0]) == [59, 1]
    for k in (1, 2):
        assert_same(sharded_knn(X, k, client=client, shard_rows=30), idest.knn(X, k))


def npy_rows_in(obj):
    """Every NpyRows among a task's arguments (Dask task-spec objects or plain tuples)."""
    if isinstance(obj, NpyRows):
        yield obj
    elif isinstance(obj, list | tuple):
        for item in obj:
            yield from npy_rows_in(item)
    elif hasattr(obj, "args"):
        yield from npy_rows_in(obj.args)
        yield from npy_rows_in(list(getattr(obj, "kwargs", {}).values()))
    elif hasattr(obj, "value"):
        yield from npy_rows_in(obj.value)


def test_npy_tasks_map_only_their_rows(client, tmp_path):
    X = duplicate_data(3)
    path = tmp_path / "x.npy"
    np.save(path, X)
    import dask

    blocks = build_graph(client, _Source(str(path), "X", "knn"), None, 10, 100, None)
    graph = dict(dask.delayed(blocks).__dask_graph__())
    per_task = [list(npy_rows_in(task)) for task in graph.values()]
    reads = [r for rows in per_task for r in rows]
    assert max(len(rows) for rows in per_task) == 2  # a pair task: two shards, no more
    assert all(r.stop - r.start <= 100 for r in reads) and len(reads) == 5 + 2 * 10
    assert {(r.start, r.stop) for r in reads} == {(0, 100), (100, 200), (200, 300),
                                                  (300, 400), (400, 420)}
    assert_same(idest.knn(str(path), 10, client=client), idest.knn(X, 10))
    mapped = np.load(path, mmap_mode="r")  # a memory map of the whole file: searched by path
    assert _Source(mapped, "X", "knn").path == str(path)
    assert _Source(mapped[1:], "X", "knn").path is None  # a part of it: its rows are sent
    assert_same(idest.knn(mapped, 10, client=client), idest.knn(X, 10))


def test_dask_array_input(client):
    X = duplicate_data(4)
    x = da.from_array(X, chunks=(70, 24))
    assert_same(sharded_knn(x, 8, client=client, shard_rows=110), idest.knn(X, 8))
    assert_same(sharded_knn(X[:50], 8, client=client, reference=x, shard_rows=110),
                idest.knn(X[:50], 8, reference=X))


@pytest.mark.parametrize("n_threads", [1, 2, 3, 8, 32])
def test_default_shards_make_equal_tasks(n_threads):
    """An even number of shards: P (P - 1) / 2 pair tasks and P / 2 tasks of two
    diagonals, each the work of one pair, at least 4 per worker thread."""
    n = 100_003  # shards under MAX_SHARD_ROWS
    n_shards = -(-n // default_shard_rows(n, n_threads))
    assert n_shards % 2 == 0 and n_shards**2 // 2 >= 4 * n_threads
    assert (n_shards - 2) ** 2 // 2 < 4 * n_threads  # the fewest that do


def test_task_threads_are_the_workers(client):
    counts = [client.submit(lambda: _task_threads(None)[0], workers=[addr], pure=False)
              for addr in client.nthreads()]
    assert client.gather(counts) == [1, 1]
    assert _task_threads(3)[0] == 3  # an explicit n_jobs wins, outside a worker too


def test_input_errors(client, tmp_path):
    X = duplicate_data()
    with pytest.raises(ValueError, match="knn: k must be"):
        sharded_knn(X, 420, client=client)
    with pytest.raises(TypeError, match="distributed.Client"):
        sharded_knn(X, 3, client="tcp://localhost:8786")
    with pytest.raises(ValueError, match="backend must be 'auto' or 'cpp'"):
        idest.knn(X, 3, client=client, backend="numba")
    with pytest.raises(ValueError, match=r"existing \.npy file"):
        idest.knn(str(tmp_path / "missing.npy"), 3, client=client)
    with pytest.raises(ValueError, match="features"):
        sharded_knn(X, 3, client=client, reference=X[:, :5])
    bad = X.copy()
    bad[250, 3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=r"X\[200:300\] must be finite.*row 50"):
        sharded_knn(str(tmp_path / "bad.npy"), 3, client=client, shard_rows=100)


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install 'idest\[dask\]'"):
        idest.knn(np.zeros((5, 2)), 2, client=object())


@pytest.mark.slow
def test_worker_killed_mid_search_gives_the_full_result(client, tmp_path):
    """SIGKILL one worker process while tasks run: Dask recomputes its tasks elsewhere."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(12_000, 48)).astype(np.float32)
    X[5990:6010] = X[5990]
    path = tmp_path / "x.npy"
    np.save(path, X)
    ref = idest.knn(X, 10)
    pids = client.run(os.getpid)
    with ThreadPoolExecutor(1) as pool:
        search = pool.submit(sharded_knn, str(path), 10, client=client, shard_rows=1000)
        deadline = time.monotonic() + 60
        while not any(client.processing().values()) and time.monotonic() < deadline:
            time.sleep(0.01)
        victim = next(addr for addr, tasks in client.processing().items() if tasks)
        os.kill(pids[victim], signal.SIGKILL)
        assert not search.done()  # killed mid-computation
        assert_same(search.result(timeout=120), ref)


def test_command_line_on_a_running_scheduler(client, capsys, tmp_path):
    from idest.cli import main
    from idest.utils import dask_client

    X = duplicate_data(6)
    np.save(tmp_path / "x.npy", X)
    out = tmp_path / "nn.npz"
    assert main(["knn", str(tmp_path / "x.npy"), "-k", "4", "--out", str(out),
                 "--scheduler", client.scheduler.address]) == 0
    assert "dashboard" in capsys.readouterr().out
    saved, ref = np.load(out), idest.knn(X, 4)
    np.testing.assert_array_equal(saved["indices"], ref.indices)
    with pytest.raises(ValueError, match="not both"), dask_client("tcp://x:1", 2):
        pass


def test_local_cluster_sends_a_worker_only_the_task_it_runs():
    """--workers N starts a scheduler of worker saturation 1.0: a one-thread worker
    is never sent a second long task that another, idle worker could run."""
    from idest.utils import dask_client
    from idest.utils.cluster import WORKER_SATURATION

    with dask_client(workers=1, echo=lambda line: None) as client:
        saturation = client.run_on_scheduler(lambda dask_scheduler:
                                             dask_scheduler.WORKER_SATURATION)
    assert saturation == WORKER_SATURATION == 1.0
