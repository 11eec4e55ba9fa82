"""Shared set-up of the benchmark suite (run it with ``pytest benchmarks``).

``--quick`` (or ``IDEST_BENCH_QUICK=1``) shrinks every problem so the suite runs
in seconds; the full sizes are those the issues name. Data: a seeded
8-dimensional Gaussian latent mapped linearly into D dimensions plus small noise.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from idest.datasets import linear_gaussian

LATENT_DIM = 8
NOISE = 0.01


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--quick", action="store_true", default=False,
                     help="small problem sizes (seconds instead of minutes)")


def is_quick(config: pytest.Config) -> bool:
    return bool(config.getoption("--quick") or os.environ.get("IDEST_BENCH_QUICK"))


@pytest.fixture(scope="session")
def quick(request: pytest.FixtureRequest) -> bool:
    return is_quick(request.config)


@functools.lru_cache(maxsize=4)
def make_data(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """The benchmark data set: float32, shape (n, dim)."""
    return linear_gaussian(n, LATENT_DIM, dim, noise=NOISE, dtype=np.float32, random_state=seed)


def scaled(n: int, quick: bool, factor: int = 10) -> int:
    """Problem size n, or n // factor in quick mode."""
    return max(1000, n // factor) if quick else n


def pytest_make_parametrize_id(config: pytest.Config, val: object, argname: str) -> str | None:
    """A ``case`` (n, dim) is named by the size that runs: ``N10000-D20`` under ``--quick``."""
    if argname == "case" and isinstance(val, tuple) and len(val) == 2:
        return f"N{scaled(val[0], is_quick(config))}-D{val[1]}"
    return None
