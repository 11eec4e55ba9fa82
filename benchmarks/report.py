"""Markdown tables from pytest-benchmark JSON files of this suite, written to a file.

    .venv/bin/python benchmarks/report.py benchmarks/results/knn.json [more.json ...]

writes ``benchmarks/results/knn.md`` (the first JSON's path with ``.md``; ``-o`` names
another) and prints where.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


def tables(paths: list[str]) -> str:
    """The markdown of the benchmark JSON files ``paths`` (a later file's memory overrides)."""
    lines: list[str] = []
    groups: dict[str, list[dict]] = defaultdict(list)
    dates = []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        dates.append(data.get("datetime", "")[:19])
        for bench in data["benchmarks"]:
            groups[bench["group"]].append(bench)
    cpu = data.get("machine_info", {}).get("cpu", {})
    lines.append(f"Machine: {cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} cores; "
          f"{', '.join(dates)} UTC\n")
    rate = None
    if "sgemm rate" in groups:
        b = groups.pop("sgemm rate")[0]
        rate = b["extra_info"]["flops"] / b["stats"]["median"]
        lines.append(f"float32 GEMM rate (numpy BLAS, all cores): {rate / 1e9:.0f} GFLOP/s\n")
    fma_rate = None
    if "fma rate" in groups:
        info = groups.pop("fma rate")[0]["extra_info"]
        fma_rate = info["flops_per_second"]
        lines.append(f"float32 FMA peak (the compiled core's micro-kernel, {info['n_threads']} "
                     f"threads): {fma_rate / 1e9:.0f} GFLOP/s\n")
    if "peak memory" in groups:
        info = groups.pop("peak memory")[-1]["extra_info"]  # a later file overrides
        lines.append(f"Peak memory of a whole process running idest.knn on N={info['n']:,}, "
              f"D={info['dim']} float32 ({info['input_bytes'] / 1e6:.0f} MB input): "
              f"{info['peak_rss_bytes'] / 2**20:.0f} MiB\n")
    kernels = blas_kernels(data.get("machine_info", {}).get("threadpools", []))
    if kernels:
        lines.append(f"BLAS libraries loaded (threadpoolctl): {kernels}\n")
    for name, benches in groups.items():
        ours = next((b for b in benches if b["extra_info"].get("library") == "idest"), None)
        # per-process results (bench_knn.py --interleaved) add peak memory and kernels
        extra = any("peak_rss_bytes" in b["extra_info"] for b in benches)
        lines.append(f"**{name}**\n")
        lines.append("| library | median (s) | rounds | time / idest | max rel. distance error "
              "| rows identical to float64 |"
              + (" peak RSS (MiB) | BLAS kernels |" if extra else ""))
        lines.append("|---|---:|---:|---:|---:|---:|" + ("---:|---|" if extra else ""))
        for b in sorted(benches, key=lambda b: b["stats"]["median"]):
            info, med = b["extra_info"], b["stats"]["median"]
            ratio = med / ours["stats"]["median"] if ours else float("nan")
            lines.append(f"| {info.get('library', info.get('backend', b['name']))} | {med:.3f} | "
                  f"{b['stats']['rounds']} | {ratio:.2f} | "
                  f"{info.get('max_rel_distance_error', float('nan')):.1e} | "
                  f"{info.get('rows_identical', float('nan')):.3f} |"
                  + (f" {info['peak_rss_bytes'] / 2**20:,.0f} | {blas_kernels(info['blas'])} |"
                     if extra else ""))
        if ours and rate and ours["extra_info"].get("dim", 0) >= 256:
            n, dim = ours["extra_info"]["n"], ours["extra_info"]["dim"]
            full = 2.0 * n * n * dim / rate
            lines.append(f"\nGEMM-rate lower bound for an exhaustive search: {full:.1f} s "
                  f"(2·N²·D flops); with symmetry {full / 2:.1f} s. idest: "
                  f"{ours['stats']['median']:.1f} s = {ours['stats']['median'] / (full / 2):.2f}× "
                  "its symmetric bound.")
        if ours and fma_rate and ours["extra_info"].get("dim", 999) <= 64:
            lines.append("\n" + fma_bound_line(ours, fma_rate))
        lines.append("")
    return "\n".join(lines) + "\n"


def fma_bound_line(ours: dict, fma_rate: float) -> str:
    """idest's small-D self search as a multiple of the FMA bound, N (N - 1) D flops at
    the micro-kernel's rate (the upper triangle's dot products, nothing else).

    >>> line = fma_bound_line({"extra_info": {"n": 1000, "dim": 20}, "stats": {"median": 0.01}},
    ...                       1e11)
    >>> line.split(": ", 1)[1]
    '0.0002 s; idest: 0.0100 s = 50.05× the bound.'
    """
    n, dim = ours["extra_info"]["n"], ours["extra_info"]["dim"]
    bound = n * (n - 1) * dim / fma_rate
    median = ours["stats"]["median"]
    return (f"FMA bound (N (N - 1) D flops at the measured peak): {bound:.4f} s; idest: "
            f"{median:.4f} s = {median / bound:.2f}× the bound.")


def blas_kernels(pools: list[dict]) -> str:
    """'openblas 0.3.30 Haswell, ...' for the BLAS libraries threadpoolctl listed."""
    return ", ".join(f"{p.get('internal_api')} {p.get('version')} {p.get('architecture')}"
                     for p in pools if p.get("internal_api") in ("openblas", "mkl", "blis"))


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", nargs="+", help="pytest-benchmark JSON files")
    parser.add_argument("-o", "--out", help="markdown file (default: the first JSON's path "
                        "with .md)")
    args = parser.parse_args(argv)
    out = Path(args.out or Path(args.json[0]).with_suffix(".md"))
    out.write_text(tables(args.json))
    print(f"written: {out}")
    return out


if __name__ == "__main__":
    main()
