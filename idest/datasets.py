"""Synthetic data of known intrinsic dimension, all seeded.

Each manifold generator returns an array of shape (n_samples, ambient_dim);
:func:`poisson_neighbors` returns neighbour distances drawn exactly from the
law the estimators assume (Sharma & Kaplan B.1–B.11).
"""

from __future__ import annotations

import numpy as np

from idest.neighbors import Neighbors
from idest.utils.validation import check_int


def hypercube(n_samples: int, intrinsic_dim: int, *, dtype: type = np.float64,
              random_state: int | None = 0) -> np.ndarray:
    """Points uniform in the hypercube [0, 1]^d (Sharma & Kaplan C.1, figure 18).

    Examples
    --------
    >>> from idest.datasets import hypercube
    >>> X = hypercube(500, 4, random_state=0)
    >>> X.shape, bool((X >= 0).all() and (X <= 1).all())
    ((500, 4), True)
    """
    check_int(n_samples, "n_samples", "hypercube", 1)
    check_int(intrinsic_dim, "intrinsic_dim", "hypercube", 1)
    rng = np.random.default_rng(random_state)
    return rng.random((n_samples, intrinsic_dim)).astype(dtype, copy=False)


def torus(n_samples: int, intrinsic_dim: int, *, radius: float = 1.0, dtype: type = np.float64,
          random_state: int | None = 0) -> np.ndarray:
    """The flat d-torus S^1 x ... x S^1 embedded in 2d dimensions (Sharma & Kaplan C.1).

    Each circle factor lies in its own plane: coordinates (2i, 2i + 1) hold
    radius * (cos θ_i, sin θ_i) with θ_i uniform, so the density is uniform.

    Examples
    --------
    >>> import numpy as np
    >>> from idest.datasets import torus
    >>> X = torus(500, 3, random_state=0)
    >>> X.shape, bool(np.allclose(X[:, 0] ** 2 + X[:, 1] ** 2, 1.0))
    ((500, 6), True)
    """
    check_int(n_samples, "n_samples", "torus", 1)
    check_int(intrinsic_dim, "intrinsic_dim", "torus", 1)
    rng = np.random.default_rng(random_state)
    theta = rng.uniform(0.0, 2 * np.pi, size=(n_samples, intrinsic_dim))
    out = np.empty((n_samples, 2 * intrinsic_dim), dtype=dtype)
    out[:, 0::2] = radius * np.cos(theta)
    out[:, 1::2] = radius * np.sin(theta)
    return out


def sphere(n_samples: int, intrinsic_dim: int, *, dtype: type = np.float64,
           random_state: int | None = 0) -> np.ndarray:
    """Points uniform on the unit d-sphere S^d in d + 1 dimensions (normalised Gaussians).

    Examples
    --------
    >>> import numpy as np
    >>> from idest.datasets import sphere
    >>> X = sphere(500, 2, random_state=0)
    >>> X.shape, bool(np.allclose(np.linalg.norm(X, axis=1), 1.0))
    ((500, 3), True)
    """
    check_int(n_samples, "n_samples", "sphere", 1)
    check_int(intrinsic_dim, "intrinsic_dim", "sphere", 1)
    rng = np.random.default_rng(random_state)
    X = rng.normal(size=(n_samples, intrinsic_dim + 1))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(dtype, copy=False)


def swiss_roll(n_samples: int, *, noise: float = 0.0, random_state: int | None = 0) -> np.ndarray:
    """The Swiss roll, a 2-dimensional manifold in 3 dimensions (scikit-learn's generator).

    Examples
    --------
    >>> from idest.datasets import swiss_roll
    >>> swiss_roll(500, random_state=0).shape
    (500, 3)
    """
    from sklearn.datasets import make_swiss_roll

    check_int(n_samples, "n_samples", "swiss_roll", 1)
    return make_swiss_roll(n_samples, noise=noise, random_state=random_state)[0]


def poisson_neighbors(n_samples: int, intrinsic_dim: int, k: int = 2, *,
                      random_state: int | None = 0) -> Neighbors:
    """Neighbour distances r_1..r_k drawn exactly from the law the estimators assume.

    Around a point of a d-dimensional Poisson process of unit density, the
    volumes r_j^d of the balls reaching the j-th neighbour are the arrival
    times of a unit-rate Poisson process (B.1–B.4). So μ_2 = r_2 / r_1 is
    exactly Pareto with shape d (the TwoNN law, B.5–B.6) and (μ_2..μ_k) follow
    B.11. Each row is an independent point; ``indices`` are -1 and ``data``
    is None (there are no coordinates).

    Examples
    --------
    >>> import numpy as np
    >>> from idest.datasets import poisson_neighbors
    >>> nn = poisson_neighbors(100_000, 10, random_state=0)
    >>> mu = nn.distances[:, 1] / nn.distances[:, 0]
    >>> round(float((len(mu) - 1) / np.log(mu).sum()), 1)
    10.0
    """
    check_int(n_samples, "n_samples", "poisson_neighbors", 1)
    check_int(intrinsic_dim, "intrinsic_dim", "poisson_neighbors", 1)
    check_int(k, "k", "poisson_neighbors", 1)
    rng = np.random.default_rng(random_state)
    volumes = np.cumsum(rng.exponential(size=(n_samples, k)), axis=1)
    return Neighbors(volumes ** (1.0 / intrinsic_dim), np.full((n_samples, k), -1, np.int64),
                     True, "poisson", 0, None)


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
    # Latents are drawn 16,384 rows at a time and the noise for those rows after
    # them (this order fixes the random stream); the float64 temporaries cover
    # at most 2,048 rows, so generating 10^5 x 768 float32 needs ~25 MB extra.
    for start in range(0, n_samples, 16_384):
        latent = rng.normal(size=(min(16_384, n_samples - start), intrinsic_dim))
        for sub in range(0, latent.shape[0], 2048):
            rows = latent[sub : sub + 2048] @ A
            if noise > 0:
                rows += noise * rng.normal(size=rows.shape)
            out[start + sub : start + sub + rows.shape[0]] = rows
    return out
