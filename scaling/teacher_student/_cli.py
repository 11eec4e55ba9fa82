"""``idest reproduce``: the teacher/student reproduction of 4/α ≈ d, resumable."""

from __future__ import annotations

import argparse
import shlex
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reproduce",
        help="teacher/student sweep and report: 4/α against the measured ID",
        description="Train students on random teachers with k features, fit L(N) per k, "
        "measure the ID of the final hidden layer, and write a report (markdown + PNGs) "
        "with 4/α against ID and k. Each k is one unit, appended to results.csv when it "
        "finishes; rerunning with the same --out resumes an interrupted sweep. The issue-17 "
        "grid: --schedule paper --n-widths 7 --seeds 0 1 2 --variant authors.",
    )
    p.add_argument("--schedule", default="cpu",
                   help="'cpu' (Table 1 cut 16-fold, default), 'paper' (Table 1 in full), "
                   "'paper-long' (Table 1, then 10,000 steps at lr 1e-4: run it with "
                   "--continue-from a 'paper' run), 'paper-lowlr' (Table 1 with every "
                   "learning rate 10x smaller: fewer dead ReLUs; not the paper's recipe) or a "
                   "schedule name from "
                   "scaling.teacher_student.SCHEDULES")
    p.add_out("idest-output/teacher_student",
              "output folder for results.csv, README.md and the figures")
    p.add_argument("--features", type=int, nargs="+", default=list(range(2, 9)),
                   help="numbers of teacher features k")
    p.add_argument("--n-widths", type=int, default=6,
                   help="student widths n = floor(22*1.3^i), i < this")
    p.add_argument("--depths", type=int, nargs="+", default=[2],
                   help="hidden layers of the students (the paper uses 2 3 4)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1],
                   help="runs (initialisations) per width; every run of a k shares its stream")
    p.add_argument("--variant", default="clean", choices=["clean", "authors"],
                   help="clean: students see the k active inputs; authors: all 20")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                   help="the students' arithmetic (default float64: float32 moved final "
                   "losses by up to 22 %%, benchmarks/results/training_precision.json)")
    p.add_jobs("worker processes, one k each")
    p.add_argument("--commit", action="store_true",
                   help="git-commit results.csv after every finished k (so that a stopped run "
                   "continues from the repository)")
    p.add_argument("--continue-from", metavar="FOLDER",
                   help="output folder of an earlier run with a shorter schedule (this "
                   "schedule's first phases, e.g. 'paper' for 'paper-long'): each k starts "
                   "from the state that run finished in, instead of step 0")
    p.add_argument("--report-only", action="store_true",
                   help="rewrite the report from an existing results.csv without training")
    p.add_quiet()
    p.add_cluster()  # train the units (one k each) on a Dask cluster instead of --jobs
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from idest.cli import cluster_client
    from scaling.teacher_student._report import write_report
    from scaling.teacher_student._reproduce import reproduce, reproduction_config

    command = "idest " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["reproduce"] \
        else "idest reproduce"
    if args.report_only:
        if args.continue_from:
            raise ValueError("--continue-from trains students; drop it with "
                             "--report-only, which only redraws the report.")
        path = write_report(Path(args.out) / "results.csv", args.out, command=command)
    else:
        config = reproduction_config(args.schedule, features=args.features,
                                     n_widths=args.n_widths, depths=args.depths,
                                     seeds=args.seeds, variant=args.variant,
                                     dtype=args.dtype)
        with cluster_client(args) as client:
            path = reproduce(config, args.out, n_jobs=args.jobs, command=command,
                             progress=False if args.quiet else None, commit=args.commit,
                             client=client, continue_from=args.continue_from)
    print(f"report    : {path or 'not written yet (fewer than 2 values of k)'}")
    return 0
