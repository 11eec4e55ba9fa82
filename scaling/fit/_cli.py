"""``idest fit``: power-law fits of a results table per group, with a table, JSON and a plot."""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from scaling.fit._plot import plot_dimension_comparison, plot_fit
from scaling.fit._power_law import (
    FIGURE2_THRESHOLD,
    DimensionComparison,
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
    p.add_argument("--n-column", default="n_params", help="parameter count")
    p.add_argument("--loss-column", default="loss", help="loss")
    p.add_argument("--seed-column", default="seed", help="seed; ignored if absent")
    p.add_argument("--group-by", nargs="*", default=[], metavar="COLUMN",
                   help="fit each distinct value of these columns separately (e.g. k)")
    p.add_argument("--envelope-by", metavar="COLUMN",
                   help="architecture column (e.g. depth): fit only the lower convex hull")
    p.add_argument("--window", type=_parse_window,
                   help="'circle', 'all', or NMIN:NMAX (default: circle; all with --offset)")
    p.add_argument("--offset", action="store_true",
                   help="fit L = L_inf + c N^-alpha instead of the pure power law")
    p.add_argument("--huber", type=p.number(float, 0, strict_low=True), metavar="DELTA",
                   help="with --offset: Huber loss on log residuals with this threshold")
    p.add_bootstrap("over the seeds at each size")
    p.add_seed()
    p.add_argument("--threshold", type=p.number(float, 0, strict_low=True),
                   default=FIGURE2_THRESHOLD, help="loss level for N_max (figure 2)")
    p.add_argument("--dimension-column", metavar="COLUMN",
                   help="measured dimension per run (e.g. id); compared with 4/alpha and "
                   "plotted against it")
    p.add_argument("--loss-exponent", type=p.number(float, 0, strict_low=True), default=2.0,
                   help="p in alpha = 2p/d (2 for cross-entropy, KL and MSE)")
    p.add_out(None, "prefix of the outputs PATH.json and PATH.png (default: FILE without "
            "its suffix, plus .fit and the grouping, e.g. sweep.fit-k)")
    p.add_argument("--quiet", action="store_true",
                   help="print only the paths written (no table)")
    p.set_defaults(func=run)


def _parse_window(text: str) -> str | tuple[float, float]:
    """``--window``: 'circle', 'all' or NMIN:NMAX with 0 < NMIN < NMAX."""
    if text in ("circle", "all"):
        return text
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        low = high = math.nan
    if not 0 < low < high:
        raise argparse.ArgumentTypeError(f"expected 'circle', 'all' or NMIN:NMAX with "
                                         f"0 < NMIN < NMAX; got {text!r}")
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
    window = args.window or ("all" if args.offset else "circle")
    if args.offset:
        fit = fit_offset_power_law(N, L, window=window,
                                   seeds=seeds, groups=groups, huber_delta=args.huber,
                                   n_bootstrap=args.bootstrap, random_state=args.seed)
    else:
        fit = fit_power_law(N, L, window=window, seeds=seeds, groups=groups,
                            n_bootstrap=args.bootstrap, random_state=args.seed)
    result: dict[str, Any] = {"fit": fit, "d_pred": None, "n_max_threshold": None}
    if fit.alpha > 0:
        result["d_pred"] = predicted_dimension(fit, loss_exponent=args.loss_exponent)
        try:
            result["n_max_threshold"] = n_max_at_threshold(N, L, args.threshold, fit=fit)
        except ValueError:
            result["n_max_threshold"] = None  # the fitted floor is above the threshold
    return result


def _default_out(args: argparse.Namespace) -> str:
    """FILE without its suffix, plus .fit and the grouping: differently grouped fits of
    one table do not overwrite each other (sweep.fit-k, sweep.fit-k-offset)."""
    parts = [*args.group_by, *([f"envelope-{args.envelope_by}"] if args.envelope_by else []),
             *(["offset"] if args.offset else [])]
    return f"{Path(args.file).with_suffix('')}.fit" + "".join(f"-{p}" for p in parts)


def _check_runs_unique(table: dict[str, list[str]], keys: list[tuple], args: argparse.Namespace,
                       path: str) -> None:
    """One run per (group, N, seed, architecture): else the table needs a grouping flag."""
    seen: dict[tuple, int] = {}
    for i, key in enumerate(keys):
        run = (key, table[args.n_column][i],
               table[args.seed_column][i] if args.seed_column in table else i,
               table[args.envelope_by][i] if args.envelope_by else None)
        if run in seen:
            other = [c for c in table if c not in (args.n_column, args.loss_column,
                                                   args.seed_column, *args.group_by)]
            raise ValueError(
                f"{path}: rows {seen[run] + 2} and {i + 2} are the same run (N="
                f"{table[args.n_column][i]}, seed={run[2]}); tell them apart with --group-by "
                f"COLUMN (fit each value separately) or --envelope-by COLUMN (the lower "
                f"envelope of architectures); other columns: {', '.join(other) or 'none'}.")
        seen[run] = i


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
    _check_runs_unique(table, keys, args, path)
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

    comparison = None
    if args.dimension_column and len(results) >= 3:
        comparison = compare_alpha_to_dimension([r["fit"] for r in results],
                                                [r["measured_dimension"] for r in results],
                                                loss_exponent=args.loss_exponent)
    if not args.quiet:
        _print_table(results, args)
        _print_comparison(comparison, len(results), args)

    stem = Path(args.out or _default_out(args))
    output = stem.parent / f"{stem.name}.json"
    document = {
        "source": str(path),
        "columns": {"n": args.n_column, "loss": args.loss_column, "seed": args.seed_column,
                    "group_by": args.group_by, "envelope_by": args.envelope_by},
        "fits": [{k: _jsonable(v) for k, v in r.items() if k not in ("rows", "groups")}
                 for r in results],
        "comparison": _jsonable(comparison),
    }
    output.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    plot = stem.parent / f"{stem.name}.png"
    _plot(results, N_all, L_all, plot, Path(path).name, comparison, args.dimension_column or "")
    print(f"written: {output}, {plot}")
    return 0


def _print_comparison(comparison: Any, n_groups: int, args: argparse.Namespace) -> None:
    name = f"{2 * args.loss_exponent:g}/alpha vs {args.dimension_column}"
    if comparison is not None:
        print(f"\n{name}: slope {comparison.slope:.3f} [{comparison.interval[0]:.3f}, "
              f"{comparison.interval[1]:.3f}], intercept {comparison.intercept:.3f}, "
              f"through origin {comparison.slope_through_origin:.3f}, "
              f"r = {comparison.correlation:.3f} ({comparison.n_points} groups)")
    elif args.dimension_column:
        print(f"\n{name}: not fitted, it needs 3 or more groups (got {n_groups}; "
              "use --group-by).")


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


def figure(results: list[dict[str, Any]], N: np.ndarray, L: np.ndarray, title: str,
           comparison: DimensionComparison | None = None, dimension_name: str = "") -> Any:
    """L(N) with every group's fit; beside it, with a comparison, 2p/α against the dimension."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12.5 if comparison else 7.5, 5))
    axes = fig.subplots(1, 2 if comparison else 1, squeeze=False)[0]
    colors = colormaps["viridis"](np.linspace(0, 0.9, len(results)))
    for r, color in zip(results, colors, strict=True):
        plot_fit(axes[0], N[r["rows"]], L[r["rows"]], r["fit"], groups=r["groups"],
                 label=r["label"], color=color)
    axes[0].set_title("L(N), fits over their windows (dotted: N_max)", fontsize=10)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    if comparison is not None:
        usable = [r for r in results if r["d_pred"] is not None]  # alpha > 0
        plot_dimension_comparison(axes[1], [r["d_pred"] for r in usable],
                                  [r["measured_dimension"] for r in usable], comparison,
                                  xlabel=f"measured {dimension_name}",
                                  labels=[r["label"] for r in usable])
        axes[1].set_title("predicted against measured dimension", fontsize=10)
        axes[1].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13),
                       frameon=False)
    fig.suptitle(title)
    return fig


def _plot(results: list[dict[str, Any]], N: np.ndarray, L: np.ndarray, path: Path,
          title: str, comparison: DimensionComparison | None, dimension_name: str) -> None:
    figure(results, N, L, title, comparison, dimension_name).savefig(
        path, dpi=120, bbox_inches="tight")
