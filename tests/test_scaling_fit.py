"""Scaling-law fitters (scaling.fit): recovery of known parameters, intervals, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import optimize, stats

import scaling
from scaling.fit._circle import circle_radius
from scaling.fit._power_law import _nnls_two_columns

SIZES = np.logspace(3, 7, 13)


def sweep(loss_of_n, sizes=SIZES, n_seeds=4, noise=0.03, seed=0):
    """Runs of a synthetic sweep: every size once per seed, log-normal noise on L."""
    rng = np.random.default_rng(seed)
    N = np.repeat(sizes, n_seeds)
    L = loss_of_n(N) * np.exp(rng.normal(0.0, noise, N.size))
    return N, L, np.tile(np.arange(n_seeds), sizes.size)


def bent(n, alpha=0.5, bend=10**5.5):
    """c·N^(−α) up to ``bend``, then a much shallower N^(−α/6) (optimisation failing)."""
    n = np.asarray(n, dtype=float)
    return np.where(n <= bend, 4 * n**-alpha, 4 * bend**-alpha * (n / bend) ** (-alpha / 6))


def test_power_law_recovers_alpha_and_interval_contains_it():
    N, L, seeds = sweep(lambda n: 2.0 * n**-0.35)
    fit = scaling.fit_power_law(N, L, seeds=seeds)
    assert fit.alpha == pytest.approx(0.35, abs=0.01)
    low, high = fit.interval
    assert low < fit.alpha < high and abs(fit.alpha - 0.35) < 2 * (high - low)  # coverage: below
    assert fit.coefficient == pytest.approx(2.0, rel=0.15)
    assert fit.n_points == SIZES.size and fit.n_runs == N.size
    assert fit.interval_method.startswith("bootstrap")
    json.dumps(fit.to_dict())


def test_circle_window_stops_near_the_bend():
    """The rule of A.1 is conservative: it stops at or shortly before the bend, never far after.

    Over 60 noisy sweeps (1 % scatter per size mean) the chosen N_max is never
    more than one size past the bend and its median is at most two sizes before
    it (a short noisy set often looks "most linear" by chance); α stays
    unbiased because only power-law points are fitted.
    """
    bend = 10**5.5
    step = SIZES[1] / SIZES[0]
    n_max, alpha = [], []
    for seed in range(60):
        N, L, seeds = sweep(bent, noise=0.02, seed=seed)
        fit = scaling.fit_power_law(N, L, seeds=seeds, n_bootstrap=0)
        assert fit.window == "circle"
        n_max.append(fit.n_max)
        alpha.append(fit.alpha)
    assert max(n_max) <= bend * step
    assert bend / step**2 <= np.median(n_max) <= bend
    assert np.mean(alpha) == pytest.approx(0.5, abs=0.01)
    everything = scaling.fit_power_law(N, L, window="all")
    assert everything.alpha < 0.4  # the bent tail biases a fit over all sizes


def test_fixed_window_uses_exactly_the_sizes_in_range():
    N, L, _ = sweep(bent)
    fit = scaling.fit_power_law(N, L, window=(1e3, 1e5))
    assert (fit.n_min, fit.n_max, fit.window) == (1e3, 1e5, "fixed")
    assert fit.n_points == 7
    assert fit.alpha == pytest.approx(0.5, abs=0.03)


def test_bootstrap_interval_covers_the_truth_at_the_stated_rate():
    """200 independent sweeps; the 90 % interval must hold the true α about 180 times."""
    trials, confidence, alpha = 200, 0.9, 0.4
    hits = 0
    for t in range(trials):
        N, L, _ = sweep(lambda n: n**-alpha, sizes=np.logspace(3, 6, 6), n_seeds=4, noise=0.1,
                        seed=t)
        fit = scaling.fit_power_law(N, L, window="all", confidence=confidence, n_bootstrap=400,
                                    random_state=t)
        hits += fit.interval[0] <= alpha <= fit.interval[1]
    low, high = stats.binom.interval(0.998, trials, confidence)
    assert low <= hits <= high, f"{hits}/{trials} intervals covered alpha"


def test_t_interval_when_sizes_have_single_runs_covers_at_the_stated_rate():
    trials, hits = 200, 0
    for t in range(trials):
        N, L, _ = sweep(lambda n: n**-0.4, n_seeds=1, noise=0.1, seed=1000 + t)
        fit = scaling.fit_power_law(N, L, window="all", confidence=0.9)
        hits += fit.interval[0] <= 0.4 <= fit.interval[1]
    assert fit.interval_method.startswith("t interval")
    low, high = stats.binom.interval(0.998, trials, 0.9)
    assert low <= hits <= high


def test_offset_form_recovers_floor_and_alpha():
    N, L, seeds = sweep(lambda n: 0.02 + 3.0 * n**-0.5, sizes=np.logspace(2, 6, 10), noise=0.02)
    fit = scaling.fit_offset_power_law(N, L, seeds=seeds, n_bootstrap=100)
    assert fit.alpha == pytest.approx(0.5, abs=0.04)
    assert fit.loss_floor == pytest.approx(0.02, rel=0.1)
    assert fit.interval[0] < 0.5 < fit.interval[1]
    assert fit.at_bound == ()
    assert fit.predict(1e12) == pytest.approx(fit.loss_floor, rel=1e-3)


def test_offset_form_flags_a_floor_on_its_bound():
    N = np.logspace(2, 6, 9)
    fit = scaling.fit_offset_power_law(N, 3.0 * N**-0.6, n_bootstrap=0)
    assert fit.alpha == pytest.approx(0.6, abs=1e-3)
    assert fit.at_bound == ("loss_floor=0",)
    steep = scaling.fit_offset_power_law(N, 3.0 * N**-0.6, alpha_bounds=(0.05, 0.3),
                                         n_bootstrap=0)
    assert "alpha=high" in steep.at_bound


def test_huber_resists_a_failed_run():
    N, L, seeds = sweep(lambda n: 0.02 + 3.0 * n**-0.5, sizes=np.logspace(2, 6, 10), n_seeds=1,
                        noise=0.01)
    L[6] *= 30.0  # a diverged run
    plain = scaling.fit_offset_power_law(N, L, n_bootstrap=0)
    robust = scaling.fit_offset_power_law(N, L, huber_delta=0.05, n_bootstrap=0)
    assert abs(robust.alpha - 0.5) < 0.03 < abs(plain.alpha - 0.5)
    assert "Huber" in robust.method


def test_two_column_nnls_matches_scipy():
    rng = np.random.default_rng(0)
    A, b = rng.normal(size=(300, 6, 2)), rng.normal(size=(300, 6))
    x, y = _nnls_two_columns(A[..., 0], A[..., 1], b)
    expected = np.array([optimize.nnls(a, t)[0] for a, t in zip(A, b, strict=True)])
    np.testing.assert_allclose(np.stack([x, y], -1), expected, atol=1e-10)


def test_lower_envelope_keeps_the_best_depth_on_the_hull():
    # depth 2 wins at small N, depth 3 at large N; at 1e5 both failed (above the chord)
    N = np.array([1e3, 1e3, 1e4, 1e4, 1e5, 1e5, 1e6, 1e6, 1e7, 1e7])
    L = np.array([1.0, 1.2, 0.30, 0.35, 0.40, 0.35, 0.05, 0.01, 0.004, 0.003])
    depth = np.array([2, 3, 2, 3, 2, 3, 2, 3, 2, 3])
    keep = scaling.lower_envelope(N, L, groups=depth)
    assert keep.tolist() == [True, False, True, False, False, False, False, True, False, True]
    no_hull = scaling.lower_envelope(N, L, groups=depth, hull=False)
    assert no_hull.sum() == 5 and no_hull[5] and no_hull[7]
    fit = scaling.fit_power_law(N, L, groups=depth, window="all")
    assert fit.n_points == 4 and fit.n_runs == 4


def test_n_max_at_threshold_interpolates_and_extrapolates():
    N = np.logspace(2, 5, 4)
    hit = scaling.n_max_at_threshold(N, 2.0 * N**-0.5, threshold=2e-2)
    assert hit.n_max == pytest.approx(1e4) and not hit.extrapolated
    low = 0.01 * N**-0.5  # already below 6e-3 at the smallest size
    with pytest.raises(ValueError, match="pass fit="):
        scaling.n_max_at_threshold(N, low)
    fit = scaling.fit_power_law(N, low, window="all")
    far = scaling.n_max_at_threshold(N, low, fit=fit)
    assert far.extrapolated and far.n_max == pytest.approx((0.01 / 6e-3) ** 2, rel=1e-6)
    high = 0.1 * N**-1e-3  # above the threshold, and falling too slowly to reach it
    with pytest.raises(ValueError, match="beyond float range: an extrapolation"):
        scaling.n_max_at_threshold(N, high, fit=scaling.fit_power_law(N, high, window="all"))
    rising = 0.1 * N**0.01
    with pytest.raises(ValueError, match="α = -0.01, coefficient .* does not fall to"):
        scaling.n_max_at_threshold(N, rising, fit=scaling.fit_power_law(N, rising, window="all"))
    flat = 1e-3 * N**-1e-3  # below the threshold from the start, and nearly flat
    with pytest.raises(ValueError, match="below one parameter: an extrapolation without"):
        scaling.n_max_at_threshold(N, flat, 1e-2, fit=scaling.fit_power_law(N, flat,
                                                                            window="all"))


def test_predicted_dimension_and_comparison():
    N, L, seeds = sweep(lambda n: n**-0.5)
    fit = scaling.fit_power_law(N, L, seeds=seeds)
    d = scaling.predicted_dimension(fit)
    assert d.dimension == pytest.approx(4 / fit.alpha)
    assert d.interval == pytest.approx((4 / fit.interval[1], 4 / fit.interval[0]))
    assert scaling.predicted_dimension(fit, loss_exponent=1).dimension == pytest.approx(d.dimension
                                                                                         / 2)
    rng = np.random.default_rng(0)
    ids = np.array([2.0, 3.0, 4.5, 6.0, 8.0])
    alphas = 4 / ids * np.exp(rng.normal(0, 0.03, ids.size))
    cmp = scaling.compare_alpha_to_dimension(alphas, ids)
    assert cmp.interval[0] < 1.0 < cmp.interval[1]
    assert cmp.correlation > 0.99 and cmp.slope_through_origin == pytest.approx(1.0, abs=0.05)


def test_circle_radius():
    t = np.linspace(0.2, 1.4, 7)
    assert circle_radius(3 + 5 * np.cos(t), -1 + 5 * np.sin(t)) == pytest.approx(5.0)
    assert circle_radius(t, 2 - 3 * t) == np.inf
    # three points: their circumcircle (right triangle: radius is half the hypotenuse)
    assert circle_radius(np.array([0.0, 4.0, 0.0]), np.array([0.0, 0.0, 3.0])) == \
        pytest.approx(2.5)


@pytest.mark.parametrize(
    ("N", "L", "kwargs", "message"),
    [
        ([1e2, 1e3, 1e4], [0.1, 0.0, 0.01], {}, "finite and positive"),
        ([1e2, -1e3, 1e4], [0.1, 0.05, 0.01], {}, "finite and positive"),
        ([1e2, 1e3, 1e4], [0.1, np.nan, 0.01], {}, "finite and positive"),
        ([1e2, 1e3], [0.1, 0.05], {}, "3 or more distinct sizes"),
        ([1e2, 1e2, 1e3, 1e3], [0.1, 0.1, 0.05, 0.04], {}, "3 or more distinct sizes"),
        ([1e2, 1e3, 1e4], [0.1, 0.05], {}, r"L must be as long as N \(3\); got 2 values"),
        ([[1e2, 1e3, 1e4]], [[0.1, 0.05, 0.01]], {}, "1-D"),
        ([1e2, 1e3, 1e4], [0.1, 0.05, 0.01], {"window": "best"}, "window must be"),
        ([1e2, 1e3, 1e4], [0.1, 0.05, 0.01], {"window": (1e3, 1e4)}, "Widen it"),
        ([1e2, 1e2, 1e3, 1e4], [0.1, 0.2, 0.05, 0.01], {"seeds": [0, 0, 0, 0]},
         "more than once"),
        ([1e2, 1e3, 1e4], [0.1, 0.05, 0.01], {"seeds": [0, 1]}, "one label per run"),
        ([1e2, 1e3, 1e4], [0.1, 0.05, 0.01], {"n_bootstrap": -1}, "n_bootstrap"),
        ([1e2, 1e3, 1e4], [0.1, 0.05, 0.01], {"confidence": 95}, "confidence"),
    ],
)
def test_bad_input_raises_value_error(N, L, kwargs, message):
    with pytest.raises(ValueError, match=message):
        scaling.fit_power_law(N, L, **kwargs)


def test_bad_input_of_the_other_fitters():
    N, L = [1e2, 1e3, 1e4], [0.1, 0.05, 0.01]
    with pytest.raises(ValueError, match="alpha_bounds"):
        scaling.fit_offset_power_law(N, L, alpha_bounds=(1.0, 0.5))
    with pytest.raises(ValueError, match="huber_delta"):
        scaling.fit_offset_power_law(N, L, huber_delta=0.0)
    with pytest.raises(ValueError, match="finite and positive"):
        scaling.fit_offset_power_law(N, [0.1, -0.05, 0.01])
    with pytest.raises(ValueError, match="threshold must be a finite number > 0"):
        scaling.n_max_at_threshold(N, L, threshold=0.0)
    with pytest.raises(ValueError, match="one dimension per alpha"):
        scaling.compare_alpha_to_dimension([1.0, 0.5, 0.4], [2.0, 4.0])
    with pytest.raises(ValueError, match="at least 3"):
        scaling.compare_alpha_to_dimension([1.0, 0.5], [2.0, 4.0])
    with pytest.raises(ValueError, match="different dimension"):
        scaling.compare_alpha_to_dimension([1.0, 0.5, 0.4], [3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match="finite and positive"):
        scaling.compare_alpha_to_dimension([1.0, -0.5, 0.4], [2.0, 4.0, 6.0])


def test_import_scaling_does_not_import_torch():
    code = "import sys, scaling; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_idest_fit_command_writes_table_json_and_plot(tmp_path, capsys):
    from idest.cli._main import main

    rng = np.random.default_rng(3)
    lines = ["k,depth,seed,n_params,loss,id"]
    for k in (2, 4, 8):
        for n in np.logspace(3, 6, 6):
            for seed in range(3):
                for depth in (2, 3):
                    loss = (1 + 0.2 * (depth == 3)) * n ** (-4 / k) * np.exp(rng.normal(0, 0.02))
                    lines.append(f"{k},{depth},{seed},{int(n)},{loss:.6g},{k * 0.9:.3f}")
    table = tmp_path / "runs.csv"
    table.write_text("\n".join(lines) + "\n")
    code = main(["fit", str(table), "--group-by", "k", "--envelope-by", "depth",
                 "--dimension-column", "id", "--bootstrap", "200"])
    assert code == 0
    out = capsys.readouterr().out
    assert "k=4" in out and "4/alpha vs id" in out
    document = json.loads((tmp_path / "runs.fit-k-envelope-depth.json").read_text())
    alphas = [f["fit"]["alpha"] for f in document["fits"]]
    assert alphas == pytest.approx([2.0, 1.0, 0.5], abs=0.05)
    assert document["comparison"]["correlation"] > 0.99
    assert (tmp_path / "runs.fit-k-envelope-depth.png").stat().st_size > 10_000

    assert main(["fit", str(table), "--loss-column", "test_loss"]) == 2
    assert "no column(s) ['test_loss']" in capsys.readouterr().err


def test_fit_errors_read_like_idest_validators():
    """scaling.fit may not import idest, but its messages use the same wording."""
    from idest.utils import check_confidence, check_int

    N, L = [1e2, 1e3, 1e4], [0.1, 0.05, 0.01]
    for kwargs, check in (({"n_bootstrap": -1}, lambda: check_int(-1, "n_bootstrap",
                                                                    "fit_power_law", 0)),
                          ({"confidence": 95}, lambda: check_confidence(95, "confidence",
                                                                        "fit_power_law"))):
        with pytest.raises(ValueError) as ours:
            scaling.fit_power_law(N, L, **kwargs)
        with pytest.raises(ValueError) as reference:
            check()
        assert str(ours.value) == str(reference.value)
