"""idest.knn(backend="torch") on CPU torch (as CI runs it), plus CUDA tests where a GPU exists.

The same equivalence tests as the other backends: against the float64
reference of tests/test_neighbors.py and index for index against the compiled
core, with tiles small enough that every search is many tiles and blocks.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_neighbors import (
    DATASETS,
    assert_equal_neighbors,
    assert_matches_reference,
    cached_reference,
    overflow_prone_reference,
    random_data,
    reference_knn,
)

import idest
from idest.neighbors import _torch, torch_knn

torch = pytest.importorskip("torch", reason="the torch backend needs torch (the torch extra)")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

HAS_CUDA = torch.cuda.is_available()


def cuda_test(func):
    """Marked ``cuda``; skipped, never passed, where torch sees no GPU."""
    reason = "needs a CUDA GPU: torch.cuda.is_available() is False on this machine"
    return pytest.mark.cuda(pytest.mark.skipif(not HAS_CUDA, reason=reason)(func))


@pytest.fixture
def small_tiles(monkeypatch):
    """Tiles of at most 64 columns and a 64 KiB budget: many tiles, blocks and merges."""
    monkeypatch.setitem(_torch.TILE_COLUMNS, "cpu", 64)
    monkeypatch.setattr(_torch, "CPU_BUDGET_BYTES", 64 * 2**10)


def torch_search(X, k, reference=None, **kwargs):
    nn = idest.knn(X, k, reference=reference, backend="torch", device="cpu", **kwargs)
    assert nn.backend == "torch"
    assert isinstance(nn.distances, np.ndarray) and isinstance(nn.indices, np.ndarray)
    return nn


def assert_same_as_cpp(nn, X, k, reference=None):
    """Index for index against the compiled core (distances differ only by summation order)."""
    cpp = idest.knn(X, k, reference=reference, backend="cpp")
    np.testing.assert_array_equal(nn.indices, cpp.indices)
    np.testing.assert_allclose(nn.distances, cpp.distances, rtol=1e-12, atol=0)
    np.testing.assert_array_equal(nn.distances == 0, cpp.distances == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("dataset", list(DATASETS))
@pytest.mark.parametrize(("n", "dim", "k"), [(2, 3, 1), (65, 5, 64), (700, 12, 10), (2500, 40, 7)])
def test_matches_float64_reference_and_cpp(small_tiles, dtype, dataset, n, dim, k):
    X = DATASETS[dataset](n, dim, dtype)
    nn = torch_search(X, k)
    assert nn.self_excluded
    assert_equal_neighbors(nn, *cached_reference(dataset, dtype, n, dim, k))
    assert_same_as_cpp(nn, X, k)
    if dataset == "random":  # no near-ties: every row certified on the first pass
        assert nn.n_fallback_rows == 0


def test_default_tiles_match_reference():
    X = random_data(1500, 33, np.float32, seed=4)
    assert_matches_reference(torch_search(X, 9), X, 9)


@pytest.mark.parametrize("k", [1, 2, 17, 64])
def test_k_range(small_tiles, k):
    X = random_data(300, 30, np.float32, seed=k)
    assert_matches_reference(torch_search(X, k), X, k)


def test_large_k(small_tiles):
    """k = 1,000: the candidate lists (1,250) span many 64-column tiles and are still certified."""
    X = random_data(1400, 16, np.float32, seed=8)
    nn = torch_search(X, 1000)
    assert_matches_reference(nn, X, 1000)
    assert_same_as_cpp(nn, X, 1000)
    assert nn.n_fallback_rows == 0


def test_k_8192():
    """The largest k of the issue, candidates (10,240) short of the reference set; a few
    queries against it keep the test short (CPU sorts of 10^4-wide rows are slow)."""
    rng = np.random.default_rng(9)
    R = rng.normal(size=(10_400, 4)).astype(np.float32)
    Q = np.vstack([rng.normal(size=(12, 4)), R[:3]]).astype(np.float32)
    nn = torch_search(Q, 8192, reference=R)
    assert_matches_reference(nn, Q, 8192, R)
    assert nn.n_fallback_rows == 0


def test_separate_reference_set(small_tiles):
    rng = np.random.default_rng(3)
    R = rng.normal(size=(900, 24)).astype(np.float32)
    Q = np.vstack([rng.normal(size=(200, 24)), R[:5]]).astype(np.float32)  # some exact hits
    nn = torch_search(Q, 6, reference=R)
    assert not nn.self_excluded
    assert_matches_reference(nn, Q, 6, R)
    assert_same_as_cpp(nn, Q, 6, R)
    assert (nn.distances[-5:, 0] == 0.0).all()


def test_explicit_reference_returns_each_point_itself(small_tiles):
    X = random_data(200, 12, np.float64)
    nn = torch_search(X, 3, reference=X)
    np.testing.assert_array_equal(nn.indices[:, 0], np.arange(200))
    assert (nn.distances[:, 0] == 0.0).all()
    assert_matches_reference(nn, X, 3, X)


def test_mixed_dtypes_compute_in_float64():
    rng = np.random.default_rng(2)
    R = rng.normal(size=(300, 10))
    Q = R[:50].astype(np.float32)
    nn = torch_search(Q, 4, reference=R)
    assert nn.data.dtype == np.float64
    assert_same_as_cpp(nn, Q, 4, R)


def test_duplicates_give_exact_zero_and_all_zero_rows(small_tiles):
    X = np.zeros((50, 16), dtype=np.float32)
    X[25:] = np.random.default_rng(0).normal(size=(25, 16))
    X[30] = X[31]
    nn = torch_search(X, 3)
    assert_matches_reference(nn, X, 3)
    assert (nn.distances[:25] == 0.0).all()
    assert nn.distances[30, 0] == 0.0 and nn.indices[30, 0] == 31


@pytest.mark.parametrize("copies", [7, 40])
def test_duplicate_groups_larger_than_k(small_tiles, copies):
    """7 copies: more than k = 5, fewer than the 13 candidates; 40: more than both, so
    which copies come back is decided by index alone and the rows must fall back."""
    X = np.vstack([np.ones((copies, 8)), np.random.default_rng(1).normal(size=(60, 8))])
    nn = torch_search(X, 5)
    assert_matches_reference(nn, X, 5)
    assert_same_as_cpp(nn, X, 5)
    np.testing.assert_array_equal(nn.indices[copies - 1], [0, 1, 2, 3, 4])
    assert (nn.distances[:copies] == 0.0).all()
    if copies > 13:
        assert nn.n_fallback_rows >= copies


def test_ties_beyond_the_candidate_list_force_the_fallback(small_tiles):
    """A query at the origin and 2 D points at distance exactly 1 (±e_i, shuffled): the
    k-th neighbour ties with points outside the 13 candidates, so the strict certificate
    must reject the row and the exhaustive search return the lowest indices."""
    dim = 20
    rng = np.random.default_rng(7)
    unit = np.vstack([np.eye(dim), -np.eye(dim)])[rng.permutation(2 * dim)]
    X = np.vstack([unit, np.zeros((1, dim)), 3.0 + rng.random((30, dim))]).astype(np.float32)
    nn = torch_search(X, 5)
    origin = 2 * dim
    np.testing.assert_array_equal(nn.indices[origin], [0, 1, 2, 3, 4])
    assert (nn.distances[origin] == 1.0).all()
    assert_matches_reference(nn, X, 5)
    assert_same_as_cpp(nn, X, 5)
    assert nn.n_fallback_rows >= 1


def test_no_margin_exercises_the_fallback(monkeypatch, small_tiles):
    """Candidate lists of exactly k: rows whose k-th distance cannot be separated from the
    (k+1)-th by the float32 error bound must be searched exhaustively, and still match."""
    monkeypatch.setattr(_torch, "n_candidates", lambda k, margin: k)
    X = DATASETS["clustered"](600, 12, np.float32)
    nn = torch_search(X, 4)
    assert nn.n_fallback_rows > 0
    assert_matches_reference(nn, X, 4)
    assert_same_as_cpp(nn, X, 4)


def test_large_offset_does_not_cancel():
    rng = np.random.default_rng(5)
    X = (1e4 + rng.normal(scale=1e-2, size=(400, 64))).astype(np.float32)
    assert_matches_reference(torch_search(X, 4), X, 4)


def test_extreme_scales():
    rng = np.random.default_rng(6)
    for scale in (1e-30, 1e30):
        X = rng.normal(scale=scale, size=(200, 10))
        assert_matches_reference(torch_search(X, 3), X, 3)


def test_query_view_of_reference_with_extreme_range():
    R = overflow_prone_reference()
    assert_matches_reference(torch_search(R[:2], 4, reference=R), R[:2], 4, R)


def test_strided_rows_and_read_only_memmap(tmp_path):
    big = random_data(600, 40, np.float32)
    view = big[::3, 5:25]
    assert_matches_reference(torch_search(view, 4), view, 4)
    np.save(tmp_path / "x.npy", view)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")  # read-only: no torch warning either
    assert_matches_reference(torch_search(mm, 4), view, 4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int64"])
def test_tensor_dtypes_upcast_as_on_the_cpu_path(small_tiles, dtype):
    """Narrow floats become float32 and integers float64, exactly as check_array does."""
    X = torch.from_numpy(DATASETS["ties"](300, 10, np.float64) * 1.5).to(getattr(torch, dtype))
    nn = torch_search(X, 6)
    host = X.float().numpy() if dtype in ("float16", "bfloat16") else X.double().numpy()
    if dtype == "float32":
        host = X.numpy()
    assert nn.data.dtype == host.dtype
    assert_matches_reference(nn, host, 6)
    assert_same_as_cpp(nn, X.float() if dtype == "bfloat16" else X, 6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_is_never_modified(small_tiles, dtype):
    X = DATASETS["clustered"](300, 9, dtype)
    before = X.copy()
    tensor = torch.from_numpy(X.copy())
    torch_search(X, 5)
    torch_knn(tensor, 5, device="cpu")
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(tensor.numpy(), before)


def test_numpy_float16_input():
    X = random_data(400, 12, np.float16)
    nn = torch_search(X, 5)
    assert_matches_reference(nn, X.astype(np.float32), 5)
    assert_same_as_cpp(nn, X, 5)


def test_device_tensor_validation_runs_on_the_tensor():
    """The checks applied to GPU tensors (here on a CPU tensor: the code is the same)."""
    check = _torch._device_tensor
    assert check(torch.ones(3, 2, dtype=torch.float16), "X", torch).dtype == torch.float32
    assert check(torch.ones(3, 2, dtype=torch.bfloat16), "X", torch).dtype == torch.float32
    assert check(torch.ones(3, 2, dtype=torch.int32), "X", torch).dtype == torch.float64
    bad = torch.zeros(5, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="X must be finite; got NaN .*first in row 3"):
        check(bad, "X", torch)
    bad[3, 1] = float("inf")
    with pytest.raises(ValueError, match="infinity"):
        check(bad, "X", torch)
    with pytest.raises(ValueError, match="X must be a 2-D array .*; got 1-D"):
        check(torch.ones(4), "X", torch)
    with pytest.raises(ValueError, match="empty"):
        check(torch.ones(0, 3), "X", torch)
    with pytest.raises(ValueError, match="real numbers; got complex"):
        check(torch.ones(3, 2, dtype=torch.complex64), "X", torch)


def test_bad_arguments():
    X = random_data(50, 4, np.float32)
    with pytest.raises(ValueError, match="knn: k must be at most n_samples - 1 = 49"):
        torch_search(X, 50)
    with pytest.raises(ValueError, match="features"):
        torch_search(X, 2, reference=X[:, :3])
    with pytest.raises(ValueError, match="knn: device must be a torch device"):
        idest.knn(X, 2, backend="torch", device="no-such-device")
    with pytest.raises(ValueError, match="knn: device must be None unless backend='torch'"):
        idest.knn(X, 2, backend="cpp", device="cpu")
    with pytest.raises(ValueError, match="must be finite; got NaN"):
        torch_search(np.full((5, 2), np.nan), 2)
    with pytest.raises(ValueError, match="'torch'"):
        idest.knn(X, 2, backend="gpu")


def test_auto_keeps_cpu_tensors_on_the_compiled_core():
    X = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert idest.knn(X, 3).backend == "cpp"


def test_torch_knn_keeps_results_as_tensors(small_tiles):
    X = torch.randn(400, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    nn = torch_knn(X, 7, device="cpu")
    assert isinstance(nn.distances, torch.Tensor) and nn.distances.dtype == torch.float64
    assert nn.indices.dtype == torch.int64 and nn.data is not None
    assert nn.head(3).indices.shape == (400, 3)
    assert_matches_reference(torch_search(X, 7), X.numpy(), 7)
    np.testing.assert_array_equal(nn.indices.numpy(), torch_search(X, 7).indices)


def test_estimators_accept_torch_neighbors():
    X = np.vstack([random_data(500, 6, np.float64, seed=3)] * 1 + [np.zeros((3, 6))])
    nn = torch_search(X, 20)
    with pytest.warns(idest.DuplicatesWarning):
        from_nn = idest.twonn(nn)
    with pytest.warns(idest.DuplicatesWarning):
        direct = idest.twonn(X)
    assert from_nn.dimension == pytest.approx(direct.dimension, rel=1e-12)


# ------------------------------------------------------------------ matmul precision ---

PER_BACKEND = [m for m in (torch.backends.cuda.matmul, torch.backends.mkldnn.matmul)
               if hasattr(m, "fp32_precision")]
NEW_API = bool(PER_BACKEND)


def precision_state():
    return _torch._precision_state(torch, PER_BACKEND)


def _set_new(backend, value):
    if not NEW_API:
        pytest.skip("torch < 2.9 has no per-backend fp32_precision setting")
    getattr(torch.backends, backend).matmul.fp32_precision = value


CALLER_SETTINGS = {
    "default": lambda: None,
    "legacy high (TF32)": lambda: torch.set_float32_matmul_precision("high"),
    "legacy medium (CPU bf16)": lambda: torch.set_float32_matmul_precision("medium"),
    "allow_tf32": lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True),
    "new API, cuBLAS tf32": lambda: _set_new("cuda", "tf32"),
    "new API, oneDNN bf16": lambda: _set_new("mkldnn", "bf16"),
}


@pytest.fixture(params=list(CALLER_SETTINGS))
def caller_precision(request):
    """A caller's float32 matmul setting; torch's defaults put back after the test."""
    defaults = [m.fp32_precision for m in PER_BACKEND]
    CALLER_SETTINGS[request.param]()
    yield precision_state()
    torch.set_float32_matmul_precision("highest")
    for m, value in zip(PER_BACKEND, defaults, strict=True):
        m.fp32_precision = value


def test_matmul_precision_is_ieee_inside_and_restored_after(caller_precision, monkeypatch):
    seen = []
    tiles = _torch._block_candidates

    def spy(*args, **kwargs):
        seen.append(precision_state())
        return tiles(*args, **kwargs)

    monkeypatch.setattr(_torch, "_block_candidates", spy)
    X = random_data(300, 16, np.float32)
    assert_matches_reference(torch_search(X, 4), X, 4)
    # inside: legacy "highest", cuBLAS TF32 off (readable: no mixed state), per-backend ieee
    assert seen and all(state == ["highest", False] + ["ieee"] * len(PER_BACKEND)
                        for state in seen)
    assert precision_state() == caller_precision


def test_matmul_precision_restored_after_an_exception(caller_precision, monkeypatch):
    def fail(*args, **kwargs):
        assert torch.get_float32_matmul_precision() == "highest"
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(_torch, "_block_candidates", fail)
    with pytest.raises(RuntimeError, match="simulated"):
        torch_search(random_data(100, 8, np.float32), 3)
    assert precision_state() == caller_precision


# ---------------------------------------------------------------- tile sizes ---

def test_budget_and_block_rows():
    assert _torch._budget(torch.device("cpu"), torch) == _torch.CPU_BUDGET_BYTES
    assert _torch._rows_within(1000, 300, 10) == 3
    assert _torch._rows_within(10, 300, 10) == 1  # never zero rows
    assert _torch._rows_within(10**9, 300, 10) == 10
    assert _torch._rows_within(10**12, 1, 10**6, 2**21) == _torch.MAX_ELEMENTS // 2**21


# -------------------------------------------------------------------------- CUDA ---

@cuda_test
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_cuda_tensor_matches_cpp(dtype):
    X = torch.from_numpy(DATASETS["clustered"](3000, 48, np.float64)).to(getattr(torch, dtype))
    nn = idest.knn(X.cuda(), 10)  # auto: a CUDA tensor goes to the torch backend
    assert nn.backend == "torch" and nn.data.is_cuda
    host = X.float() if dtype in ("float16", "bfloat16") else X
    assert_same_as_cpp(nn, host.numpy(), 10)


@cuda_test
def test_cuda_results_stay_on_the_device_and_tf32_is_off(caller_precision):
    X = torch.randn(5000, 64, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    nn = torch_knn(X, 5)
    assert nn.distances.is_cuda and nn.indices.is_cuda
    assert precision_state() == caller_precision
    dist, idx = reference_knn(X.cpu().numpy(), 5)
    np.testing.assert_array_equal(nn.indices.cpu().numpy(), idx)
    np.testing.assert_allclose(nn.distances.cpu().numpy(), dist, rtol=1e-12)


@cuda_test
def test_cuda_duplicates_and_large_k():
    X = np.vstack([np.ones((3000, 32)), np.random.default_rng(0).normal(size=(9000, 32))])
    nn = idest.knn(torch.from_numpy(X).cuda(), 2000)
    assert nn.n_fallback_rows >= 3000
    assert_same_as_cpp(nn, X, 2000)


# --------------------------------------------------------- capture kept on the device ---

def tiny_net_and_batches():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16))
    return net, [torch.rand(250, 3) for _ in range(2)]


def test_capture_keeps_rows_on_the_model_device():
    net, batches = tiny_net_and_batches()
    kept = idest.capture(net, batches, ["0", "2"], reduce="flatten", keep_on_device=True)
    host = idest.capture(net, batches, ["0", "2"], reduce="flatten")
    for name in ("0", "2"):
        assert isinstance(kept[name], torch.Tensor) and kept[name].dtype == torch.float32
        assert kept[name].device == next(net.parameters()).device
        np.testing.assert_array_equal(kept[name].numpy(), host[name])
    with pytest.raises(ValueError, match="capture: out_dir must be None with keep_on_device"):
        idest.capture(net, batches, ["0"], out_dir="unused", keep_on_device=True)


def test_layer_scan_kept_on_device_gives_the_same_table(tmp_path):
    import idest.scan

    net, batches = tiny_net_and_batches()
    kwargs = {"reduce": "flatten", "mle_k": 10}
    kept = idest.scan.layer_scan(net, batches, ["0", "2"], tmp_path / "kept",
                                 keep_on_device=True, **kwargs)
    streamed = idest.scan.layer_scan(net, batches, ["0", "2"], tmp_path / "disk", **kwargs)
    assert kept.rows == streamed.rows
    assert not list((tmp_path / "kept" / "activations").glob("*.npy"))
