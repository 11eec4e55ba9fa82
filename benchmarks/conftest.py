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


def describe_machine() -> dict:
    """The machine a result comes from: the CPU model and vector extensions (lscpu) and,
    for each loaded BLAS / OpenMP library, the kernel it chose (threadpoolctl), so that a
    peer on a generic fallback kernel is noticed."""
    import platform
    import subprocess

    import scipy.linalg  # noqa: F401  (load SciPy's BLAS before asking)
    from threadpoolctl import threadpool_info

    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        lscpu = ""
    fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    return {"cpu_model": fields.get("Model name", platform.processor()).strip(),
            "cpu_vector_flags": sorted(f for f in flags if f.startswith(("avx", "fma"))),
            "cores": os.cpu_count(), "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
            "threadpools": threadpool_info()}


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    """Name the machine in every result (:func:`describe_machine`)."""
    machine_info.update(describe_machine())


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
