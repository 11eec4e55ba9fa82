"""The duplicate policy and every bad input of the estimators."""

import re
import warnings

import numpy as np
import pytest

import idest
from idest.datasets import hypercube, poisson_neighbors


def _estimates(X_or_nn):
    """Every estimator's point estimate, duplicate warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", idest.DuplicatesWarning)
        return [r.dimension for r in idest.estimate_all(X_or_nn, ks=(2, 3, 4), mle_k=(10, 20))]


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_duplicated_rows_give_the_estimate_of_the_distinct_rows(fraction):
    distinct = hypercube(2000, 5, random_state=0).astype(np.float32)
    rng = np.random.default_rng(1)
    copies = distinct[rng.integers(0, 2000, size=int(fraction * 2000))]
    X = rng.permutation(np.vstack([distinct, copies]))
    n_extra = X.shape[0] - np.unique(X, axis=0).shape[0]
    with pytest.warns(idest.DuplicatesWarning, match=f"removed {n_extra} exact"):
        results = idest.estimate_all(X, mle_k=(10, 20))
    assert all(r.n_duplicates_dropped == n_extra and r.n_points == 2000 for r in results)
    np.testing.assert_allclose([r.dimension for r in results], _estimates(distinct), rtol=1e-9)


def test_large_groups_of_copies_are_reduced_to_one():
    distinct = hypercube(500, 3, random_state=0)
    X = np.vstack([distinct, np.repeat(distinct[:2], 60, axis=0)])  # groups far larger than k
    with pytest.warns(idest.DuplicatesWarning):
        r = idest.mle(X, k=10)
    assert r.n_duplicates_dropped == 120 and r.n_points == 500
    assert r.dimension == pytest.approx(idest.mle(distinct, k=10).dimension, rel=1e-12)


def test_duplicates_raise_on_request_and_need_data():
    X = hypercube(300, 3, random_state=0)
    X[5] = X[6]
    with pytest.raises(ValueError, match=re.escape("2 point(s) have an exact duplicate")):
        idest.twonn(X, duplicates="raise")
    nn = idest.knn(X, k=3)
    bare = idest.Neighbors(nn.distances, nn.indices)  # no data to remove the copies from
    with pytest.raises(ValueError, match="carry no data"):
        idest.twonn(bare)
    with pytest.warns(idest.DuplicatesWarning):
        assert idest.twonn(nn).n_duplicates_dropped == 1


def test_near_duplicates_merged_only_on_request():
    distinct = hypercube(1000, 4, random_state=0)
    near = distinct[:100] + 1e-9
    X = np.vstack([distinct, near])
    kept = idest.twonn(X)  # near-duplicates are valid, distinct points
    assert kept.n_near_duplicates_merged == 0 and kept.n_points == 1100
    with pytest.warns(idest.DuplicatesWarning, match="merged 100 near"):
        merged = idest.twonn(X, merge_tolerance=1e-3)
    assert merged.n_near_duplicates_merged == 100 and merged.n_points == 1000
    assert merged.dimension == pytest.approx(idest.twonn(distinct).dimension, rel=1e-12)
    assert kept.dimension < merged.dimension


def test_constant_data():
    with pytest.raises(ValueError, match="only 1 distinct point"):
        idest.twonn(np.ones((50, 3)))


def test_lattice_data_where_every_mu_is_one():
    grid = np.arange(100.0)[:, None]  # interior points: r_1 = r_2 = 1
    with pytest.raises(ValueError, match="equals 1 for every fitted point"):
        idest.twonn(grid)
    with pytest.raises(ValueError, match="local dimension is infinite"):
        idest.mle(grid, k=2)
    assert np.isfinite(idest.mle(grid, k=2, aggregation="mackay_ghahramani").dimension)


@pytest.mark.parametrize("X, message", [
    (np.array([[0.0, np.nan]] * 10), r"twonn: X must be finite; got NaN \(nan\), first in row 0\."),
    (np.array([[0.0, np.inf]] * 10), "X must be finite; got infinity"),
    (np.arange(10.0), "X must be a 2-D array"),
    (np.empty((0, 3)), "must be non-empty"),
    (np.array([["a", "b"]] * 10), "must be real numbers"),
    (np.ones((2, 3)), "k=2 needs at least 3"),
])
def test_bad_data(X, message):
    with pytest.raises(ValueError, match=message):
        idest.twonn(X)


@pytest.mark.parametrize("call, message", [
    (lambda X: idest.twonn(X, discard_fraction=1.0),
     r"twonn: discard_fraction must be a number in \[0, 1\), e.g. 0.1; got 1.0\.$"),
    (lambda X: idest.twonn(X, fit_method="ols"),
     "twonn: fit_method must be one of 'regression', 'mle'; got 'ols'"),
    (lambda X: idest.twonn(X, n_bootstrap=-1), r"twonn: n_bootstrap must be an int in \[0, inf\)"),
    (lambda X: idest.twonn(X, confidence=1.5), r"twonn: confidence must be a number in \(0, 1\)"),
    (lambda X: idest.twonn(X, random_state="x"), "twonn: random_state must be a non-negative int"),
    (lambda X: idest.twonn(X, random_state=-1), "twonn: random_state must be a non-negative int"),
    (lambda X: idest.twonn(X, duplicates="keep"), "duplicates must be one of 'drop', 'raise'"),
    (lambda X: idest.twonn(X, merge_tolerance=-1), "merge_tolerance must be a finite number"),
    (lambda X: idest.knn_cdf(X, k=1), r"knn_cdf: k must be an int in \[2, inf\); got 1\."),
    (lambda X: idest.knn_cdf(X, k=(2, 3)), r"knn_cdf: k must be an int in \[2, inf\)"),
    (lambda X: idest.knn_cdf(X, k=50), "k=50 needs at least 51"),
    (lambda X: idest.estimate_all(X, ks=(1, 2)), r"estimate_all: ks must be an int in \[2"),
    (lambda X: idest.estimate_all(X, ks=()), "estimate_all: ks must be a non-empty"),
    (lambda X: idest.mle(X, k=1), r"mle: k must be an int in \[2, inf\); got 1\."),
    (lambda X: idest.mle(X, k=2, unbiased=True), r"mle: k must be an int in \[3, inf\)"),
    (lambda X: idest.mle(X, k=(10, 5)), r"mle: k must be an int in \[10, inf\); got 5"),
    (lambda X: idest.mle(X, k=(2, 3, 4)), r"mle: k must be an int or a pair \(k1, k2\)"),
    (lambda X: idest.mle(X, aggregation="median"), "mle: aggregation must be one of"),
    (lambda X: idest.estimate_all(X, mle_k=0), r"estimate_all: k must be an int in \[2"),
    (lambda X: idest.id_vs_k(X, method="twonn"), "id_vs_k: method must be one of"),
    (lambda X: idest.id_vs_n_points(X, sizes=[5000]), r"id_vs_n_points: sizes must be an int in"),
    (lambda X: idest.id_vs_n_points(X, n_repeats=0), r"id_vs_n_points: n_repeats must be an int"),
    (lambda X: idest.TwoNN(n_bootstrap=1.5).fit(X), r"^TwoNN: n_bootstrap must be an int"),
    (lambda X: idest.KNNCDF(k=1).fit(X), r"^KNNCDF: k must be an int in \[2, inf\)"),
    (lambda X: idest.MLE(aggregation="x").fit(X), "^MLE: aggregation must be one of"),
    (lambda X: idest.MLE(k=50).fit(X), "^MLE: found 40 sample"),
    (lambda X: idest.twonn(X[:3], discard_fraction=0.5), "only 1 point"),
])
def test_bad_options(call, message):
    with pytest.raises(ValueError, match=message):
        call(hypercube(40, 2, random_state=0))


def test_bad_neighbors():
    X = hypercube(100, 2, random_state=0)
    nn = idest.knn(X, k=5)
    with pytest.raises(ValueError, match="hold 5 neighbour"):
        idest.mle(nn, k=10)
    with pytest.raises(ValueError, match="separate reference set"):
        idest.twonn(idest.knn(X, k=2, reference=X))
    with pytest.raises(ValueError, match="sorted ascending"):
        idest.twonn(idest.Neighbors(nn.distances[:, ::-1], nn.indices))
    with pytest.raises(ValueError, match="finite and >= 0"):
        idest.twonn(idest.Neighbors(-nn.distances, nn.indices))
    with pytest.raises(ValueError, match="no data to draw subsets"):
        idest.id_vs_n_points(poisson_neighbors(500, 3))
