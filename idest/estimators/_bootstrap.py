"""Plumbing shared by the estimators: option checks, the bootstrap, result assembly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from idest.estimators._duplicates import PreparedNeighbors
from idest.estimators._results import IDResult
from idest.utils.progress import progress_bar
from idest.utils.validation import check_int

#: Bootstrap draws generated at once (rows x points), to bound memory.
_DRAWS_PER_BATCH = 1 << 22


@dataclass(frozen=True)
class BootstrapOptions:
    """How to bootstrap: resamples, interval level, seed, progress bar."""

    n_resamples: int = 0
    confidence: float = 0.95
    random_state: int | None = 0
    progress: bool | None = None


def check_bootstrap(caller: str, bootstrap: Any, confidence: Any, random_state: Any,
                    progress: bool | None) -> BootstrapOptions:
    """Validated bootstrap options (ValueError in one sentence otherwise)."""
    n = check_int(bootstrap, "bootstrap", caller, 0)
    if n == 1:
        raise ValueError(f"{caller}: bootstrap must be 0 (no interval) or at least 2 resamples "
                         "(one resample has no spread: its interval would have zero width); "
                         "got 1.")
    if not (isinstance(confidence, float | int) and 0 < confidence < 1):
        raise ValueError(f"{caller}: confidence must be a number in (0, 1), e.g. 0.95; "
                         f"got {confidence!r}.")
    if random_state is not None and not isinstance(random_state, int | np.integer):
        raise ValueError(f"{caller}: random_state must be an int or None, got {random_state!r}.")
    return BootstrapOptions(n, float(confidence), random_state, progress)


def bootstrap_estimates(statistic: Callable[[np.ndarray], np.ndarray], n_points: int,
                        options: BootstrapOptions) -> np.ndarray:
    """The statistic of ``options.n_resamples`` resamples of the points (with replacement).

    ``statistic`` maps a (batch, n_points) array of drawn point indices to one
    estimate per row (a Numba kernel of ``idest/estimators/_kernels.py``).
    """
    rng = np.random.default_rng(options.random_state)
    batch = max(1, _DRAWS_PER_BATCH // n_points)
    out = np.empty(options.n_resamples)
    with progress_bar(options.progress, total=options.n_resamples, desc="bootstrap",
                      unit="resample", work=100.0 * options.n_resamples * n_points) as bar:
        for start in range(0, options.n_resamples, batch):
            stop = min(start + batch, options.n_resamples)
            out[start:stop] = statistic(rng.integers(0, n_points, size=(stop - start, n_points)))
            if bar is not None:
                bar.update(stop - start)
    return out


def make_result(
    method: str, k: int, dimension: float, prepared: PreparedNeighbors, variant: str,
    options: BootstrapOptions, statistic: Callable[[np.ndarray], np.ndarray],
    local_dimensions: np.ndarray | None = None,
) -> IDResult:
    """Assemble an IDResult, with a percentile bootstrap interval when asked for."""
    n = prepared.neighbors.n_queries
    low = high = std = None
    if options.n_resamples:
        estimates = bootstrap_estimates(statistic, n, options)
        estimates = estimates[np.isfinite(estimates)]
        tail = (1 - options.confidence) / 2
        low, high = (float(v) for v in np.quantile(estimates, [tail, 1 - tail]))
        std = float(estimates.std(ddof=1)) if estimates.size > 1 else 0.0
    return IDResult(
        method=method, k=k, dimension=float(dimension), ci_low=low, ci_high=high, n_points=n,
        n_duplicates_dropped=prepared.n_duplicates_dropped,
        n_near_duplicates_merged=prepared.n_near_duplicates_merged, variant=variant,
        std_error=std, n_bootstrap=options.n_resamples, local_dimensions=local_dimensions,
    )


class ResultEstimatorMixin:
    """Stores an :class:`IDResult` as scikit-learn style fitted attributes."""

    def _store(self, result: IDResult, X: Any) -> None:
        data = getattr(X, "data", X)
        shape = np.shape(data) if data is not None else ()
        if len(shape) == 2:
            self.n_features_in_ = int(shape[1])
        self.result_ = result
        self.dimension_ = result.dimension
        self.ci_low_ = result.ci_low
        self.ci_high_ = result.ci_high
        self.n_points_ = result.n_points
        self.n_duplicates_dropped_ = result.n_duplicates_dropped
