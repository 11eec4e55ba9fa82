"""Random-feature teacher/student: exact losses, the four regimes, duality, replica curve."""

import dataclasses

import numpy as np
import pytest

import scaling.random_features._regimes as regimes
from scaling.random_features._features import (
    RandomReLUFeatures,
    feature_population,
    gaussian_projection,
    infinite_data_loss,
    linear_model_loss,
    power_law_population,
    sampled_test_loss,
)
from scaling.random_features._regimes import (
    FeatureSource,
    SweepCache,
    duality_check,
    fit_regime,
    fit_spectrum,
    regime_point,
    sweep_regime,
)
from scaling.random_features._replica import replica_kappa, replica_loss

ALPHA_K = 1.0
SOURCE = FeatureSource("power_law", ALPHA_K, n_features=1024)
WINDOW = (8, 128)
SIZES = [8, 11, 16, 23, 32, 45, 64, 91, 128]
SEEDS = range(6)


def test_exact_loss_is_the_average_of_sampled_losses():
    pop = power_law_population(24, 0.7)
    rng = np.random.default_rng(0)
    for n_train, projection in [(10, None), (16, gaussian_projection(6, 24, rng)),
                                (8, gaussian_projection(40, 24, rng))]:
        X = pop.sample(n_train, rng)
        exact = linear_model_loss(X, pop.eigenvalues, projection=projection)
        sampled = [sampled_test_loss(X, pop.sample(300, rng), projection=projection,
                                     n_teachers=10, random_state=rng) for _ in range(100)]
        standard_error = np.std(sampled) / np.sqrt(len(sampled))
        assert abs(np.mean(sampled) - exact) < 4 * standard_error


def test_bartlett_projection_has_the_law_of_a_full_gaussian_projection():
    pop = power_law_population(16, 1.0)
    rng = np.random.default_rng(1)
    X = pop.sample(6, rng)
    for n_params in (4, 40):          # fewer and more parameters than features
        reduced = [infinite_data_loss(pop.eigenvalues, gaussian_projection(n_params, 16, rng))
                   + linear_model_loss(X, pop.eigenvalues,
                                       projection=gaussian_projection(n_params, 16, rng))
                   for _ in range(1500)]
        full = [infinite_data_loss(pop.eigenvalues, rng.normal(size=(n_params, 16)))
                + linear_model_loss(X, pop.eigenvalues, projection=rng.normal(size=(n_params, 16)))
                for _ in range(1500)]
        assert np.mean(reduced) == pytest.approx(np.mean(full), rel=0.05)


def test_infinite_data_is_the_limit_of_large_datasets():
    pop = power_law_population(50, 1.0)
    R = gaussian_projection(10, 50, random_state=3)
    big = linear_model_loss(pop.sample(200_000, 4), pop.eigenvalues, projection=R)
    assert big == pytest.approx(infinite_data_loss(pop.eigenvalues, R), rel=1e-3)


@pytest.mark.slow
def test_resolution_limited_exponents_match_the_constructed_spectrum():
    sample = power_law_population(1024, ALPHA_K).sample(8192, 0)
    estimated = [feature_population(sample[i::2]).eigenvalues for i in range(2)]
    spectrum = fit_spectrum(estimated, window=WINDOW, n_bootstrap=200)
    fit_D = fit_regime(sweep_regime(SOURCE, "resolution_D", SIZES, seeds=SEEDS, progress=False),
                       window=WINDOW, n_bootstrap=200)
    fit_P = fit_regime(sweep_regime(SOURCE, "resolution_P", SIZES, seeds=SEEDS, progress=False),
                       window=WINDOW, n_bootstrap=200)
    check = duality_check(fit_D, fit_P, spectrum)
    assert abs(check.alpha_K - ALPHA_K) < 0.1
    assert abs(check.alpha_D - ALPHA_K) < 0.1
    assert abs(check.alpha_P - ALPHA_K) < 0.1
    assert check.consistent


@pytest.mark.parametrize(("regime", "sizes", "fixed"), [
    ("variance_D", [64, 128, 256, 512, 1024, 2048, 4096], 8),
    ("variance_P", [64, 256, 1024, 4096, 16384, 65536], 8),
])
def test_variance_limited_exponents_are_one(regime, sizes, fixed):
    source = FeatureSource("power_law", ALPHA_K, n_features=512)
    rows = sweep_regime(source, regime, sizes, fixed=fixed, seeds=range(4), progress=False)
    assert all(r.excess > 0 for r in rows)
    assert abs(fit_regime(rows, window="all", n_bootstrap=0).alpha - 1.0) < 0.15


def test_replica_curve_matches_simulation_in_the_resolution_limited_range():
    lam = SOURCE.population(0).eigenvalues
    rows = sweep_regime(SOURCE, "resolution_D", SIZES, seeds=range(8), progress=False)
    for size in (16, 32, 64, 128):
        simulated = np.mean([r.loss for r in rows if r.size == size])
        assert simulated == pytest.approx(replica_loss(lam, size), rel=0.10)


def test_replica_kappa_solves_the_self_consistency_and_vanishes_at_full_rank():
    lam = np.arange(1, 101) ** -1.5
    kappa = replica_kappa(lam, 30)
    assert np.sum(lam / (kappa + 30 * lam)) == pytest.approx(1.0, abs=1e-9)
    assert replica_kappa(lam, 100) == 0.0 and replica_loss(lam, 100) == 0.0


def test_duality_holds_on_random_relu_features():
    source = FeatureSource("hypercube", 6, n_features=256, n_pool=2048)
    sizes = [4, 6, 8, 11, 16, 23, 32]
    fit_D = fit_regime(sweep_regime(source, "resolution_D", sizes, progress=False),
                       window=(4, 32), n_bootstrap=0)
    fit_P = fit_regime(sweep_regime(source, "resolution_P", sizes, progress=False),
                       window=(4, 32), n_bootstrap=0)
    assert fit_D.alpha > 0.3
    assert abs(fit_D.alpha - fit_P.alpha) < 0.15


def test_relu_features_are_homogeneous_without_bias():
    X = np.random.default_rng(0).normal(size=(50, 5))
    net = RandomReLUFeatures(n_features=32, hidden=(16,), bias_std=0.0).fit(X)
    np.testing.assert_allclose(net.transform(2.5 * X), 2.5 * net.transform(X), rtol=1e-12)
    with pytest.raises(ValueError, match="fitted on 5"):
        net.transform(X[:, :3])


def test_sweep_resumes_from_its_cache(tmp_path, monkeypatch):
    path = tmp_path / "points.csv"
    first = sweep_regime(SOURCE, "resolution_P", [8, 16, 32], seeds=[0, 1],
                         cache=SweepCache(path), progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("a finished point was recomputed")

    monkeypatch.setattr(regimes, "regime_point", fail)
    again = sweep_regime(SOURCE, "resolution_P", [8, 16, 32], seeds=[0, 1],
                         cache=SweepCache(path), progress=False)
    assert again == first


def test_bad_input_is_a_clear_value_error():
    pop = power_law_population(10, 1.0)
    with pytest.raises(ValueError, match="one value per feature"):
        linear_model_loss(pop.sample(5), pop.eigenvalues[:9])
    with pytest.raises(ValueError, match="regime must be one of"):
        regime_point(pop, "resolution", 4)
    with pytest.raises(ValueError, match="needs fixed="):
        regime_point(pop, "variance_D", 40)
    with pytest.raises(ValueError, match="kind must be one of"):
        FeatureSource("mnist", 2)
    with pytest.raises(ValueError, match="power_law_population: alpha_K must be a finite"):
        power_law_population(10, 0.0)


@pytest.mark.slow
def test_idest_regimes_quick_writes_figures_and_summary(tmp_path):
    from idest.cli._main import main

    out = tmp_path / "report"
    assert main(["regimes", "--quick", "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache"), "--quiet"]) == 0
    for name in ("regimes.png", "duality.png", "solvable.png", "points.csv", "fits.json"):
        assert (out / name).stat().st_size > 0
    summary = (out / "README.md").read_text()
    assert "| cube d=4 | variance_P |" in summary and "idest regimes --quick" in summary


def test_the_source_key_holds_every_option_that_changes_its_points():
    """A changed pool size is another source (its cached points are not reused)."""
    a = FeatureSource("hypercube", 4, n_pool=1024)
    assert a.name != dataclasses.replace(a, n_pool=2048).name
    assert a.name != dataclasses.replace(a, n_features=64).name
