"""The options every ``idest`` subcommand spells the same way, and their checks.

One vocabulary, the Python API's: ``-k/--k`` for one neighbour count, ``--ks``
where several are taken, ``-o/--out`` for the output, ``--bootstrap N``
(one default, :data:`DEFAULT_BOOTSTRAP`), ``--jobs``, ``--seed``, ``--quiet``, and
``--scheduler``/``--workers`` where a command runs on a Dask cluster.
Values are checked by argparse while the command line is read, so a bad one
stops the command with its usage before any work starts.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable

from idest.scan import DEFAULT_N_BOOTSTRAP

#: Bootstrap resamples of every command that computes intervals (``idest estimate``,
#: ``idest scan``, ``idest demo``, ``idest fit``): the default of the layer scan.
DEFAULT_BOOTSTRAP = DEFAULT_N_BOOTSTRAP


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default (none is printed for flags or empty ones)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == []:
            return action.help
        if isinstance(action.default, list | tuple):  # as typed on the command line
            return f"{action.help} (default: {' '.join(map(str, action.default))})"
        return super()._get_help_string(action)


def number(kind: type, low: float | None = None, high: float | None = None, *,
           strict_low: bool = False, strict_high: bool = False) -> Callable[[str], float]:
    """An argparse ``type`` that reads ``kind`` (int or float) and checks its range.

    Examples
    --------
    >>> number(int, 2)("3")
    3
    >>> number(float, 0, strict_low=True)("-1")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a number > 0; got '-1'
    """
    noun = "an integer" if kind is int else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if strict_low else '≥'} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if strict_high else '≤'} {high:g}")
    expected = f"{noun} {' and '.join(bounds)}".strip()

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}") from None
        too_low = low is not None and (value <= low if strict_low else value < low)
        too_high = high is not None and (value >= high if strict_high else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"expected {expected}; got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse



class Parser(argparse.ArgumentParser):
    """The parser of every subcommand: defaults in the help, and the shared options.

    ``idest`` creates every subcommand's parser with this class, so a plugin's
    ``register(subparsers)`` gets these methods without importing idest.

    Examples
    --------
    >>> p = Parser(prog="idest example")
    >>> p.add_out("out.json", "a JSON file"); p.add_bootstrap(); p.add_seed(); p.add_quiet()
    >>> args = p.parse_args(["-o", "x.json", "--quiet"])
    >>> args.out, args.bootstrap, args.seed, progress(args)
    ('x.json', 100, 0, False)
    """

    number = staticmethod(number)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_out(self, default: str | None, what: str) -> None:
        """``-o/--out``: where the output goes (``what`` says whether a file or a folder)."""
        self.add_argument("-o", "--out", default=default, metavar="PATH", help=what)

    def add_bootstrap(self, what: str = "over points") -> None:
        """``--bootstrap N``: resamples for the intervals, :data:`DEFAULT_BOOTSTRAP` by default."""
        self.add_argument("--bootstrap", type=number(int, 0), default=DEFAULT_BOOTSTRAP,
                          metavar="N",
                          help=f"bootstrap resamples {what} for the 95%% intervals (0: none)")

    def add_seed(self, what: str = "the bootstrap") -> None:
        """``--seed``: the one seed of a command's randomness."""
        self.add_argument("--seed", type=int, default=0, help=f"seed of {what}")

    def add_jobs(self, what: str) -> None:
        """``--jobs``: parallel workers (processes or threads, ``what`` says which)."""
        self.add_argument("--jobs", type=number(int, 1), default=None, metavar="N",
                          help=f"{what} (default: the cores available)")

    def add_cluster(self) -> None:
        """``--scheduler ADDRESS`` or ``--workers N``: a Dask cluster (:func:`cluster_client`)."""
        group = self.add_mutually_exclusive_group()
        group.add_argument("--scheduler", metavar="ADDRESS",
                           help="run on this running Dask scheduler (tcp://host:8786); needs "
                           "pip install 'idest[dask]'")
        group.add_argument("--workers", type=number(int, 1), metavar="N",
                           help="run on a local Dask cluster of N one-thread worker processes, "
                           "started and closed by this command")

    def add_quiet(self, what: str = "no progress bars (they are only drawn on a terminal)"
                  ) -> None:
        """``--quiet`` on every command; ``what`` says what it silences."""
        self.add_argument("--quiet", action="store_true", help=what)


def cluster_client(args: argparse.Namespace) -> contextlib.AbstractContextManager:
    """The Dask client of ``--scheduler``/``--workers`` (None without them), as a context.

    Prints the dashboard's address when a cluster is used and closes a local
    cluster it started (:func:`idest.utils.dask_client`).

    Examples
    --------
    >>> p = Parser(prog="idest example")
    >>> p.add_cluster()
    >>> with cluster_client(p.parse_args([])) as client:
    ...     print(client)
    None
    """
    from idest.utils import dask_client

    return dask_client(args.scheduler, args.workers)


def progress(args: argparse.Namespace) -> bool | None:
    """The ``progress=`` of the library calls: off with ``--quiet``, else on a terminal."""
    return False if args.quiet else None
