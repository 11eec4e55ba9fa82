"""GRIDE across scales, end to end: idest against DADApy, same data, same run.

idest: ``idest.gride(X, range_max)`` (its k-NN search included). DADApy:
``Data(coordinates=X)``, ``compute_distances(maxk=range_max)``,
``return_id_scaling_gride(range_max=range_max)`` (the issue's recipe). Each
side runs in its own fresh process (so its peak resident memory, ``ru_maxrss``
of the child, is its own); the sides alternate, ``--repeats`` times, and the
medians are reported. Both see the same float32 array (an 8-dimensional
Gaussian latent mapped linearly into D dimensions plus noise 0.01, the data of
``benchmarks/conftest.py``), and every scale's ID is compared (idest with
``discard="dadapy"``, DADApy's μ filter, so the two compute the same number)::

    nice -n 10 .venv/bin/python benchmarks/bench_gride.py                 # 20,000 x 768, n2 <= 2048
    nice -n 10 .venv/bin/python benchmarks/bench_gride.py --n 5000 --range-max 1024

Writes ``benchmarks/results/gride.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import time
from pathlib import Path

import numpy as np


def _data(n: int, dim: int, seed: int) -> np.ndarray:
    from idest.datasets import linear_gaussian

    return linear_gaussian(n, 8, dim, noise=0.01, dtype=np.float32, random_state=seed)


def _idest(X: np.ndarray, range_max: int) -> dict:
    import idest

    t0 = time.perf_counter()
    r = idest.gride(X, range_max=range_max, discard="dadapy")
    return {"seconds": time.perf_counter() - t0, "ids": r.dimensions.tolist(),
            "plateau": r.plateau_range, "plateau_id": r.dimension}


def _dadapy(X: np.ndarray, range_max: int) -> dict:
    import dadapy

    t0 = time.perf_counter()
    data = dadapy.Data(coordinates=X, verbose=False)
    data.compute_distances(maxk=range_max)
    ids, _, _ = data.return_id_scaling_gride(range_max=range_max)
    return {"seconds": time.perf_counter() - t0, "ids": np.asarray(ids).tolist()}


def _child(side: str, n: int, dim: int, seed: int, range_max: int, queue) -> None:
    import warnings

    warnings.simplefilter("ignore")
    X = _data(n, dim, seed)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = (_idest if side == "idest" else _dadapy)(X, range_max)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.update(peak_rss_mb=peak / 1024, data_rss_mb=base / 1024)
    queue.put(out)


def run_side(side: str, n: int, dim: int, seed: int, range_max: int, timeout: float) -> dict:
    """One side in a fresh process: its time, peak RSS and IDs (or why it did not finish)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(side, n, dim, seed, range_max, queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"seconds": None, "error": f"killed after {timeout:.0f} s"}
    if proc.exitcode != 0:
        return {"seconds": None, "error": f"exit code {proc.exitcode}"}
    return queue.get()


def machine() -> dict:
    """The machine (conftest.describe_machine: CPU, vector flags, every BLAS both sides
    load and the kernel it chose) and the date."""
    import sklearn.metrics  # noqa: F401  (load every BLAS the two sides use, then list them)
    from conftest import describe_machine

    return {**describe_machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--range-max", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per side and run")
    parser.add_argument("--sides", nargs="+", choices=("idest", "dadapy"),
                        default=["idest", "dadapy"], help="which sides to run (both: compared)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "gride.json"))
    args = parser.parse_args()
    runs = {side: [] for side in args.sides}
    for repeat in range(args.repeats):
        for side in args.sides if repeat % 2 == 0 else args.sides[::-1]:
            load = os.getloadavg()[0]
            out = run_side(side, args.n, args.dim, args.seed, args.range_max, args.timeout)
            out["load_before"] = load
            runs[side].append(out)
            print(side, {k: v for k, v in out.items() if k != "ids"}, flush=True)
    summary = {"n": args.n, "dim": args.dim, "range_max": args.range_max,
               "repeats": args.repeats, "machine": machine(), "runs": runs}
    times = {s: [r["seconds"] for r in runs[s] if r.get("seconds")] for s in runs}
    done = [s for s in runs if times[s]]
    summary.update(median_seconds={s: float(np.median(times[s])) for s in done},
                   max_peak_rss_mb={s: max(r["peak_rss_mb"] for r in runs[s]
                                           if r.get("seconds")) for s in done})
    keys = ["median_seconds", "max_peak_rss_mb"]
    if len(done) == 2:
        ours, theirs = np.array(runs["idest"][0]["ids"]), np.array(runs["dadapy"][0]["ids"])
        summary.update(
            speedup=summary["median_seconds"]["dadapy"] / summary["median_seconds"]["idest"],
            max_relative_id_difference=float(np.max(np.abs(ours / theirs - 1))))
        keys += ["speedup", "max_relative_id_difference"]
    print(json.dumps({k: summary[k] for k in keys}, indent=1))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
