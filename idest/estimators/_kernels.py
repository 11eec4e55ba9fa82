"""Numba kernels for the per-point arithmetic of the intrinsic-dimension estimators.

Plain module-level functions, no globals. Points enter as rows of a neighbour
distance matrix (ascending, r_1 > 0) or as sorted per-point statistics with
integer multiplicities, so one kernel serves both the estimate (every
multiplicity 1) and each bootstrap resample (multinomial multiplicities):
resampling points and then sorting their values is the same as walking the
sorted values with the resample's counts.
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
def ranked_values(sorted_x, counts, n_fit):
    """The n_fit smallest values in rank order: value j of ``sorted_x`` fills ``counts[j]`` ranks.

    Fewer than n_fit when the counts sum to less.
    """
    out = np.empty(n_fit)
    rank = 0
    for j in range(sorted_x.shape[0]):
        for _ in range(min(counts[j], n_fit - rank)):
            out[rank] = sorted_x[j]
            rank += 1
        if rank == n_fit:
            break
    return out[:rank]


@numba.njit(cache=True)
def cdf_slope(sorted_x, counts, targets):
    """Least-squares slope through the origin of targets on the sorted values.

    Value j of ``sorted_x`` occupies ``counts[j]`` consecutive ranks; ranks
    beyond ``len(targets)`` (the discarded largest μ) are ignored. Returns nan
    when every kept value is 0 (all μ = 1).
    """
    kept = ranked_values(sorted_x, counts, targets.shape[0])
    sxy = 0.0
    sxx = 0.0
    for rank in range(kept.shape[0]):
        x = kept[rank]
        sxy += x * targets[rank]
        sxx += x * x
    if sxx == 0.0:
        return np.nan
    return sxy / sxx


@numba.njit(cache=True)
def pareto_mle(sorted_x, counts, n_fit):
    """Unbiased Pareto-shape MLE from the n_fit smallest log μ, the rest censored.

    (n_fit − 1) / (Σ_{i ≤ n_fit} x_(i) + (N − n_fit) x_(n_fit)), Type-II
    censoring of the exponential law of log μ; with n_fit = N this is
    (N − 1) / Σ log μ. Returns nan when the denominator is 0.
    """
    n_total = 0
    for j in range(counts.shape[0]):
        n_total += counts[j]
    kept = ranked_values(sorted_x, counts, n_fit)
    total = 0.0
    for rank in range(kept.shape[0]):
        total += kept[rank]
    last = kept[kept.shape[0] - 1] if kept.shape[0] else 0.0
    denominator = total + (n_total - n_fit) * last
    if denominator == 0.0:
        return np.nan
    return (n_fit - 1) / denominator


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
def mle_aggregate(inverse_local, counts, mackay_ghahramani):
    """Global MLE from inverse local estimates, averaged over the k columns.

    Per column: the weighted mean of the local estimates m_k(x) (Levina &
    Bickel), or the inverse of the weighted mean of their inverses (MacKay &
    Ghahramani). The columns (k = k1..k2) are then averaged (Levina & Bickel).
    """
    n, n_k = inverse_local.shape
    n_total = 0
    for i in range(n):
        n_total += counts[i]
    result = 0.0
    for c in range(n_k):
        total = 0.0
        for i in range(n):
            w = counts[i]
            if w:
                v = inverse_local[i, c]
                total += w * (v if mackay_ghahramani else 1.0 / v)
        result += n_total / total if mackay_ghahramani else total / n_total
    return result / n_k


@numba.njit(cache=True)
def resample_counts(draws, counts):
    """Fill ``counts`` with how often each index occurs in ``draws``."""
    counts[:] = 0
    for i in range(draws.shape[0]):
        counts[draws[i]] += 1


@numba.njit(cache=True)
def bootstrap_cdf(sorted_x, targets, draws, pareto):
    """The k-NN CDF slope (or Pareto MLE) of every resample (one per row of ``draws``)."""
    out = np.empty(draws.shape[0])
    counts = np.empty(sorted_x.shape[0], dtype=np.int64)
    for b in range(draws.shape[0]):
        resample_counts(draws[b], counts)
        if pareto:
            out[b] = pareto_mle(sorted_x, counts, targets.shape[0])
        else:
            out[b] = cdf_slope(sorted_x, counts, targets)
    return out


@numba.njit(cache=True)
def bootstrap_mle(inverse_local, draws, mackay_ghahramani):
    """The aggregated Levina–Bickel MLE of every resample (one per row of ``draws``)."""
    out = np.empty(draws.shape[0])
    counts = np.empty(inverse_local.shape[0], dtype=np.int64)
    for b in range(draws.shape[0]):
        resample_counts(draws[b], counts)
        out[b] = mle_aggregate(inverse_local, counts, mackay_ghahramani)
    return out
