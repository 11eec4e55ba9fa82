"""Exact k-NN sharded over a Dask cluster: the same answer as :func:`idest.knn`.

The reference rows are split into shards of ``shard_rows`` rows. A self search
runs one task per shard pair (i < j) and one per two diagonals (i, i): a
diagonal is the compiled core's self search on its shard, and a pair task the
core's pair search (``_core.pair_knn``), which computes each float32 distance
tile between the two shards once and updates the candidate lists of the rows
of *both* (the upper triangle only, as the in-process search does), then
re-scores each side's candidates in float64 and certifies each row or searches
it exhaustively within the other shard. A search against a separate reference set runs one task per
(query block, reference shard), each the compiled core in query/reference
mode. Every task returns exact partial top-k lists with global indices, and a
tree of merge tasks combines the lists of each query block.

Why the result equals the in-process one, bit for bit: every distance is the
compiled core's ``exact_sqdist`` of the same pair of rows (float64 sums of
direct differences, symmetric in its two arguments because ``fl(a - b)`` is
``-fl(b - a)``), and a shard's top-k by (squared distance, index) holds every
member of the global top-k from that shard. The one trap is that the reported
Euclidean distance is ``sqrt`` of the squared one, and two adjacent squared
distances can share a square root: a merge by (distance, index) can then order
them differently from the core's (squared distance, index). Merges therefore
keep whole groups of equal non-zero distance at the k-th place, and the rows
that end with such a group near their first k are re-scored once more by the
core on the client (exact zeros cannot hide this: ``sqrt(x) == 0`` only for
``x == 0``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

import numpy as np

from idest.neighbors._backends import cpp_knn, cpp_pair_knn
from idest.neighbors._knn import Neighbors, default_n_jobs
from idest.utils.cluster import check_client
from idest.utils.validation import check_array, check_int

#: Most partial lists one merge task combines.
MERGE_FAN_IN = 8

#: Largest default shard: two shards of 768 float32 features, their float32
#: working copies and lists stay under 1 GB per task.
MAX_SHARD_ROWS = 65_536

_PAD_INDEX = np.iinfo(np.int64).max
# ------------------------------------------------------------------ sources ---


class NpyRows:
    """Rows ``start:stop`` of a ``.npy`` file, opened by the task that reads them.

    A task receives this small description, never the array: each task maps
    only its own rows (one memmap per task, no task reads the whole file).
    """

    __slots__ = ("path", "start", "stop")

    def __init__(self, path: str, start: int, stop: int) -> None:
        self.path, self.start, self.stop = path, start, stop

    def __repr__(self) -> str:
        return f"NpyRows({self.path!r}, {self.start}, {self.stop})"

    def __reduce__(self):
        return (NpyRows, (self.path, self.start, self.stop))

    def read(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")[self.start : self.stop]


def _working_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype ``check_array`` gives an input of this dtype."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    return np.dtype(np.float32 if dtype == np.float16 else np.float64)


def _npy_file_of(X: Any) -> Any:
    """The path of a whole ``.npy`` file when X is its memory map (``np.load(mmap_mode="r")``),
    so that its tasks map their own rows instead of receiving them; else X itself."""
    path = getattr(X, "filename", None) if isinstance(X, np.memmap) else None
    if not path or not str(path).endswith(".npy") or not os.path.isfile(path):
        return X
    with contextlib.suppress(OSError, ValueError):
        whole = np.load(path, mmap_mode="r")
        if (whole.shape, whole.dtype, whole.offset) == (X.shape, X.dtype, X.offset) \
                and X.flags.c_contiguous:
            return path
    return X


class _Source:
    """A row-sharded input: a ``.npy`` path, a dask array or a validated ndarray."""

    def __init__(self, X: Any, name: str, caller: str) -> None:
        self.name, self.caller = name, caller
        self.path: str | None = None
        self.dask = None
        self.array: np.ndarray | None = None
        X = _npy_file_of(X)
        if isinstance(X, str | os.PathLike):
            self.path = os.path.abspath(os.fspath(X))
            if not self.path.endswith(".npy") or not os.path.isfile(self.path):
                raise ValueError(f"{caller}: {name} given as a path must name an existing .npy "
                                 f"file; got {os.fspath(X)!r}. Save the array with np.save.")
            header = np.load(self.path, mmap_mode="r")
            check_array(header[:1], name=name, caller=caller)  # shape and dtype only
            shape, dtype = header.shape, header.dtype
        elif type(X).__module__.startswith("dask.array"):
            if X.ndim != 2 or any(np.isnan(c) for c in X.shape):
                raise ValueError(f"{caller}: {name} as a dask array must be 2-D with known "
                                 f"chunk sizes; got shape {X.shape}. Call "
                                 f"{name}.compute_chunk_sizes() first.")
            check_array(np.zeros((1, 1), dtype=X.dtype), name=name, caller=caller)
            self.dask = X
            shape, dtype = X.shape, X.dtype
        else:
            self.array = check_array(X, name=name, caller=caller)
            shape, dtype = self.array.shape, self.array.dtype
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = _working_dtype(dtype)

    def shards(self, client: Any, bounds: np.ndarray) -> list[Any]:
        """One argument per shard for the tasks: rows to open, a dask chunk or a future."""
        pairs = list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
        if self.path is not None:
            return [NpyRows(self.path, a, b) for a, b in pairs]
        if self.dask is not None:
            x = self.dask.rechunk({0: tuple(np.diff(bounds).tolist()), 1: -1})
            return list(x.to_delayed().ravel())
        return client.scatter([self.array[a:b] for a, b in pairs])  # each row sent once

    def rows(self, client: Any, ids: np.ndarray) -> np.ndarray:
        """The rows ``ids`` (sorted), read on the client without loading the rest."""
        if self.path is not None:
            rows = np.load(self.path, mmap_mode="r")[ids]
        elif self.dask is not None:
            rows = client.compute(self.dask[ids]).result()
        else:
            rows = self.array[ids]
        return check_array(rows, name=self.name, caller=self.caller).astype(self.dtype)


def _load(shard: Any, start: int, dtype: np.dtype, name: str) -> np.ndarray:
    """A task's rows as a validated array of the search's dtype."""
    rows = shard.read() if isinstance(shard, NpyRows) else shard
    name = f"{name}[{start}:{start + len(rows)}]"  # errors name the task's rows
    return check_array(rows, name=name, caller="knn").astype(dtype, copy=False)


# ------------------------------------------------------------ task threads ---

_WORKER_LOCKS: dict[str, threading.Lock] = {}
_WORKER_LOCKS_GUARD = threading.Lock()


def _task_threads(n_jobs: int | None) -> tuple[int, Any]:
    """Threads for one task (default: its worker's) and the lock that keeps it alone there.

    A task uses ``n_jobs`` threads (default: every thread of its worker), so the
    tasks of one worker run one at a time: a worker of T threads would otherwise
    run T tasks of T threads each, and the BLAS limit (process-wide) would be
    shared by concurrent tasks.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # run outside a worker (a test, a local scheduler)
        return n_jobs or default_n_jobs(), _NoLock()
    with _WORKER_LOCKS_GUARD:
        lock = _WORKER_LOCKS.setdefault(worker.id, threading.Lock())
    return n_jobs or int(worker.state.nthreads), lock


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# ------------------------------------------------------------------ tasks ---


def _self_diagonals(shards: tuple, starts: tuple, k: int, dtype: np.dtype,
                    n_jobs: int | None) -> tuple:
    """Partial lists of each shard's rows within that shard (the core's self search).

    Two shards per task where possible: two diagonals are the work of one pair
    task, and tasks of equal work fill W workers evenly in any order.
    """
    threads, lock = _task_threads(n_jobs)
    parts = []
    for shard, start in zip(shards, starts, strict=True):
        S = _load(shard, start, dtype, "X")
        if S.shape[0] == 1:
            parts.append((np.empty((1, 0)), np.empty((1, 0), dtype=np.int64), 0))
            continue
        with lock:
            dist, idx, fallbacks = cpp_knn(S, None, min(k, S.shape[0] - 1), threads, False)
        parts.append((dist, idx + start, fallbacks))
    return tuple(parts)


def _self_pair(shard_a: Any, shard_b: Any, start_a: int, start_b: int, k: int,
               dtype: np.dtype, n_jobs: int | None):
    """Partial lists of shard a's rows within shard b and of b's rows within a."""
    A, B = _load(shard_a, start_a, dtype, "X"), _load(shard_b, start_b, dtype, "X")
    threads, lock = _task_threads(n_jobs)
    with lock:
        (da, ia, fa), (db, ib, fb) = cpp_pair_knn(A, B, k, threads)
    return (da, ia + start_b, fa), (db, ib + start_a, fb)


def _query_shard(query: Any, shard: Any, q_start: int, start: int, k: int, dtype: np.dtype,
                 n_jobs: int | None):
    """Partial lists of a query block within one reference shard."""
    Q, R = _load(query, q_start, dtype, "X"), _load(shard, start, dtype, "reference")
    threads, lock = _task_threads(n_jobs)
    with lock:
        dist, idx, fallbacks = cpp_knn(Q, R, min(k, R.shape[0]), threads, False)
    return dist, idx + start, fallbacks


def merge_partials(k: int, *parts: tuple[np.ndarray, np.ndarray, int]):
    """Merge partial lists of the same rows by (distance, index).

    Keeps the first k entries of each row and, past them, the entries whose
    non-zero distance equals the k-th one (padding with inf and the largest
    int64): those may precede the k-th in the exact (squared distance, index)
    order, see the module docstring.
    """
    dist = np.concatenate([p[0] for p in parts], axis=1)
    idx = np.concatenate([p[1] for p in parts], axis=1)
    fallbacks = sum(p[2] for p in parts)
    order = np.lexsort((idx, dist), axis=-1)
    dist = np.take_along_axis(dist, order, axis=1)
    idx = np.take_along_axis(idx, order, axis=1)
    if dist.shape[1] <= k:
        return dist, idx, fallbacks
    kth = dist[:, k - 1 : k]
    keep = (np.arange(dist.shape[1]) < k) | ((dist == kth) & (kth > 0) & np.isfinite(kth))
    width = int(keep.sum(axis=1).max())
    dist, idx, keep = dist[:, :width].copy(), idx[:, :width].copy(), keep[:, :width]
    dist[~keep], idx[~keep] = np.inf, _PAD_INDEX
    return dist, idx, fallbacks


def _tree_merge(delayed: Any, k: int, parts: list[Any]) -> Any:
    """Merge partial lists in a tree of at most ``MERGE_FAN_IN`` inputs per task."""
    merge = delayed(merge_partials, pure=True)
    while len(parts) > 1:
        parts = [merge(k, *parts[i : i + MERGE_FAN_IN])
                 for i in range(0, len(parts), MERGE_FAN_IN)]
    return merge(k, parts[0]) if parts else None


# --------------------------------------------------------------- the graph ---


def _bounds(n: int, shard_rows: int) -> np.ndarray:
    return np.unique(np.r_[np.arange(0, n, shard_rows), n])


def default_shard_rows(n: int, n_threads: int) -> int:
    """Shard size that gives at least 4 equal tasks per worker thread in a self search.

    An even number P of shards: the P (P - 1) / 2 pair tasks and the P / 2
    tasks of two diagonals each are then P^2 / 2 tasks of the same work, which
    any order spreads evenly over the workers.

    >>> default_shard_rows(50_000, 2)  # 4 shards: 6 pair tasks + 2 of two diagonals
    12500
    """
    n_shards = 2
    while n_shards * n_shards // 2 < 4 * n_threads:
        n_shards += 2
    return int(min(MAX_SHARD_ROWS, max(1, -(-n // n_shards))))


def _search_task(func: Any, *args: Any, nout: int | None = None) -> Any:
    """A delayed search task whose key starts ``knn_search-``, whatever ``func``.

    Dask's scheduler groups tasks by the prefix of their keys; one group of
    every search task is larger than twice the cluster's threads, so it is
    root-ish: the scheduler queues it and hands out its tasks as threads free
    up, where a small group (two tasks of two diagonals) would be sent to the
    workers at once and run first wherever it landed.
    """
    from dask import delayed
    from dask.base import tokenize

    return delayed(func, nout=nout)(
        *args, dask_key_name=f"knn_search-{tokenize(func.__name__, *args)}")


def build_graph(client: Any, X: _Source, R: _Source | None, k: int, shard_rows: int,
                n_jobs: int | None) -> list[Any]:
    """One delayed (dist, idx, fallbacks) per block of query rows, in row order."""
    from dask import delayed

    dtype = X.dtype if R is None or R.dtype == X.dtype else np.dtype(np.float64)
    qb = _bounds(X.shape[0], shard_rows)
    q_shards = X.shards(client, qb)
    n = len(q_shards)
    partials: list[list[Any]] = [[] for _ in range(n)]
    if R is None:
        for i in range(0, n, 2):  # the diagonals, two per task
            ids = range(i, min(n, i + 2))
            diagonals = _search_task(_self_diagonals, tuple(q_shards[s] for s in ids),
                                     tuple(int(qb[s]) for s in ids), k, dtype, n_jobs,
                                     nout=len(ids))
            for s, part in zip(ids, diagonals, strict=True):
                partials[s].append(part)
        for i in range(n):
            for j in range(i + 1, n):
                part_i, part_j = _search_task(_self_pair, q_shards[i], q_shards[j], int(qb[i]),
                                              int(qb[j]), k, dtype, n_jobs, nout=2)
                partials[i].append(part_i)
                partials[j].append(part_j)
    else:
        rb = _bounds(R.shape[0], shard_rows)
        r_shards = R.shards(client, rb)
        for i in range(n):
            for j, shard in enumerate(r_shards):
                partials[i].append(_search_task(_query_shard, q_shards[i], shard, int(qb[i]),
                                                int(rb[j]), k, dtype, n_jobs))
    return [_tree_merge(delayed, k, p) for p in partials]


def _resolve_ties(client: Any, X: _Source, R: _Source | None, k: int, dist: np.ndarray,
                  idx: np.ndarray, n_jobs: int) -> None:
    """Re-score, in the core's exact order, rows with a non-zero distance tie in the top k.

    Rows whose lists hold two equal non-zero distances among their first k + 1
    entries are re-ranked by ``refine`` on their entries up to the k-th
    distance (every entry that can belong to the exact top k); in place.
    """
    from idest.neighbors import _core

    width = min(k, dist.shape[1] - 1)
    tie = ((dist[:, :width] == dist[:, 1 : width + 1]) & (dist[:, :width] > 0)).any(axis=1)
    rows = np.flatnonzero(tie)
    if rows.size == 0:
        return
    pool = dist[rows] <= dist[rows, k - 1 : k]
    ids = np.unique(idx[rows][pool])
    cand = np.where(pool, np.searchsorted(ids, idx[rows]), -1)
    ref = R if R is not None else X
    Q, C = X.rows(client, rows), ref.rows(client, ids)
    if Q.dtype != C.dtype:
        Q, C = Q.astype(np.float64), C.astype(np.float64)
    bound = np.full(rows.size, np.inf)
    d, i, _ = _core.refine(Q, C, k, cand, bound, n_jobs)
    dist[rows, :k], idx[rows, :k] = d, ids[i]


def sharded_knn(
    X: Any,
    k: int,
    *,
    client: Any,
    reference: Any | None = None,
    shard_rows: int | None = None,
    n_jobs: int | None = None,
) -> Neighbors:
    """Exact k nearest neighbours computed on a Dask cluster, equal to :func:`idest.knn`.

    The reference rows are split into shards of ``shard_rows`` rows; every
    task searches one query block against one shard with the compiled core and
    returns exact partial lists, merged by a tree of tasks. The result equals
    the in-process ``idest.knn(X, k, reference=reference)`` (the compiled core
    or, at D <= 6, the tree) index for index and bit for bit, for any number of
    workers and any ``shard_rows``; ``idest.knn(X, k, client=client)`` calls
    this function with the default shard size.

    Parameters
    ----------
    X : str, path, dask array or array-like of shape (n_samples, n_features)
        A path to a ``.npy`` file or its memory map (``np.load(path,
        mmap_mode="r")``): each task maps only its own rows, and the workers
        must see the same path; a 2-D dask array (rechunked into shards), or
        anything :func:`idest.knn` accepts (validated here, each shard scattered
        to the cluster once).
    k : int
        Neighbours per point, ``1 <= k < n_samples`` (``k <= n_reference`` with
        a separate reference set).
    client : distributed.Client
        The caller's client; this function never starts or closes a cluster.
    reference : same types as X, optional
        Search ``X`` against this set instead of against itself (excluding each
        point's own row, as :func:`idest.knn` does).
    shard_rows : int, optional
        Rows per shard and per query block. Default: the smallest even number
        of shards that gives at least 4 tasks of equal work per worker thread,
        at most 65,536 rows. A task holds two blocks of
        ``shard_rows`` rows; see ``docs/distributed.md`` for the memory formula.
    n_jobs : int, optional
        Threads per task of the compiled core (each with a one-thread BLAS,
        scoped to the task).
        Default: the worker's thread count. A worker runs one search task at a
        time.

    Returns
    -------
    Neighbors
        As :func:`idest.knn`; ``backend`` is ``"dask"``, ``data`` is the
        validated array, the memory map of the ``.npy`` file, or None for a
        dask array.

    Notes
    -----
    A self search runs one task per shard pair (i < j), each computing the
    float32 distance tile of its two shards once and updating the lists of
    both (half the work of all (block, shard) pairs, like the in-process
    upper-triangle search), and one per two diagonals; candidates are
    certified and re-scored in float64 by the compiled core. Rows whose lists
    end in equal non-zero distances are re-ranked on the client by squared
    distance (see this module's docstring).

    Examples
    --------
    >>> import numpy as np, idest
    >>> from distributed import Client
    >>> from idest.neighbors import sharded_knn
    >>> X = np.random.default_rng(0).normal(size=(600, 16)).astype(np.float32)
    >>> with Client(processes=False, n_workers=1, threads_per_worker=1,
    ...             dashboard_address=":0") as client:
    ...     nn = sharded_knn(X, 5, client=client, shard_rows=200)
    >>> bool((nn.indices == idest.knn(X, 5).indices).all())
    True
    """
    check_client(client, "sharded_knn")
    src = _Source(X, "X", "knn")
    ref = None if reference is None else _Source(reference, "reference", "knn")
    if ref is not None and ref.shape[1] != src.shape[1]:
        raise ValueError(f"knn: X has {src.shape[1]} features but reference has "
                         f"{ref.shape[1]}; they must match.")
    available = (ref or src).shape[0] - (1 if ref is None else 0)
    check_int(k, "k", "knn", 1, available)
    if n_jobs is not None:
        n_jobs = check_int(n_jobs, "n_jobs", "sharded_knn", 1)
    threads = sum(client.nthreads().values()) or 1
    shard_rows = (default_shard_rows(src.shape[0], threads) if shard_rows is None
                  else check_int(shard_rows, "shard_rows", "sharded_knn", 1))
    blocks = client.gather(client.compute(build_graph(client, src, ref, int(k), shard_rows,
                                                      n_jobs)))
    width = max(b[0].shape[1] for b in blocks)  # blocks may keep different tie groups
    dist = np.concatenate([_pad(b[0], width, np.inf) for b in blocks])
    idx = np.concatenate([_pad(b[1], width, _PAD_INDEX) for b in blocks])
    _resolve_ties(client, src, ref, int(k), dist, idx, n_jobs or default_n_jobs())
    data = (ref or src)
    data = data.array if data.array is not None else (
        np.load(data.path, mmap_mode="r") if data.path is not None else None)
    return Neighbors(np.ascontiguousarray(dist[:, :k]), np.ascontiguousarray(idx[:, :k]),
                     reference is None, "dask", int(sum(b[2] for b in blocks)), data)


def _pad(a: np.ndarray, width: int, value: float) -> np.ndarray:
    if a.shape[1] == width:
        return a
    out = np.full((a.shape[0], width), value, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def knn_on_client(X: Any, k: int, client: Any, reference: Any | None, backend: str,
                  n_jobs: int | None) -> Neighbors:
    """``idest.knn(..., client=client)``: the sharded search with its default shards."""
    if backend not in ("auto", "cpp"):
        raise ValueError(f"knn: with a client the search runs the compiled core; backend must "
                         f"be 'auto' or 'cpp', got {backend!r}. Drop backend= or client=.")
    return sharded_knn(X, k, client=client, reference=reference, n_jobs=n_jobs)
