"""Shared pytest configuration."""

import os

# Numba and BLAS threads: the CI machine has 2 cores; keep tests predictable.
os.environ.setdefault("NUMBA_NUM_THREADS", "2")
