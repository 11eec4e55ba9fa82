"""Two training recipes of the same grid side by side: L(N), the circle-rule fit, 4/α and ID.

Reads two sweep CSVs (e.g. Table 1 in ``paper/`` and Table 1 with every learning rate
10x smaller in ``paper-lowlr/``), keeps the k both hold, and prints a markdown table per
k and width (geometric-mean held-out loss over the runs, live final-layer units where
recorded) and per k (fitted window, α, 4/α, TwoNN ID; each recipe fitted on its own by
the report's rule, and the "best of both": at each width the runs of the recipe with the
lower loss, i.e. the lowest loss either recipe reached at that size), then draws L(N) of
both in one figure. Run from the repository root::

    python reports/teacher_student/diagnostics/compare_recipes.py \
        reports/teacher_student/paper reports/teacher_student/paper-lowlr \
        reports/teacher_student/diagnostics/recipes
"""

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from scaling.teacher_student import read_results
from scaling.teacher_student._report import summarize_feature


def by_width(rows, k):
    """{width: (N, geometric-mean loss, live units list)} of unit k."""
    out = {}
    for r in rows:
        if int(r["features"]) == k:
            out.setdefault(int(r["width"]), []).append(r)
    return {w: (int(rs[0]["n_params"]), float(np.exp(np.mean([np.log(float(r["loss"]))
                                                               for r in rs]))),
                [r.get("live_units", "") for r in rs])
            for w, rs in sorted(out.items())}


def best_of(recipes, k):
    """Rows of unit k: at each width, the runs of the recipe with the lower geometric-mean
    loss."""
    curves = {name: by_width(rows, k) for name, rows in recipes.items()}
    rows = []
    for w in sorted(set.intersection(*(set(c) for c in curves.values()))):
        best = min(curves, key=lambda name: curves[name][w][1])
        rows += [r for r in recipes[best] if int(r["features"]) == k and int(r["width"]) == w]
    return rows


def fit(rows):
    """The report's circle-rule fit of one k, or None where it cannot be made."""
    try:
        return summarize_feature(rows, n_bootstrap=1000)
    except ValueError:
        return None


def main(first: Path, second: Path, out: Path) -> None:
    recipes = {p.name: read_results(p / "results.csv") for p in (first, second)}
    common = sorted(set.intersection(*({int(r["features"]) for r in rows}
                                       for rows in recipes.values())))
    if not common:
        raise SystemExit(f"{first} and {second} hold no common number of features k.")
    names = list(recipes)
    fits = {name: {k: fit([r for r in rows if int(r["features"]) == k]) for k in common}
            for name, rows in recipes.items()}
    fits["best of both"] = {k: fit(best_of(recipes, k)) for k in common}
    print(f"| k | width | N | loss {names[0]} | loss {names[1]} | ratio | live units "
          f"{names[1]} |\n|---|---|---|---|---|---|---|")
    for k in common:
        a, b = (by_width(recipes[n], k) for n in names)
        for w in sorted(set(a) & set(b)):
            live = ", ".join(x for x in b[w][2] if x) or "—"
            print(f"| {k} | {w} | {a[w][0]} | {a[w][1]:.3g} | {b[w][1]:.3g} | "
                  f"{b[w][1] / a[w][1]:.2f} | {live} |")
    print("\n| k | recipe | fitted N | α (95 %) | 4/α (95 %) | ID TwoNN |\n"
          "|---|---|---|---|---|---|")
    for k in common:
        for name in fits:
            s = fits[name].get(k)
            if s is None:
                print(f"| {k} | {name} | not fitted | | | |")
                continue
            f, p = s.fit, s.prediction
            pred = "—" if p is None else (f"{p.dimension:.2f} "
                                          f"({p.interval[0]:.2f}–{p.interval[1]:.2f})")
            print(f"| {k} | {name} | {f.n_min:.0f}–{f.n_max:.0f} | {f.alpha:.3f} "
                  f"({f.interval[0]:.3f}–{f.interval[1]:.3f}) | {pred} | "
                  f"{s.id_twonn:.2f} ± {s.id_twonn_std:.2f} |")
    fig = Figure(figsize=(4.2 * len(common), 3.6))
    axes = np.atleast_1d(fig.subplots(1, len(common), squeeze=False)[0])
    for ax, k in zip(axes, common, strict=True):
        for name, style in zip(names, ("o-", "s--"), strict=True):
            curve = by_width(recipes[name], k)
            ax.plot([v[0] for v in curve.values()], [v[1] for v in curve.values()], style,
                    ms=4, label=name)
            s = fits[name].get(k)
            if s is not None:
                n = np.geomspace(s.fit.n_min, s.fit.n_max, 20)
                ax.plot(n, s.fit.predict(n), "k-", lw=0.8, alpha=0.6)
        ax.set(xscale="log", yscale="log", xlabel="parameters N", title=f"k = {k}")
        ax.legend(fontsize=7)
    axes[0].set_ylabel("held-out KL (geometric mean of runs)")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=90)
    print(f"\nfigure: {out.with_suffix('.png')} (thin black lines: each recipe's fit)")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
