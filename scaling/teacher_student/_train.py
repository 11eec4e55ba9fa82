"""Online training of students on a teacher, evaluation, and the ID of the final hidden layer.

Sharma & Kaplan A.2: every batch is fresh (the data set is effectively infinite), Adam with
default betas and the step schedules of Table 1; cross-entropy students learn the teacher's
exact output distribution (soft labels). Several students can train *in lockstep* on one
data stream (:func:`train_students`): the teacher's labels for each batch are computed once
and each student still sees every sample exactly once. A student's result depends only on
its own seed and the stream, not on which other students share the stream.

torch is imported inside the functions, so ``import scaling`` stays torch-free.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from idest.utils import check_choice, check_int, invalid, progress_bar
from scaling.teacher_student._student import BIAS_STD, make_student, parameter_count
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


def _shortened(schedule: Schedule, factor: int, name: str) -> Schedule:
    phases = tuple(Phase(max(1, p.steps // factor), p.batch_size, p.lr) for p in schedule.phases)
    return Schedule(name, phases, shortened=True)


#: Table 1 of Sharma & Kaplan: random teachers (figures 5, 6, 7, 8) and vetted (figure 14).
PAPER_RANDOM = Schedule("paper-random", (Phase(200_000, 200, 0.01), Phase(20_000, 1000, 0.01),
                                         Phase(20_000, 4000, 0.001)), shortened=False)
PAPER_VETTED = Schedule("paper-vetted", (Phase(100_000, 200, 0.01), Phase(50_000, 200, 0.001),
                                         Phase(20_000, 200, 0.0001)), shortened=False)

#: Named schedules. ``cpu-shortF-random`` is Table 1 (random) with every phase F× shorter;
#: ``smoke`` is a few hundred steps for tests and demos.
SCHEDULES: dict[str, Schedule] = {
    s.name: s for s in (
        PAPER_RANDOM,
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


@dataclass(frozen=True)
class StudentResult:
    """One trained student: its size, held-out loss and final-hidden-layer ID.

    ``loss`` is the KL divergence (cross-entropy minus the teacher's entropy) for
    ``loss_name="kl"``, the mean squared error for ``"mse"`` and mean |Δ|^p for ``"power"``;
    ``cross_entropy`` and ``teacher_entropy`` are nan unless ``loss_name="kl"``.
    ``id_twonn`` (TwoNN, 10 % tail discarded) and ``id_mle`` (Levina–Bickel, k=20) are
    measured on ``n_id`` fresh inputs; ``id_distinct`` counts distinct activation rows.
    ``seconds`` and ``cpu_seconds`` are the wall and CPU time of the whole lockstep call
    (training, evaluation and ID of every student that shared the stream).
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
    id_distinct: int
    loss_name: str
    power: float
    schedule: str
    shortened: bool
    steps: int
    samples: int
    seconds: float
    cpu_seconds: float


def student_seed(seed: int, width: int, depth: int) -> int:
    """The initialisation seed of student (width, depth) in trial ``seed``."""
    return int(np.random.SeedSequence([seed, width, depth]).generate_state(1, np.uint64)[0])


def _targets(y, loss_name: str):
    import torch

    y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))
    return torch.softmax(y, dim=1) if loss_name == "kl" else y


def _train_loss(output, target, loss_name: str, power: float):
    import torch

    if loss_name == "kl":  # cross-entropy on soft labels: same gradient as the KL divergence
        return -(target * torch.log_softmax(output, dim=1)).sum(dim=1).mean()
    return (output - target).abs().pow(power).sum(dim=1).mean()


def _evaluate(model, x, y_teacher: np.ndarray, loss_name: str, power: float):
    """Held-out (loss, cross-entropy, teacher entropy) in float64."""
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(x)).double().numpy()
    y = y_teacher.astype(np.float64)
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

    with torch.no_grad():
        return model[:-1](torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy()


def activation_dimension(H: np.ndarray) -> tuple[float, float, int]:
    """(TwoNN, MLE k=20, number of distinct rows) of final-layer activations ``H``.

    Dead-ReLU rows can coincide exactly; idest keeps one copy of each distinct point
    and warns (its documented policy), and the count of distinct rows is recorded here
    instead of the warning.
    """
    from idest import mle, twonn

    distinct = int(np.unique(H, axis=0).shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        d_twonn = twonn(H, discard_fraction=0.1, progress=False).dimension
        d_mle = mle(H, k=20, progress=False).dimension
    return float(d_twonn), float(d_mle), distinct


@contextlib.contextmanager
def limited_threads(n_jobs: int) -> Iterator[None]:
    """Run with ``n_jobs`` torch intra-op and BLAS threads, restoring them afterwards.

    Small students train fastest on one thread; on a busy machine more threads spin and
    can make training many times slower.
    """
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n_jobs)
    try:
        with threadpool_limits(n_jobs):
            yield
    finally:
        torch.set_num_threads(previous)


def train_students(
    teacher,
    students: Sequence[tuple[int, int]],
    *,
    seed: int = 0,
    schedule: str | Schedule = "smoke",
    loss: str = "kl",
    power: float = 2.0,
    bias_std: float = BIAS_STD,
    n_eval: int = 10_000,
    n_id: int = 12_000,
    n_jobs: int = 1,
    progress: bool | None = None,
) -> list[StudentResult]:
    """Train students of shapes ``(width, depth)`` in lockstep on one online stream.

    Every step draws a fresh batch from the stream seeded by ``seed``, computes the
    teacher's targets once, and takes one Adam step (default betas, Table 1 learning
    rate) for each student. Student (width, depth) is initialised with
    :func:`student_seed` (seed, width, depth), so its result does not depend on which
    other students share the stream. Then every student is evaluated on ``n_eval``
    fresh held-out inputs and its final hidden layer's ID is measured on ``n_id`` more.

    Parameters
    ----------
    teacher : RandomTeacher, ProductTeacher or LatentGaussianTeacher
        Anything with ``sample_inputs``, ``outputs``, ``n_inputs``, ``n_outputs``.
    students : sequence of (width, depth)
    seed : int, default=0
        Seed of the data stream (training, held-out and ID inputs) and of the students.
    schedule : str or Schedule, default="smoke"
        A name from :data:`SCHEDULES` (Table 1 or a shortened CPU version) or a Schedule.
    loss : {"kl", "mse", "power"}, default="kl"
        KL on soft labels (needs a two-logit teacher), squared error, or |Δ|^``power``.
    n_id : int, default=12000
        Inputs used for the ID; 0 skips the ID (reported as nan).
    n_jobs : int, default=1
        torch and BLAS threads while training (see :func:`limited_threads`).

    Returns
    -------
    list of StudentResult, in the order of ``students``.

    Examples
    --------
    >>> from scaling.teacher_student import random_teacher
    >>> from scaling.teacher_student import train_students
    >>> res = train_students(random_teacher(2), [(22, 2)], schedule="smoke", n_eval=500,
    ...                      n_id=0, progress=False)
    >>> res[0].n_params, res[0].loss < 0.05
    (1014, True)
    """
    caller = "train_students"
    check_choice(loss, "loss", caller, LOSSES)
    if loss == "kl" and teacher.n_outputs != 2:
        raise invalid(caller, "teacher", "a two-logit teacher for loss='kl'",
                      f"{teacher.n_outputs} output(s)",
                      "Use loss='mse' or a teacher built with loss='kl'.")
    if not students:
        raise invalid(caller, "students", "at least one (width, depth)", "none")
    check_int(n_eval, "n_eval", caller, 1)
    n_id = check_int(n_id, "n_id", caller, 0)
    sched = get_schedule(schedule)
    with limited_threads(check_int(n_jobs, "n_jobs", caller, 1)):
        return _train_in_lockstep(teacher, students, seed, sched, loss, power, bias_std,
                                  n_eval, n_id, progress)


def _train_in_lockstep(teacher, students, seed, sched, loss, power, bias_std, n_eval, n_id,
                       progress) -> list[StudentResult]:
    import torch

    p = 2.0 if loss == "mse" else float(power)
    models = [make_student(teacher.n_inputs, w, d, teacher.n_outputs, bias_std=bias_std,
                           random_state=student_seed(seed, w, d)) for w, d in students]
    optimizers = [torch.optim.Adam(m.parameters(), lr=sched.phases[0].lr) for m in models]
    train_rng, eval_rng, id_rng = (np.random.default_rng([seed, s]) for s in range(3))

    start, start_cpu = time.perf_counter(), time.process_time()
    with progress_bar(progress, total=sched.steps, desc=f"train seed={seed}",
                      unit="step", work=sched.samples * 1e6) as bar:
        for phase in sched.phases:
            for opt in optimizers:
                for group in opt.param_groups:
                    group["lr"] = phase.lr
            for _ in range(phase.steps):
                x = teacher.sample_inputs(phase.batch_size, train_rng)
                target = _targets(teacher.outputs(x), loss)
                xt = torch.from_numpy(x)
                for model, opt in zip(models, optimizers, strict=True):
                    opt.zero_grad(set_to_none=True)
                    _train_loss(model(xt), target, loss, p).backward()
                    opt.step()
                if bar is not None:
                    bar.update(1)

    x_eval = teacher.sample_inputs(n_eval, eval_rng)
    y_eval = teacher.outputs(x_eval)
    x_id = teacher.sample_inputs(n_id, id_rng) if n_id else None
    measured = []
    for model in models:
        model.eval()
        measured.append((*_evaluate(model, x_eval, y_eval, loss, p),
                         *(activation_dimension(final_hidden_activations(model, x_id))
                           if n_id else (np.nan, np.nan, 0))))
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    results = []
    for (width, depth), (value, ce, entropy, twonn, mle, distinct) in zip(students, measured,
                                                                          strict=True):
        results.append(StudentResult(
            width=width, depth=depth, seed=seed,
            n_params=parameter_count(teacher.n_inputs, width, depth, teacher.n_outputs),
            loss=value, cross_entropy=ce, teacher_entropy=entropy, id_twonn=twonn,
            id_mle=mle, id_distinct=distinct, loss_name=loss, power=p, schedule=sched.name,
            shortened=sched.shortened, steps=sched.steps, samples=sched.samples,
            seconds=seconds, cpu_seconds=cpu_seconds))
    return results
