"""A tiny teacher/student sweep end to end: parallel, resumable, reported."""

import csv
import dataclasses
import math
import subprocess

import pytest

from idest.utils import StoreWarning

pytest.importorskip("torch", reason="the sweep trains torch students")

from scaling.teacher_student._report import (  # noqa: E402
    report_markdown,
    summarize,
    write_report,
)
from scaling.teacher_student._sweep import (  # noqa: E402
    COLUMNS,
    TIMING_COLUMNS,
    SweepConfig,
    format_curve,
    git_commit,
    read_results,
    run_key,
    run_sweep,
)
from scaling.teacher_student._train import Phase, Schedule, get_schedule  # noqa: E402

TINY = Schedule("test-sweep", (Phase(60, 100, 0.01), Phase(10, 400, 0.001)), shortened=True)
CONFIG = SweepConfig(features=(2, 3, 4), widths=(8, 16, 32), depths=(2,), seeds=(0, 1),
                     schedule=TINY, variant="clean", n_eval=1000, n_id=400)


def _table(rows):
    """The rows without timings, sorted by run."""
    return sorted(({k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows),
                  key=run_key)


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "serial.csv"
    return run_sweep(CONFIG, path, n_jobs=1, progress=False)


def test_sweep_writes_every_run_once(serial):
    assert serial.n_previous == 0
    assert sorted(serial.trained) == sorted(CONFIG.runs())
    assert sorted(run_key(r) for r in serial.rows) == sorted(CONFIG.runs())
    assert list(serial.rows[0]) == list(COLUMNS)
    assert {r["schedule"] for r in serial.rows} == {"test-sweep"}
    assert {r["shortened"] for r in serial.rows} == {"True"}
    assert {r["variant"] for r in serial.rows} == {"clean"}


def test_interrupted_sweep_resumes_without_redoing_finished_runs(serial, tmp_path):
    # 5 runs done: part of the first k's unit (e.g. a sweep that later added runs)
    partial = tmp_path / "partial.csv"
    with partial.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(serial.rows[:5])
    finished = {run_key(r) for r in serial.rows[:5]}
    resumed = run_sweep(CONFIG, partial, n_jobs=1, progress=False)
    assert resumed.n_previous == 5
    assert set(resumed.trained) == set(CONFIG.runs()) - finished
    assert len(resumed.trained) == len(CONFIG.runs()) - 5
    assert _table(resumed.rows) == _table(serial.rows)
    again = run_sweep(CONFIG, partial, n_jobs=1, progress=False)
    assert again.trained == () and len(again.rows) == len(CONFIG.runs())


def test_a_last_line_cut_by_a_crash_is_dropped_and_its_run_retrained(serial, tmp_path):
    cut = tmp_path / "cut.csv"
    cut.write_bytes(serial.path.read_bytes()[:-40])
    with pytest.warns(StoreWarning, match="cut short"):
        assert len(read_results(cut)) == len(serial.rows) - 1
    cut.write_bytes(serial.path.read_bytes()[:-40])
    with pytest.warns(StoreWarning, match="cut short"):
        resumed = run_sweep(CONFIG, cut, n_jobs=1, progress=False)
    assert resumed.trained == (run_key(serial.rows[-1]),)
    assert _table(resumed.rows) == _table(serial.rows)
    assert cut.read_bytes().endswith(b"\n")


def test_a_csv_from_before_the_live_units_column_is_upgraded_and_resumed(serial, tmp_path):
    """Rows trained without ``live_units`` keep their values and get it empty; new rows
    record it; a header that is not COLUMNS less added columns is still refused."""
    old = [c for c in COLUMNS if c != "live_units"]
    path = tmp_path / "old.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(serial.rows[:5])
    with pytest.warns(UserWarning, match=r"live_units.*empty in its 5 row"):
        resumed = run_sweep(CONFIG, path, n_jobs=1, progress=False)
    assert resumed.n_previous == 5 and len(resumed.trained) == len(CONFIG.runs()) - 5
    assert list(resumed.rows[0]) == list(COLUMNS)
    by_key = {run_key(r): r for r in resumed.rows}
    for row in serial.rows:
        got = by_key[run_key(row)]
        if row in serial.rows[:5]:
            assert got["live_units"] == ""
            assert {c: got[c] for c in old} == {c: row[c] for c in old}
        else:
            assert got["live_units"] == row["live_units"]
    assert 0 < int(serial.rows[0]["live_units"]) <= int(serial.rows[0]["width"])
    other = tmp_path / "other.csv"
    other.write_text(",".join(reversed(old)) + "\n")
    with pytest.raises(ValueError, match="has the columns"):
        run_sweep(CONFIG, other, n_jobs=1, progress=False)


def _old_csv(path, rows):
    """``rows`` written as a CSV of the version before ``live_units``."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in COLUMNS if c != "live_units"],
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_an_old_csv_is_upgraded_only_after_its_checks(serial, tmp_path):
    """A cut last row is dropped with the store's warning (and retrained); a malformed
    row and a CSV of another configuration are refused and leave the file as it was."""
    cut = _old_csv(tmp_path / "cut.csv", serial.rows[:3])
    cut.write_bytes(cut.read_bytes()[:-30])
    config = dataclasses.replace(CONFIG, features=(2,))
    with pytest.warns(UserWarning) as caught:
        resumed = run_sweep(config, cut, n_jobs=1, progress=False)
    assert [type(w.message) for w in caught] == [StoreWarning, UserWarning]
    assert "cut short" in str(caught[0].message) and "live_units" in str(caught[1].message)
    assert resumed.n_previous == 2 and run_key(serial.rows[2]) in resumed.trained
    assert [{**r, "live_units": ""} for r in _table(resumed.rows)] == \
        [{**r, "live_units": ""} for r in _table(r for r in serial.rows if r["features"] == "2")]
    assert [r["live_units"] != "" for r in _table(resumed.rows)] == \
        [run_key(r) in resumed.trained for r in _table(resumed.rows)]
    bad = _old_csv(tmp_path / "bad.csv", serial.rows[:3])
    lines = bad.read_text().splitlines(keepends=True)
    bad.write_text(lines[0] + "2,8,2,0,x\n" + "".join(lines[1:]))
    before = bad.read_bytes()
    with pytest.raises(ValueError, match="field"):
        run_sweep(config, bad, n_jobs=1, progress=False)
    assert bad.read_bytes() == before
    other = _old_csv(tmp_path / "other.csv", serial.rows[:3])
    before = other.read_bytes()
    with pytest.raises(ValueError, match="variant"):
        run_sweep(dataclasses.replace(config, variant="authors"), other, n_jobs=1,
                  progress=False)
    assert other.read_bytes() == before


@pytest.mark.slow
def test_parallel_sweep_gives_the_serial_table(serial, tmp_path):
    """Two worker processes, one k each, reproduce the serial rows exactly."""
    config = dataclasses.replace(CONFIG, features=(2, 3), seeds=(1,))
    parallel = run_sweep(config, tmp_path / "parallel.csv", n_jobs=2, progress=False)
    wanted = set(config.runs())
    assert _table(parallel.rows) == _table(r for r in serial.rows if run_key(r) in wanted)


LONGER_SAME_NAME = Schedule("test-sweep", (*TINY.phases, Phase(5, 400, 0.001)), shortened=True)


@pytest.mark.parametrize("change", [{"variant": "authors"}, {"bias_std": 0.25},
                                    {"schedule": LONGER_SAME_NAME}],
                         ids=["variant", "bias_std", "schedule of the same name"])
def test_resuming_with_another_configuration_is_refused(serial, change):
    other = dataclasses.replace(CONFIG, **change)
    column = {"schedule": "steps"}.get(next(iter(change)), next(iter(change)))
    with pytest.raises(ValueError, match=column):
        run_sweep(other, serial.path, n_jobs=1, progress=False)


@pytest.mark.slow
def test_report_has_the_table_the_regressions_and_the_figures(serial, tmp_path):
    summary = summarize(read_results(serial.path), n_bootstrap=50)
    assert [s.features for s in summary.per_feature] == [2, 3, 4]
    for s in summary.per_feature:
        assert s.n_runs == 6 and s.id_twonn > 0
    path = write_report(serial.path, tmp_path, command="pytest", n_bootstrap=50)
    text = path.read_text()
    assert "| 4/α against measured ID |" in text and "Target" in text
    assert "SHORTENED" in text and "test-sweep" in text
    assert "## Convergence" in text and "## Live units of the final hidden layer" in text
    for name in ("fig5_loss_vs_n.png", "fig6_4alpha_vs_dimension.png", "fig2_nmax_vs_id.png",
                 "fig3_id_vs_n.png", "fig_loss_vs_steps.png"):
        assert (tmp_path / name).stat().st_size > 1000
        assert name in text


def test_bad_sweep_configuration_raises():
    with pytest.raises(ValueError, match="features"):
        SweepConfig(features=(2, 2))
    with pytest.raises(ValueError, match="get_schedule: schedule must be one of"):
        SweepConfig(schedule="forever")


def test_only_converged_students_are_fitted_and_the_others_are_named(serial, tmp_path):
    rows = [dict(r) for r in read_results(serial.path)]
    for r in rows:  # the rule decides from the curve: make width 32 still falling by 20 %
        T = int(r["steps"])
        start = T - -(-T // 10)
        falling = ((r["features"], r["width"], r["seed"]) == ("2", "32", "1")
                   or (r["features"], r["width"]) == ("4", "16"))
        r["loss_curve"] = format_curve([0, start, T], [1.0, 1.25 * float(r["loss"]) if falling
                                                       else float(r["loss"]), float(r["loss"])])
    summary = summarize(rows, n_bootstrap=20)
    by_k = {s.features: s for s in summary.per_feature}
    assert sorted(by_k) == [2, 3]
    assert summary.not_fitted == ((4, "2 of 3 sizes converged, the fit needs 3"),)
    assert by_k[2].n_runs == 6 and by_k[2].n_fitted == 5 and by_k[2].unconverged_widths == (32,)
    assert by_k[3].n_fitted == 6 and by_k[3].unconverged_widths == ()
    text = report_markdown(rows, summary, figures={}, title="t", command="pytest")
    assert "| 2 | 32 | 1 | 20.0% |" in text and "| 4 | 16 | 2 | 20.0%, 20.0% |" in text
    fitted_2 = by_k[2].fit.n_runs  # the converged runs inside the circle window
    assert "k = 4 is not fitted" in text and f"| 2 | 6 (5 / {fitted_2}) |" in text


def test_each_finished_unit_can_be_committed_to_git(tmp_path, monkeypatch):
    for name in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(name, "pytest")
    for name in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(name, "pytest@example.invalid")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    config = dataclasses.replace(
        CONFIG, features=(2, 3), widths=(8, 12, 16), seeds=(0,), n_id=0,
        schedule=Schedule("test-commit", (Phase(5, 50, 0.01),), shortened=True))
    run_sweep(config, tmp_path / "results.csv", n_jobs=1, progress=False, on_unit=git_commit)
    log = subprocess.run(["git", "-C", str(tmp_path), "log", "--format=%s"], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    assert log == ["teacher/student sweep: k=3 finished (3 runs, schedule test-commit)",
                   "teacher/student sweep: k=2 finished (3 runs, schedule test-commit)"]
    shown = subprocess.run(["git", "-C", str(tmp_path), "show", "HEAD:results.csv"],
                           check=True, capture_output=True, text=True).stdout
    assert shown == (tmp_path / "results.csv").read_text()


def test_commit_is_refused_before_training_where_it_could_not_commit(tmp_path, monkeypatch):
    from scaling.teacher_student import check_committable, reproduce

    for name in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(name, "pytest")
    for name in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(name, "pytest@example.invalid")
    outside = tmp_path / "plain"
    outside.mkdir()
    with pytest.raises(ValueError, match="not inside a git work tree"):
        reproduce(CONFIG, outside / "out", commit=True, progress=False)
    assert not (outside / "out").exists()  # refused before anything was trained
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text("idest-output/\n")
    with pytest.raises(ValueError, match="ignored by git"):
        check_committable(repo / "idest-output" / "ts" / "results.csv")
    check_committable(repo / "reports" / "ts" / "results.csv")  # fine: nothing raised


def test_the_bar_counts_student_steps_and_runs(tmp_path, capsys):
    """The sweep's bar moves with training steps, not only when a unit finishes."""
    config = dataclasses.replace(CONFIG, features=(2,), seeds=(0,))
    n_runs = len(config.runs())
    steps = get_schedule(config.schedule).steps
    run_sweep(config, tmp_path / "bar.csv", n_jobs=1, progress=True)
    err = capsys.readouterr().err
    assert f"{n_runs * steps}/{n_runs * steps}" in err and f"{n_runs}/{n_runs} runs" in err
    assert "student-step" in err


def test_a_k_whose_exponent_interval_reaches_zero_is_left_out_of_the_regressions(serial):
    """A flat L(N) (k = 2 here) leaves 4/α open above: a bound, which the regressions leave
    out (and the report names); the other k, exact power laws with 4/α = ID, give slope 1."""
    rows = [dict(r) for r in read_results(serial.path)]
    rows += [{**r, "features": "5"} for r in rows if r["features"] == "4"]
    for r in rows:
        k, n, seed = int(r["features"]), float(r["n_params"]), int(r["seed"])
        jitter = 1.3 if (seed + int(r["width"]) // 16) % 2 else 0.7
        loss = 1e-3 * jitter if k == 2 else 0.5 * n ** (-4 / k) * (1 + 0.01 * seed)
        r.update(loss=repr(loss), id_twonn=str(k),
                 loss_curve=format_curve([0, int(r["steps"])], [1.0, loss]))
    summary = summarize(rows, n_bootstrap=50)
    by_k = {s.features: s for s in summary.per_feature}
    assert sorted(by_k) == [2, 3, 4, 5]
    assert not by_k[2].measured_exponent and by_k[2].fit.interval[0] <= 0
    assert all(by_k[k].measured_exponent for k in (3, 4, 5))
    assert summary.versus_id.n_points == 3
    assert summary.versus_id.slope == pytest.approx(1.0, abs=0.02)
    text = report_markdown(rows, summary, figures={}, title="t", command="pytest")
    assert "Left out of the regressions: k = 2 (α's interval reaches 0" in text
    # these curves lack the convergence window's first step: the rule cannot judge them,
    # so the target is not declared met however good the regression
    assert summary.unjudged == 18 and not summary.target_reached  # k = 3, 4, 5: 6 runs each
    assert "the convergence of 18 run(s) of the regressed k cannot be judged" in text
    for r in rows:
        T = int(r["steps"])
        loss = float(r["loss"])
        r["loss_curve"] = format_curve([0, T - -(-T // 10), T], [1.0, loss, loss])
    judged = summarize(rows, n_bootstrap=50)
    assert judged.unjudged == 0 and judged.target_reached


def test_runs_without_an_id_are_left_out_of_the_mean_and_a_k_without_any_of_the_regressions(
        serial):
    rows = [dict(r) for r in read_results(serial.path)]
    rows += [{**r, "features": "5"} for r in rows if r["features"] == "4"]
    for r in rows:
        k, n = int(r["features"]), float(r["n_params"])
        T = int(r["steps"])
        loss = 0.5 * n ** (-4 / k)
        no_id = k == 5 or (k == 3 and r["width"] == "8" and r["seed"] == "0")
        r.update(loss=repr(loss), id_twonn="nan" if no_id else str(k),
                 loss_curve=format_curve([0, T - -(-T // 10), T], [1.0, loss, loss]))
    summary = summarize(rows, n_bootstrap=20)
    by_k = {s.features: s for s in summary.per_feature}
    assert by_k[3].n_no_id == 1 and by_k[3].id_twonn == 3.0 and by_k[3].regressed
    assert math.isnan(by_k[5].id_twonn) and by_k[5].measured_exponent and not by_k[5].regressed
    assert summary.versus_id.n_points == 3  # k = 2, 3, 4
    text = report_markdown(rows, summary, figures={}, title="t", command="pytest")
    assert "k = 3: 1 fitted run(s) without an ID" in text
    assert "Left out of the regressions: k = 5 (no run in the fitted window has a measured ID)" \
        in text


def test_the_report_names_an_interval_that_is_not_the_bootstrap_over_runs(serial):
    rows = [dict(r) for r in read_results(serial.path) if r["seed"] == "0"]  # one run per size
    for r in rows:
        T, loss = int(r["steps"]), 0.5 * float(r["n_params"]) ** -0.8 * (1.01 if r["width"] ==
                                                                           "16" else 1.0)
        r.update(loss=repr(loss), loss_curve=format_curve([0, T - -(-T // 10), T],
                                                          [1.0, loss, loss]))
    summary = summarize(rows, n_bootstrap=20)
    assert not summary.per_feature[0].fit.interval_method.startswith("bootstrap")
    text = report_markdown(rows, summary, figures={}, title="t", command="pytest")
    assert "k = 2: α's interval is not the bootstrap over runs" in text


@pytest.mark.parametrize(("name", "origin"), [
    ("paper-random", "the paper schedule (Table 1)"),
    ("paper-random-long", "LONGER than the paper"),
    ("paper-random-lowlr", "NOT the paper's learning rates"),
    ("cpu-short16-random", "SHORTENED for CPU"),
])
def test_the_report_says_how_a_schedule_relates_to_table_1(name, origin):
    from scaling.teacher_student._report import schedule_origin

    text = schedule_origin(name, get_schedule(name).shortened)
    assert text.startswith(origin)
    assert all(f"lr {p.lr:g}" in text for p in get_schedule(name).phases)


def test_the_low_learning_rate_schedule_is_table_1_with_rates_divided_by_10():
    table1, low = get_schedule("paper-random"), get_schedule("paper-random-lowlr")
    assert low.steps == table1.steps and low.samples == table1.samples
    assert [p.lr for p in low.phases] == pytest.approx([p.lr / 10 for p in table1.phases])
    assert not low.shortened
