"""What the default bootstrap (100 resamples) adds to the k-NN search it reuses.

Run (about 2 minutes on 2 cores)::

    flock /work/bench.lock .venv/bin/python benchmarks/bootstrap_cost.py \\
        -o benchmarks/results/bootstrap_cost.md

For each size, in interleaved rounds (so that the load of a shared machine hits every
timing alike): ``idest.knn(X, 20)`` (the search ``idest estimate`` and the scan run),
``idest.estimate_all`` on its result without and with 100 resamples (TwoNN, the k-NN CDF
at k = 3 and 4, the MLE at k = 20: what a scan site computes); every call draws its
resamples (nothing is cached between calls). The bootstrap's cost is the difference of
the two medians, reported as a fraction of the search's median; issue 12 asks for at
most 10 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
from conftest import describe_machine

import idest
from idest.datasets import linear_gaussian

CASES = [(1_000, 384), (10_000, 384), (20_000, 20), (50_000, 20)]


def _seconds(f) -> float:
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def measure(n: int, dim: int, rounds: int, n_bootstrap: int) -> dict:
    X = linear_gaussian(n, 8, dim, noise=0.01, dtype=np.float32, random_state=0)
    nn = idest.knn(X, 20)
    idest.estimate_all(nn, n_bootstrap=n_bootstrap)  # compile and warm caches
    times: dict[str, list[float]] = {"search": [], "estimators": [], "with_bootstrap": []}
    for _ in range(rounds):
        times["search"].append(_seconds(lambda: idest.knn(X, 20)))
        times["estimators"].append(_seconds(lambda: idest.estimate_all(nn, n_bootstrap=0)))
        times["with_bootstrap"].append(_seconds(
            lambda: idest.estimate_all(nn, n_bootstrap=n_bootstrap)))
    med = {key: statistics.median(v) for key, v in times.items()}
    return {"n": n, "dim": dim, **{f"{k}_s": v for k, v in med.items()},
            "bootstrap_fraction_of_search":
                (med["with_bootstrap"] - med["estimators"]) / med["search"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", help="write a markdown table here (and .json beside)")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument("--bootstrap", type=int, default=100, help="resamples (default 100)")
    args = parser.parse_args(argv)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = [measure(n, d, args.rounds, args.bootstrap) for n, d in CASES]
    machine = describe_machine()
    load = [round(v, 2) for v in os.getloadavg()]
    lines = [f"Machine: {machine['cpu_model']} ({', '.join(machine['cpu_vector_flags'])}), "
             f"{os.cpu_count()} cores; started {started}; load average at the end {load}.",
             f"Command: `python {' '.join(sys.argv)}`; medians of {args.rounds} "
             "interleaved rounds.", "",
             f"| N, D | k-NN search (k = 20) | 4 estimators | + {args.bootstrap} resamples "
             "| bootstrap / search |", "| --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['n']:,}, {r['dim']} | {r['search_s']:.3f} s | "
                     f"{r['estimators_s'] * 1e3:.1f} ms | "
                     f"{(r['with_bootstrap_s'] - r['estimators_s']) * 1e3:.1f} ms | "
                     f"{100 * r['bootstrap_fraction_of_search']:.1f} % |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump({"started_utc": started, "load_average_at_end": load,
                       "machine": machine, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
