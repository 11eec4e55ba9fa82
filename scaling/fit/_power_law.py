"""Power-law fits of loss against model size, L(N) ∝ N^(−α) (Sharma & Kaplan, appendix A.1).

Every fit works on *runs*: one row per trained model (its size N, its loss L,
and optionally its seed and its architecture group). Runs that share a size are
averaged on the log scale, as the paper does ("average the loss (on log scale)
over the iterations", A.4), and the confidence interval on α comes from
resampling the runs within each size (a bootstrap over seeds, not over points).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from scaling.fit._circle import circle_radius

#: Loss threshold used for N_max in Sharma & Kaplan figure 2.
FIGURE2_THRESHOLD = 6e-3


class _Result:
    """``to_dict()`` for the frozen result dataclasses below."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (tuples as lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class PowerLawFit(_Result):
    """The result of a scaling-law fit L(N) = L∞ + c·N^(−α).

    Attributes
    ----------
    alpha : float
        The exponent α.
    interval : tuple of float
        (low, high) confidence interval on α; (nan, nan) when none could be
        computed (never of zero width).
    confidence : float
        The coverage aimed at by ``interval``.
    interval_method : str
        How the interval was obtained (bootstrap over runs, t interval, or none).
    coefficient : float
        c in c·N^(−α).
    loss_floor : float
        L∞ (0.0 for the pure power law).
    n_min, n_max : float
        The smallest and largest N inside the fitted window; with ``window="circle"``
        ``n_max`` is the paper's estimate of N_max (A.1).
    n_points : int
        Distinct sizes N inside the window.
    n_runs : int
        Runs (rows) inside the window.
    window : str
        How the window was chosen: "circle", "all" or "fixed".
    method : str
        The model and loss that were fitted.
    at_bound : tuple of str
        Parameters whose optimum lies on a constraint (e.g. "loss_floor=0"); empty if none.
    residual_std : float
        Standard deviation of the log-loss residuals of the per-size means in the window.
    """

    alpha: float
    interval: tuple[float, float]
    confidence: float
    interval_method: str
    coefficient: float
    loss_floor: float
    n_min: float
    n_max: float
    n_points: int
    n_runs: int
    window: str
    method: str
    at_bound: tuple[str, ...]
    residual_std: float

    def predict(self, N: Any) -> np.ndarray:
        """The fitted loss L∞ + c·N^(−α) at the sizes ``N``.

        Examples
        --------
        >>> import numpy as np
        >>> fit = fit_power_law([1e3, 1e4, 1e5], [1.0, 0.1, 0.01], window="all")
        >>> float(fit.predict(1e6).round(6))
        0.001
        """
        return self.loss_floor + self.coefficient * np.asarray(N, dtype=float) ** (-self.alpha)


@dataclass(frozen=True)
class DimensionPrediction(_Result):
    """d_pred = 2p/α (= 4/α for cross-entropy/KL and MSE, p = 2) with its interval.

    ``interval`` maps the ends of the fit's interval on α (same ``confidence``);
    (nan, nan) when the fit has none.
    """

    dimension: float
    interval: tuple[float, float]
    confidence: float
    alpha: float
    loss_exponent: float


@dataclass(frozen=True)
class DimensionComparison(_Result):
    """Predicted dimension 2p/α regressed on a measured dimension (figures 1 and 6).

    ``slope``/``intercept`` are the ordinary least-squares line
    predicted = slope · measured + intercept, ``interval`` the t interval on the
    slope at ``confidence`` ((nan, nan) when the points lie exactly on a line),
    ``slope_through_origin`` the slope of the line forced through 0, and
    ``correlation`` Pearson's r.
    """

    slope: float
    interval: tuple[float, float]
    confidence: float
    intercept: float
    slope_through_origin: float
    correlation: float
    n_points: int
    predicted: tuple[float, ...]
    measured: tuple[float, ...]


@dataclass(frozen=True)
class ThresholdCrossing(_Result):
    """The size N_max at which the loss reaches a threshold (figure 2)."""

    n_max: float
    threshold: float
    extrapolated: bool
    method: str


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class _Runs:
    """Runs grouped by size: sorted distinct N, mean log L per N, the log L of each run."""

    sizes: np.ndarray
    log_mean: np.ndarray
    log_runs: tuple[np.ndarray, ...]

    def subset(self, keep: np.ndarray) -> _Runs:
        return _Runs(self.sizes[keep], self.log_mean[keep],
                     tuple(r for r, k in zip(self.log_runs, keep, strict=True) if k))


def _invalid(caller: str, name: str, expected: str, got: str, fix: str = "") -> ValueError:
    """The wording of ``idest.utils.invalid`` (scaling.fit may not import idest)."""
    return ValueError(f"{caller}: {name} must be {expected}; got {got}."
                      + (f" {fix}" if fix else ""))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and bool(np.isfinite(value))


def _as_positive_vector(values: Any, name: str, caller: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise _invalid(caller, name, "a 1-D sequence", f"shape {arr.shape}",
                       "Pass one value per run.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = int(np.argmax(~np.isfinite(arr) | (arr <= 0)))
        raise _invalid(caller, name, "finite and positive", f"{arr[bad]!r} at position {bad}",
                       "Drop failed or diverged runs first.")
    return arr


def _validate_runs(N: Any, L: Any, caller: str, *, seeds: Any = None,
                   groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """N and L as float vectors of equal length, with matching seeds/groups if given."""
    N = _as_positive_vector(N, "N", caller)
    L = _as_positive_vector(L, "L", caller)
    if N.shape != L.shape:
        raise _invalid(caller, "L", f"as long as N ({N.size})", f"{L.size} values",
                       "Pass one (N, L) pair per run.")
    for name, labels in (("seeds", seeds), ("groups", groups)):
        if labels is not None and len(labels) != N.size:
            raise _invalid(caller, name, f"one label per run ({N.size})", f"{len(labels)}")
    return N, L


def _group_runs(N: np.ndarray, L: np.ndarray, caller: str, min_sizes: int = 3) -> _Runs:
    sizes, inverse = np.unique(N, return_inverse=True)
    if sizes.size < min_sizes:
        raise _invalid(caller, "N", f"runs at {min_sizes} or more distinct sizes",
                       f"{sizes.size}", "Add model sizes to the sweep.")
    log_l = np.log(L)
    log_runs = tuple(log_l[inverse == i] for i in range(sizes.size))
    return _Runs(sizes, np.array([r.mean() for r in log_runs]), log_runs)


def _check_seeds(N: np.ndarray, seeds: Any, groups: Any, caller: str) -> None:
    """Two rows with the same size, group and seed are a duplicated run."""
    if seeds is None:
        return
    keys = list(zip(N.tolist(), [None] * N.size if groups is None else list(groups),
                    list(seeds), strict=True))
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise _invalid(caller, "seeds", "distinct within each size (and group)",
                       f"the run (N={dup[0]:g}, seed={dup[2]!r}) more than once",
                       "Remove duplicated rows or pass groups to tell them apart.")


# ------------------------------------------------------------------------- window


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of y on x."""
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept)


def circle_window(N: Any, L: Any) -> int:
    """Number of leading points in the most linear window (Sharma & Kaplan A.1).

    For n = 3, 4, ... the first n points of (log N, log L), in increasing N, get a
    best-fit circle; the n with the largest radius is the "most linear" set, and
    its last point estimates N_max. Ties (exactly collinear points, infinite
    radius) go to the larger n.

    The rule is conservative. Before the bend every radius is set by noise and
    is heavy-tailed (a near-zero fitted curvature gives a huge radius), so a
    shorter set often wins by chance: in simulated sweeps with a sharp bend
    (tests/test_scaling_fit.py) the chosen N_max is never more than one size
    past the bend, but its median lies up to two sizes before it. The fitted α
    is unbiased either way; it just uses fewer points.

    Parameters
    ----------
    N, L : array-like of shape (n_sizes,)
        One loss per distinct size (average seeds first).

    Returns
    -------
    int
        How many of the smallest sizes to fit.

    Examples
    --------
    >>> import numpy as np
    >>> N = np.logspace(3, 6, 8)
    >>> L = np.maximum(N ** -0.5, 2e-3)          # a power law that flattens at N = 2.5e5
    >>> circle_window(N, L)
    6
    """
    N, L = np.asarray(N, dtype=float), np.asarray(L, dtype=float)
    if N.ndim != 1 or N.shape != L.shape or N.size < 3:
        raise ValueError(f"circle_window: needs N and L of one shape with at least 3 sizes (a "
                         f"circle through fewer is undefined), got shapes {N.shape} and "
                         f"{L.shape}; fit window='all' instead.")
    if not (np.all(np.isfinite(N) & (N > 0)) and np.all(np.isfinite(L) & (L > 0))):
        raise ValueError("circle_window: N and L must be finite and positive (the window is "
                         "found on log N, log L); subtract less of a loss floor or drop the "
                         "non-positive points.")
    order = np.argsort(N)
    x = np.log(N[order])
    y = np.log(L[order])
    radii = [circle_radius(x[:n], y[:n]) for n in range(3, x.size + 1)]
    best = max(range(len(radii)), key=lambda i: (radii[i], i))
    return best + 3


def _window(runs: _Runs, window: Any, caller: str) -> tuple[np.ndarray, str]:
    """Boolean mask over the sizes of ``runs`` and the window's name."""
    if isinstance(window, str) and window == "circle":
        count = circle_window(runs.sizes, np.exp(runs.log_mean))
        return np.arange(runs.sizes.size) < count, "circle"
    if isinstance(window, str) and window == "all":
        return np.ones(runs.sizes.size, dtype=bool), "all"
    if isinstance(window, (tuple, list)) and len(window) == 2 and not isinstance(window, str):
        low, high = (float(v) for v in window)
        keep = (runs.sizes >= low) & (runs.sizes <= high)
        if keep.sum() < 3:
            raise _invalid(caller, "window", "a range holding at least 3 distinct sizes",
                           f"({low:g}, {high:g}) holding {int(keep.sum())}", "Widen it.")
        return keep, "fixed"
    raise _invalid(caller, "window", "'circle', 'all' or a (Nmin, Nmax) pair", repr(window))


# ---------------------------------------------------------------------- bootstrap


def _bootstrap_log_means(runs: _Runs, n_bootstrap: int,
                         rng: np.random.Generator) -> np.ndarray:
    """Per-size mean log loss of runs resampled with replacement within each size.

    Returns an array of shape (n_bootstrap, n_sizes). The resampled deviations
    are inflated by sqrt(m/(m−1)) for m runs, which removes the bootstrap's
    known variance deficit for small m (Davison & Hinkley 1997, eq. 6.9).
    """
    out = np.empty((n_bootstrap, runs.sizes.size))
    for j, log_l in enumerate(runs.log_runs):
        m = log_l.size
        draws = log_l[rng.integers(0, m, size=(n_bootstrap, m))].mean(axis=1)
        out[:, j] = runs.log_mean[j] + np.sqrt(m / (m - 1)) * (draws - runs.log_mean[j])
    return out


def _replicated(runs: _Runs) -> bool:
    return all(r.size >= 2 for r in runs.log_runs)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = 50 * (1 - confidence)
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def _check_fit_options(n_bootstrap: int, confidence: float, caller: str) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, numbers.Integral) \
            or n_bootstrap < 0:
        raise _invalid(caller, "n_bootstrap", "an int in [0, inf)", repr(n_bootstrap))
    if n_bootstrap == 1:
        raise _invalid(caller, "n_bootstrap", "0 (no interval) or an int >= 2", "1",
                       "One resample has no spread.")
    if not _is_real(confidence) or not 0 < confidence < 1:
        raise _invalid(caller, "confidence", "a number in (0, 1), e.g. 0.95", repr(confidence))


# ---------------------------------------------------------------------- power law


def lower_envelope(N: Any, L: Any, *, groups: Any = None, hull: bool = True) -> np.ndarray:
    """Runs of the best architecture at each size, on the lower convex hull (A.1).

    Runs sharing a size N and a group label (e.g. a depth) are averaged on the
    log scale; at each N the group with the lowest mean is kept, and with
    ``hull=True`` only sizes on the lower convex hull in the L vs N plane remain
    ("points on the convex hull in the L vs N plane", A.1), so that a size whose
    best model is worse than the chord between its neighbours is dropped. The
    hull is taken in linear (N, L), as the paper says: a power law is strongly
    convex there, so noise of a few per cent rarely removes a point, whereas in
    (log N, log L) a straight noisy line loses about half its points.

    Parameters
    ----------
    N, L : array-like of shape (n_runs,)
        Size and loss of every run.
    groups : array-like of shape (n_runs,), optional
        Architecture label of every run; without it all runs at one N are replicates.
    hull : bool, default=True
        Keep only the lower convex hull; ``False`` keeps the best group at every N.

    Returns
    -------
    ndarray of bool, shape (n_runs,)
        Mask of the runs to fit.

    Examples
    --------
    >>> N = [100, 100, 1000, 1000, 10000]
    >>> L = [0.5, 0.4, 0.1, 0.3, 0.05]
    >>> lower_envelope(N, L, groups=["a", "b", "a", "b", "a"]).tolist()
    [False, True, True, False, True]
    """
    N, L = _validate_runs(N, L, "lower_envelope", groups=groups)
    labels = np.zeros(N.size, dtype=int) if groups is None else \
        np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    configs, inverse = np.unique(np.column_stack([N, labels]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    config_log = np.array([np.log(L[inverse == i]).mean() for i in range(len(configs))])
    best = {}
    for i, (size, _) in enumerate(configs):
        if size not in best or config_log[i] < config_log[best[size]]:
            best[size] = i
    chosen = sorted(best.values(), key=lambda i: configs[i, 0])
    if hull:
        chosen = _lower_hull(configs[chosen, 0], np.exp(config_log[chosen]), chosen)
    return np.isin(inverse, chosen)


def _lower_hull(x: np.ndarray, y: np.ndarray, ids: list[int]) -> list[int]:
    """Ids of the points on the lower convex hull (Andrew's monotone chain, x sorted)."""
    stack: list[int] = []
    for j in range(x.size):
        while len(stack) >= 2:
            a, b = stack[-2], stack[-1]
            cross = (x[b] - x[a]) * (y[j] - y[a]) - (y[b] - y[a]) * (x[j] - x[a])
            if cross > 0:
                break
            stack.pop()
        stack.append(j)
    return [ids[j] for j in stack]


def _windowed_runs(N: Any, L: Any, window: Any, seeds: Any, groups: Any, n_bootstrap: int,
                   confidence: float, caller: str) -> tuple[_Runs, str]:
    """Validated runs (lower envelope if ``groups``) restricted to the window, and its name."""
    _check_fit_options(n_bootstrap, confidence, caller)
    N, L = _validate_runs(N, L, caller, seeds=seeds, groups=groups)
    _check_seeds(N, seeds, groups, caller)
    if groups is not None:
        keep = lower_envelope(N, L, groups=groups)
        N, L = N[keep], L[keep]
    runs = _group_runs(N, L, caller)
    keep, window_name = _window(runs, window, caller)
    return runs.subset(keep), window_name


def _bootstrap_alpha(runs: _Runs, alpha: float, alphas_of: Callable[[np.ndarray], np.ndarray],
                     n_bootstrap: int, confidence: float,
                     random_state: int | np.random.Generator | None
                     ) -> tuple[tuple[float, float], str] | None:
    """Interval on α from runs resampled within each size; None if no size can be resampled.

    The percentile interval of the replicates is widened about ``alpha`` by
    t_ν/z, where ν is the Welch–Satterthwaite degrees of freedom of the variance
    the bootstrap estimates: each size contributes a_j = w_j² Var*(mean_j) with m_j − 1
    degrees of freedom, w_j being the sensitivity of α to that size's mean
    (regressed over the replicates; exact for the linear fit), so
    ν = (Σ a_j)² / Σ a_j² / (m_j − 1). With a few seeds per size the plain
    percentile interval under-covers (86 % for a nominal 90 % with 4 seeds in
    simulation); the widened one does not.
    """
    if n_bootstrap < 2 or not _replicated(runs):
        return None
    boot = _bootstrap_log_means(runs, n_bootstrap, np.random.default_rng(random_state))
    alphas = alphas_of(boot)
    low, high = _percentile_interval(alphas, confidence)
    deviations = boot - boot.mean(axis=0)
    sensitivity = np.linalg.lstsq(deviations, alphas - alphas.mean(), rcond=None)[0]
    parts = sensitivity**2 * deviations.var(axis=0)
    counts = np.array([r.size for r in runs.log_runs])
    factor = 1.0
    if parts.sum() > 0:
        dof = parts.sum() ** 2 / np.sum(parts**2 / (counts - 1))
        q = 0.5 + confidence / 2
        factor = float(stats.t.ppf(q, dof) / stats.norm.ppf(q))
    return ((alpha + factor * (low - alpha), alpha + factor * (high - alpha)),
            f"bootstrap over runs within each N ({n_bootstrap} replicates, t-calibrated)")


def _fit_result(runs: _Runs, window_name: str, residuals: np.ndarray, interval: Any,
                **fields: Any) -> PowerLawFit:
    """A PowerLawFit with the window's fields filled in from ``runs``."""
    (low, high), interval_method = interval
    if not high > low and not np.isnan(low):  # a perfect fit: no spread to report
        (low, high), interval_method = _NO_INTERVAL[0], f"none ({interval_method}: zero width)"
    return PowerLawFit(
        interval=(float(low), float(high)), interval_method=interval_method,
        n_min=float(runs.sizes[0]), n_max=float(runs.sizes[-1]),
        n_points=int(runs.sizes.size), n_runs=int(sum(r.size for r in runs.log_runs)),
        window=window_name, residual_std=float(residuals.std()), **fields)


_NO_INTERVAL = ((float("nan"), float("nan")), "none")


def fit_power_law(
    N: Any,
    L: Any,
    *,
    window: str | tuple[float, float] = "circle",
    seeds: Any = None,
    groups: Any = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
) -> PowerLawFit:
    """Fit log L = −α log N + b by least squares over a window of sizes (Sharma & Kaplan A.1).

    Runs at the same N are averaged on the log scale; the line is fitted to those
    means (Gaussian errors in log L). The window is chosen by the largest-radius
    circle over the first n ≥ 3 sizes (``"circle"``, the paper's unbiased rule,
    whose last size estimates N_max), or is every size (``"all"``), or every size
    in a closed range (``(Nmin, Nmax)``).

    Parameters
    ----------
    N, L : array-like of shape (n_runs,)
        Parameter count and (positive) test loss of every run.
    window : {"circle", "all"} or (float, float), default="circle"
        How to choose the sizes fitted.
    seeds : array-like of shape (n_runs,), optional
        Seed of every run; used to reject duplicated runs.
    groups : array-like of shape (n_runs,), optional
        Architecture (e.g. depth) of every run; when given, only the runs on the
        lower convex hull are fitted (see :func:`lower_envelope`).
    n_bootstrap : int, default=1000
        Bootstrap replicates for the interval on α (0 skips it). Runs are
        resampled within each size with the window held fixed, and the percentile
        interval is t-calibrated for the few runs per size (see Notes). When some
        size in the window has a single run, a t interval from the line's
        residuals is given instead and ``interval_method`` says so.
    confidence : float, default=0.95
        Coverage of the interval.
    random_state : int, Generator or None, default=0
        Seed of the bootstrap.

    Returns
    -------
    PowerLawFit

    Notes
    -----
    The bootstrap deviations of each size's mean are inflated by √(m/(m−1)) for m
    runs (Davison & Hinkley 1997, eq. 6.9) and the percentile interval is widened
    by t_ν/z with Welch–Satterthwaite degrees of freedom ν. In 1000 simulated
    sweeps of 6 sizes the 90 % interval then held the true α 93 %, 91 %, 90 % and
    89 % of the time with 2, 3, 4 and 8 seeds per size (plain percentiles: 82 %
    to 88 %).

    Examples
    --------
    >>> import numpy as np
    >>> N = np.repeat(np.logspace(3, 6, 7), 3)
    >>> L = 5 * N ** -0.4 * np.exp(np.random.default_rng(0).normal(0, 0.02, N.size))
    >>> fit = fit_power_law(N, L, window="all")
    >>> round(fit.alpha, 2), fit.n_points, fit.interval_method.split(" ")[0]
    (0.4, 7, 'bootstrap')
    """
    caller = "fit_power_law"
    runs, window_name = _windowed_runs(N, L, window, seeds, groups, n_bootstrap, confidence,
                                       caller)
    x = np.log(runs.sizes)
    slope, intercept = _line(x, runs.log_mean)
    residuals = runs.log_mean - (slope * x + intercept)
    weights = (x - x.mean()) / np.sum((x - x.mean()) ** 2)  # OLS slope = weights @ y
    interval = _bootstrap_alpha(runs, -slope, lambda boot: -(boot @ weights), n_bootstrap,
                                confidence, random_state)
    if interval is None and n_bootstrap > 0:
        dof = x.size - 2
        stderr = np.sqrt(np.sum(residuals**2) / dof / np.sum((x - x.mean()) ** 2))
        half = stats.t.ppf(0.5 + confidence / 2, dof) * stderr
        interval = ((-slope - half, -slope + half),
                    "t interval from the residuals (a size has a single run)")
    return _fit_result(runs, window_name, residuals, interval or _NO_INTERVAL,
                       alpha=-slope, confidence=confidence,
                       coefficient=float(np.exp(intercept)), loss_floor=0.0,
                       method="log-log least squares", at_bound=())


# ------------------------------------------------------------------- offset form


def _nnls_two_columns(a: np.ndarray, b: np.ndarray, target: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares min ||target − (x·a + y·b)||, x, y ≥ 0, batched.

    ``a``, ``b`` and ``target`` have shape (..., n). With two unknowns the
    active-set solution is enumerable: the optimum is the best feasible one of the
    unconstrained solution and the two one-column solutions (a convex problem's
    minimum is the unconstrained minimum of its active face). Batching thousands of
    these tiny problems (every α of the grid for every bootstrap replicate) in
    numpy is what keeps the profile fast; ``scipy.optimize.nnls`` solves one per call.
    """
    g00, g01, g11 = (a * a).sum(-1), (a * b).sum(-1), (b * b).sum(-1)
    h0, h1 = (a * target).sum(-1), (b * target).sum(-1)
    det = g00 * g11 - g01 * g01
    det = np.where(det > 1e-12 * g00 * g11, det, np.inf)
    tiny = np.finfo(float).tiny
    xs = [(g11 * h0 - g01 * h1) / det, np.maximum(h0, 0) / np.maximum(g00, tiny), 0.0 * h0]
    ys = [(g00 * h1 - g01 * h0) / det, 0.0 * h1, np.maximum(h1, 0) / np.maximum(g11, tiny)]
    best_x, best_y, best_cost = xs[2], ys[2], np.full(h0.shape, np.inf)
    for x, y in zip(xs, ys, strict=True):
        # ||t − xa − yb||² − ||t||²
        cost = x * x * g00 + 2 * x * y * g01 + y * y * g11 - 2 * (x * h0 + y * h1)
        better = (x >= 0) & (y >= 0) & (cost < best_cost)
        best_x, best_y = np.where(better, x, best_x), np.where(better, y, best_y)
        best_cost = np.where(better, cost, best_cost)
    return best_x, best_y


def _offset_profile(log_n: np.ndarray, log_l: np.ndarray, log_alpha: np.ndarray,
                    huber_delta: float | None, max_iter: int = 100
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Profile objective of the offset form at each log α, with the best (L∞, c) there.

    ``log_l`` has shape (B, n) (one row per data set) and ``log_alpha`` shape (B, G).
    For fixed α the model L∞ + c·N^(−α) is linear in (L∞, c) ≥ 0; they minimise the
    relative residuals (L − L∞ − c·N^(−α))/L ≈ log residuals, with Huber weights by
    iterative reweighting when ``huber_delta`` is set. The objective is evaluated on
    the exact log residuals. Returns (objective, floor, coefficient), each (B, G).
    """
    loss = np.exp(log_l)[:, None, :]                                   # (B, 1, n)
    features = np.exp(-np.exp(log_alpha)[..., None] * log_n)           # (B, G, n)
    scale = features.max(axis=-1, keepdims=True)
    column = features / scale
    weights = np.ones(features.shape)
    for _ in range(max_iter):
        root = np.sqrt(weights)
        floor, coef = _nnls_two_columns(root / loss, root * column / loss, root)
        model = floor[..., None] + coef[..., None] * column
        residuals = log_l[:, None, :] - np.log(np.maximum(model, np.finfo(float).tiny))
        if huber_delta is None:
            break
        new = np.minimum(1.0, huber_delta / np.maximum(np.abs(residuals), 1e-300))
        converged = np.max(np.abs(new - weights)) < 1e-3
        weights = new
        if converged:
            break
    if huber_delta is None:
        objective = np.sum(residuals**2, axis=-1)
    else:
        a = np.abs(residuals)
        objective = np.sum(np.where(a <= huber_delta, 0.5 * a * a,
                                    huber_delta * (a - 0.5 * huber_delta)), axis=-1)
    return objective, floor, coef / scale[..., 0]


def _fit_offset(sizes: np.ndarray, log_l: np.ndarray, bounds: tuple[float, float],
                huber_delta: float | None, grid_size: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """α, L∞ and c for each row of ``log_l`` (shape (B, n)), by a zooming grid on log α.

    Each of four rounds evaluates the profile on ``grid_size`` values of log α and
    narrows the range to the two grid steps around the minimum, so the final
    resolution is about (log(high/low)/grid_size)^4 / 2^3 in log α.
    """
    log_n = np.log(sizes)
    rows = np.arange(log_l.shape[0])
    low = np.full(log_l.shape[0], np.log(bounds[0]))
    high = np.full(log_l.shape[0], np.log(bounds[1]))
    for _ in range(4):
        grid = np.linspace(low, high, grid_size, axis=1)                 # (B, G)
        objective, floor, coef = _offset_profile(log_n, log_l, grid, huber_delta)
        best = np.argmin(objective, axis=1)
        low = grid[rows, np.maximum(best - 1, 0)]
        high = grid[rows, np.minimum(best + 1, grid_size - 1)]
    return np.exp(grid[rows, best]), floor[rows, best], coef[rows, best]


def fit_offset_power_law(
    N: Any,
    L: Any,
    *,
    window: str | tuple[float, float] = "all",
    seeds: Any = None,
    groups: Any = None,
    alpha_bounds: tuple[float, float] = (0.01, 5.0),
    huber_delta: float | None = None,
    n_bootstrap: int = 200,
    confidence: float = 0.95,
    grid_size: int = 40,
    random_state: int | np.random.Generator | None = 0,
) -> PowerLawFit:
    """Fit L(N) = L∞ + c·N^(−α) with L∞, c ≥ 0 by profiling over α.

    For fixed α the model is linear in (L∞, c), so they are solved exactly by
    non-negative least squares on relative residuals (≈ log residuals), and only
    α is searched, on a grid of log α that zooms in four times around its minimum
    (variable projection; design notes "Scaling-law fitting"). The grid makes the
    search global within ``alpha_bounds`` and lets every bootstrap replicate be
    solved at once. The outer
    objective is the sum of squared log residuals, or a Huber loss on them when
    ``huber_delta`` is given, so that a few failed runs do not drag the fit.

    Parameters
    ----------
    N, L : array-like of shape (n_runs,)
        Parameter count and loss of every run (runs at one N are averaged on the log scale).
    window : {"all", "circle"} or (float, float), default="all"
        Sizes to fit (see :func:`fit_power_law`); the offset form usually needs all.
    seeds, groups : array-like, optional
        As in :func:`fit_power_law`.
    alpha_bounds : (float, float), default=(0.01, 5.0)
        Search range of α; an optimum on either end is reported in ``at_bound``.
    huber_delta : float, optional
        Huber threshold on log residuals (e.g. 0.1 ≈ 10 %); None for least squares.
    n_bootstrap : int, default=200
        Bootstrap replicates over runs within each N (0 skips the interval).
    confidence : float, default=0.95
        Coverage of the interval.
    grid_size : int, default=40
        Points of each round of the zooming log-α grid.
    random_state : int, Generator or None, default=0
        Seed of the bootstrap.

    Returns
    -------
    PowerLawFit
        With ``loss_floor`` = L∞; ``at_bound`` lists "alpha=low", "alpha=high",
        "loss_floor=0" or "coefficient=0" when the optimum sits on a constraint.

    Examples
    --------
    >>> import numpy as np
    >>> N = np.logspace(2, 6, 9)
    >>> fit = fit_offset_power_law(N, 0.05 + 3 * N ** -0.6, n_bootstrap=0)
    >>> round(fit.alpha, 3), round(fit.loss_floor, 4), fit.at_bound
    (0.6, 0.05, ())
    """
    caller = "fit_offset_power_law"
    low, high = (float(b) for b in alpha_bounds)
    if not 0 < low < high:
        raise _invalid(caller, "alpha_bounds", "a pair (low, high) with 0 < low < high",
                       repr(alpha_bounds))
    if huber_delta is not None and not (_is_real(huber_delta) and huber_delta > 0):
        raise _invalid(caller, "huber_delta", "a finite number > 0 or None", repr(huber_delta))
    if isinstance(grid_size, bool) or not isinstance(grid_size, numbers.Integral) \
            or grid_size < 3:
        raise _invalid(caller, "grid_size", "an int >= 3 (values of log alpha per refinement "
                       "round)", repr(grid_size))
    runs, window_name = _windowed_runs(N, L, window, seeds, groups, n_bootstrap, confidence,
                                       caller)
    alpha, floor, coef = (float(v[0]) for v in _fit_offset(
        runs.sizes, runs.log_mean[None, :], (low, high), huber_delta, grid_size))
    model = floor + coef * runs.sizes ** (-alpha)
    residuals = runs.log_mean - np.log(np.maximum(model, np.finfo(float).tiny))
    at_bound = tuple(name for name, hit in (
        ("alpha=low", np.isclose(alpha, low, rtol=1e-3)),
        ("alpha=high", np.isclose(alpha, high, rtol=1e-3)),
        ("loss_floor=0", floor == 0.0),
        ("coefficient=0", coef == 0.0),
    ) if hit)
    interval = _bootstrap_alpha(
        runs, alpha,
        lambda boot: _fit_offset(runs.sizes, boot, (low, high), huber_delta, grid_size)[0],
        n_bootstrap, confidence, random_state)
    if interval is None and n_bootstrap > 0:
        interval = (_NO_INTERVAL[0],
                    "none (a size has a single run, so runs cannot be resampled)")
    loss_name = "least squares" if huber_delta is None else f"Huber(delta={huber_delta:g})"
    return _fit_result(
        runs, window_name, residuals, interval or _NO_INTERVAL, alpha=alpha,
        confidence=confidence, coefficient=coef, loss_floor=floor,
        method=f"offset power law, alpha profiled, nnls inner solve, {loss_name} on log L",
        at_bound=at_bound)


# ----------------------------------------------------------------- N_max and d_pred


def n_max_at_threshold(
    N: Any,
    L: Any,
    threshold: float = FIGURE2_THRESHOLD,
    *,
    fit: PowerLawFit | None = None,
) -> ThresholdCrossing:
    """The size at which the loss first reaches ``threshold`` (Sharma & Kaplan figure 2).

    The per-size means (log scale) are interpolated linearly in (log N, log L)
    between the last size above and the first size at or below the threshold.
    When no measured size brackets it (every size is already below, or none
    reaches it), the ``fit`` is solved for L(N) = threshold instead, as the paper
    does for teachers with few features, and ``extrapolated`` is True.

    Parameters
    ----------
    N, L : array-like of shape (n_runs,)
        Size and loss of every run.
    threshold : float, default=6e-3
        The loss level (figure 2 uses 6 × 10⁻³).
    fit : PowerLawFit, optional
        Used when the measurements do not bracket the threshold.

    Returns
    -------
    ThresholdCrossing

    Raises
    ------
    ValueError
        When the threshold has to be extrapolated and ``fit`` is missing, or the fitted
        curve cannot give the crossing: a floor above the threshold, α <= 0, or a
        crossing below one parameter or beyond float range (a threshold far outside
        the measured losses).

    Examples
    --------
    >>> r = n_max_at_threshold([1e2, 1e3, 1e4, 1e5], [1e-1, 1e-2, 1e-3, 1e-4], 3e-3)
    >>> round(r.n_max), r.extrapolated
    (3333, False)
    """
    caller = "n_max_at_threshold"
    N, L = _validate_runs(N, L, caller)
    if not (_is_real(threshold) and threshold > 0):
        raise _invalid(caller, "threshold", "a finite number > 0", repr(threshold))
    runs = _group_runs(N, L, caller, min_sizes=1)
    log_t = np.log(threshold)
    below = np.flatnonzero(runs.log_mean <= log_t)
    if below.size and below[0] > 0:
        j = int(below[0])
        x0, x1 = np.log(runs.sizes[j - 1 : j + 1])
        y0, y1 = runs.log_mean[j - 1 : j + 1]
        log_n = x0 + (log_t - y0) * (x1 - x0) / (y1 - y0)
        return ThresholdCrossing(float(np.exp(log_n)), float(threshold), False,
                                 "log-log interpolation between measured sizes")
    if fit is None:
        where = "every size is already below" if below.size else "no size reaches"
        raise ValueError(f"{caller}: {where} the threshold {threshold:g}; pass fit= to "
                         "extrapolate the fitted power law.")
    excess = threshold - fit.loss_floor
    closer = "Choose a threshold within the measured losses."
    if excess <= 0:
        raise ValueError(f"{caller}: the fit's floor L∞ = {fit.loss_floor:g} is above the "
                         f"threshold {threshold:g}, so the fitted curve never reaches it. "
                         f"{closer}")
    if fit.alpha <= 0 or fit.coefficient <= 0:
        raise ValueError(f"{caller}: the fitted curve (α = {fit.alpha:g}, coefficient "
                         f"{fit.coefficient:g}) does not fall to the threshold {threshold:g}. "
                         f"{closer}")
    log_n = (math.log(fit.coefficient) - math.log(excess)) / fit.alpha
    if not 0.0 <= log_n <= math.log(sys.float_info.max):
        raise ValueError(f"{caller}: the fitted curve (α = {fit.alpha:g}) crosses the threshold "
                         f"{threshold:g} at N = e^{log_n:.0f}, "
                         f"{'below one parameter' if log_n < 0 else 'beyond float range'}: "
                         f"an extrapolation without meaning. {closer}")
    return ThresholdCrossing(math.exp(log_n), float(threshold), True,
                             "solved from the fitted power law")


def predicted_dimension(fit: PowerLawFit, *, loss_exponent: float = 2.0) -> DimensionPrediction:
    """The dimension the scaling exponent predicts, d = 2p/α (4/α for p = 2).

    Sharma & Kaplan eq. 2.3 (α = 4/d for cross-entropy/KL and MSE) and its
    generalisation to a loss |Δ|^p, α = 2p/d (section 3.3, figure 8). The interval
    maps the ends of ``fit.interval``.

    Examples
    --------
    >>> import numpy as np
    >>> fit = fit_power_law(np.logspace(2, 5, 4), np.logspace(2, 5, 4) ** -0.5, window="all")
    >>> round(predicted_dimension(fit).dimension, 6)
    8.0
    """
    caller = "predicted_dimension"
    if not (_is_real(loss_exponent) and loss_exponent > 0):
        raise _invalid(caller, "loss_exponent", "a finite number > 0", repr(loss_exponent))
    if not fit.alpha > 0:
        raise _invalid(caller, "fit", "a fit with alpha > 0 (a loss that decreases with N)",
                       f"alpha = {fit.alpha:g}")
    low, high = fit.interval
    scale = 2.0 * loss_exponent
    interval = (scale / high if high > 0 else float("nan"),
                scale / low if low > 0 else float("inf"))
    if np.isnan(low) or np.isnan(high):
        interval = (float("nan"), float("nan"))
    return DimensionPrediction(scale / fit.alpha, interval, fit.confidence, fit.alpha,
                               float(loss_exponent))


def compare_alpha_to_dimension(
    alphas: Sequence[float | PowerLawFit],
    dimensions: Any,
    *,
    loss_exponent: float = 2.0,
    confidence: float = 0.95,
) -> DimensionComparison:
    """Regress the predicted dimension 2p/α (4/α) on a measured one (figures 1 and 6).

    The theory predicts slope 1 against the intrinsic dimension of the data
    manifold. The measured dimension may be an ID or a feature count.

    Parameters
    ----------
    alphas : sequence of float or PowerLawFit
        One exponent per experiment.
    dimensions : array-like of shape (n_experiments,)
        The measured dimension of each experiment.
    loss_exponent : float, default=2.0
        p in α = 2p/d.
    confidence : float, default=0.95
        Coverage of the t interval on the slope.

    Returns
    -------
    DimensionComparison

    Examples
    --------
    >>> r = compare_alpha_to_dimension([2.0, 1.0, 0.5, 0.4], [2, 4, 8, 10])
    >>> round(r.slope, 6), round(r.correlation, 6)
    (1.0, 1.0)
    """
    caller = "compare_alpha_to_dimension"
    alpha = np.array([a.alpha if isinstance(a, PowerLawFit) else float(a) for a in alphas])
    measured = np.asarray(dimensions, dtype=float)
    if measured.ndim != 1 or measured.shape != alpha.shape:
        raise _invalid(caller, "dimensions", f"one dimension per alpha ({alpha.size})",
                       f"shape {measured.shape}")
    if alpha.size < 3:
        raise _invalid(caller, "alphas", "at least 3 experiments (a slope with an interval)",
                       f"{alpha.size}")
    if not (np.all(np.isfinite(alpha)) and np.all(alpha > 0) and np.all(np.isfinite(measured))):
        raise _invalid(caller, "alphas", "finite and positive (and dimensions finite)",
                       f"alphas {alpha.tolist()} and dimensions {measured.tolist()}",
                       "Drop failed fits first.")
    if np.ptp(measured) == 0:
        raise _invalid(caller, "dimensions", "of at least two different values",
                       f"{measured[0]:g} for every experiment",
                       "A slope needs experiments of different dimension.")
    predicted = 2.0 * loss_exponent / alpha
    line = stats.linregress(measured, predicted)
    half = stats.t.ppf(0.5 + confidence / 2, alpha.size - 2) * line.stderr
    interval = (float(line.slope - half), float(line.slope + half)) if half > 0 \
        else (float("nan"), float("nan"))
    return DimensionComparison(
        slope=float(line.slope), interval=interval, confidence=float(confidence),
        intercept=float(line.intercept),
        slope_through_origin=float(measured @ predicted / (measured @ measured)),
        correlation=float(line.rvalue), n_points=int(alpha.size),
        predicted=tuple(predicted.tolist()), measured=tuple(measured.tolist()),
    )
