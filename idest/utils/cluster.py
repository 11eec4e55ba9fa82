"""Work on a Dask cluster: the client of a command line, and units run as they finish.

Dask is an extra (``pip install 'idest[dask]'``): nothing here imports it until a
client is asked for, and a missing extra is one error that names it. The units
of a sweep or a scan are submitted with ``client.submit`` and consumed with
``distributed.as_completed``; the caller (the driver) stores each result as it
arrives, so a worker never writes to the caller's files, and a worker lost
mid-unit costs only that unit (the scheduler runs it again on another worker).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from idest.utils.threads import limit_threads
from idest.utils.validation import check_int

_INSTALL = "install the extra with pip install 'idest[dask]'"


def require_distributed(caller: str) -> Any:
    """The ``distributed`` module; a missing Dask extra is one clear ImportError.

    Examples
    --------
    >>> require_distributed("example").__name__
    'distributed'
    """
    try:
        import dask  # noqa: F401
        import dask.array  # noqa: F401
        import distributed
    except ImportError as exc:
        raise ImportError(f"{caller}: a Dask client needs dask and distributed, which are "
                          f"not installed; {_INSTALL}.") from exc
    return distributed


def check_client(client: Any, caller: str) -> Any:
    """``client`` itself if it is a ``distributed.Client`` (imports the extra), else TypeError.

    Examples
    --------
    >>> check_client("tcp://localhost:8786", "example")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: example: client must be a distributed.Client; got str. ...
    """
    distributed = require_distributed(caller)
    if not isinstance(client, distributed.Client):
        raise TypeError(f"{caller}: client must be a distributed.Client; got "
                        f"{type(client).__name__}. Create one with Client(address).")
    return client


def worker_threads(n_jobs: int | None = None) -> int | None:
    """Threads for one task: ``n_jobs``, else its Dask worker's thread count (None outside one).

    Never imports Dask: a process that has not imported ``distributed`` runs no worker.

    Examples
    --------
    >>> worker_threads(3), worker_threads()
    (3, None)
    """
    if n_jobs is not None:
        return n_jobs
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return None
    try:
        return int(distributed.get_worker().state.nthreads)
    except ValueError:  # not in a Dask worker
        return None


def _unit(function: Callable[..., Any], arguments: tuple, n_jobs: int | None) -> Any:
    """Run one unit on a worker with its threads (BLAS, OpenMP, torch) limited to the worker's."""
    with limit_threads(worker_threads(n_jobs)):
        return function(*arguments)


class Units:
    """Units submitted to a cluster (:func:`as_completed_units`): iterate to consume them.

    Iterating yields ``(i, result)`` in order of completion; leaving the
    ``with`` block (or :meth:`cancel`) cancels the units not yet finished.
    """

    def __init__(self, client: Any, futures: dict[Any, int]) -> None:
        self.client, self.futures = client, futures

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        for future in as_completed(self.futures):
            yield self.futures[future], future.result()

    def __len__(self) -> int:
        return len(self.futures)

    def cancel(self) -> None:
        """Cancel every unit that has not finished (no-op for the others)."""
        self.client.cancel([f for f in self.futures if not f.done()])

    def __enter__(self) -> Units:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


def as_completed_units(client: Any, function: Callable[..., Any],
                       arguments: Sequence[tuple], *, caller: str,
                       n_jobs: int | None = None) -> Units:
    """Submit ``function(*args)`` for each ``args`` to a cluster; consume them as they end.

    Every unit is one ``client.submit`` (not pure: a resubmitted unit runs
    again), submitted at once and consumed with ``distributed.as_completed``
    when the returned :class:`Units` is iterated. A unit whose worker dies is
    run again by the scheduler on another worker; a unit that raises raises
    where it is consumed. Use the result as a context manager: leaving the
    block (an exception, Ctrl-C, ``break``) cancels the units not yet finished,
    so an interrupted sweep leaves nothing running on the cluster.

    Parameters
    ----------
    client : distributed.Client
    function : callable
        Importable by the workers (a module-level function).
    arguments : sequence of tuple
        The positional arguments of each unit (large shared inputs: scatter them
        first with ``client.scatter`` and pass the future).
    caller : str
        Named in error messages.
    n_jobs : int, optional
        Threads of each unit (BLAS, OpenMP, torch; scoped to the unit); default:
        the thread count of the worker that runs it.

    Returns
    -------
    Units
        Iterating yields ``(i, result)``: the unit's position in ``arguments``
        and its result, in order of completion.

    Examples
    --------
    >>> from distributed import Client
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1,
    ...             dashboard_address=":0") as client:
    ...     with as_completed_units(client, pow, [(2, 3), (3, 2)], caller="example") as units:
    ...         done = dict(units)
    >>> done
    {0: 8, 1: 9}
    """
    check_client(client, caller)
    if n_jobs is not None:
        n_jobs = check_int(n_jobs, "n_jobs", caller, 1)
    return Units(client, {client.submit(_unit, function, tuple(args), n_jobs, pure=False): i
                          for i, args in enumerate(arguments)})


#: The scheduler's worker saturation on the local clusters idest starts: a
#: one-thread worker holds only the task it runs. With Dask's default (1.1) the
#: scheduler sends such a worker a second task while it runs one; with tasks of
#: seconds (k-NN shard pairs, sweep units) that task can wait there while
#: another worker idles, until work stealing moves it (measured on 2 workers,
#: 50,000 x 768 sharded k-NN: a 1.3 s idle gap in an 11 s run).
WORKER_SATURATION = 1.0


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None,
                echo: Callable[[str], Any] = print) -> Iterator[Any]:
    """A Dask client for a command line: an existing cluster, a local one, or None.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); the cluster is
        left running.
    workers : int, optional
        Start a ``LocalCluster`` of this many one-thread worker processes,
        closed on exit (its scheduler's worker saturation is
        :data:`WORKER_SATURATION`).
    echo : callable, default=print
        Receives one line naming the workers and the dashboard's address.

    Yields
    ------
    distributed.Client or None
        None when neither argument is given (the in-process default).

    Examples
    --------
    >>> with dask_client() as client:
    ...     print(client)
    None
    """
    if scheduler is not None and workers is not None:
        raise ValueError("dask_client: give scheduler (an existing cluster) or workers (a "
                         f"local one), not both; got {scheduler!r} and {workers!r}.")
    if scheduler is None and workers is None:
        yield None
        return
    distributed = require_distributed("dask_client")
    with contextlib.ExitStack() as stack:
        if scheduler is not None:
            client = stack.enter_context(distributed.Client(scheduler))
        else:
            workers = check_int(workers, "workers", "dask_client", 1)
            import dask

            with dask.config.set({"distributed.scheduler.worker-saturation": WORKER_SATURATION}):
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True))
            client = stack.enter_context(distributed.Client(cluster))
        echo(f"dask      : {len(client.nthreads())} worker(s), dashboard {client.dashboard_link}")
        yield client
