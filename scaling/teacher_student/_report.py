"""The teacher/student report: L(N) fits per k, 4/α against ID and k, N_max, ID against N.

Reproduces the analysis of Sharma & Kaplan figures 2, 3, 5 and 6 from a sweep CSV
(:mod:`scaling.teacher_student`): one power-law fit per number of features k (the circle window of
A.1, the lower envelope when several depths share a size, a bootstrap over seeds), the
predicted dimension 4/α (2p/α for |Δ|^p), the measured ID of the students' final hidden
layer, and the regression of 4/α on the measured ID and on k.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scaling.fit import (
    FIGURE2_THRESHOLD,
    DimensionComparison,
    DimensionPrediction,
    PowerLawFit,
    ThresholdCrossing,
    compare_alpha_to_dimension,
    fit_power_law,
    lower_envelope,
    n_max_at_threshold,
    plot_dimension_comparison,
    predicted_dimension,
)
from scaling.teacher_student._sweep import parse_curve
from scaling.teacher_student._train import (
    CONVERGENCE_TOLERANCE,
    CONVERGENCE_WINDOW,
    PAPER_RANDOM,
    SCHEDULES,
    convergence,
    convergence_start,
    window_of_all_steps,
)

#: The issue's target for 4/α regressed on the measured ID across k.
TARGET_SLOPE = (0.7, 1.4)
TARGET_CORRELATION = 0.9
#: Converged sizes needed to fit a k (those of :func:`scaling.fit.fit_power_law`).
MIN_SIZES = 3


@dataclass(frozen=True)
class FeatureSummary:
    """The fit and the measured dimensions for one number of features k.

    ``id_twonn``/``id_mle`` are the mean final-layer IDs of the runs inside the fitted
    window (on the lower envelope when several depths were trained), ``id_twonn_std``
    their standard deviation, ``n_no_id`` the runs among them without an ID (a final
    layer with every unit dead, or a sweep with ``n_id=0``), left out of those means (NaN
    when no run has one). ``prediction`` (4/α) is None when the loss did not
    decrease with N (α <= 0). Only converged runs are fitted (:func:`row_convergence`):
    ``n_fitted`` of the ``n_runs``; ``unconverged_widths`` lists the widths with a run
    that had not converged, ``n_unrecorded`` counts runs without a loss curve (CSVs
    written before curves were recorded), which are fitted and reported as such.
    """

    features: int
    fit: PowerLawFit
    prediction: DimensionPrediction | None
    id_twonn: float
    id_twonn_std: float
    id_mle: float
    n_max: ThresholdCrossing | None
    n_runs: int
    largest_n: float
    n_fitted: int = 0
    unconverged_widths: tuple[int, ...] = ()
    n_unrecorded: int = 0
    n_no_id: int = 0

    @property
    def regressed(self) -> bool:
        """Whether this k enters the regressions: 4/α is a value
        (:attr:`measured_exponent`) and the ID was measured."""
        return self.measured_exponent and math.isfinite(self.id_twonn)

    @property
    def measured_exponent(self) -> bool:
        """Whether 4/α is a value: α > 0 and its interval does not reach 0 (a fit without
        an interval counts). Only such k enter the regressions: a 4/α whose interval is
        open above is a bound, not a value to regress."""
        return self.prediction is not None and not math.isinf(self.prediction.interval[1])


@dataclass(frozen=True)
class TeacherStudentSummary:
    """Every k's summary and the regressions of 4/α on the measured ID and on k.

    ``not_fitted`` holds (k, reason) for each k with fewer than 3 converged sizes.
    """

    per_feature: tuple[FeatureSummary, ...]
    versus_id: DimensionComparison | None
    versus_features: DimensionComparison | None
    threshold: float
    not_fitted: tuple[tuple[int, str], ...] = ()

    @property
    def unjudged(self) -> int:
        """Runs of the regressed k whose convergence cannot be judged (no loss curve)."""
        return sum(s.n_unrecorded for s in self.per_feature if s.regressed)

    @property
    def target_reached(self) -> bool:
        """Slope of 4/α on ID within 0.7–1.4 and correlation above 0.9, every regressed
        k's runs judged by the convergence rule."""
        low, high = TARGET_SLOPE
        v = self.versus_id
        return (v is not None and low <= v.slope <= high and v.correlation > TARGET_CORRELATION
                and not self.unjudged)


def schedule_origin(name: str, shortened: bool) -> str:
    """How the schedule ``name`` relates to the paper's Table 1, with its phases.

    Examples
    --------
    >>> from scaling.teacher_student._report import schedule_origin
    >>> for part in schedule_origin("paper-random", False).split("; "):
    ...     print(part)
    the paper schedule (Table 1): 200,000 steps at batch 200, lr 0.01
    20,000 at batch 1,000, lr 0.01
    20,000 at batch 4,000, lr 0.001
    """
    schedule = SCHEDULES.get(name)
    cut = "SHORTENED for CPU, not the paper schedule"
    if schedule is None:
        return cut if shortened else "phases not known"
    phases = "; ".join(f"{p.steps:,}{' steps' if i == 0 else ''} at batch {p.batch_size:,}, "
                       f"lr {p.lr:g}" for i, p in enumerate(schedule.phases))
    table1 = PAPER_RANDOM.phases
    if schedule.shortened:
        origin = cut
    elif schedule.phases == table1:
        origin = "the paper schedule (Table 1)"
    elif schedule.phases[:len(table1)] == table1:
        origin = (f"LONGER than the paper: Table 1, then {schedule.steps - PAPER_RANDOM.steps:,}"
                  f" more steps")
    elif [(p.steps, p.batch_size) for p in schedule.phases] == \
            [(p.steps, p.batch_size) for p in table1]:
        origin = ("NOT the paper's learning rates: Table 1's steps and batch sizes with other "
                  "learning rates (a change of the recipe)")
    else:
        origin = "not the paper schedule"
    return f"{origin}: {phases}"


def _column(rows: Sequence[dict[str, str]], name: str, kind=float) -> np.ndarray:
    return np.array([kind(r[name]) for r in rows])


def row_convergence(row: dict[str, str]) -> tuple[bool | None, float]:
    """(converged, improvement over the convergence window) of a sweep row, by the rule of
    :func:`scaling.teacher_student.convergence` with the window of the row's schedule
    (:func:`scaling.teacher_student.convergence_start`; the last 10 % of the steps for a
    schedule not in ``SCHEDULES``); (None, nan) when the row has no curve, or a curve that
    does not record its window's first step (written under the earlier rule, whose window
    could straddle a change of learning rate).

    Examples
    --------
    >>> from scaling.teacher_student._report import row_convergence
    >>> row_convergence({"loss_curve": "0:1.0 90:0.2 100:0.196"})
    (True, 0.02)
    >>> row_convergence({"loss_curve": "0:1.0 360:0.2 400:0.196", "schedule": "smoke"})
    (True, 0.02)
    >>> row_convergence({"loss_curve": "0:1.0 216000:0.2 240000:0.1",
    ...                  "schedule": "paper-random"})
    (None, nan)
    >>> row_convergence({"loss": "0.1"})
    (None, nan)
    """
    cell = row.get("loss_curve") or ""
    if not cell:
        return None, math.nan
    steps, losses = parse_curve(cell)
    schedule = SCHEDULES.get(row.get("schedule", ""))
    start = window_of_all_steps(steps[-1]) if schedule is None else convergence_start(schedule)
    if start not in steps:
        return None, math.nan
    return convergence(steps, losses, start)


def summarize_feature(
    rows: Sequence[dict[str, str]], *, window="circle", n_bootstrap: int = 1000,
    threshold: float = FIGURE2_THRESHOLD,
) -> FeatureSummary:
    """Fit L(N) on the converged runs of one k and average their ID (Sharma & Kaplan 3.1, A.1).

    Runs whose held-out loss still fell by 5 % or more over their last 10 % of steps are
    left out of the fit (:func:`row_convergence`); ValueError if fewer than 3 sizes remain.

    Examples
    --------
    >>> rows = [{"features": "3", "n_params": str(n), "loss": str(n ** -0.8), "seed": "0",
    ...          "depth": "2", "id_twonn": "2.9", "id_mle": "3.1", "power": "2.0"}
    ...         for n in (1000, 2000, 4000, 8000)]
    >>> s = summarize_feature(rows, window="all")
    >>> round(s.prediction.dimension, 3), s.id_twonn
    (5.0, 2.9)
    """
    status = [row_convergence(r)[0] for r in rows]
    all_rows, rows = rows, [r for r, ok in zip(rows, status, strict=True) if ok is not False]
    if len({r["n_params"] for r in rows}) < MIN_SIZES:
        raise ValueError(f"summarize_feature: k={all_rows[0]['features']} has "
                         f"{len({r['n_params'] for r in rows})} converged size(s); the power-law "
                         f"fit needs at least {MIN_SIZES}. Train longer.")
    N, L = _column(rows, "n_params"), _column(rows, "loss")
    seeds, depths = _column(rows, "seed", int), _column(rows, "depth", int)
    groups = depths if len(set(depths)) > 1 else None
    fit = fit_power_law(N, L, window=window, seeds=seeds, groups=groups,
                        n_bootstrap=n_bootstrap, random_state=0)
    on_envelope = lower_envelope(N, L, groups=groups) if groups is not None else np.ones(N.size,
                                                                                         bool)
    inside = on_envelope & (N >= fit.n_min) & (N <= fit.n_max)
    ids, ids_mle = _column(rows, "id_twonn")[inside], _column(rows, "id_mle")[inside]
    measured = np.isfinite(ids)
    try:
        n_max = n_max_at_threshold(N[on_envelope], L[on_envelope], threshold, fit=fit)
    except ValueError:  # the fitted curve never reaches the threshold
        n_max = None
    return FeatureSummary(
        features=int(rows[0]["features"]), fit=fit,
        prediction=(predicted_dimension(fit, loss_exponent=float(rows[0]["power"]))
                    if fit.alpha > 0 else None),
        id_twonn=_mean(ids[measured]), id_twonn_std=_mean(ids[measured], np.std),
        id_mle=_mean(ids_mle[np.isfinite(ids_mle)]), n_max=n_max,
        n_runs=len(all_rows), largest_n=float(N.max()), n_fitted=len(rows),
        unconverged_widths=tuple(sorted({int(r["width"]) for r, ok in
                                         zip(all_rows, status, strict=True) if ok is False})),
        n_unrecorded=sum(ok is None for ok in status), n_no_id=int((~measured).sum()))


def _mean(values: np.ndarray, statistic=np.mean) -> float:
    """``statistic`` of ``values``, NaN (without a warning) when there are none."""
    return float(statistic(values)) if values.size else math.nan


def loss_threshold(losses: Sequence[float]) -> float:
    """The loss level for N_max (figure 2): the paper's 6e-3 when the measured losses
    straddle it, else their geometric mean, so that N_max is read off inside the data.

    Examples
    --------
    >>> from scaling.teacher_student._report import loss_threshold
    >>> loss_threshold([1e-2, 1e-3]), round(loss_threshold([1e-6, 1e-4]), 12)
    (0.006, 1e-05)
    """
    losses = np.asarray(losses, dtype=float)
    if losses.min() <= FIGURE2_THRESHOLD <= losses.max():
        return FIGURE2_THRESHOLD
    return float(np.exp(np.log(losses).mean()))


def summarize(
    rows: Sequence[dict[str, str]], *, window="circle", n_bootstrap: int = 1000,
) -> TeacherStudentSummary:
    """Summaries per k and the 4/α regressions (figure 6) for the rows of a sweep CSV.

    N_max is read at :func:`loss_threshold` of all the losses. Each k is fitted on its
    converged runs only; a k with fewer than 3 converged sizes is listed in ``not_fitted``.
    The regressions take the k whose α interval lies above 0 and whose ID was measured
    (:attr:`FeatureSummary.regressed`).

    Examples
    --------
    The committed CPU reproduction, run from the repository root:

    >>> from scaling.teacher_student import read_results
    >>> rows = read_results("reports/teacher_student/results.csv")
    >>> [s.features for s in summarize(rows, n_bootstrap=20).per_feature]
    [2, 3, 4, 5, 6, 7, 8]
    """
    threshold = loss_threshold(_column(rows, "loss"))
    by_k: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        by_k.setdefault(int(row["features"]), []).append(row)
    if len(by_k) < 2:
        raise ValueError(f"summarize: expected runs for at least 2 values of k, got "
                         f"{sorted(by_k)}; sweep more features.")
    fitted, not_fitted = [], []
    for k in sorted(by_k):
        sizes = {r["n_params"] for r in by_k[k]}
        kept = {r["n_params"] for r in by_k[k] if row_convergence(r)[0] is not False}
        if len(kept) < MIN_SIZES:
            not_fitted.append((k, f"{len(kept)} of {len(sizes)} sizes converged, the fit "
                                  f"needs {MIN_SIZES}"))
            continue
        fitted.append(summarize_feature(by_k[k], window=window, n_bootstrap=n_bootstrap,
                                        threshold=threshold))
    per = tuple(fitted)
    p = float(rows[0]["power"])
    usable = [s for s in per if s.regressed]
    if len(usable) < 3:  # a regression with a slope interval needs 3 points
        return TeacherStudentSummary(per, None, None, threshold, tuple(not_fitted))
    alphas = [s.fit for s in usable]
    return TeacherStudentSummary(
        per, compare_alpha_to_dimension(alphas, [s.id_twonn for s in usable], loss_exponent=p),
        compare_alpha_to_dimension(alphas, [s.features for s in usable], loss_exponent=p),
        threshold, tuple(not_fitted))


# ----------------------------------------------------------------------------- figures


def _rows_of(rows: Sequence[dict[str, str]], features: int) -> list[dict[str, str]]:
    return [r for r in rows if int(r["features"]) == features]


def _save(fig, out_dir: Path, name: str) -> str:
    """Save the :class:`matplotlib.figure.Figure` ``fig`` as ``out_dir/name`` (PNG)."""
    fig.savefig(out_dir / name, dpi=110, bbox_inches="tight")
    return name


def _legend(ax, loc: str = "upper left", anchor: tuple[float, float] = (1.01, 1)) -> None:
    """A frameless legend outside the axes, if anything is labelled (a report in which no k
    was fitted has nothing to name)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc=loc, bbox_to_anchor=anchor, frameon=False)


def _curve_figure(rows: Sequence[dict[str, str]]):
    """Held-out loss against steps (linear, so that the last phases are visible), one panel
    per k, one line per student: solid when converged by the rule, dashed when not, dotted
    when it cannot be judged; the schedule's phase starts as vertical lines and its
    convergence window shaded. None when no row has a curve."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    ks = sorted({int(r["features"]) for r in rows if r.get("loss_curve")})
    if not ks:
        return None
    widths = sorted({int(r["width"]) for r in rows})
    colors = dict(zip(widths, colormaps["plasma"](np.linspace(0, 0.85, len(widths))),
                      strict=True))
    styles = {True: "-", False: "--", None: ":"}
    schedule = SCHEDULES.get(rows[0].get("schedule", ""))
    n_cols = min(4, len(ks))
    n_rows = math.ceil(len(ks) / n_cols)
    fig = Figure(figsize=(3.6 * n_cols, 3.0 * n_rows))
    axes = fig.subplots(n_rows, n_cols, squeeze=False, sharey=True)
    for ax, k in zip(axes.flat, ks, strict=False):
        for r in _rows_of(rows, k):
            steps, losses = parse_curve(r["loss_curve"])
            ax.plot(np.asarray(steps) / 1000, losses, color=colors[int(r["width"])], lw=0.9,
                    ls=styles[row_convergence(r)[0]],
                    label=f"n={r['width']}" if r["seed"] == rows[0]["seed"] else None)
        if schedule is not None:
            for start in schedule.phase_starts:
                ax.axvline(start / 1000, color="0.6", lw=0.6)
            ax.axvspan(convergence_start(schedule) / 1000, schedule.steps / 1000,
                       color="0.85", zorder=0)
        ax.set(yscale="log", title=f"k={k}", xlabel="step (thousands)")
    for ax in axes.flat[len(ks):]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("held-out loss")
    axes[0, 0].legend(fontsize=6, ncol=2)
    fig.suptitle(f"Held-out loss against steps (grey lines: phase starts; shaded: the "
                 f"convergence window)\nsolid: fell by < {CONVERGENCE_TOLERANCE:.0%} over "
                 f"the window (converged); dashed: did not; dotted: cannot be judged",
                 fontsize=8)
    fig.tight_layout()
    return fig


def _figures(rows: Sequence[dict[str, str]], summary: TeacherStudentSummary,
             out_dir: Path) -> dict[str, str]:
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    per = summary.per_feature
    ks = sorted({int(r["features"]) for r in rows})
    colors = dict(zip(ks, colormaps["viridis"](np.linspace(0, 0.95, len(ks))), strict=True))
    names = {}

    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    for k in ks:  # every run, fitted or not
        sub = _rows_of(rows, k)
        ax.scatter(_column(sub, "n_params"), _column(sub, "loss"), s=10, color=colors[k],
                   alpha=0.6)
    for s in per:
        grid = np.geomspace(s.fit.n_min, s.fit.n_max, 20)
        low, high = s.fit.interval
        ax.plot(grid, s.fit.predict(grid), color=colors[s.features],
                label=f"k={s.features}: α={s.fit.alpha:.2f} [{low:.2f}, {high:.2f}]")
    ax.set(xscale="log", yscale="log", xlabel="parameters N", ylabel="test loss",
           title="L(N) per number of features k (fits over the circle window)")
    _legend(ax)
    names["loss"] = _save(fig, out_dir, "fig5_loss_vs_n.png")

    predicted = [s for s in per if s.prediction is not None]  # regressed or not (▲)
    fig = Figure(figsize=(12, 4.8))
    axes = fig.subplots(1, 2, sharey=True)  # the same quantity, 4/α, on both
    labels = [f"k={s.features}" for s in predicted]
    for ax, x, comp, label in (
        (axes[0], [s.id_twonn for s in predicted], summary.versus_id, "measured ID (TwoNN)"),
        (axes[1], [s.features for s in predicted], summary.versus_features,
         "number of features k"),
    ):
        plot_dimension_comparison(ax, [s.prediction for s in predicted], x, comp,
                                  xlabel=label, labels=labels)
        _legend(ax, "upper center", (0.5, -0.14))
    fig.suptitle("Predicted dimension from the scaling exponent (figure 6); ▲: interval "
                 "open above")
    names["alpha"] = _save(fig, out_dir, "fig6_4alpha_vs_dimension.png")

    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    for s in per:
        if s.n_max is not None:
            ax.scatter(s.id_twonn, s.n_max.n_max, color="C0",
                       marker="o" if not s.n_max.extrapolated else "^")
            ax.annotate(f"k={s.features}", (s.id_twonn, s.n_max.n_max), fontsize=7)
    ax.set(yscale="log", xlabel="measured ID (TwoNN)",
           ylabel=f"N where L = {summary.threshold:.3g} (triangles: extrapolated)",
           title="N_max against d (figure 2)")
    names["nmax"] = _save(fig, out_dir, "fig2_nmax_vs_id.png")

    curves = _curve_figure(rows)
    if curves is not None:
        names["curves"] = _save(curves, out_dir, "fig_loss_vs_steps.png")

    fig = Figure(figsize=(7.5, 4.5))
    ax = fig.subplots()
    for k in ks:  # the ID is measured whether or not L(N) was fitted
        sub = _rows_of(rows, k)
        n, ids = _column(sub, "n_params"), _column(sub, "id_twonn")
        sizes = np.unique(n)
        groups = [ids[n == size] for size in sizes]
        mean = np.array([g.mean() for g in groups])
        spread = np.array([[m - g.min(), g.max() - m] for g, m in zip(groups, mean, strict=True)])
        ax.errorbar(sizes, mean, yerr=spread.T, fmt="o-", ms=4, lw=1, capsize=2,
                    color=colors[k], label=f"k={k}")
    ax.set(xscale="log", xlabel="parameters N",
           ylabel="final-layer ID (TwoNN): mean, bars min–max over runs",
           title="ID of the students' final hidden layer against N (figure 3)")
    _legend(ax)
    names["id"] = _save(fig, out_dir, "fig3_id_vs_n.png")
    return names


# ---------------------------------------------------------------------------- markdown


def _interval(values: tuple[float, float], digits: int = 2) -> str:
    return "–".join("nan" if not math.isfinite(v) else f"{v:.{digits}f}" for v in values)


def _prediction(p: DimensionPrediction | None) -> str:
    """4/α and its interval; an interval of α that reaches 0 leaves 4/α open above.

    >>> from scaling.fit import DimensionPrediction
    >>> print(_prediction(DimensionPrediction(52.85, (21.04, float("inf")), 0.95, 0.076, 4.0)))
    52.85 (21.04–∞: α's interval reaches 0)
    """
    if p is None:
        return "— (α <= 0)"
    low, high = p.interval
    if math.isinf(high) and math.isfinite(low):
        return f"{p.dimension:.2f} ({low:.2f}–∞: α's interval reaches 0)"
    return f"{p.dimension:.2f} ({_interval(p.interval)})"


def _extrapolation(crossing: ThresholdCrossing, fit: PowerLawFit) -> str:
    """'' for an N_max read off the data, else how far the fitted power law was followed
    outside its window to reach it.

    >>> from scaling.fit import ThresholdCrossing, fit_power_law
    >>> fit = fit_power_law([1e3, 2e3, 4e3], [1e-2, 6e-3, 3.7e-3], window="all")
    >>> [_extrapolation(ThresholdCrossing(n, 1e-3, n != 2.5e3, "log-linear"), fit)
    ...  for n in (2.5e3, 4e5, 10.0)]
    ['', ' (extrap. 100x above the fit)', ' (extrap. 100x below the fit)']
    """
    if not crossing.extrapolated:
        return ""
    if crossing.n_max > fit.n_max:
        return f" (extrap. {crossing.n_max / fit.n_max:.3g}x above the fit)"
    if crossing.n_max < fit.n_min:
        return f" (extrap. {fit.n_min / crossing.n_max:.3g}x below the fit)"
    return " (extrap.)"


def _table_notes(summary: TeacherStudentSummary) -> list[str]:
    """Lines under the per-k table for what its cells do not say: α intervals that are not
    the bootstrap over runs, IDs averaged over fewer runs than were fitted."""
    notes = []
    for s in summary.per_feature:
        if not s.fit.interval_method.startswith("bootstrap"):
            notes.append(f"k = {s.features}: α's interval is not the bootstrap over runs "
                         f"({s.fit.interval_method}; a fitted size has a single converged run).")
        if s.n_no_id:
            notes.append(f"k = {s.features}: {s.n_no_id} fitted run(s) without an ID (every "
                         f"final-layer unit dead, or no ID measured) are left out of its ID.")
    return ["", *notes] if notes else []


def _comparison_line(name: str, c: DimensionComparison | None) -> str:
    if c is None:
        return (f"| 4/α against {name} | fewer than 3 values of k with α's interval above 0: "
                f"no regression |")
    return (f"| 4/α against {name} | {c.slope:.2f} ({_interval(c.interval)}) | "
            f"{c.intercept:.2f} | {c.slope_through_origin:.2f} | {c.correlation:.3f} | "
            f"{c.n_points} |")


def _convergence_lines(rows: Sequence[dict[str, str]],
                       summary: TeacherStudentSummary) -> list[str]:
    """The convergence section: the rule, and per k which sizes had not converged."""
    status = [row_convergence(r) for r in rows]
    counts = {value: sum(ok is value for ok, _ in status) for value in (True, False, None)}
    lines = ["", "## Convergence", "",
             f"Rule: a student has converged when its held-out loss fell by less than "
             f"{CONVERGENCE_TOLERANCE:.0%} over its last {CONVERGENCE_WINDOW:.0%} of steps, "
             f"a window shortened to the last half of the final phase where it would reach "
             f"into an earlier one (a change of learning rate or batch size moves the loss by "
             f"itself; `convergence_start`). Only converged students are fitted. Of "
             f"{len(rows)} runs, {counts[True]} converged and {counts[False]} did not"
             + (f"; {counts[None]} cannot be judged (no curve, or a curve recorded before the "
                f"window was kept inside the final phase, without its first step): fitted, "
                f"convergence unknown" if counts[None] else "") + "."]
    by_unit: dict[tuple[int, int, int], list[float]] = {}
    for r, (ok, improvement) in zip(rows, status, strict=True):
        if ok is False:
            key = (int(r["features"]), int(r["width"]), int(r["depth"]))
            by_unit.setdefault(key, []).append(improvement)
    if by_unit:
        lines += ["", "| k | width | runs not converged | improvement over the window "
                  "(per run) |", "|---|---|---|---|"]
    for (k, width, depth), gains in sorted(by_unit.items()):
        shape = f"{width}" if depth == 2 else f"{width} (depth {depth})"
        lines.append(f"| {k} | {shape} | {len(gains)} | "
                     f"{', '.join(f'{g:.1%}' for g in gains)} |")
    for k, reason in summary.not_fitted:
        lines.append(f"\nk = {k} is not fitted: {reason}.")
    return lines


def _live_unit_lines(rows: Sequence[dict[str, str]]) -> list[str]:
    """Live units of the final hidden layer per k and width (rows that recorded them)."""
    live: dict[tuple[int, int, int], list[float]] = {}
    for r in rows:
        if r.get("live_units", "") not in ("", "nan"):
            key = (int(r["features"]), int(r["depth"]), int(r["width"]))
            live.setdefault(key, []).append(float(r["live_units"]))
    if not live:
        return []
    widths = sorted({w for _, _, w in live})
    units = sorted({(k, d) for k, d, _ in live})
    lines = ["", "## Live units of the final hidden layer", "",
             "Units non-zero on at least one of the ID's inputs (the others are dead ReLUs: "
             "they count in N but add no capacity); mean over runs, min–max in brackets.", "",
             "| k | " + " | ".join(f"n = {w}" for w in widths) + " |",
             "|---|" + "---|" * len(widths)]
    for k, depth in units:
        cells = [f"{np.mean(v):.0f} ({min(v):.0f}–{max(v):.0f})" if (v := live.get((k, depth, w)))
                 else "—" for w in widths]
        label = f"{k}" if len({d for _, d in units}) == 1 else f"{k} (depth {depth})"
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def report_markdown(rows: Sequence[dict[str, str]], summary: TeacherStudentSummary, *,
                    figures: dict[str, str], title: str, command: str) -> str:
    """The markdown summary: configuration, the per-k table, the regressions, the verdict.

    Examples
    --------
    >>> from scaling.teacher_student import read_results
    >>> rows = read_results("reports/teacher_student/results.csv")
    >>> text = report_markdown(rows, summarize(rows, n_bootstrap=20), figures={},
    ...                        title="Teacher/student", command="python -m scaling.teacher_student")
    >>> text.splitlines()[0]
    '# Teacher/student'
    """
    first = rows[0]
    widths = sorted({int(r["width"]) for r in rows})
    depths = sorted({int(r["depth"]) for r in rows})
    seeds = sorted({int(r["seed"]) for r in rows})
    units = {(r["features"], r["finished_utc"], r["seconds"]):
             (float(r["seconds"]), float(r["cpu_seconds"])) for r in rows}
    wall, cpu = (sum(t) / 3600 for t in zip(*units.values(), strict=True))
    shortened = first["shortened"] == "True"
    threshold_origin = ("the paper's 6e-3" if summary.threshold == FIGURE2_THRESHOLD else
                        "the geometric mean of all losses: 6e-3 lies outside the measured range")
    lines = [
        f"# {title}", "",
        f"Produced by `{command}` from {len(rows)} runs (results.csv beside this file).", "",
        "## Configuration", "",
        f"* schedule: `{first['schedule']}` ({first['steps']} Adam steps, {first['samples']} "
        f"fresh samples per student) — {schedule_origin(first['schedule'], shortened)}",
        f"* loss: {first['loss_name']} (p = {first['power']}); teacher: "
        f"{re.sub(r' k=[0-9]+', '', first['teacher'])}, the inputs beyond k zeroed",
        f"* variant: {first['variant']} (authors = student sees all 20 inputs, "
        f"clean = only the k active ones)",
        f"* widths {widths}, hidden layers {depths}, seeds {seeds}; held-out loss on "
        f"{first['n_eval']} fresh inputs; ID (TwoNN, 10 % tail discarded; MLE k=20) of the "
        f"final hidden layer on {first['n_id']} fresh inputs",
        f"* time summed over the units (each trains its students together on one stream): "
        f"{cpu:.2f} CPU hours, {wall:.2f} wall hours of worker time on a shared machine", "",
        "## Per number of features", "",
        "| k | runs (converged / fitted) | fitted window N | α (95 %) | 4/α (95 %) "
        f"| ID TwoNN (± sd) | ID MLE | N at L = {summary.threshold:.3g} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary.per_feature:
        f = s.fit
        cut = "" if f.n_max >= s.largest_n else " (cut)"
        n_max = ("—" if s.n_max is None else
                 f"{s.n_max.n_max:.3g}{_extrapolation(s.n_max, s.fit)}")
        lines.append(
            f"| {s.features} | {s.n_runs} ({s.n_fitted} / {f.n_runs}) | "
            f"{f.n_min:.0f}–{f.n_max:.0f}{cut} | "
            f"{f.alpha:.3f} ({_interval(f.interval, 3)}) | "
            f"{_prediction(s.prediction)} | "
            f"{s.id_twonn:.2f} ± {s.id_twonn_std:.2f} | {s.id_mle:.2f} | {n_max} |")
    lines += _table_notes(summary)
    lines += _convergence_lines(rows, summary)
    lines += _live_unit_lines(rows)
    lines += [
        "", "Runs: all, those converged, those inside the fitted window. "
        "(cut): the circle window of A.1 ended before the largest student, i.e. L(N) bends "
        f"away from the power law there. N_max is read at the loss threshold "
        f"{summary.threshold:.3g} ({threshold_origin}); (extrap.) marks a value solved from "
        f"the fitted power law outside the measured losses, with how far outside its "
        f"window: far beyond it, the power law is an assumption, not a measurement.", "",
        "## 4/α against the measured dimension (figure 6)", "",
        "| regression | slope (95 %) | intercept | slope through 0 | Pearson r | points |",
        "|---|---|---|---|---|---|",
        _comparison_line("measured ID", summary.versus_id),
        _comparison_line("number of features k", summary.versus_features), "",
    ]
    left_out = [s.features for s in summary.per_feature if not s.measured_exponent]
    if left_out:
        lines += [f"Left out of the regressions: k = {', '.join(map(str, left_out))} (α's "
                  f"interval reaches 0 or below: 4/α is open above, a bound rather than a "
                  f"value; drawn as ▲ in figure 6).", ""]
    no_id = [s.features for s in summary.per_feature if s.measured_exponent and not s.regressed]
    if no_id:
        lines += [f"Left out of the regressions: k = {', '.join(map(str, no_id))} (no run in "
                  f"the fitted window has a measured ID).", ""]
    lines += ["## Verdict", ""]
    v = summary.versus_id
    target = (f"slope of 4/α on the measured ID within {TARGET_SLOPE[0]}–{TARGET_SLOPE[1]} "
              f"and correlation above {TARGET_CORRELATION}")
    measured = ("no regression possible" if v is None else
                f"measured slope {v.slope:.2f}, correlation {v.correlation:.3f}")
    if summary.unjudged:
        measured += (f"; the convergence of {summary.unjudged} run(s) of the regressed k "
                     f"cannot be judged (no loss curve), so the target cannot be declared met")
    lines.append(f"**Target {'REACHED' if summary.target_reached else 'NOT reached'}** "
                 f"({target}): {measured}.")
    lines += ["", "## Figures", ""]
    captions = {"loss": "L(N) per k with the power-law fits (figure 5)",
                "alpha": "4/α against measured ID and against k (figure 6)",
                "nmax": "N_max at the loss threshold against ID (figure 2)",
                "id": "final-layer ID against N (figure 3)",
                "curves": "held-out loss against steps for every size (convergence)"}
    lines += [f"![{captions[k]}]({name})  \n{captions[k]}\n" for k, name in figures.items()]
    return "\n".join(lines) + "\n"


def write_report(
    results: str | Path, out_dir: str | Path | None = None, *,
    title: str | None = None,
    command: str = "scaling.teacher_student.write_report", window="circle", n_bootstrap: int = 1000,
) -> Path:
    """Write README.md and the figures for a sweep CSV; returns the markdown path.

    Examples
    --------
    The committed CPU reproduction, run from the repository root:

    >>> import tempfile
    >>> from scaling.teacher_student import write_report
    >>> path = write_report("reports/teacher_student/results.csv", tempfile.mkdtemp(),
    ...                     n_bootstrap=50)
    >>> path.name
    'README.md'
    """
    from scaling.teacher_student._sweep import read_results

    results = Path(results)
    rows = read_results(results)
    if not rows:
        raise ValueError(f"write_report: {results} holds no runs; run a sweep into it first.")
    out = Path(out_dir) if out_dir is not None else results.parent
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(rows, window=window, n_bootstrap=n_bootstrap)
    title = title or ("Teacher/student: 4/α against the intrinsic dimension "
                      f"(schedule {rows[0]['schedule']})")
    figures = _figures(rows, summary, out)
    path = out / "README.md"
    path.write_text(report_markdown(rows, summary, figures=figures, title=title,
                                    command=command))
    return path
