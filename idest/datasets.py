"""Synthetic data of known intrinsic dimension, all seeded.

Each generator returns an array of shape (n_samples, ambient_dim).
"""

from __future__ import annotations

import numpy as np

from idest._validation import check_int


def linear_gaussian(
    n_samples: int,
    intrinsic_dim: int,
    ambient_dim: int,
    *,
    noise: float = 0.0,
    dtype: type = np.float64,
    random_state: int | None = 0,
) -> np.ndarray:
    """A d-dimensional standard Gaussian mapped linearly into D dimensions.

    x = A t + noise * e, with t ~ N(0, I_d), A a D x d matrix with entries
    N(0, 1/d) and e ~ N(0, I_D). Generated in chunks, so a float32 result of
    10^5 x 768 never needs a float64 copy of itself.

    Examples
    --------
    >>> from idest.datasets import linear_gaussian
    >>> linear_gaussian(1000, 5, 20, noise=0.01, random_state=0).shape
    (1000, 20)
    """
    check_int(n_samples, "n_samples", "linear_gaussian", 1)
    check_int(intrinsic_dim, "intrinsic_dim", "linear_gaussian", 1)
    check_int(ambient_dim, "ambient_dim", "linear_gaussian", 1)
    rng = np.random.default_rng(random_state)
    A = rng.normal(scale=1.0 / np.sqrt(intrinsic_dim), size=(intrinsic_dim, ambient_dim))
    out = np.empty((n_samples, ambient_dim), dtype=dtype)
    for start in range(0, n_samples, 16_384):
        m = min(16_384, n_samples - start)
        chunk = rng.normal(size=(m, intrinsic_dim)) @ A
        if noise > 0:
            chunk += noise * rng.normal(size=(m, ambient_dim))
        out[start : start + m] = chunk
    return out
