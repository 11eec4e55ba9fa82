"""One command for the random-feature regimes and the solvable model: sweeps, fits, figures.

``python -m scaling.random_features`` or ``idest regimes`` runs

* the four regimes of Bahri et al. (figure 3) on random-ReLU features of a centred
  hypercube and of pooled scikit-learn digits;
* the resolution-limited exponents α_D, α_P and the spectral α_K of every source
  (figure 4), with the replica curve (eq. S12) overlaid;
* the solvable model of Maloney, Roberts & Sully: power law below M, breakdown at
  M, 1/T with label noise, double descent at N = T without a ridge;

and writes ``regimes.png``, ``duality.png``, ``solvable.png``, the per-point
tables ``points.csv`` and ``solvable.csv``, ``fits.json`` and ``README.md`` (every
fitted exponent with its 95 % interval). Finished sweep points are appended to
CSVs in the cache directory, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from idest.utils import atomic_write
from scaling.fit import PowerLawFit, fit_power_law
from scaling.random_features._features import RandomReLUFeatures, sampled_test_loss
from scaling.random_features._regimes import (
    REGIMES,
    DualityCheck,
    FeatureSource,
    SpectrumFit,
    SweepCache,
    SweepRow,
    duality_check,
    fit_regime,
    fit_spectrum,
    sweep_regime,
)
from scaling.random_features._replica import replica_loss
from scaling.random_features._solvable import SolvableRow, SolvableSweep, solvable_sweep


def _sizes(low: float, high: float, count: int) -> tuple[int, ...]:
    return tuple(int(v) for v in np.unique(np.geomspace(low, high, count).round()))


@dataclass(frozen=True)
class ReportConfig:
    """Sizes of every sweep of the report (the defaults take ~5–10 min on 2 cores).

    Attributes
    ----------
    sources : tuple of FeatureSource
        Feature pools whose α_D, α_P and α_K are measured (figure 4).
    regime_sources : tuple of int
        Indices into ``sources`` shown in all four regimes (figure 3).
    seeds : tuple of int
        One population (inputs and network), projection and training set per seed.
    resolution_sizes, resolution_window : sizes of D and P (and of the spectrum
        index) swept and fitted in the resolution-limited regimes.
    variance_D_sizes, variance_P_sizes, variance_fixed : the variance-limited sweeps
        (P = ``variance_fixed`` for the first, D = ``variance_fixed`` for the second).
    n_latent, latent_alpha, latent_noise, solvable_seeds : the solvable model.
    """

    sources: tuple[FeatureSource, ...]
    regime_sources: tuple[int, ...]
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    resolution_sizes: tuple[int, ...] = _sizes(4, 256, 13)
    resolution_window: tuple[int, int] = (8, 128)
    variance_D_sizes: tuple[int, ...] = _sizes(128, 8192, 7)
    variance_P_sizes: tuple[int, ...] = _sizes(128, 131072, 7)
    variance_fixed: int = 16
    n_latent: int = 512
    latent_alpha: float = 1.0
    latent_noise: float = 1e-6
    solvable_seeds: tuple[int, ...] = (0, 1, 2)


def default_config(*, quick: bool = False) -> ReportConfig:
    """The report's sweeps; ``quick=True`` shrinks every size for a smoke run (~20 s).

    Examples
    --------
    >>> default_config(quick=True).n_latent
    64
    """
    if not quick:
        sources = tuple([FeatureSource("hypercube", d) for d in (3, 4, 6, 8)]
                        + [FeatureSource("digits", p) for p in (1, 2, 4)]
                        + [FeatureSource("power_law", a) for a in (0.5, 1.0)])
        return ReportConfig(sources=sources, regime_sources=(1, 3, 5))
    sources = (FeatureSource("hypercube", 4, n_features=128, n_pool=1024),
               FeatureSource("digits", 2, n_features=128),
               FeatureSource("power_law", 1.0, n_features=128))
    return ReportConfig(sources=sources, regime_sources=(0,), seeds=(0, 1),
                        resolution_sizes=_sizes(4, 32, 5), resolution_window=(4, 32),
                        variance_D_sizes=_sizes(64, 1024, 4), variance_P_sizes=_sizes(64, 4096, 4),
                        variance_fixed=8, n_latent=64, solvable_seeds=(0, 1))


def _log(message: str) -> None:
    print(f"[idest regimes {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "idest" / "regimes"


# ---------------------------------------------------------------- random features


@dataclass(frozen=True)
class _SourceResult:
    source: FeatureSource
    rows: dict[str, list[SweepRow]]
    fits: dict[str, PowerLawFit]
    spectrum: SpectrumFit
    duality: DualityCheck
    eigenvalues: np.ndarray  # mean over seeds


def _source_label(source: FeatureSource) -> str:
    value = f"{source.parameter:g}"
    return {"hypercube": f"cube d={value}", "digits": f"digits pool {value}",
            "power_law": f"Gaussian α_K={value}"}[source.kind]


def _eigenvalues(source: FeatureSource, seed: int, cache_root: Path) -> np.ndarray:
    """The spectrum of one population, kept in the cache so that a resumed run skips it."""
    safe = "".join(c if c.isalnum() else "_" for c in source.name)
    path = cache_root / "spectra" / f"{safe}_seed{seed}.npy"
    if path.exists():
        with contextlib.suppress(OSError, ValueError):  # a damaged file is recomputed
            return np.load(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    eigenvalues = source.population(seed).eigenvalues
    with atomic_write(path, "wb") as handle:
        np.save(handle, eigenvalues)
    return eigenvalues


def _run_source(source: FeatureSource, config: ReportConfig, cache: SweepCache,
                all_regimes: bool, progress: bool | None, client: Any = None) -> _SourceResult:
    window = config.resolution_window
    plan = {"resolution_D": (config.resolution_sizes, None),
            "resolution_P": (config.resolution_sizes, None)}
    if all_regimes:
        plan["variance_D"] = (config.variance_D_sizes, config.variance_fixed)
        plan["variance_P"] = (config.variance_P_sizes, config.variance_fixed)
    rows, fits = {}, {}
    for regime, (sizes, fixed) in plan.items():
        rows[regime] = sweep_regime(source, regime, sizes, fixed=fixed, seeds=config.seeds,
                                    cache=cache, progress=progress, client=client)
        fits[regime] = fit_regime(rows[regime],
                                  window=window if regime.startswith("resolution") else "all")
    eigenvalues = [_eigenvalues(source, seed, cache.path.parent) for seed in config.seeds]
    spectrum = fit_spectrum(eigenvalues, window=window)
    return _SourceResult(source, rows, fits, spectrum,
                         duality_check(fits["resolution_D"], fits["resolution_P"], spectrum),
                         np.exp(np.mean(np.log(np.maximum(eigenvalues, 1e-300)), axis=0)))


def _sampled_check(result: _SourceResult, config: ReportConfig, sizes: Sequence[int],
                   n_teachers: int = 200, n_test: int = 4096) -> list[tuple[int, float, float]]:
    """Exact L(D) against one-teacher losses on fresh manifold samples, averaged."""
    from idest.datasets import hypercube

    source = result.source
    out = []
    for size in sizes:
        exact, sampled = [], []
        for seed in config.seeds:
            population = source.population(seed)
            net = RandomReLUFeatures(n_features=source.n_features, hidden=source.hidden,
                                     bias_std=source.bias_std, random_state=seed)
            net.fit(source.inputs(seed))
            fresh = hypercube(n_test, int(source.parameter), random_state=10_000 + seed) - 0.5
            test = net.transform(fresh) @ population.eigenvectors
            train = population.sample(size, np.random.default_rng([seed, 1, size]))
            exact.append(next(r.loss for r in result.rows["resolution_D"]
                              if r.size == size and r.seed == seed))
            sampled.append(sampled_test_loss(train, test, n_teachers=n_teachers,
                                             random_state=np.random.default_rng([seed, 7])))
        out.append((size, float(np.mean(exact)), float(np.mean(sampled))))
    return out


# --------------------------------------------------------------------- solvable


def _solvable_sweeps(config: ReportConfig, cache: SweepCache, progress: bool | None,
                     client: Any = None) -> dict[str, SolvableSweep]:
    M = config.n_latent
    near_M = [M - 16, M - 4, M, M + 4, M + 16] if M > 32 else [M - 4, M, M + 4]
    T_sizes = sorted(set(_sizes(4, M, 10)) | set(near_M) | {2 * M, 4 * M, 8 * M, 16 * M, 32 * M})
    N_sizes = sorted(set(_sizes(4, 8 * M, 16)) | {M - 4, M, M + 4})
    small_T = M // 8
    dd_sizes = sorted(set(_sizes(4, 8 * M, 14)) | {small_T - 4, small_T - 2, small_T,
                                                    small_T + 2, small_T + 4})
    common = dict(alpha=config.latent_alpha, seeds=config.solvable_seeds, cache=cache,
                  progress=progress, client=client)
    return {
        "T": solvable_sweep(M, varied="T", sizes=T_sizes, fixed=2 * M, **common),
        "T_noise": solvable_sweep(M, varied="T", sizes=T_sizes, fixed=2 * M,
                                  noise=config.latent_noise, **common),
        "N": solvable_sweep(M, varied="N", sizes=N_sizes, fixed=4 * M, **common),
        "N_double_descent": solvable_sweep(M, varied="N", sizes=dd_sizes, fixed=small_T,
                                           **common),
    }


def _loss_at(sizes: np.ndarray, losses: np.ndarray, size: int, what: str) -> float:
    """The loss at one swept size (a clear error if the sweep does not hold it)."""
    where = np.flatnonzero(sizes == size)
    if where.size == 0:
        raise ValueError(f"run_report: the {what} sweep has no point at size {size} (sizes "
                         f"{sizes.min()}..{sizes.max()}); use n_latent >= 32 in ReportConfig.")
    return float(losses[where[0]])


def _solvable_facts(sweeps: dict[str, SolvableSweep], config: ReportConfig) -> dict:
    """The numbers the solvable-model section states: breakdown at M, noise, double descent."""
    M = config.n_latent
    T = sweeps["T"]
    T_mean = T.ridgeless().mean(axis=0)
    dd = sweeps["N_double_descent"]
    dd_mean = np.exp(np.log(dd.ridgeless()).mean(axis=0))
    dd_tuned = np.exp(np.log(dd.optimal_ridge()[0]).mean(axis=0))
    rises = np.diff(dd_tuned) / dd_tuned[:-1]
    half = int(dd.sizes[np.argmin(np.abs(dd.sizes - M // 16))])
    noise = sweeps["T_noise"]
    window_T = noise.sizes[(noise.sizes >= 4 * M) & (noise.sizes <= 32 * M)]
    theory = _ols_noise_loss(M, window_T, config.latent_noise)
    simulated = noise.ridgeless().mean(axis=0)[np.isin(noise.sizes, window_T)]
    peak = _loss_at(dd.sizes, dd_mean, M // 8, "double-descent")
    return {
        "theory_noise_alpha": fit_power_law(window_T, theory, window="all",
                                            n_bootstrap=0).alpha,
        "noise_over_theory": (float((simulated / theory).min()),
                              float((simulated / theory).max())),
        "L_half_M": float(np.interp(M / 2, T.sizes, T_mean)),
        "L_M_minus": _loss_at(T.sizes, T_mean, M - 4, "T"),
        "L_M": _loss_at(T.sizes, T_mean, M, "T"),
        "L_above_M": float(np.max(np.abs(T.ridgeless()[:, T.sizes > M]))),
        "peak": peak,
        "peak_ratio": peak / _loss_at(dd.sizes, dd_mean, half, "double-descent"),
        "tuned_monotone": bool(np.all(rises < 0.02)),
        "tuned_max_rise": float(rises.max()),
    }


def _ols_noise_loss(n_latent: int, n_train: np.ndarray, noise: float) -> np.ndarray:
    """σ² M / (2 (T − M − 1)): the excess loss of least squares in the latent space (T > M + 1).

    With N ≥ M features spanning the latent space and γ = 0, the fit is ordinary
    least squares on Gaussian x, whose noise term is (σ²/2) E Tr[(G^T G)^−1].
    """
    return noise * n_latent / (2.0 * (n_train - n_latent - 1.0))


def _fit_sweep(sweep: SolvableSweep, losses: np.ndarray, window: tuple[float, float]
               ) -> PowerLawFit:
    """Power-law fit over the sizes in ``window`` (outside it, losses may be exactly 0)."""
    inside = (sweep.sizes >= window[0]) & (sweep.sizes <= window[1])
    losses = losses[:, inside]
    seeds = np.repeat(np.arange(losses.shape[0]), losses.shape[1])
    return fit_power_law(np.tile(sweep.sizes[inside], losses.shape[0]), losses.ravel(),
                         seeds=seeds, window=window)


# ---------------------------------------------------------------------- figures


def _interval_text(fit: PowerLawFit | SpectrumFit, digits: int = 2) -> str:
    """``value [low, high]`` of a fitted exponent."""
    if isinstance(fit, SpectrumFit):
        value, (low, high) = fit.alpha_K, fit.interval
    else:
        value, (low, high) = fit.alpha, fit.interval
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


_PANELS = {
    "variance_D": ("variance-limited: L(D,P) − L(P), P = {fixed}", "dataset size D"),
    "resolution_D": ("resolution-limited: L(D), P → ∞", "dataset size D"),
    "resolution_P": ("resolution-limited: L(P), D → ∞", "features P"),
    "variance_P": ("variance-limited: L(D,P) − L(D), D = {fixed}", "features P"),
}


def _figure_regimes(results: list[_SourceResult], config: ReportConfig, path: Path) -> None:
    from matplotlib.figure import Figure

    from scaling.fit import plot_fit

    fig = Figure(figsize=(11, 10), layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, regime in zip(axes.ravel(), _PANELS, strict=True):
        title, xlabel = _PANELS[regime]
        for k, res in enumerate(results):
            rows = res.rows[regime]
            color = f"C{k}"
            plot_fit(ax, [r.size for r in rows], [max(r.excess, 1e-300) for r in rows],
                     res.fits[regime], label=_source_label(res.source), color=color)
            if regime.startswith("resolution"):
                grid = np.array(config.resolution_sizes)
                ax.plot(grid, [replica_loss(res.eigenvalues, int(n)) for n in grid], "x",
                        color=color, ms=6, label="replica S12" if k == 0 else None)
        ax.set_yscale("log")
        ax.set_title(title.format(fixed=config.variance_fixed), fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test loss (teacher-averaged)")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    fig.suptitle("Random-ReLU-feature teacher/student: the four scaling regimes "
                 f"(S={results[0].source.n_features}, {len(config.seeds)} seeds, "
                 "α with 95 % bootstrap interval)", fontsize=11)
    fig.savefig(path, dpi=90)


def _error_bar(value: float, interval: tuple[float, float]) -> list[list[float]]:
    low, high = np.nan_to_num(interval, nan=value)
    return [[max(value - low, 0.0)], [max(high - value, 0.0)]]


def _figure_duality(results: list[_SourceResult], config: ReportConfig, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 6), layout="constrained")
    left, right = fig.subplots(1, 2)
    lo, hi = config.resolution_window
    for k, res in enumerate(results):
        lam = res.eigenvalues
        index = np.arange(1, lam.size + 1)
        left.loglog(index, lam / lam[0], color=f"C{k % 10}", lw=1,
                    label=f"{_source_label(res.source)}: α_K={_interval_text(res.spectrum)}")
        inside = np.geomspace(lo, hi, 20)
        left.loglog(inside, res.spectrum.fit.predict(inside) / lam[0], "k--", lw=0.8)
        d = res.duality
        for value, interval, marker, name in (
                (d.alpha_D, d.alpha_D_interval, "o", "α_D"),
                (d.alpha_P, d.alpha_P_interval, "s", "α_P")):
            right.errorbar(d.alpha_K, value, yerr=_error_bar(value, interval),
                           xerr=_error_bar(d.alpha_K, d.alpha_K_interval),
                           fmt=marker, color=f"C{k % 10}", ms=6, capsize=2,
                           label=f"{name} {_source_label(res.source)}")
    left.axvspan(lo, hi, color="0.9", zorder=0)
    left.set_xlabel("index i")
    left.set_ylabel("λ_i / λ_1")
    left.set_ylim(1e-12, 2)
    left.set_title(f"feature spectra (fitted for i in [{lo}, {hi}], shaded)", fontsize=10)
    left.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    span = [min(r.duality.alpha_K for r in results) * 0.8,
            max(r.duality.alpha_K for r in results) * 1.2]
    right.plot(span, span, "k:", label="α = α_K")
    right.set_xlabel("α_K (spectrum)")
    right.set_ylabel("α_D (circles), α_P (squares)")
    right.set_title("resolution-limited exponents against the spectral exponent", fontsize=10)
    right.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    fig.savefig(path, dpi=90)


def _mean_loss(losses: np.ndarray, floor: float) -> np.ndarray:
    return np.maximum(losses.mean(axis=0), floor)


def _figure_solvable(sweeps: dict[str, SolvableSweep], fits: dict[str, PowerLawFit],
                     config: ReportConfig, path: Path) -> None:
    from matplotlib.figure import Figure

    M = config.n_latent
    fig = Figure(figsize=(18, 5.4), layout="constrained")
    axes = fig.subplots(1, 4)
    panels = [
        ("T", "no noise, N = 2M: L(T)", "T (training samples)", "T_power"),
        ("N", "no noise, T = 4M: L(N)", "N (features)", "N_power"),
        ("T_noise", f"label noise σ²={config.latent_noise:g}, N = 2M", "T (training samples)",
         "T_noise_ridgeless"),
        ("N_double_descent", f"no noise, T = M/8 = {M // 8}: double descent",
         "N (features)", None),
    ]
    for ax, (key, title, xlabel, fit_key) in zip(axes, panels, strict=True):
        sweep = sweeps[key]
        floor = 1e-13 * float(np.max(sweep.ridgeless().mean(axis=0)))
        tuned, _ = sweep.optimal_ridge()
        ax.loglog(sweep.sizes, _mean_loss(sweep.ridgeless(), floor), "o-", ms=4,
                  label="γ = 0 (min-norm)")
        ax.loglog(sweep.sizes, _mean_loss(tuned, floor), "s--", ms=3, label="optimal γ*")
        if fit_key is not None:
            fit = fits[fit_key]
            inside = np.geomspace(fit.n_min, fit.n_max, 20)
            ax.loglog(inside, fit.predict(inside), "k-", lw=1.2, alpha=0.7,
                      label=f"power-law fit: α={_interval_text(fit)}")
        if key == "T_noise":
            above = sweep.sizes[sweep.sizes > M + 1]
            ax.loglog(above, _ols_noise_loss(M, above, config.latent_noise), "k:", lw=1,
                      label="σ²M / 2(T−M−1) (least squares)")
        ax.axvline(M, color="0.5", ls=":", label="latent size M")
        if key == "N_double_descent":
            ax.axvline(M // 8, color="C3", ls=":", label="N = T")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test loss − noise floor")
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    fig.suptitle(f"Solvable model (Maloney, Roberts & Sully): M = {M}, λ_i = i^-(1+α), "
                 f"α = {config.latent_alpha:g}; losses at the floor {1e-13:g}×max are exactly 0 "
                 "up to round-off", fontsize=10)
    fig.savefig(path, dpi=90)


# ---------------------------------------------------------------------- tables


def _write_points(results: list[_SourceResult], path: Path) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["source", "regime", "fixed", "size", "mean_excess", "sem_excess", "seeds"])
        for res in results:
            for regime, rows in res.rows.items():
                for size in sorted({r.size for r in rows}):
                    values = np.array([r.excess for r in rows if r.size == size])
                    out.writerow([res.source.name, regime, rows[0].fixed, size,
                                  f"{values.mean():.6g}",
                                  f"{values.std(ddof=1) / np.sqrt(values.size):.3g}",
                                  values.size])


def _write_solvable(sweeps: dict[str, SolvableSweep], path: Path) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["sweep", "N", "T", "mean_loss_ridgeless", "mean_loss_optimal_ridge",
                      "optimal_ridge_over_NT", "seeds"])
        for sweep in sweeps.values():
            tuned, ridge = sweep.optimal_ridge()
            for j in range(sweep.sizes.size):
                out.writerow([sweep.name, sweep.n_features[j], sweep.n_train[j],
                              f"{sweep.ridgeless()[:, j].mean():.6g}",
                              f"{tuned[:, j].mean():.6g}", f"{ridge[j]:.3g}",
                              sweep.losses.shape[0]])


def _markdown(results: list[_SourceResult], config: ReportConfig, sampled: list,
              solvable_fits: dict[str, PowerLawFit], solvable_facts: dict[str, float],
              command: str, seconds: float, work: str) -> str:
    """The summary, section by section; every statement about a result is computed here."""
    sections = [
        _md_header(results, config, command, seconds, work),
        _md_regimes(results),
        _md_duality(results, config),
        _md_replica(results, config),
        _md_sampled(sampled, config),
        _md_solvable(solvable_fits, solvable_facts, config),
        _md_caveats(results, config),
        ["Tables: `points.csv` (per-point means over seeds), `solvable.csv`, `fits.json`."],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _md_header(results: list[_SourceResult], config: ReportConfig, command: str,
               seconds: float, work: str) -> list[str]:
    return [
        "# Random-feature models and the solvable model: scaling regimes",
        "",
        f"Produced by `{command}` in {seconds / 60:.1f} min ({work}). Every number below is "
        "measured by that run; intervals are 95 % bootstraps over seeds within each size "
        "(`scaling.fit_power_law`).",
        "",
        "Setup (Bahri et al. 2.3, supplement D): a pool of S random-ReLU features "
        f"(S = {results[0].source.n_features}, one hidden layer of 256 before it, zero biases, "
        "weights N(0, 1/fan_in)); teacher ω ~ N(0, 1/S); student = a Gaussian projection onto "
        "P features, minimum-norm least squares. Losses are exact teacher averages from the "
        "second-moment spectrum (eqs. 4, S4/S5); the population of a hypercube source is "
        f"{config.sources[0].n_pool} inputs (the digits: all 1797 images), which training "
        f"sets are drawn from with replacement. {len(config.seeds)} seeds (each: its own "
        "inputs, network, projection and training sets).",
        "",
        "![four regimes](regimes.png)",
    ]


def _md_regimes(results: list[_SourceResult]) -> list[str]:
    lines = ["## The four regimes", "",
             "| source | regime | fitted range | α [95 % interval] | expected |",
             "| --- | --- | --- | --- | --- |"]
    for res in results:
        for regime, fit in res.fits.items():
            expected = "1" if regime.startswith("variance") else f"α_K = {res.spectrum.alpha_K:.2f}"
            lines.append(f"| {_source_label(res.source)} | {regime} | {fit.n_min:g}–{fit.n_max:g} "
                         f"| {_interval_text(fit, 3)} | {expected} |")
    return [*lines, "", "Regimes: " + "; ".join(f"`{k}` = {v}" for k, v in REGIMES.items()) + "."]


def _relu(results: list[_SourceResult]) -> list[_SourceResult]:
    """The random-ReLU sources (the Gaussian power-law sources are controls)."""
    return [r for r in results if r.source.kind != "power_law"]


def _md_duality(results: list[_SourceResult], config: ReportConfig) -> list[str]:
    lo, hi = config.resolution_window
    lines = ["## Duality α_D ≈ α_P ≈ α_K (Bahri figure 4)", "", "![duality](duality.png)", "",
             f"All three are fitted over the same range, D, P and the spectral index i in "
             f"[{lo}, {hi}].", "",
             "| source | α_K | α_D | α_P | α_D, α_P intervals overlap | α_D − α_K | α_P − α_K |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for res in results:
        d = res.duality
        lines.append(f"| {_source_label(res.source)} | {_interval_text(res.spectrum)} | "
                     f"{_interval_text(res.fits['resolution_D'])} | "
                     f"{_interval_text(res.fits['resolution_P'])} | "
                     f"{'yes' if d.consistent else '**no**'} | {d.alpha_D - d.alpha_K:+.2f} | "
                     f"{d.alpha_P - d.alpha_K:+.2f} |")
    relu = _relu(results)
    if relu:
        lines += ["", f"On the random-ReLU features the α_D and α_P intervals overlap for "
                  f"{sum(r.duality.consistent for r in relu)} of {len(relu)} sources; the largest "
                  f"|α_D − α_P| is {_largest(relu, 'alpha_D', 'alpha_P'):.2f} and the largest "
                  f"|α_D − α_K| is {_largest(relu, 'alpha_D', 'alpha_K'):.2f}."]
    return lines


def _largest(results: list[_SourceResult], a: str, b: str) -> float:
    return max(abs(getattr(r.duality, a) - getattr(r.duality, b)) for r in results)


def _replica_ratios(res: _SourceResult, regime: str, sizes: Sequence[int]) -> np.ndarray:
    """Simulated loss / replica loss (eq. S12) at each size, simulated averaged over seeds."""
    return np.array([np.mean([r.loss for r in res.rows[regime] if r.size == n])
                     / replica_loss(res.eigenvalues, int(n)) for n in sizes])


def _md_replica(results: list[_SourceResult], config: ReportConfig) -> list[str]:
    sizes = config.resolution_sizes
    lines = ["### Replica curve (eq. S12) against the simulated L(D) and L(P)", "",
             "Ratio simulated / replica (mean spectrum over seeds, w̄_i² = 1/S; for L(P) the "
             "size is P):", "",
             "| source | " + " | ".join(f"{n}" for n in sizes) + " |",
             "| --- | " + " | ".join("---" for _ in sizes) + " |"]
    ratios = {(regime, i): _replica_ratios(res, regime, sizes)
              for regime in ("resolution_D", "resolution_P") for i, res in enumerate(results)}
    for (regime, i), values in ratios.items():
        lines.append(f"| {_source_label(results[i].source)}, L({regime[-1]}) | "
                     + " | ".join(f"{v:.2f}" for v in values) + " |")
    lines.append("")
    for regime in ("resolution_D", "resolution_P"):
        for kind, label in (("gaussian", "Gaussian sources"), ("relu", "random-ReLU sources")):
            values = [ratios[regime, i][1:] for i, res in enumerate(results)
                      if (res.source.kind == "power_law") == (kind == "gaussian")]
            if values:
                v = np.concatenate(values)
                lines.append(f"* L({regime[-1]}), {label}, beyond the smallest size: "
                             f"simulated / replica from {v.min():.2f} to {v.max():.2f}.")
    return lines


def _md_sampled(sampled: list, config: ReportConfig) -> list[str]:
    if not sampled:
        return ["### Exact loss against fresh samples", "",
                "Not measured in this run (the first regime source is not a hypercube)."]
    source = _source_label(config.sources[config.regime_sources[0]])
    ratios = [s / e for _, e, s in sampled]
    return ["### Exact loss against fresh samples", "",
            f"L(D) at P → ∞ for {source}: the exact teacher average on the population against "
            "one-teacher losses measured on 4096 fresh inputs from the manifold (200 teachers "
            "per seed), both averaged over seeds.", "",
            "| D | exact | fresh samples | ratio |", "| --- | --- | --- | --- |",
            *[f"| {n} | {e:.4g} | {s:.4g} | {s / e:.3f} |" for n, e, s in sampled], "",
            f"Fresh-sample / exact ratios: {min(ratios):.3f}–{max(ratios):.3f}."]


def _md_solvable(fits: dict[str, PowerLawFit], facts: dict[str, float],
                 config: ReportConfig) -> list[str]:
    M = config.n_latent
    alpha = f"α = {config.latent_alpha:g}"
    theory = facts["theory_noise_alpha"]
    expected = {"T_power": alpha, "N_power": alpha,
                "T_noise_ridgeless": f"{theory:.3f} (fit of σ²M/2(T−M−1) over the same T); "
                                     "→ 1 as T/M → ∞",
                "T_noise_optimal": f"≈ {theory:.3f} (γ* → 0 as T/M grows)"}
    names = {"T_power": "α_T, T ≪ M (N = 2M, γ = 0)", "N_power": "α_N, N ≪ M (T = 4M, γ = 0)",
             "T_noise_ridgeless": "exponent of L(T), T > M with noise, γ = 0",
             "T_noise_optimal": "exponent of L(T), T > M with noise, γ = γ*"}
    lo, hi = facts["noise_over_theory"]
    monotone = "decreases monotonically" if facts["tuned_monotone"] else "is NOT monotone"
    return [
        "## Solvable model (Maloney, Roberts & Sully)", "", "![solvable](solvable.png)", "",
        f"Latent x ∈ R^M, M = {M}, Gaussian with λ_i = i^-(1+α), α = {config.latent_alpha:g}; "
        "teacher w ~ N(0, 1/M); N Gaussian random features φ = U x; T samples; ridge γ "
        f"(γ = 0 and the oracle-optimal γ* from a grid of 27 values); "
        f"{len(config.solvable_seeds)} seeds. Losses are the excess over the label-noise floor.",
        "", "| quantity | α [95 % interval] | expected |", "| --- | --- | --- |",
        *[f"| {names[key]} over {fit.n_min:g}–{fit.n_max:g} | {_interval_text(fit, 3)} | "
          f"{expected[key]} |" for key, fit in fits.items()],
        "",
        f"* Breakdown without noise (N = 2M): L(T = M/2) = {facts['L_half_M']:.3g}, "
        f"L(T = M − 4) = {facts['L_M_minus']:.3g}, L(T = M) = {facts['L_M']:.2g}, "
        f"max |L(T > M)| = {facts['L_above_M']:.2g}.",
        f"* With noise and γ = 0, the simulated L(T) for T in [4M, 32M] is {lo:.3f}–{hi:.3f} × "
        "the least-squares formula σ²M/2(T−M−1).",
        f"* Double descent (T = {M // 8}, no label noise; the unlearnable tail acts as noise): "
        f"γ = 0 gives L = {facts['peak']:.3g} at N = T, {facts['peak_ratio']:.1f}× the loss at "
        f"N = T/2; at γ* the curve {monotone} (largest relative rise "
        f"{facts['tuned_max_rise']:.3f}).",
    ]


def _md_caveats(results: list[_SourceResult], config: ReportConfig) -> list[str]:
    """How to read the numbers: the method's known limits, with this run's sizes."""
    relu = _relu(results)
    variance = [fit.alpha for res in results for regime, fit in res.fits.items()
                if regime.startswith("variance")]
    lines = ["## Caveats (read with the numbers)", ""]
    if relu:
        lines.append("* α_K is fitted to the spectrum over the same index range as α_D and α_P; "
                     "a spectrum that is not an exact power law makes α_K depend on that range. "
                     f"Here |α_D − α_K| ≤ {_largest(relu, 'alpha_D', 'alpha_K'):.2f} and "
                     f"|α_P − α_K| ≤ {_largest(relu, 'alpha_P', 'alpha_K'):.2f} on the "
                     "random-ReLU sources.")
    lines += [
        f"* The pool is finite (S = {results[0].source.n_features}): the loss is a tail sum of "
        "the spectrum cut at S, which steepens L(D) and L(P) for slowly decaying spectra; the "
        "Gaussian power-law sources, whose spectra are exact, measure this bias directly.",
        "* For ordinary least squares the variance-limited excess loss is ∝ P/(D − P − 1), "
        "steeper than 1/D while D is a few P"
        + (f"; the variance-limited exponents measured here are {min(variance):.2f}–"
           f"{max(variance):.2f}." if variance else "."),
        "* The digits source is the 1797 scikit-learn images (8×8, pooled), not MNIST; "
        "training sets are drawn from them with replacement, so the formulas are exact for "
        "that finite population.",
        "* The optimal ridge γ* is an oracle: the grid value with the lowest seed-averaged "
        "test loss.",
    ]
    return lines


# ------------------------------------------------------------------------- main


def run_report(out_dir: str | Path = "reports/regimes", *, config: ReportConfig | None = None,
               cache_dir: str | Path | None = None, progress: bool | None = None,
               command: str = "python -m scaling.random_features", client: Any = None) -> Path:
    """Run every sweep (resuming from ``cache_dir``), fit, plot and write the summary.

    Returns the path of the markdown summary. With a Dask ``client`` the sweep
    points are computed on that cluster and this process caches them as they finish
    (:func:`scaling.random_features.sweep_regime`, :func:`solvable_sweep`).

    Examples
    --------
    The smoke configuration (about 15 s on two cores; the default takes 5-10 min):

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> summary = run_report(folder / "report", config=default_config(quick=True),
    ...                      cache_dir=folder / "cache", progress=False)
    >>> sorted(p.name for p in summary.parent.glob("*.png"))
    ['duality.png', 'regimes.png', 'solvable.png']
    """
    config = config or default_config()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cache_dir) if cache_dir is not None else _cache_dir()
    cache = SweepCache(cache_root / "random_features.csv")
    solvable_cache = SweepCache(cache_root / "solvable.csv", SolvableRow)
    _log(f"caching finished points in {cache_root}")
    start = time.perf_counter()

    results, sampled = [], []
    for k, source in enumerate(config.sources):
        _log(f"random features {k + 1}/{len(config.sources)}: {source.name}")
        results.append(_run_source(source, config, cache, k in config.regime_sources,
                                   progress, client))
        if k == config.regime_sources[0] and source.kind == "hypercube":
            _log(f"fresh-sample check on {source.name}")   # while its populations are cached
            sampled = _sampled_check(results[-1], config, config.resolution_sizes[1::4])

    _log("solvable model")
    sweeps = _solvable_sweeps(config, solvable_cache, progress, client)
    M = config.n_latent
    noise_sweep = sweeps["T_noise"]
    solvable_fits = {
        "T_power": _fit_sweep(sweeps["T"], sweeps["T"].ridgeless(), (4, M / 8)),
        "N_power": _fit_sweep(sweeps["N"], sweeps["N"].ridgeless(), (4, M / 8)),
        "T_noise_ridgeless": _fit_sweep(noise_sweep, noise_sweep.ridgeless(), (4 * M, 32 * M)),
        "T_noise_optimal": _fit_sweep(noise_sweep, noise_sweep.optimal_ridge()[0],
                                      (4 * M, 32 * M)),
    }
    facts = _solvable_facts(sweeps, config)

    _log("figures and summary")
    shown = [results[i] for i in config.regime_sources]
    _figure_regimes(shown, config, out / "regimes.png")
    _figure_duality(results, config, out / "duality.png")
    _figure_solvable(sweeps, solvable_fits, config, out / "solvable.png")
    _write_points(results, out / "points.csv")
    _write_solvable(sweeps, out / "solvable.csv")
    fits_json = {
        "random_features": {res.source.name: {
            **{regime: fit.to_dict() for regime, fit in res.fits.items()},
            "alpha_K": res.spectrum.alpha_K, "alpha_K_interval": res.spectrum.interval,
            "alpha_D_alpha_P_intervals_overlap": res.duality.consistent,
        } for res in results},
        "solvable": {key: fit.to_dict() for key, fit in solvable_fits.items()},
        "solvable_facts": facts,
    }
    (out / "fits.json").write_text(json.dumps(fits_json, indent=1))
    seconds = time.perf_counter() - start
    summary = out / "README.md"
    work = (f"{cache.n_added} random-feature points and {solvable_cache.n_added} "
            "solvable-model (point, ridge) rows computed, the rest read from the cache")
    summary.write_text(_markdown(results, config, sampled, solvable_fits, facts, command,
                                 seconds, work))
    _log(f"done in {seconds / 60:.1f} min: {summary}")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``idest regimes`` and ``python -m scaling.random_features``
    (``parser``: an :class:`idest.cli.Parser`, as both commands create)."""
    parser.add_argument("-o", "--out", default="reports/regimes", metavar="PATH",
                        help="output folder for the figures, tables and README.md")
    parser.add_argument("--cache-dir", default=None,
                        help=f"finished points, kept for resuming (default {_cache_dir()})")
    parser.add_argument("--quick", action="store_true",
                        help="tiny sweeps (a smoke run of ~20 s); the figures are not meaningful")
    parser.add_quiet()
    parser.add_cluster()  # compute the sweep points on a Dask cluster


def run(args: argparse.Namespace, command: str) -> int:
    """Run the report from parsed arguments."""
    from idest.cli import cluster_client

    config = default_config(quick=args.quick)
    with cluster_client(args) as client:
        run_report(args.out, config=config, cache_dir=args.cache_dir,
                   progress=False if args.quiet else None,
                   command=command + (" --quick" if args.quick else ""), client=client)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m scaling.random_features``."""
    from idest.cli import Parser

    parser = Parser(prog="python -m scaling.random_features",
                    description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv), "python -m scaling.random_features")
