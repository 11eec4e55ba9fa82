"""GPT-2 layer scan in the setting of Sharma & Kaplan (2020), section 3.4, figures 10 and 11.

Figure 10 (default): 10,000 distinct text sequences, the last token of each,
the ID of every block's attention output, MLP output and residual output,
TwoNN k = 2, 3, 4 and the MLE::

    python scripts/gpt2_layer_scan.py --model gpt2 --text corpus/ --out gpt2-scan

Figure 11, left (``--single-sequence``): every token of one long sequence
(position 0 left out: under causal attention it is the same in every text).
Figure 11, right (``--positions 8 32 64 127``): the final layer (``ln_final``)
at fixed positions of distinct sequences, captured in one pass.

The weights must be available locally (a checkpoint folder, or ``gpt2`` in the
HuggingFace cache; ``--download`` allows fetching them). The paper does not
state its sequence length; the default here is 128 tokens, ``--seq-len``
changes it (GPT-2's context is 1024). Everything is resumable: run the same
command again after an interruption.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import idest
from idest.cli import Parser
from idest.cli import main as idest_main
from idest.scan import GPT2_PAPER_SITES, plot_scan


def position_scan(args: argparse.Namespace) -> int:
    """ID of the final layer at fixed token positions of distinct sequences (figure 11, right)."""
    from idest.activations import load_pretrained, read_texts, stdlib_docstrings, token_sequences

    model, tokenizer = load_pretrained(args.model, download=args.download)
    documents = read_texts(args.text) if args.text else stdlib_docstrings()
    seqs = token_sequences(documents, tokenizer, args.seq_len, n_sequences=args.n_sequences,
                           random_state=args.seed)
    bad = [p for p in args.positions if not 0 <= p < args.seq_len]
    if bad:
        raise ValueError(f"positions must lie in [0, {args.seq_len}); got {bad}.")
    out = Path(args.out)
    every = idest.capture(model, seqs.batches(args.batch_size), "ln_final", reduce="all",
                          out_dir=out / "activations", n_samples=len(seqs))["ln_final"]
    by_position = every.reshape(len(seqs), args.seq_len, -1)
    rows = []
    for p in args.positions:
        for r in idest.estimate_all(by_position[:, p], mle_k=args.k, n_bootstrap=args.bootstrap,
                                    random_state=args.seed, progress=False):
            rows.append({"site": "ln_final", "kind": "ln_final", "layer": p,
                         "estimator": r.method, "k": r.k, "id": r.dimension,
                         "ci_low": r.interval[0] if r.n_bootstrap else None,
                         "ci_high": r.interval[1] if r.n_bootstrap else None,
                         "n_points": r.n_points,
                         "n_duplicates_dropped": r.n_duplicates_dropped})
    with open(out / "positions.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot_scan(rows, out / "positions.png", title=f"{args.model}: final layer by token position",
              xlabel="token position")
    for r in rows:
        print(f"position {r['layer']:>5}  {r['estimator']:<8} k={r['k']:<3} ID {r['id']:.2f}")
    print(f"table: {out / 'positions.csv'}\nplot : {out / 'positions.png'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="gpt2", help="checkpoint folder or cached hub name")
    p.add_argument("--text", help="text file or directory (default: Python stdlib docstrings)")
    p.add_argument("--n-sequences", type=p.number(int, 1), default=10_000,
                   help="distinct sequences")
    p.add_argument("--seq-len", type=p.number(int, 2), default=128, help="tokens per sequence")
    p.add_argument("--batch-size", type=p.number(int, 1), default=16,
                   help="sequences per forward pass")
    p.add_argument("-k", "--k", type=p.number(int, 2), default=20, help="neighbours of the MLE")
    p.add_bootstrap()
    p.add_seed("the sequence choice and the bootstrap")
    p.add_out("gpt2-layer-scan", "output folder")
    p.add_argument("--download", action="store_true", help="allow the HuggingFace hub")
    p.add_quiet()
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--single-sequence", action="store_true",
                      help="figure 11, left: all tokens of one sequence of --seq-len tokens")
    mode.add_argument("--positions", type=int, nargs="+",
                      help="figure 11, right: final-layer ID at these token positions")
    args = p.parse_args(argv)
    if args.positions:
        return position_scan(args)
    scan = ["scan", "--model", args.model, "--seq-len", str(args.seq_len),
            "--batch-size", str(args.batch_size), "-k", str(args.k),
            "--bootstrap", str(args.bootstrap), "--seed", str(args.seed), "--out", args.out,
            "--sites", *GPT2_PAPER_SITES]
    if args.text:
        scan += ["--text", args.text]
    if args.download:
        scan.append("--download")
    if args.quiet:
        scan.append("--quiet")
    if args.single_sequence:
        scan += ["--n-sequences", "1", "--tokens", "all", "--skip-first"]
    else:
        scan += ["--n-sequences", str(args.n_sequences), "--tokens", "last"]
    return idest_main(scan)


if __name__ == "__main__":
    sys.exit(main())
