"""Two builds of the compiled core, side by side in one process: paired timings.

On a shared machine the time of one search moves by tens of per cent from minute to
minute, so two builds timed in separate runs cannot be told apart below that. This
script loads two ``_core`` extension modules (e.g. a commit's build and the working
tree's) into one process and times them in alternation on the benchmark data (the
suite's 8-dimensional latent in D dimensions), self search, float32: each pair of runs
shares the machine's state, and the median of the per-pair ratios cancels the slow
drifts. Both builds get the same arguments, so their answers must agree exactly (checked).

Build a commit's core into a folder (any CMake >= 3.18, the ``bench`` extra's pybind11)::

    git worktree add /tmp/old <commit> && cmake -S /tmp/old -B /tmp/b_old \\
        -DSKBUILD_PROJECT_NAME=idest -DCMAKE_BUILD_TYPE=Release \\
        -Dpybind11_DIR=$(.venv/bin/python -m pybind11 --cmakedir) \\
        -DPython_EXECUTABLE=.venv/bin/python && cmake --build /tmp/b_old -j2

then compare it with the installed core::

    .venv/bin/python benchmarks/knn_paired.py /tmp/b_old installed --pairs 30
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import os
import time
from pathlib import Path
from types import ModuleType

import numpy as np
from conftest import make_data
from threadpoolctl import threadpool_limits

from idest.neighbors._backends import (
    BLOCK_ROWS,
    _sgemm_capsule,
    _syev_capsule,
    candidate_margin,
    n_candidates,
)


def load_core(where: str, slot: int) -> ModuleType:
    """``installed`` (the package's own core), a ``_core*.so`` file or a folder holding one.

    Each build is loaded under a name of its own (``idest_paired_<slot>._core``: the last
    part must stay ``_core``, which names its init function). Under one shared name,
    CPython hands back the module it loaded first, and the "two builds" were one.
    """
    if where == "installed":
        from idest.neighbors import _core

        return _core
    path = Path(where)
    if path.is_dir():
        found = sorted(glob.glob(str(path / "_core*.so")))
        if not found:
            raise SystemExit(f"no _core*.so in {path}: build the core there first (see --help)")
        path = Path(found[0])
    spec = importlib.util.spec_from_file_location(f"idest_paired_{slot}._core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def paired_times(cores: list[ModuleType], X: np.ndarray, k: int, width: int, threads: int,
                 pairs: int, kernel: str) -> np.ndarray:
    """Seconds per search, shape (pairs, len(cores)), the cores alternating within a pair."""
    times = np.empty((pairs, len(cores)))
    reference = None
    with threadpool_limits(1, "blas"):
        for core in cores:  # one untimed call each: fresh pages, first-call costs
            core.knn(X, None, k, width, threads, BLOCK_ROWS, _sgemm_capsule(),
                     np.zeros(3, np.int64), kernel=kernel, syev=_syev_capsule())
        for p in range(pairs):
            order = range(len(cores)) if p % 2 == 0 else reversed(range(len(cores)))
            for c in order:
                start = time.perf_counter()
                dist, idx, _ = cores[c].knn(X, None, k, width, threads, BLOCK_ROWS,
                                            _sgemm_capsule(), np.zeros(3, np.int64),
                                            kernel=kernel, syev=_syev_capsule())
                times[p, c] = time.perf_counter() - start
                if reference is None:
                    reference = (dist, idx)
                elif not (np.array_equal(idx, reference[1]) and np.array_equal(dist, reference[0])):
                    raise SystemExit("the two builds returned different answers")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", help="'installed', a _core*.so or a folder holding one")
    parser.add_argument("candidate", help="the same, for the build compared with the baseline")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--kernel", default="auto", help="auto, sgemm, fused-avx2, fused-avx512")
    args = parser.parse_args()
    cores = [load_core(args.baseline, 0), load_core(args.candidate, 1)]
    if cores[0] is cores[1] or cores[0].__file__ == cores[1].__file__:
        raise SystemExit(f"both names load the same core ({cores[0].__file__}): compare two "
                         f"builds")
    X = make_data(args.n, args.dim)
    width = n_candidates(args.k, candidate_margin(X))
    times = paired_times(cores, X, args.k, width, args.threads, args.pairs, args.kernel)
    for name, column in zip((args.baseline, args.candidate), times.T, strict=True):
        low, high = np.percentile(column, [25, 75]) * 1e3
        print(f"{name}: median {np.median(column) * 1e3:.1f} ms, quartiles {low:.1f}-{high:.1f}")
    ratio = times[:, 1] / times[:, 0]
    print(f"candidate / baseline, per pair: median {np.median(ratio):.3f}, quartiles "
          f"{np.percentile(ratio, 25):.3f}-{np.percentile(ratio, 75):.3f} ({args.pairs} pairs, "
          f"N = {args.n}, D = {args.dim}, k = {args.k}, {args.threads} threads)")


if __name__ == "__main__":
    main()
