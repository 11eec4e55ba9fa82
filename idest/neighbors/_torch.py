"""Torch backend of :func:`idest.knn`: exact, certified k-NN on the data's device.

The algorithm of the compiled core (``cpp/knn.cpp``), written in torch
operations so that it runs where the activations are (a CUDA GPU; CPU torch is
how the test suite checks it):

1. **Centre and scale.** The reference mean (float64) is subtracted and the
   data are multiplied by a power of two s (exact) so that every value lies in
   (-1, 1), then rounded to float32 once: a scaled copy of each set.
2. **Candidates.** Tiles of a = |y|^2 - 2 x.y come from ``torch.addmm`` in
   IEEE float32 (TF32 and bf16 reduced-precision matmuls are switched off for
   the call, see :func:`ieee_float32_matmul`); each tile's ``k + margin``
   smallest entries per row (``torch.topk``) are merged into a running list
   per query row. The query's own column is set to +inf in a self search.
3. **Re-scoring.** The candidates are re-scored in float64 on the device from
   direct differences (never from the expansion above, so exact duplicates
   give exactly 0.0) and sorted by (distance, index).
4. **Certificate.** Let W be the largest approximation |x|^2 + a left in a
   row's list; every point outside the list had an approximation at least W
   (lists only shrink their threshold). With c = (2D + 32) 2^-24, the float32
   error of the tile arithmetic obeys |a_total - s^2 t| <= c (|x~|^2 + |y~|^2)
   for the true squared distance t (cpp/knn.cpp, ``certified_lower_bound``),
   so every point outside the list has

       t >= L = (W - 3 c s^2 |x|^2 - D 2^-120) / ((1 + 2 c) s^2).

   A row is certified when its k-th re-scored squared distance d_k < L,
   strictly: a point outside the list at exactly d_k (a tie at the candidate
   boundary, which the lower index might win) fails the test.
5. **Fallback.** Rows that fail are searched exhaustively in float64 from
   direct differences, in blocks; ties by lower index.

Tiles are sized from the device's free memory (``torch.cuda.mem_get_info``)
or a fixed budget on CPU; no N x N matrix is ever formed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from idest.neighbors._backends import candidate_margin, certified_lower_bound, n_candidates
from idest.neighbors._knn import Neighbors, check_k, is_device_tensor
from idest.utils.progress import progress_bar
from idest.utils.validation import check_array, invalid

#: Working memory of one call on CPU torch (tiles, lists, re-scoring), bytes.
CPU_BUDGET_BYTES = 256 * 2**20

#: Share of the device's free memory (after the scaled copies) one call may use.
CUDA_MEMORY_FRACTION = 0.5

#: Reference rows per tile (its columns): wide tiles keep the list merges rare.
TILE_COLUMNS = {"cuda": 65_536, "cpu": 8_192}

#: Elements of one temporary tensor at most (tiles, gathered candidates, differences):
#: some kernels index with 32-bit integers.
MAX_ELEMENTS = 2**31 - 1

#: Bytes of device memory per tile entry: the float32 tile plus what
#: ``torch.topk`` may allocate (values and int64 indices of a sort).
_BYTES_PER_TILE_ENTRY = 16


def _precision_state(torch: Any, per_backend: list) -> list:
    """Everything torch reports about float32 matmul precision ("mixed" where a getter
    refuses a mix of the legacy and per-backend settings)."""
    state = []
    for getter in (torch.get_float32_matmul_precision,
                   lambda: torch.backends.cuda.matmul.allow_tf32,
                   *(lambda m=m: m.fp32_precision for m in per_backend)):
        try:
            state.append(getter())
        except RuntimeError:
            state.append("mixed")
    return state


@contextlib.contextmanager
def ieee_float32_matmul() -> Iterator[None]:
    """float32 matmuls in IEEE float32 inside the block; the caller's settings restored after.

    The certificate assumes float32 products summed in float32. TF32 (from
    ``torch.set_float32_matmul_precision("high")``,
    ``torch.backends.cuda.matmul.allow_tf32 = True`` or, torch >= 2.9,
    ``torch.backends.cuda.matmul.fp32_precision = "tf32"``) keeps 10 mantissa
    bits and CPU bf16 (``"medium"``) 7: either would void it. Inside, the
    legacy setting is ``"highest"``, which also sets the per-backend ones
    (cuBLAS, oneDNN) to ``"ieee"``: torch >= 2.9 refuses a cuBLAS matmul when
    the two disagree. After the block, also when it raises, the caller's
    legacy and per-backend settings are put back (a state torch itself
    reports as mixed is rebuilt to read the same through every getter).
    Process-wide, like the settings themselves.

    Examples
    --------
    >>> import torch
    >>> with ieee_float32_matmul():
    ...     torch.get_float32_matmul_precision()
    'highest'
    """
    import torch

    per_backend = [m for m in (torch.backends.cuda.matmul,
                               getattr(getattr(torch.backends, "mkldnn", None), "matmul", None))
                   if m is not None and hasattr(m, "fp32_precision")]  # torch >= 2.9
    before = _precision_state(torch, per_backend)
    saved = [m.fp32_precision for m in per_backend]
    legacy = [before[0]] if before[0] != "mixed" else ["highest", "high", "medium"]
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        for value in legacy:  # one pass unless the caller's state was mixed
            torch.set_float32_matmul_precision(value)
            for m, precision in zip(per_backend, saved, strict=True):
                m.fp32_precision = precision
            if _precision_state(torch, per_backend) == before:
                break


def _device_tensor(A: Any, name: str, torch: Any) -> Any:
    """Validate a tensor that lives on an accelerator, on that accelerator.

    The checks of :func:`idest.utils.check_array` (2-D, non-empty, real,
    finite) without a copy to the host; float16, bfloat16 and other narrow
    floats are upcast to float32, integers and bool to float64.
    """
    A = A.detach()
    if A.is_complex():
        raise invalid("knn", name, "real numbers", f"complex dtype {A.dtype}",
                      f"Pass {name}.real or {name}.abs().")
    if A.ndim != 2:
        raise invalid("knn", name, "a 2-D array (n_samples, n_features)",
                      f"{A.ndim}-D with shape {tuple(A.shape)}")
    if A.numel() == 0:
        raise invalid("knn", name, "non-empty (at least 1 sample and 1 feature)",
                      f"an empty tensor of shape {tuple(A.shape)}")
    if A.dtype not in (torch.float32, torch.float64):
        A = A.float() if A.is_floating_point() else A.double()
    ok = torch.isfinite(A).all(dim=1)
    if not bool(ok.all()):
        row = int(torch.argmin(ok.to(torch.uint8)))
        kind = "NaN (nan)" if bool(torch.isnan(A[row]).any()) else "infinity (inf)"
        raise invalid("knn", name, "finite", f"{kind}, first in row {row}",
                      "Remove or impute non-finite values first.")
    return A


def _as_tensor(A: Any, name: str, device: Any, torch: Any) -> tuple[Any, np.ndarray | None]:
    """The validated input as a float32/float64 tensor on ``device`` (moved once) and,
    for host input, the validated numpy array it was made from."""
    if is_device_tensor(A):
        return _device_tensor(A, name, torch).to(device), None
    arr = check_array(A, name=name, caller="knn")
    with warnings.catch_warnings():  # read-only memmaps: the tensor is never written
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        tensor = torch.from_numpy(arr)
    return tensor.to(device), arr


def _resolve_device(device: Any, X: Any, reference: Any, torch: Any) -> Any:
    """``device`` if given; else the device of a tensor input; else CUDA when available."""
    if device is None:
        on_device = [A.device for A in (X, reference) if is_device_tensor(A)]
        if on_device:
            return on_device[0]
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise invalid("knn", "device", "a torch device such as 'cuda', 'cuda:1' or 'cpu'",
                      f"{device!r} ({exc})") from exc


def _budget(device: Any, torch: Any) -> int:
    """Bytes of working memory this call may use on ``device``."""
    if device.type != "cuda":
        return CPU_BUDGET_BYTES
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(CUDA_MEMORY_FRACTION * (free + cached))


def _rows_within(budget: int, bytes_per_row: float, n_rows: int, elements_per_row: int = 1
                 ) -> int:
    """Rows of a block that fit ``budget`` and :data:`MAX_ELEMENTS` (at least one, at most
    ``n_rows``)."""
    fit = min(budget // max(1.0, bytes_per_row), MAX_ELEMENTS // max(1, elements_per_row))
    return int(max(1, min(n_rows, fit)))


def _centring(Q: Any, R: Any, self_search: bool, rows: int, torch: Any):
    """Reference mean (float64), the power-of-two scale and the queries' |x - mean|^2."""
    dim = R.shape[1]
    total = torch.zeros(dim, dtype=torch.float64, device=R.device)
    for start in range(0, R.shape[0], rows):
        total += R[start : start + rows].to(torch.float64).sum(dim=0)
    mean = total / R.shape[0]
    sq_norm = torch.empty(Q.shape[0], dtype=torch.float64, device=Q.device)
    max_abs = 0.0
    for A, norms in ((Q, sq_norm), (None if self_search else R, None)):
        if A is None:
            continue
        for start in range(0, A.shape[0], rows):
            block = A[start : start + rows].to(torch.float64) - mean
            max_abs = max(max_abs, float(block.abs().max()))
            if norms is not None:
                norms[start : start + block.shape[0]] = block.square().sum(dim=1)
    scale = 2.0 ** -math.frexp(max_abs)[1] if max_abs > 0 else 1.0
    return mean, scale, sq_norm


def _scaled_copy(A: Any, mean: Any, scale: float, rows: int, torch: Any):
    """Centred, scaled float32 rows and their squared norms (float64 sums, rounded)."""
    out = torch.empty(A.shape, dtype=torch.float32, device=A.device)
    norms = torch.empty(A.shape[0], dtype=torch.float32, device=A.device)
    for start in range(0, A.shape[0], rows):
        block = ((A[start : start + rows].to(torch.float64) - mean) * scale).to(torch.float32)
        out[start : start + block.shape[0]] = block
        norms[start : start + block.shape[0]] = block.to(torch.float64).square().sum(dim=1)
    return out, norms


def _block_candidates(A: Any, a_norms: Any, Rs: Any, r_norms: Any, q0: int, self_search: bool,
                      width: int, columns: int, torch: Any, bar: Any):
    """Candidate lists of query rows q0.. (scaled rows ``A``): indices and the threshold W.

    Every reference point left out of a row's list had an approximation
    |x|^2 + |y|^2 - 2 x.y >= W of that row (rounding is monotone, so adding
    |x|^2 after the selection keeps the order of each row).
    """
    m = A.shape[0]
    best_a = torch.empty((m, 0), dtype=torch.float32, device=A.device)
    best_i = torch.empty((m, 0), dtype=torch.int64, device=A.device)
    for r0 in range(0, Rs.shape[0], columns):
        B = Rs[r0 : r0 + columns]
        tile = torch.addmm(r_norms[r0 : r0 + B.shape[0]].unsqueeze(0), A, B.T, alpha=-2.0)
        if self_search and r0 < q0 + m and q0 < r0 + B.shape[0]:
            tile.diagonal(q0 - r0).fill_(math.inf)  # the query itself
        values, cols = torch.topk(tile, min(width, tile.shape[1]), dim=1, largest=False,
                                  sorted=False)
        del tile
        best_a = torch.cat((best_a, values), dim=1)
        best_i = torch.cat((best_i, cols + r0), dim=1)
        if best_a.shape[1] > width:
            best_a, keep = torch.topk(best_a, width, dim=1, largest=False, sorted=False)
            best_i = best_i.gather(1, keep)
        if bar is not None:
            bar.update()
    worst = best_a.max(dim=1).values + a_norms
    return best_i, worst, torch.isfinite(best_a).all(dim=1)


def _sorted_smallest(d2: Any, ids: Any, k: int, torch: Any):
    """The k smallest (d2, id) pairs of each row, ascending, ties by lower id.

    ``ids`` must be ascending along each row: a stable sort by d2 then keeps
    equal distances in index order.
    """
    d2, order = torch.sort(d2, dim=1, stable=True)
    return d2[:, :k], ids.gather(1, order[:, :k])


def _rescore(Q: Any, R: Any, cand: Any, k: int, budget: int, torch: Any):
    """Exact float64 squared distances of the candidates, the k best per row."""
    ids = torch.sort(cand, dim=1).values
    m, width = ids.shape
    per_row = width * R.shape[1] * (8.0 + R.element_size()) * 1.5
    step = _rows_within(budget, per_row, m, width * R.shape[1])
    d2 = torch.empty((m, width), dtype=torch.float64, device=Q.device)
    for start in range(0, m, step):
        rows = R[ids[start : start + step]].to(torch.float64)  # (rows, width, D), a new tensor
        rows.sub_(Q[start : start + step].to(torch.float64).unsqueeze(1))
        d2[start : start + step] = rows.square_().sum(dim=2)
        del rows
    return _sorted_smallest(d2, ids, k, torch)


def _exhaustive(Q: Any, R: Any, rows: Any, k: int, self_search: bool, budget: int, torch: Any):
    """The k nearest neighbours of the query rows ``rows`` (indices into ``Q``, and into
    ``R`` in a self search) by a float64 scan of every point."""
    n_ref, dim = R.shape
    step = _rows_within(budget, n_ref * 8.0 * 4, rows.shape[0], n_ref)
    out_d2, out_i = [], []
    ids = torch.arange(n_ref, device=R.device).expand(step, n_ref)
    for start in range(0, rows.shape[0], step):
        these = rows[start : start + step]
        x = Q[these].to(torch.float64).unsqueeze(1)
        d2 = torch.empty((these.shape[0], n_ref), dtype=torch.float64, device=R.device)
        block = _rows_within(budget, these.shape[0] * dim * 8.0 * 2, n_ref,
                             these.shape[0] * dim)
        for r0 in range(0, n_ref, block):
            diff = R[r0 : r0 + block].to(torch.float64).unsqueeze(0) - x
            d2[:, r0 : r0 + diff.shape[1]] = diff.square_().sum(dim=2)
            del diff
        if self_search:
            d2[torch.arange(these.shape[0], device=R.device), these] = math.inf
        best_d2, best_i = _sorted_smallest(d2, ids[: these.shape[0]], k, torch)
        out_d2.append(best_d2)
        out_i.append(best_i)
    return torch.cat(out_d2), torch.cat(out_i)


def search(Q: Any, R: Any | None, k: int, progress: bool | None = None):
    """Exact k-NN of the rows of ``Q`` among those of ``R`` (None: ``Q`` itself, each
    point excluded): ``(distances float64, indices int64, n_fallback_rows)`` as tensors
    on the device of ``Q``. Inputs are validated float32/float64 tensors on one device.
    """
    import torch

    self_search = R is None
    ref = Q if self_search else R
    n, dim = Q.shape
    n_ref = ref.shape[0]
    available = n_ref - (1 if self_search else 0)
    width = min(n_candidates(k, candidate_margin(Q, R)), available)
    device = Q.device
    with ieee_float32_matmul(), torch.no_grad():
        budget = _budget(device, torch)
        rows = _rows_within(budget, dim * 8.0 * 4, max(n, n_ref), dim)
        mean, scale, sq_norm = _centring(Q, ref, self_search, rows, torch)
        Qs, q_norms = _scaled_copy(Q, mean, scale, rows, torch)
        Rs, r_norms = (Qs, q_norms) if self_search else _scaled_copy(ref, mean, scale, rows, torch)
        budget = _budget(device, torch)
        columns = min(n_ref, TILE_COLUMNS.get(device.type, TILE_COLUMNS["cpu"]),
                      max(1, budget // (_BYTES_PER_TILE_ENTRY * 64)))
        per_row = columns * _BYTES_PER_TILE_ENTRY + width * 48.0
        block = _rows_within(budget, per_row, n, columns)
        distances = torch.empty((n, k), dtype=torch.float64, device=device)
        indices = torch.empty((n, k), dtype=torch.int64, device=device)
        n_fallback = 0
        n_tiles = -(-n // block) * -(-n_ref // columns)
        with progress_bar(progress, total=n_tiles, desc="knn (torch)", unit="tile",
                          work=2.0 * n * n_ref * dim) as bar:
            for q0 in range(0, n, block):
                q1 = min(n, q0 + block)
                cand, worst, full = _block_candidates(Qs[q0:q1], q_norms[q0:q1], Rs, r_norms, q0,
                                                      self_search, width, columns, torch, bar)
                bound = certified_lower_bound(worst.to(torch.float64), sq_norm[q0:q1], scale,
                                              dim)
                if width == available:  # the list holds every point: nothing outside it
                    bound.fill_(math.inf)
                bound[~full] = -math.inf  # a non-finite approximation: certify nothing
                d2, idx = _rescore(Q[q0:q1], ref, cand, k, budget, torch)
                failed = torch.nonzero(~(d2[:, k - 1] < bound)).flatten()
                if failed.numel():
                    n_fallback += int(failed.numel())
                    d2[failed], idx[failed] = _exhaustive(Q, ref, failed + q0, k, self_search,
                                                          budget, torch)
                distances[q0:q1] = d2.sqrt()
                indices[q0:q1] = idx
    return distances, indices, n_fallback


def torch_knn(
    X: Any,
    k: int,
    *,
    reference: Any | None = None,
    device: Any = None,
    progress: bool | None = None,
) -> Neighbors:
    """Exact k nearest neighbours on a torch device, results kept there as tensors.

    The torch backend of :func:`idest.knn` (``backend="torch"``), which
    returns the same neighbours as numpy arrays; call this one to keep them
    on the GPU. The contract is :func:`idest.knn`'s, index for index.

    Parameters
    ----------
    X : array-like or torch.Tensor of shape (n_samples, n_features)
        A CUDA or CPU tensor of any real dtype (float16, bfloat16 and other
        narrow floats are upcast to float32, integers to float64), or an
        array moved to ``device`` once.
    k : int
        Neighbours per point, ``1 <= k < n_samples`` (``k <= n_reference``
        with a separate reference set).
    reference : array-like or torch.Tensor, optional
        Search ``X`` against this set instead of against itself.
    device : str or torch.device, optional
        Where to search. Default: the device of a tensor input that is not on
        the CPU, else ``"cuda"`` when available, else ``"cpu"``.
    progress : bool, optional
        Show a progress bar over tiles.

    Returns
    -------
    Neighbors
        Whose ``distances`` (float64) and ``indices`` (int64) are tensors on
        ``device`` and whose ``data`` is the validated reference tensor.

    Notes
    -----
    The float32 tiles are certified per row by the bound in this module's
    docstring (as in ``cpp/knn.cpp``); rows it cannot certify are searched
    exhaustively in float64, counted in ``n_fallback_rows``. The call switches
    TF32 and bf16 matmuls off and restores the caller's settings
    (:func:`ieee_float32_matmul`).

    Examples
    --------
    >>> import torch
    >>> from idest.neighbors import torch_knn
    >>> X = torch.randn(1000, 16, generator=torch.Generator().manual_seed(0))
    >>> nn = torch_knn(X, k=5, device="cpu")
    >>> type(nn.distances).__name__, tuple(nn.indices.shape), nn.n_fallback_rows
    ('Tensor', (1000, 5), 0)
    """
    import torch

    device = _resolve_device(device, X, reference, torch)
    Q, _ = _as_tensor(X, "X", device, torch)
    self_search = reference is None
    R = Q if self_search else _as_tensor(reference, "reference", device, torch)[0]
    nn, _ = _neighbors(Q, R, self_search, k, progress, torch)
    return nn


def _neighbors(Q: Any, R: Any, self_search: bool, k: int, progress: bool | None, torch: Any):
    """Shared checks and the search; returns (Neighbors of tensors, R)."""
    if R.shape[1] != Q.shape[1]:
        raise invalid("knn", "reference", f"an array with the {Q.shape[1]} features of X",
                      f"{R.shape[1]} features", "Pass vectors of the same space.")
    if R.dtype != Q.dtype:  # compute in the wider type
        Q, R = Q.to(torch.float64), R.to(torch.float64)
    k = check_k(k, R.shape[0], self_search)
    dist, idx, n_fallback = search(Q, None if self_search else R, k, progress)
    return Neighbors(dist, idx, self_search, "torch", n_fallback, R), R


def knn_numpy(X: Any, k: int, reference: Any | None, device: Any, progress: bool | None
              ) -> Neighbors:
    """``idest.knn(..., backend="torch")``: the search on the device, numpy results.

    ``data`` is the validated host array for host input (as with the other
    backends) and the device tensor for device input.
    """
    import torch

    device = _resolve_device(device, X, reference, torch)
    Q, host = _as_tensor(X, "X", device, torch)
    self_search = reference is None
    R, host_r = (Q, host) if self_search else _as_tensor(reference, "reference", device, torch)
    nn, R = _neighbors(Q, R, self_search, k, progress, torch)
    if host_r is not None and R.dtype == torch.float64 and host_r.dtype != np.float64:
        host_r = host_r.astype(np.float64)  # as the other backends: the wider type
    return dataclasses.replace(nn, distances=nn.distances.cpu().numpy(),
                               indices=nn.indices.cpu().numpy(),
                               data=host_r if host_r is not None else R)
