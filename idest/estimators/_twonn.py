"""TwoNN and its k-neighbour generalisation, the k-NN CDF estimator.

For μ_k = r_k / r_1, a locally uniform density on a d-dimensional manifold
gives C(μ_k) = (1 − μ_k^(−d))^(k−1) (Sharma & Kaplan eq. 2.7–2.8, B.15), so

    −log(1 − C^(1/(k−1))) = d · log μ_k          (B.16)

and d is the slope of a least-squares line through the origin fitted to the
sorted log μ_k against the empirical CDF C_i = i / N. k = 2 is TwoNN (Facco
et al. 2017, B.5–B.6), where μ_2 is Pareto with shape d. The largest μ are
discarded from the fit (default 10 %, as Facco et al. and the peer libraries),
and the last point (C = 1) is always left out because its target is infinite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator

from idest.estimators import _kernels
from idest.estimators._bootstrap import (
    BootstrapOptions,
    PointEstimate,
    ResultEstimatorMixin,
    check_bootstrap,
    make_results,
)
from idest.estimators._duplicates import DuplicatePolicy, PreparedNeighbors, prepare_neighbors
from idest.estimators._results import CDFFit, IDResult
from idest.utils.validation import check_choice, check_fraction, check_int, invalid

TwoNNFit = Literal["regression", "mle"]


def n_fitted(n_points: int, discard_fraction: float, caller: str) -> int:
    """Number of smallest μ kept in the fit: int(N (1 − discard)), at most N − 1."""
    n_fit = min(int(n_points * (1 - discard_fraction)), n_points - 1)
    if n_fit < 2:
        raise ValueError(f"{caller}: only {n_fit} point(s) are left for the fit out of "
                         f"{n_points} with discard_fraction={discard_fraction}; use more points "
                         "or a smaller discard_fraction.")
    return n_fit


def fit_points(prepared: PreparedNeighbors, k: int, discard_fraction: float,
               caller: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted log μ_k, the point each came from, and the fit targets of the n_fit smallest.

    The targets are −log(1 − C_i^(1/(k−1))) (B.16); the order is stable, so equal ratios
    keep the order of their points.
    """
    x = _kernels.log_ratios(prepared.neighbors.distances, k)
    order = np.argsort(x, kind="stable")
    n = x.size
    return x[order], order, _kernels.cdf_targets(n, n_fitted(n, discard_fraction, caller), k)


def cdf_point(prepared: PreparedNeighbors, k: int, discard_fraction: float,
              fit_method: TwoNNFit, method: str, caller: str) -> PointEstimate:
    """The k-NN CDF slope (or, for ``fit_method="mle"``, the censored Pareto MLE), with the
    kernel that re-estimates it on resamples."""
    sorted_x, order, targets = fit_points(prepared, k, discard_fraction, caller)
    pareto = fit_method == "mle"
    ones = np.ones(sorted_x.size, dtype=np.int64)
    cum_targets = _kernels.cumulative_targets(targets)
    steps = _kernels.cdf_steps(sorted_x, pareto)
    dimension = _kernels.cdf_fit(sorted_x, order, ones, cum_targets, steps, pareto)
    if not np.isfinite(dimension):
        raise ValueError(f"{caller}: μ_{k} = r_{k}/r_1 equals 1 for every fitted point (all "
                         f"{k} nearest neighbours equidistant, e.g. lattice data), so the "
                         "dimension is undefined; use a larger k or the MLE.")
    return PointEstimate(
        method, k, dimension, f"{fit_method}, discard {discard_fraction:g}",
        lambda counts: _kernels.bootstrap_cdf(sorted_x, order, cum_targets, steps, counts,
                                              pareto),
    )


def cdf_estimate(
    prepared: PreparedNeighbors, k: int, discard_fraction: float, fit_method: TwoNNFit,
    method: str, options: BootstrapOptions, caller: str,
) -> IDResult:
    """:func:`cdf_point` with its bootstrap interval."""
    point = cdf_point(prepared, k, discard_fraction, fit_method, method, caller)
    return make_results([point], prepared, options)[0]


def twonn(
    X_or_neighbors: Any,
    *,
    discard_fraction: float = 0.1,
    fit_method: TwoNNFit = "regression",
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> IDResult:
    """TwoNN intrinsic dimension (Facco et al. 2017; Sharma & Kaplan B.1).

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data, or a precomputed :func:`idest.knn` self search (k >= 2).
    discard_fraction : float, default=0.1
        Fraction of the largest μ = r_2 / r_1 left out of the fit.
    fit_method : {"regression", "mle"}, default="regression"
        Least-squares slope of −log(1 − i/N) on sorted log μ through the
        origin (B.6), or the unbiased Pareto maximum-likelihood estimate,
        (n − 1) / (Σ log μ_(i) + (N − n) log μ_(n)) over the n kept μ with
        the discarded ones censored. The fit keeps at most N − 1 values (the
        regression needs it), so even with ``discard_fraction=0`` the largest
        μ is censored: (N − 2) / (Σ_{i<N} log μ_(i) + log μ_(N−1)), within
        1/N of the uncensored (N − 1) / Σ log μ; standard error ≈ d / √N.
    n_bootstrap : int, default=0
        Resamples of the points for a percentile interval (0: none).
    confidence : float, default=0.95
        Level of the bootstrap interval.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the bootstrap: an int gives the same resamples on every call;
        a Generator (or None, fresh entropy) gives one seed drawn from it.
    duplicates : {"drop", "raise"}, default="drop"
        Duplicates (exact, or closer than the precision of the input's dtype: 4 machine
        epsilons of their norm): keep one copy of each (warning), or raise.
    merge_tolerance : float, optional
        Merge points closer than this fraction of the median distance to the second
        nearest neighbour (see :func:`idest.twonn`'s notes on duplicates).
    progress : bool, optional
        Progress bars (k-NN search, bootstrap).

    Returns
    -------
    IDResult
        ``method="twonn"``, ``k=2``.

    See Also
    --------
    knn_cdf : the same fit on μ_k for any k >= 2.

    Examples
    --------
    >>> import idest
    >>> from idest.datasets import hypercube
    >>> r = idest.twonn(hypercube(2000, 3, random_state=0), n_bootstrap=100)
    >>> low, high = r.interval
    >>> round(r.dimension, 1), low < r.dimension < high, r.confidence
    (2.9, True, 0.95)
    """
    caller = "twonn"
    discard_fraction = check_fraction(discard_fraction, "discard_fraction", caller)
    check_choice(fit_method, "fit_method", caller, ("regression", "mle"))
    options = check_bootstrap(caller, n_bootstrap, confidence, random_state, progress)
    prepared = prepare_neighbors(X_or_neighbors, 2, caller=caller, duplicates=duplicates,
                                 merge_tolerance=merge_tolerance, progress=progress)
    return cdf_estimate(prepared, 2, discard_fraction, fit_method, "twonn", options, caller)


def check_ks(ks: Any, caller: str) -> tuple[int, ...]:
    """A non-empty sequence of ints >= 2."""
    if isinstance(ks, int | np.integer):
        ks = (ks,)
    if not isinstance(ks, Sequence | np.ndarray) or len(ks) == 0:
        raise invalid(caller, "ks", "a non-empty sequence of ints >= 2, e.g. (2, 3, 4)", repr(ks))
    return tuple(check_int(k, "ks", caller, 2) for k in ks)


def knn_cdf(
    X_or_neighbors: Any,
    k: int = 3,
    *,
    discard_fraction: float = 0.1,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> IDResult:
    """The k-NN CDF estimate for one k (Sharma & Kaplan B.16).

    The slope through the origin of −log(1 − C_i^(1/(k−1))) on the sorted
    log μ_k, μ_k = r_k / r_1, C_i = i / N (eq. 2.7–2.8, B.14–B.16); k = 2 is
    TwoNN. The paper compares k = 2, 3, 4: to get several k from one
    neighbour search, pass a precomputed ``idest.knn(X, max(ks))`` to each
    call, or use :func:`idest.estimate_all` (``ks=``) or :func:`idest.id_vs_k`.

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data, or a precomputed self search with at least k neighbours.
    k : int, default=3
        The neighbour of μ_k, >= 2.
    discard_fraction, n_bootstrap, confidence, random_state, duplicates, merge_tolerance, progress
        As in :func:`twonn`.

    Returns
    -------
    IDResult
        ``method="knn_cdf"``, ``k``.

    Examples
    --------
    >>> import idest
    >>> from idest.datasets import hypercube
    >>> nn = idest.knn(hypercube(2000, 3, random_state=0), k=4)
    >>> [round(idest.knn_cdf(nn, k).dimension, 1) for k in (2, 3, 4)]
    [2.9, 2.9, 2.9]
    """
    caller = "knn_cdf"
    k = check_int(k, "k", caller, 2)
    discard_fraction = check_fraction(discard_fraction, "discard_fraction", caller)
    options = check_bootstrap(caller, n_bootstrap, confidence, random_state, progress)
    prepared = prepare_neighbors(X_or_neighbors, k, caller=caller, duplicates=duplicates,
                                 merge_tolerance=merge_tolerance, progress=progress)
    return cdf_estimate(prepared, k, discard_fraction, "regression", "knn_cdf", options, caller)


def cdf_fit_data(
    X_or_neighbors: Any,
    k: int = 2,
    *,
    discard_fraction: float = 0.1,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> CDFFit:
    """The points and slope of the k-NN CDF fit, for a plot like Sharma & Kaplan figure 16.

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data, or a precomputed self search with at least k neighbours.
    k : int, default=2
        The neighbour of μ_k, >= 2 (2: TwoNN).
    discard_fraction, n_bootstrap, confidence, random_state, duplicates, merge_tolerance, progress
        As in :func:`twonn`; the interval is that of :func:`knn_cdf`.

    Returns
    -------
    CDFFit

    Examples
    --------
    >>> import idest
    >>> from idest.datasets import hypercube
    >>> f = idest.cdf_fit_data(hypercube(1000, 2, random_state=0), k=3)
    >>> f.log_mu.shape == f.target.shape, round(f.dimension, 1)
    (True, 1.9)
    """
    caller = "cdf_fit_data"
    k = check_int(k, "k", caller, 2)
    discard_fraction = check_fraction(discard_fraction, "discard_fraction", caller)
    options = check_bootstrap(caller, n_bootstrap, confidence, random_state, progress)
    prepared = prepare_neighbors(X_or_neighbors, k, caller=caller, duplicates=duplicates,
                                 merge_tolerance=merge_tolerance, progress=progress)
    sorted_x, _, targets = fit_points(prepared, k, discard_fraction, caller)
    result = cdf_estimate(prepared, k, discard_fraction, "regression", "knn_cdf", options, caller)
    return CDFFit(k, sorted_x[: targets.size], targets, result.dimension, result.interval,
                  result.confidence)


class TwoNN(ResultEstimatorMixin, BaseEstimator):
    """TwoNN intrinsic dimension as a scikit-learn style estimator (see :func:`twonn`).

    Parameters
    ----------
    discard_fraction, fit_method, n_bootstrap, confidence, random_state, duplicates, \
merge_tolerance, progress
        As in :func:`twonn`, in the same order.

    Attributes
    ----------
    dimension_ : float
    interval_ : tuple of float
        (nan, nan) without bootstrap.
    n_points_, n_duplicates_dropped_ : int
    result_ : IDResult

    Examples
    --------
    >>> from idest import TwoNN
    >>> from idest.datasets import hypercube
    >>> round(TwoNN().fit(hypercube(2000, 3, random_state=0)).dimension_, 1)
    2.9
    """

    def __init__(self, *, discard_fraction: float = 0.1, fit_method: TwoNNFit = "regression",
                 n_bootstrap: int = 0, confidence: float = 0.95,
                 random_state: int | np.random.Generator | None = 0,
                 duplicates: DuplicatePolicy = "drop", merge_tolerance: float | None = None,
                 progress: bool | None = None):
        self.discard_fraction = discard_fraction
        self.fit_method = fit_method
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.random_state = random_state
        self.duplicates = duplicates
        self.merge_tolerance = merge_tolerance
        self.progress = progress

    def fit(self, X: Any, y: None = None) -> TwoNN:
        """Estimate the dimension of ``X`` (array-like or Neighbors)."""
        self._store(self._estimate(twonn, X), X)
        return self


class KNNCDF(ResultEstimatorMixin, BaseEstimator):
    """The k-NN CDF estimator for one k as a scikit-learn style estimator (see :func:`knn_cdf`).

    Parameters
    ----------
    k, discard_fraction, n_bootstrap, confidence, random_state, duplicates, merge_tolerance, \
progress
        As in :func:`knn_cdf`, in the same order.

    Attributes
    ----------
    dimension_ : float
    interval_ : tuple of float
        (nan, nan) without bootstrap.
    n_points_, n_duplicates_dropped_ : int
    result_ : IDResult

    Examples
    --------
    >>> from idest import KNNCDF
    >>> from idest.datasets import hypercube
    >>> round(KNNCDF(k=3).fit(hypercube(2000, 3, random_state=0)).dimension_, 1)
    2.9
    """

    def __init__(self, k: int = 3, *, discard_fraction: float = 0.1, n_bootstrap: int = 0,
                 confidence: float = 0.95, random_state: int | np.random.Generator | None = 0,
                 duplicates: DuplicatePolicy = "drop", merge_tolerance: float | None = None,
                 progress: bool | None = None):
        self.k = k
        self.discard_fraction = discard_fraction
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.random_state = random_state
        self.duplicates = duplicates
        self.merge_tolerance = merge_tolerance
        self.progress = progress

    def fit(self, X: Any, y: None = None) -> KNNCDF:
        """Estimate the dimension of ``X`` (array-like or Neighbors)."""
        self._store(self._estimate(knn_cdf, X), X)
        return self
