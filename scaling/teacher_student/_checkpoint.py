"""Mid-training checkpoints: a unit cut off part-way resumes where it stopped.

A unit of the full grid trains 21 students for about an hour of CPU time, and a unit is
written to the results CSV only when it finishes. :func:`train_students` therefore saves
the whole state of its training every few minutes of wall time, after the last step, and
when SIGTERM or SIGINT arrives (at the next step boundary, so the state is consistent):

* every student's parameters and Adam moments and step count (the engine's state);
* the number of steps taken (the phase of the schedule follows from it);
* the state of the training stream's random generator (``bit_generator.state``);
* the held-out loss curve recorded so far (and the steps it was recorded at), and the
  wall and CPU seconds spent;
* the key: everything the training depends on (:func:`checkpoint_key`).

A checkpoint is one file, replaced atomically (:func:`idest.utils.atomic_write`), so an
interruption while writing leaves the previous checkpoint intact. Training restarted with
the same key continues from it and takes exactly the steps it would have taken without the
interruption (same batches, same Adam arithmetic: the final numbers are equal bit for bit);
a checkpoint with another key is refused with an error naming what differs, never reused.
The one exception is a schedule that continues the saved one (its phases, then more):
a finished training goes on into the longer schedule from where it stopped, which is the
training of that schedule from step 0, bit for bit (the curve keeps the points recorded
under the shorter schedule, then records the longer one's).

torch is imported inside the functions, so importing this module needs no torch.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np

from idest.utils import atomic_write, content_hash, limit_threads

#: Version of the checkpoint layout (part of the key: a new layout never loads an old file).
#: Layout 2 fingerprints the teacher by :func:`teacher_fingerprint`; layout 1 hashed its
#: float64 outputs bit for bit, which move with the BLAS thread count (a sweep worker on one
#: thread wrote keys that its two-thread parent read as another teacher's).
FORMAT = 2
#: Default wall seconds between two checkpoints of a training.
CHECKPOINT_SECONDS = 300.0
#: What the sweep's checkpoint files end with (git-ignored: they are never committed).
SUFFIX = ".ckpt"


def checkpoint_key(teacher, specs, seed: int, schedule, **options: Any) -> dict[str, Any]:
    """Everything a training's numbers depend on, as a JSON-ready dict.

    The teacher enters by its description and :func:`teacher_fingerprint`, so two teachers
    that compute different functions never share a key.
    """
    return {"format": FORMAT, "teacher": teacher.description,
            "teacher_outputs": teacher_fingerprint(teacher),
            "students": [[s.width, s.depth, s.run] for s in specs], "seed": int(seed),
            "schedule": [schedule.name, [[p.steps, p.batch_size, p.lr]
                                         for p in schedule.phases]],
            **{name: value for name, value in sorted(options.items())}}


def teacher_fingerprint(teacher) -> str:
    """A hash of the teacher's outputs on 16 fixed inputs, computed in float64 on one BLAS
    thread and rounded to float32.

    The outputs (not the weights) enter, so that a change in how a teacher computes them
    also changes the key. One thread: a BLAS splits a product differently over two threads
    and then rounds some float64 outputs differently in their last bit. float32: another
    CPU's BLAS kernel moves them by as little, so a checkpoint resumes on another machine.

    Examples
    --------
    >>> from threadpoolctl import threadpool_limits
    >>> from scaling.teacher_student import random_teacher
    >>> from scaling.teacher_student._checkpoint import teacher_fingerprint
    >>> with threadpool_limits(2):
    ...     two = teacher_fingerprint(random_teacher(3))
    >>> teacher_fingerprint(random_teacher(3)) == two != teacher_fingerprint(random_teacher(4))
    True
    """
    x = teacher.sample_inputs(16, np.random.default_rng(0))
    with limit_threads(1):
        outputs = teacher.outputs(x, np.float64)
    return content_hash(np.asarray(outputs, dtype=np.float32))


def save_checkpoint(path: str | Path, key: dict[str, Any], engine_state: dict,
                    progress: dict[str, Any]) -> None:
    """Write ``key``, the engine's state and the loop's ``progress`` (JSON-ready: step,
    generator state, curves, seconds) to ``path``, replacing it atomically."""
    import torch

    meta = json.dumps({"key": key, **progress})
    with atomic_write(path, "wb") as handle:
        torch.save({"meta": meta, "engine": engine_state}, handle)


def load_checkpoint(path: str | Path, key: dict[str, Any], caller: str
                    ) -> tuple[dict, dict[str, Any]] | None:
    """(engine state, progress) saved at ``path``, or None when there is no file.

    The file continues a training with ``key`` when :func:`key_mismatch` finds nothing:
    every field of its key agrees, except that its schedule may be a beginning of this one
    (the same phases, then more: a finished training continues into a longer schedule,
    taking exactly the steps a training of the longer one from step 0 takes).
    ``progress["record"]`` lists the steps of the curve points saved so far. Raises
    ValueError when the file was written for another configuration or in another layout
    (the message names the fields that differ).
    """
    import torch

    path = Path(path)
    if not path.exists():
        return None
    saved = torch.load(path, weights_only=True)
    meta = read_progress(path, saved)
    fields = key_mismatch(meta.pop("key"), key)
    if fields:
        raise ValueError(f"{caller}: checkpoint {path} was written by another training "
                         f"({', '.join(fields)}); resume with the configuration that wrote "
                         f"it, or delete the file to start this one from step 0.")
    return saved["engine"], meta


def read_progress(path: str | Path, saved: dict | None = None) -> dict[str, Any]:
    """The progress saved in the checkpoint at ``path`` (``saved``: the file, already
    loaded): its ``key``, ``step``, ``record`` (the steps of the curve points saved so
    far) and the rest of what :func:`save_checkpoint` wrote."""
    if saved is None:
        import torch

        saved = torch.load(Path(path), weights_only=True)
    return json.loads(saved["meta"])


def key_mismatch(found: dict[str, Any], key: dict[str, Any]) -> list[str]:
    """Why a training with ``key`` cannot continue from a checkpoint saved with ``found``,
    as "field: value there, value here" items; empty when it can (every field equal, the
    saved schedule the same as this one or a beginning of it). A file of another layout
    (:data:`FORMAT`) gives that one item: its other fields mean other things.

    Examples
    --------
    >>> from scaling.teacher_student._checkpoint import key_mismatch
    >>> saved = {"dtype": "float64", "schedule": ["a", [[100, 200, 0.01]]]}
    >>> key_mismatch(saved, {"dtype": "float64", "schedule": ["b", [[100, 200, 0.01],
    ...                                                          [50, 200, 0.001]]]})
    []
    >>> key_mismatch(saved, {"dtype": "float32", "schedule": saved["schedule"]})
    ["dtype: 'float64' there, 'float32' here"]
    """
    expected = json.loads(json.dumps(key))  # tuples as lists, as stored
    if found.get("format") != expected.get("format"):
        return [f"format: {found.get('format')!r} there, {expected.get('format')!r} here (an "
                f"older layout, whose key cannot be compared with this one's)"]
    fields = sorted(f for f in {*found, *expected} - {"schedule"}
                    if found.get(f) != expected.get(f))
    if not schedule_continues(found["schedule"][1], expected["schedule"][1]):
        fields = ["schedule", *fields]
    return [f"{f}: {found.get(f)!r} there, {expected.get(f)!r} here" for f in fields]


def schedule_continues(saved: list, phases: list) -> bool:
    """Whether a training saved under the phases ``saved`` ([steps, batch size, lr] each)
    can go on under ``phases``: the same phases, or a beginning of them.

    Examples
    --------
    >>> from scaling.teacher_student._checkpoint import schedule_continues
    >>> table1 = [[200000, 200, 0.01], [20000, 1000, 0.01], [20000, 4000, 0.001]]
    >>> schedule_continues(table1, table1 + [[20000, 4000, 0.0001]])
    True
    >>> schedule_continues(table1 + [[20000, 4000, 0.0001]], table1)  # a longer one stops
    False
    """
    return len(saved) <= len(phases) and [list(p) for p in phases[:len(saved)]] == saved


class StopSignals:
    """While active, SIGINT and SIGTERM only set :attr:`received`; the training loop acts
    on it at the next step boundary (checkpoint, then :meth:`resume_default`).

    Installed only in the main thread (Python delivers signals there; elsewhere, e.g. in
    a thread pool, the periodic checkpoints are the protection). The previous handlers
    are restored on exit.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                previous = signal.getsignal(sig)
                if previous is not None and previous != signal.SIG_IGN:  # else: leave it
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def resume_default(self) -> None:
        """Restore the previous handlers and do what the received signal would have done
        without them: call the previous handler (KeyboardInterrupt for SIGINT), or, if it
        was the default action, take it (SIGTERM terminates the process)."""
        signum, self.received = self.received, None
        previous = self._previous.get(signum, signal.SIG_DFL)
        self.__exit__()
        if callable(previous):
            previous(signum, None)
        else:
            os.kill(os.getpid(), signum)  # the default action, now that it is restored
