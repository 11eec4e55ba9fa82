"""The measurements behind ``backend="auto"``: tree against the compiled core
across ambient dimension D, at N=50,000 (``--quick``: 5,000), k=10, on the
benchmark data (an 8-dimensional Gaussian latent, or D-dimensional when D < 8,
mapped linearly into D dimensions plus small noise)::

    .venv/bin/pytest benchmarks/bench_backends.py --benchmark-columns=median,rounds
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import NOISE, scaled

import idest
from idest.datasets import linear_gaussian

DIMS = [2, 4, 6, 8, 12, 16, 24]


@pytest.mark.parametrize("backend", ["tree", "cpp"])
@pytest.mark.parametrize("dim", DIMS)
def test_backend_by_dimension(benchmark, quick, dim, backend):
    n = scaled(50_000, quick)
    X = linear_gaussian(n, min(dim, 8), dim, noise=NOISE, dtype=np.float32, random_state=0)
    benchmark.group = f"backend choice N={n} D={dim}"
    benchmark.extra_info.update(n=n, dim=dim, backend=backend)
    benchmark.pedantic(idest.knn, args=(X, 10), kwargs={"backend": backend, "progress": False},
                       rounds=3, iterations=1)
