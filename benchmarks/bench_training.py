"""Teacher/student training throughput: one student at a time against all students batched.

Run (about 5 minutes on a busy 2-core machine)::

    nice -n 19 .venv/bin/python benchmarks/bench_training.py -o benchmarks/results/training.json

What one k of the issue-17 grid trains: 7 widths ⌊22·1.3^i⌋ (22 … 106), depth 2, 3 runs =
21 students on one stream, at each batch size of Table 1 (200, 1000, 4000). For every batch
size the peers run in interleaved rounds (so that the load of a shared machine hits them
alike) and the medians are reported:

* ``teacher``: drawing the batch and the teacher's float32 labels (paid once per k);
* ``lockstep-float32``: the path before this benchmark, one module and one Adam per student
  (``lockstep-float64``: the same in float64, the arithmetic the precision check requires);
* ``batched-float32`` / ``batched-float64``: all students as stacked tensors, one group per
  width (``padding="none"``); ``batched-padded-float32``: one group, widths padded to 106;
* with ``--before REV``: ``before-batched-float64``, the batched float64 engine of git
  revision REV (e.g. ``main``), so that a change to the engine is timed against the engine
  it replaces in the same run.

Student-samples per second = students × batch size / (CPU seconds per step of the students
alone). The projection multiplies the median seconds per step (teacher + each student
engine) by Table 1's steps, for one thread: CPU hours per k and for k = 2…8. It also
measures the error of the float32 teacher labels: the mean KL divergence between the
teacher's softmax(6y) computed in float32 and in float64 on the same inputs.

``--threads`` instead times one batched float64 step (students, then teacher labels) with 1
and with 2 torch/BLAS threads, in wall time: can a unit use a second, idle core?

``--precision SCHEDULE`` instead trains the 21 students of one k in float32 and in float64
(same initialisation and stream) and reports every final held-out loss's relative change.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_info

from idest.utils import limit_threads
from scaling.teacher_student import (
    get_schedule,
    random_teacher,
    student_widths,
    train_students,
)
from scaling.teacher_student._engines import BatchedEngine, LockstepEngine, StudentSpec

K_GRID = tuple(range(2, 9))
RUNS = (0, 1, 2)
DEPTH = 2


def _cpu() -> str:
    """The CPU model and its vector extensions (conftest.describe_machine)."""
    from conftest import describe_machine

    machine = describe_machine()
    return f"{machine['cpu_model']} ({' '.join(machine['cpu_vector_flags'])})"


def _soft(y: np.ndarray) -> np.ndarray:
    return np.exp(y - np.logaddexp.reduce(y, axis=1, keepdims=True))


def _label_error(n: int = 100_000) -> dict[int, dict[str, float]]:
    """Per k: mean KL(p64 || p32) of the teacher's soft labels and max |Δ logit|."""
    out = {}
    for k in K_GRID:
        teacher = random_teacher(k, variant="clean")
        x = teacher.sample_inputs(n, np.random.default_rng(k))
        y32, y64 = teacher.outputs(x).astype(np.float64), teacher.outputs(x, np.float64)
        logp64 = y64 - np.logaddexp.reduce(y64, axis=1, keepdims=True)
        logp32 = y32 - np.logaddexp.reduce(y32, axis=1, keepdims=True)
        kl = float(np.mean((np.exp(logp64) * (logp64 - logp32)).sum(axis=1)))
        out[k] = {"mean_kl": kl, "max_abs_logit_error": float(np.abs(y32 - y64).max())}
    return out


def _engine_of_revision(rev: str):
    """The ``BatchedEngine`` class of ``scaling/teacher_student/_engines.py`` at git ``rev``."""
    source = subprocess.run(["git", "show", f"{rev}:scaling/teacher_student/_engines.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "_engines_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("_engines_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.BatchedEngine


def _engines(specs, n_inputs, before: str | None = None):
    common = {"loss_name": "kl", "power": 2.0, "bias_std": 0.5}
    peers = {} if before is None else {"before-batched-float64": _engine_of_revision(before)(
        specs, n_inputs, 2, dtype="float64", **common)}
    return {**peers,
        "lockstep-float32": LockstepEngine(specs, n_inputs, 2, dtype="float32", **common),
        "lockstep-float64": LockstepEngine(specs, n_inputs, 2, dtype="float64", **common),
        "batched-float32": BatchedEngine(specs, n_inputs, 2, dtype="float32", **common),
        "batched-float64": BatchedEngine(specs, n_inputs, 2, dtype="float64", **common),
        "batched-padded-float32": BatchedEngine(specs, n_inputs, 2, dtype="float32",
                                                padding="all", **common),
    }


def _time(steps: int, fn, *args) -> float:
    """Process CPU seconds per call of ``fn(*args)``, over ``steps`` calls."""
    start = time.process_time()
    for _ in range(steps):
        fn(*args)
    return (time.process_time() - start) / steps


def _label_batch(teacher, batch: int, rng) -> np.ndarray:
    return _soft(teacher.outputs(teacher.sample_inputs(batch, rng)))


def measure(k: int, rounds: int, steps_at: dict[int, int], before: str | None = None) -> dict:
    teacher = random_teacher(k, variant="clean")
    specs = [StudentSpec(w, DEPTH, r) for r in RUNS for w in student_widths(7)]
    engines = _engines(specs, teacher.n_inputs, before)
    rng = np.random.default_rng(0)
    per_batch = {}
    for batch, steps in steps_at.items():
        x = teacher.sample_inputs(batch, rng)
        target = _soft(teacher.outputs(x))
        for engine in engines.values():  # warm up (allocations, first calls)
            engine.step(x, target, 0.01)
        times: dict[str, list[float]] = {name: [] for name in ["teacher", *engines]}
        for _ in range(rounds):
            times["teacher"].append(_time(steps, _label_batch, teacher, batch, rng))
            for name, engine in engines.items():
                times[name].append(_time(steps, engine.step, x, target, 0.001))
        medians = {name: statistics.median(t) for name, t in times.items()}
        per_batch[batch] = {
            "seconds_per_step_median": medians,
            "seconds_per_step_all": times,
            "student_samples_per_second": {name: len(specs) * batch / s
                                           for name, s in medians.items() if name != "teacher"},
            "speedup_vs_lockstep": {name: medians[f"lockstep-{name.rsplit('-', 1)[1]}"] / s
                                    for name, s in medians.items()
                                    if "batched" in name},
        }
        if before is not None:
            per_batch[batch]["speedup_vs_before"] = (medians["before-batched-float64"]
                                                     / medians["batched-float64"])
    return {"k": k, "students": len(specs), "widths": student_widths(7), "runs": list(RUNS),
            "depth": DEPTH, "per_batch": per_batch}


def threads(k: int, rounds: int, steps_at: dict[int, int]) -> dict:
    """Wall seconds per batched float64 step and per teacher labelling, 1 against 2
    threads, in interleaved rounds (medians), and the speed-up of 2 threads."""
    teacher = random_teacher(k, variant="authors")
    specs = [StudentSpec(w, DEPTH, r) for r in RUNS for w in student_widths(7)]
    engine = BatchedEngine(specs, teacher.n_inputs, 2, loss_name="kl", power=2.0,
                           bias_std=0.5, dtype="float64")
    rng = np.random.default_rng(0)
    out = {}
    for batch, steps in steps_at.items():
        x = teacher.sample_inputs(batch, rng)
        target = _soft(teacher.outputs(x))
        wall: dict[str, dict[int, list[float]]] = {"students": {1: [], 2: []},
                                                   "teacher": {1: [], 2: []}}
        for _ in range(rounds):
            for n in (1, 2):
                with limit_threads(n):
                    engine.step(x, target, 0.001)  # warm the pool
                    for name, fn, args in (("students", engine.step, (x, target, 0.001)),
                                           ("teacher", _label_batch, (teacher, batch, rng))):
                        start = time.perf_counter()
                        for _ in range(steps):
                            fn(*args)
                        wall[name][n].append((time.perf_counter() - start) / steps)
        medians = {name: {n: statistics.median(v) for n, v in by.items()}
                   for name, by in wall.items()}
        out[batch] = {"wall_seconds_median": medians, "speedup_2_threads": {
            name: by[1] / by[2] for name, by in medians.items()}}
    return out


def project(result: dict) -> dict:
    """CPU hours of Table 1 (teacher + students) per k and for k = 2…8, for every student
    engine, from the median step times (the held-out curve and the ID add about a minute
    per k, not counted)."""
    schedule = get_schedule("paper-random")
    per_batch = {int(b): r["seconds_per_step_median"] for b, r in result["per_batch"].items()}
    engines = [name for name in per_batch[schedule.phases[0].batch_size] if name != "teacher"]
    hours_k = {engine: sum(p.steps * (per_batch[p.batch_size]["teacher"]
                                      + per_batch[p.batch_size][engine])
                           for p in schedule.phases) / 3600 for engine in engines}
    return {"schedule": schedule.name, "cpu_hours_per_k": hours_k,
            "cpu_hours_grid_k2_to_8": {e: h * len(K_GRID) for e, h in hours_k.items()},
            "speedup_vs_lockstep_same_dtype": {
                e: hours_k[f"lockstep-{e.rsplit('-', 1)[1]}"] / h for e, h in hours_k.items()}}


def precision(k: int, schedule: str, variants: list[str]) -> dict:
    """Final held-out losses of k's 21 students (same initialisation and stream) trained by
    each variant ``"<engine>-<dtype>"``, e.g. batched-float32 and batched-float64 (does the
    arithmetic change a loss?) or lockstep-float64 (how far do losses move when only the
    float64 summation order changes: the floor of any such comparison)."""
    teacher = random_teacher(k, variant="authors")
    students = [(w, DEPTH, r) for r in RUNS for w in student_widths(7)]
    losses = {}
    for variant in variants:
        engine, dtype = variant.rsplit("-", 1)
        results = train_students(teacher, students, schedule=schedule, dtype=dtype,
                                 engine=engine, n_id=0, progress=False)
        losses[variant] = [r.loss for r in results]
    return {"k": k, "schedule": schedule, "teacher_variant": "authors",
            "students": [list(s) for s in students], "losses": losses}


def compare(losses: dict[str, list[float]], a: str, b: str) -> dict:
    """Relative change of every loss from variant ``b`` to ``a``, and the run spread of b."""
    la, lb = np.array(losses[a]), np.array(losses[b])
    change = la / lb - 1
    by_width = lb.reshape(len(RUNS), -1)
    return {"pair": f"{a} / {b} - 1", "relative_change": change.tolist(),
            "max_abs_relative_change": float(np.abs(change).max()),
            "median_abs_relative_change": float(np.median(np.abs(change))),
            "smallest_loss": float(lb.min()),
            "run_spread_by_width": (by_width.std(axis=0) / by_width.mean(axis=0)).tolist()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out", default=None, help="write the JSON here")
    parser.add_argument("-k", "--k", type=int, default=5, help="teacher features (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per peer")
    parser.add_argument("--quick", action="store_true", help="fewer steps, for a smoke run")
    parser.add_argument("--before", metavar="REV", default=None,
                        help="also time the batched float64 engine of git revision REV")
    parser.add_argument("--threads", action="store_true",
                        help="instead: one batched float64 step with 1 and 2 threads")
    parser.add_argument("--precision", metavar="SCHEDULE", default=None,
                        help="instead: train k's 21 students with this schedule by every "
                        "--variants and compare their final losses")
    parser.add_argument("--variants", nargs="+",
                        default=["batched-float32", "batched-float64", "lockstep-float64"],
                        help="<engine>-<dtype> trainings for --precision")
    args = parser.parse_args(argv)
    if args.precision:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        with limit_threads(1):
            found = precision(args.k, args.precision, args.variants)
        pairs = [(v, "batched-float64") for v in args.variants if v != "batched-float64"]
        found.update(command=" ".join(["python", *sys.argv]), cpu=_cpu(), started_utc=started,
                     comparisons=[compare(found["losses"], a, b) for a, b in pairs
                                  if b in found["losses"]])
        if args.out:
            with open(args.out, "w") as f:
                f.write(json.dumps(found, indent=1) + "\n")
        print(json.dumps([{key: c[key] for key in ("pair", "max_abs_relative_change",
                                                    "median_abs_relative_change",
                                                    "smallest_loss")}
                          for c in found["comparisons"]], indent=1))
        return 0
    steps_at = {200: 4, 1000: 2, 4000: 1} if args.quick else {200: 40, 1000: 10, 4000: 3}
    if args.threads:
        found = {"command": " ".join(["python", *sys.argv]), "cpu": _cpu(),
                 "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "load_average_before": [round(v, 2) for v in os.getloadavg()],
                 "per_batch": threads(args.k, args.rounds, steps_at),
                 "timing": "wall seconds per call (time.perf_counter), median of "
                           "interleaved rounds"}
        found["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
        text = json.dumps(found, indent=1)
        if args.out:
            with open(args.out, "w") as f:
                f.write(text + "\n")
        print(text)
        return 0
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with limit_threads(1):
        result = measure(args.k, args.rounds, steps_at, args.before)
        labels = _label_error(20_000 if args.quick else 100_000)
    report = {
        "command": " ".join([sys.executable.rsplit("/", 1)[-1], *sys.argv]),
        "started_utc": started, "cpu": _cpu(), "threads": 1,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "blas": [{key: p.get(key) for key in ("internal_api", "version", "architecture")}
                 for p in threadpool_info()],
        "torch": torch.__version__, "numpy": np.__version__,
        "timing": "process CPU seconds per step (time.process_time), median of interleaved "
                  "rounds",
        "measurement": result, "projection": project(result),
        "teacher_label_error_float32": labels,
    }
    text = json.dumps(report, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    summary = {b: {"samples/s": {n: f"{v:.3g}" for n, v in r["student_samples_per_second"]
                                 .items()},
                   "speedup": {n: round(v, 2) for n, v in r["speedup_vs_lockstep"].items()},
                   **({"speedup_vs_before": round(r["speedup_vs_before"], 2)}
                      if "speedup_vs_before" in r else {})}
               for b, r in result["per_batch"].items()}
    print(json.dumps({"cpu": report["cpu"], "per_batch": summary,
                      "projection": report["projection"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
