"""Is an ID estimate trustworthy? Its dependence on the number of points and on k.

Sharma & Kaplan judge their measurements by how the estimate moves with the
number of points used (figure 19: more points probe shorter distances) and
with the number of neighbours (figure 21: larger k gives smaller estimates).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from idest.estimators._duplicates import DuplicatePolicy, PreparedNeighbors, prepare_neighbors
from idest.estimators._mle import check_k_range, mle_point
from idest.estimators._results import IDCurve
from idest.estimators._twonn import cdf_point, check_ks
from idest.utils.progress import progress_bar
from idest.utils.validation import check_choice, check_fraction, check_int, check_random_state

Method = Literal["twonn", "knn_cdf", "mle"]
_DEFAULT_K = {"twonn": 2, "knn_cdf": 3, "mle": 20}


def _estimate(prepared: PreparedNeighbors, method: str, k: int, discard_fraction: float,
              caller: str) -> float:
    """The point estimate of ``method`` at ``k`` (MLE: biased, mean aggregation)."""
    if method == "mle":
        return mle_point(prepared, k, k, False, "mean", caller).dimension
    return cdf_point(prepared, k, discard_fraction, "regression", method, caller).dimension


def id_vs_k(
    X_or_neighbors: Any,
    ks: Sequence[int] = tuple(range(2, 21)),
    *,
    method: Method = "knn_cdf",
    discard_fraction: float = 0.1,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> IDCurve:
    """The estimate as a function of k, from one neighbour search (Sharma & Kaplan figure 21).

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data or a precomputed self search with at least max(ks) neighbours.
    ks : sequence of int, default=2..20
        The k values (>= 2; the MLE at k = 2 is the biased form).
    method : {"knn_cdf", "mle"}, default="knn_cdf"
        The k-NN CDF (B.16) or the Levina–Bickel MLE (B.12, mean).
    discard_fraction, duplicates, merge_tolerance, progress
        As in :func:`idest.twonn`.

    Returns
    -------
    IDCurve
        ``parameter="k"``, one estimate per k.

    Examples
    --------
    >>> from idest.estimators import id_vs_k
    >>> from idest.datasets import hypercube
    >>> curve = id_vs_k(hypercube(1000, 3, random_state=0), ks=(2, 5, 10), method="mle")
    >>> curve.values.tolist(), curve.dimensions.shape
    ([2, 5, 10], (3, 1))
    """
    caller = "id_vs_k"
    ks = check_ks(ks, caller)
    check_choice(method, "method", caller, ("knn_cdf", "mle"))
    discard_fraction = check_fraction(discard_fraction, "discard_fraction", caller)
    prepared = prepare_neighbors(X_or_neighbors, max(ks), caller=caller, duplicates=duplicates,
                                 merge_tolerance=merge_tolerance, progress=progress)
    values = [_estimate(prepared, method, k, discard_fraction, caller) for k in ks]
    return IDCurve(method, "k", np.array(ks), np.array(values)[:, None])


def id_vs_n_points(
    X: Any,
    sizes: Sequence[int] | None = None,
    *,
    method: Method = "twonn",
    k: int | None = None,
    n_repeats: int = 5,
    discard_fraction: float = 0.1,
    random_state: int | np.random.Generator | None = 0,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> IDCurve:
    """The estimate on random subsets of several sizes (Sharma & Kaplan figure 19).

    Duplicates are removed once from the whole data; each size below the
    distinct-point count is then measured on ``n_repeats`` random subsets
    drawn without replacement (the full set is measured once and repeated in
    its row). A new neighbour search runs on every subset.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or Neighbors with data
        The points.
    sizes : sequence of int, optional
        Subset sizes; default: N, N/2, N/4, ... down to at least 100 points.
    method : {"twonn", "knn_cdf", "mle"}, default="twonn"
        Estimator (regression TwoNN / k-NN CDF, or biased mean MLE).
    k : int, optional
        k of ``knn_cdf`` (default 3) or ``mle`` (default 20); TwoNN uses 2.
    n_repeats : int, default=5
        Random subsets per size.
    discard_fraction, duplicates, merge_tolerance, progress
        As in :func:`idest.twonn`.
    random_state : int, numpy.random.Generator or None, default=0
        Seed of the subset draws.

    Returns
    -------
    IDCurve
        ``parameter="n_points"``, ``dimensions`` of shape (n_sizes, n_repeats).

    Examples
    --------
    >>> from idest.estimators import id_vs_n_points
    >>> from idest.datasets import hypercube
    >>> curve = id_vs_n_points(hypercube(800, 2, random_state=0), n_repeats=3)
    >>> curve.values.tolist(), curve.dimensions.shape
    ([800, 400, 200, 100], (4, 3))
    """
    caller = "id_vs_n_points"
    check_choice(method, "method", caller, ("twonn", "knn_cdf", "mle"))
    k = 2 if method == "twonn" else _DEFAULT_K[method] if k is None else k
    k = check_k_range(k, False, caller)[0]
    n_repeats = check_int(n_repeats, "n_repeats", caller, 1)
    discard_fraction = check_fraction(discard_fraction, "discard_fraction", caller)
    rng = check_random_state(random_state, caller)
    full = prepare_neighbors(X, k, caller=caller, duplicates=duplicates,
                             merge_tolerance=merge_tolerance, progress=progress)
    data = full.neighbors.data
    if data is None:
        raise ValueError(f"{caller}: the Neighbors carry no data to draw subsets from; pass the "
                         "raw data instead.")
    n = data.shape[0]
    if sizes is None:
        sizes = [n // 2**i for i in range(64) if n // 2**i >= max(100, k + 1)] or [n]
    sizes = [check_int(s, "sizes", caller, k + 1, n) for s in sizes]
    out = np.empty((len(sizes), n_repeats))
    with progress_bar(progress, total=len(sizes) * n_repeats, desc="subsets", unit="subset",
                      work=float(n) * n * data.shape[1] * len(sizes)) as bar:
        for row, size in enumerate(sizes):
            for rep in range(n_repeats if size < n else 1):
                subset = np.sort(rng.choice(n, size, replace=False)) if size < n else None
                prepared = full if subset is None else prepare_neighbors(
                    data[subset], k, caller=caller, duplicates="raise")
                out[row, rep] = _estimate(prepared, method, k, discard_fraction, caller)
                if bar is not None:
                    bar.update(n_repeats if size == n else 1)
            if size == n:
                out[row, 1:] = out[row, 0]
    return IDCurve(method, "n_points", np.array(sizes), out)
