"""The ``idest`` command line: one command, one subcommand per task.

idest's own subcommands are the modules listed in :data:`SUBCOMMANDS`; other
installed packages add theirs through the ``idest.commands`` entry-point group
(``scaling`` registers ``fit``, ``reproduce`` and ``regimes`` there), so idest
never imports them by name. Each provides ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from idest.cli._options import Parser

#: Modules that provide ``register(subparsers)``; each subcommand parser sets
#: ``func`` to a callable taking the parsed arguments and returning an exit code.
SUBCOMMANDS = [
    "idest.cli._demo",
    "idest.cli._knn",
    "idest.cli._estimate",
    "idest.cli._scan",
]

#: The entry-point group through which other packages add subcommands.
ENTRY_POINT_GROUP = "idest.commands"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="idest",
        description="Intrinsic dimension of neural-network activations, exact k-NN, "
        "and scaling-law fits.",
    )
    from idest import __version__

    parser.add_argument("--version", action="version", version=f"idest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    for plugin in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        plugin.load()(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``idest`` console script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the subcommand's usage, not the top level's
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        owner = commands.choices.get(getattr(args, "command", None), parser)
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError, KeyError, ImportError) as exc:  # the user's input,
        # or an extra an option needs (--workers: "install ... pip install 'idest[dask]'")
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"idest {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
