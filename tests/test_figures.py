"""What the figures hold: error bars, dodged estimators, shared scales, legends off the data."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from idest.scan import scan_figure  # noqa: E402
from scaling.fit import (  # noqa: E402
    compare_alpha_to_dimension,
    fit_power_law,
    plot_dimension_comparison,
    plot_intervals,
    predicted_dimension,
)

ROOT = Path(__file__).resolve().parents[1]


def _scan_rows(with_intervals: bool = True) -> list[dict]:
    return [{"kind": "hidden_states", "layer": i, "estimator": e, "k": k, "id": 10.0 + i + k / 100,
             "ci_low": 9.0 + i if with_intervals else None,
             "ci_high": 11.0 + i if with_intervals else None}
            for i in range(4) for e, k in (("twonn", 2), ("knn_cdf", 3), ("knn_cdf", 4),
                                           ("mle", 20))]


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _legends_clear_of_data(fig: Figure) -> None:
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None:
            assert not _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))


def test_scan_figure_draws_dodged_intervals_on_a_shared_scale():
    fig = scan_figure(_scan_rows(), title="t")
    left, right = fig.axes
    assert [sum(isinstance(c, ErrorbarContainer) for c in ax.containers) for ax in fig.axes] \
        == [3, 1]
    assert all(c.has_yerr for ax in fig.axes for c in ax.containers)
    assert left.get_legend_handles_labels()[1] == ["TwoNN", "k-NN CDF k=3", "k-NN CDF k=4"]
    xs = [c.lines[0].get_xdata() for c in left.containers]
    assert len({round(float(x[0]), 6) for x in xs}) == 3  # side by side, not on top
    assert max(abs(x[0] - 0) for x in xs) < 0.5  # but still at their layer
    assert left.get_ylim() == right.get_ylim()
    assert left.get_xlabel() == "layer" and "interval" in left.get_ylabel()
    _legends_clear_of_data(fig)


def test_scan_figure_without_intervals_and_positions():
    fig = scan_figure(_scan_rows(with_intervals=False), xlabel="token position")
    assert not any(c.has_yerr for ax in fig.axes for c in ax.containers)
    assert fig.axes[0].get_xlabel() == "token position"


def test_open_ended_intervals_are_marked_and_do_not_stretch_the_axis():
    ax = Figure().subplots()
    bars = plot_intervals(ax, [1, 2, 3], [4.0, 5.0, 6.0], [3.0, 4.0, 5.0],
                          [5.0, np.inf, 140.0])
    assert isinstance(bars, ErrorbarContainer)
    assert ax.get_ylim()[1] < 15  # neither the infinite nor the 140 end rescales it
    triangles = [line for line in ax.get_lines() if line.get_marker() == "^"]
    assert len(triangles) == 1 and list(triangles[0].get_xdata()) == [2.0, 3.0]
    assert sorted(t.get_text() for t in ax.texts) == ["140", "∞"]


def _sweep_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    lines = ["k,seed,n_params,loss,id"]
    for k in (2, 4, 8):
        for n in np.logspace(3, 6, 6):
            for seed in range(3):
                loss = n ** (-4 / k) * np.exp(rng.normal(0, 0.02))
                lines.append(f"{k},{seed},{int(n)},{loss:.6g},{k * 0.9:.3f}")
    path = tmp_path / "sweep.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_idest_fit_plots_the_comparison_with_its_band(tmp_path, capsys):
    from idest.cli import main

    table = _sweep_csv(tmp_path)
    assert main(["fit", str(table), "--group-by", "k", "--dimension-column", "id"]) == 0
    assert (tmp_path / "sweep.fit-k.png").stat().st_size > 10_000
    assert main(["fit", str(table), "--group-by", "k", "--offset", "--quiet"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("written: ")
    assert (tmp_path / "sweep.fit-k-offset.json").exists()  # the first fit is not overwritten

    from scaling.fit._cli import figure

    fits, ids = [], []
    for k in (2, 4, 8):
        N = np.repeat(np.logspace(3, 6, 6), 3)
        fits.append(fit_power_law(N, N ** (-4 / k) * np.exp(
            np.random.default_rng(k).normal(0, 0.02, N.size)), seeds=np.tile([0, 1, 2], 6)))
        ids.append(0.9 * k)
    results = [{"fit": f, "rows": np.ones(1, bool), "groups": None, "label": f"k={k}",
                "d_pred": predicted_dimension(f), "measured_dimension": d}
               for f, k, d in zip(fits, (2, 4, 8), ids, strict=True)]
    comparison = compare_alpha_to_dimension(fits, ids)
    fig = figure(results, np.array([1e3]), np.array([1.0]), "t", comparison, "id")
    _, right = fig.axes
    assert sum(isinstance(c, ErrorbarContainer) for c in right.containers) == 1
    assert len(right.collections) >= 1  # the slope band
    assert right.get_xlabel() == "measured id" and right.get_ylabel() == "4/α"
    _legends_clear_of_data(fig)


def test_no_plotting_code_selects_a_backend():
    """Figures are built as matplotlib.figure.Figure objects: no pyplot, no matplotlib.use."""
    offenders = []
    for path in [*ROOT.glob("idest/**/*.py"), *ROOT.glob("scaling/**/*.py"),
                 *ROOT.glob("scripts/*.py")]:
        source = path.read_text()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names]
                if any(n.startswith("matplotlib.pyplot") for n in names):
                    offenders.append(f"{path.relative_to(ROOT)}: imports pyplot")
        if "matplotlib.use(" in source:
            offenders.append(f"{path.relative_to(ROOT)}: calls matplotlib.use")
    assert not offenders, "\n".join(offenders)


def test_dimension_comparison_with_nothing_fitted_draws_the_diagonal_only():
    """A sweep where no k could be fitted (e.g. too few converged sizes) still gets its
    figure: the identity line, no points, no error (it used to raise on an empty max)."""
    ax = Figure().subplots()
    plot_dimension_comparison(ax, [], [])
    assert len(ax.lines) >= 1 and all(len(c.lines[0].get_xdata()) == 0 for c in ax.containers)
