"""The input of every estimator: neighbours of distinct points, duplicates removed from the data.

An exact duplicate makes r_1 = 0 and μ = r_k / r_1 infinite. Skipping those
queries is not enough: the copies left behind in the reference set are exact
ties (r_1 = r_2, μ = 1) that bias every estimate upward. The same holds for
points that differ only by rounding: a float32 twin one ulp away gives
μ ≈ 10^7 and wrecks TwoNN as surely as an exact copy. So duplicates are
defined *at the input's precision*: two points are duplicates when

    ||x_i - x_j|| <= PRECISION_ULPS * eps * max(||x_i||, ||x_j||),

with eps the machine epsilon of the dtype the data came in (float64 2^-52,
float32 2^-23, float16 2^-10, a bfloat16 tensor 2^-7; 0 for integers, whose
duplicates are exact). A difference in every coordinate of one rounding step
of that dtype is at most eps ||x||, so such points carry no information that
the precision of the data can resolve. Data that went through float16 or
bfloat16 but arrive as float32 are judged at float32 resolution (their
float16 twins, ~2^13 float32 ulps apart, are not caught): pass the
low-precision array itself, or a ``merge_tolerance``.

A group of duplicates is a connected component of that relation: a point within the
resolution of two others joins them into one group, even when those two are farther
apart than the threshold (a one-ulp twin of A that lies within four ulps of B merges A
and B). The policy (``duplicates="drop"``, the default) keeps one copy of each group
of duplicates (the lowest-numbered point), removes the others from the data,
recomputes the neighbours and warns with the counts; ``duplicates="raise"``
raises instead. Larger near-duplicates are merged on request:
``merge_tolerance=t`` also merges points closer than t times the median
distance to the *second* nearest neighbour of the distinct points (not the
first: when most points have a close twin, r_1 is the twin distance itself and
a tolerance relative to it would merge almost nothing).
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
        Extra copies removed: exact ones and those closer than the input's precision.
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
    if nn.n_queries <= k:  # first: no search of these points can give k neighbours
        raise ValueError(f"{caller}: found {nn.n_queries} sample(s) while k={k} needs at least "
                         f"{k + 1}; use more points or a smaller k.")
    if nn.k < k:
        raise ValueError(f"{caller}: the Neighbors hold {nn.k} neighbour(s) per point but "
                         f"{k} are needed; recompute them with idest.knn(X, k={k}).")
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
        Duplicates (exact, or closer than the input's precision: module doc):
        keep one copy of each (with a warning), or raise.
    merge_tolerance : float, optional
        Also merge points closer than ``merge_tolerance`` times the median
        distance to the second nearest neighbour.
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
        eps = (resolution(nn.input_dtype) if nn.input_dtype is not None
               else resolution(data) if data is not None else 0.0)
        if type(data).__module__.startswith("torch"):  # device input, kept on its device:
            data = check_array(data.cpu(), name="Neighbors.data", caller=caller)  # host copy
    else:
        eps = resolution(X_or_neighbors)
        data = check_array(X_or_neighbors, caller=caller)
        if data.shape[0] <= k:
            raise ValueError(f"{caller}: found {data.shape[0]} sample(s) while k={k} needs at "
                             f"least {k + 1}; use more points or a smaller k.")
        nn = knn(data, k, progress=progress)

    if duplicates == "raise":
        n_exact = int(np.count_nonzero(nn.distances[:, 0] == 0))
        n_close = int(np.count_nonzero(_precision_pairs(nn, data, eps)[1] == 0)) - n_exact
        if n_exact or n_close:
            raise ValueError(f"{caller}: {n_exact} point(s) have an exact duplicate (r_1 = 0) and "
                             f"{n_close} a neighbour closer than the input's precision; remove "
                             "the copies or pass duplicates='drop'.")
    nn, data, n_dropped = _merge_until_distinct(
        nn, data, lambda nn, data: _entries_at_most(nn.distances, 0.0), k, caller, progress)
    nn, data, n_close = _merge_until_distinct(
        nn, data, lambda nn, data: _precision_pairs(nn, data, eps), k, caller, progress)
    n_merged = 0
    if merge_tolerance is not None:
        threshold = float(merge_tolerance * np.median(nn.distances[:, min(1, nn.k - 1)]))
        nn, data, n_merged = _merge_until_distinct(
            nn, data, lambda nn, data: _entries_at_most(nn.distances, threshold), k, caller,
            progress)
    if n_dropped or n_close or n_merged:
        dtype = _dtype_name(X_or_neighbors)
        warnings.warn(
            f"{caller}: removed {n_dropped} exact duplicate(s) and {n_close} point(s) closer to "
            f"another than the {dtype} input can resolve ({PRECISION_ULPS} ulps of their norm)"
            + (f", and merged {n_merged} near-duplicate(s)" if merge_tolerance is not None
               else "") + f"; {nn.n_queries} distinct points remain.",
            DuplicatesWarning, stacklevel=3,
        )
    return PreparedNeighbors(nn, n_dropped + n_close, n_merged)


#: Points closer than this many machine epsilons of their norm are duplicates (module doc).
PRECISION_ULPS = 4


def resolution(X: Any) -> float:
    """The relative resolution (machine epsilon) of the dtype the data came in; 0 for integers.
    ``X`` may also be a dtype's name (``Neighbors.input_dtype``).

    Examples
    --------
    >>> import numpy as np
    >>> resolution(np.zeros((2, 2), np.float32)) == 2.0 ** -23, resolution([[1, 2]])
    (True, 0.0)
    >>> resolution("float16"), resolution("bfloat16")
    (0.0009765625, 0.0078125)
    """
    if isinstance(X, str):
        return 2.0 ** -7 if X == "bfloat16" else resolution(np.empty(0, dtype=np.dtype(X)))
    dtype = getattr(X, "dtype", None)
    if dtype is None:
        dtype = np.asarray(X).dtype
    if hasattr(dtype, "is_floating_point"):  # a torch dtype (bfloat16 included)
        import torch

        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0
    dtype = np.dtype(dtype) if not isinstance(dtype, np.dtype) else dtype
    return float(np.finfo(dtype).eps) if dtype.kind == "f" else 0.0


def _dtype_name(X: Any) -> str:
    dtype = getattr(X, "dtype", None)
    if isinstance(X, Neighbors):
        dtype = X.input_dtype or getattr(X.data, "dtype", None)
    return str(dtype).replace("torch.", "") if dtype is not None else "float64"


def _entries_at_most(distances: np.ndarray, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the neighbour entries <= ``bound``.

    Rows are ascending, so only the leading columns that hold such an entry are read: no
    N x k mask is built (at 100,000 x 8,192 one would be 0.8 GB), and usually only the
    first column is looked at.
    """
    width = 0
    while width < distances.shape[1] and (distances[:, width] <= bound).any():
        width += 1
    return np.nonzero(distances[:, :width] <= bound)


def _precision_pairs(nn: Neighbors, data: np.ndarray | None,
                     eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the neighbour entries closer than the input's resolution (see the
    module doc)."""
    d = nn.distances
    if eps == 0 or data is None:
        return _entries_at_most(d, 0.0)
    # A cheap bound first (||x|| <= sqrt(D) max|x|): almost always nothing is that close.
    top = max(float(np.max(data)), -float(np.min(data)))
    rows, cols = _entries_at_most(d, PRECISION_ULPS * eps * np.sqrt(data.shape[1]) * top)
    if not rows.size:
        return rows, cols
    involved = np.unique(np.concatenate([rows, nn.indices[rows, cols]]))
    norms = np.zeros(data.shape[0])
    norms[involved] = _norms(np.asarray(data[involved], dtype=np.float64))
    scale = np.maximum(norms[rows], norms[nn.indices[rows, cols]])
    close = d[rows, cols] <= PRECISION_ULPS * eps * scale
    return rows[close], cols[close]


def _norms(X: np.ndarray) -> np.ndarray:
    """Row norms without overflow or underflow (rows scaled by their largest entry)."""
    top = np.abs(X).max(axis=1)
    safe = np.where(top > 0, top, 1.0)
    return top * np.sqrt(np.square(X / safe[:, None]).sum(axis=1))


def _merge_until_distinct(
    nn: Neighbors, data: np.ndarray | None, close: Any, k: int, caller: str,
    progress: bool | None,
) -> tuple[Neighbors, np.ndarray | None, int]:
    """Keep one point per group linked by the ``close(nn, data)`` entries (rows, columns)
    and search again, until no entry is close."""
    removed = 0
    while (entries := close(nn, data))[0].size:
        if data is None:
            raise ValueError(f"{caller}: some points are duplicates of others but the Neighbors "
                             "carry no data to remove them from; pass the raw data instead.")
        keep = _group_representatives(nn, *entries)
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


def _group_representatives(nn: Neighbors, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mask keeping the lowest-numbered point of each group linked by the entries (rows, cols)."""
    n = nn.n_queries
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, nn.indices[rows, cols])),
                       shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    keep = np.zeros(n, dtype=bool)
    keep[np.unique(labels, return_index=True)[1]] = True
    return keep
