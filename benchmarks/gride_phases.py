"""Where GRIDE's time goes, phase by phase: idest against DADApy, same data, same run.

idest phases (the calls ``idest.gride(X, range_max)`` makes, timed one by one):
the k-NN search (``idest.knn``), the duplicate handling (``prepare_neighbors``
on the search: exact and precision duplicates; nothing is removed on this
data), the per-scale maximum-likelihood roots (log μ, DADApy's μ filter, Brent
on the score), the Wald intervals and the plateau (``find_plateau``), and the
percentile bootstrap (``--bootstrap`` resamples per scale). DADApy phases:
``Data(coordinates=X)`` (a float64 copy of the float32 input),
``compute_distances(maxk=range_max)`` (scikit-learn ``NearestNeighbors``, the
algorithm it picks is reported) and ``return_id_scaling_gride(range_max)``.
Each side runs in its own process; ``--repeats`` interleaved rounds; medians::

    flock /work/bench.lock nice -n 10 .venv/bin/python benchmarks/gride_phases.py --repeats 3

Writes ``benchmarks/results/gride_phases.json`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import time
from pathlib import Path

import numpy as np
from bench_gride import _data, machine


def _clock(times: dict, name: str, function, *args, **kwargs):
    t0 = time.perf_counter()
    out = function(*args, **kwargs)
    times[name] = times.get(name, 0.0) + time.perf_counter() - t0
    return out


def _idest_phases(X: np.ndarray, range_max: int, n_bootstrap: int) -> dict:
    import idest
    from idest.estimators import _duplicates
    from idest.estimators._bootstrap import check_bootstrap
    from idest.estimators._gride import _dadapy_keep, find_plateau, gride_estimate, gride_mle

    times: dict[str, float] = {}
    nn = _clock(times, "knn", idest.knn, X, range_max)
    # the raw-input path of prepare_neighbors (what idest.gride(X) runs), its search replaced
    # by the one just timed: input checks, exact and precision duplicates (none here)
    search, _duplicates.knn = _duplicates.knn, lambda data, k, progress=None: nn
    try:
        prepared = _clock(times, "duplicates", _duplicates.prepare_neighbors, X, range_max,
                          caller="gride")
    finally:
        _duplicates.knn = search
    _clock(times, "check_precomputed_neighbors", _duplicates.check_neighbors, nn, range_max,
           "gride")
    dist = prepared.neighbors.distances
    _clock(times, "numba_cache_load", gride_mle, np.ones(4), 1, 2)  # once per process
    scales = 2 ** np.arange(1, range_max.bit_length())
    dims, ses = [], []
    for b in scales:
        a = b // 2
        log_mu = _clock(times, "log_mu", lambda a=a, b=b: np.log(dist[:, b - 1]
                                                             / dist[:, a - 1]))
        log_mu = _clock(times, "dadapy_filter", lambda x=log_mu: x[_dadapy_keep(np.exp(x))])
        d, se = _clock(times, "mle_roots", gride_mle, log_mu, int(a), int(b))
        dims.append(d)
        ses.append(se)
    dims, ses = np.array(dims), np.array(ses)
    _clock(times, "plateau", find_plateau, dims, np.c_[dims - 1.96 * ses, dims + 1.96 * ses])
    _clock(times, "scale_distances", lambda: dist[:, scales - 1].mean(axis=0))
    if n_bootstrap:
        args = (prepared, range_max, "dadapy")
        plain = _clock(times, "gride_estimate_without_bootstrap", gride_estimate, *args,
                       check_bootstrap("gride", 0, 0.95, 0, False), None, 0.05, 3, "gride")
        options = check_bootstrap("gride", n_bootstrap, 0.95, 0, False)
        _clock(times, f"gride_estimate_with_{n_bootstrap}_resamples", gride_estimate, *args,
               options, None, 0.05, 3, "gride")
        assert np.array_equal(plain.dimensions, dims)
    nn = prepared = dist = plain = None  # free the lists before the end-to-end call
    t0 = time.perf_counter()
    r = idest.gride(X, range_max=range_max, discard="dadapy")
    times["end_to_end_gride"] = time.perf_counter() - t0
    return {"times": times, "ids": r.dimensions.tolist()}


def _dadapy_phases(X: np.ndarray, range_max: int) -> dict:
    import dadapy
    from sklearn.neighbors import NearestNeighbors

    times: dict[str, float] = {}
    data = _clock(times, "data_init_float64_copy", dadapy.Data, coordinates=X, verbose=False)
    _clock(times, "compute_distances", data.compute_distances, maxk=range_max)
    ids, _, _ = _clock(times, "return_id_scaling_gride", data.return_id_scaling_gride,
                       range_max=range_max)
    probe = NearestNeighbors(n_neighbors=range_max + 1).fit(data.X)
    return {"times": times, "ids": np.asarray(ids).tolist(),
            "sklearn_algorithm": probe._fit_method, "X_dtype": str(data.X.dtype),
            "distances_dtype": str(data.distances.dtype)}


def _child(side, n, dim, seed, range_max, n_bootstrap, queue):
    import warnings

    warnings.simplefilter("ignore")
    X = _data(n, dim, seed)
    out = (_idest_phases(X, range_max, n_bootstrap) if side == "idest"
           else _dadapy_phases(X, range_max))
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--range-max", type=int, default=2048)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sides", nargs="+", default=["idest", "dadapy"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results"
                                                / "gride_phases.json"))
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    runs = {side: [] for side in args.sides}
    for repeat in range(args.repeats):
        for side in args.sides if repeat % 2 == 0 else args.sides[::-1]:
            queue = ctx.Queue()
            proc = ctx.Process(target=_child, args=(side, args.n, args.dim, args.seed,
                                                    args.range_max, args.bootstrap, queue))
            proc.start()
            out = queue.get()
            proc.join()
            runs[side].append(out)
            print(side, json.dumps({k: v for k, v in out.items() if k != "ids"}), flush=True)
    medians = {side: {name: float(np.median([r["times"][name] for r in rs]))
                      for name in rs[0]["times"]} for side, rs in runs.items()}
    summary = {"n": args.n, "dim": args.dim, "range_max": args.range_max,
               "bootstrap": args.bootstrap, "repeats": args.repeats, "machine": machine(),
               "median_seconds": medians, "runs": runs}
    print(json.dumps(medians, indent=1))
    Path(args.output).write_text(json.dumps(summary, indent=1) + "\n")
    print(f"written: {args.output}")


if __name__ == "__main__":
    main()
