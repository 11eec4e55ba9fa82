"""GRIDE: the intrinsic dimension as a function of scale (Denti, Doimo, Laio, Mira 2022).

For a point i and neighbour orders n1 < n2, let μ_i = r_{i,n2} / r_{i,n1}.
If the points around i are a d-dimensional Poisson process, the ball volumes
r_j^d are the arrival times of a unit-rate Poisson process, so
u = μ^(−d) = r_{n1}^d / r_{n2}^d follows Beta(n1, n2 − n1) and μ has density
(Denti et al. 2022, the generalised-ratio law of μ_{n1,n2})

    f(μ | d) = d (μ^d − 1)^(n2−n1−1) / (B(n2 − n1, n1) μ^((n2−1) d + 1)),   μ > 1.

With x_i = log μ_i, the log-likelihood of the N points is, up to a constant,

    ℓ(d) = (N − 1) log d + Σ_i [(n2 − n1 − 1) log(1 − e^(−d x_i)) − n1 d x_i]

(the (N − 1) normalisation is TwoNN's unbiased Pareto form and DADApy's),
and its score, strictly decreasing in d, is

    S(d) = (N − 1)/d + Σ_i x_i [(n2 − n1 − 1) / (1 − e^(−d x_i)) − (n2 − 1)].

d̂ is the root of S, found by Newton's method kept inside a bracket (S is
convex as well as decreasing, so Newton steps from the left never pass the
root); since ℓ is strictly concave the root is unique whenever some μ_i > 1. Its
standard error is 1/√J(d̂), with the observed Fisher information

    J(d) = −S'(d) = (N − 1)/d² + (n2 − n1 − 1) Σ_i x_i² e^(−d x_i) / (1 − e^(−d x_i))².

For n1 = 1, n2 = 2 the likelihood is the Pareto law of TwoNN and
d̂ = (N − 1) / Σ x_i. A tie r_{n1} = r_{n2} (μ = 1) enters S and J through
their limits x / (1 − e^(−dx)) → 1/d and x² e^(−dx) / (1 − e^(−dx))² → 1/d².

The scale analysis evaluates n1 = 1, 2, 4, …, n2 = 2 n1 up to ``range_max``
from one neighbour search, and picks the plateau with the rule of
:func:`find_plateau`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numba
import numpy as np
from scipy.stats import norm
from sklearn.base import BaseEstimator

from idest.estimators._bootstrap import (
    BootstrapOptions,
    ResultEstimatorMixin,
    bootstrap_estimates,
    check_bootstrap,
)
from idest.estimators._duplicates import DuplicatePolicy, PreparedNeighbors, prepare_neighbors
from idest.utils.validation import check_choice, check_fraction, check_int, invalid

Discard = Literal["none", "dadapy"]

#: The bracket search gives up (nan) outside [_MIN_DIMENSION, _MAX_DIMENSION].
_MIN_DIMENSION, _MAX_DIMENSION = 1e-9, 1e9


class NoPlateauWarning(UserWarning):
    """GRIDE found no scale range on which the ID is flat; ``dimension`` is nan."""


@numba.njit(cache=True, nogil=True)
def _score_information(log_mu, counts, n1, n2, d):
    """Score S(d) and observed information J(d) of the GRIDE log-likelihood.

    Point j enters ``counts[j]`` times (1 for the estimate, multinomial for a
    bootstrap resample); the (N − 1) normalisation uses N = Σ counts.
    """
    extra = n2 - n1 - 1
    total = 0
    score = 0.0
    info = 0.0
    for j in range(log_mu.shape[0]):
        c = counts[j]
        if c == 0:
            continue
        total += c
        x = log_mu[j]
        if x == 0.0:  # μ = 1: the limits of the two terms below
            score += c * extra / d
            info += c * extra / (d * d)
            continue
        em = np.expm1(-d * x)  # e^(−dx) − 1: one transcendental per point
        ratio = x / -em
        score += c * (extra * ratio - (n2 - 1) * x)
        info += c * extra * ratio * ratio * (1.0 + em)
    return score + (total - 1) / d, info + (total - 1) / (d * d)


@numba.njit(cache=True, nogil=True)
def _root(log_mu, counts, n1, n2, start):
    """The root of S(d) by Newton's method inside a bracket; nan when there is none.

    S is decreasing and convex in d (each term is), so a Newton step from the
    left of the root never passes it; a step from the right that leaves the
    bracket [lo, hi] (S(lo) > 0 > S(hi)) is replaced by halving (or doubling
    while no hi is known, or bisecting). Stops when a step is below
    1e-13 + 4 eps d or the bracket is that narrow, or when a step below
    1e-9 d fails to halve the previous one (the rounding error of the sum S,
    which grows with N and n2, is reached); nan outside [1e-9, 1e9].
    """
    positive = False
    for j in range(log_mu.shape[0]):
        if counts[j] > 0 and log_mu[j] > 0:
            positive = True
            break
    if not positive:  # every weighted μ = 1: S > 0 for every d
        return np.nan
    tol = 4 * np.finfo(np.float64).eps
    lo, hi, d, last = 0.0, np.inf, start, np.inf
    for _ in range(400):
        s, info = _score_information(log_mu, counts, n1, n2, d)
        if s == 0.0:
            return d
        if s > 0:
            lo = d
        else:
            hi = d
        step = s / info if info > 0 else np.nan
        if abs(step) <= 1e-13 + tol * d:
            return d + step
        if abs(step) <= 1e-9 * d and abs(step) > last / 2:  # S's rounding floor: not quadratic
            return d + step
        new = d + step
        if not lo < new < hi:  # also when the step is not finite
            new = 2 * d if hi == np.inf else (d / 2 if lo == 0.0 else (lo + hi) / 2)
        if new < _MIN_DIMENSION or new > _MAX_DIMENSION:
            return np.nan
        if hi - lo <= 1e-13 + tol * new:
            return new
        d, last = new, abs(new - d)
    return d


@numba.njit(cache=True, nogil=True)
def _bootstrap_roots(log_mu, counts, n1, n2, start):
    """The root of S(d) for every resample (multiplicities: one row of ``counts`` each),
    from ``start``."""
    out = np.empty(counts.shape[0])
    for b in range(counts.shape[0]):
        out[b] = _root(log_mu, counts[b], n1, n2, start)
    return out


def gride_mle(log_mu: np.ndarray, n1: int, n2: int, counts: np.ndarray | None = None,
              start: float = 1.0) -> tuple[float, float]:
    """Maximum-likelihood dimension and its Fisher standard error for one scale (n1, n2).

    Parameters
    ----------
    log_mu : ndarray of shape (n_points,)
        log(r_{n2} / r_{n1}) of every point, all >= 0.
    n1, n2 : int
        Neighbour orders, 1 <= n1 < n2.
    counts : ndarray of int, optional
        Multiplicity of each point (a bootstrap resample); default all 1.
    start : float, default=1.0
        First guess of the Newton iteration.

    Returns
    -------
    dimension, std_error : float
        The root of the score S(d) (Newton's method kept inside a bracket
        [lo, hi] with S(lo) > 0 > S(hi); S is convex and decreasing) and
        1/√J(d̂). Both nan when the score has no root in [1e-9, 1e9] (every
        weighted μ equal to 1, or a single point at n2 = n1 + 1).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.log(np.random.default_rng(0).pareto(3.0, 10_000) + 1)  # TwoNN law, d = 3
    >>> d, se = gride_mle(x, 1, 2)
    >>> bool(abs(d - (x.size - 1) / x.sum()) < 1e-10), round(d, 1), round(se, 2)
    (True, 3.0, 0.03)
    """
    log_mu = np.ascontiguousarray(log_mu, dtype=np.float64)
    if counts is None:
        counts = np.ones(log_mu.shape[0], dtype=np.int64)
    d = _root(log_mu, counts, n1, n2, float(start))
    if np.isnan(d):
        return np.nan, np.nan
    return float(d), float(1.0 / np.sqrt(_score_information(log_mu, counts, n1, n2, d)[1]))


def find_plateau(dimensions: np.ndarray, intervals: np.ndarray, *, rtol: float = 0.05,
                 min_scales: int = 4, confidence: float = 0.95) -> tuple[int, int] | None:
    """The scales on which the ID is flat: the rule GRIDE uses to choose its answer.

    A run of consecutive scales is *flat* when

    1. its intervals agree: one value lies in every scale's interval widened by
       ``rtol`` times its ID, i.e. max_i(low_i − rtol d_i) <= min_i(high_i + rtol d_i);
    2. it does not drift: the least-squares line of d against the scale index
       (one octave per scale) changes by Δ over the run, and |Δ| − z·se(Δ) <=
       rtol·median(d), where se(Δ) follows from each scale's interval read as
       ±z standard errors (independent scales assumed) and z is the ``confidence``
       quantile: the drift is not significantly beyond the tolerance. A curve that
       keeps falling or rising is not called flat where its neighbouring intervals
       overlap (the widening of 1. alone let a 10 % drift pass).

    The plateau is the longest flat run of at least ``min_scales`` scales (four: three
    octaves; over three scales a steady 5 % per octave fall cannot be told from
    noise at a few thousand points); among
    equally long runs, the one at the smallest scales. ``None`` when no run is
    long enough (no plateau; none is invented).

    Parameters
    ----------
    dimensions : ndarray of shape (n_scales,)
        ID at each scale, smallest scale first.
    intervals : ndarray of shape (n_scales, 2)
        Confidence interval at each scale.
    rtol : float, default=0.05
        Relative tolerance: the systematic change still called flat (the
        statistical intervals alone shrink like 1/√N and would call no real
        curve flat at large N).
    min_scales : int, default=4
        Fewest consecutive scales that make a plateau.
    confidence : float, default=0.95
        The level of ``intervals``, to read them as standard errors.

    Returns
    -------
    (first, last) or None
        Indices of the first and last scale of the plateau (inclusive).

    Examples
    --------
    >>> import numpy as np
    >>> d = np.array([9.0, 6.0, 5.1, 5.0, 4.9, 5.0, 3.0])
    >>> find_plateau(d, np.c_[d - 0.05, d + 0.05])
    (2, 5)
    >>> find_plateau(d, np.c_[d - 0.05, d + 0.05], rtol=0.0) is None
    True
    >>> falling = np.array([22.6, 22.0, 20.8, 19.8, 18.7, 17.4])  # 5 % per octave
    >>> find_plateau(falling, np.c_[falling - 1.0, falling + 1.0]) is None
    True
    """
    d = np.asarray(dimensions, dtype=float)
    iv = np.asarray(intervals, dtype=float)
    low, high = iv[:, 0] - rtol * d, iv[:, 1] + rtol * d
    z = float(norm.ppf(0.5 + confidence / 2))
    se = (iv[:, 1] - iv[:, 0]) / (2 * z)

    def drifts(first: int, last: int) -> bool:
        x = np.arange(last - first + 1, dtype=float)
        x -= x.mean()
        weights = x / (x @ x)  # the slope is weights @ d
        change = (weights @ d[first : last + 1]) * (last - first)
        spread = z * (last - first) * np.sqrt(weights**2 @ se[first : last + 1] ** 2)
        return abs(change) - spread > rtol * np.median(d[first : last + 1])

    best = None
    for first in range(d.size):
        last = first
        while (last + 1 < d.size
               and low[first : last + 2].max() <= high[first : last + 2].min()):
            last += 1
        while last - first + 1 >= min_scales and drifts(first, last):
            last -= 1
        if last - first + 1 >= min_scales and (best is None or last - first > best[1] - best[0]):
            best = (first, last)
    return best


@dataclass(frozen=True, eq=False)
class GRIDEResult:
    """GRIDE across scales: the ID at each scale and the plateau chosen from them.

    Attributes
    ----------
    n1, n2 : ndarray of shape (n_scales,), int
        Neighbour orders of each scale: n1 = 1, 2, 4, …, n2 = 2 n1.
    distances : ndarray of shape (n_scales,)
        The scale as a distance: the mean over points of r_{n2}, the distance
        to the n2-th neighbour. (DADApy's ``rs_scaling`` is the mean over
        points of (r_{n1} + r_{n2}) / 2 instead.)
    dimensions : ndarray of shape (n_scales,)
        Maximum-likelihood ID at each scale.
    std_errors : ndarray of shape (n_scales,)
        Standard error from the observed Fisher information, 1/√J(d̂).
    intervals : ndarray of shape (n_scales, 2)
        ``confidence`` interval at each scale: d̂ ± z·std_error (Wald) without
        bootstrap, the percentile bootstrap interval with it ((nan, nan) when
        fewer than two finite resampled estimates differ).
    confidence : float
        Level of the intervals.
    n_bootstrap : int
        Bootstrap resamples per scale (0: Wald intervals).
    dimension : float
        The plateau ID: the median of ``dimensions`` over the plateau scales;
        nan when there is no plateau.
    interval : (float, float)
        From the lowest to the highest interval bound over the plateau scales
        (statistical error and the spread across scales); (nan, nan) when
        there is no plateau.
    plateau_range : (int, int) or None
        n2 of the first and the last scale of the plateau; None when there is
        no plateau.
    plateau_rule : str
        How the plateau was chosen (the automatic rule and its parameters, or
        ``"user"``).
    n_points : int
        Points used (after duplicates were dropped and near-duplicates merged).
    n_used : ndarray of shape (n_scales,), int
        μ entering each scale's likelihood (fewer than ``n_points`` only with
        ``discard="dadapy"``).
    n_duplicates_dropped, n_near_duplicates_merged : int
        As in :class:`IDResult`.
    discard : str
        ``"none"`` or ``"dadapy"``.
    bootstrap_std_errors : ndarray of shape (n_scales,) or None
        Standard deviation of the bootstrap estimates, None without bootstrap.
    method : str
        ``"gride"``.

    Examples
    --------
    >>> import idest
    >>> from idest.datasets import poisson_neighbors
    >>> r = idest.gride(poisson_neighbors(5000, 4, k=16, random_state=0), range_max=16)
    >>> [(int(a), int(b)) for a, b in zip(r.n1, r.n2)]
    [(1, 2), (2, 4), (4, 8), (8, 16)]
    >>> r.plateau_range, round(r.dimension, 1)
    ((2, 16), 4.0)
    """

    n1: np.ndarray
    n2: np.ndarray
    distances: np.ndarray
    dimensions: np.ndarray
    std_errors: np.ndarray
    intervals: np.ndarray
    confidence: float
    n_bootstrap: int
    dimension: float
    interval: tuple[float, float]
    plateau_range: tuple[int, int] | None
    plateau_rule: str
    n_points: int
    n_used: np.ndarray
    n_duplicates_dropped: int = 0
    n_near_duplicates_merged: int = 0
    discard: str = "none"
    bootstrap_std_errors: np.ndarray | None = field(default=None, repr=False)
    method: str = "gride"

    @property
    def scales(self) -> list[tuple[int, int, float]]:
        """(n1, n2, mean r_{n2}) of every scale, smallest first."""
        rows = zip(self.n1, self.n2, self.distances, strict=True)
        return [(int(a), int(b), float(r)) for a, b, r in rows]

    @property
    def plateau_found(self) -> bool:
        """Whether a plateau was found (or given)."""
        return self.plateau_range is not None

    def to_dict(self) -> dict:
        """Every field as JSON-ready Python scalars and lists."""
        out = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = value.tolist() if isinstance(value, np.ndarray) else value
        out["interval"] = list(self.interval)
        out["plateau_range"] = None if self.plateau_range is None else list(self.plateau_range)
        return out


def _check_plateau_range(plateau_range: Any, n2: np.ndarray, caller: str) -> tuple[int, int]:
    """Scale indices (first, last) of a user's (n2_low, n2_high), both among the computed n2."""
    valid = ", ".join(str(int(v)) for v in n2)
    if (not isinstance(plateau_range, Sequence) or len(plateau_range) != 2
            or any(v not in n2 for v in plateau_range) or plateau_range[0] > plateau_range[1]):
        raise invalid(caller, "plateau_range", "a pair (n2_low, n2_high), n2_low <= n2_high, "
                      f"of computed n2 values ({valid})", repr(plateau_range),
                      "Pick two of those values or pass None.")
    return int(np.searchsorted(n2, plateau_range[0])), int(np.searchsorted(n2, plateau_range[1]))


def _dadapy_keep(mu: np.ndarray) -> np.ndarray:
    """DADApy's ``_filter_mus``: keep μ < q50 + 20 (q95 − q50)."""
    q95, q50 = np.percentile(mu, [95, 50])
    return mu < q50 + 20 * (q95 - q50)


def _percentile_interval(estimates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the finite estimates; (nan, nan) unless two of them differ."""
    estimates = estimates[np.isfinite(estimates)]
    if estimates.size < 2 or estimates.min() == estimates.max():
        return np.nan, np.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)


def gride_estimate(
    prepared: PreparedNeighbors, n2_max: int, discard: Discard, options: BootstrapOptions,
    plateau_range: tuple[int, int] | None, plateau_rtol: float, plateau_min_scales: int,
    caller: str,
) -> GRIDEResult:
    """GRIDE at n1 = 1, 2, 4, …, n2 = 2 n1 <= n2_max from prepared neighbours (:func:`gride`)."""
    dist = prepared.neighbors.distances
    n2 = 2 ** np.arange(1, n2_max.bit_length(), dtype=np.int64)
    n1 = n2 // 2
    z = norm.ppf(0.5 + options.confidence / 2)
    dims, ses, intervals, boot_ses, n_used = [], [], [], [], []
    for a, b in zip(n1, n2, strict=True):
        log_mu = np.log(dist[:, b - 1] / dist[:, a - 1])
        if discard == "dadapy":
            log_mu = log_mu[_dadapy_keep(np.exp(log_mu))]
        d, se = gride_mle(log_mu, int(a), int(b))
        if not np.isfinite(d):
            raise ValueError(f"{caller}: μ = r_{b}/r_{a} equals 1 for every point (all "
                             f"neighbours {a}..{b} equidistant, e.g. lattice data), so the "
                             "dimension at this scale is undefined; use a smaller range_max "
                             "or perturb the data.")
        interval = (d - z * se, d + z * se)
        if options.n_bootstrap:
            estimates = bootstrap_estimates(
                [lambda counts, x=log_mu, a=int(a), b=int(b), d=d: _bootstrap_roots(
                    x, counts, a, b, d)], log_mu.size, options)[0]
            interval = _percentile_interval(estimates, options.confidence)
            finite = estimates[np.isfinite(estimates)]
            boot_ses.append(float(finite.std(ddof=1)) if finite.size > 1 else np.nan)
        dims.append(d)
        ses.append(se)
        intervals.append(interval)
        n_used.append(log_mu.size)
    dims_a, intervals_a = np.array(dims), np.array(intervals).reshape(-1, 2)
    if plateau_range is None:
        found = find_plateau(dims_a, intervals_a, rtol=plateau_rtol,
                             min_scales=plateau_min_scales, confidence=options.confidence)
        rule = (f"auto: longest run of >= {plateau_min_scales} consecutive scales whose "
                f"intervals, widened by {plateau_rtol:g} x ID, share a value and whose drift "
                f"is not significantly beyond {plateau_rtol:g} x ID; ties: smaller scales")
    else:
        found = _check_plateau_range(plateau_range, n2, caller)
        rule = "user"
    if found is None:
        warnings.warn(f"{caller}: no plateau: no {plateau_min_scales} consecutive scales agree "
                      f"within their intervals widened by {plateau_rtol:g} x ID without "
                      f"drifting further (IDs "
                      f"{np.round(dims_a, 2).tolist()} at n2 = {n2.tolist()}); dimension is nan. "
                      "Read the curve, or pass plateau_range=(n2_low, n2_high).",
                      NoPlateauWarning, stacklevel=3)
        dimension, interval, plateau = np.nan, (np.nan, np.nan), None
    else:
        sl = slice(found[0], found[1] + 1)
        dimension = float(np.median(dims_a[sl]))
        interval = (float(intervals_a[sl, 0].min()), float(intervals_a[sl, 1].max()))
        plateau = (int(n2[found[0]]), int(n2[found[1]]))
    return GRIDEResult(
        n1=n1, n2=n2, distances=dist[:, n2 - 1].mean(axis=0), dimensions=dims_a,
        std_errors=np.array(ses), intervals=intervals_a, confidence=options.confidence,
        n_bootstrap=options.n_bootstrap, dimension=dimension, interval=interval,
        plateau_range=plateau, plateau_rule=rule, n_points=prepared.neighbors.n_queries,
        n_used=np.array(n_used, dtype=np.int64),
        n_duplicates_dropped=prepared.n_duplicates_dropped,
        n_near_duplicates_merged=prepared.n_near_duplicates_merged, discard=discard,
        bootstrap_std_errors=np.array(boot_ses) if options.n_bootstrap else None,
    )


def gride(
    X_or_neighbors: Any,
    range_max: int = 64,
    *,
    plateau_range: tuple[int, int] | None = None,
    plateau_rtol: float = 0.05,
    plateau_min_scales: int = 4,
    discard: Discard = "none",
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> GRIDEResult:
    """GRIDE intrinsic dimension across scales, with the plateau chosen (Denti et al. 2022).

    At each scale n1 = 1, 2, 4, …, n2 = 2 n1 <= ``range_max``, the
    maximum-likelihood d of the law of μ = r_{n2}/r_{n1},
    f(μ | d) = d (μ^d − 1)^(n2−n1−1) / (B(n2 − n1, n1) μ^((n2−1)d+1)), found as
    the root of the score by a bracketed Newton iteration (module docstring of
    ``idest.estimators._gride`` for S(d) and J(d)). Noise inflates the ID at
    small scales, curvature and finite size bend it at large ones; the answer
    is read on the plateau between (:func:`idest.estimators.find_plateau`).

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data, or a precomputed :func:`idest.knn` self search with at least
        the largest n2 neighbours. One search serves every scale.
    range_max : int, default=64
        Largest n2 (DADApy's ``range_max``): the scales stop at the largest
        power of two <= range_max, which must be < the number of points.
    plateau_range : (int, int), optional
        Read the plateau on the scales with n2_low <= n2 <= n2_high (both
        among the computed n2) instead of choosing it automatically.
    plateau_rtol : float, default=0.05
        Relative tolerance of the automatic rule (:func:`find_plateau`): scales
        whose intervals, widened by this fraction of their ID, share a value, and
        whose fitted drift is not significantly beyond it, are flat.
    plateau_min_scales : int, default=4
        Fewest consecutive flat scales that make a plateau.
    discard : {"none", "dadapy"}, default="none"
        "none": every μ enters the likelihood (the paper's estimator; at
        n1 = 1, n2 = 2 it is TwoNN's unbiased Pareto MLE (N − 1) / Σ log μ
        with no μ discarded). "dadapy": at each scale drop μ >= q50 +
        20 (q95 − q50), the rule DADApy applies before its fit, to compare
        with numbers computed by DADApy. Small clusters of near-identical
        points (repeated text in activation data) give a few very large μ at
        the scale of the cluster size, and they can dominate that scale's
        likelihood: a dip in the curve there; "dadapy" removes them.
    n_bootstrap : int, default=0
        Resamples of the points per scale for percentile intervals (0: Wald
        intervals from the Fisher information). Every scale sees the same
        resamples of the points, except with ``discard="dadapy"``: there each
        scale resamples the μ it kept after the discard.
    confidence : float, default=0.95
        Level of the intervals.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the bootstrap (a Generator or None gives one seed drawn from it).
    duplicates : {"drop", "raise"}, default="drop"
        Exact duplicates: keep one copy of each (warning), or raise.
    merge_tolerance : float, optional
        Merge points closer than this fraction of the median distance to the second
        nearest neighbour (r_2; as :func:`idest.twonn`).
    progress : bool, optional
        Progress bars (k-NN search, bootstrap).

    Returns
    -------
    GRIDEResult
        Scales, ID and interval at each, and the plateau ID, interval and n2
        range. With no plateau, ``dimension`` is nan, ``plateau_range`` None,
        and a :class:`NoPlateauWarning` says so.

    Notes
    -----
    Differences from DADApy's ``Data.return_id_scaling_gride`` (same n1, n2;
    with ``discard="dadapy"`` each scale's ID agrees to ~1e-7): DADApy keeps
    exact duplicates (r = 0 replaced by machine epsilon), idest removes them
    from the data (``duplicates``); DADApy clips 1 − μ^(−d) at 2e-7, idest uses
    the exact limits at μ = 1; DADApy bisects on d in [0.001, 1000], idest
    brackets without an upper bound; DADApy's error uses N instead of N − 1 in
    J and counts the μ its filter dropped; its scale distance is the mean of
    (r_{n1} + r_{n2}) / 2, idest's the mean r_{n2}. The standard error and
    the bootstrap both treat the μ_i as independent; neighbourhoods overlap
    more at large n1, so both understate the spread there.

    Examples
    --------
    >>> import idest
    >>> from idest.datasets import hypercube
    >>> r = idest.gride(hypercube(4000, 3, random_state=0), range_max=32)
    >>> r.n2.tolist(), r.plateau_range, round(r.dimension, 1)
    ([2, 4, 8, 16, 32], (2, 32), 2.9)
    """
    caller = "gride"
    range_max = check_int(range_max, "range_max", caller, 2)
    check_choice(discard, "discard", caller, ("none", "dadapy"))
    plateau_rtol = check_fraction(plateau_rtol, "plateau_rtol", caller)
    plateau_min_scales = check_int(plateau_min_scales, "plateau_min_scales", caller, 1)
    options = check_bootstrap(caller, n_bootstrap, confidence, random_state, progress)
    n2_max = 1 << (range_max.bit_length() - 1)
    prepared = prepare_neighbors(X_or_neighbors, n2_max, caller=caller, duplicates=duplicates,
                                 merge_tolerance=merge_tolerance, progress=progress)
    return gride_estimate(prepared, n2_max, discard, options, plateau_range, plateau_rtol,
                          plateau_min_scales, caller)


class GRIDE(ResultEstimatorMixin, BaseEstimator):
    """GRIDE across scales as a scikit-learn style estimator (see :func:`gride`).

    Parameters
    ----------
    range_max, plateau_range, plateau_rtol, plateau_min_scales, discard, n_bootstrap, \
confidence, random_state, duplicates, merge_tolerance, progress
        As in :func:`gride`, in the same order.

    Attributes
    ----------
    dimension_ : float
        Plateau ID (nan when there is no plateau).
    interval_ : (float, float)
    dimensions_ : ndarray of shape (n_scales,)
        ID at each scale.
    plateau_range_ : (int, int) or None
    n_points_, n_duplicates_dropped_ : int
    n_features_in_ : int
        Only when fitted on raw data.
    result_ : GRIDEResult

    Examples
    --------
    >>> from idest import GRIDE
    >>> from idest.datasets import hypercube
    >>> est = GRIDE(32).fit(hypercube(4000, 3, random_state=0))
    >>> round(est.dimension_, 1), est.dimensions_.shape
    (2.9, (5,))
    """

    def __init__(self, range_max: int = 64, *, plateau_range: tuple[int, int] | None = None,
                 plateau_rtol: float = 0.05, plateau_min_scales: int = 4,
                 discard: Discard = "none", n_bootstrap: int = 0, confidence: float = 0.95,
                 random_state: int | np.random.Generator | None = 0,
                 duplicates: DuplicatePolicy = "drop",
                 merge_tolerance: float | None = None, progress: bool | None = None):
        self.range_max = range_max
        self.plateau_range = plateau_range
        self.plateau_rtol = plateau_rtol
        self.plateau_min_scales = plateau_min_scales
        self.discard = discard
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.random_state = random_state
        self.duplicates = duplicates
        self.merge_tolerance = merge_tolerance
        self.progress = progress

    def fit(self, X: Any, y: None = None) -> GRIDE:
        """Estimate the ID of ``X`` (array-like or Neighbors) at every scale."""
        result = self._estimate(gride, X)
        self._store(result, X)
        self.dimensions_ = result.dimensions
        self.plateau_range_ = result.plateau_range
        return self
