"""Plot of L(N) with a power-law fit and its window (the panels of Sharma & Kaplan figure 5)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling.fit._power_law import PowerLawFit, lower_envelope


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
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt, numpy as np
    >>> from scaling import fit_power_law
    >>> N = np.logspace(3, 6, 6); L = 2 * N ** -0.5
    >>> fig, ax = plt.subplots()
    >>> plot_fit(ax, N, L, fit_power_law(N, L), label="demo")
    >>> plt.close(fig)
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
