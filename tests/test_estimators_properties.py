"""Invariances of every estimator (hypothesis) and agreement with the peer libraries."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import special_ortho_group

import idest
from idest.datasets import linear_gaussian


def _all_estimates(X):
    return np.array([r.dimension for r in idest.estimate_all(X, ks=(2, 3), mle_k=(5, 8))]
                    + [idest.mle(X, k=6, aggregation="mackay_ghahramani").dimension,
                       idest.twonn(X, fit_method="mle").dimension])


def _points(seed, n, d):
    """Points on a curved d-manifold in d + 2 dimensions (no duplicates)."""
    rng = np.random.default_rng(seed)
    t = rng.random((n, d))
    return np.column_stack([t, np.sin(3 * t[:, :1]), np.cos(2 * t.sum(axis=1))])


invariance = settings(max_examples=15, deadline=None)
seeds = st.integers(0, 2**31)
sizes = st.integers(60, 300)
dims = st.integers(1, 4)


@invariance
@given(seeds, sizes, dims, st.lists(st.floats(-1e3, 1e3), min_size=6, max_size=6))
def test_translation(seed, n, d, shift):
    X = _points(seed, n, d)
    moved = X + np.asarray(shift[: X.shape[1]])
    np.testing.assert_allclose(_all_estimates(moved), _all_estimates(X), rtol=1e-6)


@invariance
@given(seeds, sizes, dims, seeds)
def test_rotation(seed, n, d, rotation_seed):
    X = _points(seed, n, d)
    R = special_ortho_group.rvs(X.shape[1], random_state=rotation_seed)
    np.testing.assert_allclose(_all_estimates(X @ R), _all_estimates(X), rtol=1e-8)


@invariance
@given(seeds, sizes, dims, st.floats(1e-3, 1e3))
def test_uniform_scaling(seed, n, d, scale):
    X = _points(seed, n, d)
    np.testing.assert_allclose(_all_estimates(scale * X), _all_estimates(X), rtol=1e-8)


@invariance
@given(seeds, sizes, dims, seeds)
def test_permutation(seed, n, d, permutation_seed):
    X = _points(seed, n, d)
    order = np.random.default_rng(permutation_seed).permutation(n)
    np.testing.assert_allclose(_all_estimates(X[order]), _all_estimates(X), rtol=1e-10)


@pytest.fixture(scope="module")
def data():
    return linear_gaussian(2000, 6, 30, noise=0.01, random_state=0)


def test_twonn_agrees_with_scikit_dimension_and_dadapy(data):
    skdim = pytest.importorskip("skdim", reason="install the test extra")
    dadapy = pytest.importorskip("dadapy", reason="install the test extra")
    ours = idest.twonn(data).dimension
    assert skdim.id.TwoNN().fit(data).dimension_ == pytest.approx(ours, rel=1e-9)
    dada = dadapy.Data(coordinates=data, maxk=3, verbose=False)
    assert dada.compute_id_2NN()[0] == pytest.approx(ours, rel=1e-6)
    assert skdim.id.TwoNN(method="mle").fit(data).dimension_ == pytest.approx(
        idest.twonn(data, fit_method="mle").dimension, rel=1e-9)


def test_mle_agrees_with_scikit_dimension(data):
    skdim = pytest.importorskip("skdim", reason="install the test extra")
    nn = idest.knn(data, k=20)
    for comb, aggregation in (("mean", "mean"), ("mle", "mackay_ghahramani")):
        for unbiased in (False, True):
            theirs = skdim.id.MLE(unbiased=unbiased).fit(
                data, precomputed_knn_arrays=(nn.distances, nn.indices), comb=comb).dimension_
            ours = idest.mle(nn, k=20, unbiased=unbiased, aggregation=aggregation).dimension
            assert ours == pytest.approx(theirs, rel=1e-9)
