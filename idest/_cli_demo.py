"""``idest demo``: the README's main job on an embedded default, offline."""

from __future__ import annotations

import argparse

from idest import _cli_knn


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the main job on an embedded default (offline)",
                       description="Exact k-NN of a seeded 5-dimensional manifold in 64 "
                       "dimensions.")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    knn_args = argparse.Namespace(file=None, k=10, backend="auto", output=None,
                                  n_samples=20_000, seed=args.seed)
    return _cli_knn.run(knn_args)
