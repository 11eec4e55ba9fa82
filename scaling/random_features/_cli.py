"""``idest regimes``: the random-feature scaling regimes and the solvable model, as one report."""

from __future__ import annotations

import argparse

from scaling.random_features import _report as regimes_report


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "regimes", help="random-feature scaling regimes and the solvable model (report)",
        description="The four scaling regimes of a random-ReLU-feature teacher/student "
        "(Bahri et al. 2021), the duality alpha_D ~ alpha_P ~ alpha_K with the replica curve, "
        "and the breakdown of the solvable model (Maloney, Roberts & Sully): sweeps, fits, "
        "figures and a markdown summary. About 5-10 minutes on 2 cores; finished points are "
        "cached, so an interrupted run resumes.")
    regimes_report.add_arguments(p)
    p.set_defaults(func=lambda args: regimes_report.run(args, "idest regimes"))
