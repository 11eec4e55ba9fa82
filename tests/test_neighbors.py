"""idest.knn: every backend against an exhaustive float64 reference."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import idest
from idest.neighbors._backends import (
    CANDIDATE_MARGIN,
    LATTICE_MARGIN,
    NARROW_MARGIN,
    candidate_margin,
    n_candidates,
)
from idest.neighbors._knn import BACKENDS, Neighbors, choose_backend
from idest.utils.validation import check_array


def reference_knn(X: np.ndarray, k: int, R: np.ndarray | None = None):
    """Plain float64 numpy: direct differences, ties by lower index."""
    X = np.asarray(X, dtype=np.float64)
    self_search = R is None
    R = X if self_search else np.asarray(R, dtype=np.float64)
    dist = np.empty((X.shape[0], k))
    idx = np.empty((X.shape[0], k), dtype=np.int64)
    ids = np.arange(R.shape[0])
    for start in range(0, X.shape[0], 64):
        block = X[start : start + 64]
        d2 = ((block[:, None, :] - R[None, :, :]) ** 2).sum(axis=-1)
        if self_search:
            rows = np.arange(block.shape[0])
            d2[rows, start + rows] = np.inf
        for r in range(block.shape[0]):
            order = np.lexsort((ids, d2[r]))[:k]
            idx[start + r] = order
            dist[start + r] = np.sqrt(d2[r, order])
    return dist, idx


def assert_matches_reference(nn: Neighbors, X, k, R=None):
    dist, idx = reference_knn(X, k, R)
    assert_equal_neighbors(nn, dist, idx)


def assert_equal_neighbors(nn: Neighbors, dist, idx):
    np.testing.assert_array_equal(nn.indices, idx)
    np.testing.assert_allclose(nn.distances, dist, rtol=1e-12, atol=0)
    assert nn.distances.dtype == np.float64 and nn.indices.dtype == np.int64
    assert (nn.distances >= 0).all() and np.isfinite(nn.distances).all()


def random_data(n, dim, dtype, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(dtype)


def clustered_near_duplicates(n, dim, dtype, seed=0):
    """Tight clusters far from the origin: float32 cancellation territory."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=100.0, size=(max(2, n // 20), dim)) + 1e3
    X = centres[rng.integers(0, len(centres), size=n)]
    X = X + rng.normal(scale=1e-3, size=X.shape)
    X[1::7] = X[0::7][: len(X[1::7])] + 1e-7  # near-duplicates
    return X.astype(dtype)


def duplicates_and_ties(n, dim, dtype, seed=0):
    """Integer grid points: exact duplicates and many equal distances."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 3, size=(n, dim)).astype(dtype)
    X[-5:] = X[0]
    return X


def lattice(n, dim, dtype, seed=0):
    """Distinct points of an integer cube (the first three coordinates, the others 0)
    in a random order: many equal distances and no duplicates, so the tie rule is
    the re-scoring's (duplicates are ordered by their grouping)."""
    m = min(dim, 3)
    side = 1
    while side**m < n:
        side += 1
    codes = np.random.default_rng(seed).permutation(side**m)[:n]
    X = np.zeros((n, dim))
    for j in range(m):
        X[:, j] = codes // side**j % side
    return X.astype(dtype)


DATASETS = {
    "random": random_data,
    "clustered": clustered_near_duplicates,
    "ties": duplicates_and_ties,
    "lattice": lattice,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize(("n", "dim", "k"), [(2, 3, 1), (65, 5, 64), (700, 12, 10), (2500, 40, 7)])
def test_backends_match_float64_reference(backend, dtype, dataset, n, dim, k):
    X = DATASETS[dataset](n, dim, dtype)
    nn = idest.knn(X, k, backend=backend)
    assert nn.backend == backend
    assert nn.self_excluded
    assert_equal_neighbors(nn, *cached_reference(dataset, dtype, n, dim, k))
    if dataset == "random":  # no near-ties: every row certified on the first pass
        assert nn.n_fallback_rows == 0


@functools.cache
def cached_reference(dataset, dtype, n, dim, k):
    """One reference per data set, shared by the three backends."""
    return reference_knn(DATASETS[dataset](n, dim, dtype), k)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 2, 17, 64])
def test_k_range(backend, k):
    X = random_data(300, 30, np.float32, seed=k)
    assert_matches_reference(idest.knn(X, k, backend=backend), X, k)


@pytest.mark.parametrize("backend", BACKENDS)
def test_separate_reference_set(backend):
    rng = np.random.default_rng(3)
    R = rng.normal(size=(900, 24)).astype(np.float32)
    Q = np.vstack([rng.normal(size=(200, 24)), R[:5]]).astype(np.float32)  # some exact hits
    nn = idest.knn(Q, 6, reference=R, backend=backend)
    assert not nn.self_excluded
    assert_matches_reference(nn, Q, 6, R)
    assert (nn.distances[-5:, 0] == 0.0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_duplicates_give_exact_zero_and_all_zero_rows(backend):
    X = np.zeros((50, 16), dtype=np.float32)
    X[25:] = np.random.default_rng(0).normal(size=(25, 16))
    X[30] = X[31]
    nn = idest.knn(X, 3, backend=backend)
    assert_matches_reference(nn, X, 3)
    assert (nn.distances[:25] == 0.0).all()  # 25 all-zero rows: exact duplicates
    assert nn.distances[30, 0] == 0.0 and nn.indices[30, 0] == 31


@pytest.mark.parametrize("backend", BACKENDS)
def test_more_duplicates_than_candidates(backend):
    X = np.vstack([np.ones((40, 8)), np.random.default_rng(1).normal(size=(60, 8))])
    nn = idest.knn(X, 5, backend=backend)
    assert_matches_reference(nn, X, 5)
    # each copy's neighbours are the lowest-index other copies
    np.testing.assert_array_equal(nn.indices[10], [0, 1, 2, 3, 4])
    # the compiled core searches the 40 copies once (cpp/duplicates.hpp); the
    # other backends cannot certify them and search them exhaustively
    assert nn.n_fallback_rows == 0 if backend == "cpp" else nn.n_fallback_rows > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_large_offset_does_not_cancel(backend):
    """|x|^2 - 2x.y + |y|^2 in float32 would lose these distances entirely."""
    rng = np.random.default_rng(5)
    X = (1e4 + rng.normal(scale=1e-2, size=(400, 64))).astype(np.float32)
    assert_matches_reference(idest.knn(X, 4, backend=backend), X, 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_extreme_scales(backend):
    rng = np.random.default_rng(6)
    for scale in (1e-30, 1e30):
        X = rng.normal(scale=scale, size=(200, 10))
        assert_matches_reference(idest.knn(X, 3, backend=backend), X, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_explicit_reference_returns_each_point_itself(backend):
    X = random_data(200, 12, np.float64)
    nn = idest.knn(X, 3, reference=X, backend=backend)
    np.testing.assert_array_equal(nn.indices[:, 0], np.arange(200))
    assert (nn.distances[:, 0] == 0.0).all()
    assert_matches_reference(nn, X, 3, X)


def overflow_prone_reference():
    """Six points whose squared norms straddle float32's overflow threshold once
    scaled by the query's range alone (found in review): the two nearest
    neighbours of the query rows overflow while two farther ones do not."""
    import itertools

    threshold = 2**128 - 2**103  # float64 values at or above this round to inf
    grid = [np.float32(np.sqrt(threshold / 2))]
    for _ in range(6):
        grid.append(np.nextafter(grid[-1], np.float32(np.inf)))
        grid.insert(0, np.nextafter(grid[0], np.float32(0)))
    ints = [int(g) for g in grid]
    half = (ints[1] - ints[0]) // 2 - 4096
    best = None
    for a, b, c, d in itertools.product(ints, repeat=4):
        if a * a + b * b >= threshold > c * c + d * d:
            near, far = (a - half, b - half), (c + half, d + half)
            gap = (far[0] ** 2 + far[1] ** 2) - (near[0] ** 2 + near[1] ** 2)
            if gap > 0 and (best is None or gap > best[0]):
                best = (gap, near, far)
    _, near, far = best
    near, far = np.array(near, float) * 2, np.array(far, float) * 2
    return np.array([[1.0, 0.0], [-1.0, 0.0], near, -near, far, -far])


@pytest.mark.parametrize("backend", BACKENDS)
def test_query_view_of_reference_with_extreme_range(backend):
    R = overflow_prone_reference()
    nn = idest.knn(R[:2], 4, reference=R, backend=backend)
    assert_matches_reference(nn, R[:2], 4, R)


@pytest.mark.parametrize("backend", BACKENDS)
def test_strided_rows_every_backend(backend):
    big = random_data(600, 40, np.float32)
    view = big[::3, 5:25]
    assert_matches_reference(idest.knn(view, 4, backend=backend), view, 4)


def test_memmap_input_is_not_copied(tmp_path):
    X = random_data(500, 20, np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    assert np.shares_memory(check_array(mm), mm)
    for backend in BACKENDS:
        assert_matches_reference(idest.knn(mm, 5, backend=backend), X, 5)


def test_strided_rows_are_not_copied():
    big = random_data(400, 30, np.float64)
    view = big[::2, :20]
    assert np.shares_memory(check_array(view), big)
    assert_matches_reference(idest.knn(view, 3, backend="cpp"), view, 3)


def test_torch_tensor_input():
    torch = pytest.importorskip("torch", reason="torch is an optional dependency")
    X = torch.randn(300, 24, generator=torch.Generator().manual_seed(0), requires_grad=True)
    arr = check_array(X)
    assert np.shares_memory(arr, X.detach().numpy())
    nn = idest.knn(X, 4)
    assert_matches_reference(nn, X.detach().numpy(), 4)
    half = X.detach().to(torch.bfloat16)
    assert check_array(half).dtype == np.float32


def test_neighbors_head_and_unpacking():
    X = random_data(200, 8, np.float64)
    nn = idest.knn(X, 10)
    small = nn.head(3)
    np.testing.assert_array_equal(small.indices, nn.indices[:, :3])
    assert small.k == 3 and small.n_queries == 200
    dist, idx = nn
    assert dist is nn.distances and idx is nn.indices
    with pytest.raises(ValueError, match=r"Neighbors.head: k must be an int in \[1, 10\]"):
        nn.head(11)


def test_sparse_input_is_refused():
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(ValueError, match="X must be a dense array; got a sparse matrix"):
        idest.knn(sparse.random(20, 5, density=0.5, format="csr"), 2)


def test_integer_and_object_input_is_converted():
    X = np.arange(40).reshape(20, 2)
    assert_matches_reference(idest.knn(X.astype(object), 2), X.astype(float), 2)


def test_integer_input_is_converted():
    X = np.arange(40).reshape(20, 2)
    nn = idest.knn(X, 2)
    assert_matches_reference(nn, X.astype(float), 2)


@pytest.mark.parametrize(
    ("X", "k", "message"),
    [
        (np.zeros(10), 1, "knn: X must be a 2-D array"),
        (np.zeros((2, 3, 4)), 1, "knn: X must be a 2-D array"),
        (np.zeros((0, 3)), 1, r"non-empty \(at least 1 sample\)"),
        (np.zeros((3, 0)), 1, r"non-empty \(at least 1 feature\)"),
        (np.zeros((5, 3)), 5, "knn: k must be at most n_samples - 1 = 4; got k=5"),
        (np.zeros((5, 3)), 0, r"knn: k must be an int in \[1, inf\); got 0\."),
        (np.zeros((5, 3)), 2.5, r"knn: k must be an int in \[1, inf\); got 2.5\."),
        (np.array([["a", "b"], ["c", "d"]]), 1, "knn: X must be real numbers"),
        (np.array([[1 + 2j, 0], [0, 1]]), 1, "knn: X must be real numbers; got complex"),
        (np.array([[object(), 1]] * 3, dtype=object), 1, "cannot be converted to float"),
    ],
)
def test_bad_input_raises_value_error(X, k, message):
    with pytest.raises(ValueError, match=message):
        idest.knn(X, k)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_names_first_bad_row(bad):
    X = np.ones((100, 4))
    X[37, 2] = bad
    X[80, 0] = bad
    with pytest.raises(ValueError, match="first in row 37"):
        idest.knn(X, 3)


def test_concurrent_searches_give_the_answers_of_searches_one_at_a_time():
    """Searches from several Python threads at once (the core releases the GIL) share
    no state: each gets the answer it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    sets = [random_data(3000, 20, np.float32, seed=seed) for seed in range(6)]
    alone = [idest.knn(X, 7, n_jobs=2) for X in sets]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda X: idest.knn(X, 7, n_jobs=2), sets))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.distances, b.distances)


def test_answers_kept_alive_are_not_overwritten_by_later_searches():
    """The core hands its freed buffers to later searches (cpp/kept.hpp), answer arrays
    included once numpy frees them: arrays still held must keep their values, and stay
    writable numpy arrays."""
    sets = [random_data(2000, 16, np.float32, seed=seed) for seed in range(4)]
    held = [idest.knn(X, 6, n_jobs=2) for X in sets]
    copies = [(nn.distances.copy(), nn.indices.copy()) for nn in held]
    for _ in range(3):
        for X in sets[::-1]:
            idest.knn(X, 6, n_jobs=2)
            idest.knn(X[:500], 3, reference=X[500:], n_jobs=2)
    for nn, (d, i) in zip(held, copies, strict=True):
        np.testing.assert_array_equal(nn.distances, d)
        np.testing.assert_array_equal(nn.indices, i)
    held[0].distances[0, 0] = -1.0  # writable: the caller owns the array
    assert held[0].distances[0, 0] == -1.0


@pytest.mark.filterwarnings("error")
def test_finite_values_whose_sum_overflows_pass_the_finiteness_check():
    """check_finite's fast path sums each chunk: an overflowing sum must neither warn
    nor refuse finite data, and a non-finite value among huge ones is still named."""
    from idest.utils import check_finite

    X = np.full((50, 3), 3e38, dtype=np.float32)
    check_finite(X)
    X[41, 1] = np.inf
    with pytest.raises(ValueError, match="infinity.*first in row 41"):
        check_finite(X)


def test_bad_arguments():
    X = random_data(50, 4, np.float32)
    with pytest.raises(ValueError, match="knn: backend must be one of 'auto', 'cpp'"):
        idest.knn(X, 3, backend="faiss")
    with pytest.raises(ValueError, match="the 3 features of X; got 4 features"):
        idest.knn(X[:, :3], 3, reference=X)
    with pytest.raises(ValueError, match=r"knn: n_jobs must be an int in \[1, inf\)"):
        idest.knn(X, 3, n_jobs=0)


def test_mixed_dtypes_with_reference():
    R = random_data(100, 6, np.float64)
    Q = random_data(10, 6, np.float32, seed=2)
    assert_matches_reference(idest.knn(Q, 3, reference=R), Q, 3, R)


def test_auto_backend_rule():
    assert choose_backend(100_000, 3) == "tree"
    assert choose_backend(20_000, 3) == "cpp"
    assert choose_backend(100_000, 6) == "cpp" and choose_backend(300_000, 6) == "tree"
    assert choose_backend(100_000, 20) == "cpp"
    assert choose_backend(50_000, 768) == "cpp"
    assert idest.knn(random_data(100, 4, np.float32), 2).backend == "cpp"
    assert idest.knn(random_data(50_000, 2, np.float32), 2).backend == "tree"


def test_single_thread_matches_multi_thread():
    X = clustered_near_duplicates(1500, 16, np.float32)
    a = idest.knn(X, 8, backend="cpp", n_jobs=1)
    b = idest.knn(X, 8, backend="cpp", n_jobs=2)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.distances, b.distances)


#: The tile kernels of the compiled core; a test skips those this CPU lacks.
KERNELS = ["sgemm", "fused-avx2", "fused-avx512"]


def core_knn(X, k, R=None, kernel="auto", n_threads=2, block_rows=64, prefix_dims=None,
             margin=LATTICE_MARGIN):
    """The compiled core with a chosen tile kernel; small blocks make many tiles.
    ``prefix_dims``: the fused kernel's early exit on principal axes (None: off)."""
    from idest.neighbors import _core
    from idest.neighbors._backends import _sgemm_capsule, _syev_capsule

    progress = np.zeros(2, dtype=np.int64)
    exit_options = {} if prefix_dims is None else {"syev": _syev_capsule(),
                                                   "prefix_dims": prefix_dims}
    try:
        dist, idx, fallbacks = _core.knn(X, R, k, n_candidates(k, margin), n_threads, block_rows,
                                         _sgemm_capsule(), progress, kernel, **exit_options)
    except ValueError as exc:
        if "needs an x86-64 CPU with" in str(exc):
            pytest.skip(f"this CPU cannot run the {kernel!r} kernel")
        raise
    assert progress[0] == progress[1] > 0  # every tile was processed once
    return Neighbors(dist, idx, self_excluded=R is None, backend="cpp",
                     n_fallback_rows=fallbacks)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize(("n", "dim", "k"), [(7, 1, 3), (301, 7, 5), (1003, 65, 20), (517, 130, 2)])
@pytest.mark.parametrize(("n_threads", "block_rows"), [(1, 64), (2, 64), (3, 256)])
def test_tile_kernels_match_float64_reference(kernel, dataset, n, dim, k, n_threads, block_rows):
    """Both kernels of the C++ core, whatever D (auto picks fused for D <= 64), with
    row counts that leave partial register blocks and packed groups; 256-row
    blocks make the fused kernel split its diagonal tiles recursively."""
    X = DATASETS[dataset](n, dim, np.float32)
    nn = core_knn(X, k, kernel=kernel, n_threads=n_threads, block_rows=block_rows)
    assert_equal_neighbors(nn, *reference_knn(X, k))
    R = DATASETS[dataset](n // 2 + 3, dim, np.float32, seed=1)
    Q = X[: max(k + 1, n // 3)]  # several query and reference blocks
    nn_ref = core_knn(Q, k, R, kernel=kernel, n_threads=n_threads, block_rows=block_rows)
    assert_equal_neighbors(nn_ref, *reference_knn(Q, k, R))
    if dataset == "random" and n_candidates(k) < R.shape[0] - 1:
        # no near-ties, and more points than candidates: a point missed by the
        # float32 pass would show up here rather than be repaired by the fallback
        assert nn.n_fallback_rows == 0 and nn_ref.n_fallback_rows == 0


@functools.cache
def integer_ties(dtype, duplicates):
    """Integer coordinates 0-3 in D = 10: at k = 10 most rows' k-th distance is shared
    by more points than their candidate lists hold (optionally with a group of 40
    copies of row 0), and the float64 reference answer."""
    X = np.random.default_rng(0).integers(0, 4, size=(2000, 10)).astype(dtype)
    if duplicates:
        X[-40:] = X[0]
    return X, reference_knn(X, 10), reference_knn(X[:300], 10, X[300:])


@pytest.mark.parametrize("kernel", ["auto", "sgemm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("duplicates", [False, True])
def test_ties_past_the_lists_are_searched_again_with_wider_lists(kernel, dtype, duplicates):
    """Rows whose ties run past their candidate lists (most rows here, which were
    all searched exhaustively in float64 before) get a search with wider lists
    (search_rows; with duplicates, the groups' expansion in knn_search): the
    reference's answer, and no row left to the exhaustive search."""
    X, (dist, idx), (dist_q, idx_q) = integer_ties(dtype, duplicates)
    nn = core_knn(X, 10, kernel=kernel, block_rows=256)
    assert_equal_neighbors(nn, dist, idx)
    nn_q = core_knn(X[:300], 10, X[300:], kernel=kernel, block_rows=256)
    assert_equal_neighbors(nn_q, dist_q, idx_q)
    assert nn.n_fallback_rows == 0 and nn_q.n_fallback_rows == 0


def test_candidate_margin_reads_a_lattice_from_a_sample():
    """Lattice data (integers, binary codes, also as a reference set) keep the wide
    margin; data in general position, also rounded to bfloat16 or half zeros (ReLU),
    the narrow one up to D = 64 and the middle one beyond."""
    rng = np.random.default_rng(0)
    gauss = rng.normal(size=(5000, 20)).astype(np.float32)
    ints = rng.integers(0, 10, size=(5000, 8)).astype(np.float32)
    binary = rng.integers(0, 2, size=(3000, 13)).astype(np.float64)
    bf16 = (gauss.view(np.uint32) & 0xFFFF0000).view(np.float32)
    relu = np.maximum(gauss, 0)
    assert candidate_margin(ints) == candidate_margin(binary) == LATTICE_MARGIN
    assert candidate_margin(gauss[:, :8], ints) == LATTICE_MARGIN
    assert candidate_margin(gauss) == candidate_margin(bf16) == candidate_margin(relu)
    assert candidate_margin(gauss, None) == NARROW_MARGIN
    assert candidate_margin(rng.normal(size=(300, 65)), None) == CANDIDATE_MARGIN
    assert n_candidates(10, CANDIDATE_MARGIN) == 14 and n_candidates(10) == 18
    assert n_candidates(1000, CANDIDATE_MARGIN) == 1062


@pytest.mark.parametrize("kernel", ["auto", "sgemm"])
def test_the_narrow_margin_on_a_lattice_is_slower_but_exact(kernel):
    """A lattice searched with the narrow margin (as a misjudged sample would):
    more rows need their second searches, the answer is the reference's."""
    X, (dist, idx), (dist_q, idx_q) = integer_ties(np.float32, True)
    nn = core_knn(X, 10, kernel=kernel, block_rows=256, margin=NARROW_MARGIN)
    assert_equal_neighbors(nn, dist, idx)
    nn_q = core_knn(X[:300], 10, X[300:], kernel=kernel, block_rows=256, margin=NARROW_MARGIN)
    assert_equal_neighbors(nn_q, dist_q, idx_q)


@pytest.mark.parametrize("duplicates", [False, True])
def test_numba_backend_searches_ties_again_with_wider_lists(duplicates):
    """The Numba backend's own second search (rows whose full list fails at an exact
    tie): the reference's answer and no exhaustive row, self and query/reference."""
    X, (dist, idx), (dist_q, idx_q) = integer_ties(np.float32, duplicates)
    nn = idest.knn(X, 10, backend="numba")
    assert_equal_neighbors(nn, dist, idx)
    nn_q = idest.knn(X[:300], 10, reference=X[300:], backend="numba")
    assert_equal_neighbors(nn_q, dist_q, idx_q)
    assert nn.n_fallback_rows == 0 and nn_q.n_fallback_rows == 0


def test_wider_lists_climb_past_exact_tie_levels_larger_than_the_first_probe():
    """All 2,048 corners of the 11-cube at k = 70: the 70th neighbour lies in the
    level of 165 points at squared distance 3 (points 68-232), past k + 8 and
    k + 64; the probe at k + 64 fails on exact ties, and the next round's lists
    (k + 512) certify every row."""
    X = ((np.arange(2**11)[:, None] >> np.arange(11)) & 1).astype(np.float32)
    X = X[np.random.default_rng(0).permutation(len(X))]
    nn = core_knn(X, 70, block_rows=256)
    assert_equal_neighbors(nn, *reference_knn(X, 70))
    assert nn.n_fallback_rows == 0


@pytest.mark.parametrize("kernel", ["auto", "sgemm"])
def test_wider_lists_give_way_to_the_exhaustive_search_where_they_cannot_certify(kernel):
    """One-hot rows (every point at the same distance from every other, with and
    without a duplicate) and two tight clusters of float32 near-ties: no list short
    of the whole set certifies a row, so after a probe of wider lists the rows are
    searched exhaustively; the answer is the reference's."""
    for X, k in [(np.eye(300, dtype=np.float32), 2),
                 (np.vstack([np.eye(300), np.eye(300)[:1]]).astype(np.float32), 2),
                 (np.repeat(np.random.default_rng(0).random((2, 8)) * 1e4, 300, axis=0)
                  + np.random.default_rng(1).random((600, 8)) * 1e-3, 10)]:
        nn = core_knn(X, k, kernel=kernel, block_rows=256)
        assert_equal_neighbors(nn, *reference_knn(X, k))
        assert nn.n_fallback_rows >= X.shape[0] // 2


def low_rank(n, dim, dtype, seed=0, rank=3):
    """Points near a random rank-3 subspace, off-centre: the early exit's case."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((rank, dim))
    X = rng.standard_normal((n, rank)) @ basis + 1e-3 * rng.standard_normal((n, dim)) + 50.0
    return X.astype(dtype)


@pytest.mark.parametrize("kernel", ["fused-avx2", "fused-avx512"])
@pytest.mark.parametrize("dataset", [*DATASETS, "low_rank", "duplicate_heavy"])
@pytest.mark.parametrize("prefix_dims", [-1, 1, 3, 15])
@pytest.mark.parametrize(("n_threads", "block_rows"), [(1, 64), (2, 256)])
def test_early_exit_on_principal_axes_matches_float64_reference(kernel, dataset, prefix_dims,
                                                                n_threads, block_rows):
    """The fused kernel's early exit drops blocks whose leading principal axes
    already put every pair past its thresholds: forced at every prefix, on
    data with and without a decaying spectrum, self and query/reference
    searches, the answer is the float64 one (and on random data no row needs
    the exhaustive fallback, so no true neighbour was dropped and repaired)."""
    datasets = {**DATASETS, "low_rank": low_rank, "duplicate_heavy": duplicate_heavy}
    X = datasets[dataset](901, 16, np.float32)
    options = {"kernel": kernel, "n_threads": n_threads, "block_rows": block_rows,
               "prefix_dims": prefix_dims}
    nn = core_knn(X, 7, **options)
    assert_equal_neighbors(nn, *reference_knn(X, 7))
    R = datasets[dataset](450, 16, np.float32, seed=1)
    nn_ref = core_knn(X[:300], 7, R, **options)
    assert_equal_neighbors(nn_ref, *reference_knn(X[:300], 7, R))
    if dataset in ("random", "low_rank"):
        assert nn.n_fallback_rows == 0 and nn_ref.n_fallback_rows == 0


@pytest.mark.parametrize("kernel", ["fused-avx2", "fused-avx512"])
@pytest.mark.parametrize("k", [23, 24, 25])
def test_candidate_lists_at_the_widest_sorted_layout(kernel, k):
    """k = 24 keeps 32 candidates, the widest list the AVX-512 selection holds in
    two registers (k = 23: 31, one lane spare); k = 25 takes the unsorted buffer."""
    X = clustered_near_duplicates(1200, 12, np.float32)
    assert_equal_neighbors(core_knn(X, k, kernel=kernel, block_rows=256), *reference_knn(X, k))
    R = clustered_near_duplicates(400, 12, np.float32, seed=1)
    assert_equal_neighbors(core_knn(X[:200], k, R, kernel=kernel), *reference_knn(X[:200], k, R))


def test_early_exit_refuses_a_prefix_outside_the_dimension():
    X = random_data(50, 4, np.float32)
    for bad in (-2, 4, 9):
        with pytest.raises(ValueError, match="prefix_dims must be -1"):
            core_knn(X, 2, kernel="fused", prefix_dims=bad)


@pytest.mark.parametrize("kernel", KERNELS)
def test_tile_kernels_float64_input(kernel):
    X = clustered_near_duplicates(700, 24, np.float64)
    assert_equal_neighbors(core_knn(X, 6, kernel=kernel, block_rows=256), *reference_knn(X, 6))


def test_core_refuses_bad_arguments_itself():
    """The binding guards the C++ contract for callers that skip idest.knn."""
    with pytest.raises(ValueError, match="kernel must be 'auto', 'sgemm', 'fused'"):
        core_knn(random_data(20, 3, np.float32), 2, kernel="fast")
    with pytest.raises(ValueError, match="at least one row and column"):
        core_knn(np.zeros((10, 0), np.float32), 1)
    X = random_data(50, 4, np.float32)
    X[7, 2] = np.nan
    with pytest.raises(ValueError, match="nan or inf"):
        core_knn(X, 2)


def test_cli_knn(tmp_path, capsys):
    from idest.cli._main import main

    X = random_data(300, 12, np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    out = tmp_path / "nn.npz"
    assert main(["knn", str(path), "-k", "4", "--out", str(out)]) == 0
    saved = np.load(out)
    assert_matches_reference(Neighbors(saved["distances"], saved["indices"]), X, 4)
    assert "backend=cpp" in capsys.readouterr().out
    assert main(["knn", str(tmp_path / "missing.npy")]) == 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_is_never_modified(backend, dtype):
    X = random_data(300, 30, dtype) + 5.0
    R = random_data(100, 30, dtype, seed=1) + 5.0
    before_x, before_r = X.copy(), R.copy()
    idest.knn(X, 3, backend=backend)
    idest.knn(X, 3, reference=R, backend=backend)
    np.testing.assert_array_equal(X, before_x)
    np.testing.assert_array_equal(R, before_r)


# --- large k and duplicate-heavy data (issue 13) ---------------------------


def duplicate_heavy(n, dim, dtype, seed=0):
    """Half the rows all-zero, plus groups of 2, 5, 30 and n / 4 copies of one
    row at random positions: groups smaller and larger than k, spread over
    many 64-row tile blocks."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    X[::2] = 0.0
    for size in (2, 5, 30, n // 4):
        X[rng.choice(n, size=size, replace=False)] = X[rng.integers(n)]
    return X.astype(dtype)


LARGE_K_DATASETS = {**DATASETS, "duplicate_heavy": duplicate_heavy}


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dataset", ["clustered", "ties", "duplicate_heavy"])
def test_large_k_every_kernel(kernel, dtype, dataset):
    """k up to N - 1 (every other point), self and query/reference search."""
    make = LARGE_K_DATASETS[dataset]
    X = make(257, 9, dtype)
    for k in (40, 128, 256):
        nn = core_knn(X, k, kernel=kernel)
        assert_equal_neighbors(nn, *reference_knn(X, k))
    R = make(190, 9, dtype, seed=1)
    Q = np.vstack([X[:90], R[:10], R[:10]])  # queries with exact hits, some repeated
    for k in (40, 190):
        assert_equal_neighbors(core_knn(Q, k, R, kernel=kernel), *reference_knn(Q, k, R))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dataset", ["random", "duplicate_heavy"])
def test_large_k_every_backend(backend, dataset):
    X = LARGE_K_DATASETS[dataset](600, 12, np.float32)
    for k in (150, 599):
        assert_equal_neighbors(idest.knn(X, k, backend=backend), *reference_knn(X, k))


def test_duplicate_groups_are_searched_once():
    """Rows with more copies than candidates need no exhaustive search."""
    X = duplicate_heavy(1000, 16, np.float32)
    for k in (5, 300):
        nn = core_knn(X, k)
        assert_equal_neighbors(nn, *reference_knn(X, k))
        assert nn.n_fallback_rows == 0


def test_duplicate_groups_tied_at_one_distance_interleave_by_index():
    """Groups at the same exact distance contribute their members in index
    order, across groups: row 0's four nearest are rows 1, 2, 3 and 4, taken
    from three groups at distance 1."""
    X = np.random.default_rng(2).normal(size=(12, 3)) + 10.0
    X[0] = 0.0
    X[[1, 5, 9]] = [1.0, 0.0, 0.0]
    X[[2, 3]] = [-1.0, 0.0, 0.0]
    X[[4, 6]] = [0.0, 1.0, 0.0]
    nn = core_knn(X, 4)
    np.testing.assert_array_equal(nn.indices[0], [1, 2, 3, 4])
    np.testing.assert_array_equal(nn.indices[1], [5, 9, 0, 4])
    assert_equal_neighbors(nn, *reference_knn(X, 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_rows_identical(dtype):
    """One distinct row: nothing to search, every answer is the lowest other copies."""
    X = np.zeros((30, 4), dtype=dtype)
    X[7, 1] = -0.0  # equal to 0.0: the same group
    nn = core_knn(X, 29)
    assert_equal_neighbors(nn, *reference_knn(X, 29))
    np.testing.assert_array_equal(nn.indices[0], np.arange(1, 30))
    Q = np.vstack([X[:3], np.ones((2, 4), dtype=dtype)])
    assert_equal_neighbors(core_knn(Q, 30, X), *reference_knn(Q, 30, X))


def integer_lattice(n, dim, seed=0):
    """Points of {0..3}^dim: few exact duplicates, many equal distances."""
    return np.random.default_rng(seed).integers(0, 4, size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("k", [20, 100])
def test_rescoring_row_by_row_and_in_blocks(k):
    """The re-scoring visits short lists row by row (k = 20: 64 x 28 candidates
    < 2,000 points) and long ones in blocks of 64 rows that read each point
    once (k = 100); both order ties by index, self and query/reference, and the
    tree backend's refine() takes the same paths."""
    X = integer_lattice(2000, 8)
    assert_equal_neighbors(core_knn(X, k, block_rows=1024), *reference_knn(X, k))
    Q, R = X[:300], integer_lattice(1900, 8, seed=1)
    assert_equal_neighbors(core_knn(Q, k, R, block_rows=1024), *reference_knn(Q, k, R))
    assert_equal_neighbors(idest.knn(X, k, backend="tree"), *reference_knn(X, k))


def test_equidistant_points_keep_the_lowest_indices():
    """Every pair of the simplex's vertices is at distance sqrt(2): the lists
    compact over equal approximations, and the answer is the lowest indices."""
    X = np.eye(100, dtype=np.float32)
    nn = core_knn(X, 50)
    expected = np.array([[j for j in range(100) if j != i][:50] for i in range(100)])
    np.testing.assert_array_equal(nn.indices, expected)
    np.testing.assert_array_equal(nn.distances, np.sqrt(2.0))


def shard_pair_data(dtype):
    """Two shards (rows :150 and 150:) for the pair search: an exact-duplicate group of
    40 rows (more than any list holds at k = 10) straddling the split, copies of a row
    of the first shard inside the second, near duplicates, integer rows (tied non-zero
    distances) and tight clusters far from the origin."""
    rng = np.random.default_rng(3)
    X = clustered_near_duplicates(400, 40, np.float64, seed=3)
    X[120:160] = X[120]  # 30 copies in A, 10 in B
    X[300:306] = X[10]  # copies of an A row inside B
    X[200:230] = np.round(X[200:230])
    X[230:240] = X[200:210] + 1.0
    X[50:58] = X[60] + rng.normal(scale=1e-7, size=(8, 40))
    return X.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("k", "n_threads", "block_rows"), [(1, 1, 64), (10, 2, 64),
                                                            (10, 3, 2048), (200, 2, 100)])
def test_pair_search_is_both_query_reference_searches(dtype, k, n_threads, block_rows):
    """The compiled core's pair search (the sharded self search's off-diagonal task)
    answers, bit for bit, the two query/reference searches between its sets, k
    clipped to each other set (k = 200 exceeds the first set's 150 rows)."""
    from idest.neighbors import _core
    from idest.neighbors._backends import _sgemm_capsule

    X = shard_pair_data(dtype)
    A, B = X[:150], X[150:]
    (da, ia, _), (db, ib, fb) = _core.pair_knn(A, B, k, n_candidates(k), n_threads, block_rows,
                                               _sgemm_capsule())
    assert ia.shape == (150, k) and ib.shape == (250, min(k, 150))
    for dist, idx, Q, R in ((da, ia, A, B), (db, ib, B, A)):
        ref = idest.knn(Q, min(k, R.shape[0]), reference=R, backend="cpp")
        np.testing.assert_array_equal(idx, ref.indices)
        assert np.array_equal(dist.view(np.int64), ref.distances.view(np.int64))
        assert_equal_neighbors(ref, *reference_knn(Q, min(k, R.shape[0]), R))
    # B's 10 copies of the 40-row group have 30 copies in A, more than their lists hold
    # at k <= 10: certification fails and they are searched exhaustively
    assert fb >= (10 if k <= 10 else 0)


def test_pair_search_refuses_bad_arguments():
    from idest.neighbors import _core
    from idest.neighbors._backends import _sgemm_capsule

    A = random_data(20, 4, np.float32)
    with pytest.raises(ValueError, match="widths differ"):
        _core.pair_knn(A, A[:, :3].copy(), 2, 10, 1, 64, _sgemm_capsule())
    with pytest.raises(ValueError, match="dtypes differ"):
        _core.pair_knn(A, A.astype(np.float64), 2, 10, 1, 64, _sgemm_capsule())
    with pytest.raises(ValueError, match="k must be at least 1"):
        _core.pair_knn(A, A, 0, 10, 1, 64, _sgemm_capsule())


@pytest.mark.parametrize("kernel", ["fused-avx2", "fused-avx512"])
def test_fma_rate_measures_each_fused_instruction_set(kernel):
    """The micro-kernel behind the benchmarks' FMA bound: a rate in flops per second
    (a sane magnitude, not a speed target) for each instruction set the CPU has."""
    from idest.neighbors import _core

    try:
        rate = _core.fma_rate(kernel, 2, 0.02)
    except ValueError as exc:
        assert "lacks the instruction set" in str(exc)
        pytest.skip(f"this CPU cannot run the {kernel!r} kernel")
    assert np.isfinite(rate) and 1e8 < rate < 1e14


@pytest.mark.parametrize(("kernel", "seconds", "message"), [
    ("sgemm", 0.1, "not 'sgemm'"), ("fused-sse", 0.1, "kernel must be"),
    ("fused", 0.0, "seconds must be"), ("fused", 100.0, "seconds must be")])
def test_fma_rate_rejects_what_it_cannot_measure(kernel, seconds, message):
    from idest.neighbors import _core

    with pytest.raises(ValueError, match=message):
        _core.fma_rate(kernel, 1, seconds)
