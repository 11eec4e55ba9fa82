"""The bootstrap's own machinery: the resample generator and the kernels that walk counts."""

import numpy as np
import pytest

import idest
from idest.datasets import hypercube
from idest.estimators import _kernels
from idest.estimators._bootstrap import (
    BootstrapOptions,
    bootstrap_estimates,
    resample_batches,
    resample_counts,
)


@pytest.mark.parametrize(("n", "rows"), [(3, 40), (1000, 7), (20_000, 2), (3_000_000, 1)])
def test_resamples_are_numpys_sfc64_integers_counted(n, rows):
    """Exactly Generator(SFC64([seed, batch])).integers(0, n, (rows, n), int32), counted per
    row. At n = 3,000,000, 2^32 mod n = 1,967,296: about 1,400 words of the row are
    rejected (Lemire), so the rejection path is taken and must consume the same words."""
    seed, batch = 12345, 3
    counts = resample_counts(seed, n, batch, rows)
    draws = np.random.Generator(np.random.SFC64([seed, batch])).integers(
        0, n, size=(rows, n), dtype=np.int32)
    expected = np.stack([np.bincount(row, minlength=n) for row in draws])
    assert counts.shape == (rows, n) and counts.dtype == np.int32
    np.testing.assert_array_equal(counts, expected)
    assert (counts.sum(axis=1) == n).all()  # n draws per resample
    assert not counts.flags.writeable  # shared between the estimators of one search
    into = np.full(rows * n + 5, -1, dtype=np.int32)  # drawn into given memory: the same
    np.testing.assert_array_equal(resample_counts(seed, n, batch, rows, into), expected)
    assert (into[rows * n:] == -1).all()


def test_resample_batches_draw_from_their_own_streams():
    a, b = resample_counts(1, 500, 0, 25), resample_counts(1, 500, 1, 25)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a, resample_counts(2, 500, 0, 25))
    np.testing.assert_array_equal(a, resample_counts(1, 500, 0, 25))  # drawn again: the same


def _explicit_cdf_fit(x, multiplicities, targets, pareto):
    """The fit on the resample written out value by value (np.repeat), as the definition."""
    values = np.repeat(x, multiplicities)  # x is sorted, so are they
    n_fit = targets.size
    kept = values[:n_fit]
    if pareto:
        denominator = kept.sum() + (values.size - n_fit) * kept[-1]
        return np.nan if denominator == 0 else (n_fit - 1) / denominator
    return np.nan if kept @ kept == 0 else (kept @ targets) / (kept @ kept)


@pytest.mark.parametrize("pareto", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_the_count_walk_is_the_fit_on_the_explicit_resample(pareto, seed):
    """cdf_fit's walk by parts, four values at a time, against the definition: random
    multiplicities (zeros included), tied values, and a zero run at the start."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 400))
    x = np.sort(np.round(rng.exponential(size=n), 1))  # rounding makes ties
    x[: n // 5] = 0.0
    order = rng.permutation(n)
    counts = rng.multinomial(n, np.full(n, 1 / n)).astype(np.int32)
    n_fit = int(rng.integers(2, n))
    targets = _kernels.cdf_targets(n, n_fit, 2)
    cum = _kernels.cumulative_targets(targets)
    steps = _kernels.cdf_steps(x, pareto)
    # value j of the walk is point order[j]; counts are in point order
    got = _kernels.cdf_fit(x, order, counts, cum, steps, pareto)
    expected = _explicit_cdf_fit(x, counts[order], targets, pareto)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-12)
    rows = np.stack([counts, np.ones(n, np.int32)])
    np.testing.assert_array_equal(_kernels.bootstrap_cdf(x, order, cum, steps, rows, pareto),
                                  [got, _kernels.cdf_fit(x, order, rows[1], cum, steps, pareto)])


def test_a_resample_whose_kept_values_are_all_zero_has_no_slope():
    """Nan (no estimate) rather than a rounding residue: the walk stops at rank n_fit."""
    x = np.array([0.0] * 6 + [0.3, 0.7, 1.1, 2.0])
    n, n_fit = x.size, 8
    counts = np.array([2, 2, 2, 2, 0, 0, 0, 0, 1, 1], dtype=np.int32)  # 8 zeros drawn
    cum = _kernels.cumulative_targets(_kernels.cdf_targets(n, n_fit, 2))
    for pareto in (False, True):
        steps = _kernels.cdf_steps(x, pareto)
        assert np.isnan(_kernels.cdf_fit(x, np.arange(n), counts, cum, steps, pareto))


def test_the_weighted_mle_is_the_mean_over_the_explicit_resample():
    rng = np.random.default_rng(4)
    inverse = rng.uniform(0.1, 1.0, size=(1003, 3))  # 3 values of k; n not a multiple of 4
    counts = rng.multinomial(1003, np.full(1003, 1 / 1003)).astype(np.int32)
    points = np.repeat(np.arange(1003), counts)
    for mackay, expected in [(False, (1 / inverse[points]).mean(axis=0).mean()),
                             (True, (1 / inverse[points].mean(axis=0)).mean())]:
        terms = _kernels.mle_terms(inverse, mackay)
        assert _kernels.mle_aggregate(terms, counts, mackay) == pytest.approx(expected,
                                                                              rel=1e-12)


def test_every_statistic_of_one_bootstrap_sees_the_same_resamples(monkeypatch):
    """Several statistics in one pass equal each bootstrapped alone, on 1 or 2 threads."""
    import idest.estimators._bootstrap as bootstrap

    n = 20_000
    weights = np.random.default_rng(0).uniform(size=(3, n))
    statistics = [lambda counts, w=w: counts @ w for w in weights]
    options = BootstrapOptions(n_bootstrap=60, seed=9)
    assert len(resample_batches(60, n)) > 1 and 60 * n >= bootstrap._THREADED_DRAWS
    found = []
    for threads in (1, 2):
        monkeypatch.setattr(bootstrap, "default_n_jobs", lambda threads=threads: threads)
        together = bootstrap_estimates(statistics, n, options)
        alone = np.stack([bootstrap_estimates([s], n, options)[0] for s in statistics])
        np.testing.assert_array_equal(together, alone)
        found.append(together)
    np.testing.assert_array_equal(found[0], found[1])
    counts = np.concatenate([resample_counts(9, n, i, b - a)
                             for i, (a, b) in enumerate(resample_batches(60, n))])
    np.testing.assert_allclose(found[0], (counts @ weights.T).T, rtol=1e-12)


def test_estimate_all_intervals_are_those_of_the_estimators_alone():
    """One pass over the resamples for every estimator gives each the interval it has alone."""
    X = hypercube(1500, 4, random_state=2)
    nn = idest.knn(X, 12)
    together = idest.estimate_all(nn, ks=(2, 3), mle_k=12, n_bootstrap=30, random_state=4)
    alone = [idest.twonn(nn, n_bootstrap=30, random_state=4),
             idest.knn_cdf(nn, 3, n_bootstrap=30, random_state=4),
             idest.mle(nn, k=12, n_bootstrap=30, random_state=4)]
    assert [r.interval for r in together] == [r.interval for r in alone]
    assert [r.std_error for r in together] == [r.std_error for r in alone]


def test_on_threads_runs_every_task_once_and_reports_it_here():
    import threading

    from idest.estimators._bootstrap import on_threads

    reported, where = [], set()

    def task(i, thread):
        where.add((threading.current_thread().name, thread))
        return i

    on_threads(task, 200, 3, lambda value: reported.append((value, threading.current_thread())))
    assert sorted(v for v, _ in reported) == list(range(200))
    assert {t for _, t in reported} == {threading.current_thread()}  # reported on this thread
    assert where <= {("MainThread", 0), ("idest-bootstrap", 1), ("idest-bootstrap", 2)}
    assert "idest-bootstrap" not in {t.name for t in threading.enumerate()}  # none left


@pytest.mark.parametrize("failing_thread", ["helper", "caller"])
def test_on_threads_raises_an_error_of_any_thread_once_every_helper_stopped(failing_thread):
    import threading
    import time

    from idest.estimators._bootstrap import on_threads

    caller = threading.current_thread()
    started = []

    def task(i, thread):
        started.append(i)
        time.sleep(0.002)  # so that the helper surely takes tasks too
        on_caller = threading.current_thread() is caller
        if on_caller == (failing_thread == "caller") and len(started) > 4:
            raise KeyboardInterrupt if on_caller else ValueError(f"task {i} failed")
        return i

    with pytest.raises(KeyboardInterrupt if failing_thread == "caller" else ValueError):
        on_threads(task, 1000, 2, lambda value: None)
    assert "idest-bootstrap" not in {t.name for t in threading.enumerate()}
    assert len(started) < 1000  # the helpers stopped early
