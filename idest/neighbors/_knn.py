"""Exact k-nearest neighbours: the one public entry point and its result object.

``knn`` validates the input once and hands it to one of three backends that
share a single contract (see :func:`knn`):

``"cpp"``
    The compiled core (``cpp/knn.cpp``): float32 distance tiles, per-row
    candidate selection, and, for the self search, only the upper triangle of
    the symmetric distance matrix (half the GEMM work of a plain BLAS k-NN such
    as faiss's ``IndexFlatL2``). Tiles come from SciPy's SGEMM (one
    single-threaded call per worker thread) for D > 64, and for D <= 64 from a
    fused FMA kernel (AVX-512 or AVX2, chosen at run time; SGEMM elsewhere) that
    tests candidates in registers, with the rows visited in a spatial order
    (``cpp/fused_scan.cpp``, ``cpp/spatial_order.cpp``).
``"numba"``
    The same algorithm written as Numba kernels around numpy's SGEMM (full
    matrix): a second implementation used to cross-check the first.
``"tree"``
    SciPy's ``cKDTree`` on PCA-rotated data (a rotation leaves Euclidean
    distances unchanged, and splitting along principal axes suits data that
    lie near a low-dimensional subspace), for low ambient dimension. It builds a
    rotated float64 copy of the data (the one backend that does; at the D <= 6
    where ``auto`` picks it, that copy is at most 48 bytes per point).

Every backend re-scores its candidates from direct differences accumulated in
float64 and certifies each row (no point outside the candidate list can be
closer); rows that fail the certificate are searched again (the compiled core
first with wider candidate lists, where ties ran past the list's end), else
exhaustively in float64.
The result therefore equals an exact float64 search, ties included.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from idest.utils.cluster import worker_threads
from idest.utils.validation import check_array, check_choice, check_int, invalid

Backend = Literal["auto", "cpp", "numba", "tree", "torch"]
BACKENDS = ("cpp", "numba", "tree")

#: Smallest reference set for which ``backend="auto"`` takes the tree, by
#: ambient dimension (larger D: never). The tree's cost grows like N log N and
#: steeply with D, the compiled core's like N^2 and slowly with D. Measured with
#: ``benchmarks/bench_backends.py`` (k=10): at D=4 the two are level at N=50,000
#: and the tree is 2.4x faster at N=200,000; at D=6 it is level only at
#: N=200,000; at D=8 it is 2.1x slower there (README, "Choosing a backend").
TREE_MIN_POINTS = {1: 50_000, 2: 50_000, 3: 50_000, 4: 50_000, 5: 100_000, 6: 250_000}


@dataclass(frozen=True)
class Neighbors:
    """The k nearest neighbours of every query point.

    Compute once with the largest k you need and slice with :meth:`head`:
    every estimator in idest accepts a ``Neighbors`` in place of raw data.

    Attributes
    ----------
    distances : ndarray of shape (n_queries, k), float64
        Euclidean (not squared) distances, ascending along each row. Exact
        duplicates of a query give exactly 0.0.
    indices : ndarray of shape (n_queries, k), int64
        Row numbers in the reference set; equal distances are ordered by index.
    self_excluded : bool
        True when the queries are the reference set and each point's own index
        was excluded from its row.
    backend : str
        The backend that produced the result.
    n_fallback_rows : int
        Exhaustive float64 searches made because float32 candidates could not
        be certified (near-ties): one per row, or in the compiled core also one
        per row standing for a group of equal rows. The compiled core first
        searches such rows again with wider lists and counts only the
        exhaustive searches left after.
    data : ndarray or None
        The validated reference data (a view, not a copy), kept so that
        estimators can recompute neighbours after removing duplicates.
    input_dtype : str or None
        The dtype the reference data came in (``data`` may hold a wider copy,
        e.g. float32 for float16 input): the duplicate checks take the input's
        precision from it.

    Examples
    --------
    >>> import numpy as np, idest
    >>> X = np.random.default_rng(0).normal(size=(500, 8))
    >>> nn = idest.knn(X, k=10)
    >>> nn.distances.shape, nn.head(3).indices.shape
    ((500, 10), (500, 3))
    >>> dist, idx = nn  # unpacks like faiss's (D, I)
    """

    distances: np.ndarray
    indices: np.ndarray
    self_excluded: bool = True
    backend: str = ""
    n_fallback_rows: int = 0
    data: np.ndarray | None = field(default=None, repr=False, compare=False)
    input_dtype: str | None = field(default=None, repr=False, compare=False)

    @property
    def k(self) -> int:
        """Number of neighbours per query."""
        return int(self.distances.shape[1])

    @property
    def n_queries(self) -> int:
        """Number of query points (rows)."""
        return int(self.distances.shape[0])

    def head(self, k: int) -> Neighbors:
        """The first ``k`` neighbours of every row (a view, no copy)."""
        check_int(k, "k", "Neighbors.head", 1, self.k)
        return dataclasses.replace(self, distances=self.distances[:, :k],
                                   indices=self.indices[:, :k])

    def __iter__(self):
        yield self.distances
        yield self.indices


def default_n_jobs() -> int:
    """Number of cores this process may use; in a Dask worker, the worker's threads.

    Examples
    --------
    >>> default_n_jobs() >= 1
    True"""
    threads = worker_threads()  # a search inside a task of a sweep or a scan on a cluster
    if threads is not None:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def is_device_tensor(A: Any) -> bool:
    """True for a torch tensor off the CPU (a GPU), which ``backend="auto"`` sends to torch."""
    if not type(A).__module__.startswith("torch"):
        return False  # torch is not imported for other input
    import torch

    return isinstance(A, torch.Tensor) and A.device.type != "cpu"


def check_k(k: Any, n_reference: int, self_search: bool) -> int:
    """``k`` as an int in [1, available points], or knn's ValueError."""
    check_int(k, "k", "knn", 1)
    available = n_reference - (1 if self_search else 0)
    if k > available:
        what = "n_samples - 1" if self_search else "n_reference"
        raise invalid("knn", "k", f"at most {what} = {available}", f"k={k}",
                      "Use a smaller k or more points.")
    return int(k)


def choose_backend(n_reference: int, dim: int) -> str:
    """The backend ``backend="auto"`` picks for a reference set of this shape.

    The k-d tree for large sets of very low ambient dimension
    (:data:`TREE_MIN_POINTS`), the compiled core otherwise.

    >>> choose_backend(100_000, 3), choose_backend(10_000, 3), choose_backend(100_000, 20)
    ('tree', 'cpp', 'cpp')
    """
    return "tree" if n_reference >= TREE_MIN_POINTS.get(dim, np.inf) else "cpp"


def knn(
    X: Any,
    k: int,
    *,
    reference: Any | None = None,
    backend: Backend = "auto",
    n_jobs: int | None = None,
    progress: bool | None = None,
    device: Any = None,
    client: Any | None = None,
) -> Neighbors:
    """Exact k nearest neighbours of every row of ``X``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        float32 or float64 numpy array, ``numpy.memmap`` or CPU ``torch.Tensor``
        (used without copying), or a CUDA tensor (searched where it is); other
        numeric dtypes are converted.
    k : int
        Neighbours per point, ``1 <= k < n_samples`` (``k <= n_reference``
        with a separate reference set).
    reference : array-like of shape (n_reference, n_features), optional
        Search ``X`` against this set instead of against itself. Without it,
        each point's own row is excluded from its neighbours (but its exact
        duplicates are not: they come back at distance 0.0).
    backend : {"auto", "cpp", "numba", "tree", "torch"}, default="auto"
        ``"auto"`` uses ``"torch"`` for tensors on a GPU, ``"tree"`` for
        ``n_features <= 6`` and ``"cpp"`` otherwise. ``"torch"`` searches on a
        torch device (the optional ``torch`` extra; results as numpy arrays,
        :func:`idest.neighbors.torch_knn` keeps them on the device).
    n_jobs : int, optional
        Threads to use (default: every core this process may use; the torch
        backend uses torch's own setting, ``torch.set_num_threads``).
    progress : bool, optional
        Show a progress bar; by default shown for long searches on a terminal.
    device : str or torch.device, optional
        Where ``backend="torch"`` searches (default: the tensor's device, else
        CUDA when available, else the CPU). Other backends refuse it.
    client : distributed.Client, optional
        Shard the search over this Dask cluster (the same answer, bit for bit;
        X and reference may also be ``.npy`` paths or dask arrays): see
        :func:`idest.neighbors.sharded_knn`. Needs ``pip install 'idest[dask]'``.

    Returns
    -------
    Neighbors
        ``distances`` (float64, Euclidean, not squared, ascending) and
        ``indices`` (int64), both of shape (n_samples, k).

    Notes
    -----
    The numerical contract: distances equal those of an exhaustive float64
    search computed from direct differences (not from the expansion
    ``|x|^2 - 2x.y + |y|^2``), so they are never negative or nan, and exact
    duplicates give exactly 0.0. Neighbours are those of that exhaustive
    search, ordered by exact float64 squared distance and, where those are
    equal, by the lower index. The reported distance is the square root of
    that squared distance: two squared distances one ulp apart can round to
    the same reported distance, and then keep their squared-distance order
    (every backend, the Dask one included, gives the same order).

    Examples
    --------
    >>> import numpy as np, idest
    >>> X = np.random.default_rng(0).normal(size=(1000, 32)).astype(np.float32)
    >>> nn = idest.knn(X, k=5)
    >>> bool((nn.distances[:, 1:] >= nn.distances[:, :-1]).all())
    True
    """
    dtype = getattr(X if reference is None else reference, "dtype", None)
    input_dtype = None if dtype is None else str(dtype).replace("torch.", "")
    if client is not None:  # idest/neighbors/_distributed.py
        from idest.neighbors._distributed import knn_on_client

        nn = knn_on_client(X, k, client, reference, backend, n_jobs)
        return dataclasses.replace(nn, input_dtype=input_dtype)
    if backend == "torch" or (backend == "auto" and any(map(is_device_tensor, (X, reference)))):
        from idest.neighbors._torch import knn_numpy

        # host input validated first: a list of huge floats must be rescaled too
        X, reference = (A if A is None or is_device_tensor(A)
                        else check_array(A, name=name, caller="knn")
                        for A, name in ((X, "X"), (reference, "reference")))
        Xs, Rs, unit = power_of_two_scaled(X, reference)
        nn = knn_numpy(Xs, k, Rs, device, progress)
        nn = nn if unit == 1.0 else _scaled_back(nn, unit)
        return dataclasses.replace(nn, input_dtype=input_dtype)
    if device is not None:
        raise invalid("knn", "device", "None unless backend='torch'",
                      f"device={device!r} with backend={backend!r}",
                      "Pass backend='torch' or leave device out.")
    X = check_array(X, name="X", caller="knn")
    self_search = reference is None
    R = X if self_search else check_array(reference, name="reference", caller="knn")
    if not self_search:
        if R.shape[1] != X.shape[1]:
            raise invalid("knn", "reference", f"an array with the {X.shape[1]} features of X",
                          f"{R.shape[1]} features", "Pass vectors of the same space.")
        if R.dtype != X.dtype:  # compute in the wider type
            X, R = X.astype(np.float64, copy=False), R.astype(np.float64, copy=False)
    check_k(k, R.shape[0], self_search)
    check_choice(backend, "backend", "knn", ("auto", *BACKENDS, "torch"))
    n_jobs = default_n_jobs() if n_jobs is None else check_int(n_jobs, "n_jobs", "knn", 1)
    name = choose_backend(R.shape[0], R.shape[1]) if backend == "auto" else backend

    from idest.neighbors import _backends

    run = {"cpp": _backends.cpp_knn, "numba": _backends.numba_knn,
           "tree": _backends.tree_knn}[name]
    Xs, Rs, unit = power_of_two_scaled(X, None if self_search else R)
    dist, idx, n_fallback = run(Xs, Rs, int(k), n_jobs, progress)
    nn = Neighbors(dist, idx, self_search, name, int(n_fallback), R, input_dtype)
    return nn if unit == 1.0 else _scaled_back(nn, unit, R)


#: float64 data whose largest magnitude lies outside [2^-SAFE_EXPONENT, 2^SAFE_EXPONENT]
#: are rescaled before the search: their squares, or their float32 candidates, would
#: overflow or lose every digit in the subnormal range.
SAFE_EXPONENT = 40


def power_of_two_scaled(X: Any, R: Any = None) -> tuple[Any, Any, float]:
    """``X`` and ``R`` (arrays or tensors; ``R`` may be None) divided by one power of two
    2^e so that their largest magnitude is in [0.5, 1), when one is float64 and that
    magnitude is outside the safe range, and the factor 2^e by which the distances of the
    scaled data give those of the data (1.0, inputs untouched, when nothing is needed).

    Multiplying by a power of two is exact (barring results below 2^-1022, far below
    the largest point), so the scaled search is the exact search of the same points.

    >>> import numpy as np
    >>> X = np.array([[3e200, 0.0], [0.0, 4e200]])
    >>> Xs, _, unit = power_of_two_scaled(X)
    >>> float(np.abs(Xs).max()) < 1, bool(Xs[0, 0] * unit == X[0, 0])
    (True, True)
    """
    arrays = [A for A in (X, R) if A is not None]
    if not any(str(getattr(A, "dtype", "")).endswith("float64") for A in arrays):
        return X, R, 1.0  # float32 values, and their squares, fit in the float64 arithmetic
    try:
        top = max(max(float(A.max()), -float(A.min())) for A in arrays)
    except (ValueError, RuntimeError, TypeError, AttributeError):  # empty or not an array:
        return X, R, 1.0  # left to the validation
    if not np.isfinite(top) or top == 0 or 2.0 ** -SAFE_EXPONENT <= top <= 2.0 ** SAFE_EXPONENT:
        return X, R, 1.0
    exponent = int(np.frexp(top)[1])
    factor = float(np.ldexp(1.0, -exponent))
    X, R = (None if A is None else A.double() if hasattr(A, "double")  # a torch tensor
            else np.asarray(A, dtype=np.float64) for A in (X, R))  # the wider type, as knn
    return X * factor, (None if R is None else R * factor), float(np.ldexp(1.0, exponent))


def _scaled_back(nn: Neighbors, unit: float, data: Any = None) -> Neighbors:
    """The neighbours of the unscaled data: distances times ``unit`` (exact), the caller's data."""
    distances = nn.distances * unit
    if not np.isfinite(distances).all():
        raise invalid("knn", "X", "data whose distances fit in float64 (below about 1.8e308)",
                      "larger distances", "Divide the data by a constant first.")
    return dataclasses.replace(nn, distances=distances,
                               data=data if data is not None else nn.data * unit)
