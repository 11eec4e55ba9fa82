"""Online training of students on a teacher, evaluation, and the ID of the final hidden layer.

Sharma & Kaplan A.2: every batch is fresh (the data set is effectively infinite), Adam with
default betas and the step schedules of Table 1; cross-entropy students learn the teacher's
exact output distribution (soft labels). Many students train on one data stream
(:func:`train_students`, the authors' design): the teacher labels each batch once, every
student sees every sample exactly once, and all of them take their Adam step as one batched
computation (:mod:`scaling.teacher_student._engines`). A student's result depends only on
its own seed and the stream, not on which other students share the stream (up to float
round-off in the batched products).

torch is imported inside the functions, so ``import scaling`` stays torch-free.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idest.utils import check_choice, check_int, invalid, limit_threads, progress_bar
from scaling.teacher_student._checkpoint import (
    CHECKPOINT_SECONDS,
    StopSignals,
    checkpoint_key,
    load_checkpoint,
    save_checkpoint,
)
from scaling.teacher_student._engines import (
    PADDINGS,
    BatchedEngine,
    LockstepEngine,
    StudentSpec,
)
from scaling.teacher_student._student import BIAS_STD, parameter_count
from scaling.teacher_student._teacher import LOSSES


@dataclass(frozen=True)
class Phase:
    """``steps`` Adam steps at batch size ``batch_size`` and learning rate ``lr``."""

    steps: int
    batch_size: int
    lr: float


@dataclass(frozen=True)
class Schedule:
    """A named step schedule; ``shortened`` says it is a CPU cut of a paper schedule."""

    name: str
    phases: tuple[Phase, ...]
    shortened: bool

    @property
    def steps(self) -> int:
        return sum(p.steps for p in self.phases)

    @property
    def samples(self) -> int:
        return sum(p.steps * p.batch_size for p in self.phases)

    @property
    def phase_starts(self) -> tuple[int, ...]:
        """The first step of every phase after the first."""
        return tuple(int(s) for s in np.cumsum([p.steps for p in self.phases])[:-1])


def _shortened(schedule: Schedule, factor: int, name: str) -> Schedule:
    phases = tuple(Phase(max(1, p.steps // factor), p.batch_size, p.lr) for p in schedule.phases)
    return Schedule(name, phases, shortened=True)


#: Table 1 of Sharma & Kaplan: random teachers (figures 5, 6, 7, 8) and vetted (figure 14).
PAPER_RANDOM = Schedule("paper-random", (Phase(200_000, 200, 0.01), Phase(20_000, 1000, 0.01),
                                         Phase(20_000, 4000, 0.001)), shortened=False)
#: Table 1 (random), then 10,000 steps at batch 4,000 and a tenth of its last learning rate:
#: whether the losses Table 1 ends at are set by that learning rate (run it on Table 1's
#: finished states: ``idest reproduce --schedule paper-long --continue-from DIR``).
PAPER_RANDOM_LONG = Schedule("paper-random-long",
                             (*PAPER_RANDOM.phases, Phase(10_000, 4000, 0.0001)), shortened=False)
#: Table 1's steps and batch sizes with every learning rate 10x smaller (Adam's default
#: 1e-3, then 1e-4): a change of the recipe, not the paper's. At lr 0.01 Adam kills most of
#: a wide student's final-layer ReLUs in its first 2,000 steps (k = 4, width 106: 70 of 106
#: dead), which we suspect ends L(N)'s power law at width 48 for k = 4-7; at 1e-3, 47 are
#: dead after 100,000 steps.
PAPER_RANDOM_LOW_LR = Schedule("paper-random-lowlr",
                               tuple(Phase(p.steps, p.batch_size, p.lr / 10)
                                     for p in PAPER_RANDOM.phases), shortened=False)
PAPER_VETTED = Schedule("paper-vetted", (Phase(100_000, 200, 0.01), Phase(50_000, 200, 0.001),
                                         Phase(20_000, 200, 0.0001)), shortened=False)

#: Named schedules. ``cpu-shortF-random`` is Table 1 (random) with every phase F× shorter;
#: ``smoke`` is a few hundred steps for tests and demos.
SCHEDULES: dict[str, Schedule] = {
    s.name: s for s in (
        PAPER_RANDOM,
        PAPER_RANDOM_LONG,
        PAPER_RANDOM_LOW_LR,
        PAPER_VETTED,
        _shortened(PAPER_RANDOM, 8, "cpu-short8-random"),
        _shortened(PAPER_RANDOM, 16, "cpu-short16-random"),
        _shortened(PAPER_RANDOM, 48, "cpu-short48-random"),
        _shortened(PAPER_VETTED, 16, "cpu-short16-vetted"),
        Schedule("smoke", (Phase(300, 200, 0.01), Phase(100, 1000, 0.001)), shortened=True),
    )
}


def get_schedule(name: str | Schedule) -> Schedule:
    """The named schedule (see :data:`SCHEDULES`), or ``name`` itself if already one.

    Examples
    --------
    >>> from scaling.teacher_student import get_schedule
    >>> s = get_schedule("paper-random")
    >>> s.steps, s.samples, s.shortened
    (240000, 140000000, False)
    """
    if isinstance(name, Schedule):
        return name
    return SCHEDULES[check_choice(name, "schedule", "get_schedule", sorted(SCHEDULES))]


#: Student arithmetic offered by :func:`train_students`.
DTYPES = ("float32", "float64")
#: Training engines: all students as one batched computation, or one by one (reference).
ENGINES = ("batched", "lockstep")
#: Convergence rule: a student has converged when its held-out loss fell by less than
#: ``CONVERGENCE_TOLERANCE`` (relative) over the last ``CONVERGENCE_WINDOW`` of its steps,
#: a window kept inside the final phase (:func:`convergence_start`).
CONVERGENCE_WINDOW = 0.1
CONVERGENCE_TOLERANCE = 0.05


def window_of_all_steps(total: int) -> int:
    """The first of the last 10 % of ``total`` steps, T − ⌈0.1·T⌉: the window of a
    one-phase schedule, and the one used when the schedule is not known."""
    return total - math.ceil(CONVERGENCE_WINDOW * total)


def convergence_start(schedule: Schedule) -> int:
    """The first step of the convergence window: the last 10 % of the steps, shortened to
    the last half of the final phase where it would reach into an earlier one.

    A change of learning rate or batch size moves the loss by itself (Table 1's drop to
    lr 0.001 at step 220,000 lowered every student's loss by 20-90 %), so a window across
    it measures the schedule, not whether training has stopped improving.

    Examples
    --------
    >>> from scaling.teacher_student import convergence_start, get_schedule
    >>> convergence_start(get_schedule("paper-random"))  # the last 10,000 steps
    230000
    >>> convergence_start(get_schedule("smoke"))  # 10 % of 400 steps fits in the last phase
    360
    >>> convergence_start(get_schedule("paper-vetted"))  # 17,000 of the final 20,000 steps
    153000
    """
    total, final = schedule.steps, schedule.phases[-1].steps
    tenth = window_of_all_steps(total)
    return tenth if tenth >= total - final else total - max(1, final // 2)


def curve_steps(schedule: Schedule, n_points: int) -> tuple[int, ...]:
    """Steps at which the held-out loss is recorded: 0, about ``n_points`` log-spaced steps
    up to the last, the first step of every later phase and of the convergence window
    (:func:`convergence_start`), and the first of the last 10 % of all steps (the window
    :func:`convergence` uses when it does not know the schedule).

    Examples
    --------
    >>> from scaling.teacher_student import curve_steps, get_schedule
    >>> curve_steps(get_schedule("smoke"), 4)
    (0, 1, 7, 54, 300, 360, 400)
    """
    total = schedule.steps
    if total == 0:
        return (0,)
    log_spaced = np.round(np.geomspace(1, total, max(2, n_points))).astype(int)
    return tuple(int(s) for s in np.unique([0, *schedule.phase_starts,
                                            convergence_start(schedule),
                                            window_of_all_steps(total), *log_spaced]))


def convergence(steps: Sequence[int], losses: Sequence[float],
                start: int | None = None) -> tuple[bool, float]:
    """(converged, relative improvement) of a held-out loss curve over its window.

    The improvement is (L(s0) − L(T)) / L(s0) with T the last step and s0 = ``start`` (the
    schedule's :func:`convergence_start`, a step :func:`curve_steps` records; by default
    T − ⌈0.1·T⌉, the window of a one-phase schedule); the student has converged when it is
    below :data:`CONVERGENCE_TOLERANCE` (5 %). A curve whose loss rose over the window has
    a negative improvement and counts as converged.

    Examples
    --------
    >>> from scaling.teacher_student import convergence
    >>> convergence([0, 900, 1000], [1.0, 0.100, 0.098])
    (True, 0.02)
    >>> convergence([0, 900, 950, 1000], [1.0, 0.100, 0.080, 0.078], start=950)
    (True, 0.025)
    """
    steps, losses = list(steps), list(losses)
    if len(steps) != len(losses) or not steps:
        raise ValueError(f"convergence: expected as many losses as steps (at least one); got "
                         f"{len(steps)} steps and {len(losses)} losses.")
    total = steps[-1]
    if start is None:
        start = window_of_all_steps(total)
    if start not in steps:
        raise ValueError(f"convergence: the curve must record step {start} (the start of its "
                         f"convergence window, {total - start} of {total} steps); record it "
                         f"with curve_steps.")
    before = losses[steps.index(start)]
    improvement = (before - losses[-1]) / before if before > 0 else 0.0
    return bool(improvement < CONVERGENCE_TOLERANCE), round(float(improvement), 12)


@dataclass(frozen=True)
class ActivationID:
    """The ID of a layer's activations, as one flat CSV-ready record.

    ``id_twonn`` (TwoNN, 10 % tail discarded) and ``id_mle`` (Levina–Bickel, mean
    aggregation) come from one neighbour search; ``id_points`` is the number of distinct
    activation vectors they used, ``id_duplicates_dropped`` the exact duplicates left out
    (dead ReLU units make many). ``live_units`` counts the layer's units that are non-zero
    on at least one input (a ReLU unit that is zero on all of them is dead: it adds
    parameters, not capacity); nan when nothing was measured. ``note`` says why the ID is
    nan, if it is.
    """

    id_twonn: float
    id_mle: float
    id_points: int
    id_duplicates_dropped: int
    live_units: int | float = field(default=math.nan, kw_only=True)
    note: str = ""

    def to_dict(self) -> dict[str, float | int | str]:
        """The fields as a dict (CSV columns)."""
        return dataclasses.asdict(self)


def live_unit_count(activations: np.ndarray) -> int:
    """Units (columns) of a layer's activations that are non-zero on at least one input
    (row); a ReLU unit that is zero on every input is dead.

    Examples
    --------
    >>> import numpy as np
    >>> from scaling.teacher_student._train import live_unit_count
    >>> live_unit_count(np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]))
    2
    """
    return int(np.count_nonzero(np.any(np.asarray(activations) != 0, axis=0)))


def activation_dimension(activations: np.ndarray, *, mle_k: int = 20) -> ActivationID:
    """TwoNN and MLE of a layer's activations from ONE k-NN search (:func:`idest.estimate_all`).

    Exact duplicate rows (inputs that switch off the same ReLU units) are dropped, idest's
    documented policy, and counted in ``id_duplicates_dropped`` instead of warned about;
    every other warning passes through to the caller. A layer with too few distinct
    activation vectors for an estimate (e.g. every unit dead) gives nan and a ``note``.
    TwoNN is Facco et al. 2017 eq. (5) with the 10 % largest ratios discarded, the MLE is
    Levina & Bickel 2004 eq. (8) averaged over points (MacKay–Ghahramani's note).

    Examples
    --------
    >>> import numpy as np
    >>> from scaling.teacher_student import activation_dimension
    >>> rng = np.random.default_rng(0)
    >>> H = np.maximum(rng.standard_normal((2000, 3)) @ rng.standard_normal((3, 16)), 0)
    >>> r = activation_dimension(H)
    >>> 2.5 < r.id_twonn < 3.5, r.id_points + r.id_duplicates_dropped, r.live_units
    (True, 2000, 16)
    """
    import idest

    H = np.asarray(activations)
    live = live_unit_count(H)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = {r.method: r for r in idest.estimate_all(H, ks=(2,), mle_k=mle_k,
                                                                progress=False)}
        except ValueError as exc:  # too few distinct activation vectors
            distinct = int(np.unique(H, axis=0).shape[0])
            found = ActivationID(math.nan, math.nan, distinct, H.shape[0] - distinct,
                                 live_units=live, note=f"no ID: {distinct} distinct activation "
                                 f"vector(s) ({exc})")
        else:
            found = ActivationID(float(results["twonn"].dimension),
                                 float(results["mle"].dimension), results["twonn"].n_points,
                                 results["twonn"].n_duplicates_dropped, live_units=live)
    for w in caught:
        if not issubclass(w.category, idest.DuplicatesWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return found


@dataclass(frozen=True)
class StudentResult:
    """One trained student: its size, held-out loss curve and final-hidden-layer ID.

    ``loss`` is the held-out KL divergence (cross-entropy minus the teacher's entropy) for
    ``loss_name="kl"``, the mean squared error for ``"mse"`` and mean |Δ|^p for ``"power"``,
    after the last step; ``cross_entropy`` and ``teacher_entropy`` are nan unless
    ``loss_name="kl"``. ``curve_steps``/``curve_losses`` hold the same held-out loss at
    log-spaced steps (:func:`curve_steps`), for :func:`convergence`. The ID fields are those
    of :class:`ActivationID` (``id_note`` its ``note``; ``live_units`` the final hidden
    layer's units that are not dead), measured on ``n_id`` fresh inputs (nan when
    ``n_id=0``).
    ``seed`` is the student's run (its initialisation, :func:`student_seed`); ``seconds``
    and ``cpu_seconds`` are the wall and CPU time of the whole training with the other
    students of its stream (summed over the calls, when it resumed from a checkpoint).
    """

    width: int
    depth: int
    seed: int
    n_params: int
    loss: float
    cross_entropy: float
    teacher_entropy: float
    id_twonn: float
    id_mle: float
    id_points: int
    id_duplicates_dropped: int
    live_units: int | float = field(default=math.nan, kw_only=True)
    id_note: str
    loss_name: str
    power: float
    schedule: str
    shortened: bool
    steps: int
    samples: int
    dtype: str
    curve_steps: tuple[int, ...]
    curve_losses: tuple[float, ...]
    curve_window_start: int
    seconds: float
    cpu_seconds: float

    @property
    def converged(self) -> bool:
        """Whether the held-out loss passes :func:`convergence`'s rule."""
        return convergence(self.curve_steps, self.curve_losses, self.curve_window_start)[0]


def _held_out_loss(out: np.ndarray, y: np.ndarray, loss_name: str, power: float):
    """Held-out (loss, cross-entropy, teacher entropy) in float64 from outputs and teacher."""
    if loss_name != "kl":
        return float(np.mean(np.sum(np.abs(out - y) ** power, axis=1))), np.nan, np.nan
    log_p = y - np.logaddexp.reduce(y, axis=1, keepdims=True)
    log_q = out - np.logaddexp.reduce(out, axis=1, keepdims=True)
    p = np.exp(log_p)
    entropy = float(np.mean(-(p * log_p).sum(axis=1)))
    kl = float(np.mean((p * (log_p - log_q)).sum(axis=1)))
    return kl, kl + entropy, entropy


def final_hidden_activations(model, x: np.ndarray) -> np.ndarray:
    """Activations of the last hidden layer (after its ReLU) for inputs ``x``, float32.

    Examples
    --------
    >>> import numpy as np
    >>> from scaling.teacher_student import make_student
    >>> from scaling.teacher_student import final_hidden_activations
    >>> model = make_student(3, 8, 2, 1)
    >>> final_hidden_activations(model, np.zeros((5, 3), np.float32)).shape
    (5, 8)
    """
    import torch

    dtype = next(model.parameters()).dtype
    with torch.no_grad():
        return model[:-1](torch.from_numpy(np.asarray(x)).to(dtype)).float().numpy()


def _specs(students, seed: int, caller: str) -> list[StudentSpec]:
    specs = []
    for student in students:
        if len(student) not in (2, 3):
            raise ValueError(f"{caller}: each student must be (width, depth) or (width, depth, "
                             f"run); got {student!r}.")
        width = check_int(student[0], "width", caller, 1)
        depth = check_int(student[1], "depth", caller, 1)
        run = check_int(student[2], "run", caller, 0) if len(student) == 3 else seed
        specs.append(StudentSpec(width, depth, run))
    if len(set(specs)) != len(specs):
        raise ValueError(f"{caller}: students must be distinct; got {list(students)!r}. Give "
                         f"repeated shapes different runs, (width, depth, run).")
    return specs


def train_students(
    teacher,
    students: Sequence[tuple[int, ...]],
    *,
    seed: int = 0,
    schedule: str | Schedule = "smoke",
    loss: str = "kl",
    power: float = 2.0,
    bias_std: float = BIAS_STD,
    dtype: str = "float64",
    engine: str = "batched",
    padding: str = "none",
    n_eval: int = 10_000,
    n_id: int = 12_000,
    n_curve: int = 24,
    n_jobs: int = 1,
    progress: bool | None = None,
    on_steps: Callable[[int], None] | None = None,
    checkpoint: str | Path | None = None,
    checkpoint_every: float = CHECKPOINT_SECONDS,
    keep_checkpoint: bool = False,
) -> list[StudentResult]:
    """Train many students on one online stream: the teacher labels each batch once.

    Every step draws a fresh batch from the stream seeded by ``seed``, computes the
    teacher's targets once (float32), and takes one Adam step (default betas, Table 1
    learning rate) for every student, all students at once (``engine="batched"``). Student
    (width, depth, run) is initialised with :func:`student_seed` (run, width, depth), so its
    result does not depend on which other students share the stream. The held-out loss on
    ``n_eval`` fresh inputs (teacher in float64) is recorded at :func:`curve_steps`; at the
    end the final hidden layer's ID is measured on ``n_id`` more (:func:`activation_dimension`).

    Parameters
    ----------
    teacher : RandomTeacher, ProductTeacher or LatentGaussianTeacher
        Anything with ``sample_inputs``, ``outputs``, ``n_inputs``, ``n_outputs``.
    students : sequence of (width, depth) or (width, depth, run)
        A pair means run = ``seed``. The authors' design trains every width and run of one
        k on one stream: pass (width, depth, run) triples.
    seed : int, default=0
        Seed of the data stream (training, held-out and ID inputs).
    schedule : str or Schedule, default="smoke"
        A name from :data:`SCHEDULES` (Table 1 or a shortened CPU version) or a Schedule.
    loss : {"kl", "mse", "power"}, default="kl"
        KL on soft labels (needs a two-logit teacher), squared error, or |Δ|^``power``.
    dtype : {"float32", "float64"}, default="float64"
        The students' arithmetic (the authors' float64). float32 is about 1.5x faster but
        moved final held-out losses by up to 22 % (median 0.7 %) against float64 on the
        same stream and initialisation (benchmarks/results/training_precision.json).
    engine : {"batched", "lockstep"}, default="batched"
        All students as stacked tensors, or one module and optimizer each (the reference;
        the same numbers up to round-off, slower).
    padding : {"none", "all"}, default="none"
        Batched groups: one per (width, depth), or one per depth padded to the widest.
    n_id : int, default=12000
        Inputs used for the ID; 0 skips the ID (reported as nan).
    n_curve : int, default=24
        About how many log-spaced steps record the held-out loss.
    n_jobs : int, default=1
        torch and BLAS threads while training (:func:`idest.utils.limit_threads`).
    progress : bool, optional
        A bar over steps (default: on a terminal, for long schedules).
    on_steps : callable, optional
        Called as ``on_steps(n)`` every :data:`STEPS_PER_REPORT` steps and at the end,
        with the steps taken since the last call (each step trains every student);
        :func:`run_sweep` uses it for a bar over student-steps.
    checkpoint : str or Path, optional
        A file for the training's state (every student's parameters and Adam state, the
        step, the stream's generator, the curve so far): written every
        ``checkpoint_every`` seconds of wall time, after the last step, and at SIGTERM or
        SIGINT (at the next step boundary; then the signal takes its course:
        KeyboardInterrupt, or the process ends). If the file exists when the call starts,
        the training continues from it and gives the numbers of an uninterrupted one,
        bit for bit; a file written by another configuration raises ValueError, except
        one whose schedule is a beginning of ``schedule`` (its phases, then more): the
        finished shorter training then goes on into the longer schedule (the curve keeps
        the points recorded at the shorter schedule's steps). The file is removed when
        the call returns, unless ``keep_checkpoint``.
    keep_checkpoint : bool, default=False
        Leave the checkpoint (then holding the finished state) for the caller: :func:`run_sweep`
        keeps it, once the unit's rows are in the CSV, as the unit's final state
        (``checkpoint_path(path, k, final=True)``), from which a longer schedule can continue.
    checkpoint_every : float, default=300
        Wall seconds between two checkpoints (0: after every step).

    Returns
    -------
    list of StudentResult, in the order of ``students``.

    Examples
    --------
    >>> from scaling.teacher_student import random_teacher
    >>> from scaling.teacher_student import train_students
    >>> res = train_students(random_teacher(2), [(22, 2, 0), (22, 2, 1)], schedule="smoke",
    ...                      n_eval=500, n_id=0, progress=False)
    >>> [r.n_params for r in res], all(r.loss < 0.05 for r in res)
    ([1014, 1014], True)
    """
    caller = "train_students"
    check_choice(loss, "loss", caller, LOSSES)
    if loss == "kl" and teacher.n_outputs != 2:
        raise invalid(caller, "teacher", "a two-logit teacher for loss='kl'",
                      f"{teacher.n_outputs} output(s)",
                      "Use loss='mse' or a teacher built with loss='kl'.")
    if not students:
        raise invalid(caller, "students", "at least one (width, depth)", "none")
    check_choice(dtype, "dtype", caller, DTYPES)
    check_choice(engine, "engine", caller, ENGINES)
    check_choice(padding, "padding", caller, PADDINGS)
    check_int(n_eval, "n_eval", caller, 1)
    n_id = check_int(n_id, "n_id", caller, 0)
    n_curve = check_int(n_curve, "n_curve", caller, 2)
    if not isinstance(checkpoint_every, (int, float)) or not 0 <= checkpoint_every < math.inf:
        raise invalid(caller, "checkpoint_every", "a number of seconds >= 0",
                      repr(checkpoint_every))
    specs = _specs(students, seed, caller)
    sched = get_schedule(schedule)
    p = loss_power(loss, power)
    importlib.import_module("torch")  # before the limit: limit_threads limits loaded pools
    saver = None if checkpoint is None else _Saver(
        Path(checkpoint), float(checkpoint_every),
        training_key(teacher, students, seed=seed, schedule=sched, loss=loss, power=power,
                     bias_std=bias_std, dtype=dtype, engine=engine, padding=padding,
                     n_eval=n_eval, n_id=n_id, n_curve=n_curve))
    with limit_threads(check_int(n_jobs, "n_jobs", caller, 1)):
        results = _train(teacher, specs, seed, sched, loss, p, bias_std, dtype, engine,
                         padding, n_eval, n_id, n_curve, progress, on_steps, saver)
    if saver is not None and not keep_checkpoint:
        saver.path.unlink(missing_ok=True)
    return results


def loss_power(loss: str, power: float) -> float:
    """The exponent p of the loss |Δ|^p that α = 2p/d refers to: 2 for "mse", ``power``
    otherwise (the "kl" and "power" losses).

    Examples
    --------
    >>> from scaling.teacher_student._train import loss_power
    >>> loss_power("mse", 4), loss_power("power", 3)
    (2.0, 3.0)
    """
    return 2.0 if loss == "mse" else float(power)


def training_key(teacher, students: Sequence[tuple[int, ...]], *, seed: int = 0,
                 schedule: str | Schedule = "smoke", loss: str = "kl", power: float = 2.0,
                 bias_std: float = BIAS_STD, dtype: str = "float64", engine: str = "batched",
                 padding: str = "none", n_eval: int = 10_000, n_id: int = 12_000,
                 n_curve: int = 24) -> dict:
    """The checkpoint key of :func:`train_students` called with these arguments (the same
    defaults): what a checkpoint must match for that training to continue from it
    (:func:`scaling.teacher_student._checkpoint.key_mismatch`).

    Examples
    --------
    >>> from scaling.teacher_student import random_teacher
    >>> from scaling.teacher_student._train import training_key
    >>> key = training_key(random_teacher(2), [(22, 2, 0)], schedule="smoke")
    >>> key["students"], key["schedule"][0], key["dtype"]
    ([[22, 2, 0]], 'smoke', 'float64')
    """
    return checkpoint_key(teacher, _specs(students, seed, "training_key"), seed,
                          get_schedule(schedule), loss=loss,
                          power=loss_power(loss, power), bias_std=bias_std,
                          dtype=dtype, engine=engine, padding=padding, n_eval=n_eval,
                          n_id=n_id, n_curve=n_curve)


#: Steps between two ``on_steps`` reports (a report costs a lock in a sweep worker).
STEPS_PER_REPORT = 100


@dataclass
class _Saver:
    """Where and how often :func:`_train` checkpoints, and under which key."""

    path: Path
    every: float
    key: dict
    last: float = 0.0

    def due(self) -> bool:
        return time.perf_counter() - self.last >= self.every

    def save(self, trainer, progress: dict) -> None:
        save_checkpoint(self.path, self.key, trainer.state_dict(), progress)
        self.last = time.perf_counter()


def _train(teacher, specs, seed, sched, loss, p, bias_std, dtype, engine, padding, n_eval,
           n_id, n_curve, progress, on_steps, saver) -> list[StudentResult]:
    options = {"loss_name": loss, "power": p, "bias_std": bias_std, "dtype": dtype}
    if engine == "batched":
        trainer = BatchedEngine(specs, teacher.n_inputs, teacher.n_outputs, padding=padding,
                                **options)
    else:
        trainer = LockstepEngine(specs, teacher.n_inputs, teacher.n_outputs, **options)
    train_rng, eval_rng, id_rng = (np.random.default_rng([seed, s]) for s in range(3))
    x_eval = teacher.sample_inputs(n_eval, eval_rng)
    y_eval = teacher.outputs(x_eval, np.float64)
    record = curve_steps(sched, n_curve)
    curves: list[list[tuple[float, float, float]]] = [[] for _ in specs]

    def evaluate() -> None:
        for curve, out in zip(curves, trainer.outputs(x_eval), strict=True):
            curve.append(_held_out_loss(out, y_eval, loss, p))

    start, start_cpu = time.perf_counter(), time.process_time()
    step, spent, spent_cpu = 0, 0.0, 0.0
    resumed = None if saver is None else load_checkpoint(saver.path, saver.key,
                                                         "train_students")
    if resumed is not None:
        state, saved = resumed
        trainer.load_state_dict(state)
        train_rng.bit_generator.state = saved["rng"]
        curves = [[tuple(point) for point in curve] for curve in saved["curves"]]
        step, spent, spent_cpu = saved["step"], saved["seconds"], saved["cpu_seconds"]
        # the points so far were recorded at the saved record's steps (a shorter schedule's,
        # when this one continues it); from here on, at this schedule's
        record = (*(s for s in saved["record"] if s <= step), *(s for s in record if s > step))

    def progress_now() -> dict:
        return {"step": step, "rng": train_rng.bit_generator.state, "curves": curves,
                "record": list(record),
                "seconds": spent + time.perf_counter() - start,
                "cpu_seconds": spent_cpu + time.process_time() - start_cpu}

    first, reported = step, step
    if saver is not None:
        saver.last = time.perf_counter()
    with (StopSignals() if saver is not None else contextlib.nullcontext()) as stop, \
            progress_bar(progress, total=sched.steps, desc=f"train seed={seed}",
                         unit="step", work=sched.samples * 1e6) as bar:
        if resumed is None:
            evaluate()  # step 0
        elif bar is not None:
            bar.update(step)
        end = 0
        for phase in sched.phases:
            end += phase.steps
            while step < end:
                x = teacher.sample_inputs(phase.batch_size, train_rng)
                y = teacher.outputs(x)
                if loss == "kl":
                    y = np.exp(y - np.logaddexp.reduce(y, axis=1, keepdims=True))
                trainer.step(x, y, phase.lr)
                step += 1
                if step in record:
                    evaluate()
                if bar is not None:
                    bar.update(1)
                if on_steps is not None and (step % STEPS_PER_REPORT == 0
                                             or step == sched.steps):
                    on_steps(step - reported)
                    reported = step
                if saver is not None and (stop.received is not None or saver.due()):
                    saver.save(trainer, progress_now())
                    if stop.received is not None:
                        stop.resume_default()
        if saver is not None and step > first:  # an interruption from here costs the ID
            saver.save(trainer, progress_now())
        if saver is not None and stop.received is not None:  # arrived after the last check
            stop.resume_default()
    ids = ([activation_dimension(h) for h in trainer.hidden(teacher.sample_inputs(n_id, id_rng))]
           if n_id else [ActivationID(np.nan, np.nan, 0, 0, note="not measured (n_id=0)")]
           * len(specs))
    seconds = spent + time.perf_counter() - start
    cpu_seconds = spent_cpu + time.process_time() - start_cpu
    results = []
    for spec, curve, found in zip(specs, curves, ids, strict=True):
        value, ce, entropy = curve[-1]
        results.append(StudentResult(
            width=spec.width, depth=spec.depth, seed=spec.run,
            n_params=parameter_count(teacher.n_inputs, spec.width, spec.depth,
                                     teacher.n_outputs),
            loss=value, cross_entropy=ce, teacher_entropy=entropy, id_twonn=found.id_twonn,
            id_mle=found.id_mle, id_points=found.id_points,
            id_duplicates_dropped=found.id_duplicates_dropped, live_units=found.live_units,
            id_note=found.note,
            loss_name=loss, power=p,
            schedule=sched.name, shortened=sched.shortened, steps=sched.steps,
            samples=sched.samples, dtype=dtype, curve_steps=record,
            curve_losses=tuple(c[0] for c in curve),
            curve_window_start=convergence_start(sched), seconds=seconds,
            cpu_seconds=cpu_seconds))
    return results
