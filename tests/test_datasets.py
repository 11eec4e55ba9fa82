"""Synthetic manifolds and the exact neighbour-distance law."""

import numpy as np
import pytest
from scipy import stats

from idest.datasets import hypercube, linear_gaussian, poisson_neighbors, sphere, swiss_roll, torus


@pytest.mark.parametrize("make, d, ambient", [(hypercube, 3, 3), (torus, 3, 6), (sphere, 3, 4)])
def test_shapes_seeds_and_dtype(make, d, ambient):
    X = make(200, d, random_state=5)
    assert X.shape == (200, ambient) and X.dtype == np.float64
    np.testing.assert_array_equal(X, make(200, d, random_state=5))
    assert not np.array_equal(X, make(200, d, random_state=6))
    assert make(10, d, dtype=np.float32).dtype == np.float32


def test_manifold_geometry():
    assert ((hypercube(500, 4) >= 0) & (hypercube(500, 4) < 1)).all()
    T = torus(500, 3, radius=2.0)
    for i in range(3):  # each circle in its own plane
        np.testing.assert_allclose(np.hypot(T[:, 2 * i], T[:, 2 * i + 1]), 2.0)
    np.testing.assert_allclose(np.linalg.norm(sphere(500, 5), axis=1), 1.0)
    assert swiss_roll(300, random_state=0).shape == (300, 3)


def test_linear_gaussian_keeps_its_signature():
    X = linear_gaussian(300, 4, 16, noise=0.0, dtype=np.float32, random_state=1)
    assert X.shape == (300, 16) and X.dtype == np.float32
    assert np.linalg.matrix_rank(X.astype(np.float64), tol=1e-4) == 4


def test_poisson_neighbors_follow_the_twonn_and_knn_laws():
    nn = poisson_neighbors(20_000, 7, k=3, random_state=0)
    assert nn.distances.shape == (20_000, 3) and (np.diff(nn.distances, axis=1) >= 0).all()
    mu2 = nn.distances[:, 1] / nn.distances[:, 0]
    assert stats.kstest(mu2, stats.pareto(7).cdf).pvalue > 1e-3  # B.5-B.6
    mu3 = nn.distances[:, 2] / nn.distances[:, 0]
    assert stats.kstest(mu3, lambda m: (1 - m ** -7.0) ** 2).pvalue > 1e-3  # B.15 with k = 3


@pytest.mark.parametrize("call, message", [
    (lambda: hypercube(0, 2), r"hypercube: n_samples must be an int in \[1, inf\); got 0\."),
    (lambda: torus(10, 0), "torus: intrinsic_dim must be an int"),
    (lambda: sphere(10, 1.5), "sphere: intrinsic_dim must be an int"),
    (lambda: poisson_neighbors(10, 2, k=0), "poisson_neighbors: k must be an int"),
    (lambda: swiss_roll(-1), "swiss_roll: n_samples must be an int"),
])
def test_bad_arguments(call, message):
    with pytest.raises(ValueError, match=message):
        call()
