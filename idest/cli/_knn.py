"""``idest knn``: nearest-neighbour distances of a vector file or a generated manifold."""

from __future__ import annotations

import argparse
import time

import numpy as np

from idest.cli._options import cluster_client, number, progress
from idest.io import load_vectors


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "knn",
        help="exact k-nearest-neighbour distances",
        description="Exact k-NN of every vector against the others. Without FILE, runs on a "
        "seeded 5-dimensional Gaussian mapped linearly into 64 dimensions.",
    )
    p.add_argument("file", nargs="?", help=".npy, .npz, .csv or whitespace-separated .txt of "
                   "vectors (one per row); without it, the generated data")
    p.add_argument("-k", "--k", type=number(int, 1), default=10, help="neighbours per point")
    p.add_argument("--backend", default="auto", choices=["auto", "cpp", "numba", "tree"],
                   help="search backend (auto: the tree for large, very low-dimensional sets)")
    p.add_out(None, "write distances and indices to this .npz file (exactly this path)")
    p.add_argument("--n-samples", type=number(int, 2), default=20_000,
                   help="points of the generated data (without FILE)")
    p.add_seed("the generated data")
    p.add_jobs("threads of the search")
    p.add_quiet()
    p.add_cluster()
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from idest import knn
    from idest.datasets import linear_gaussian

    if args.file:
        X = load_vectors(args.file)
        source = args.file
    else:
        X = linear_gaussian(args.n_samples, 5, 64, noise=0.01, dtype=np.float32,
                            random_state=args.seed)
        source = f"linear_gaussian(n={args.n_samples}, d=5, D=64, seed={args.seed})"
    with cluster_client(args) as client:  # None: in process
        t0 = time.perf_counter()
        nn = knn(X, args.k, backend=args.backend, n_jobs=args.jobs, progress=progress(args),
                 client=client)
        elapsed = time.perf_counter() - t0
    r1 = nn.distances[:, 0]
    print(f"data      : {source}  shape={X.shape} dtype={X.dtype}")
    print(f"k-NN      : k={args.k} backend={nn.backend} in {elapsed:.2f} s "
          f"({nn.n_fallback_rows} row(s) re-searched exhaustively)")
    print(f"r_1       : median {np.median(r1):.4g}, min {r1.min():.4g}, "
          f"zero (duplicates) {int((r1 == 0).sum())}")
    print(f"r_{args.k:<8}: median {np.median(nn.distances[:, -1]):.4g}")
    if args.out:
        with open(args.out, "wb") as fh:  # np.savez would append .npz to any other name
            np.savez(fh, distances=nn.distances, indices=nn.indices)
        print(f"written   : {args.out}")
    return 0
