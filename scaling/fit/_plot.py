"""Figures of the fits: L(N) with its power law and window (Sharma & Kaplan figure 5),
points with intervals that may be open-ended, and 2p/α against a measured dimension
(figures 1 and 6). Everything draws on given axes; nothing selects a backend."""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling.fit._power_law import (
    DimensionComparison,
    DimensionPrediction,
    PowerLawFit,
    lower_envelope,
)


def plot_fit(ax: Any, N: Any, L: Any, fit: PowerLawFit, *, groups: Any = None,
             label: str = "", color: Any = None) -> None:
    """Draw runs, per-size means (log scale) and the fitted curve over its window on ``ax``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Target axes; set to log-log.
    N, L : array-like of shape (n_runs,)
        The runs that were fitted.
    fit : PowerLawFit
        The fit to draw; a dashed line extends it past the window.
    groups : array-like of shape (n_runs,), optional
        Architecture of every run, as given to the fit: the per-size means are then
        those of the lower envelope (:func:`scaling.lower_envelope`) that was fitted.
    label : str, default=""
        Legend prefix (e.g. "k=4").
    color : matplotlib color, optional

    Examples
    --------
    >>> import numpy as np
    >>> from matplotlib.figure import Figure
    >>> from scaling import fit_power_law
    >>> N = np.logspace(3, 6, 6); L = 2 * N ** -0.5
    >>> ax = Figure().subplots()
    >>> plot_fit(ax, N, L, fit_power_law(N, L), label="demo")
    >>> ax.get_xscale(), len(ax.get_lines())
    ('log', 5)
    """
    N = np.asarray(N, dtype=float)
    L = np.asarray(L, dtype=float)
    fitted = np.ones(N.size, bool) if groups is None else lower_envelope(N, L, groups=groups)
    sizes = np.unique(N[fitted])
    means = np.exp([np.log(L[fitted & (N == s)]).mean() for s in sizes])
    (line,) = ax.plot(sizes, means, "o", color=color, ms=5)
    color = line.get_color()
    ax.plot(N, L, ".", color=color, alpha=0.3, ms=3)
    inside = np.geomspace(fit.n_min, fit.n_max, 100)
    everywhere = np.geomspace(N.min(), N.max(), 100)
    low, high = fit.interval
    text = f"α={fit.alpha:.3f}" if np.isnan(low) else f"α={fit.alpha:.3f} [{low:.3f}, {high:.3f}]"
    if fit.loss_floor > 0:
        text += f", L∞={fit.loss_floor:.3g}"
    ax.plot(everywhere, fit.predict(everywhere), "--", color=color, lw=0.8, alpha=0.6)
    ax.plot(inside, fit.predict(inside), "-", color=color, lw=1.6,
            label=f"{label}: {text}" if label else text)
    ax.axvline(fit.n_max, color=color, ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters N")
    ax.set_ylabel("test loss L")


def plot_intervals(ax: Any, x: Any, y: Any, low: Any, high: Any, *, top: float | None = None,
                   **style: Any) -> Any:
    """Points with their intervals; open-ended ones are marked, not allowed to stretch the axis.

    An interval whose upper end is infinite (2p/α when α's interval reaches 0)
    or above ``top`` is drawn up to ``top`` and capped with an upward triangle,
    with its true end written beside it. Ends that are nan draw no bar.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    x, y, low, high : array-like of shape (n,)
    top : float, optional
        Highest value drawn; default: twice the largest point, or the highest
        finite end if that is lower.
    **style
        Passed to ``ax.errorbar`` (``color``, ``label``, ``marker``...).

    Returns
    -------
    matplotlib.container.ErrorbarContainer

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> ax = Figure().subplots()
    >>> bars = plot_intervals(ax, [1, 2], [4.0, 5.0], [3.0, 4.0], [5.0, float("inf")])
    >>> ax.get_ylim()[1] < 11, [t.get_text() for t in ax.texts]
    (True, ['∞'])
    """
    x, y, low, high = (np.asarray(v, dtype=float) for v in (x, y, low, high))
    finite_high = high[np.isfinite(high)]
    if top is None:
        top = 2 * float(np.max(y)) if y.size else 1.0  # nothing to draw: any top will do
        if finite_high.size and finite_high.max() < top:
            top = float(finite_high.max())
    is_open = np.isinf(high) | (np.isfinite(high) & (high > top))
    shown = np.where(is_open, top, high)
    yerr = np.array([y - low, shown - y])
    yerr = np.where(np.isfinite(yerr), np.clip(yerr, 0, None), np.nan)
    style = {"fmt": "o", "capsize": 3, "ms": 5, **style}
    bars = ax.errorbar(x, y, yerr=yerr, **style)
    color = bars.lines[0].get_color()
    if is_open.any():
        ax.plot(x[is_open], shown[is_open], "^", color=color, ms=7, label="_open")
        for xi, end in zip(x[is_open], high[is_open], strict=True):
            ax.annotate("∞" if np.isinf(end) else f"{end:.3g}", (xi, top),
                        textcoords="offset points", xytext=(5, -3), fontsize=7, color=color)
    return bars


def plot_dimension_comparison(ax: Any, predictions: Any, measured: Any,
                              comparison: DimensionComparison | None = None, *,
                              xlabel: str = "measured dimension", labels: Any = None) -> None:
    """2p/α with its interval against a measured dimension, the fitted line and its band.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    predictions : sequence of DimensionPrediction
        :func:`scaling.predicted_dimension` of each experiment.
    measured : array-like
        The measured dimension of each experiment (x).
    comparison : DimensionComparison, optional
        :func:`scaling.compare_alpha_to_dimension`: its least-squares line is
        drawn with the band its slope interval spans (pivoting on the means).
    xlabel : str, default="measured dimension"
    labels : sequence of str, optional
        One annotation per point (e.g. "k=4").

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from scaling import fit_power_law, predicted_dimension, compare_alpha_to_dimension
    >>> import numpy as np
    >>> N = np.repeat(np.logspace(3, 5, 5), 3)
    >>> fits = [fit_power_law(N, N ** (-4 / d) * np.exp(np.random.default_rng(d).normal(
    ...     0, 0.01, N.size)), seeds=np.tile([0, 1, 2], 5)) for d in (2, 4, 8)]
    >>> ax = Figure().subplots()
    >>> plot_dimension_comparison(ax, [predicted_dimension(f) for f in fits], [2, 4, 8],
    ...                           compare_alpha_to_dimension(fits, [2, 4, 8]))
    >>> len(ax.containers), len(ax.collections) >= 1
    (1, True)
    """
    measured = np.asarray(measured, dtype=float)
    preds: list[DimensionPrediction] = list(predictions)
    y = np.array([p.dimension for p in preds])
    low = np.array([p.interval[0] for p in preds])
    high = np.array([p.interval[1] for p in preds])
    scale = f"{2 * preds[0].loss_exponent:g}/α" if preds else "2p/α"
    plot_intervals(ax, measured, y, low, high, color="C0", label=f"{scale} (95% interval)")
    top = ax.get_ylim()[1]
    line = np.linspace(0, max(measured.max(initial=0.0), 1.0) * 1.08, 50)
    ax.plot(line, line, "k--", lw=0.8, label=f"{scale} = dimension")
    if comparison is not None:
        mx, my = float(np.mean(comparison.measured)), float(np.mean(comparison.predicted))
        ends = [my + s * (line - mx) for s in comparison.interval]
        ax.fill_between(line, np.minimum(*ends), np.maximum(*ends), color="C1", alpha=0.2,
                        label="slope interval")
        ax.plot(line, comparison.slope * line + comparison.intercept, color="C1",
                label=f"fit: slope {comparison.slope:.2f} [{comparison.interval[0]:.2f}, "
                f"{comparison.interval[1]:.2f}], r = {comparison.correlation:.2f}")
    for xi, yi, text in zip(measured, y, labels or [], strict=False):
        ax.annotate(text, (xi, yi), textcoords="offset points", xytext=(-12, 6), fontsize=7)
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), top)  # the band never stretches the axis
    ax.set_xlim(0, line[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(scale)
    ax.grid(alpha=0.3)
