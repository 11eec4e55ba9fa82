"""Exact k-NN on one GPU: idest's torch backend, a plain torch search and faiss-gpu (issue 15).

One command, at most ~8 minutes on one H100/H200 (``--max-seconds`` stops
starting new runs past its budget and records them as skipped)::

    python benchmarks/gpu_knn.py --out benchmarks/results/gpu_knn

writes ``gpu_knn.json`` and ``gpu_knn.md``. A check of the script itself on
CPU torch, tiny sizes, seconds::

    python benchmarks/gpu_knn.py --cpu-smoke --out /tmp/gpu_knn_smoke

Cases: N = 10^5 and 10^6 rows of the benchmark data (``benchmarks/conftest.py``:
an 8-dimensional Gaussian mapped linearly into D = 768 plus noise, float32),
self search, k = 10 and k = 1,000. Methods, each on the same device tensor:

``idest-torch``
    :func:`idest.neighbors.torch_knn`: certified exact float64 distances.
``torch-plain``
    What users write: chunked ``|x|^2 + |y|^2 - 2 x.y`` with ``torch.addmm`` in
    float32 (TF32 off), the diagonal masked, ``torch.topk``, ``sqrt(max(., 0))``.
``faiss-gpu``
    ``faiss.GpuIndexFlatL2`` (``faiss-gpu-cu12``) searched for k + 1 with the
    query itself dropped, from host numpy arrays (its timing includes the
    3 GB copy to the device at N = 10^6); skipped when faiss is not importable.

Reported per run: wall time (synchronised), achieved FLOP/s counting 2 N^2 D
and its share of the ``torch.mm`` float32 rate measured in the same run, the
largest relative error of the j-th distance against an independent float64
direct-difference search on ``--sample`` seeded query rows (and how many of
those rows' exact zeros disagree), recall of the exact neighbour indices on
the same rows, fallback rows (idest), and peak device memory beyond the data
(torch's allocator; faiss allocates outside it, so its figure is the device
memory in use after the search, not a peak).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from conftest import make_data

import idest
from idest.neighbors import torch_knn
from idest.neighbors._backends import columns_without_self
from idest.neighbors._torch import ieee_float32_matmul

FULL = {"sizes": (100_000, 1_000_000), "dim": 768, "ks": (10, 1000), "sample": 1000}
SMOKE = {"sizes": (2_000, 5_000), "dim": 64, "ks": (10, 100), "sample": 100}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """(result, seconds, peak device bytes beyond what was allocated before or None)."""
    synchronize(device)
    before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    out = fn()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) - before if device.type == "cuda" else None
    return out, seconds, peak


def mm_rate(device: torch.device, dim: int, side: int, repeats: int) -> float:
    """float32 ``torch.mm`` FLOP/s (IEEE float32, TF32 off) at the tile shape of a search."""
    g = torch.Generator(device=device).manual_seed(0)
    A = torch.randn(side, dim, device=device, generator=g)
    B = torch.randn(4 * side, dim, device=device, generator=g)
    with ieee_float32_matmul():
        torch.mm(A, B.T)  # warm-up (cuBLAS handles, kernels)
        _, seconds, _ = timed(lambda: [torch.mm(A, B.T) for _ in range(repeats)], device)
    return 2.0 * side * 4 * side * dim * repeats / seconds


def run_idest(X: torch.Tensor, k: int):
    nn = torch_knn(X, k, progress=False)
    return nn.distances, nn.indices, nn.n_fallback_rows


def run_torch_plain(X: torch.Tensor, k: int):
    n = X.shape[0]
    rows = max(1, min(n, 2**30 // n))  # a 4 GB float32 block of the distance matrix
    norms = (X * X).sum(dim=1)
    dist = torch.empty((n, k), device=X.device)
    idx = torch.empty((n, k), dtype=torch.int64, device=X.device)
    with ieee_float32_matmul():
        for q0 in range(0, n, rows):
            q = X[q0 : q0 + rows]
            d2 = torch.addmm(norms.unsqueeze(0), q, X.T, alpha=-2.0)
            d2.add_(norms[q0 : q0 + rows, None])
            d2.diagonal(q0).fill_(math.inf)  # the query itself
            values, idx[q0 : q0 + rows] = torch.topk(d2, k, dim=1, largest=False)
            dist[q0 : q0 + rows] = values.clamp_min(0).sqrt()
            del d2
    return dist, idx, None


def run_faiss(X: torch.Tensor, k: int):
    import faiss

    host = X.cpu().numpy()
    if X.device.type == "cuda":
        resources = faiss.StandardGpuResources()
        index = faiss.GpuIndexFlatL2(resources, host.shape[1])
    else:  # --cpu-smoke only: the same calls on faiss's CPU index
        index = faiss.IndexFlatL2(host.shape[1])
    index.add(host)
    sq, idx = index.search(host, k + 1)
    keep = columns_without_self(idx)
    dist = np.sqrt(np.maximum(np.take_along_axis(sq, keep, 1), 0))
    return torch.from_numpy(dist), torch.from_numpy(np.take_along_axis(idx, keep, 1)), None


def faiss_available(device: torch.device) -> str | None:
    """faiss's version if it can run here (a GPU build on CUDA), else None."""
    try:
        import faiss
    except ImportError:
        return None
    if device.type == "cuda" and not hasattr(faiss, "GpuIndexFlatL2"):
        return None
    return faiss.__version__


def exact_reference(X: torch.Tensor, rows: torch.Tensor, k: int):
    """float64 distances and indices of the k nearest other points of ``rows``, from direct
    differences, independent of idest (ties here by torch.topk, irrelevant to distances)."""
    n, dim = X.shape
    block = max(1, min(n, 2**28 // (8 * dim)))  # (8 rows, block, D) float64: 2 GB
    out_d, out_i = [], []
    for r0 in range(0, rows.numel(), 8):
        these = rows[r0 : r0 + 8]
        x = X[these].double().unsqueeze(1)
        d2 = torch.empty((these.numel(), n), dtype=torch.float64, device=X.device)
        for b0 in range(0, n, block):
            diff = X[b0 : b0 + block].double().unsqueeze(0) - x
            d2[:, b0 : b0 + diff.shape[1]] = diff.square_().sum(dim=2)
        d2[torch.arange(these.numel(), device=X.device), these] = math.inf
        values, idx = torch.topk(d2, k, dim=1, largest=False)
        out_d.append(values.sqrt())
        out_i.append(idx)
    return torch.cat(out_d).cpu(), torch.cat(out_i).cpu()


def accuracy(dist, idx, ref_d, ref_i, rows):
    """Largest relative error of the j-th distance, zero mismatches and index recall."""
    d = dist[rows.to(dist.device)].double().cpu()
    i = idx[rows.to(idx.device)].cpu()
    k = d.shape[1]
    ref_d, ref_i = ref_d[:, :k], ref_i[:, :k]
    positive = ref_d > 0
    rel = ((d - ref_d).abs()[positive] / ref_d[positive]).max().item() if positive.any() else 0.0
    zeros = int(((d == 0) != (ref_d == 0)).any(dim=1).sum())
    hits = sum(len(set(a.tolist()) & set(b.tolist())) for a, b in zip(i, ref_i, strict=True))
    return rel, zeros, hits / ref_i.numel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--out", default="benchmarks/results/gpu_knn",
                        help="output path without extension (.json and .md are written)")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny sizes on CPU torch: checks the script, measures nothing")
    parser.add_argument("--max-seconds", type=float, default=450.0,
                        help="start no new run after this many seconds (default 450)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampled query rows")
    args = parser.parse_args(argv)

    config = SMOKE if args.cpu_smoke else FULL
    if not args.cpu_smoke and not torch.cuda.is_available():
        parser.error("no CUDA device visible to torch; use --cpu-smoke to check the script")
    device = torch.device("cpu" if args.cpu_smoke else "cuda")
    clock = time.perf_counter()
    dim = config["dim"]
    side = 1024 if args.cpu_smoke else 16_384
    rate = mm_rate(device, dim, side, 3 if args.cpu_smoke else 20)
    faiss_version = faiss_available(device)
    methods = {"idest-torch": run_idest, "torch-plain": run_torch_plain}
    if faiss_version:
        methods["faiss-gpu" if device.type == "cuda" else "faiss-cpu (smoke)"] = run_faiss
    meta = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "cuda": torch.version.cuda, "faiss": faiss_version,
        "idest": idest.__version__, "python": platform.python_version(),
        "mm_float32_flops": rate, "mm_shape": [side, 4 * side, dim], "dim": dim,
        "sample_rows": config["sample"], "cpu_smoke": args.cpu_smoke,
    }
    print(f"{meta['device']}: torch.mm float32 {rate / 1e12:.2f} TFLOP/s", flush=True)
    runs = []
    for n in config["sizes"]:
        X = torch.from_numpy(make_data(n, dim)).to(device)
        rows = torch.from_numpy(np.random.default_rng(args.seed).choice(
            n, size=min(config["sample"], n), replace=False)).to(device)
        ref_d, ref_i = exact_reference(X, rows, max(config["ks"]))
        for k in config["ks"]:
            for name, method in methods.items():
                record = {"n": n, "dim": dim, "k": k, "method": name}
                if time.perf_counter() - clock > args.max_seconds:
                    runs.append({**record, "skipped": f"past --max-seconds={args.max_seconds:g}"})
                    continue
                (dist, idx, fallback), seconds, peak = timed(
                    lambda m=method, X=X, k=k: m(X, k), device)
                if name.startswith("faiss") and device.type == "cuda":
                    free, total = torch.cuda.mem_get_info(device)
                    peak = total - free  # in use after the search (faiss's own allocator)
                flops = 2.0 * n * n * dim
                rel, zeros, recall = accuracy(dist, idx, ref_d, ref_i, rows)
                record.update(seconds=seconds, tflops=flops / seconds / 1e12,
                              share_of_mm_rate=flops / seconds / rate, max_rel_error=rel,
                              rows_with_zero_mismatch=zeros, recall=recall,
                              fallback_rows=fallback, device_bytes=peak)
                runs.append(record)
                print(json.dumps(record), flush=True)
                del dist, idx
        del X
        if device.type == "cuda":
            torch.cuda.empty_cache()
    meta["total_seconds"] = time.perf_counter() - clock
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(meta, runs))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


def markdown(meta: dict, runs: list[dict]) -> str:
    lines = [
        f"# Exact k-NN on {meta['device']} (D = {meta['dim']})", "",
        f"`{meta['command']}`; torch {meta['torch']}, CUDA {meta['cuda']}, faiss {meta['faiss']}; "
        f"torch.mm float32 rate {meta['mm_float32_flops'] / 1e12:.2f} TFLOP/s; accuracy on "
        f"{meta['sample_rows']} sampled rows against float64 direct differences; "
        f"{meta['total_seconds']:.0f} s in all.", "",
        "| N | k | method | time (s) | TFLOP/s | share of mm rate | max rel. distance error "
        "| rows with wrong zeros | recall | fallback rows | device memory (GiB) |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in runs:
        if "skipped" in r:
            lines.append(f"| {r['n']:,} | {r['k']:,} | {r['method']} | skipped: {r['skipped']} "
                         "| | | | | | | |")
            continue
        memory = "" if r["device_bytes"] is None else f"{r['device_bytes'] / 2**30:.2f}"
        fallback = "" if r["fallback_rows"] is None else f"{r['fallback_rows']:,}"
        lines.append(
            f"| {r['n']:,} | {r['k']:,} | {r['method']} | {r['seconds']:.3g} | {r['tflops']:.3g} "
            f"| {r['share_of_mm_rate']:.0%} | {r['max_rel_error']:.2e} "
            f"| {r['rows_with_zero_mismatch']} | {r['recall']:.4f} | {fallback} | {memory} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
