"""GRIDE across scales: the likelihood, its root and error, the plateau rule, inputs, DADApy."""

import json
import re
import warnings

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import minimize_scalar

import idest
from idest.datasets import hypercube, poisson_neighbors, torus
from idest.estimators import _kernels, find_plateau
from idest.estimators._gride import gride_mle


def _gride(X, **kwargs):
    """gride with the no-plateau warning silenced (curve-only checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", idest.estimators.NoPlateauWarning)
        return idest.gride(X, **kwargs)


def _objective(d, mu, n1, n2):
    """Σ log f(μ_i | d) − log d, f from scipy's Beta law of u = μ^(−d): the (N − 1) form."""
    u = mu ** (-d)
    log_f = stats.beta.logpdf(u, n1, n2 - n1) + np.log(d) - (d + 1) * np.log(mu)
    return log_f.sum() - np.log(d)


# ---------------------------------------------------------------- the estimator at one scale

@pytest.mark.parametrize("make", [lambda: hypercube(3000, 4, random_state=1),
                                  lambda: torus(3000, 3, random_state=2)])
def test_first_scale_equals_twonn_pareto_mle(make):
    nn = idest.knn(make(), k=8)
    r = _gride(nn, range_max=8)
    assert (r.n1[0], r.n2[0]) == (1, 2)
    # twonn's Pareto MLE kernel with every μ kept: (N − 1) / Σ log μ
    x = np.sort(np.log(nn.distances[:, 1] / nn.distances[:, 0]))
    n = x.size
    pareto = _kernels.cdf_fit(x, np.arange(n), np.ones(n, dtype=np.int64),
                              np.zeros(n + 1), _kernels.cdf_steps(x, True), True)
    assert r.dimensions[0] == pytest.approx(pareto, rel=1e-10, abs=0)
    assert r.dimensions[0] == pytest.approx((n - 1) / x.sum(), rel=1e-10, abs=0)
    # twonn(fit_method="mle") keeps at most N − 1 of them (the largest μ is censored, as in
    # its regression, whose target at C = 1 is infinite): the same law, one point apart
    two = idest.twonn(nn, fit_method="mle", discard_fraction=0.0)
    assert r.dimensions[0] == pytest.approx(two.dimension, rel=5 / n)


@pytest.mark.parametrize(("n1", "n2"), [(1, 2), (2, 4), (4, 8), (3, 10), (32, 64)])
def test_mle_maximises_the_beta_likelihood_and_fisher_is_its_curvature(n1, n2):
    volumes = np.cumsum(np.random.default_rng(n2).exponential(size=(4000, n2)), axis=1)
    mu = (volumes[:, n2 - 1] / volumes[:, n1 - 1]) ** (1 / 6.0)  # exact law, d = 6
    d, se = gride_mle(np.log(mu), n1, n2)
    best = minimize_scalar(lambda t: -_objective(t, mu, n1, n2), bounds=(0.5, 50),
                           method="bounded", options={"xatol": 1e-9})
    assert d == pytest.approx(best.x, rel=1e-6)
    h = 1e-3 * d
    curvature = -(_objective(d + h, mu, n1, n2) - 2 * _objective(d, mu, n1, n2)
                  + _objective(d - h, mu, n1, n2)) / h**2
    assert se == pytest.approx(curvature ** -0.5, rel=1e-4)
    assert abs(d - 6.0) < 4 * se


@pytest.mark.parametrize(("n1", "n2", "d"), [(1, 2, 3.0), (8, 16, 40.0), (512, 1024, 8.0)])
def test_newton_root_is_the_score_root_for_the_estimate_and_every_resample(n1, n2, d):
    """The bracketed Newton iteration lands where brentq on S does, from any start, and the
    bootstrap kernel equals one gride_mle per resample (the same multiplicities)."""
    from scipy.optimize import brentq

    from idest.estimators._bootstrap import resample_counts
    from idest.estimators._gride import _bootstrap_roots, _score_information

    volumes = np.cumsum(np.random.default_rng(n2).exponential(size=(5000, n2)), axis=1)
    x = np.log(volumes[:, n2 - 1] / volumes[:, n1 - 1]) / d
    multiplicities = resample_counts(1, x.size, 0, 20)
    roots = _bootstrap_roots(x, multiplicities, n1, n2, 1.0)
    for counts, root in zip(multiplicities, roots, strict=True):
        exact = brentq(lambda t, c=counts: _score_information(x, c, n1, n2, t)[0], 0.01 * d,
                       100 * d, xtol=1e-14, rtol=4 * np.finfo(float).eps)
        assert root == pytest.approx(exact, rel=1e-11)
        for start in (1e-3, 1.0, 1e4):
            assert gride_mle(x, n1, n2, counts, start)[0] == pytest.approx(exact, rel=1e-11)
    assert np.std(roots) > 0 and abs(np.median(roots) / d - 1) < 0.05


def test_ties_enter_through_their_limit_and_all_ties_have_no_root():
    x = np.log(np.random.default_rng(0).pareto(3.0, 500) + 1)
    x[:20] = 0.0
    tiny = x.copy()
    tiny[:20] = 1e-13
    np.testing.assert_allclose(gride_mle(x, 4, 8), gride_mle(tiny, 4, 8), rtol=1e-8)
    assert np.isnan(gride_mle(np.zeros(50), 4, 8)).all()
    assert np.isnan(gride_mle(np.array([0.5]), 1, 2)).all()  # one point: no root, no hang
    grid = np.stack(np.meshgrid(np.arange(20.0), np.arange(20.0)), -1).reshape(-1, 2)
    with pytest.raises(ValueError, match=re.escape("μ = r_2/r_1 equals 1 for every point")):
        idest.gride(grid, range_max=2)


# ------------------------------------------------------------------------ recovery, errors

@pytest.mark.parametrize("d", [2, 5, 12])
def test_every_scale_recovers_d_on_the_exact_law(d):
    r = idest.gride(poisson_neighbors(20_000, d, k=64, random_state=d), range_max=64)
    assert r.n2.tolist() == [2, 4, 8, 16, 32, 64]
    assert (np.abs(r.dimensions - d) < 4 * r.std_errors).all()
    assert r.plateau_range == (2, 64) and r.dimension == pytest.approx(d, rel=0.02)
    assert (r.intervals[:, 0] < r.dimensions).all() and (r.dimensions < r.intervals[:, 1]).all()


@pytest.mark.parametrize(("make", "d"), [(lambda: hypercube(6000, 3, random_state=0), 3),
                                         (lambda: torus(6000, 4, random_state=0), 4),
                                         (lambda: torus(6000, 6, random_state=0), 6)])
def test_plateau_recovers_d_on_manifolds(make, d):
    r = idest.gride(make(), range_max=64)
    assert r.plateau_found and r.dimension == pytest.approx(d, rel=0.1)
    assert r.interval[0] <= r.dimension <= r.interval[1]
    assert np.all(np.diff(r.distances) > 0)


def test_fisher_error_agrees_with_the_bootstrap_spread():
    nn = poisson_neighbors(3000, 5, k=16, random_state=3)
    r = idest.gride(nn, range_max=16, n_bootstrap=300, random_state=0)
    ratio = r.bootstrap_std_errors / r.std_errors
    assert ((ratio > 0.8) & (ratio < 1.25)).all(), ratio
    assert r.n_bootstrap == 300
    wald = idest.gride(nn, range_max=16)
    assert not np.allclose(r.intervals, wald.intervals)  # percentile, not Wald, intervals
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(wald.intervals, wald.dimensions[:, None]
                               + np.outer(wald.std_errors, [-z, z]))


def test_bootstrap_is_reproducible_and_seeded():
    nn = poisson_neighbors(800, 3, k=4, random_state=0)
    a, b = (_gride(nn, range_max=4, n_bootstrap=50, random_state=7) for _ in range(2))
    c = _gride(nn, range_max=4, n_bootstrap=50, random_state=8)
    np.testing.assert_array_equal(a.intervals, b.intervals)
    assert not np.array_equal(a.intervals, c.intervals)
    g1, g2 = (_gride(nn, range_max=4, n_bootstrap=50, random_state=np.random.default_rng(5))
              for _ in range(2))
    np.testing.assert_array_equal(g1.intervals, g2.intervals)  # a Generator seeds it too


# --------------------------------------------------------------------------- plateau rule

def _bands(d, half_width):
    d = np.asarray(d, dtype=float)
    return d, np.c_[d - half_width, d + half_width]


def test_plateau_is_the_longest_agreeing_run():
    d, iv = _bands([12.0, 8.0, 5.1, 5.0, 5.1, 4.95, 3.5, 2.0], 0.1)
    assert find_plateau(d, iv, rtol=0.0) == (2, 5)  # the drift, -0.09, is within the noise
    assert find_plateau(d, iv, rtol=0.0, min_scales=5) is None


def test_no_plateau_on_a_steady_slope():
    d, iv = _bands(np.linspace(20, 2, 10), 0.05)
    assert find_plateau(d, iv) is None


def test_ties_go_to_the_smaller_scales():
    d, iv = _bands([3.0, 3.0, 3.0, 9.0, 20.0, 20.0, 20.0], 0.01)
    assert find_plateau(d, iv, rtol=0.0, min_scales=3) == (0, 2)


def test_agreement_needs_one_common_value_not_a_chain():
    # each neighbour overlaps the next, but no value lies in all four intervals
    d, iv = _bands([1.0, 1.12, 1.24, 1.36], 0.1)  # neighbours differ by less than their noise
    assert find_plateau(d, iv, rtol=0.0, min_scales=2) == (0, 1)


def test_a_curve_that_keeps_drifting_has_no_plateau_even_where_neighbours_overlap():
    # falling 5 % per octave with intervals of +-4.5 % (a 30-dimensional cloud of 2,000
    # points): four neighbouring intervals share a value once widened by 5 %, but the
    # drift over any four scales is significantly beyond 5 %
    d, iv = _bands(22.6 * 0.95 ** np.arange(8), 1.0)
    assert np.all(iv[1:4, 0] - 0.05 * d[1:4] <= (iv[:3, 1] + 0.05 * d[:3]))  # 1. holds
    assert find_plateau(d, iv) is None
    flat = d.copy()
    flat[2:7] = 20.0 + np.array([0.3, -0.2, 0.1, -0.3, 0.2])  # noise, no trend
    assert find_plateau(flat, np.c_[flat - 1.0, flat + 1.0]) == (1, 6)
    tight = 22.6 * 0.98 ** np.arange(8)  # 2 % per octave, precise: 4 % over 3, 6 % over 4
    bands = np.c_[tight - 0.01, tight + 0.01]
    assert find_plateau(tight, bands) is None
    assert find_plateau(tight, bands, min_scales=3) == (0, 2)


def test_no_plateau_is_reported_never_invented():
    nn = poisson_neighbors(5000, 4, k=16, random_state=0)
    with pytest.warns(idest.estimators.NoPlateauWarning, match="no plateau"):
        r = idest.gride(nn, range_max=16, plateau_min_scales=5)
    assert not r.plateau_found and r.plateau_range is None
    assert np.isnan(r.dimension) and np.isnan(r.interval).all()


def test_user_range_overrides_the_rule():
    r = idest.gride(poisson_neighbors(5000, 4, k=16, random_state=0), range_max=16,
                    plateau_range=(4, 8))
    assert r.plateau_range == (4, 8) and r.plateau_rule == "user"
    assert r.dimension == pytest.approx(np.median(r.dimensions[1:3]))
    assert r.interval == (r.intervals[1:3, 0].min(), r.intervals[1:3, 1].max())


# -------------------------------------------------------------------- API, inputs, policy

def test_result_object_and_estimator_class():
    X = hypercube(2000, 3, random_state=0)
    r = idest.gride(X, range_max=16)
    assert [s[:2] for s in r.scales] == [(1, 2), (2, 4), (4, 8), (8, 16)]
    nn = idest.knn(X, 16)
    np.testing.assert_allclose([s[2] for s in r.scales], nn.distances[:, [1, 3, 7, 15]].mean(0))
    payload = json.loads(json.dumps(r.to_dict()))
    assert payload["method"] == "gride" and payload["n2"] == [2, 4, 8, 16]
    assert payload["plateau_range"] == list(r.plateau_range)
    est = idest.GRIDE(16).fit(X)
    assert est.dimension_ == r.dimension and est.n_features_in_ == 3
    np.testing.assert_array_equal(est.dimensions_, r.dimensions)
    from sklearn.base import clone
    assert clone(est).get_params()["range_max"] == 16
    with pytest.raises(AttributeError):
        r.dimension = 1.0  # frozen


def test_range_max_not_a_power_of_two_stops_below_it():
    r = idest.gride(hypercube(500, 2, random_state=0), range_max=40)
    assert r.n2.tolist() == [2, 4, 8, 16, 32]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"range_max": 1}, "gride: range_max must be an int in [2, inf); got 1."),
    ({"range_max": 2.0}, "gride: range_max must be an int in [2, inf); got 2.0."),
    ({"range_max": 512}, "found 300 sample(s) while k=512 needs at least 513"),
    ({"discard": "tail"}, "gride: discard must be one of 'none', 'dadapy'; got 'tail'."),
    ({"random_state": -3}, "gride: random_state must be"),
    ({"plateau_rtol": 1.5}, "gride: plateau_rtol must be a number in [0, 1)"),
    ({"plateau_min_scales": 0}, "gride: plateau_min_scales must be an int in [1, inf)"),
    ({"plateau_range": (3, 8)}, "plateau_range must be a pair (n2_low, n2_high)"),
    ({"plateau_range": (8, 4)}, "plateau_range must be a pair (n2_low, n2_high)"),
    ({"n_bootstrap": -1}, "gride: n_bootstrap must be an int in [0, inf); got -1."),
    ({"confidence": 1.0}, "gride: confidence must be a number in (0, 1)"),
])
def test_bad_inputs_raise_one_sentence(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        idest.gride(hypercube(300, 3, random_state=0), **{"range_max": 16, **kwargs})


def test_the_estimator_class_names_itself_in_its_errors():
    """As TwoNN, KNNCDF and MLE do: the class, not the function behind it."""
    with pytest.raises(ValueError, match=re.escape("GRIDE: range_max must be an int in [2, inf)")):
        idest.GRIDE(range_max=1).fit(hypercube(300, 3, random_state=0))


def test_precomputed_neighbours_need_the_largest_n2():
    nn = idest.knn(hypercube(300, 3, random_state=0), 8)
    with pytest.raises(ValueError, match=re.escape("hold 8 neighbour(s) per point but 16")):
        idest.gride(nn, range_max=16)
    assert _gride(nn, range_max=8).n2[-1] == 8
    np.testing.assert_array_equal(_gride(nn, range_max=8).dimensions,
                                  _gride(idest.knn(nn.data, 32), range_max=8).dimensions)


def test_duplicates_are_removed_from_the_data():
    distinct = hypercube(2000, 4, random_state=0)
    X = np.vstack([distinct, distinct[:150], distinct[:3], distinct[:3]])
    with pytest.warns(idest.DuplicatesWarning, match="removed 156 exact"):
        r = _gride(X, range_max=32)
    assert r.n_duplicates_dropped == 156 and r.n_points == 2000
    np.testing.assert_allclose(r.dimensions, _gride(distinct, range_max=32).dimensions,
                               rtol=1e-12)
    with pytest.raises(ValueError, match="have an exact duplicate"):
        idest.gride(X, range_max=32, duplicates="raise")


def test_near_duplicates_merged_on_request():
    distinct = hypercube(1000, 3, random_state=0)
    X = np.vstack([distinct, distinct[:50] + 1e-9])
    with pytest.warns(idest.DuplicatesWarning, match="merged 50 near-duplicate"):
        r = _gride(X, range_max=16, merge_tolerance=1e-3)
    assert r.n_near_duplicates_merged == 50 and r.n_points == 1000
    assert _gride(X, range_max=16).n_near_duplicates_merged == 0


# ------------------------------------------------------------------------------- DADApy

def _manifold(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, 5))
    X = np.tanh(t @ rng.normal(size=(5, 12))) + 0.01 * rng.normal(size=(n, 12))
    X[-15:] = X[:15] + 1e-7 * rng.normal(size=(15, 12))  # near-duplicates: huge μ at n1 = 1
    return X


@pytest.mark.parametrize("precomputed", [pytest.param(False, marks=pytest.mark.slow), True])
def test_each_scale_agrees_with_dadapy(precomputed):
    dadapy = pytest.importorskip("dadapy", reason="install the test extra")
    X = _manifold()
    data = dadapy.Data(coordinates=X.copy(), verbose=False)
    if precomputed:
        data.compute_distances(maxk=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # DADApy's own near-duplicate warning
        ids, errors, rs = data.return_id_scaling_gride(range_max=256)
    nn = idest.knn(X, 256)
    r = _gride(nn, range_max=256, discard="dadapy")
    assert r.n2.tolist() == [2, 4, 8, 16, 32, 64, 128, 256] and ids.size == 8
    np.testing.assert_allclose(r.dimensions, ids, rtol=1e-3)
    assert r.n_used[0] < r.n_points  # DADApy's μ filter removed the near-duplicates' μ
    # differences on purpose. The error: DADApy's information counts every μ, also those its
    # filter dropped, with N instead of N − 1; idest's counts the μ it fitted, with N − 1.
    full = r.n_used == r.n_points
    np.testing.assert_allclose(r.std_errors[full], errors[full], rtol=1e-3)
    assert errors[0] == pytest.approx(r.dimensions[0] / np.sqrt(r.n_points), rel=1e-6)
    assert r.std_errors[0] == pytest.approx(r.dimensions[0] / np.sqrt(r.n_used[0] - 1))
    # The scale: DADApy averages r_n1 and r_n2, idest reports the mean r_n2.
    d = nn.distances
    np.testing.assert_allclose(rs, (d[:, r.n1 - 1].mean(0) + d[:, r.n2 - 1].mean(0)) / 2,
                               rtol=1e-9)
    np.testing.assert_allclose(r.distances, d[:, r.n2 - 1].mean(0))
    kept_all = _gride(nn, range_max=256)  # the paper's estimator keeps every μ
    assert kept_all.dimensions[0] < r.dimensions[0]
    np.testing.assert_allclose(kept_all.dimensions[3:], ids[3:], rtol=1e-3)


# ------------------------------------------------------------------------ CLI and layer scan

def test_estimate_command_prints_the_curve_and_the_plateau(tmp_path, capsys):
    from idest.cli._main import main

    X = hypercube(1500, 3, random_state=0)
    path = tmp_path / "x.npy"
    np.save(path, np.vstack([X, X[:10]]))
    out_json = tmp_path / "g.json"
    assert main(["estimate", str(path), "--method", "gride", "--range-max", "32",
                 "--bootstrap", "0", "-o", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "1500 used, 10 duplicate(s) dropped" in out
    assert "95% interval (Fisher)" in out and "plateau   : n2 " in out
    table = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[:2] for row in table] == [["1", "2"], ["2", "4"], ["4", "8"], ["8", "16"],
                                          ["16", "32"]]
    saved = json.loads(out_json.read_text())["results"][0]
    assert saved["method"] == "gride" and saved["n2"] == [2, 4, 8, 16, 32]
    assert main(["estimate", str(path), "--method", "gride", "--range-max", "4",
                 "--bootstrap", "0"]) == 0
    assert "plateau   : none found" in capsys.readouterr().out


@pytest.mark.slow
def test_layer_scan_adds_the_gride_plateau_and_figure(tmp_path):
    torch = pytest.importorskip("torch", reason="the layer scan needs torch")
    from idest.scan import COLUMNS, layer_scan, plot_gride_scan

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16))
    batches = [torch.rand(400, 3) for _ in range(2)]
    result = layer_scan(net, batches, ["0", "2"], tmp_path, reduce="flatten", mle_k=10,
                        gride_range_max=64)
    rows = [r for r in result.rows if r["estimator"] == "gride"]
    assert len(rows) == 2 and list(rows[0]) == list(COLUMNS)
    for r in rows:
        assert r["k"] == 64 and r["id"] == pytest.approx(3, rel=0.15)
        assert r["n2_low"] < r["n2_high"] and r["ci_low"] <= r["id"] <= r["ci_high"]
    assert all(r["n2_low"] is None for r in result.rows if r["estimator"] != "gride")
    twonn = [r["id"] for r in result.rows if r["estimator"] == "twonn"]
    without = layer_scan(net, batches, ["0", "2"], tmp_path / "plain", reduce="flatten", mle_k=10)
    assert [r["id"] for r in without.rows if r["estimator"] == "twonn"] == twonn
    assert without.gride_plot is None
    assert result.gride_plot.exists() and result.gride_plot.stat().st_size > 0
    again = layer_scan(net, batches, ["0", "2"], tmp_path, reduce="flatten", mle_k=10,
                       gride_range_max=64)
    assert again.n_sites_reused == 2 and again.rows == result.rows
    assert again.gride_plot.exists()
    flat = json.loads(json.dumps({"a": idest.gride(hypercube(300, 2, random_state=0), 4,
                                                    plateau_min_scales=2).to_dict()}))
    flat["a"]["plateau_range"] = None
    assert plot_gride_scan(flat, tmp_path / "none.png").exists()


def test_degenerate_bootstrap_gives_no_interval_not_a_zero_width_one():
    from idest.estimators._gride import _percentile_interval

    assert np.isnan(_percentile_interval(np.full(20, 3.0), 0.95)).all()
    assert np.isnan(_percentile_interval(np.array([3.0, np.nan]), 0.95)).all()
    low, high = _percentile_interval(np.arange(101.0), 0.9)
    assert (low, high) == pytest.approx((5.0, 95.0))


def test_a_few_tight_clusters_make_a_dip_that_dadapy_discard_removes():
    rng = np.random.default_rng(0)
    clean = hypercube(3000, 3, random_state=0)
    centres = clean[:15]
    clusters = np.repeat(centres, 3, axis=0) + 1e-6 * rng.normal(size=(45, 3))
    X = np.vstack([clean, clusters])  # 15 groups of 4 near-identical points
    kept, filtered = (_gride(X, range_max=16, discard=rule) for rule in ("none", "dadapy"))
    reference = _gride(clean, range_max=16)
    # scale (2, 4): r_2, r_3 inside the cluster, r_4 outside: huge μ for its 60 points
    assert kept.dimensions[1] < 0.8 * reference.dimensions[1]
    assert filtered.n_used[1] <= kept.n_points - 45
    assert filtered.dimensions[1] == pytest.approx(reference.dimensions[1], rel=0.05)


def test_neighbors_whose_data_is_a_torch_tensor_estimate_as_with_numpy_data():
    """idest.knn keeps device input on its device (``Neighbors.data`` a tensor, e.g. from
    ``layer_scan(keep_on_device=True)`` on a GPU): the estimators read it on the host."""
    import dataclasses

    torch = pytest.importorskip("torch")
    X = hypercube(1500, 3, random_state=0)
    X = np.vstack([X, X[:40]])  # exact duplicates: removed, then searched again
    nn = idest.knn(X, 64)
    on_tensor = dataclasses.replace(nn, data=torch.from_numpy(X))
    with pytest.warns(idest.estimators.DuplicatesWarning):
        expected = idest.gride(nn, 64)
    with pytest.warns(idest.estimators.DuplicatesWarning):
        got = idest.gride(on_tensor, 64)
    assert got.n_duplicates_dropped == expected.n_duplicates_dropped == 40
    np.testing.assert_array_equal(got.dimensions, expected.dimensions)
    with pytest.warns(idest.estimators.DuplicatesWarning):
        assert idest.twonn(on_tensor).dimension == idest.twonn(X).dimension


def test_a_precomputed_search_of_float16_data_keeps_the_inputs_precision():
    """knn validates float16 to float32 (``Neighbors.data``); the duplicate checks still
    judge twins one float16 step apart as the raw call does (``Neighbors.input_dtype``)."""
    X = hypercube(2000, 3, random_state=0).astype(np.float16)
    twins = X[:150].copy()
    twins[:, 0] = np.nextafter(twins[:, 0], np.float16(2))  # one float16 step away
    X16 = np.vstack([X, twins])
    nn = idest.knn(X16, 32)
    assert nn.input_dtype == "float16" and nn.data.dtype == np.float32
    assert nn.head(8).input_dtype == "float16"
    with pytest.warns(idest.estimators.DuplicatesWarning, match="float16"):
        raw = idest.gride(X16, 32)
    with pytest.warns(idest.estimators.DuplicatesWarning, match="float16"):
        pre = idest.gride(nn, 32)
    assert raw.n_near_duplicates_merged == 0 and raw.n_duplicates_dropped >= 150
    assert pre.n_duplicates_dropped == raw.n_duplicates_dropped
    np.testing.assert_allclose(pre.dimensions, raw.dimensions, rtol=1e-12)
