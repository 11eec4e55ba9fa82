"""The CPU reproduction of 4/α ≈ d with random teachers (Sharma & Kaplan 3.1, figures 2, 3, 5, 6).

One call (or ``idest reproduce``) runs the sweep, resumable, and writes the report. The
default is sized for a 2-core machine (about half an hour): k = 2..8, six widths
n = ⌊22·1.3^i⌋, two-hidden-layer students, two runs, and Table 1's random-teacher
schedule cut 16-fold (``cpu-short16-random``). ``schedule="paper"`` runs Table 1 in full;
the issue-17 grid is ``--schedule paper --n-widths 7 --seeds 0 1 2 --variant authors``.
Each k is one unit: its rows are appended to ``results.csv`` when it finishes, so a
stopped run continues from the CSV.

Run ``python -m scaling.teacher_student --help`` or ``idest reproduce --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from scaling.teacher_student._student import student_widths
from scaling.teacher_student._sweep import SweepConfig, check_committable, git_commit, run_sweep

#: Schedules offered by the reproduction: the CPU cut (default), the paper's Table 1, Table 1
#: continued at a tenth of its last learning rate, and Table 1 with every rate 10x smaller.
REPRODUCTION_SCHEDULES = {"cpu": "cpu-short16-random", "paper": "paper-random",
                          "paper-long": "paper-random-long", "paper-lowlr": "paper-random-lowlr"}


def reproduction_config(
    schedule: str = "cpu", *, features=tuple(range(2, 9)), n_widths: int = 6,
    depths=(2,), seeds=(0, 1), variant: str = "clean", dtype: str = "float64",
) -> SweepConfig:
    """The sweep of the reproduction; ``schedule`` is "cpu" or "paper" (or a schedule name).

    Examples
    --------
    >>> from scaling.teacher_student import reproduction_config
    >>> cfg = reproduction_config()
    >>> cfg.schedule, cfg.features, cfg.widths, len(cfg.runs())
    ('cpu-short16-random', (2, 3, 4, 5, 6, 7, 8), (22, 28, 37, 48, 62, 81), 84)
    """
    return SweepConfig(features=tuple(features), widths=tuple(student_widths(n_widths)),
                       depths=tuple(depths), seeds=tuple(seeds),
                       schedule=REPRODUCTION_SCHEDULES.get(schedule, schedule),
                       variant=variant, dtype=dtype)


def reproduce(
    config: SweepConfig, out_dir: str | Path, *, n_jobs: int | None = None,
    progress: bool | None = True, command: str = "idest reproduce", commit: bool = False,
    client: Any = None, continue_from: str | Path | None = None,
) -> Path | None:
    """Run (or resume) the sweep into ``out_dir/results.csv`` and write the report there.

    Returns the path of the markdown report (``out_dir/README.md``), or None while the CSV
    holds fewer than 2 values of k (the report regresses across k). ``commit=True`` commits
    the CSV to its git repository after every finished k (:func:`git_commit`). With a Dask
    ``client`` the units train on that cluster (:func:`run_sweep`). ``continue_from``: the
    output folder of an earlier run whose schedule this one's continues; each k starts from
    the state it finished in there (:func:`run_sweep`).

    Examples
    --------
    >>> from scaling.teacher_student import reproduce, reproduction_config
    >>> reproduce(reproduction_config(), "idest-output/ts")  # doctest: +SKIP
    PosixPath('idest-output/ts/README.md')
    """
    from scaling.teacher_student._report import write_report

    out = Path(out_dir)
    if commit:
        check_committable(out / "results.csv")
    outcome = run_sweep(config, out / "results.csv", n_jobs=n_jobs, progress=progress,
                        on_unit=git_commit if commit else None, client=client,
                        continue_from=None if continue_from is None
                        else Path(continue_from) / "results.csv")
    print(f"sweep: {len(outcome.trained)} run(s) trained now, {outcome.n_previous} resumed "
          f"from {outcome.path}, {outcome.seconds:.0f} s", file=sys.stderr)
    ks = sorted({int(r["features"]) for r in outcome.rows})
    if len(ks) < 2:
        print(f"report: not written, the CSV holds k = {ks}; it needs 2 or more values of k",
              file=sys.stderr)
        return None
    return write_report(outcome.path, out, command=command)
