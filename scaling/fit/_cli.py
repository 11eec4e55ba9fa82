"""``idest fit``: power-law fits of a results table per group, with a table, JSON and a plot."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from scaling.fit._power_law import (
    FIGURE2_THRESHOLD,
    compare_alpha_to_dimension,
    fit_offset_power_law,
    fit_power_law,
    n_max_at_threshold,
    predicted_dimension,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="fit L(N) power laws to a results table",
        description="Fit log L = -alpha log N + b to a tidy CSV of runs (one row per trained "
        "model), per group, with the fitted window chosen by the circle rule of Sharma & "
        "Kaplan A.1 and bootstrap intervals over seeds. Prints a table and writes JSON and a "
        "PNG beside the CSV.",
    )
    p.add_argument("file", help="CSV with a header row")
    p.add_argument("--n-column", default="n_params", help="parameter count (default n_params)")
    p.add_argument("--loss-column", default="loss", help="loss (default loss)")
    p.add_argument("--seed-column", default="seed",
                   help="seed; ignored if absent (default seed)")
    p.add_argument("--group-by", nargs="*", default=[], metavar="COLUMN",
                   help="fit each distinct value of these columns separately (e.g. k)")
    p.add_argument("--envelope-by", metavar="COLUMN",
                   help="architecture column (e.g. depth): fit only the lower convex hull")
    p.add_argument("--window",
                   help="'circle', 'all', or NMIN:NMAX (default: circle; all with --offset)")
    p.add_argument("--offset", action="store_true",
                   help="fit L = L_inf + c N^-alpha instead of the pure power law")
    p.add_argument("--huber", type=float, metavar="DELTA",
                   help="with --offset: Huber loss on log residuals with this threshold")
    p.add_argument("--n-bootstrap", type=int, default=1000)
    p.add_argument("--threshold", type=float, default=FIGURE2_THRESHOLD,
                   help="loss level for N_max (default 6e-3, figure 2)")
    p.add_argument("--dimension-column", metavar="COLUMN",
                   help="measured dimension per run (e.g. id); compared with 4/alpha")
    p.add_argument("--loss-exponent", type=float, default=2.0,
                   help="p in alpha = 2p/d (2 for cross-entropy, KL and MSE)")
    p.add_argument("--output", help="JSON path (default: FILE with suffix .fit.json)")
    p.add_argument("--plot", help="PNG path (default: FILE with suffix .fit.png)")
    p.set_defaults(func=run)


def _parse_window(text: str) -> str | tuple[float, float]:
    if text in ("circle", "all"):
        return text
    parts = text.split(":")
    try:
        low, high = (float(v) for v in parts)
    except ValueError:
        raise ValueError(f"--window must be 'circle', 'all' or NMIN:NMAX, got {text!r}.") from None
    return low, high


def _read_table(path: str, required: list[str]) -> dict[str, list[str]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [c for c in required if c not in columns]
        if missing:
            raise ValueError(f"{path} has no column(s) {missing}; its columns are {columns}. "
                             "Name them with --n-column, --loss-column or --group-by.")
        table: dict[str, list[str]] = {c: [] for c in columns}
        for row in reader:
            for c in columns:
                table[c].append(row[c])
    if not table[required[0]]:
        raise ValueError(f"{path} has a header but no rows.")
    return table


def _numbers(table: dict[str, list[str]], column: str, path: str) -> np.ndarray:
    try:
        return np.array([float(v) for v in table[column]])
    except ValueError as exc:
        raise ValueError(f"{path}: column {column!r} must hold numbers ({exc}).") from None


def _sort_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _fit_group(args: argparse.Namespace, N: np.ndarray, L: np.ndarray, seeds: Any,
               groups: Any) -> dict[str, Any]:
    window = _parse_window(args.window or ("all" if args.offset else "circle"))
    if args.offset:
        fit = fit_offset_power_law(N, L, window=window,
                                   seeds=seeds, groups=groups, huber_delta=args.huber,
                                   n_bootstrap=args.n_bootstrap)
    else:
        fit = fit_power_law(N, L, window=window, seeds=seeds, groups=groups,
                            n_bootstrap=args.n_bootstrap)
    result: dict[str, Any] = {"fit": fit, "d_pred": None, "n_max_threshold": None}
    if fit.alpha > 0:
        result["d_pred"] = predicted_dimension(fit, loss_exponent=args.loss_exponent)
        try:
            result["n_max_threshold"] = n_max_at_threshold(N, L, args.threshold, fit=fit)
        except ValueError:
            result["n_max_threshold"] = None  # the fitted floor is above the threshold
    return result


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return {k: _jsonable(v) for k, v in value.__dict__.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run(args: argparse.Namespace) -> int:
    path = args.file
    required = [args.n_column, args.loss_column, *args.group_by]
    if args.envelope_by:
        required.append(args.envelope_by)
    if args.dimension_column:
        required.append(args.dimension_column)
    table = _read_table(path, required)
    N_all = _numbers(table, args.n_column, path)
    L_all = _numbers(table, args.loss_column, path)
    keys = [tuple(table[c][i] for c in args.group_by) for i in range(N_all.size)]
    results = []
    for key in sorted(set(keys), key=lambda k: [_sort_key(v) for v in k]):
        rows = np.array([k == key for k in keys])
        seeds = [table[args.seed_column][i] for i in np.flatnonzero(rows)] \
            if args.seed_column in table else None
        groups = [table[args.envelope_by][i] for i in np.flatnonzero(rows)] \
            if args.envelope_by else None
        label = ", ".join(f"{c}={v}" for c, v in zip(args.group_by, key, strict=True)) or "all"
        try:
            entry = _fit_group(args, N_all[rows], L_all[rows], seeds, groups)
        except ValueError as exc:
            raise ValueError(f"group {label}: {exc}") from None
        entry.update(label=label, group=dict(zip(args.group_by, key, strict=True)), rows=rows,
                     groups=groups)
        if args.dimension_column:
            entry["measured_dimension"] = float(np.mean(
                _numbers(table, args.dimension_column, path)[rows]))
        results.append(entry)

    _print_table(results, args)
    comparison = None
    if args.dimension_column and len(results) >= 3:
        comparison = compare_alpha_to_dimension([r["fit"] for r in results],
                                                [r["measured_dimension"] for r in results],
                                                loss_exponent=args.loss_exponent)
        print(f"\n{2 * args.loss_exponent:g}/alpha vs {args.dimension_column}: slope "
              f"{comparison.slope:.3f} [{comparison.interval[0]:.3f}, "
              f"{comparison.interval[1]:.3f}], intercept {comparison.intercept:.3f}, "
              f"through origin {comparison.slope_through_origin:.3f}, "
              f"r = {comparison.correlation:.3f} ({comparison.n_points} groups)")
    elif args.dimension_column:
        print(f"\n{2 * args.loss_exponent:g}/alpha vs {args.dimension_column}: not fitted, "
              f"it needs 3 or more groups (got {len(results)}; use --group-by).")

    stem = Path(path).with_suffix("")
    output = Path(args.output or f"{stem}.fit.json")
    document = {
        "source": str(path),
        "columns": {"n": args.n_column, "loss": args.loss_column, "seed": args.seed_column,
                    "group_by": args.group_by, "envelope_by": args.envelope_by},
        "fits": [{k: _jsonable(v) for k, v in r.items() if k not in ("rows", "groups")}
                 for r in results],
        "comparison": _jsonable(comparison),
    }
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    plot = Path(args.plot or f"{stem}.fit.png")
    _plot(results, N_all, L_all, plot, title=Path(path).name)
    print(f"\nwritten: {output}, {plot}")
    return 0


def _print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    d_name = f"{2 * args.loss_exponent:g}/alpha"
    header = (f"{'group':<16} {'alpha':>7} {'interval':>17} {'window N':>21} {'pts':>4} "
              f"{d_name:>8} {'N(L=' + format(args.threshold, 'g') + ')':>12}  notes")
    print(header)
    print("-" * len(header))
    for r in results:
        fit = r["fit"]
        low, high = fit.interval
        interval = "—" if np.isnan(low) else f"[{low:.3f}, {high:.3f}]"
        d = f"{r['d_pred'].dimension:.2f}" if r["d_pred"] else "—"
        crossing = r["n_max_threshold"]
        n_thr = "—" if crossing is None else \
            f"{crossing.n_max:.3g}{'*' if crossing.extrapolated else ''}"
        notes = []
        if fit.loss_floor > 0:
            notes.append(f"L_inf={fit.loss_floor:.3g}")
        notes += [f"on bound: {b}" for b in fit.at_bound]
        if "measured_dimension" in r:
            notes.append(f"{args.dimension_column}={r['measured_dimension']:.2f}")
        print(f"{r['label']:<16} {fit.alpha:7.3f} {interval:>17} "
              f"{f'{fit.n_min:.3g}–{fit.n_max:.3g}':>21} {fit.n_points:4d} {d:>8} "
              f"{n_thr:>12}  {'; '.join(notes)}")
    print(f"window: {results[0]['fit'].window}; interval: {results[0]['fit'].interval_method}; "
          "* = extrapolated from the fit")


def _plot(results: list[dict[str, Any]], N: np.ndarray, L: np.ndarray, path: Path,
          title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scaling.fit._plot import plot_fit

    fig, ax = plt.subplots(figsize=(7, 5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(results)))
    for r, color in zip(results, colors, strict=True):
        plot_fit(ax, N[r["rows"]], L[r["rows"]], r["fit"], groups=r["groups"], label=r["label"],
                 color=color)
    ax.set_title(f"{title}: L(N), fits over their windows (dotted: N_max)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
