"""The Levina–Bickel maximum-likelihood estimator and its local (per-point) values.

Per point x, with r_j its distance to the j-th neighbour (Sharma & Kaplan
B.11–B.13, Levina & Bickel 2005),

    m_k(x) = (k − 1) / Σ_{j=1}^{k−1} log(r_k / r_j)      (biased, B.12)
    m_k(x) = (k − 2) / Σ_{j=1}^{k−1} log(r_k / r_j)      (unbiased, B.13)

The global estimate is their mean (the paper), or the inverse of the mean of
their inverses (MacKay & Ghahramani 2005, what scikit-dimension calls
``comb="mle"``). A range k1..k2 averages the global estimates over k, as
Levina & Bickel do.
"""

from __future__ import annotations

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
from idest.estimators._results import IDResult
from idest.utils.validation import check_choice, check_int, invalid

Aggregation = Literal["mean", "mackay_ghahramani"]


def check_k_range(k: Any, unbiased: bool, caller: str) -> tuple[int, int]:
    """(k1, k2) from an int k or a pair; k1 >= 2 (>= 3 when unbiased), k1 <= k2."""
    low = 3 if unbiased else 2
    if isinstance(k, tuple | list) and len(k) == 2:
        k1 = check_int(k[0], "k", caller, low)
        return k1, check_int(k[1], "k", caller, k1)
    if isinstance(k, tuple | list):
        raise invalid(caller, "k", "an int or a pair (k1, k2)", repr(k))
    k1 = check_int(k, "k", caller, low)
    return k1, k1


def mle_point(prepared: PreparedNeighbors, k1: int, k2: int, unbiased: bool,
              aggregation: Aggregation, caller: str) -> PointEstimate:
    """The Levina–Bickel estimate of prepared neighbours (see :func:`mle`), with the kernel
    that re-estimates it on resamples."""
    inverse = _kernels.mle_inverse_local(prepared.neighbors.distances, k1, k2, unbiased)
    mackay = aggregation == "mackay_ghahramani"
    n_infinite = int(np.count_nonzero((inverse == 0).any(axis=1)))
    if n_infinite and not mackay:
        raise ValueError(f"{caller}: {n_infinite} point(s) have all of their k nearest neighbours "
                         "at the same distance (r_1 = r_k), so their local dimension is "
                         "infinite; use a larger k or aggregation='mackay_ghahramani'.")
    terms = _kernels.mle_terms(inverse, mackay)
    ones = np.ones(inverse.shape[0], dtype=np.int64)
    dimension = _kernels.mle_aggregate(terms, ones, mackay)
    if not np.isfinite(dimension):
        raise ValueError(f"{caller}: every point has r_1 = r_k, so the dimension is undefined; "
                         "use a larger k.")
    with np.errstate(divide="ignore"):
        local = (1.0 / inverse).mean(axis=1)
    k_text = f"k {k1}" if k1 == k2 else f"k {k1}..{k2}"
    variant = f"{'unbiased' if unbiased else 'biased'}, {aggregation}, {k_text}"
    return PointEstimate("mle", k2, dimension, variant,
                         lambda counts: _kernels.bootstrap_mle(terms, counts, mackay), local)


def mle_estimate(
    prepared: PreparedNeighbors, k1: int, k2: int, unbiased: bool, aggregation: Aggregation,
    options: BootstrapOptions, caller: str,
) -> IDResult:
    """:func:`mle_point` with its bootstrap interval."""
    point = mle_point(prepared, k1, k2, unbiased, aggregation, caller)
    return make_results([point], prepared, options)[0]


def mle(
    X_or_neighbors: Any,
    k: int | tuple[int, int] = 20,
    *,
    unbiased: bool = False,
    aggregation: Aggregation = "mean",
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> IDResult:
    """Levina–Bickel maximum-likelihood intrinsic dimension (Sharma & Kaplan B.11–B.13).

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data, or a precomputed :func:`idest.knn` self search with at least k
        (k2) neighbours.
    k : int or (int, int), default=20
        Neighbours per point (r_1..r_k), or a range (k1, k2) whose estimates
        are averaged.
    unbiased : bool, default=False
        Normalise by k − 2 (B.13) instead of k − 1 (B.12).
    aggregation : {"mean", "mackay_ghahramani"}, default="mean"
        Mean of the local estimates, or inverse of the mean of their inverses.
    n_bootstrap, confidence, random_state, duplicates, merge_tolerance, progress
        As in :func:`idest.twonn`.

    Returns
    -------
    IDResult
        ``method="mle"``, ``k`` (k2 for a range), and ``local_dimensions``:
        each point's m_k(x) (averaged over the range), the local ID of
        figures 17 and 22.

    Examples
    --------
    >>> import idest
    >>> from idest.datasets import hypercube
    >>> r = idest.mle(hypercube(2000, 3, random_state=0), k=10)
    >>> round(r.dimension, 1), r.local_dimensions.shape
    (3.3, (2000,))
    """
    caller = "mle"
    k1, k2 = check_k_range(k, bool(unbiased), caller)
    check_choice(aggregation, "aggregation", caller, ("mean", "mackay_ghahramani"))
    options = check_bootstrap(caller, n_bootstrap, confidence, random_state, progress)
    prepared = prepare_neighbors(X_or_neighbors, k2, caller=caller, duplicates=duplicates,
                                 merge_tolerance=merge_tolerance, progress=progress)
    return mle_estimate(prepared, k1, k2, bool(unbiased), aggregation, options, caller)


class MLE(ResultEstimatorMixin, BaseEstimator):
    """Levina–Bickel MLE as a scikit-learn style estimator (see :func:`mle`).

    Parameters
    ----------
    k, unbiased, aggregation, n_bootstrap, confidence, random_state, duplicates, \
merge_tolerance, progress
        As in :func:`mle`, in the same order.

    Attributes
    ----------
    dimension_ : float
    local_dimensions_ : ndarray of shape (n_points,)
    interval_ : tuple of float
        (nan, nan) without bootstrap.
    n_points_, n_duplicates_dropped_ : int
    result_ : IDResult

    Examples
    --------
    >>> from idest import MLE
    >>> from idest.datasets import hypercube
    >>> round(MLE(k=10).fit(hypercube(2000, 3, random_state=0)).dimension_, 1)
    3.3
    """

    def __init__(self, k: int | tuple[int, int] = 20, *, unbiased: bool = False,
                 aggregation: Aggregation = "mean", n_bootstrap: int = 0,
                 confidence: float = 0.95, random_state: int | np.random.Generator | None = 0,
                 duplicates: DuplicatePolicy = "drop", merge_tolerance: float | None = None,
                 progress: bool | None = None):
        self.k = k
        self.unbiased = unbiased
        self.aggregation = aggregation
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.random_state = random_state
        self.duplicates = duplicates
        self.merge_tolerance = merge_tolerance
        self.progress = progress

    def fit(self, X: Any, y: None = None) -> MLE:
        """Estimate the dimension of ``X`` (array-like or Neighbors)."""
        result = self._estimate(mle, X)
        self._store(result, X)
        self.local_dimensions_ = result.local_dimensions
        return self
