"""Power-law fits of loss against model size, L(N) ∝ N^(−α) (Sharma & Kaplan, appendix A.1).

Every fit works on *runs*: one row per trained model (its size N, its loss L,
and optionally its seed and its architecture group). Runs that share a size are
averaged on the log scale, as the paper does ("average the loss (on log scale)
over the iterations", A.4), and the confidence interval on α comes from
resampling the runs within each size (a bootstrap over seeds, not over points).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from scaling._circle import circle_radius

#: Loss threshold used for N_max in Sharma & Kaplan figure 2.
FIGURE2_THRESHOLD = 6e-3


@dataclass(frozen=True)
class PowerLawFit:
    """The result of a scaling-law fit L(N) = L∞ + c·N^(−α).

    Attributes
    ----------
    alpha : float
        The exponent α.
    alpha_interval : tuple of float
        (low, high) confidence interval on α; (nan, nan) when none could be computed.
    confidence : float
        The coverage aimed at by ``alpha_interval``.
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
    alpha_interval: tuple[float, float]
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

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class DimensionPrediction:
    """d_pred = 2p/α (= 4/α for cross-entropy/KL and MSE, p = 2) with its interval."""

    dimension: float
    interval: tuple[float, float]
    alpha: float
    loss_exponent: float


@dataclass(frozen=True)
class DimensionComparison:
    """Predicted dimension 2p/α regressed on a measured dimension (figures 1 and 6).

    ``slope``/``intercept`` are the ordinary least-squares line
    predicted = slope · measured + intercept, ``slope_interval`` its t interval,
    ``slope_through_origin`` the slope of the line forced through 0, and
    ``correlation`` Pearson's r.
    """

    slope: float
    slope_interval: tuple[float, float]
    intercept: float
    slope_through_origin: float
    correlation: float
    n_points: int
    predicted: tuple[float, ...]
    measured: tuple[float, ...]


@dataclass(frozen=True)
class ThresholdCrossing:
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


def _as_positive_vector(values: Any, name: str, caller: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{caller}: {name} must be a 1-D sequence, got shape {arr.shape}; "
                         "pass one value per run.")
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        bad = int(np.argmax(~np.isfinite(arr) | (arr <= 0)))
        raise ValueError(f"{caller}: {name} must be finite and positive, got {arr[bad]!r} at "
                         f"position {bad}; drop failed or diverged runs first.")
    return arr


def _validate_runs(N: Any, L: Any, caller: str, *, seeds: Any = None,
                   groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """N and L as float vectors of equal length, with matching seeds/groups if given."""
    N = _as_positive_vector(N, "N", caller)
    L = _as_positive_vector(L, "L", caller)
    if N.shape != L.shape:
        raise ValueError(f"{caller}: N and L must have the same length, got {N.size} and "
                         f"{L.size}; pass one (N, L) pair per run.")
    for name, labels in (("seeds", seeds), ("groups", groups)):
        if labels is not None and len(labels) != N.size:
            raise ValueError(f"{caller}: {name} must have one label per run ({N.size}), "
                             f"got {len(labels)}.")
    return N, L


def _group_runs(N: np.ndarray, L: np.ndarray, caller: str, min_sizes: int = 3) -> _Runs:
    sizes, inverse = np.unique(N, return_inverse=True)
    if sizes.size < min_sizes:
        raise ValueError(f"{caller}: needs runs at {min_sizes} or more distinct sizes N, got "
                         f"{sizes.size}; add model sizes to the sweep.")
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
        raise ValueError(f"{caller}: the run (N={dup[0]:g}, seed={dup[2]!r}) appears more than "
                         "once; remove duplicated rows or pass groups to tell them apart.")


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
    order = np.argsort(np.asarray(N, dtype=float))
    x = np.log(np.asarray(N, dtype=float)[order])
    y = np.log(np.asarray(L, dtype=float)[order])
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
            raise ValueError(f"{caller}: the window ({low:g}, {high:g}) holds {int(keep.sum())} "
                             "distinct size(s); it needs at least 3, widen it.")
        return keep, "fixed"
    raise ValueError(f"{caller}: window must be 'circle', 'all' or a (Nmin, Nmax) pair, got "
                     f"{window!r}.")


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
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) \
            or n_bootstrap < 0:
        raise ValueError(f"{caller}: n_bootstrap must be a non-negative int, got "
                         f"{n_bootstrap!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"{caller}: confidence must lie in (0, 1), got {confidence!r}.")


# ---------------------------------------------------------------------- power law


def lower_envelope(N: Any, L: Any, *, groups: Any = None, hull: bool = True) -> np.ndarray:
    """Runs of the best architecture at each size, on the lower convex hull (A.1).

    Runs sharing a size N and a group label (e.g. a depth) are averaged on the
    log scale; at each N the group with the lowest mean is kept, and with
    ``hull=True`` only sizes on the lower convex hull of (log N, log L) remain,
    so that a size whose best model is worse than the hull between its
    neighbours is dropped.

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
        chosen = _lower_hull(np.log(configs[chosen, 0]), config_log[chosen], chosen)
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


def _prepare(N: Any, L: Any, seeds: Any, groups: Any, caller: str) -> _Runs:
    N, L = _validate_runs(N, L, caller, seeds=seeds, groups=groups)
    _check_seeds(N, seeds, groups, caller)
    if groups is not None:
        keep = lower_envelope(N, L, groups=groups)
        N, L = N[keep], L[keep]
    return _group_runs(N, L, caller)


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
        resampled within each size with the window held fixed. When some size in
        the window has a single run, a t interval from the line's residuals is
        given instead and ``interval_method`` says so.
    confidence : float, default=0.95
        Coverage of the interval.
    random_state : int, Generator or None, default=0
        Seed of the bootstrap.

    Returns
    -------
    PowerLawFit

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
    _check_fit_options(n_bootstrap, confidence, caller)
    runs = _prepare(N, L, seeds, groups, caller)
    keep, window_name = _window(runs, window, caller)
    runs = runs.subset(keep)
    x = np.log(runs.sizes)
    slope, intercept = _line(x, runs.log_mean)
    residuals = runs.log_mean - (slope * x + intercept)
    interval: tuple[float, float] = (float("nan"), float("nan"))
    interval_method = "none"
    if n_bootstrap > 0 and _replicated(runs):
        rng = np.random.default_rng(random_state)
        boot = _bootstrap_log_means(runs, n_bootstrap, rng)
        weights = (x - x.mean()) / np.sum((x - x.mean()) ** 2)  # OLS slope = weights @ y
        interval = _percentile_interval(-(boot @ weights), confidence)
        interval_method = f"bootstrap over runs within each N ({n_bootstrap} replicates)"
    elif n_bootstrap > 0 and x.size > 2:
        dof = x.size - 2
        stderr = np.sqrt(np.sum(residuals**2) / dof / np.sum((x - x.mean()) ** 2))
        half = stats.t.ppf(0.5 + confidence / 2, dof) * stderr
        interval = (-slope - half, -slope + half)
        interval_method = "t interval from the residuals (a size has a single run)"
    return PowerLawFit(
        alpha=-slope, alpha_interval=(float(interval[0]), float(interval[1])),
        confidence=confidence, interval_method=interval_method,
        coefficient=float(np.exp(intercept)), loss_floor=0.0,
        n_min=float(runs.sizes[0]), n_max=float(runs.sizes[-1]),
        n_points=int(runs.sizes.size), n_runs=int(sum(r.size for r in runs.log_runs)),
        window=window_name, method="log-log least squares", at_bound=(),
        residual_std=float(residuals.std()),
    )
