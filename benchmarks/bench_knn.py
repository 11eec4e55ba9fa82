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
import time

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
    # OpenBLAS's idle threads spin for about 0.1 s after a multi-threaded call
    # (make_data makes one) and take a core from whatever runs next: 20,000 x 20
    # searched right after a 500 x 500 matmul took 60-79 ms, after a pause
    # 38-45 ms. So each peer starts after a pause, and after one untimed call
    # (a process's first searches also pay for fresh memory pages).
    time.sleep(0.5)
    slow = (library, dim) in SLOW
    dist, idx = benchmark.pedantic(PEERS[library], args=(X,), rounds=1 if slow else 5,
                                   iterations=1, warmup_rounds=0 if slow else 1)
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


@pytest.mark.parametrize("data", ["continuous", "integers 0-9"])
def test_knn_ties(benchmark, quick, data):
    """Integer-valued features (counts, quantised activations): most rows' k-th
    distance is shared by more points than their candidate lists hold, and
    those rows are searched again with wider lists. Against continuous data of
    the same shape; ``n_fallback_rows`` (rows left to the exhaustive float64
    search) is recorded beside the time."""
    n, dim = scaled(20_000, quick), 8
    if data == "continuous":
        X = make_data(n, dim)
    else:
        X = np.random.default_rng(0).integers(0, 10, size=(n, dim)).astype(np.float32)
    benchmark.group = f"knn ties k={K} float32 N={n} D={dim}"
    benchmark.extra_info.update(n=n, dim=dim, k=K,
                                library="idest" if data == "continuous" else f"idest {data}")
    time.sleep(0.5)  # see test_knn
    nn = benchmark.pedantic(idest.knn, args=(X, K), kwargs={"progress": False}, rounds=5,
                            iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(n_fallback_rows=nn.n_fallback_rows,
                                **accuracy(X, nn.distances, nn.indices))


def test_sgemm_rate(benchmark, quick):
    """This machine's float32 GEMM rate (numpy's BLAS, all cores), for the lower
    bound on an exhaustive search: 2 N^2 D flops (N^2 D with symmetry)."""
    n, dim = 4096, 768
    A = make_data(n, dim)
    benchmark.group = "sgemm rate"
    benchmark.pedantic(np.matmul, args=(A, A.T), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(flops=2.0 * n * n * dim)


def test_fma_rate(benchmark):
    """This machine's float32 multiply-add peak on the cores a search uses: the
    compiled core's micro-kernel (independent chains of the fused kernel's widest
    FMA instruction, in registers), for the arithmetic bound of a small-D search
    (N (N - 1) D flops for a self search: the upper triangle's dot products)."""
    from idest.neighbors import _core
    from idest.neighbors._knn import default_n_jobs

    threads = default_n_jobs()
    benchmark.group = "fma rate"
    rates = [_core.fma_rate("fused", threads, 0.5) for _ in range(3)]
    benchmark.pedantic(_core.fma_rate, args=("fused", threads, 0.2), rounds=1, iterations=1)
    benchmark.extra_info.update(flops_per_second=max(rates), rates=rates, n_threads=threads,
                                fma_bound_rule="self search: N (N - 1) D flops / rate")


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


# --- interleaved large-k runs (issue 13) ------------------------------------
#
#     .venv/bin/python benchmarks/bench_knn.py --interleaved --cases small \
#         --before /path/to/main/_core.so -o benchmarks/results/knn_large_k.json
#     .venv/bin/python benchmarks/bench_knn.py --interleaved --cases big \
#         -o benchmarks/results/knn_large_k_50000.json
#     .venv/bin/python benchmarks/report.py benchmarks/results/knn_large_k.json \
#         benchmarks/results/knn_large_k_50000.json -o benchmarks/results/knn_large_k.md
#
# pytest-benchmark runs one peer's rounds back to back; on a shared machine a
# change of load between peers then reads as a speed difference. Here every
# round runs each peer once, in a rotating order, and the medians are compared.
# 10,000 x 256 (k = 10, 1,000, 4,000) runs in this process against
# scikit-learn's brute force on two jobs and, with --before, against another
# build of the compiled core (main's) behind the same idest.knn. Each
# 50,000 x 768 case runs in a fresh process per peer, which reports its own
# peak resident memory (VmHWM, and ru_maxrss); faiss and idest run on the BLAS
# kernel their OpenBLAS picks and again with OPENBLAS_CORETYPE=SkylakeX (see the
# kernel each child reports). The JSON has pytest-benchmark's layout, for report.py.

SMALL_CASES = [(10, 15), (1_000, 3), (4_000, 3)]  # (k, rounds) at N=10,000, D=256
BIG_CASES = [  # (k, peers) at N=50,000, D=768, one round each
    (2_048, ["idest", "idest SkylakeX", "sklearn-brute", "faiss-flatl2",
             "faiss-flatl2 SkylakeX"]),
    (8_192, ["idest"]),
]


def run_peer(library: str, X: np.ndarray, k: int):
    """One call of a large-k peer: (distances, indices) without each point itself."""
    from sklearn.neighbors import NearestNeighbors

    if library.startswith("idest"):
        nn = idest.knn(X, k, progress=False)
        return nn.distances, nn.indices
    if library.startswith("faiss"):
        import faiss

        index = faiss.IndexFlatL2(X.shape[1])
        index.add(X)
        sq, idx = index.search(X, k + 1)
        return drop_self(np.sqrt(np.maximum(sq, 0)), idx)
    return NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=2).fit(X).kneighbors()


def blas_kernels() -> list[dict]:
    """Each loaded BLAS / OpenMP library, its version and the kernel it chose."""
    from threadpoolctl import threadpool_info

    return [{key: info.get(key) for key in ("internal_api", "version", "architecture",
                                             "num_threads", "filepath")}
            for info in threadpool_info()]


def one_case(library: str, n: int, dim: int, k: int) -> dict:
    """A peer's single timed call in this (fresh) process, with its peak memory."""
    import resource
    import time

    import scipy.linalg  # noqa: F401  (load SciPy's BLAS before asking)

    X = make_data(n, dim)
    if library.startswith("faiss"):
        import faiss  # noqa: F401  (its OpenBLAS, for blas_kernels)
    start = time.perf_counter()
    dist, idx = run_peer(library, X, k)
    seconds = time.perf_counter() - start
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    memory = {"peak_rss_bytes": int(status["VmHWM"].split()[0]) * 1024,  # before the check
              "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    return {"seconds": seconds, **memory, "output_bytes": dist.nbytes + idx.nbytes,
            "input_bytes": X.nbytes, "blas": blas_kernels(),
            **accuracy(X, dist, idx, n_rows=20, k=k)}


def bench_entry(group: str, library: str, times: list[float], info: dict) -> dict:
    return {"group": group, "name": f"{group} {library}",
            "stats": {"median": float(np.median(times)), "rounds": len(times),
                      "data": times, "min": min(times), "max": max(times)},
            "extra_info": {"library": library, **info}}


def interleaved(out: str, before: str | None, quick: bool, cases: str = "all") -> None:
    import datetime
    import importlib.machinery
    import importlib.util
    import os
    import time

    from conftest import pytest_benchmark_update_machine_info

    import idest.neighbors
    from idest.neighbors import _core as this_core

    start_load = list(os.getloadavg())
    cores = {"idest": this_core}
    if before:  # another build of the same extension module, behind the same idest.knn
        loader = importlib.machinery.ExtensionFileLoader("_core", before)
        spec = importlib.util.spec_from_file_location("_core", before, loader=loader)
        cores["idest main"] = importlib.util.module_from_spec(spec)
        loader.exec_module(cores["idest main"])
    benches = []
    n, dim = scaled(10_000, quick), 256
    X = make_data(n, dim)
    for p in [*cores, "sklearn-brute"] if cases != "big" else []:  # warm-up, untimed
        if p in cores:
            idest.neighbors._core = sys.modules["idest.neighbors._core"] = cores[p]
        run_peer(p, X, K)
    for k, rounds in SMALL_CASES if cases != "big" else []:
        k = max(K, k // 10) if quick else k
        group = f"knn k={k} float32 N={n} D={dim}"
        peers = [*cores, "sklearn-brute"]
        times = {p: [] for p in peers}
        info = {}
        for r in range(rounds):
            for p in peers[r % len(peers):] + peers[: r % len(peers)]:
                core = cores.get(p)
                if core is not None:
                    idest.neighbors._core = sys.modules["idest.neighbors._core"] = core
                start = time.perf_counter()
                dist, idx = run_peer(p, X, k)
                times[p].append(time.perf_counter() - start)
                if p not in info:
                    info[p] = {"n": n, "dim": dim, "k": k, **accuracy(X, dist, idx, 100, k)}
                del dist, idx
            idest.neighbors._core = sys.modules["idest.neighbors._core"] = this_core
        print(group, {p: round(float(np.median(t)), 3) for p, t in times.items()}, flush=True)
        benches += [bench_entry(group, p, times[p], info[p]) for p in peers]
    n, dim = scaled(50_000, quick), 768
    for k, peers in BIG_CASES if cases != "small" else []:
        k = k // 10 if quick else k
        group = f"knn k={k} float32 N={n} D={dim} (one process per peer)"
        for p in peers:
            env = dict(os.environ)
            if p.endswith("SkylakeX"):
                env["OPENBLAS_CORETYPE"] = "SkylakeX"
            script = (f"import sys, json; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                      f"import bench_knn; print(json.dumps(bench_knn.one_case({p!r}, {n}, {dim}, "
                      f"{k})))")
            proc = subprocess.run([sys.executable, "-c", script], env=env, check=True,
                                  capture_output=True, text=True)
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            seconds = res.pop("seconds")
            print(group, p, round(seconds, 2), "s,", res["peak_rss_bytes"] >> 20, "MiB", flush=True)
            benches.append(bench_entry(group, p, [seconds], {"n": n, "dim": dim, "k": k, **res}))
    machine: dict = {}
    pytest_benchmark_update_machine_info(None, machine)
    import platform

    machine["cpu"] = {"brand_raw": machine["cpu_model"], "count": os.cpu_count()}
    machine["load_average_at_start_end"] = [start_load, list(os.getloadavg())]
    machine["python"] = platform.python_version()
    data = {"machine_info": machine, "benchmarks": benches,
            "datetime": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "before": before, "method": "interleaved rounds, medians (bench_knn.py --interleaved)"}
    with open(out, "w") as fh:
        json.dump(data, fh, indent=1)
    print("written:", out)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="interleaved large-k k-NN benchmark")
    parser.add_argument("--interleaved", action="store_true", required=True)
    parser.add_argument("--before", help="another build of idest.neighbors._core (a .so)")
    parser.add_argument("--quick", action="store_true", help="N / 10, k / 10")
    parser.add_argument("--cases", choices=["small", "big", "all"], default="all",
                        help="10,000 x 256 only, 50,000 x 768 only, or both")
    parser.add_argument("-o", "--out", default="benchmarks/results/knn_large_k.json")
    args = parser.parse_args()
    interleaved(args.out, args.before, args.quick, args.cases)
