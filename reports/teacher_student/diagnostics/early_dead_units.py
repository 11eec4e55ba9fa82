"""When do the students' final-layer ReLUs die? Dead units after a short training.

Trains the 7 widths of the paper grid (run 0, depth 2, the authors' variant, float64, the
grid's stream) of one k for the given phases and prints, per width, the final hidden
layer's dead units (zero on all of 10,000 fresh inputs) at initialisation and at the end,
and the held-out KL. Each phase is STEPS:BATCH:LR. Run from the repository root::

    python reports/teacher_student/diagnostics/early_dead_units.py 4 0.5 2000:200:0.01
    python reports/teacher_student/diagnostics/early_dead_units.py 4 0.5 20000:200:0.001

(second argument: the standard deviation of the initial biases; the authors' 0.5). The
final state is kept in ``$TMPDIR`` (one file per call).
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from idest.utils import limit_threads
from scaling.teacher_student import Phase, Schedule, reproduction_config, train_students
from scaling.teacher_student._engines import BatchedEngine
from scaling.teacher_student._train import _specs, live_unit_count

k, bias_std = int(sys.argv[1]), float(sys.argv[2])
phases = tuple(Phase(int(s), int(b), float(lr))
               for s, b, lr in (p.split(":") for p in sys.argv[3:]))
steps = sum(p.steps for p in phases)
config = reproduction_config("paper", features=(k,), n_widths=7, seeds=(0,), variant="authors")
teacher = config.teacher(k)
students = [(w, 2, 0) for w in config.widths]
x = teacher.sample_inputs(10_000, np.random.default_rng([7, 7]))


def dead(engine):
    return [h.shape[1] - live_unit_count(h) for h in engine.hidden(x)]


with limit_threads(1):
    engine = BatchedEngine(_specs(students, config.stream_seed, "early_dead_units"),
                           teacher.n_inputs, teacher.n_outputs, loss_name=config.loss,
                           power=config.power, bias_std=bias_std, dtype=config.dtype)
    print("widths", list(config.widths))
    print("dead at init ", dead(engine), flush=True)
    tag = "-".join(sys.argv[3:])
    state = Path(tempfile.gettempdir()) / f"early_dead_k{k}_b{bias_std}_{tag}.ckpt"
    start = time.time()
    res = train_students(teacher, students, seed=config.stream_seed,
                         schedule=Schedule("pilot", phases, shortened=True),
                         bias_std=bias_std, n_eval=10_000, n_id=0, progress=False,
                         checkpoint=state, keep_checkpoint=True)
    engine.load_state_dict(torch.load(state, weights_only=True)["engine"])
    print(f"dead at {steps}", dead(engine), f"{time.time() - start:.0f}s")
    print("loss", [f"{r.loss:.3g}" for r in res])
