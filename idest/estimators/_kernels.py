"""Numba kernels for the per-point arithmetic of the intrinsic-dimension estimators.

Plain module-level functions, no globals. Points enter as rows of a neighbour
distance matrix (ascending, r_1 > 0) or as per-point statistics with integer
multiplicities in point order, so one kernel serves both the estimate (every
multiplicity 1) and each bootstrap resample (its multiplicities): resampling points
and then sorting their values is the same as walking the values in sorted order with
the resample's counts. Every estimator of one search reads the same counts, so they
see the same resamples of the same points.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def log_ratios(distances, k):
    """log μ_k = log(r_k / r_1) for every row (k counts from 1)."""
    n = distances.shape[0]
    out = np.empty(n)
    for i in range(n):
        out[i] = np.log(distances[i, k - 1] / distances[i, 0])
    return out


@numba.njit(cache=True)
def cdf_targets(n_total, n_fit, k):
    """−log(1 − C_i^(1/(k−1))) for C_i = i / N, i = 1..n_fit (Sharma & Kaplan B.16)."""
    out = np.empty(n_fit)
    power = 1.0 / (k - 1)
    for i in range(n_fit):
        out[i] = -np.log1p(-((i + 1) / n_total) ** power)
    return out


@numba.njit(cache=True)
def cumulative_targets(targets):
    """T = [0, t_1, t_1 + t_2, …]: :func:`cdf_fit` reads T(m) at the m ranks before a value."""
    out = np.empty(targets.shape[0] + 1)
    out[0] = 0.0
    for i in range(targets.shape[0]):
        out[i + 1] = out[i] + targets[i]
    return out


@numba.njit(cache=True)
def cdf_steps(sorted_x, pareto):
    """Increments along the sorted values: row 0 of x, row 1 of x² (or of x for ``pareto``).

    ``steps[:, j]`` is (x_j − x_{j−1}, w_j − w_{j−1}) with x_{−1} = 0: what :func:`cdf_fit`
    sums instead of the values themselves (summation by parts).
    """
    n = sorted_x.shape[0]
    steps = np.empty((2, n))
    x_prev = 0.0
    w_prev = 0.0
    for j in range(n):
        x = sorted_x[j]
        w = x if pareto else x * x
        steps[0, j] = x - x_prev
        steps[1, j] = w - w_prev
        x_prev = x
        w_prev = w
    return steps


@numba.njit(cache=True, nogil=True)
def _rank_sums(order, counts, cum_targets, steps):
    """The walk of :func:`cdf_fit`: Σ_{j ≤ E} T(m_j) Δx_j, Σ_{j ≤ E} m_j Δw_j and E.

    m_j is the number of ranks before value j; E is the value that takes rank n_fit, so
    every m_j < n_fit. Values go four at a time while the four cannot reach rank n_fit,
    each of the four into its own partial sums (in a fixed order: otherwise the loop
    waits on the latency of one floating-point addition per value), then one at a time
    up to E. Indices are unsigned, so Numba adds no negative-index wraparound.
    """
    n = order.shape[0]
    n_fit = np.uint64(cum_targets.shape[0] - 1)
    dx = steps[0]
    dw = steps[1]
    rank = np.uint64(0)
    a0 = a1 = a2 = a3 = 0.0
    q0 = q1 = q2 = q3 = 0.0
    j = 0
    while j + 4 <= n:
        c0 = np.uint64(counts[np.uint64(order[j])])
        c1 = np.uint64(counts[np.uint64(order[j + 1])])
        c2 = np.uint64(counts[np.uint64(order[j + 2])])
        c3 = np.uint64(counts[np.uint64(order[j + 3])])
        if rank + ((c0 + c1) + (c2 + c3)) >= n_fit:
            break
        a0 += cum_targets[rank] * dx[j]
        q0 += rank * dw[j]
        rank += c0
        a1 += cum_targets[rank] * dx[j + 1]
        q1 += rank * dw[j + 1]
        rank += c1
        a2 += cum_targets[rank] * dx[j + 2]
        q2 += rank * dw[j + 2]
        rank += c2
        a3 += cum_targets[rank] * dx[j + 3]
        q3 += rank * dw[j + 3]
        rank += c3
        j += 4
    while j < n:
        a0 += cum_targets[rank] * dx[j]
        q0 += rank * dw[j]
        rank += np.uint64(counts[np.uint64(order[j])])
        if rank >= n_fit:
            break
        j += 1
    return (a0 + a1) + (a2 + a3), (q0 + q1) + (q2 + q3), min(j, n - 1)


@numba.njit(cache=True, nogil=True)
def cdf_fit(sorted_x, order, counts, cum_targets, steps, pareto):
    """The k-NN CDF slope (B.16), or the censored Pareto MLE, of weighted points.

    Value j of ``sorted_x`` stands for point ``order[j]`` and occupies
    ``counts[order[j]]`` consecutive ranks (1 each for the estimate, the resample's
    multiplicities for a bootstrap, which must take at least the ``n_fit =
    len(cum_targets) − 1`` ranks fitted: the largest μ are discarded). The least-squares
    slope through the origin of the targets t_i on the values is Σ t_i x_(i) / Σ x_(i)²;
    the Pareto MLE is (n_fit − 1) / (Σ_{i ≤ n_fit} x_(i) + (N − n_fit) x_(n_fit)), Type-II
    censoring of the exponential law of log μ (with n_fit = N it is (N − 1) / Σ log μ).
    Both sums are taken by parts over the values (``steps``, :func:`cdf_steps`): with
    m_j the ranks before value j, E the value that takes rank n_fit and T =
    ``cum_targets`` (:func:`cumulative_targets`), Σ t_i x_(i) = T(n_fit) x_E −
    Σ_{j ≤ E} T(m_j) Δx_j and Σ x_(i)² = n_fit x_E² − Σ_{j ≤ E} m_j Δ(x²)_j, so the walk
    has no branch per rank and no clamp on its running sum (:func:`_rank_sums`).
    nan when the denominator is 0 (every kept μ = 1).
    """
    n_fit = cum_targets.shape[0] - 1
    a, q, end = _rank_sums(order, counts, cum_targets, steps)
    x_end = sorted_x[end]
    if not pareto:
        denominator = n_fit * (x_end * x_end) - q
        return np.nan if denominator == 0.0 else (cum_targets[n_fit] * x_end - a) / denominator
    n_total = 0
    for i in range(counts.shape[0]):
        n_total += counts[i]
    denominator = n_total * x_end - q  # the N − n_fit censored values count as x_E each
    return np.nan if denominator == 0.0 else (n_fit - 1) / denominator


@numba.njit(cache=True)
def mle_inverse_local(distances, k1, k2, unbiased):
    """Inverse local Levina–Bickel estimates 1/m_k(x) for k = k1..k2 (B.12, B.13).

    Column c holds Σ_{j<k} log(r_k / r_j) / (k − 1), or / (k − 2) when
    ``unbiased``, for k = k1 + c. Finite and >= 0; 0 where r_1 = r_k.
    """
    n = distances.shape[0]
    out = np.empty((n, k2 - k1 + 1))
    for i in range(n):
        r1 = distances[i, 0]
        cumulative = 0.0  # Σ_{j<k} log(r_j / r_1)
        for j in range(k2):
            k = j + 1
            log_k = np.log(distances[i, j] / r1)
            if k >= k1:
                total = max((k - 1) * log_k - cumulative, 0.0)
                out[i, k - k1] = total / (k - 2 if unbiased else k - 1)
            cumulative += log_k
    return out


@numba.njit(cache=True)
def mle_terms(inverse_local, mackay_ghahramani):
    """What :func:`mle_aggregate` averages, one row per k: the local estimates m_k(x) for
    the mean (Levina & Bickel), their inverses for MacKay & Ghahramani. The mean needs
    every inverse estimate > 0."""
    terms = inverse_local if mackay_ghahramani else 1.0 / inverse_local
    return np.ascontiguousarray(terms.T)


@numba.njit(cache=True, nogil=True)
def mle_aggregate(terms, counts, mackay_ghahramani):
    """Global MLE of weighted points from :func:`mle_terms`, averaged over the k rows.

    Per k: the weighted mean of the local estimates m_k(x) (Levina & Bickel), or the
    inverse of the weighted mean of their inverses (MacKay & Ghahramani). The k = k1..k2
    are then averaged (Levina & Bickel). Each weighted sum is taken in four partial
    sums, in a fixed order (one would wait on the latency of every addition).
    """
    n_k, n = terms.shape
    n_total = 0
    for i in range(n):
        n_total += counts[i]
    result = 0.0
    for c in range(n_k):
        t = terms[c]
        s0 = s1 = s2 = s3 = 0.0
        i = 0
        while i + 4 <= n:
            s0 += counts[i] * t[i]
            s1 += counts[i + 1] * t[i + 1]
            s2 += counts[i + 2] * t[i + 2]
            s3 += counts[i + 3] * t[i + 3]
            i += 4
        for tail in range(i, n):
            s0 += counts[tail] * t[tail]
        total = (s0 + s1) + (s2 + s3)
        result += n_total / total if mackay_ghahramani else total / n_total
    return result / n_k


@numba.njit(cache=True, nogil=True)
def resample_counts(state, counts):
    """Fill ``counts`` (n_rows, n) with the multiplicities of n_rows resamples of n points,
    drawn from an SFC64 state.

    Exactly ``np.random.Generator(SFC64)`` with this ``state`` (its four 64-bit words):
    ``integers(0, n, size=(n_rows, n), dtype=np.int32)``, counted per row. Each 64-bit
    output gives two 32-bit words, the low half first; a word u becomes ⌊u n / 2³²⌋,
    rejected when (u n mod 2³²) < 2³² mod n (Lemire's unbiased bounded integers, as
    numpy). Drawing here rather than in numpy skips the (n_rows, n) array of draws and
    numpy's call per word. The two halves are written out, not looped over: Numba
    compiles the loop a third slower.
    """
    a, b, c, w = state[0], state[1], state[2], state[3]
    n = counts.shape[1]
    flat = counts.reshape(counts.size)  # a view (Numba refuses to reshape a non-contiguous one)
    flat[:] = 0
    bound = np.uint64(n)
    threshold = np.uint64(1 << 32) % bound  # 2³² mod n
    low = np.uint64(0xFFFFFFFF)
    row = 0  # offset of the row being drawn in ``flat``
    left = n  # draws left in it
    while flat.size:  # SFC64 (Chris Doty-Humphrey), as numpy/random/src/sfc64
        out = a + b + w
        w += np.uint64(1)
        a = b ^ (b >> np.uint64(11))
        b = c + (c << np.uint64(3))
        c = ((c << np.uint64(24)) | (c >> np.uint64(40))) + out
        m = (out & low) * bound
        if (m & low) >= threshold:
            flat[row + np.int64(m >> np.uint64(32))] += 1
            left -= 1
            if left == 0:
                row += n
                left = n
                if row == flat.size:
                    break  # the high half is not needed
        m = (out >> np.uint64(32)) * bound
        if (m & low) >= threshold:
            flat[row + np.int64(m >> np.uint64(32))] += 1
            left -= 1
            if left == 0:
                row += n
                left = n
                if row == flat.size:
                    break


@numba.njit(cache=True, nogil=True)
def bootstrap_cdf(sorted_x, order, cum_targets, steps, counts, pareto):
    """:func:`cdf_fit` of every resample (one row of point multiplicities each)."""
    out = np.empty(counts.shape[0])
    for b in range(counts.shape[0]):
        out[b] = cdf_fit(sorted_x, order, counts[b], cum_targets, steps, pareto)
    return out


@numba.njit(cache=True, nogil=True)
def bootstrap_mle(terms, counts, mackay_ghahramani):
    """:func:`mle_aggregate` of every resample (one row of point multiplicities each)."""
    out = np.empty(counts.shape[0])
    for b in range(counts.shape[0]):
        out[b] = mle_aggregate(terms, counts[b], mackay_ghahramani)
    return out
