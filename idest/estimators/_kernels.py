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
    """[0, t_1, t_1 + t_2, …]: the sums :func:`cdf_fit` reads a run of ranks from."""
    out = np.empty(targets.shape[0] + 1)
    out[0] = 0.0
    for i in range(targets.shape[0]):
        out[i + 1] = out[i] + targets[i]
    return out


@numba.njit(cache=True, nogil=True)
def cdf_fit(sorted_x, order, counts, cum_targets, pareto):
    """The k-NN CDF slope (B.16), or the censored Pareto MLE, of weighted points.

    Value j of ``sorted_x`` stands for point ``order[j]`` and occupies
    ``counts[order[j]]`` consecutive ranks (1 each for the estimate, the resample's
    multiplicities for a bootstrap); of the ``n_fit = len(cum_targets) − 1`` ranks fitted
    (the largest μ are discarded), a run of ranks a..b contributes its value times
    ``cum_targets[b] − cum_targets[a]`` (:func:`cumulative_targets`), so the walk has no
    branch per rank. The slope is the least-squares slope through the origin of the
    targets on the values; the Pareto MLE is (n_fit − 1) / (Σ_{i ≤ n_fit} x_(i) +
    (N − n_fit) x_(n_fit)), Type-II censoring of the exponential law of log μ (with
    n_fit = N it is (N − 1) / Σ log μ). nan when the denominator is 0 (every kept μ = 1).
    """
    n_fit = cum_targets.shape[0] - 1
    n = sorted_x.shape[0]
    in_order = np.empty(n, dtype=counts.dtype)  # gathered first: a loop the CPU vectorises
    n_total = 0
    for j in range(n):
        in_order[j] = counts[order[j]]
        n_total += in_order[j]
    rank = 0
    sxy = 0.0
    sxx = 0.0
    last = 0.0
    for j in range(n):
        c = min(in_order[j], n_fit - rank)
        x = sorted_x[j]
        sxy += x * (cum_targets[rank + c] - cum_targets[rank])
        sxx += c * x if pareto else c * x * x
        last = x if c > 0 else last
        rank += c
        if rank == n_fit:
            break
    if pareto:
        denominator = sxx + (n_total - n_fit) * last
        return np.nan if denominator == 0.0 else (n_fit - 1) / denominator
    return np.nan if sxx == 0.0 else sxy / sxx


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


@numba.njit(cache=True, nogil=True)
def _weighted_mle(terms, counts, mackay_ghahramani):
    n, n_k = terms.shape
    n_total = 0
    for i in range(n):
        n_total += counts[i]
    result = 0.0
    for c in range(n_k):
        total = 0.0
        for i in range(n):
            total += counts[i] * terms[i, c]
        result += n_total / total if mackay_ghahramani else total / n_total
    return result / n_k


@numba.njit(cache=True, nogil=True)
def mle_aggregate(inverse_local, counts, mackay_ghahramani):
    """Global MLE from inverse local estimates, averaged over the k columns.

    Per column: the weighted mean of the local estimates m_k(x) (Levina &
    Bickel), or the inverse of the weighted mean of their inverses (MacKay &
    Ghahramani). The columns (k = k1..k2) are then averaged (Levina & Bickel).
    The mean aggregation needs every inverse estimate > 0.
    """
    terms = inverse_local if mackay_ghahramani else 1.0 / inverse_local
    return _weighted_mle(terms, counts, mackay_ghahramani)


@numba.njit(cache=True, nogil=True)
def resample_counts(draws):
    """How often each point index occurs in each row of ``draws`` (one row per resample)."""
    n_rows, n = draws.shape
    counts = np.zeros((n_rows, n), dtype=np.int32)
    for b in range(n_rows):
        for i in range(n):
            counts[b, draws[b, i]] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def bootstrap_cdf(sorted_x, order, cum_targets, counts, pareto):
    """:func:`cdf_fit` of every resample (one row of point multiplicities each)."""
    out = np.empty(counts.shape[0])
    for b in range(counts.shape[0]):
        out[b] = cdf_fit(sorted_x, order, counts[b], cum_targets, pareto)
    return out


@numba.njit(cache=True, nogil=True)
def bootstrap_mle(inverse_local, counts, mackay_ghahramani):
    """The aggregated Levina–Bickel MLE of every resample (one row of multiplicities each)."""
    terms = inverse_local if mackay_ghahramani else 1.0 / inverse_local
    out = np.empty(counts.shape[0])
    for b in range(counts.shape[0]):
        out[b] = _weighted_mle(terms, counts[b], mackay_ghahramani)
    return out
