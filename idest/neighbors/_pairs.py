"""Exact k-NN between two disjoint row sets from one pass over their distance tile.

The off-diagonal task of a sharded self search (``_distributed``): the tile of
shards A and B is computed once (float32 SGEMM of centred, power-of-two-scaled
rows, as in ``cpp/knn.cpp``) and each entry updates the candidate list of its
A row *and* of its B column, the symmetry the in-process self search uses for
its upper triangle. The compiled core's ``refine`` then re-scores the
candidates from direct differences in float64 and certifies each row against
the lower bound below, or searches it exhaustively within the other set.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange
from threadpoolctl import threadpool_limits

from idest.neighbors._backends import n_candidates
from idest.neighbors._numba import _finish, _insert, list_bounds

#: Side of the float32 tiles (a 2048 x 2048 tile is 16 MB).
TILE_ROWS = 2048


#: Entries tested at once before any is inserted (as ``kChunk`` in cpp/knn.cpp):
#: almost every entry fails its threshold once the lists have filled.
_CHUNK = 16


@njit(parallel=True, cache=True)
def _scan_rows(g, a_norms, b_norms, a0, b0, cand_d, cand_i, count, worst, width):
    """Tile g = -2 A B^T updates the lists of A's rows a0.. with B's columns b0..."""
    n = g.shape[1]
    for r in prange(g.shape[0]):
        row = a0 + r
        for c0 in range(0, n, _CHUNK):
            w = worst[row]
            hit = False
            for c in range(c0, min(n, c0 + _CHUNK)):
                hit |= a_norms[r] + b_norms[c] + g[r, c] < w
            if hit:
                for c in range(c0, min(n, c0 + _CHUNK)):
                    d = a_norms[r] + b_norms[c] + g[r, c]
                    if d < worst[row]:
                        _insert(cand_d, cand_i, count, worst, row, d, b0 + c, width)


@njit(parallel=True, cache=True)
def _scan_columns(g, a_norms, b_norms, a0, b0, cand_d, cand_i, count, worst, width):
    """The same tile updates the lists of B's rows b0.. with A's rows a0..

    Threads take stripes of columns (each B row's list has one writer) and walk
    the tile row by row, testing a chunk of columns against their thresholds.
    """
    n = g.shape[1]
    stripe = 256
    for s in prange((n + stripe - 1) // stripe):
        end = min(n, (s + 1) * stripe)
        for r in range(g.shape[0]):
            for c0 in range(s * stripe, end, _CHUNK):
                hit = False
                for c in range(c0, min(end, c0 + _CHUNK)):
                    hit |= a_norms[r] + b_norms[c] + g[r, c] < worst[b0 + c]
                if hit:
                    for c in range(c0, min(end, c0 + _CHUNK)):
                        d = a_norms[r] + b_norms[c] + g[r, c]
                        if d < worst[b0 + c]:
                            _insert(cand_d, cand_i, count, worst, b0 + c, d, a0 + r, width)


@njit(cache=True)
def _scan_both(g, a_norms, b_norms, a0, b0, a_d, a_i, a_count, a_worst, a_width, b_d, b_i,
               b_count, b_worst, b_width):
    """One thread: both updates of ``_scan_rows`` and ``_scan_columns`` in one pass over g."""
    n = g.shape[1]
    for r in range(g.shape[0]):
        row = a0 + r
        for c0 in range(0, n, _CHUNK):
            w = a_worst[row]
            hit = False
            for c in range(c0, min(n, c0 + _CHUNK)):
                d = a_norms[r] + b_norms[c] + g[r, c]
                hit |= (d < w) | (d < b_worst[b0 + c])
            if hit:
                for c in range(c0, min(n, c0 + _CHUNK)):
                    d = a_norms[r] + b_norms[c] + g[r, c]
                    if d < a_worst[row]:
                        _insert(a_d, a_i, a_count, a_worst, row, d, b0 + c, a_width)
                    if d < b_worst[b0 + c]:
                        _insert(b_d, b_i, b_count, b_worst, b0 + c, d, a0 + r, b_width)


class _Lists:
    """Float32 candidate buffers of n rows, ``width`` kept (the layout of ``_numba.knn``)."""

    def __init__(self, n: int, width: int, dim: int) -> None:
        self.dim = dim
        self.width = width
        capacity = width + max(width // 2, 16)
        self.d = np.full((n, capacity), np.inf, dtype=np.float32)
        self.i = np.full((n, capacity), -1, dtype=np.int64)
        self.count = np.zeros(n, dtype=np.int64)
        self.worst = np.full(n, np.inf, dtype=np.float32)

    def arrays(self) -> tuple:
        return self.d, self.i, self.count, self.worst, self.width

    def candidates(self) -> np.ndarray:
        """Each row's ``width`` candidate indices (the buffers reduced first)."""
        _finish(self.d, self.i, self.count, self.worst, self.width)
        return np.ascontiguousarray(self.i[:, : self.width])

    def lower_bound(self, sq_norm: np.ndarray, scale: float, available: int) -> np.ndarray:
        """Certified lower bound on the true squared distance of every non-candidate
        (``_numba.list_bounds``); after :meth:`candidates`."""
        return list_bounds(self.worst, self.count, self.width, available, sq_norm, scale,
                           self.dim)


def _scaled(A: np.ndarray, mean: np.ndarray, scale: float):
    """Scaled float32 rows of A - mean, their float32 squared norms and |x - mean|^2.

    A block of rows at a time, so the float64 temporaries stay small.
    """
    rows = np.empty(A.shape, dtype=np.float32)
    norms = np.empty(A.shape[0], dtype=np.float32)
    sq = np.empty(A.shape[0])
    for start in range(0, A.shape[0], TILE_ROWS):
        centred = A[start : start + TILE_ROWS] - mean
        block = rows[start : start + TILE_ROWS]
        block[:] = centred * scale
        sq[start : start + TILE_ROWS] = np.einsum("ij,ij->i", centred, centred)
        norms[start : start + TILE_ROWS] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
    return rows, norms, sq


def pair_knn(A: np.ndarray, B: np.ndarray, k: int, n_jobs: int):
    """Exact k-NN of A's rows within B and of B's rows within A, one tile pass.

    Parameters
    ----------
    A, B : ndarray of shape (n_a, D) and (n_b, D)
        Validated rows of the same dtype (float32 or float64).
    k : int
        Neighbours per row (at most the size of the other set is returned).
    n_jobs : int
        Threads for the SGEMM, the selection and the re-scoring.

    Returns
    -------
    tuple
        ``((dist_a, idx_a, fallbacks_a), (dist_b, idx_b, fallbacks_b))``: the
        compiled core's ``refine`` output, indices local to the other set.

    Examples
    --------
    >>> import numpy as np, idest
    >>> X = np.random.default_rng(0).normal(size=(300, 20)).astype(np.float32)
    >>> (da, ia, _), (db, ib, _) = pair_knn(X[:100], X[100:], 3, 1)
    >>> bool((ia == idest.knn(X[:100], 3, reference=X[100:]).indices).all())
    True
    """
    from idest.neighbors import _core

    mean = (A.sum(axis=0, dtype=np.float64) + B.sum(axis=0, dtype=np.float64)) / (
        A.shape[0] + B.shape[0])
    # max |x - mean| from the column extremes (float64 subtraction is monotone)
    max_abs = max(float(np.max(np.maximum(M.max(axis=0) - mean, mean - M.min(axis=0))))
                  for M in (A, B))
    # a power of two: scaling is exact and the values lie in (-1, 1)
    scale = 2.0 ** -np.frexp(max_abs)[1] if max_abs > 0 else 1.0
    (a_rows, a_norms, a_sq), (b_rows, b_norms, b_sq) = (_scaled(A, mean, scale),
                                                        _scaled(B, mean, scale))
    ka, kb = min(k, B.shape[0]), min(k, A.shape[0])
    a_lists = _Lists(A.shape[0], min(n_candidates(ka), B.shape[0]), A.shape[1])
    b_lists = _Lists(B.shape[0], min(n_candidates(kb), A.shape[0]), A.shape[1])
    previous = numba.get_num_threads()
    numba.set_num_threads(min(n_jobs, numba.config.NUMBA_NUM_THREADS))
    try:
        with threadpool_limits(limits=n_jobs, user_api="blas"):
            for a0 in range(0, A.shape[0], TILE_ROWS):
                a_blk, a_n = a_rows[a0 : a0 + TILE_ROWS], a_norms[a0 : a0 + TILE_ROWS]
                for b0 in range(0, B.shape[0], TILE_ROWS):
                    b_blk, b_n = b_rows[b0 : b0 + TILE_ROWS], b_norms[b0 : b0 + TILE_ROWS]
                    g = a_blk @ b_blk.T
                    g *= np.float32(-2.0)
                    if n_jobs == 1:
                        _scan_both(g, a_n, b_n, a0, b0, *a_lists.arrays(), *b_lists.arrays())
                        continue
                    _scan_rows(g, a_n, b_n, a0, b0, *a_lists.arrays())
                    _scan_columns(g, a_n, b_n, a0, b0, *b_lists.arrays())
    finally:
        numba.set_num_threads(previous)
    out = []
    for Q, R, lists, sq, kk in ((A, B, a_lists, a_sq, ka), (B, A, b_lists, b_sq, kb)):
        cand = lists.candidates()
        out.append(_core.refine(Q, R, kk, cand, lists.lower_bound(sq, scale, R.shape[0]),
                                n_jobs))
    return tuple(out)
