"""The three k-NN backends behind :func:`idest.knn`, one contract.

Each takes a validated query array, the reference array (None: search the
queries against themselves, excluding each point) and returns
``(distances float64 (n, k), indices int64 (n, k), n_fallback_rows)``.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
from scipy.spatial import cKDTree
from threadpoolctl import ThreadpoolController

from idest.utils.blocks import row_blocks
from idest.utils.progress import progress_bar

#: Candidates kept beyond k by the float32 pass: at least this many, and k / 16
#: at large k. The certificate, not this margin, guarantees exactness; the
#: margin only makes second searches rare. A relative margin of 1/16 leaves a gap
#: between the k-th and the last candidate far wider than float32 round-off
#: (no fallback rows at 10,000 x 256, k = 1,000 and 4,000), where k / 4 made
#: the re-scoring (one float64 distance per candidate) 18 % dearer. On data in
#: general position 4 suffices: a row's k-th and (k + 4)-th distances are almost
#: never within float32 round-off of each other; it searched 20,000 x 20 at
#: k = 10 in 7 % less time than 8 (shorter lists, fewer offers and re-scorings).
CANDIDATE_MARGIN = 4

#: The margin for D <= :data:`NARROW_MARGIN_MAX_DIM` (the compiled core's fused
#: kernel), off a lattice. The float32 round-off that the certificate allows for grows
#: with D ((2D + 32) 2^-24 of the squared norms), and at small D two candidates beyond k
#: leave second searches as rare while the lists, their offers and the re-scoring are
#: shorter. Measured (two threads, k = 10 unless named; margin 2 against 4, median of
#: 12-20 interleaved pairs): 20,000 x 20 (the benchmark's 8-dimensional latent) 0.93-0.96,
#: k = 1 0.93, k = 5 0.95, k = 20 0.97; Gaussian, offset by 1,000, bfloat16-rounded,
#: D = 5: 0.96-0.98; ReLU D = 64: 0.98; 100,000 x 20: 0.99; 50 tight clusters of 400:
#: 0.64-0.72; the k-d tree (D = 5) 0.90, Numba 0.98. But 10,000 x 256: 1.01 and
#: 10,000 x 768: 1.04 (more rows searched twice), which keep 4; margin 1 was slower than
#: 4 at D = 20 (1.01-1.18).
NARROW_MARGIN = 2
NARROW_MARGIN_MAX_DIM = 64

#: The margin on a lattice (:func:`candidate_margin`): integer coordinates, a
#: grid, binary codes, where many points share a row's k-th distance exactly
#: and each row whose list ends inside such a tie is searched again with a
#: longer list. Measured (k = 10, two threads), margin 4 against 8: 20,000 x 8
#: integers 0-9 took 1.45x as long, 20,000 x 20 integers 0-3 1.5x.
LATTICE_MARGIN = 8

#: Rows and columns of the sample that :func:`candidate_margin` inspects.
_LATTICE_SAMPLE = (256, 64)


def _sample(A) -> np.ndarray:
    """Evenly spaced rows and columns of A (numpy, memmap or torch tensor), as numpy."""
    rows, cols = _LATTICE_SAMPLE
    part = A[:: max(1, A.shape[0] // rows)][:rows, :: max(1, A.shape[1] // cols)]
    return np.asarray(part.cpu() if hasattr(part, "cpu") else part)


def candidate_margin(*arrays) -> int:
    """The candidate margin for a search of these arrays (None entries skipped).

    :data:`LATTICE_MARGIN` when the coordinates of one of them lie on a lattice, else
    :data:`NARROW_MARGIN` up to :data:`NARROW_MARGIN_MAX_DIM` dimensions and
    :data:`CANDIDATE_MARGIN` beyond. The lattice test looks at a sample of 256 rows and 64
    columns of each array: a column whose non-zero values repeat (fewer distinct
    values than half their number) is lattice-like, and an array is on a lattice
    when its median column is. Zeros are left out, since they tie no distances
    by themselves (ReLU activations have many). Every margin gives the same
    answer; the choice only decides how much work the lists take and how many rows
    are searched twice.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> candidate_margin(rng.normal(size=(1000, 20))), candidate_margin(rng.normal(size=(100, 256)))
    (2, 4)
    >>> candidate_margin(rng.integers(0, 10, size=(1000, 20)).astype(np.float32))
    8
    """
    arrays = [A for A in arrays if A is not None]
    for A in arrays:
        if A.shape[0] == 0 or A.shape[1] == 0:
            continue
        values = np.sort(_sample(A), axis=0)
        nonzero = values != 0
        first = np.ones_like(nonzero)
        first[1:] = values[1:] != values[:-1]
        counted = nonzero.sum(axis=0)
        keep = counted >= 16
        ratios = (first & nonzero).sum(axis=0)[keep] / counted[keep]
        if ratios.size and float(np.median(ratios)) < 0.5:
            return LATTICE_MARGIN
    if arrays and arrays[0].shape[1] <= NARROW_MARGIN_MAX_DIM:
        return NARROW_MARGIN
    return CANDIDATE_MARGIN


#: Rows per tile side of the SGEMM pass: a 1024 x 1024 float32 tile (4 MB) stays
#: in cache for the selection scans, and SGEMM is already near its peak at that
#: size for D >= 64.
BLOCK_ROWS = 1024


def n_candidates(k: int, margin: int = LATTICE_MARGIN) -> int:
    """Candidates per row for the approximate pass, with at least ``margin``
    beyond k (:func:`candidate_margin` chooses it for the data)."""
    return k + max(margin, k // 16)


def certified_lower_bound(worst, sq_norm, scale: float, dim: int):
    """Lower bound on the exact squared distance of every point outside a candidate list.

    The certificate of ``cpp/knn.cpp`` (``certified_lower_bound``, where the
    argument is written out), elementwise on float64 numpy arrays or torch
    tensors: ``worst`` is the largest float32 approximation left in the list
    (every point outside it had one at least as large), ``sq_norm`` the
    query's unscaled squared distance from the mean, ``scale`` the power of two
    applied before rounding to float32. With c = (2D + 32) 2^-24 the bound is
    (worst - 3 c s^2 |x|^2 - D 2^-120) / ((1 + 2 c) s^2).
    """
    c = (2.0 * dim + 32.0) * 2.0**-24
    s2 = scale * scale
    return (worst - 3.0 * c * sq_norm * s2 - dim * 2.0**-120) / (1.0 + 2.0 * c) / s2


def _sgemm_capsule():
    """SciPy's BLAS SGEMM, borrowed through its Cython API (no link-time BLAS)."""
    from scipy.linalg import cython_blas

    return cython_blas.__pyx_capi__["sgemm"]


def _syev_capsule():
    """SciPy's LAPACK DSYEV (the fused kernel's principal axes), borrowed likewise."""
    from scipy.linalg import cython_lapack

    return cython_lapack.__pyx_capi__["dsyev"]


@functools.cache
def _blas_controller() -> ThreadpoolController:
    """Inspecting the loaded BLAS libraries takes tens of ms: do it once."""
    return ThreadpoolController()


def cpp_knn(X: np.ndarray, R: np.ndarray | None, k: int, n_jobs: int, progress: bool | None):
    """The compiled core; see ``cpp/knn.hpp``."""
    from idest.neighbors import _core

    width = n_candidates(k, candidate_margin(X, R))
    counter = np.zeros(3, dtype=np.int64)  # tiles done, tiles in all, cancel flag
    out: dict[str, object] = {}
    # Waited on instead of Thread.join: a Ctrl-C inside join() makes CPython 3.11
    # take a running thread for finished (its tstate lock is released on the way out).
    done = threading.Event()

    def work() -> None:
        try:
            # each worker thread calls a single-threaded SGEMM on its own tile
            with _blas_controller().limit(limits=1, user_api="blas"):
                out["result"] = _core.knn(X, R, k, width, n_jobs, BLOCK_ROWS, _sgemm_capsule(),
                                          counter, syev=_syev_capsule())
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc
        finally:
            done.set()

    n_ref = X.shape[0] if R is None else R.shape[0]
    flops = 2.0 * X.shape[0] * n_ref * X.shape[1] * (0.5 if R is None else 1.0)
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        with progress_bar(progress, total=None, desc="knn", unit="tile", work=flops) as bar:
            while not done.wait(0.2):
                if bar is not None and counter[1] > 0:
                    bar.total = int(counter[1])
                    bar.n = int(counter[0])
                    bar.refresh()
    except BaseException:  # Ctrl-C: the core stops before its next tile; leave no thread
        counter[2] = 1
        done.wait()
        thread.join()
        raise
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out["result"]


#: Rows per tile side of the pair search (``cpp_pair_knn``): its SGEMM tiles
#: are streamed once by both sides' scans, and 2,048-row tiles ran 3 % faster
#: than 1,024 at 12,500 x 12,500 x 768 on one thread (2.49 vs 2.56 s CPU).
PAIR_BLOCK_ROWS = 2048


def cpp_pair_knn(A: np.ndarray, B: np.ndarray, k: int, n_jobs: int):
    """Exact k-NN of A's rows within B and of B's rows within A, one pass over their tiles.

    The off-diagonal task of a sharded self search (``_distributed``): the
    compiled core's ``pair_knn`` computes each float32 SGEMM tile of the two
    (disjoint) row sets once and updates the candidate lists of its A rows
    *and* of its B columns, the symmetry the in-process self search uses for
    its upper triangle; each side is then re-scored in float64 and certified
    (or searched exhaustively within the other set) as in :func:`idest.knn`.

    Parameters
    ----------
    A, B : ndarray of shape (n_a, D) and (n_b, D)
        Validated rows of the same dtype (float32 or float64).
    k : int
        Neighbours per row (at most the size of the other set is returned).
    n_jobs : int
        Threads, each calling a single-threaded SGEMM on its own tiles.

    Returns
    -------
    tuple
        ``((dist_a, idx_a, fallbacks_a), (dist_b, idx_b, fallbacks_b))``:
        Euclidean distances and indices local to the other set, ascending,
        ties by the lower index.

    Examples
    --------
    >>> import numpy as np, idest
    >>> X = np.random.default_rng(0).normal(size=(300, 20)).astype(np.float32)
    >>> (da, ia, _), (db, ib, _) = cpp_pair_knn(X[:100], X[100:], 3, 1)
    >>> bool((ia == idest.knn(X[:100], 3, reference=X[100:]).indices).all())
    True
    """
    from idest.neighbors import _core

    with _blas_controller().limit(limits=1, user_api="blas"):
        return _core.pair_knn(A, B, k, n_candidates(k, candidate_margin(A, B)), n_jobs,
                              PAIR_BLOCK_ROWS, _sgemm_capsule())


def columns_without_self(idx: np.ndarray) -> np.ndarray:
    """Column positions that drop each row's own index from a (n, m) self-search.

    Row i's own index is not always first (its exact duplicates tie with it);
    rows that do not hold it lose their last column instead. Returns (n, m - 1).
    """
    is_self = idx == np.arange(idx.shape[0])[:, None]
    return np.argsort(is_self, axis=1, kind="stable")[:, :-1]


def _pca_rotation(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and principal axes (columns, by decreasing variance) of R in float64."""
    mean = R.mean(axis=0, dtype=np.float64)
    cov = np.zeros((R.shape[1], R.shape[1]))
    for _, block in row_blocks(R, np.float64):
        block = block - mean  # never in place: block may be a view of the input
        cov += block.T @ block
    _, vecs = np.linalg.eigh(cov)
    return mean, vecs[:, ::-1]


def _rotate(A: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    out = np.empty(A.shape, dtype=np.float64)
    for start, block in row_blocks(A, np.float64):
        out[start : start + block.shape[0]] = (block - mean) @ axes
    return out


def tree_knn(X: np.ndarray, R: np.ndarray | None, k: int, n_jobs: int, progress: bool | None):
    """SciPy's cKDTree on PCA-rotated coordinates, then exact re-scoring."""
    from idest.neighbors import _core

    self_search = R is None
    ref = X if self_search else R
    mean, axes = _pca_rotation(ref)
    ref_rot = _rotate(ref, mean, axes)
    query_rot = ref_rot if self_search else _rotate(X, mean, axes)
    tree = cKDTree(ref_rot, leafsize=16, balanced_tree=False, compact_nodes=False)
    m = min(n_candidates(k, candidate_margin(X, R)) + (1 if self_search else 0), ref.shape[0])
    dist, idx = tree.query(query_rot, k=m, workers=n_jobs)
    dist = np.reshape(dist, (X.shape[0], m))
    idx = np.reshape(idx, (X.shape[0], m)).astype(np.int64)
    if self_search:
        idx = np.take_along_axis(idx, columns_without_self(idx), axis=1)
    # Points the tree did not return are at rotated distance >= its last one;
    # the rotation perturbs squared distances by at most c |x|^2 in float64.
    if m == ref.shape[0]:
        bound = np.full(X.shape[0], np.inf)
    else:
        c = (2.0 * X.shape[1] + 32.0) * 2.0**-53
        sq_norm = np.einsum("ij,ij->i", query_rot, query_rot)
        bound = (dist[:, -1] ** 2 - 3.0 * c * sq_norm) / (1.0 + 2.0 * c)
    return _core.refine(X, R, k, idx, bound, n_jobs)


def numba_knn(X: np.ndarray, R: np.ndarray | None, k: int, n_jobs: int, progress: bool | None):
    """Numba kernels around numpy's SGEMM; see ``idest/neighbors/_numba.py``."""
    from idest.neighbors import _numba

    return _numba.knn(X, R, k, n_candidates(k, candidate_margin(X, R)), n_jobs, progress)
