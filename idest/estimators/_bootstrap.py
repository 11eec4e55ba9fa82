"""Plumbing shared by the estimators: option checks, the bootstrap, result assembly."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from idest.estimators import _kernels
from idest.estimators._duplicates import PreparedNeighbors
from idest.estimators._results import NO_INTERVAL, IDResult
from idest.neighbors import default_n_jobs
from idest.utils.progress import progress_bar
from idest.utils.validation import check_confidence, check_int, check_random_state, invalid

#: Bootstrap draws generated at once (rows x points), to bound memory.
_DRAWS_PER_BATCH = 1 << 22
#: Resamples per batch at most: batches are the unit of work of the bootstrap's threads,
#: and their layout depends only on (n_bootstrap, n_points), never on the thread count.
_RESAMPLES_PER_BATCH = 25
#: Fewer draws than this in all run on the calling thread (2^18 draws: ~0.3 ms of work
#: for one estimator, ~0.6 ms for estimate_all's four; a thread costs ~0.05 ms).
_THREADED_DRAWS = 1 << 18
#: Memory kept by each calling thread for drawing resamples into (:class:`_Scratch`).
_SCRATCH_BYTES = 1 << 25


@dataclass(frozen=True)
class BootstrapOptions:
    """How to bootstrap: resamples, interval level, seed, progress bar.

    ``seed`` is an int: every estimate made with the same options draws the
    same resamples (one k-NN search, several estimators, one set of draws).
    """

    n_bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0
    progress: bool | None = None


def check_bootstrap(caller: str, n_bootstrap: Any, confidence: Any, random_state: Any,
                    progress: bool | None) -> BootstrapOptions:
    """Validated bootstrap options (ValueError in one sentence otherwise).

    An int ``random_state`` is the seed itself (the same draws as before for
    the same int); a Generator or None gives one seed drawn from it.
    """
    n = check_int(n_bootstrap, "n_bootstrap", caller, 0)
    if n == 1:
        raise invalid(caller, "n_bootstrap", "0 (no interval) or an int >= 2", "1",
                      "One resample has no spread: its interval would have zero width.")
    confidence = check_confidence(confidence, "confidence", caller)
    rng = check_random_state(random_state, caller)
    is_int = isinstance(random_state, int | np.integer) and not isinstance(random_state, bool)
    seed = int(random_state) if is_int else int(rng.integers(np.iinfo(np.int64).max))
    return BootstrapOptions(n, confidence, seed, progress)


def resample_counts(seed: int, n_points: int, batch: int, n_rows: int,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Multiplicities of the points in resamples of one batch: (n_rows, n_points), read-only.

    Batch ``batch`` draws from its own stream, numpy's SFC64 seeded with ``[seed, batch]``
    (a SeedSequence), exactly as ``Generator(SFC64([seed, batch])).integers(0, n_points,
    (n_rows, n_points), dtype=np.int32)`` but counted as it draws
    (:func:`idest.estimators._kernels.resample_counts`), so every estimator that asks for
    the same seed, points and batch gets the same resamples. ``out``: an int32 array of
    at least n_rows * n_points elements to draw into (its first ones), instead of new
    memory.
    """
    size = n_rows * n_points
    buffer = np.empty(size, dtype=np.int32) if out is None else out[:size]
    counts = buffer.reshape(n_rows, n_points)
    _kernels.resample_counts(np.random.SFC64([seed, batch]).state["state"]["state"], counts)
    counts = counts.view()
    counts.flags.writeable = False
    return counts


class _Scratch(threading.local):
    """Memory the multiplicities are drawn into, kept by each calling thread between
    bootstraps (at most :data:`_SCRATCH_BYTES`): a batch drawn into fresh memory pays a
    page fault per 4 KiB. At 25 x 20,000 after a k-NN search a helper thread's first draw
    took 1.2-1.5 ms into new memory against 0.5 ms into kept memory, and the default
    bootstrap 5.3-6.3 ms against 4.3 ms (2-core EPYC, 2026-12-01)."""

    buffers: tuple[np.ndarray, ...] = ()

    def get(self, n_buffers: int, size: int) -> list[np.ndarray | None]:
        """``n_buffers`` int32 buffers of ``size`` elements or more (None: too large to keep,
        each batch allocates its own)."""
        if n_buffers * size * 4 > _SCRATCH_BYTES:
            return [None] * n_buffers
        if len(self.buffers) < n_buffers or self.buffers[0].size < size:
            self.buffers = tuple(np.empty(size, dtype=np.int32) for _ in range(n_buffers))
        return list(self.buffers[:n_buffers])


_scratch = _Scratch()


def resample_batches(n_bootstrap: int, n_points: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of resamples: at most :data:`_RESAMPLES_PER_BATCH`
    resamples and about 4 million draws each, whatever the number of threads.

    >>> resample_batches(100, 20_000)
    [(0, 25), (25, 50), (50, 75), (75, 100)]
    """
    rows = max(1, min(_RESAMPLES_PER_BATCH, _DRAWS_PER_BATCH // n_points))
    return [(a, min(a + rows, n_bootstrap)) for a in range(0, n_bootstrap, rows)]


def bootstrap_estimates(statistics: Sequence[Callable[[np.ndarray], np.ndarray]],
                        n_points: int, options: BootstrapOptions) -> np.ndarray:
    """Each statistic of ``options.n_bootstrap`` resamples of the points (with replacement).

    A statistic maps a (batch, n_points) array of multiplicities, how often each point
    (in the order of the neighbour rows) was drawn, to one estimate per row (a Numba
    kernel of ``idest/estimators/_kernels.py`` that releases the GIL). Returns
    (len(statistics), n_bootstrap): every statistic of the same resamples, each batch
    (:func:`resample_batches`) drawn once (:func:`resample_counts`) and handed to all of
    them while it is in cache; a statistic bootstrapped alone gets the same numbers. The
    batches run on the cores this process may use, each drawing from its own stream, so
    the result does not depend on the number of threads.
    """
    batches = resample_batches(options.n_bootstrap, n_points)
    out = np.empty((len(statistics), options.n_bootstrap))

    n_threads = min(default_n_jobs(), len(batches)) if options.n_bootstrap * n_points >= (
        _THREADED_DRAWS) else 1
    scratch = _scratch.get(n_threads, max(b - a for a, b in batches) * n_points)

    def run(batch: int, thread: int) -> int:
        start, stop = batches[batch]
        counts = resample_counts(options.seed, n_points, batch, stop - start, scratch[thread])
        for row, statistic in zip(out, statistics, strict=True):
            row[start:stop] = statistic(counts)
        return stop - start

    with progress_bar(options.progress, total=options.n_bootstrap, desc="bootstrap",
                      unit="resample",
                      work=5.0 * (1 + len(statistics)) * options.n_bootstrap * n_points) as bar:
        on_threads(run, len(batches), n_threads, bar.update if bar is not None else _ignore)
    return out


def _ignore(value: Any) -> None:
    """What a bar that is not shown does with its progress."""


def on_threads(task: Callable[[int, int], Any], n_tasks: int, n_threads: int,
               report: Callable[[Any], None]) -> None:
    """``task(i, thread)`` for every i < ``n_tasks``, on this thread (``thread`` 0) and
    ``n_threads − 1`` helpers (1, 2, …).

    Each thread takes the next i as it finishes one (no pool: starting and stopping one
    costs ~0.2 ms, 5 % of the default bootstrap at 20,000 points); ``report`` gets the value
    of every task, on this thread, as this thread finishes its own. An error in any task,
    or Ctrl-C, stops the helpers after their current task and is raised here, once no
    helper is left running.

    >>> done = []
    >>> on_threads(lambda i, thread: i * i, 5, 2, done.append)
    >>> sorted(done)
    [0, 1, 4, 9, 16]
    """
    taken = itertools.count()  # next() on it is atomic under the GIL
    values: list[Any] = []  # of the helpers' tasks (list.append is atomic)
    errors: list[BaseException] = []
    stopped = [threading.Event() for _ in range(n_threads - 1)]

    def helper(thread: int, stop: threading.Event) -> None:
        try:
            while not errors and (i := next(taken)) < n_tasks:
                values.append(task(i, thread))
        except BaseException as exc:  # re-raised on the calling thread
            errors.append(exc)
        finally:
            stop.set()

    for thread, stop in enumerate(stopped, 1):
        threading.Thread(target=helper, args=(thread, stop), name="idest-bootstrap",
                         daemon=True).start()
    reported = 0
    try:
        while not errors and (i := next(taken)) < n_tasks:
            report(task(i, 0))
            for value in values[reported:]:
                report(value)
                reported += 1
        for stop in stopped:
            stop.wait()
    except BaseException as exc:  # Ctrl-C included: let the helpers finish their task
        errors.append(exc)
        for stop in stopped:
            while not stop.wait(0.05):
                pass
    if errors:
        raise errors[0]
    for value in values[reported:]:
        report(value)


@dataclass(frozen=True)
class PointEstimate:
    """An estimate before its interval: what :func:`make_results` turns into an IDResult.

    ``statistic`` gives the estimate of each resample from a batch of multiplicities
    (see :func:`bootstrap_estimates`).
    """

    method: str
    k: int
    dimension: float
    variant: str
    statistic: Callable[[np.ndarray], np.ndarray]
    local_dimensions: np.ndarray | None = None


def make_results(estimates: Sequence[PointEstimate], prepared: PreparedNeighbors,
                 options: BootstrapOptions) -> list[IDResult]:
    """IDResults of point estimates, with percentile bootstrap intervals when asked for.

    All estimates are bootstrapped together, from the same resamples drawn once. An
    interval and standard error need at least two finite resampled estimates that
    differ; otherwise they stay (nan, nan) and None.
    """
    n = prepared.neighbors.n_queries
    booted = (bootstrap_estimates([e.statistic for e in estimates], n, options)
              if options.n_bootstrap else [None] * len(estimates))
    results = []
    for estimate, resampled in zip(estimates, booted, strict=True):
        interval, std = NO_INTERVAL, None
        if resampled is not None:
            resampled = resampled[np.isfinite(resampled)]
            if resampled.size > 1 and resampled.min() < resampled.max():
                tail = (1 - options.confidence) / 2
                low, high = np.quantile(resampled, [tail, 1 - tail])
                interval, std = (float(low), float(high)), float(resampled.std(ddof=1))
        results.append(IDResult(
            method=estimate.method, k=estimate.k, dimension=float(estimate.dimension),
            interval=interval, confidence=options.confidence, n_points=n,
            n_duplicates_dropped=prepared.n_duplicates_dropped,
            n_near_duplicates_merged=prepared.n_near_duplicates_merged,
            variant=estimate.variant, std_error=std, n_bootstrap=options.n_bootstrap,
            local_dimensions=estimate.local_dimensions,
        ))
    return results


#: What an estimator class's function returns (an IDResult, or GRIDE's result).
Result = TypeVar("Result")


class ResultEstimatorMixin:
    """Stores an :class:`IDResult` as scikit-learn style fitted attributes."""

    def _estimate(self, function: Callable[..., Result], X: Any) -> Result:
        """``function(X, **params)``, its errors naming this class instead of the function."""
        try:
            return function(X, **self.get_params())  # type: ignore[attr-defined]
        except ValueError as exc:
            prefix = f"{function.__name__}: "
            if not str(exc).startswith(prefix):
                raise
            raise ValueError(f"{type(self).__name__}: {str(exc)[len(prefix):]}") from exc

    def _store(self, result: Any, X: Any) -> None:
        """The fitted attributes every estimator has (an IDResult's, or GRIDE's result)."""
        data = getattr(X, "data", X)
        shape = np.shape(data) if data is not None else ()
        if len(shape) == 2:
            self.n_features_in_ = int(shape[1])
        self.result_ = result
        self.dimension_ = result.dimension
        self.interval_ = result.interval
        self.n_points_ = result.n_points
        self.n_duplicates_dropped_ = result.n_duplicates_dropped
