"""The fused kernel's early exit on principal axes: the same search with it and without.

Self search, k = 10, float32, N points, interleaved rounds in one process (the
exit is an option of the same compiled core, so both run the same build):
``auto`` is what ``idest.knn`` does (the rule in ``cpp/knn.cpp: principal_axes``
decides), ``off`` never rotates, ``prefix p`` forces the first p principal axes.
Spectra (each seeded, randomly rotated):

* ``latent8``: the benchmark suite's data (an 8-dimensional Gaussian latent
  mapped linearly into D dimensions, noise 0.01);
* ``power1`` / ``power2``: variances falling as i^-1 / i^-2 over the D axes;
* ``isotropic``: a standard Gaussian (no axis carries more than another).

Writes a markdown table and the raw times::

    nice -n 10 .venv/bin/python benchmarks/knn_early_exit.py   # results/knn_early_exit.{md,json}
    .venv/bin/python benchmarks/knn_early_exit.py --n 5000 --rounds 2 --output /tmp/exit
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np
from conftest import LATENT_DIM, NOISE, describe_machine

from idest.datasets import linear_gaussian
from idest.neighbors import _core
from idest.neighbors._backends import BLOCK_ROWS, _sgemm_capsule, _syev_capsule, n_candidates

K = 10


def spectrum_data(kind: str, n: int, dim: int, seed: int = 0) -> np.ndarray:
    """One of the module docstring's data sets, float32 (n, dim)."""
    rng = np.random.default_rng(seed)
    if kind == "latent8":
        return linear_gaussian(n, LATENT_DIM, dim, noise=NOISE, dtype=np.float32,
                               random_state=seed)
    variances = {"power1": np.arange(1, dim + 1) ** -1.0, "power2": np.arange(1, dim + 1) ** -2.0,
                 "isotropic": np.ones(dim)}[kind]
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    return ((rng.standard_normal((n, dim)) * np.sqrt(variances)) @ rotation).astype(np.float32)


def timed_search(X: np.ndarray, prefix_dims: int, n_threads: int) -> float:
    progress = np.zeros(3, dtype=np.int64)
    start = time.perf_counter()
    _core.knn(X, None, K, n_candidates(K), n_threads, BLOCK_ROWS, _sgemm_capsule(), progress,
              syev=_syev_capsule(), prefix_dims=prefix_dims)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="points per data set")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", help="path without suffix: writes .md and .json",
                        default=str(Path(__file__).parent / "results" / "knn_early_exit"))
    args = parser.parse_args()
    cases = [("latent8", 20), ("latent8", 64), ("power2", 64), ("power1", 20), ("power1", 64),
             ("isotropic", 20)]
    settings = {"auto": -1, "off": 0, "prefix 4": 4, "prefix 8": 8, "prefix 16": 16}
    start_load = list(os.getloadavg())
    rows = []
    for kind, dim in cases:
        X = spectrum_data(kind, args.n, dim)
        here = {name: p for name, p in settings.items() if p < dim}
        for p in here.values():  # warm-up, untimed
            timed_search(X, p, args.threads)
        times: dict[str, list[float]] = {name: [] for name in here}
        for r in range(args.rounds):
            names = list(here)
            for name in names[r % len(names):] + names[: r % len(names)]:
                times[name].append(timed_search(X, here[name], args.threads))
        medians = {name: float(np.median(t)) for name, t in times.items()}
        rows.append({"data": kind, "dim": dim, "times": times, "medians": medians})
        print(kind, dim, {name: round(m, 3) for name, m in medians.items()}, flush=True)
    machine = describe_machine()
    machine["load_average_at_start_end"] = [start_load, list(os.getloadavg())]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = list(settings)
    lines = [
        "# The fused kernel's early exit on principal axes",
        "",
        f"Machine: {machine['cpu_model']} ({', '.join(machine['cpu_vector_flags'])}), "
        f"{args.threads} threads; {stamp}; load average at start and end "
        f"{machine['load_average_at_start_end']}.",
        "",
        f"Self search, k = {K}, float32, N = {args.n:,}; medians of {args.rounds} interleaved "
        "rounds in one process (s); in brackets, the time against `off`. `auto` is what "
        "`idest.knn` runs. Command: `python benchmarks/knn_early_exit.py`.",
        "",
        "| data | D | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    for row in rows:
        off = row["medians"]["off"]
        cells = [f"{row['medians'][name]:.3f} ({row['medians'][name] / off:.2f})"
                 if name in row["medians"] else "–" for name in names]
        lines.append(f"| {row['data']} | {row['dim']} | " + " | ".join(cells) + " |")
    Path(args.output + ".md").write_text("\n".join(lines) + "\n")
    Path(args.output + ".json").write_text(json.dumps(
        {"machine": machine, "n": args.n, "k": K, "threads": args.threads, "rows": rows},
        indent=1, default=str))
    print("written:", args.output + ".md")


if __name__ == "__main__":
    main()
