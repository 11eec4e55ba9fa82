"""The ``idest`` command: one subcommand per task.

idest's own subcommands live beside this file; other packages (``scaling``)
add theirs through the ``idest.commands`` entry-point group.
"""

from idest.cli._main import build_parser, main
from idest.cli._options import DEFAULT_BOOTSTRAP, Parser, cluster_client

__all__ = ["DEFAULT_BOOTSTRAP", "Parser", "build_parser", "cluster_client", "main"]
