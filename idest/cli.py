"""The ``idest`` command line: one command, one subcommand per task.

Each subcommand lives in the module that does its work and registers itself
through a ``register(subparsers)`` function listed in :data:`SUBCOMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Modules that provide ``register(subparsers)``; each subcommand parser sets
#: ``func`` to a callable taking the parsed arguments and returning an exit code.
SUBCOMMANDS = [
    "idest._cli_demo",
    "idest._cli_knn",
    "idest._cli_estimate",
    "idest._cli_scan",
    "scaling._cli_fit",
    "scaling._cli_reproduce",
    "scaling._cli_regimes",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="idest",
        description="Intrinsic dimension of neural-network activations, exact k-NN, "
        "and scaling-law fits.",
    )
    from idest import __version__

    parser.add_argument("--version", action="version", version=f"idest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``idest`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"idest {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
