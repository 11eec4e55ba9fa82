"""Every estimator from one neighbour search: what a layer scan runs per layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from idest.estimators._bootstrap import check_bootstrap, make_results
from idest.estimators._duplicates import DuplicatePolicy, prepare_neighbors
from idest.estimators._mle import check_k_range, mle_point
from idest.estimators._results import IDResult
from idest.estimators._twonn import cdf_point, check_ks
from idest.utils.validation import check_fraction


def estimate_all(
    X_or_neighbors: Any,
    *,
    ks: Sequence[int] = (2, 3, 4),
    mle_k: int | tuple[int, int] | None = 20,
    discard_fraction: float = 0.1,
    n_bootstrap: int = 0,
    confidence: float = 0.95,
    random_state: int | np.random.Generator | None = 0,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> list[IDResult]:
    """TwoNN, the k-NN CDF for each k in ``ks`` and the Levina–Bickel MLE, from one k-NN search.

    The neighbours are searched once with the largest k needed (and once more
    on the distinct points if duplicates had to be removed); every estimator
    then reads its columns, and the bootstrap draws each batch of resamples once for
    all of them.

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data or a precomputed :func:`idest.knn` self search.
    ks : sequence of int, default=(2, 3, 4)
        k of the k-NN CDF estimates; k = 2 is reported once, as TwoNN.
    mle_k : int or (int, int) or None, default=20
        k (or range) of the MLE (mean aggregation, biased B.12); None skips it.
    discard_fraction : float, default=0.1
        Fraction of the largest μ_k left out of each CDF fit.
    n_bootstrap, confidence, random_state, duplicates, merge_tolerance, progress
        As in :func:`idest.twonn`; every estimator sees the same resamples.

    Returns
    -------
    list of IDResult
        TwoNN (k = 2) first, then ``knn_cdf`` for each other k in ``ks``,
        then the MLE.

    Examples
    --------
    >>> import idest
    >>> from idest.datasets import hypercube
    >>> [(r.method, r.k) for r in idest.estimate_all(hypercube(1000, 3, random_state=0))]
    [('twonn', 2), ('knn_cdf', 3), ('knn_cdf', 4), ('mle', 20)]
    """
    caller = "estimate_all"
    cdf_ks = [k for k in dict.fromkeys(check_ks(ks, caller)) if k != 2]
    discard_fraction = check_fraction(discard_fraction, "discard_fraction", caller)
    k1, k2 = check_k_range(mle_k, False, caller) if mle_k is not None else (2, 2)
    options = check_bootstrap(caller, n_bootstrap, confidence, random_state, progress)
    prepared = prepare_neighbors(X_or_neighbors, max([2, k2, *cdf_ks]), caller=caller,
                                 duplicates=duplicates, merge_tolerance=merge_tolerance,
                                 progress=progress)
    points = [cdf_point(prepared, k, discard_fraction, "regression",
                        "twonn" if k == 2 else "knn_cdf", caller) for k in [2, *cdf_ks]]
    if mle_k is not None:
        points.append(mle_point(prepared, k1, k2, False, "mean", caller))
    return make_results(points, prepared, options)
