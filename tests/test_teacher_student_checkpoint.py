"""Mid-training checkpoints: an interrupted unit resumes to the numbers of an uninterrupted one."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch")

from scaling.teacher_student import (  # noqa: E402
    SweepConfig,
    checkpoint_path,
    random_teacher,
    read_results,
    run_sweep,
    train_students,
)
from scaling.teacher_student._sweep import TIMING_COLUMNS, run_key  # noqa: E402
from scaling.teacher_student._train import Phase, Schedule  # noqa: E402

TEACHER = random_teacher(3, variant="authors", random_state=0)
STUDENTS = [(6, 2, 0), (9, 2, 0), (6, 2, 1)]
#: The phase boundary (step 60) comes before the first on_steps report (step 100), so an
#: interruption there falls in the second phase, with curve points on both sides.
SCHEDULE = Schedule("test-checkpoint", (Phase(60, 100, 0.01), Phase(80, 200, 0.001)),
                    shortened=True)
COMMON = {"seed": 1, "schedule": SCHEDULE, "dtype": "float64", "n_eval": 300, "n_id": 300,
          "n_curve": 8, "progress": False}


@pytest.fixture(autouse=True)
def _one_thread():
    from idest.utils import limit_threads

    with limit_threads(1):
        yield


def _numbers(results) -> np.ndarray:
    """Every number a result holds but its timings, as one float64 array."""
    return np.array([[r.loss, r.cross_entropy, r.teacher_entropy, r.id_twonn, r.id_mle,
                      r.id_points, *r.curve_steps, *r.curve_losses] for r in results])


def _signal_at(step: int, signum: int = signal.SIGINT):
    """An ``on_steps`` callback sending ``signum`` to this process after ``step`` steps."""
    done = [0]

    def on_steps(n: int) -> None:
        done[0] += n
        if done[0] == step:
            os.kill(os.getpid(), signum)

    return on_steps


def _saved_step(path) -> int:
    return json.loads(torch.load(path, weights_only=True)["meta"])["step"]


@pytest.mark.parametrize("engine", ["batched", "lockstep"])
def test_an_interrupted_training_resumes_to_the_uninterrupted_numbers_bit_for_bit(
        engine, tmp_path):
    reference = train_students(TEACHER, STUDENTS, engine=engine, **COMMON)
    path = tmp_path / "unit.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_students(TEACHER, STUDENTS, engine=engine, checkpoint=path,
                       on_steps=_signal_at(100), **COMMON)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    assert _saved_step(path) == 100  # saved at the step the signal arrived, not at the end
    resumed = train_students(TEACHER, STUDENTS, engine=engine, checkpoint=path, **COMMON)
    np.testing.assert_array_equal(_numbers(resumed), _numbers(reference))
    assert not np.isnan(_numbers(reference)).any()
    assert not path.exists()  # removed once the results are returned
    assert resumed[0].seconds > 0 and resumed[0].cpu_seconds > 0


def test_periodic_checkpoints_let_a_crashed_training_resume(tmp_path):
    """checkpoint_every=0 saves after every step: a crash at step 100 (inside the step's
    report, before its checkpoint) resumes from step 99 and still ends bit for bit equal."""
    reference = train_students(TEACHER, STUDENTS, **COMMON)
    path = tmp_path / "unit.ckpt"

    def crash(n: int) -> None:
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        train_students(TEACHER, STUDENTS, checkpoint=path, checkpoint_every=0,
                       on_steps=crash, **COMMON)
    assert _saved_step(path) == 99
    reported = []
    resumed = train_students(TEACHER, STUDENTS, checkpoint=path, on_steps=reported.append,
                             **COMMON)
    np.testing.assert_array_equal(_numbers(resumed), _numbers(reference))
    assert sum(reported) == SCHEDULE.steps - 99  # only the steps this call took


@pytest.mark.parametrize("change", [{"schedule": Schedule("test-checkpoint", (
    Phase(60, 100, 0.01), Phase(80, 200, 0.002)), shortened=True)}, {"dtype": "float32"},
    {"students": STUDENTS[:2]}, {"teacher": random_teacher(4, random_state=0)},
    {"n_id": 200}, {"engine": "lockstep"},
    {"schedule": Schedule("test-checkpoint", SCHEDULE.phases[:1], shortened=True)}])
def test_a_checkpoint_of_another_configuration_is_refused(change, tmp_path):
    path = tmp_path / "unit.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_students(TEACHER, STUDENTS, checkpoint=path, on_steps=_signal_at(100), **COMMON)
    saved = path.read_bytes()
    args = {"teacher": TEACHER, "students": STUDENTS, **COMMON, **change}
    with pytest.raises(ValueError, match="written by another training .*delete the file"):
        train_students(args.pop("teacher"), args.pop("students"), checkpoint=path, **args)
    assert path.read_bytes() == saved  # untouched


#: SCHEDULE, then one more phase.
LONGER = Schedule("test-checkpoint-longer", (*SCHEDULE.phases, Phase(90, 200, 0.0005)),
                  shortened=True)


def test_a_finished_training_continues_into_a_longer_schedule_bit_for_bit(tmp_path):
    """The finished state of SCHEDULE goes on under LONGER (SCHEDULE's phases, then one
    more) to the numbers of LONGER trained from step 0; its curve keeps SCHEDULE's points
    and records LONGER's after them, also across an interruption of the continuation."""
    path = tmp_path / "unit.ckpt"
    short = train_students(TEACHER, STUDENTS, checkpoint=path, keep_checkpoint=True, **COMMON)
    assert _saved_step(path) == SCHEDULE.steps
    longer = {**COMMON, "schedule": LONGER}
    reference = train_students(TEACHER, STUDENTS, **longer)
    with pytest.raises(KeyboardInterrupt):  # at step 200, inside the added phase
        train_students(TEACHER, STUDENTS, checkpoint=path, on_steps=_signal_at(60), **longer)
    assert _saved_step(path) == 200
    continued = train_students(TEACHER, STUDENTS, checkpoint=path, **longer)
    for c, r, s in zip(continued, reference, short, strict=True):
        assert (c.loss, c.cross_entropy, c.id_twonn, c.id_mle) == \
            (r.loss, r.cross_entropy, r.id_twonn, r.id_mle)
        assert c.curve_steps == s.curve_steps + tuple(x for x in r.curve_steps
                                                      if x > SCHEDULE.steps)
        assert c.curve_losses[:len(s.curve_losses)] == s.curve_losses
        at = dict(zip(r.curve_steps, r.curve_losses, strict=True))  # same trajectory: same losses
        assert all(at[x] == v for x, v in zip(c.curve_steps, c.curve_losses, strict=True)
                   if x in at)
        assert c.curve_window_start == r.curve_window_start > SCHEDULE.steps
        assert c.curve_window_start in c.curve_steps and c.steps == LONGER.steps
    assert not path.exists()


def test_bad_checkpoint_interval_raises(tmp_path):
    with pytest.raises(ValueError, match="checkpoint_every must be a number of seconds"):
        train_students(TEACHER, STUDENTS, checkpoint=tmp_path / "c", checkpoint_every=-1,
                       **COMMON)


@pytest.mark.slow
def test_sigterm_checkpoints_then_ends_the_process(tmp_path):
    """The default action of SIGTERM still happens (the process ends with it), after the
    checkpoint; resuming it in another process gives the uninterrupted numbers."""
    path = tmp_path / "unit.ckpt"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_teacher_student_checkpoint import COMMON, STUDENTS, TEACHER, _signal_at
        from scaling.teacher_student import train_students
        import signal
        train_students(TEACHER, STUDENTS, checkpoint={str(path)!r},
                       on_steps=_signal_at(100, signal.SIGTERM), **COMMON)
        print("not reached")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "not reached" not in proc.stdout
    assert _saved_step(path) == 100
    reference = train_students(TEACHER, STUDENTS, **COMMON)
    resumed = train_students(TEACHER, STUDENTS, checkpoint=path, **COMMON)
    np.testing.assert_array_equal(_numbers(resumed), _numbers(reference))


SWEEP = SweepConfig(features=(2, 3), widths=(8, 16), depths=(2,), seeds=(0,),
                    schedule=SCHEDULE, variant="clean", n_eval=300, n_id=300)


def _table(rows):
    return sorted(({k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows),
                  key=run_key)


def test_a_sweep_unit_cut_off_part_way_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    import scaling.teacher_student._sweep as sweep

    reference = run_sweep(SWEEP, tmp_path / "reference.csv", n_jobs=1, progress=False)
    path = tmp_path / "results.csv"
    train = sweep.train_students

    def interrupted(teacher, students, **kwargs):  # SIGINT at step 100 of unit k = 3
        if teacher.n_features == 3:
            kwargs["on_steps"] = _signal_at(100)
        return train(teacher, students, **kwargs)

    monkeypatch.setattr(sweep, "train_students", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SWEEP, path, n_jobs=1, progress=False)
    monkeypatch.undo()
    assert {r["features"] for r in read_results(path)} == {"2"}
    assert _saved_step(checkpoint_path(path, 3)) == 100
    other = SweepConfig(**{**SWEEP.__dict__, "features": (3,), "widths": (8, 12)})
    with pytest.raises(ValueError, match="written by another training"):
        run_sweep(other, path, n_jobs=1, progress=False)
    resumed = run_sweep(SWEEP, path, n_jobs=1, progress=False)
    assert sorted(resumed.trained) == [(3, 8, 2, 0), (3, 16, 2, 0)]
    assert _table(resumed.rows) == _table(reference.rows)
    assert not checkpoint_path(path, 3).exists()
    assert _saved_step(checkpoint_path(path, 3, final=True)) == SCHEDULE.steps  # kept


def test_a_unit_trained_but_not_yet_stored_keeps_its_checkpoint(tmp_path, monkeypatch):
    """A sweep stopped after a unit's training returned but before its rows reached the CSV
    loses nothing: the checkpoint (the finished state) stays until the rows are stored, and
    the next call only evaluates it."""
    from idest.utils import RecordStore

    reference = run_sweep(SWEEP, tmp_path / "reference.csv", n_jobs=1, progress=False)
    path = tmp_path / "results.csv"
    append = RecordStore.append

    def stopped(self, rows, **kwargs):  # Ctrl-C as unit k = 2's rows are about to be written
        raise KeyboardInterrupt

    monkeypatch.setattr(RecordStore, "append", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SWEEP, path, n_jobs=1, progress=False)
    monkeypatch.setattr(RecordStore, "append", append)
    assert read_results(path) == []
    assert _saved_step(checkpoint_path(path, 2)) == SCHEDULE.steps  # the finished state
    resumed = run_sweep(SWEEP, path, n_jobs=1, progress=False)
    assert _table(resumed.rows) == _table(reference.rows)
    assert not any(checkpoint_path(path, k).exists() for k in (2, 3))  # kept as final:
    assert all(checkpoint_path(path, k, final=True).exists() for k in (2, 3))


def test_a_unit_stored_before_its_state_was_kept_gets_it_kept_by_the_next_call(
        tmp_path, monkeypatch):
    """Stopped between storing a unit's rows and keeping its checkpoint as the final state:
    the next call (which has nothing to train) keeps it, so a longer schedule can still
    continue that unit."""
    from scaling.teacher_student import _sweep as sweep

    path = tmp_path / "results.csv"
    keep = sweep._keep_final_state

    def stopped(*args):  # Ctrl-C right after the first unit's rows reached the CSV
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "_keep_final_state", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(SWEEP, path, n_jobs=1, progress=False)
    monkeypatch.setattr(sweep, "_keep_final_state", keep)
    stored = {int(r["features"]) for r in read_results(path)}
    assert len(stored) == 1 and checkpoint_path(path, *stored).exists()
    run_sweep(SWEEP, path, n_jobs=1, progress=False)
    assert not any(checkpoint_path(path, k).exists() for k in (2, 3))
    assert all(_saved_step(checkpoint_path(path, k, final=True)) == SCHEDULE.steps
               for k in (2, 3))


def test_a_worker_that_does_not_see_the_folder_trains_without_checkpoints(tmp_path):
    from scaling.teacher_student._sweep import _train_unit

    config = SweepConfig(**{**SWEEP.__dict__, "features": (2,), "widths": (8,)})
    elsewhere = tmp_path / "not-shared" / "results.k2.ckpt"
    with pytest.warns(UserWarning, match="does not see .*not-shared.*share that folder"):
        rows = _train_unit(config, 2, [(8, 2, 0)], checkpoint=elsewhere)
    assert len(rows) == 1 and not elsewhere.parent.exists()


def test_a_sweep_with_a_longer_schedule_continues_from_the_finished_states(tmp_path):
    """A sweep of LONGER given the CSV of a finished SCHEDULE sweep trains only the added
    phase (its students start from that sweep's final states) and gives the table of
    LONGER from step 0, timings and the curve's recorded steps aside."""
    config = SweepConfig(**{**SWEEP.__dict__, "schedule": LONGER})
    reference = run_sweep(config, tmp_path / "reference.csv", n_jobs=1, progress=False)
    short = tmp_path / "short" / "results.csv"
    run_sweep(SWEEP, short, n_jobs=1, progress=False)
    path = tmp_path / "long" / "results.csv"
    with pytest.raises(ValueError, match="holds no finished state of k = \\[2, 3\\]"):
        run_sweep(config, path, n_jobs=1, progress=False, continue_from=tmp_path / "x.csv")
    checkpoint_path(short, 3, final=True).unlink()  # k = 3 then trains from step 0
    reported = []
    with pytest.warns(UserWarning, match="no finished state of k=3"):
        continued = run_sweep(config, path, n_jobs=1, progress=False, continue_from=short,
                              on_unit=lambda p, rows: reported.append(rows[0]["features"]))
    assert reported == ["2", "3"]

    def numbers(rows):
        return [{c: v for c, v in r.items() if c != "loss_curve"} for r in _table(rows)]

    assert numbers(continued.rows) == numbers(reference.rows)
    curves = {run_key(r): r["loss_curve"] for r in reference.rows}
    for r in continued.rows:  # k = 2 kept SCHEDULE's recorded steps, k = 3 is LONGER's own
        assert (r["loss_curve"] == curves[run_key(r)]) == (r["features"] == "3")


@pytest.mark.slow
def test_sigterm_to_a_parallel_sweep_lets_its_workers_checkpoint(tmp_path):
    """The sweep's process gets SIGTERM while two workers train: it stops them, they write
    their checkpoints, and a later call finishes both units with the uninterrupted table."""
    long = Schedule("test-checkpoint-long", (Phase(6000, 100, 0.01),), shortened=True)
    config = SweepConfig(**{**SWEEP.__dict__, "schedule": long, "n_id": 0})
    path = tmp_path / "results.csv"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_teacher_student_checkpoint import SWEEP, Phase, Schedule, SweepConfig
        from scaling.teacher_student import run_sweep
        long = Schedule("test-checkpoint-long", (Phase(6000, 100, 0.01),), shortened=True)
        config = SweepConfig(**{{**SWEEP.__dict__, "schedule": long, "n_id": 0}})
        run_sweep(config, {str(path)!r}, n_jobs=2, progress=False, checkpoint_every=0.2)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    files = [checkpoint_path(path, k) for k in (2, 3)]
    deadline = time.monotonic() + 120
    while not all(f.exists() for f in files) and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, stderr
    print(f"stopped in {time.monotonic() - started:.1f} s")
    steps = [_saved_step(f) for f in files]
    assert all(0 < s < long.steps for s in steps), steps
    assert read_results(path) == []
    t = time.monotonic()
    resumed = run_sweep(config, path, n_jobs=1, progress=False)
    print(f"steps saved {steps}, resumed in {time.monotonic() - t:.1f} s")
    reference = run_sweep(config, tmp_path / "reference.csv", n_jobs=1, progress=False)
    assert _table(resumed.rows) == _table(reference.rows)


def test_the_command_line_continues_a_finished_run_into_a_longer_schedule(tmp_path, monkeypatch,
                                                                          capsys):
    """``idest reproduce --continue-from``: a 'smoke' run's finished states go on under a
    schedule that begins with smoke's phases; an unknown folder is a clear error."""
    from idest.cli import main
    from scaling.teacher_student._train import SCHEDULES

    smoke = SCHEDULES["smoke"]
    longer = Schedule("smoke-longer", (*smoke.phases, Phase(60, 200, 0.0005)), shortened=True)
    monkeypatch.setitem(SCHEDULES, longer.name, longer)
    common = ["reproduce", "--features", "2", "3", "--n-widths", "2", "--seeds", "0",
              "--jobs", "1", "--quiet"]
    short, long = tmp_path / "short", tmp_path / "long"
    assert main([*common, "--schedule", "smoke", "--out", str(short)]) == 0
    assert main([*common, "--schedule", longer.name, "--out", str(long), "--continue-from",
                 str(tmp_path / "nothing")]) == 2
    assert "holds no finished state of k = [2, 3]" in capsys.readouterr().err
    assert main([*common, "--schedule", longer.name, "--out", str(long), "--continue-from",
                 str(short)]) == 0
    rows = read_results(long / "results.csv")
    assert len(rows) == 4 and {r["steps"] for r in rows} == {str(longer.steps)}
    before = {run_key(r): r["loss_curve"] for r in read_results(short / "results.csv")}
    for r in rows:  # each curve starts with the finished run's whole curve
        assert r["loss_curve"].startswith(before[run_key(r)] + " ")
    assert (long / "README.md").exists()


def _rewrite_meta(path, change) -> None:
    """Apply ``change`` to the JSON progress of the checkpoint at ``path``."""
    saved = torch.load(path, weights_only=True)
    meta = json.loads(saved["meta"])
    change(meta)
    saved["meta"] = json.dumps(meta)
    torch.save(saved, path)


def _as_first_layout(meta) -> None:
    """A file of layout 1: its teacher fingerprint was a hash of bit-exact float64 outputs."""
    meta["key"]["format"] = 1
    meta["key"]["teacher_outputs"] = "0" * 64


def test_checkpoints_of_an_earlier_layout_are_refused_with_the_way_out(tmp_path):
    """Layout 1 keys hashed the teacher's outputs bit for bit: a file of it can be neither
    checked nor resumed, by a training or by a sweep continuing from it."""
    path = tmp_path / "unit.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_students(TEACHER, STUDENTS, checkpoint=path, on_steps=_signal_at(100), **COMMON)
    _rewrite_meta(path, _as_first_layout)
    with pytest.raises(ValueError, match=r"format: 1 there, 2 here \(an older layout.*"
                                         r"delete the file to start this one from step 0"):
        train_students(TEACHER, STUDENTS, checkpoint=path, **COMMON)
    short = tmp_path / "short" / "results.csv"
    run_sweep(SWEEP, short, n_jobs=1, progress=False)
    _rewrite_meta(checkpoint_path(short, 2, final=True), _as_first_layout)
    longer = SweepConfig(**{**SWEEP.__dict__, "schedule": LONGER})
    with pytest.raises(ValueError, match=r"k=2 cannot continue from .*: format: 1 there"):
        run_sweep(longer, tmp_path / "long" / "results.csv", n_jobs=1, progress=False,
                  continue_from=short)


def test_the_teacher_fingerprint_does_not_move_with_the_blas_threads():
    """A sweep worker (one BLAS thread) and its parent (two) must write and read one key:
    float64 products split over two threads round some outputs differently."""
    from threadpoolctl import threadpool_limits

    from scaling.teacher_student._checkpoint import teacher_fingerprint

    teachers = [random_teacher(k, variant="clean") for k in range(2, 8)]
    with threadpool_limits(1):
        one = [teacher_fingerprint(t) for t in teachers]
    with threadpool_limits(2):
        two = [teacher_fingerprint(t) for t in teachers]
    assert one == two and len(set(one)) == len(teachers)


def test_a_sweep_refuses_to_continue_from_another_configuration(tmp_path):
    """continue_from is checked before anything is copied or trained: another stream, or a
    longer schedule continued into a shorter one, is named with the file it came from."""
    short = tmp_path / "short" / "results.csv"
    run_sweep(SWEEP, short, n_jobs=1, progress=False)
    path = tmp_path / "other" / "results.csv"
    other = SweepConfig(**{**SWEEP.__dict__, "schedule": LONGER, "stream_seed": 1})
    with pytest.raises(ValueError, match=r"k=2 cannot continue from .*results\.k2\.final\.ckpt: "
                                         r"seed: 0 there, 1 here"):
        run_sweep(other, path, n_jobs=1, progress=False, continue_from=short)
    assert not any(checkpoint_path(path, k).exists() for k in (2, 3))  # nothing copied
    longer = tmp_path / "longer" / "results.csv"
    run_sweep(SweepConfig(**{**SWEEP.__dict__, "schedule": LONGER}), longer, n_jobs=1,
              progress=False, continue_from=short)
    with pytest.raises(ValueError, match="cannot continue from .*: schedule: "):
        run_sweep(SWEEP, tmp_path / "shorter" / "results.csv", n_jobs=1, progress=False,
                  continue_from=longer)


def test_a_unit_trained_in_parts_keeps_the_final_state_of_its_first_part(tmp_path):
    """Growing a grid (more runs per width into the same CSV) trains a unit's new students
    on their own: their state does not replace the finished one, and a warning says the
    unit can no longer continue as a whole."""
    path = tmp_path / "results.csv"
    run_sweep(SweepConfig(**{**SWEEP.__dict__, "features": (2,)}), path, n_jobs=1,
              progress=False)
    final = checkpoint_path(path, 2, final=True)
    first = torch.load(final, weights_only=True)["meta"]
    grown = SweepConfig(**{**SWEEP.__dict__, "features": (2,), "seeds": (0, 1)})
    with pytest.warns(UserWarning, match="k=2 was trained in parts"):
        out = run_sweep(grown, path, n_jobs=1, progress=False)
    assert len(out.trained) == 2 and len(out.rows) == 4
    assert torch.load(final, weights_only=True)["meta"] == first
    assert not checkpoint_path(path, 2).exists()


def test_the_bar_counts_only_the_steps_a_continued_unit_takes(tmp_path, capsys):
    short = tmp_path / "short" / "results.csv"
    run_sweep(SweepConfig(**{**SWEEP.__dict__, "features": (2,)}), short, n_jobs=1,
              progress=False)
    capsys.readouterr()
    config = SweepConfig(**{**SWEEP.__dict__, "features": (2,), "schedule": LONGER})
    run_sweep(config, tmp_path / "long" / "results.csv", n_jobs=1, progress=True,
              continue_from=short)
    added = 2 * (LONGER.steps - SCHEDULE.steps)  # 2 students
    assert f"{added}/{added}" in capsys.readouterr().err


def test_report_only_refuses_continue_from(tmp_path, capsys):
    from idest.cli import main

    assert main(["reproduce", "--report-only", "--continue-from", str(tmp_path), "--out",
                 str(tmp_path), "--quiet"]) == 2
    assert "--continue-from trains students; drop it with --report-only" in \
        capsys.readouterr().err
