"""The input of every estimator: neighbours of distinct points, duplicates removed from the data.

An exact duplicate makes r_1 = 0 and μ = r_k / r_1 infinite. Skipping those
queries is not enough: the copies left behind in the reference set are exact
ties (r_1 = r_2, μ = 1) that bias every estimate upward. The policy here
(``duplicates="drop"``, the default) keeps one copy of each distinct point,
removes the extra copies from the data, recomputes the neighbours and warns
with the count; ``duplicates="raise"`` raises instead. Near-duplicates (r_1
tiny but not 0, as bf16/fp32 activations produce) are merged on request:
``merge_tolerance=t`` merges points closer than t times the median r_1,
keeping the lowest-numbered point of each connected group.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from idest.neighbors import Neighbors, knn
from idest.utils.validation import check_array, check_choice, check_positive

DuplicatePolicy = Literal["drop", "raise"]


class DuplicatesWarning(UserWarning):
    """Exact duplicates or near-duplicates were removed from the data before estimating."""


@dataclass(frozen=True)
class PreparedNeighbors:
    """Neighbours of distinct points and how many points were removed to get them.

    Attributes
    ----------
    neighbors : Neighbors
        At least ``k`` neighbours per point, r_1 > 0 everywhere.
    n_duplicates_dropped : int
        Extra copies of exactly repeated points removed.
    n_near_duplicates_merged : int
        Points removed by the near-duplicate merge.
    """

    neighbors: Neighbors
    n_duplicates_dropped: int = 0
    n_near_duplicates_merged: int = 0


def check_neighbors(nn: Neighbors, k: int, caller: str) -> None:
    """Raise ValueError unless ``nn`` is a self search with at least ``k`` sorted finite columns."""
    if not nn.self_excluded:
        raise ValueError(
            f"{caller}: the Neighbors were computed against a separate reference set; "
            "estimators need every point against the others: use idest.knn(X, k)."
        )
    d = nn.distances
    if d.ndim != 2 or d.shape[0] < 1:
        raise ValueError(f"{caller}: Neighbors.distances must be a non-empty 2-D array, "
                         f"got shape {d.shape}.")
    if nn.k < k:
        raise ValueError(f"{caller}: the Neighbors hold {nn.k} neighbour(s) per point but "
                         f"{k} are needed; recompute them with idest.knn(X, k={k}).")
    if nn.n_queries <= k:
        raise ValueError(f"{caller}: found {nn.n_queries} sample(s) while k={k} needs at least "
                         f"{k + 1}; use more points or a smaller k.")
    d = d[:, :k]
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError(f"{caller}: Neighbors.distances must be finite and >= 0; "
                         "recompute them with idest.knn.")
    if k > 1 and (np.diff(d, axis=1) < 0).any():
        raise ValueError(f"{caller}: Neighbors.distances must be sorted ascending along each "
                         "row; recompute them with idest.knn.")


def prepare_neighbors(
    X_or_neighbors: Any,
    k: int,
    *,
    caller: str,
    duplicates: DuplicatePolicy = "drop",
    merge_tolerance: float | None = None,
    progress: bool | None = None,
) -> PreparedNeighbors:
    """Neighbours (at least ``k`` per point) of the distinct points of the input.

    Parameters
    ----------
    X_or_neighbors : array-like of shape (n_samples, n_features) or Neighbors
        Raw data (searched with :func:`idest.knn`) or a precomputed self search.
    k : int
        Neighbours needed per point.
    caller : str
        Estimator named in error messages.
    duplicates : {"drop", "raise"}, default="drop"
        Exact duplicates: keep one copy of each (with a warning), or raise.
    merge_tolerance : float, optional
        Also merge points closer than ``merge_tolerance`` times the median r_1.
    progress : bool, optional
        Progress bar of the k-NN search.

    Returns
    -------
    PreparedNeighbors

    Examples
    --------
    >>> import numpy as np, warnings
    >>> from idest.estimators._duplicates import prepare_neighbors
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     p = prepare_neighbors(np.vstack([X, X[:10]]), 2, caller="demo")
    >>> p.n_duplicates_dropped, p.neighbors.n_queries
    (10, 100)
    """
    check_choice(duplicates, "duplicates", caller, ("drop", "raise"))
    if merge_tolerance is not None:
        check_positive(merge_tolerance, "merge_tolerance", caller)
    if isinstance(X_or_neighbors, Neighbors):
        nn = X_or_neighbors
        check_neighbors(nn, k, caller)
        data = nn.data
    else:
        data = check_array(X_or_neighbors, caller=caller)
        if data.shape[0] <= k:
            raise ValueError(f"{caller}: found {data.shape[0]} sample(s) while k={k} needs at "
                             f"least {k + 1}; use more points or a smaller k.")
        nn = knn(data, k, progress=progress)

    n_exact = int(np.count_nonzero(nn.distances[:, 0] == 0))
    if n_exact and duplicates == "raise":
        raise ValueError(f"{caller}: {n_exact} point(s) have an exact duplicate (r_1 = 0); "
                         "remove the copies or pass duplicates='drop'.")
    nn, data, n_dropped = _merge_until_distinct(nn, data, 0.0, k, caller, progress)
    n_merged = 0
    if merge_tolerance is not None:
        threshold = float(merge_tolerance * np.median(nn.distances[:, 0]))
        nn, data, n_merged = _merge_until_distinct(nn, data, threshold, k, caller, progress)
    if n_dropped or n_merged:
        warnings.warn(
            f"{caller}: removed {n_dropped} exact duplicate(s) and merged {n_merged} "
            f"near-duplicate(s); {nn.n_queries} distinct points remain.",
            DuplicatesWarning, stacklevel=3,
        )
    return PreparedNeighbors(nn, n_dropped, n_merged)


def _merge_until_distinct(
    nn: Neighbors, data: np.ndarray | None, threshold: float, k: int, caller: str,
    progress: bool | None,
) -> tuple[Neighbors, np.ndarray | None, int]:
    """Keep one point per group closer than ``threshold`` (<=) and search again, until none is."""
    removed = 0
    while (nn.distances[:, 0] <= threshold).any():
        if data is None:
            raise ValueError(f"{caller}: some points have r_1 <= {threshold:g} but the Neighbors "
                             "carry no data to remove them from; pass the raw data instead.")
        keep = _group_representatives(nn, threshold)
        data = data[keep]
        removed += int(keep.size - data.shape[0])
        if data.shape[0] <= k:
            raise ValueError(
                f"{caller}: only {data.shape[0]} distinct point(s) remain after removing "
                f"{removed} duplicate(s), but k={k} needs at least {k + 1}; the data are "
                "(nearly) constant or too small."
            )
        nn = knn(data, k, progress=progress)
    return nn, data, removed


def _group_representatives(nn: Neighbors, threshold: float) -> np.ndarray:
    """Mask keeping the lowest-numbered point of each group linked by distances <= threshold."""
    n = nn.n_queries
    rows, cols = np.nonzero(nn.distances <= threshold)
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, nn.indices[rows, cols])),
                       shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    keep = np.zeros(n, dtype=bool)
    keep[np.unique(labels, return_index=True)[1]] = True
    return keep
