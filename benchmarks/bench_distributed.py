"""Sharded k-NN on a local Dask cluster against in-process idest.knn (issue 16).

Run (50,000 x 768, k = 10; several minutes on 2 cores)::

    .venv/bin/python benchmarks/bench_distributed.py -o benchmarks/results/distributed.json

``--quick`` divides N by 10. Three runs on the same ``.npy`` file, in
interleaved rounds (``--repeats``; medians reported): in-process ``idest.knn``
on every core, then ``sharded_knn`` on a ``LocalCluster`` of 2 worker processes
x 1 thread and on one of 1 worker x 1 thread (the same shards for both; both
clusters stay up, idle, between their runs). The results must be identical (checked, bit for
bit). The machine is shared: the load average is recorded before and after
each run; compare ratios, not absolute times. The peer, before and after:
the throughput of two one-thread SGEMM processes over one (2.0 on two free
cores); the 2-over-1-worker ratio cannot exceed what the machine gives it.
The clusters' schedulers use the worker saturation of the clusters idest starts
(``--worker-saturation``, 1.0: a one-thread worker holds only the task it
runs). Each sharded run also records Dask's task stream: the seconds spent in each
kind of task (pair tasks, diagonal tasks, merges) and each worker's busy
seconds, against which its wall time shows the idle tail.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time

import dask
import numpy as np
from conftest import describe_machine, make_data, scaled
from distributed import Client, LocalCluster, get_task_stream

import idest
from idest.neighbors import default_n_jobs, sharded_knn
from idest.neighbors._distributed import default_shard_rows
from idest.utils.cluster import WORKER_SATURATION


def load() -> float:
    return os.getloadavg()[0]


def timed(run) -> tuple[float, object, float, float]:
    before = load()
    start = time.perf_counter()
    out = run()
    return time.perf_counter() - start, out, before, load()


def task_profile(client: Client, run) -> tuple[float, object, float, float, dict]:
    """``timed(run)`` with Dask's task stream: seconds of each kind of task and of each
    worker, so a run's time splits into search tasks, merges and idle workers."""
    with get_task_stream(client=client) as stream:
        start = time.time()
        result = timed(run)
    kinds: dict[str, float] = {}
    workers: dict[str, float] = {}
    spans = []
    for task in stream.data:
        kind = str(task["key"]).strip("('\"").split("-")[0]
        for span in task["startstops"]:
            if span["action"] == "compute":
                seconds = span["stop"] - span["start"]
                kinds[kind] = kinds.get(kind, 0.0) + seconds
                workers[task["worker"]] = workers.get(task["worker"], 0.0) + seconds
                spans.append((span["start"] - start, span["stop"] - start))
    profile = {"seconds": round(result[0], 2),
               "task_seconds": {k: round(v, 2) for k, v in sorted(kinds.items())},
               "worker_busy_seconds": sorted(round(v, 2) for v in workers.values()),
               # from the call: the first task's start and the last task's end
               "first_task_last_task": [round(min(a for a, _ in spans), 2),
                                        round(max(b for _, b in spans), 2)]}
    return (*result, profile)


def sgemm_seconds(repeats: int = 20) -> float:
    """Seconds for ``repeats`` single-threaded 2048 x 768 x 2048 SGEMMs."""
    from threadpoolctl import threadpool_limits

    a = np.random.default_rng(0).normal(size=(2048, 768)).astype(np.float32)
    with threadpool_limits(limits=1):
        a @ a.T
        start = time.perf_counter()
        for _ in range(repeats):
            a @ a.T
        return time.perf_counter() - start


def two_process_speedup() -> float:
    """The peer: throughput of two one-thread SGEMM processes over one (2.0 on 2 free cores)."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(2) as pool:
        one = pool.submit(sgemm_seconds).result()
        both = [pool.submit(sgemm_seconds) for _ in range(2)]
        return 2 * one / max(f.result() for f in both)


def cluster(stack: contextlib.ExitStack, n_workers: int, saturation: float) -> Client:
    """A client of a LocalCluster of ``n_workers`` one-thread worker processes whose
    scheduler has this worker saturation."""
    with dask.config.set({"distributed.scheduler.worker-saturation": saturation}):
        local = stack.enter_context(LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                                 processes=True, dashboard_address=None))
    return stack.enter_context(Client(local))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N / 10")
    parser.add_argument("-k", "--k", type=int, default=10)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--shard-rows", type=int, default=None,
                        help="rows per shard (default: the default for 2 one-thread workers)")
    parser.add_argument("--worker-saturation", type=float, default=WORKER_SATURATION,
                        help="the schedulers' worker saturation (default: that of the "
                             "clusters idest starts; Dask's own default is 1.1)")
    parser.add_argument("-o", "--out", default=None, help="JSON file for the results")
    args = parser.parse_args()
    n = scaled(50_000, args.quick)
    shard_rows = args.shard_rows or default_shard_rows(n, 2)
    X = make_data(n, args.dim)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, X)
        idest.knn(X[:2000], args.k, progress=False)  # load the core
        peer_before = two_process_speedup()
        inproc, two, one = [], [], []
        with contextlib.ExitStack() as stack:
            clients = {w: cluster(stack, w, args.worker_saturation) for w in (2, 1)}
            for client in clients.values():  # warm the workers (imports, Numba kernels)
                sharded_knn(path, args.k, client=client, shard_rows=shard_rows // 8)
            for _ in range(args.repeats):  # interleaved rounds: the load hits all three
                inproc.append(timed(lambda: idest.knn(X, args.k, progress=False)))
                for runs, workers in ((two, 2), (one, 1)):
                    runs.append(task_profile(clients[workers], lambda w=workers: sharded_knn(
                        path, args.k, client=clients[w], shard_rows=shard_rows)))
        peer_after = two_process_speedup()
    ref = inproc[0][1]
    identical = all(
        np.array_equal(r[1].indices, ref.indices)
        and np.array_equal(r[1].distances.view(np.int64), ref.distances.view(np.int64))
        for r in inproc + two + one)
    med = {name: float(np.median([r[0] for r in runs]))
           for name, runs in (("in_process", inproc), ("workers_2x1", two), ("workers_1x1", one))}
    report = {
        "n": n, "dim": args.dim, "k": args.k, "shard_rows": shard_rows,
        "worker_saturation": args.worker_saturation,
        "in_process_threads": default_n_jobs(), "repeats": args.repeats,
        "seconds_median": med,
        "seconds": {name: [round(r[0], 2) for r in runs] for name, runs in
                    (("in_process", inproc), ("workers_2x1", two), ("workers_1x1", one))},
        "speedup_2_workers_over_1": med["workers_1x1"] / med["workers_2x1"],
        "2_workers_over_in_process": med["workers_2x1"] / med["in_process"],
        "identical": identical,
        "peer_two_process_sgemm_speedup_before_after": [round(peer_before, 2),
                                                         round(peer_after, 2)],
        "load_average_before_after": {
            name: [[round(r[2], 2), round(r[3], 2)] for r in runs]
            for name, runs in (("in_process", inproc), ("workers_2x1", two),
                               ("workers_1x1", one))},
        "task_profile": {"workers_2x1": [r[4] for r in two], "workers_1x1": [r[4] for r in one]},
        "fallback_rows": {"in_process": ref.n_fallback_rows,
                          "workers_2x1": two[0][1].n_fallback_rows},
        "machine": {**describe_machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                time.gmtime())},
        "python": sys.version.split()[0], "platform": platform.platform(),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    if not identical:
        raise SystemExit("bench_distributed: the sharded result differs from idest.knn")


if __name__ == "__main__":
    main()
