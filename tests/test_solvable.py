"""The solvable latent-space model: power law, breakdown at M, 1/T with noise, double descent."""

import numpy as np
import pytest

import scaling.random_features._solvable as solvable
from scaling.fit._power_law import fit_power_law
from scaling.random_features._regimes import SweepCache
from scaling.random_features._solvable import SolvableRow, solvable_loss, solvable_sweep


def _fit(sweep, losses, window):
    seeds = np.repeat(np.arange(losses.shape[0]), losses.shape[1])
    return fit_power_law(np.tile(sweep.sizes, losses.shape[0]), losses.ravel(), seeds=seeds,
                         window=window, n_bootstrap=0)


def test_power_law_in_T_while_T_is_far_below_M():
    sweep = solvable_sweep(1024, varied="T", sizes=[8, 16, 32, 64, 128], fixed=2048,
                           alpha=1.0, seeds=range(3), relative_ridges=(), progress=False)
    assert abs(_fit(sweep, sweep.ridgeless(), "all").alpha - 1.0) < 0.15


def test_without_noise_the_loss_collapses_when_T_reaches_M():
    M, N = 64, 128
    before = np.mean([solvable_loss(M, N, M // 2, random_state=s) for s in range(4)])
    quarter = np.mean([solvable_loss(M, N, M // 4, random_state=s) for s in range(4)])
    at_M = max(solvable_loss(M, N, M, random_state=s) for s in range(4))
    after = max(abs(solvable_loss(M, N, 4 * M, random_state=s)) for s in range(4))
    assert before < quarter < 3 * before        # still a gentle power law at T = M/2 ...
    assert at_M < 1e-9 * before and after < 1e-9 * before  # ... then exactly learnt at T = M


def test_with_label_noise_the_loss_falls_as_one_over_T_beyond_M():
    M = 32
    sweep = solvable_sweep(M, varied="T", sizes=[8 * M, 16 * M, 32 * M, 64 * M], fixed=2 * M,
                           noise=1e-3, seeds=range(4), progress=False)
    assert abs(_fit(sweep, sweep.ridgeless(), "all").alpha - 1.0) < 0.15
    assert abs(_fit(sweep, sweep.optimal_ridge()[0], "all").alpha - 1.0) < 0.15


def test_double_descent_peak_at_N_equal_T_disappears_at_the_optimal_ridge():
    T = 32
    sizes = [8, 16, 24, 28, 32, 36, 48, 64, 128]
    sweep = solvable_sweep(256, varied="N", sizes=sizes, fixed=T, noise=1e-4, seeds=range(4),
                           progress=False)
    ridgeless = np.exp(np.log(sweep.ridgeless()).mean(axis=0))
    tuned = np.exp(np.log(sweep.optimal_ridge()[0]).mean(axis=0))
    peak = sizes.index(T)
    assert ridgeless[peak] > 3 * ridgeless[0] and ridgeless[peak] > 3 * ridgeless[-1]
    assert np.all(np.diff(tuned) < 0.02 * tuned[:-1])     # monotone (to 2 %) at gamma*
    assert np.all(tuned <= ridgeless * (1 + 1e-9))


def test_sweep_resumes_from_its_cache(tmp_path, monkeypatch):
    path = tmp_path / "solvable.csv"
    kwargs = dict(varied="N", sizes=[4, 8], fixed=16, seeds=[0, 1], progress=False)
    first = solvable_sweep(32, cache=SweepCache(path, SolvableRow), **kwargs)

    def fail(*args, **kw):
        raise AssertionError("a finished point was recomputed")

    monkeypatch.setattr(solvable, "solvable_loss", fail)
    again = solvable_sweep(32, cache=SweepCache(path, SolvableRow), **kwargs)
    np.testing.assert_array_equal(again.losses, first.losses)


def test_bad_input_is_a_clear_value_error():
    with pytest.raises(ValueError, match="varied must be"):
        solvable_sweep(32, varied="M", sizes=[4], fixed=8)
    with pytest.raises(ValueError, match="n_train"):
        solvable_loss(32, 8, 0)
