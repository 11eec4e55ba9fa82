"""Dead ReLU units in the final hidden layer of the full grid's finished students.

A unit is dead when it is zero on every one of 10,000 fresh inputs. Reads each unit's
final state (``results.k<K>.final.ckpt``, kept by the sweep beside its CSV; not in the
repository) and prints, per width, the dead and the live units of the 3 runs. Run from
the repository root::

    python reports/teacher_student/diagnostics/dead_units.py reports/teacher_student/paper 4 5
"""

import sys
from pathlib import Path

import numpy as np
import torch

from idest.utils import limit_threads
from scaling.teacher_student import checkpoint_path, reproduction_config
from scaling.teacher_student._checkpoint import read_progress
from scaling.teacher_student._engines import BatchedEngine
from scaling.teacher_student._train import _specs, live_unit_count


def dead_units(folder: Path, k: int) -> dict[int, list[int]]:
    """Dead final-layer units of every run of unit k, by width."""
    config = reproduction_config("paper", features=(k,), n_widths=7, seeds=(0, 1, 2),
                                 variant="authors")
    teacher = config.teacher(k)
    students = [(w, d, s) for (_, w, d, s) in config.runs()]
    final = checkpoint_path(folder / "results.csv", k, final=True)
    if read_progress(final)["key"]["students"] != [list(s) for s in students]:
        raise ValueError(f"{final} holds other students than the grid's unit k={k}")
    with limit_threads(1):
        engine = BatchedEngine(_specs(students, config.stream_seed, "dead_units"),
                               teacher.n_inputs, teacher.n_outputs, loss_name=config.loss,
                               power=config.power, bias_std=config.bias_std,
                               dtype=config.dtype)
        engine.load_state_dict(torch.load(final, weights_only=True)["engine"])
        hidden = engine.hidden(teacher.sample_inputs(10_000, np.random.default_rng([7, 7])))
    dead: dict[int, list[int]] = {}
    for (width, _, _), h in zip(students, hidden, strict=True):
        dead.setdefault(width, []).append(width - live_unit_count(h))
    return dead


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    for k in map(int, sys.argv[2:]):
        print(f"k={k}: final hidden layer, dead units / live units of the 3 runs")
        for width, dead in sorted(dead_units(folder, k).items()):
            print(f"  n={width:3d}: dead {dead}, live {[width - d for d in dead]}")
