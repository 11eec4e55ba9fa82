"""Numba backend of :func:`idest.knn`: the same contract as the compiled core.

A second, independent implementation used as a cross-check: numpy's SGEMM
computes -2 x.y on float32 tiles of the centred, power-of-two-scaled data
(the full matrix, no symmetry trick); plain Numba kernels select candidates
per row, re-score them in float64 and certify each row. A row whose full list
fails at an exact tie (its k-th distance equal to the list's last, as on
integer-valued data) is searched again with 8 times the margin beyond k, as
the compiled core does (simpler: without its probe); other failures fall back
to an exhaustive float64 search.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from idest.neighbors._backends import certified_lower_bound
from idest.utils.blocks import row_blocks
from idest.utils.progress import progress_bar

_BLOCK = 2048


@njit(cache=True)
def _compact(cand_d, cand_i, count, worst, row, width):
    """Keep the ``width`` smallest entries of ``row``'s buffer; the threshold
    becomes the largest kept, and every dropped entry is >= it."""
    n = count[row]
    d = cand_d[row, :n].copy()
    ids = cand_i[row, :n].copy()
    t = np.partition(d.copy(), width - 1)[width - 1]
    m = 0
    for j in range(n):  # entries below the threshold, then ties up to width
        if d[j] < t:
            cand_d[row, m] = d[j]
            cand_i[row, m] = ids[j]
            m += 1
    for j in range(n):
        if d[j] == t and m < width:
            cand_d[row, m] = d[j]
            cand_i[row, m] = ids[j]
            m += 1
    count[row] = width
    worst[row] = t


@njit(cache=True)
def _insert(cand_d, cand_i, count, worst, row, d, j, width):
    """Append (d, j) to ``row``'s unsorted buffer (capacity cand_d.shape[1]),
    compacted to its ``width`` smallest when full: O(1) amortised per insertion
    at any k, as in cpp/candidate_lists.hpp."""
    n = count[row]
    cand_d[row, n] = d
    cand_i[row, n] = j
    count[row] = n + 1
    if n + 1 == cand_d.shape[1]:
        _compact(cand_d, cand_i, count, worst, row, width)


@njit(parallel=True, cache=True)
def _select_tile(g, q_norms, r_norms, q0, r0, exclude_self, cand_d, cand_i, count, worst, width):
    """Update the candidate lists of query rows q0.. from one tile g = -2 Q R^T."""
    for r in prange(g.shape[0]):
        qi = q0 + r
        for c in range(g.shape[1]):
            d = q_norms[r] + r_norms[c] + g[r, c]
            if d < worst[qi] and not (exclude_self and r0 + c == qi):
                _insert(cand_d, cand_i, count, worst, qi, d, r0 + c, width)


@njit(parallel=True, cache=True)
def _finish(cand_d, cand_i, count, worst, width):
    """Reduce every buffer to its ``width`` smallest entries."""
    for row in prange(count.shape[0]):
        if count[row] > width:
            _compact(cand_d, cand_i, count, worst, row, width)


@njit(cache=True)
def _sqdist(x, y):
    s = 0.0
    for j in range(x.shape[0]):
        diff = np.float64(x[j]) - np.float64(y[j])
        s += diff * diff
    return s


@njit(cache=True)
def _smallest(d2, ids, k):
    """Positions of the k smallest (d2, id) pairs, ties by lower id."""
    by_id = np.argsort(ids, kind="mergesort")
    order = np.argsort(d2[by_id], kind="mergesort")
    return by_id[order[:k]]


@njit(parallel=True, cache=True)
def _refine(Q, R, exclude_self, k, cand_i, lower_bound, widen, out_d, out_i, fell_back,
            deferred):
    """Exact float64 re-scoring with the per-row certificate (see knn.cpp); with
    ``widen``, rows whose full list fails at an exact tie are marked ``deferred``
    and left unwritten."""
    for i in prange(Q.shape[0]):
        valid = cand_i[i][cand_i[i] >= 0]
        d2 = np.empty(valid.shape[0])
        for j in range(valid.shape[0]):
            d2[j] = _sqdist(Q[i], R[valid[j]])
        best = _smallest(d2, valid, k)
        certified = best.shape[0] >= k and d2[best[k - 1]] < lower_bound[i]
        if (not certified and widen and valid.shape[0] == cand_i.shape[1]
                and np.isfinite(lower_bound[i]) and d2.max() == d2[best[k - 1]]):
            deferred[i] = True
            continue
        if not certified:
            fell_back[i] = True
            valid = np.arange(R.shape[0])
            if exclude_self:
                valid = valid[valid != i]
            d2 = np.empty(valid.shape[0])
            for j in range(valid.shape[0]):
                d2[j] = _sqdist(Q[i], R[valid[j]])
            best = _smallest(d2, valid, k)
        for j in range(k):
            out_d[i, j] = np.sqrt(d2[best[j]])
            out_i[i, j] = valid[best[j]]


def list_bounds(worst: np.ndarray, count: np.ndarray, width: int, available: int,
                sq_norm: np.ndarray, scale: float, dim: int) -> np.ndarray:
    """Per row, the certified lower bound on every point outside its reduced candidate list.

    ``certified_lower_bound`` of the row's threshold, except: a list that never filled (or
    never needed a threshold) met a non-finite approximation, so nothing is certified
    (-inf); a full list that holds every available point leaves nothing outside it (+inf).
    """
    bound = certified_lower_bound(worst.astype(np.float64), sq_norm, scale, dim)
    bound[(count < width) | ~np.isfinite(worst)] = -np.inf
    if width == available:
        bound[count == width] = np.inf
    return bound


def _scaled_blocks(A: np.ndarray, mean: np.ndarray, scale: float):
    """Centred, scaled float32 copies of row blocks, with their squared norms."""
    for start, block in row_blocks(A, np.float64, _BLOCK):
        block = ((block - mean) * scale).astype(np.float32)
        norms = np.einsum("ij,ij->i", block, block, dtype=np.float64).astype(np.float32)
        yield start, block, norms


def knn(X: np.ndarray, R: np.ndarray | None, k: int, width: int, n_jobs: int,
        progress: bool | None):
    """Exact k-NN; returns (distances, indices, n_fallback_rows)."""
    self_search = R is None
    ref = X if self_search else R
    width = min(max(width, k), ref.shape[0] - (1 if self_search else 0))
    mean = ref.mean(axis=0, dtype=np.float64)
    sq_norm = np.empty(X.shape[0])
    max_abs = 0.0
    for A, norms in ((X, sq_norm), (None if self_search else ref, None)):
        if A is None:
            continue
        for start, block in row_blocks(A, np.float64):
            block = block - mean  # never in place: block may be a view of the input
            max_abs = max(max_abs, float(np.abs(block).max()))
            if norms is not None:
                norms[start : start + block.shape[0]] = np.einsum("ij,ij->i", block, block)
    scale = 2.0 ** -np.frexp(max_abs)[1] if max_abs > 0 else 1.0

    n = X.shape[0]
    capacity = width + max(width // 2, 16)
    cand_d = np.full((n, capacity), np.inf, dtype=np.float32)
    cand_i = np.full((n, capacity), -1, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    worst = np.full(n, np.inf, dtype=np.float32)
    previous_threads = numba.get_num_threads()
    numba.set_num_threads(min(n_jobs, numba.config.NUMBA_NUM_THREADS))
    try:
        n_blocks = -(-ref.shape[0] // _BLOCK)
        work = 2.0 * n * ref.shape[0] * X.shape[1]
        with progress_bar(progress, total=-(-n // _BLOCK) * n_blocks, desc="knn (numba)",
                          unit="tile", work=work) as bar:
            for r0, rb, rn in _scaled_blocks(ref, mean, scale):
                for q0, qb, qn in _scaled_blocks(X, mean, scale):
                    g = qb @ rb.T
                    g *= np.float32(-2.0)
                    _select_tile(g, qn, rn, q0, r0, self_search, cand_d, cand_i, count, worst,
                                 width)
                    if bar is not None:
                        bar.update()
        _finish(cand_d, cand_i, count, worst, width)
        cand_i = cand_i[:, :width]
        bound = list_bounds(worst, count, width, ref.shape[0] - (1 if self_search else 0),
                            sq_norm, scale, X.shape[1])
        out_d = np.empty((n, k))
        out_i = np.empty((n, k), dtype=np.int64)
        fell_back = np.zeros(n, dtype=np.bool_)
        deferred = np.zeros(n, dtype=np.bool_)
        wider = k + self_search + 8 * max(1, width - k)
        _refine(X, ref, self_search, k, cand_i, bound, wider < ref.shape[0] // 2, out_d, out_i,
                fell_back, deferred)
    finally:
        numba.set_num_threads(previous_threads)
    n_fallback = int(fell_back.sum())
    rows = np.flatnonzero(deferred)
    if rows.size:  # as queries against every reference row, one more when self
        d, i, more = knn(X[rows], ref, k + self_search, wider, n_jobs, False)
        if self_search:  # each row's own index dropped (it may be past its k + 1)
            first = np.argsort(i == rows[:, None], axis=1, kind="stable")[:, :k]
            d, i = np.take_along_axis(d, first, 1), np.take_along_axis(i, first, 1)
        out_d[rows], out_i[rows] = d, i
        n_fallback += more
    return out_d, out_i, n_fallback
