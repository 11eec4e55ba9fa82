"""Teacher/student sweeps: features k × widths × depths × runs, in parallel, resumable.

The unit of work is one k (the authors' design): every width, depth and run of that k
trains on one online stream, the teacher labelling each batch once, all students as one
batched computation (:func:`scaling.teacher_student.train_students`). Units run in
parallel processes, or as tasks on a Dask cluster (``client=``). Each finished unit's rows
are added by the driver (never by a worker) to the CSV all together or not at all (the
file is rewritten and renamed over the old one); rerunning the same sweep on the same CSV
skips every run already there, so an interrupted sweep resumes where it stopped. A
unit cut off part-way resumes from its last checkpoint, a file beside the CSV
(:func:`checkpoint_path`, written every few minutes and at SIGTERM/SIGINT; see
:mod:`scaling.teacher_student._checkpoint`). A run's numbers depend only on (k, width,
depth, run) and the stream, so a resumed sweep gives the same table as an uninterrupted
one (timings aside, up to float round-off).
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import dataclasses
import io
import multiprocessing
import os
import subprocess
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from idest.utils import (
    RecordStore,
    as_completed_units,
    atomic_write,
    exit_with_parent,
    progress_bar,
)
from scaling.teacher_student._checkpoint import (
    CHECKPOINT_SECONDS,
    SUFFIX,
    StopSignals,
    key_mismatch,
    read_progress,
)
from scaling.teacher_student._student import BIAS_STD, student_widths
from scaling.teacher_student._teacher import random_teacher
from scaling.teacher_student._train import (
    DTYPES,
    StudentResult,
    get_schedule,
    loss_power,
    train_students,
    training_key,
)

#: Columns that identify a run (``seed`` is the student's run: its initialisation).
KEY = ("features", "width", "depth", "seed")
#: Columns that must agree between a sweep and the CSV it resumes.
CONFIG_COLUMNS = ("schedule", "loss_name", "power", "variant", "teacher_seed", "n_eval", "n_id",
                  "dtype", "stream_seed", "bias_std")
_CURVE_FIELDS = ("curve_steps", "curve_losses", "curve_window_start")
COLUMNS = (*KEY, *(f.name for f in dataclasses.fields(StudentResult)
                   if f.name not in ("width", "depth", "seed", *_CURVE_FIELDS)),
           "loss_curve", "variant", "teacher_seed", "n_eval", "n_id", "stream_seed", "bias_std",
           "teacher", "finished_utc")
#: Columns that legitimately differ between two runs of the same sweep.
TIMING_COLUMNS = ("seconds", "cpu_seconds", "finished_utc")
#: Columns added after sweeps were written without them: :func:`run_sweep` resumes such a
#: CSV by inserting the column, empty ("not recorded") in the rows it already holds.
ADDED_COLUMNS = ("live_units",)


def format_curve(steps: Sequence[int], losses: Sequence[float]) -> str:
    """A loss curve as one CSV cell: ``"step:loss step:loss ..."``.

    Examples
    --------
    >>> from scaling.teacher_student import format_curve, parse_curve
    >>> cell = format_curve([0, 10], [0.5, 0.0123456789])
    >>> cell, parse_curve(cell)
    ('0:0.5 10:0.0123456789', ((0, 10), (0.5, 0.0123456789)))
    """
    return " ".join(f"{int(s)}:{float(v)!r}" for s, v in zip(steps, losses, strict=True))


def parse_curve(cell: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """(steps, losses) of a :func:`format_curve` cell.

    Examples
    --------
    >>> parse_curve("10:0.5 100:0.25")
    ((10, 100), (0.5, 0.25))
    """
    pairs = [item.split(":") for item in cell.split()]
    return tuple(int(s) for s, _ in pairs), tuple(float(v) for _, v in pairs)


@dataclass(frozen=True)
class SweepConfig:
    """What to train: random teachers with k in ``features`` (one teacher, Sharma & Kaplan
    3.1: the same weights with the inputs beyond k zeroed), students of every width and
    depth, ``seeds`` runs (initialisations) of each. All students of one k share one data
    stream, seeded by ``stream_seed`` (the authors' design); ``dtype`` is their arithmetic.

    Examples
    --------
    >>> from scaling.teacher_student import SweepConfig
    >>> cfg = SweepConfig(features=(2, 3), widths=(22, 28), depths=(2,), seeds=(0,))
    >>> len(cfg.runs())
    4
    """

    features: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8)
    widths: tuple[int, ...] = field(default_factory=lambda: tuple(student_widths(6)))
    depths: tuple[int, ...] = (2,)
    seeds: tuple[int, ...] = (0, 1)
    schedule: str = "cpu-short16-random"
    loss: str = "kl"
    power: float = 2.0
    variant: str = "authors"
    teacher_seed: int = 0
    bias_std: float = BIAS_STD
    n_eval: int = 10_000
    n_id: int = 12_000
    dtype: str = "float64"
    stream_seed: int = 0
    n_curve: int = 24

    def __post_init__(self) -> None:
        get_schedule(self.schedule)
        if self.dtype not in DTYPES:
            raise ValueError(f"SweepConfig: dtype must be one of {list(DTYPES)}; got "
                             f"{self.dtype!r}.")
        for name in ("features", "widths", "depths", "seeds"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"SweepConfig: {name} must be a non-empty sequence without "
                                 f"repeats, got {values!r}.")

    def teacher(self, k: int):
        """The random teacher for k features (same weights for every k)."""
        return random_teacher(k, loss=self.loss, variant=self.variant,
                              random_state=self.teacher_seed)

    def runs(self) -> list[tuple[int, int, int, int]]:
        """Every (features, width, depth, seed) of the sweep, k by k (the units)."""
        return [(k, w, d, s) for k in self.features for s in self.seeds
                for w in self.widths for d in self.depths]

    def config_values(self) -> dict[str, str]:
        """The CSV values of :data:`CONFIG_COLUMNS` for this sweep."""
        values = {"schedule": get_schedule(self.schedule).name, "loss_name": self.loss,
                  "power": loss_power(self.loss, self.power), "variant": self.variant,
                  "teacher_seed": self.teacher_seed,
                  "n_eval": self.n_eval, "n_id": self.n_id, "dtype": self.dtype,
                  "stream_seed": self.stream_seed, "bias_std": float(self.bias_std)}
        return {k: str(v) for k, v in values.items()}


@dataclass(frozen=True)
class SweepOutcome:
    """A finished (or resumed) sweep: the CSV, every row in it, and what this call trained."""

    path: Path
    rows: list[dict[str, str]]
    n_previous: int
    trained: tuple[tuple[int, int, int, int], ...]
    seconds: float


def _store(path: str | Path) -> RecordStore:
    """The sweep's resumable CSV (a damaged last row is dropped and retrained, never merged)."""
    return RecordStore(path, COLUMNS, KEY, parsers=dict.fromkeys(KEY, int), owner="run_sweep")


def read_results(path: str | Path) -> list[dict[str, str]]:
    """The rows of a sweep CSV as dicts of strings (empty if the file does not exist).

    A row cut short by an interruption is removed from the file with a warning
    (:class:`idest.utils.RecordStore`), so that its run is trained again. A CSV
    written by an earlier version (other columns) is read as it is, for
    reports, without touching it; :func:`run_sweep` resumes one that lacks only
    :data:`ADDED_COLUMNS` (adding them, empty) and refuses any other.

    Examples
    --------
    >>> len(read_results("reports/teacher_student/results.csv"))  # from the repository root
    84
    >>> read_results("no/such/file.csv")
    []
    """
    path = Path(path)
    if path.exists():
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), None)
        if header is not None and tuple(header) != COLUMNS:
            return _read_other_version(path)
    return _store(path).read()


def _read_other_version(path: Path) -> list[dict[str, str]]:
    """The complete rows (those ending in a newline) of a CSV with other columns."""
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(complete, newline="")))


def _add_new_columns(path: Path, config: SweepConfig) -> None:
    """Give a CSV written before :data:`ADDED_COLUMNS` existed those columns, empty.

    Only a file whose header is :data:`COLUMNS` less some added columns, holding rows of
    ``config``, is rewritten (atomically); its rows are read by the store of its own
    header first, so a last row cut short is dropped with the store's warning (its run
    is trained again) and a malformed row is an error. Any other header is left for the
    store to refuse.
    """
    if not path.exists():
        return
    with path.open(newline="", encoding="utf-8") as handle:
        header = tuple(next(csv.reader(handle), ()))
    missing = [c for c in COLUMNS if c not in header]
    if not header or not missing or header != tuple(c for c in COLUMNS if c in header) \
            or not set(missing) <= set(ADDED_COLUMNS):
        return
    rows = RecordStore(path, header, KEY, parsers=dict.fromkeys(KEY, int),
                       owner="run_sweep").read()
    _check_compatible(rows, config, path)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    writer.writerows([row.get(c, "") for c in COLUMNS] for row in rows)
    with atomic_write(path, "wb") as handle:
        handle.write(text.getvalue().encode("utf-8"))
    warnings.warn(f"run_sweep: {path} was written before the column(s) {missing} existed; "
                  f"added them, empty in its {len(rows)} row(s) (not recorded by the version "
                  "that trained them).", stacklevel=3)


def run_key(row: dict[str, str]) -> tuple[int, int, int, int]:
    """(features, width, depth, seed) of a CSV row."""
    return tuple(int(row[c]) for c in KEY)  # type: ignore[return-value]


def _check_compatible(rows: list[dict[str, str]], config: SweepConfig, path: Path) -> None:
    schedule = get_schedule(config.schedule)
    # the schedule's length too: a custom Schedule may reuse a built-in one's name
    expected = {**config.config_values(), "steps": str(schedule.steps),
                "samples": str(schedule.samples)}
    for row in rows:
        for column, value in expected.items():
            if row.get(column) != value:
                raise ValueError(
                    f"{path} holds runs with {column}={row.get(column)!r} but this sweep has "
                    f"{column}={value!r}; resume with the same configuration or use a new file.")


#: In a sweep worker: the driver's shared count of student-steps done (see run_sweep).
_STEPS_DONE = None


def _worker_init(steps_done=None) -> None:
    """One Numba thread per worker (training already uses one): the pool is the parallelism.
    The worker exits when the sweep's process dies, however it dies (no orphans), and adds
    the student-steps it trains to the driver's ``steps_done`` counter."""
    import numba

    global _STEPS_DONE
    _STEPS_DONE = steps_done
    exit_with_parent()
    numba.set_num_threads(1)


def _count_steps(counter, n_students: int, then: Callable[[], None] | None = None
                 ) -> Callable[[int], None] | None:
    """An ``on_steps`` callback adding student-steps to a shared counter (None: no counter),
    then calling ``then`` (the in-process sweep refreshes its bar there)."""
    if counter is None:
        return None

    def add(steps: int) -> None:
        with counter.get_lock():
            counter.value += steps * n_students
        if then is not None:
            then()

    return add


def checkpoint_path(path: str | Path, k: int, *, final: bool = False) -> Path:
    """The checkpoint file of unit k of the sweep whose CSV is ``path`` (git-ignored); with
    ``final``, the unit's finished state, kept once its rows are in the CSV, from which a
    sweep with a longer schedule continues (:func:`run_sweep`'s ``continue_from``).

    Examples
    --------
    >>> from scaling.teacher_student import checkpoint_path
    >>> checkpoint_path("reports/ts/results.csv", 3).as_posix()
    'reports/ts/results.k3.ckpt'
    >>> checkpoint_path("reports/ts/results.csv", 3, final=True).as_posix()
    'reports/ts/results.k3.final.ckpt'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}.k{k}{'.final' if final else ''}{SUFFIX}")


def _training_options(config: SweepConfig) -> dict[str, Any]:
    """What :func:`train_students` (and :func:`training_key`) get from a sweep's config."""
    return {"seed": config.stream_seed, "schedule": config.schedule, "loss": config.loss,
            "power": config.power, "bias_std": config.bias_std, "dtype": config.dtype,
            "n_eval": config.n_eval, "n_id": config.n_id, "n_curve": config.n_curve}


def _start_from(continue_from: Path, path: Path, config: SweepConfig,
                units: dict[int, list[tuple[int, int, int]]]) -> None:
    """Give each unit without a checkpoint of its own the final state of the same unit of
    the sweep at ``continue_from`` (a copy, written atomically), after checking that the
    unit can continue from it (same configuration and students, a shorter schedule)."""
    found = [k for k in units if checkpoint_path(continue_from, k, final=True).exists()]
    if units and not found:
        first = checkpoint_path(continue_from, next(iter(units)), final=True).name
        raise ValueError(
            f"run_sweep: continue_from={str(continue_from)!r} holds no finished state of "
            f"k = {list(units)} ({first} ...); name the CSV of the sweep to continue "
            f"(idest reproduce: its --out folder), or drop continue_from to train from "
            f"step 0.")
    for k, students in units.items():
        own, final = checkpoint_path(path, k), checkpoint_path(continue_from, k, final=True)
        if k not in found:
            warnings.warn(f"run_sweep: no finished state of k={k} beside {continue_from}: "
                          f"that unit trains from step 0.", stacklevel=3)
            continue
        if own.exists():  # its own progress comes first
            continue
        saved = read_progress(final)
        fields = key_mismatch(saved["key"], training_key(config.teacher(k), students,
                                                         **_training_options(config)))
        if fields:
            raise ValueError(
                f"run_sweep: k={k} cannot continue from {final}: {', '.join(fields)}; "
                f"continue from a sweep of the same configuration and students whose "
                f"schedule is the beginning of this one, or drop continue_from.")
        with atomic_write(own, "wb") as handle:
            handle.write(final.read_bytes())


def _keep_final_state(path: Path, k: int) -> None:
    """Keep the finished unit k's checkpoint as its final state, unless a final state of
    other students (an earlier part of the same unit) is there: then that one stays."""
    own, final = checkpoint_path(path, k), checkpoint_path(path, k, final=True)
    if not own.exists():
        return
    if final.exists() and (read_progress(final)["key"]["students"]
                           != read_progress(own)["key"]["students"]):
        warnings.warn(f"run_sweep: k={k} was trained in parts: {final.name} keeps the state "
                      f"of the earlier part, and a longer schedule cannot continue this unit "
                      f"as a whole (train it in one sweep to continue it).", stacklevel=3)
        own.unlink()
        return
    own.replace(final)


def _train_unit(config: SweepConfig, k: int, students: Sequence[tuple[int, int, int]],
                steps_done=None, then: Callable[[], None] | None = None,
                checkpoint: Path | None = None, checkpoint_every: float = CHECKPOINT_SECONDS,
                ) -> list[dict[str, str]]:
    """Train the missing (width, depth, run) students of one k and return their CSV rows."""
    if checkpoint is not None and not checkpoint.parent.is_dir():  # a worker elsewhere
        warnings.warn(f"run_sweep: k={k} trains without checkpoints: this worker does not "
                      f"see {checkpoint.parent}; share that folder with the workers to make "
                      f"an interrupted unit resumable.", stacklevel=2)
        checkpoint = None
    teacher = config.teacher(k)
    counter = steps_done if steps_done is not None else _STEPS_DONE
    results = train_students(teacher, students, **_training_options(config),
                             progress=False, on_steps=_count_steps(counter, len(students), then),
                             checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                             keep_checkpoint=True)
    finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    rows = []
    for res in results:
        row = {"features": k, **dataclasses.asdict(res), **config.config_values(),
               "loss_curve": format_curve(res.curve_steps, res.curve_losses),
               "teacher": teacher.description, "finished_utc": finished}
        rows.append({c: str(row[c]) for c in COLUMNS})
    return rows


def run_sweep(
    config: SweepConfig,
    path: str | Path,
    *,
    n_jobs: int | None = None,
    progress: bool | None = None,
    on_unit: Callable[[Path, list[dict[str, str]]], None] | None = None,
    client: Any = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    continue_from: str | Path | None = None,
) -> SweepOutcome:
    """Run every run of ``config`` that ``path`` does not hold yet, appending as units finish.

    Parameters
    ----------
    config : SweepConfig
    path : str or Path
        The results CSV; created if missing, resumed if present (its runs must come
        from the same configuration, else ValueError).
    n_jobs : int, optional
        Worker processes, one k each (each with one torch/BLAS thread); default: the cores
        this process may use (``os.sched_getaffinity``). 1 trains in this process.
    progress : bool, optional
        Show a bar over student-steps, with the runs finished and the time left
        (default: on a terminal).
    on_unit : callable, optional
        Called as ``on_unit(path, rows)`` after each finished unit's rows are on disk
        (e.g. to commit the CSV, :func:`scaling.teacher_student.git_commit`).
    client : distributed.Client, optional
        Train the units on this Dask cluster instead of local processes (``pip install
        'idest[dask]'``): one ``client.submit`` per k, consumed as they finish; this
        process appends each unit's rows. A worker lost mid-unit costs that unit only
        (the scheduler trains it again elsewhere); an interrupted sweep cancels the
        units still running and resumes from the CSV. Not with ``n_jobs``.
    checkpoint_every : float, default=300
        Wall seconds between two checkpoints of a unit in training (:func:`checkpoint_path`;
        the next call continues a unit from its checkpoint, and refuses one written by
        another configuration). On a Dask cluster the workers write them (periodically
        only: a task runs in a worker thread, where no signal arrives), at the CSV's
        absolute path: a worker that does not see that folder trains its unit without
        checkpoints, with a warning. Once a unit's rows are in the CSV its checkpoint is
        kept as its final state (``checkpoint_path(path, k, final=True)``), also by the next
        call if the sweep stopped in between.
    continue_from : str or Path, optional
        The CSV of an earlier sweep of the same configuration with a shorter schedule
        (this schedule's first phases): each unit without a checkpoint of its own starts
        from that sweep's final state of the unit, so the steps both schedules share are
        not trained again (the numbers are those of this schedule from step 0, bit for
        bit). ValueError if that sweep kept no final state of any unit to train, or one
        that this sweep's unit cannot continue (another configuration or other students);
        a unit it lacks trains from step 0, with a warning. On a Dask cluster the folders
        must be shared with the workers (a worker that does not see the copied state
        trains its unit from step 0).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from scaling.teacher_student import SweepConfig, run_sweep
    >>> cfg = SweepConfig(features=(2,), widths=(8, 12), seeds=(0,), schedule="smoke",
    ...                   n_eval=200, n_id=0)
    >>> out = run_sweep(cfg, pathlib.Path(tempfile.mkdtemp()) / "r.csv", n_jobs=1,
    ...                 progress=False)
    >>> len(out.rows), len(out.trained)
    (2, 2)
    """
    if client is not None and n_jobs is not None:
        raise ValueError(f"run_sweep: give n_jobs (local processes) or client (a Dask cluster), "
                         f"not both; got n_jobs={n_jobs!r} and a client.")
    path = Path(path).absolute()  # workers elsewhere (Dask) write checkpoints beside it
    _add_new_columns(path, config)
    store = _store(path)
    previous = store.read()
    _check_compatible(previous, config, path)
    done = {run_key(r) for r in previous}
    units: dict[int, list[tuple[int, int, int]]] = {}
    for k, w, d, s in config.runs():
        if (k, w, d, s) not in done:
            units.setdefault(k, []).append((w, d, s))
    steps = get_schedule(config.schedule).steps
    for k in sorted({run[0] for run in config.runs()} - set(units)):
        # stored whole, but stopped before its finished checkpoint was kept as final
        own = checkpoint_path(path, k)
        if own.exists() and read_progress(own)["step"] == steps:
            _keep_final_state(path, k)
    if n_jobs is None:
        n_jobs = len(os.sched_getaffinity(0))
    n_jobs = max(1, min(n_jobs, len(units) or 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    if continue_from is not None:
        _start_from(Path(continue_from), path, config, units)
    start = time.perf_counter()
    trained: list[tuple[int, int, int, int]] = []
    n_runs = sum(len(v) for v in units.values())
    context = multiprocessing.get_context("spawn")
    steps_done = context.Value("q", 0)  # student-steps, added to by the workers
    # steps each unit has left: fewer where it continues from a checkpoint
    left = {k: steps - (read_progress(checkpoint_path(path, k))["step"]
                        if checkpoint_path(path, k).exists() else 0) for k in units}
    total = sum(len(students) * left[k] for k, students in units.items())
    with progress_bar(progress, total=total, desc="sweep", unit="student-step") as bar:
        def show() -> None:
            if bar is not None:
                bar.n = steps_done.value
                bar.set_postfix_str(f"{len(trained)}/{n_runs} runs", refresh=False)
                bar.refresh()

        def finish(rows: list[dict[str, str]]) -> None:
            store.append(rows, together=True)  # a unit lands whole or not at all
            for k in {int(r["features"]) for r in rows}:  # stored: keep its final state
                _keep_final_state(path, k)
            trained.extend(run_key(r) for r in rows)
            if on_unit is not None:
                on_unit(path, rows)
            show()

        saving = {k: {"checkpoint": checkpoint_path(path, k),
                      "checkpoint_every": checkpoint_every} for k in units}
        if client is not None:
            work = [(config, k, students, None, None, checkpoint_path(path, k),
                     checkpoint_every) for k, students in units.items()]
            with as_completed_units(client, _train_unit, work, caller="run_sweep") as done_units:
                for _, rows in done_units:
                    with steps_done.get_lock():  # the workers have no shared counter
                        steps_done.value += len(rows) * left[int(rows[0]["features"])]
                    finish(rows)
        elif n_jobs == 1:
            for k, students in units.items():
                finish(_train_unit(config, k, students, steps_done, show, **saving[k]))
        else:
            with cf.ProcessPoolExecutor(n_jobs, mp_context=context, initializer=_worker_init,
                                        initargs=(steps_done,)) as pool, StopSignals() as stop:
                pending = {pool.submit(_train_unit, config, k, students, **saving[k])
                           for k, students in units.items()}
                try:
                    while pending and stop.received is None:
                        finished, pending = cf.wait(pending, timeout=1.0,
                                                    return_when=cf.FIRST_COMPLETED)
                        for future in finished:
                            finish(future.result())
                        show()
                except BaseException:
                    _stop_workers(pool)
                    raise
                if stop.received is not None:  # SIGTERM or SIGINT: checkpoint, then obey
                    for future in [f for f in pending if f.done() and not f.exception()]:
                        finish(future.result())  # finished meanwhile: store it now
                    _stop_workers(pool)
                    stop.resume_default()
    return SweepOutcome(path, read_results(path), len(previous), tuple(trained),
                        time.perf_counter() - start)


#: Seconds an interrupted sweep waits for its workers to write their checkpoints.
WORKER_GRACE_SECONDS = 30.0


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Stop an interrupted sweep's workers so that each first writes its unit's checkpoint.

    Workers get SIGTERM, write the checkpoint at their next step boundary and exit; the
    sweep waits for them (at most :data:`WORKER_GRACE_SECONDS`), since workers die with
    it (:func:`idest.utils.exit_with_parent`). Pending units are cancelled.
    """
    workers = list((getattr(pool, "_processes", None) or {}).values())
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    deadline = time.monotonic() + WORKER_GRACE_SECONDS
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    pool.shutdown(wait=False, cancel_futures=True)


def check_committable(path: str | Path) -> None:
    """ValueError unless :func:`git_commit` can commit ``path``: inside a git work tree, not
    ignored there, and with a committer identity. Checked before a sweep starts, so that a
    run of hours does not stop at its first finished unit.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from scaling.teacher_student import check_committable
    >>> check_committable(pathlib.Path(tempfile.mkdtemp()) / "out" / "results.csv")
    Traceback (most recent call last):
    ...
    ValueError: --commit: ... is not inside a git work tree; give an output folder inside one ...
    """
    path = Path(path).absolute()
    folder = next(p for p in path.parents if p.is_dir())  # the output folder may not exist yet

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True)

    if git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        raise ValueError(f"--commit: {path} is not inside a git work tree; give an output "
                         f"folder inside one (e.g. reports/teacher_student) or drop --commit.")
    if git("check-ignore", "-q", "--no-index", str(path)).returncode == 0:
        raise ValueError(f"--commit: {path} is ignored by git (.gitignore), so it cannot be "
                         f"committed; give an output folder that is not ignored (e.g. "
                         f"reports/teacher_student) or drop --commit.")
    if git("var", "GIT_COMMITTER_IDENT").returncode != 0:
        raise ValueError("--commit: git has no committer identity here; set one (git config "
                         "user.name and user.email) or drop --commit.")


def git_commit(path: Path, rows: list[dict[str, str]]) -> None:
    """Commit the CSV at ``path`` (only that file) in its git repository, naming the unit.

    Meant as ``run_sweep(..., on_unit=git_commit)``: a sweep that runs for hours leaves
    every finished unit in the repository, so another machine or session can continue it.

    Examples
    --------
    >>> from scaling.teacher_student import SweepConfig, git_commit, run_sweep
    >>> run_sweep(SweepConfig(schedule="paper-random"), "reports/ts/results.csv",
    ...           on_unit=git_commit)  # doctest: +SKIP
    """
    ks = sorted({r["features"] for r in rows})
    message = (f"teacher/student sweep: k={','.join(ks)} finished ({len(rows)} runs, "
               f"schedule {rows[0]['schedule']})")
    for args in (["add", "--", path.name], ["commit", "-q", "-m", message, "--", path.name]):
        subprocess.run(["git", "-C", str(path.parent), *args], check=True)
