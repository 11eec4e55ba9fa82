"""The measurements behind ``backend="auto"``: tree against the compiled core
across ambient dimension D and size N, k=10, on the benchmark data (an
8-dimensional Gaussian latent, or D-dimensional when D < 8, mapped linearly into
D dimensions plus small noise)::

    .venv/bin/pytest benchmarks/bench_backends.py --benchmark-columns=median,rounds \\
        --benchmark-json=benchmarks/results/backends.json

``--quick`` divides N by 10. The tree's cost grows like N log N and steeply with
D, the compiled core's like N^2 and slowly with D, so the crossover moves to
larger D as N grows; N=200,000 is run only where the tree can still win.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NOISE, scaled

import idest
from idest.datasets import linear_gaussian

CASES = [(50_000, d) for d in (2, 3, 4, 5, 6, 8, 12, 16, 24)]
CASES += [(20_000, d) for d in (2, 4, 6)] + [(200_000, d) for d in (2, 3, 4, 5, 6, 8)]


@pytest.mark.parametrize("backend", ["tree", "cpp"])
@pytest.mark.parametrize("case", CASES)
def test_backend_by_dimension(benchmark, quick, case, backend):
    n, dim = scaled(case[0], quick), case[1]
    X = linear_gaussian(n, min(dim, 8), dim, noise=NOISE, dtype=np.float32, random_state=0)
    benchmark.group = f"backend choice N={n} D={dim}"
    benchmark.extra_info.update(n=n, dim=dim, backend=backend)
    benchmark.pedantic(idest.knn, args=(X, 10), kwargs={"backend": backend, "progress": False},
                       rounds=2 if n > 100_000 else 3, iterations=1, warmup_rounds=1)
