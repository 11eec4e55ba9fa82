"""The estimators: exact-law recovery, bootstrap coverage, agreement with the peers, manifolds."""

import inspect
import json

import numpy as np
import pytest

import idest
from idest.datasets import hypercube, linear_gaussian, poisson_neighbors, sphere, swiss_roll, torus


@pytest.fixture(scope="module")
def law10():
    """10,000 points whose neighbour distances follow the exact d = 10 law (B.11), k <= 20."""
    return poisson_neighbors(10_000, 10, k=20, random_state=0)


def test_twonn_recovers_d_on_the_exact_law(law10):
    assert idest.twonn(law10).dimension == pytest.approx(10, rel=0.03)
    assert idest.twonn(law10, fit_method="mle").dimension == pytest.approx(10, rel=0.03)
    assert idest.twonn(law10, fit_method="mle", discard_fraction=0).dimension == pytest.approx(
        10, rel=0.03)


def test_knn_cdf_recovers_d_for_every_k(law10):
    results = [idest.knn_cdf(law10, k) for k in (2, 3, 4, 10)]
    assert [r.k for r in results] == [2, 3, 4, 10]
    for r in results:
        assert r.method == "knn_cdf"
        assert r.dimension == pytest.approx(10, rel=0.03)


def test_knn_cdf_at_k2_is_twonn(law10):
    assert idest.knn_cdf(law10, k=2).dimension == idest.twonn(law10).dimension


def test_unbiased_mle_recovers_d_and_biased_is_its_rescaling(law10):
    unbiased = idest.mle(law10, k=10, unbiased=True)
    assert unbiased.dimension == pytest.approx(10, rel=0.03)
    biased = idest.mle(law10, k=10)
    assert biased.dimension == pytest.approx(unbiased.dimension * 9 / 8, rel=1e-12)


def test_mle_local_values_aggregations_and_range(law10):
    r = idest.mle(law10, k=8)
    assert r.local_dimensions.shape == (10_000,)
    assert r.dimension == pytest.approx(r.local_dimensions.mean(), rel=1e-12)
    mg = idest.mle(law10, k=8, aggregation="mackay_ghahramani")
    assert mg.dimension == pytest.approx(1 / np.mean(1 / r.local_dimensions), rel=1e-12)
    ranged = idest.mle(law10, k=(5, 8))
    singles = [idest.mle(law10, k=k).dimension for k in range(5, 9)]
    assert ranged.dimension == pytest.approx(np.mean(singles), rel=1e-12)
    assert ranged.k == 8 and "5..8" in ranged.variant


@pytest.mark.slow
def test_bootstrap_interval_covers_d_in_at_least_90_percent_of_seeds():
    covered = 0
    for seed in range(100):
        r = idest.twonn(poisson_neighbors(10_000, 10, random_state=seed), n_bootstrap=200,
                        random_state=seed)
        covered += r.interval[0] <= 10 <= r.interval[1]
    assert covered >= 90


def test_bootstrap_is_seeded_and_brackets_the_estimate(law10):
    a = idest.mle(law10, k=10, n_bootstrap=50, random_state=3)
    b = idest.mle(law10, k=10, n_bootstrap=50, random_state=3)
    c = idest.mle(law10, k=10, n_bootstrap=50, random_state=4)
    assert a.interval == b.interval != c.interval
    low, high = a.interval
    assert low < a.dimension < high and a.std_error > 0 and a.n_bootstrap == 50
    assert a.confidence == 0.95
    none = idest.twonn(law10)
    assert np.isnan(none.interval).all() and none.std_error is None and none.n_bootstrap == 0


def test_random_state_takes_an_int_a_generator_or_none(law10):
    by_int = idest.twonn(law10, n_bootstrap=20, random_state=7)
    assert by_int.interval == idest.twonn(law10, n_bootstrap=20, random_state=7).interval
    same = [idest.twonn(law10, n_bootstrap=20, random_state=np.random.default_rng(5)).interval
            for _ in range(2)]
    assert same[0] == same[1]  # equal Generators give equal draws
    rng = np.random.default_rng(5)
    first = idest.twonn(law10, n_bootstrap=20, random_state=rng).interval
    assert first == same[0]
    assert idest.twonn(law10, n_bootstrap=20, random_state=rng).interval != first  # rng advanced
    assert np.isfinite(idest.twonn(law10, n_bootstrap=20, random_state=None).interval).all()


def test_one_draw_per_call_even_from_a_generator():
    X = hypercube(1500, 4, random_state=2)
    results = idest.estimate_all(X, ks=(2, 3), mle_k=None, n_bootstrap=20,
                                 random_state=np.random.default_rng(0))
    assert results[0].interval != results[1].interval  # different statistics...
    twice = idest.estimate_all(X, ks=(2, 3), mle_k=None, n_bootstrap=20,
                               random_state=np.random.default_rng(0))
    assert [r.interval for r in twice] == [r.interval for r in results]  # ...same resamples


def test_every_estimator_bootstraps_the_same_resampled_points():
    """The count walk equals estimating on explicitly resampled points, for each estimator."""
    from idest.estimators._bootstrap import resample_batches, resample_counts
    from idest.estimators._kernels import cdf_targets

    nn = poisson_neighbors(3000, 6, k=12, random_state=1)
    B, seed, n = 40, 11, 3000
    batches = resample_batches(B, n)
    assert len(batches) > 1  # the batches run on threads; their layout is fixed
    counts = np.concatenate([resample_counts(seed, n, i, b - a)
                             for i, (a, b) in enumerate(batches)])
    assert counts.shape == (B, n) and (counts.sum(axis=1) == n).all()
    log_mu = np.log(nn.distances[:, 1] / nn.distances[:, 0])
    n_fit = int(np.floor(n * 0.9))
    targets = cdf_targets(n, n_fit, 2)
    local = (np.log(nn.distances[:, 9:10] / nn.distances[:, :9]).sum(axis=1) / 9) ** -1.0
    twonn, mle = [], []
    for row in counts:
        points = np.repeat(np.arange(n), row)  # the resample, point by point
        x = np.sort(log_mu[points])[:n_fit]
        twonn.append((x @ targets) / (x @ x))
        mle.append(local[points].mean())
    for result, estimates in [
        (idest.twonn(nn, n_bootstrap=B, random_state=seed), twonn),
        (idest.mle(nn, k=10, n_bootstrap=B, random_state=seed), mle),
    ]:
        expected = np.quantile(estimates, [0.025, 0.975])
        np.testing.assert_allclose(result.interval, expected, rtol=1e-12)
        assert result.std_error == pytest.approx(np.std(estimates, ddof=1), rel=1e-12)


def test_to_dict_is_json_ready(law10):
    r = idest.twonn(law10, n_bootstrap=10)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["interval"] == list(r.interval) and d["n_bootstrap"] == 10
    assert d["confidence"] == 0.95 and "local_dimensions" not in d
    curve = idest.id_vs_k(law10, ks=(2, 3))
    assert json.loads(json.dumps(curve.to_dict()))["values"] == [2, 3]
    fit = idest.cdf_fit_data(law10, k=3)
    assert len(fit.to_dict()["log_mu"]) == fit.log_mu.size


def test_cdf_fit_data_is_the_fitted_line(law10):
    fit = idest.cdf_fit_data(law10, k=3)
    slope = (fit.log_mu @ fit.target) / (fit.log_mu @ fit.log_mu)
    assert fit.dimension == pytest.approx(slope, rel=1e-12)
    assert fit.log_mu.size == 9000 and np.all(np.diff(fit.log_mu) >= 0)
    assert fit.dimension == idest.knn_cdf(law10, k=3).dimension
    assert np.isnan(fit.interval).all()
    booted = idest.cdf_fit_data(law10, k=3, n_bootstrap=20, random_state=1)
    assert booted.interval == idest.knn_cdf(law10, k=3, n_bootstrap=20, random_state=1).interval


def test_estimate_all_matches_the_individual_estimators():
    X = hypercube(1500, 4, random_state=2)
    results = idest.estimate_all(X, ks=(2, 3, 5), mle_k=(10, 12), n_bootstrap=20)
    assert [(r.method, r.k) for r in results] == [("twonn", 2), ("knn_cdf", 3), ("knn_cdf", 5),
                                                   ("mle", 12)]
    assert results[0].dimension == idest.twonn(X).dimension
    assert results[2].dimension == idest.knn_cdf(X, k=5).dimension
    assert results[3].dimension == idest.mle(X, k=(10, 12)).dimension
    assert all(r.interval[0] < r.dimension < r.interval[1] for r in results)
    assert [r.method for r in idest.estimate_all(X, ks=(3,), mle_k=None)] == ["twonn", "knn_cdf"]


@pytest.mark.parametrize("function, cls", [(idest.twonn, idest.TwoNN),
                                           (idest.knn_cdf, idest.KNNCDF), (idest.mle, idest.MLE)])
def test_function_and_class_take_the_same_arguments_in_the_same_order(function, cls):
    def params(f, skip):
        return [(p.name, p.default) for p in list(inspect.signature(f).parameters.values())[skip:]]
    assert params(function, 1) == params(cls.__init__, 1)  # without X / self


def test_estimators_accept_precomputed_neighbors():
    X = hypercube(1000, 3, random_state=0)
    nn = idest.knn(X, k=20)
    assert idest.twonn(nn).dimension == idest.twonn(X).dimension
    assert idest.mle(nn, k=20).dimension == idest.mle(X, k=20).dimension


def test_estimator_classes_store_the_function_results():
    X = hypercube(1000, 3, random_state=0)
    est = idest.TwoNN(n_bootstrap=10, random_state=1)
    assert est.fit(X) is est and est.get_params()["n_bootstrap"] == 10
    assert est.dimension_ == idest.twonn(X).dimension and est.n_features_in_ == 3
    assert est.interval_ == idest.twonn(X, n_bootstrap=10, random_state=1).interval
    assert idest.KNNCDF(4).fit(X).dimension_ == idest.knn_cdf(X, 4).dimension
    lb = idest.MLE(10, aggregation="mackay_ghahramani").fit(X)
    assert lb.dimension_ == idest.mle(X, k=10, aggregation="mackay_ghahramani").dimension
    assert lb.local_dimensions_.shape == (1000,) and lb.n_points_ == 1000


def test_id_vs_k_and_id_vs_n_points():
    X = hypercube(1200, 3, random_state=0)
    curve = idest.id_vs_k(X, ks=(2, 3, 6))
    assert curve.parameter == "k" and curve.dimensions.shape == (3, 1)
    assert curve.dimensions[0, 0] == idest.twonn(X).dimension
    mle_curve = idest.id_vs_k(X, ks=(5, 10), method="mle")
    assert mle_curve.dimensions[1, 0] == idest.mle(X, k=10).dimension
    sizes = idest.id_vs_n_points(X, sizes=[1200, 300], n_repeats=4, random_state=1)
    assert sizes.values.tolist() == [1200, 300] and sizes.dimensions.shape == (2, 4)
    assert sizes.dimensions[0, 0] == idest.twonn(X).dimension and sizes.std[0] == 0
    assert sizes.std[1] > 0 and np.all(np.abs(sizes.dimensions - 3) < 0.8)


# Appendix C.1 (figure 18): TwoNN is reliable for small d; at d = 10 the hypercube is
# underestimated (boundaries) and the torus overestimated (curvature).
@pytest.mark.parametrize("make, d, low, high", [
    (hypercube, 2, 1.85, 2.2), (hypercube, 5, 4.3, 5.2), (hypercube, 10, 7.5, 10.0),
    (torus, 2, 1.85, 2.2), (torus, 5, 4.6, 5.5), (torus, 10, 10.0, 13.0),
    (sphere, 3, 2.75, 3.25),
])
def test_known_dimension_manifolds(make, d, low, high):
    X = make(3000, d, random_state=1)
    nn = idest.knn(X, k=20)
    for r in [*(idest.knn_cdf(nn, k) for k in (2, 3, 4)), idest.mle(nn, k=20, unbiased=True)]:
        assert low < r.dimension < high, r


def test_swiss_roll_and_linear_gaussian():
    assert idest.twonn(swiss_roll(3000, random_state=0)).dimension == pytest.approx(2, rel=0.08)
    X = linear_gaussian(3000, 5, 40, dtype=np.float32, random_state=0)
    assert idest.twonn(X).dimension == pytest.approx(5, rel=0.1)


def test_no_nan_or_inf_on_float32_benchmark_like_data():
    X = linear_gaussian(3000, 8, 64, noise=0.01, dtype=np.float32, random_state=0)
    X[::7] = X[1::7][: X[::7].shape[0]]  # many duplicated rows
    with pytest.warns(idest.DuplicatesWarning):
        results = idest.estimate_all(X, n_bootstrap=20)
    for r in results:
        assert np.isfinite([r.dimension, *r.interval, r.std_error]).all()


def test_the_bootstrap_gives_the_same_interval_on_any_number_of_threads(monkeypatch):
    import idest.estimators._bootstrap as bootstrap

    X = hypercube(12_000, 4, random_state=3)  # 100 x 12,000 draws: threaded batches
    assert 100 * 12_000 >= bootstrap._THREADED_DRAWS
    nn = idest.knn(X, 20)
    found = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(bootstrap, "default_n_jobs", lambda threads=threads: threads)
        found.append([r.interval for r in idest.estimate_all(nn, n_bootstrap=100)])
    assert found[0] == found[1] == found[2]
