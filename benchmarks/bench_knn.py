"""idest.knn side by side with the k-NN searches users would otherwise pick.

Run (full sizes, several minutes)::

    .venv/bin/pytest benchmarks/bench_knn.py --benchmark-json=benchmarks/results/knn.json
    .venv/bin/python benchmarks/report.py benchmarks/results/knn.json

``--quick`` divides every N by 10. Every peer runs in the same process, on the
same data, in the same session; compare ratios, not absolute times (the machine
is shared). Each timed call returns its result so that accuracy against a
float64 reference (on a seeded subset of 500 query rows) is recorded beside the
time, in ``extra_info``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_data, scaled

import idest
from idest.neighbors._backends import columns_without_self

K = 10
CASES = [(20_000, 20), (100_000, 20), (50_000, 768)]
#: Peers whose one call takes minutes at this size get a single round.
SLOW = {("scipy-ckdtree", 768), ("sklearn-auto", 768), ("sklearn-brute", 768)}
#: A k-d tree in 768 dimensions prunes nothing: 61 s at N=5,000 in --quick mode
#: (pytest benchmarks/bench_knn.py --quick), and its cost grows as N^2, so the
#: full size (N=50,000) would take well over an hour. It runs in --quick mode only.
QUICK_ONLY = {("scipy-ckdtree", 768)}


def drop_self(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From a (n, k+1) peer self-search, remove each row's own index."""
    keep = columns_without_self(idx)
    return np.take_along_axis(dist, keep, 1), np.take_along_axis(idx, keep, 1)


def run_idest(X):
    nn = idest.knn(X, K, progress=False)
    return nn.distances, nn.indices


def run_faiss(X):
    import faiss

    index = faiss.IndexFlatL2(X.shape[1])
    index.add(X)
    sq, idx = index.search(X, K + 1)
    return drop_self(np.sqrt(np.maximum(sq, 0)), idx)


def run_sklearn(algorithm):
    from sklearn.neighbors import NearestNeighbors

    def run(X):
        model = NearestNeighbors(n_neighbors=K, algorithm=algorithm, n_jobs=-1).fit(X)
        return model.kneighbors()  # without X: each point's own row is excluded

    return run


def run_ckdtree(X):
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(X).query(X, k=K + 1, workers=-1)
    return drop_self(dist, idx)


PEERS = {
    "idest": run_idest,
    "faiss-flatl2": run_faiss,
    "sklearn-brute": run_sklearn("brute"),
    "sklearn-auto": run_sklearn("auto"),
    "scipy-ckdtree": run_ckdtree,
}


def accuracy(X: np.ndarray, dist: np.ndarray, idx: np.ndarray, n_rows: int = 500,
             k: int = K) -> dict:
    """Max relative distance error and index agreement against float64, on a subset."""
    rows = np.random.default_rng(0).choice(X.shape[0], size=min(n_rows, X.shape[0]), replace=False)
    X64 = X.astype(np.float64)
    worst, agree = 0.0, 0
    for r in rows:
        d2 = ((X64 - X64[r]) ** 2).sum(axis=1)
        d2[r] = np.inf
        order = np.lexsort((np.arange(len(d2)), d2))[:k]
        ref = np.sqrt(d2[order])
        got = np.asarray(dist[r], dtype=np.float64)
        rel = np.abs(got - ref) / np.maximum(ref, np.finfo(float).tiny)
        worst = max(worst, float(rel.max()))
        agree += int((np.asarray(idx[r]) == order).all())
    return {"max_rel_distance_error": worst, "rows_identical": agree / len(rows)}


@pytest.mark.parametrize("library", list(PEERS))
@pytest.mark.parametrize("case", CASES)
def test_knn(benchmark, quick, library, case):
    n, dim = scaled(case[0], quick), case[1]
    if (library, dim) in QUICK_ONLY and not quick:
        pytest.skip(f"{library} at D={dim} takes hours at full size (see QUICK_ONLY)")
    X = make_data(n, dim)
    benchmark.group = f"knn k={K} float32 N={n} D={dim}"
    benchmark.extra_info.update(n=n, dim=dim, k=K, library=library)
    rounds = 1 if (library, dim) in SLOW else 3
    dist, idx = benchmark.pedantic(PEERS[library], args=(X,), rounds=rounds, iterations=1)
    benchmark.extra_info.update(accuracy(X, dist, idx))


#: Neighbour counts of the multi-scale estimators (issue 13), at N=10,000, D=256
#: (N / 10 and k / 10 with --quick), against scikit-learn's brute force on two
#: jobs, the fastest peer at large k.
LARGE_K = [1_000, 4_000]
LARGE_K_PEERS = ["idest", "sklearn-brute"]


def run_large_k(library: str, k: int):
    from sklearn.neighbors import NearestNeighbors

    def run(X):
        if library == "idest":
            nn = idest.knn(X, k, progress=False)
            return nn.distances, nn.indices
        return NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=2).fit(X).kneighbors()

    return run


@pytest.mark.parametrize("library", LARGE_K_PEERS)
@pytest.mark.parametrize("k", LARGE_K)
def test_knn_large_k(benchmark, quick, library, k):
    n, dim = scaled(10_000, quick), 256
    k = k // 10 if quick else k
    X = make_data(n, dim)
    benchmark.group = f"knn k={k} float32 N={n} D={dim}"
    benchmark.extra_info.update(n=n, dim=dim, k=k, library=library)
    dist, idx = benchmark.pedantic(run_large_k(library, k), args=(X,), rounds=3, iterations=1)
    benchmark.extra_info.update(accuracy(X, dist, idx, n_rows=100, k=k))


@pytest.mark.parametrize("data", ["distinct", "half-zero"])
@pytest.mark.parametrize("k", [K, 1_000])
def test_knn_duplicates(benchmark, quick, data, k):
    """Half the rows all-zero (dead units, padding) against the same data
    without them: exact duplicates are grouped and searched once."""
    n, dim = scaled(10_000, quick), 256
    k = max(K, k // 10) if quick else k
    X = make_data(n, dim).copy()
    if data == "half-zero":
        X[::2] = 0.0
    benchmark.group = f"knn duplicates k={k} float32 N={n} D={dim}"
    benchmark.extra_info.update(n=n, dim=dim, k=k,
                                library="idest" if data == "distinct" else f"idest {data}")
    dist, idx = benchmark.pedantic(run_large_k("idest", k), args=(X,), rounds=3, iterations=1)
    benchmark.extra_info.update(accuracy(X, dist, idx, n_rows=100, k=k))


def test_sgemm_rate(benchmark, quick):
    """This machine's float32 GEMM rate (numpy's BLAS, all cores), for the lower
    bound on an exhaustive search: 2 N^2 D flops (N^2 D with symmetry)."""
    n, dim = 4096, 768
    A = make_data(n, dim)
    benchmark.group = "sgemm rate"
    benchmark.pedantic(np.matmul, args=(A, A.T), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(flops=2.0 * n * n * dim)


PEAK_MEMORY_SCRIPT = """
import numpy as np, idest
from idest.datasets import linear_gaussian
X = linear_gaussian({n}, 8, {dim}, noise=0.01, dtype=np.float32, random_state=0)
nn = idest.knn(X, {k}, progress=False)
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(int(status["VmHWM"].split()[0]) * 1024, X.nbytes)
"""
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a
# large pytest process would report the parent's resident size.


def test_peak_memory(benchmark, quick):
    """Peak resident memory of a whole process running idest.knn on N=100,000,
    D=768 float32 (a 307 MB input); once, in a fresh interpreter."""
    n, dim = scaled(100_000, quick), 768
    benchmark.group = "peak memory"
    script = PEAK_MEMORY_SCRIPT.format(n=n, dim=dim, k=K)

    def run():
        out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                             text=True)
        return [int(v) for v in out.stdout.split()]

    peak, nbytes = benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(n=n, dim=dim, peak_rss_bytes=peak, input_bytes=nbytes)
    print(json.dumps({"peak_rss_MB": peak / 2**20, "input_MB": nbytes / 2**20}))
    assert peak < 2**30, f"peak memory {peak / 2**20:.0f} MB exceeds 1 GB"
