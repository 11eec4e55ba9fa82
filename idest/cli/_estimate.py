"""``idest estimate``: the intrinsic dimension of a vector file, with error bars."""

from __future__ import annotations

import argparse
import json
import time
import warnings

from idest.cli._options import cluster_client, number, progress
from idest.io import load_vectors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "estimate",
        help="intrinsic dimension of a vector file (TwoNN, k-NN CDF, MLE)",
        description="Intrinsic dimension of the vectors in FILE (one per row) from one exact "
        "k-NN search: TwoNN, the k-NN CDF estimator and the Levina-Bickel MLE, with "
        "bootstrap error bars. Exact duplicate rows are removed first (reported).",
    )
    p.add_argument("file", help=".npy, .npz, .csv or whitespace-separated .txt of vectors "
                   "(one per row)")
    p.add_argument("--method", default="all", choices=["all", "twonn", "knn_cdf", "mle", "gride"],
                   help="estimator(s) to run; gride: the ID at every scale n2 = 2, 4, ..., "
                   "--range-max and its plateau")
    p.add_argument("--ks", type=number(int, 2), nargs="+", default=[2, 3, 4], metavar="K",
                   help="k of the k-NN CDF estimates (k=2 is TwoNN)")
    p.add_argument("-k", "--k", type=number(int, 2), nargs="+", default=[20], metavar="K",
                   help="neighbours of the MLE (two values k1 k2: averaged over k1..k2)")
    p.add_argument("--range-max", type=number(int, 2), default=64,
                   help="largest neighbour order n2 of --method gride")
    p.add_bootstrap()
    p.add_seed()
    p.add_argument("--discard-fraction", type=number(float, 0, 1, strict_high=True),
                   default=0.1, help="fraction of the largest mu left out of the CDF fits")
    p.add_argument("--duplicates", default="drop", choices=["drop", "raise"],
                   help="exact duplicate rows: drop them (counted in the output) or stop")
    p.add_argument("--merge-tolerance", type=number(float, 0, strict_low=True),
                   help="merge points closer than this fraction of the median distance to the "
                        "second nearest neighbour (r_2)")
    p.add_out(None, "also write the results to this JSON file")
    p.add_quiet()
    p.add_cluster()
    p.set_defaults(func=run)


def needed_k(args: argparse.Namespace) -> int:
    """Neighbours the chosen estimator(s) read: the k of their one k-NN search.

    Examples
    --------
    >>> needed_k(argparse.Namespace(method="all", ks=[2, 3, 4], k=[20], range_max=64))
    20
    >>> needed_k(argparse.Namespace(method="gride", ks=[2], k=[20], range_max=100))
    64
    """
    if args.method == "gride":
        return 1 << (args.range_max.bit_length() - 1)  # the largest n2, as idest.gride
    k2 = max(args.k)
    return {"twonn": 2, "knn_cdf": max(args.ks), "mle": k2}.get(args.method,
                                                                max(2, k2, *args.ks))


def _results(X, args: argparse.Namespace) -> list:
    """The estimates of ``args.method`` on X (an array, or the Neighbors of a cluster search)."""
    import idest

    common = dict(n_bootstrap=args.bootstrap, random_state=args.seed, duplicates=args.duplicates,
                  merge_tolerance=args.merge_tolerance, progress=progress(args))
    mle_k = tuple(args.k) if len(args.k) > 1 else args.k[0]
    if args.method == "mle":
        return [idest.mle(X, mle_k, **common)]
    cdf = dict(discard_fraction=args.discard_fraction, **common)
    if args.method == "twonn":
        return [idest.twonn(X, **cdf)]
    if args.method == "knn_cdf":
        nn = X if isinstance(X, idest.Neighbors) else \
            idest.knn(X, max(args.ks), progress=common["progress"])  # one search for every k
        return [idest.knn_cdf(nn, k, **cdf) for k in args.ks]
    return idest.estimate_all(X, ks=tuple(args.ks), mle_k=mle_k, **cdf)


def _interval(r) -> str:
    low, high = r.interval
    return "" if low != low else f"[{low:.3f}, {high:.3f}]"  # nan: no interval


def _run_gride(data, X, args: argparse.Namespace, t0: float) -> int:
    """``--method gride``: the ID-vs-scale table and the plateau (or that there is none).

    ``data`` is X or the Neighbors of a cluster search; the clock started at ``t0``."""
    import idest
    from idest.estimators import DuplicatesWarning, NoPlateauWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DuplicatesWarning)  # counted below
        warnings.simplefilter("ignore", category=NoPlateauWarning)  # printed below
        r = idest.gride(data, args.range_max, n_bootstrap=args.bootstrap, random_state=args.seed,
                        duplicates=args.duplicates, merge_tolerance=args.merge_tolerance,
                        progress=progress(args))
    elapsed = time.perf_counter() - t0
    print(f"data      : {args.file}  shape={X.shape} dtype={X.dtype}")
    print(f"points    : {r.n_points} used, {r.n_duplicates_dropped} duplicate(s) dropped, "
          f"{r.n_near_duplicates_merged} near-duplicate(s) merged")
    kind = "bootstrap" if r.n_bootstrap else "Fisher"
    print(f"{'n1':>5} {'n2':>5} {'mean r_n2':>10} {'dimension':>10} "
          f"{f'{r.confidence:.0%} interval ({kind})':>26} {'Fisher se':>9}")
    for (n1, n2, dist), d, (lo, hi), se in zip(r.scales, r.dimensions, r.intervals,
                                                r.std_errors, strict=True):
        print(f"{n1:>5} {n2:>5} {dist:>10.4g} {d:>10.3f} {f'[{lo:.3f}, {hi:.3f}]':>26} {se:>9.3f}")
    if r.plateau_found:
        print(f"plateau   : n2 {r.plateau_range[0]}..{r.plateau_range[1]}: dimension "
              f"{r.dimension:.3f} [{r.interval[0]:.3f}, {r.interval[1]:.3f}] ({r.plateau_rule})")
    else:
        print(f"plateau   : none found ({r.plateau_rule}); read the curve above")
    print(f"time      : {elapsed:.2f} s ({args.bootstrap} bootstrap resamples, seed {args.seed})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"file": str(args.file), "shape": list(X.shape), "seconds": elapsed,
                       "results": [r.to_dict()]}, fh, indent=2)
        print(f"written   : {args.out}")
    return 0


def run(args: argparse.Namespace) -> int:
    import idest
    from idest.estimators import DuplicatesWarning

    if len(args.k) > 2:
        raise ValueError(f"-k/--k takes one k or a range k1 k2 for the MLE; got {args.k}.")
    X = load_vectors(args.file)
    with cluster_client(args) as client:
        t0 = time.perf_counter()
        # On a cluster, the one search the estimators share is sharded there (a .npy file
        # by its path: each task maps its rows); the estimates run here from its result.
        data = X if client is None else idest.knn(X, needed_k(args), client=client)
        if args.method == "gride":
            return _run_gride(data, X, args, t0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=DuplicatesWarning)  # counted in the table
            results = _results(data, args)
        elapsed = time.perf_counter() - t0
    print(f"data      : {args.file}  shape={X.shape} dtype={X.dtype}")
    first = results[0]
    print(f"points    : {first.n_points} used, {first.n_duplicates_dropped} duplicate(s) dropped, "
          f"{first.n_near_duplicates_merged} near-duplicate(s) merged")
    print(f"{'method':<9} {'k':>3} {'dimension':>10} {'95% interval':>20} {'std':>7}  variant")
    for r in results:
        std = "" if r.std_error is None else f"{r.std_error:.3f}"
        print(f"{r.method:<9} {r.k:>3} {r.dimension:>10.3f} {_interval(r):>20} {std:>7}  "
              f"{r.variant}")
    print(f"time      : {elapsed:.2f} s ({args.bootstrap} bootstrap resamples, seed {args.seed})")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"file": str(args.file), "shape": list(X.shape), "seconds": elapsed,
                       "results": [r.to_dict() for r in results]}, fh, indent=2)
        print(f"written   : {args.out}")
    return 0
