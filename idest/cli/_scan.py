"""``idest scan``: the intrinsic dimension of every layer of a language model over a text."""

from __future__ import annotations

import argparse
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from idest.cli._options import cluster_client, number, progress
from idest.utils import atomic_write, content_hash


def add_arguments(p: argparse.ArgumentParser, *, n_sequences: int, seq_len: int,
                  out: str, gride: int | None = None) -> None:
    """The options of a scan (shared by ``idest scan`` and ``idest demo``, with their defaults)."""
    p.add_argument("--model", default="all-MiniLM-L6-v2",
                   help="a local checkpoint folder, a hub name already in the HuggingFace cache "
                   "(gpt2), or all-MiniLM-L6-v2, the embedded model")
    p.add_argument("--tokenizer", metavar="PATH",
                   help="the tokenizer's folder or cached hub name, when it is not beside the "
                   "model's weights (default: the model's)")
    p.add_argument("--text", help="a text file or a directory of .txt files (default: the "
                   "docstrings of the Python standard library)")
    p.add_argument("--seq-len", type=number(int, 2), default=seq_len,
                   help="tokens per sequence, special tokens included (at most the model's "
                   "positions)")
    p.add_argument("--n-sequences", type=number(int, 1), default=n_sequences,
                   help="number of distinct sequences")
    p.add_argument("--batch-size", type=number(int, 1), default=32,
                   help="sequences per forward pass")
    p.add_argument("--tokens", type=_tokens, default="auto",
                   help="vector per sequence: last | mean | all | position:P (auto: last for "
                   "decoders such as GPT-2, mean for encoders such as BERT)")
    p.add_argument("--skip-first", action="store_true",
                   help="leave each sequence's first token out of 'all' and 'mean'")
    p.add_argument("--sites", nargs="+", help="site names or glob patterns (default: GPT-2: every "
                   "block's attention, MLP and residual output; encoders: hidden_states.*)")
    p.add_argument("--list-sites", action="store_true", help="print the capturable sites and stop")
    p.add_out(out, "output folder (scan.csv, scan.json, scan.png, activations); a scan "
            "interrupted there resumes where it stopped")
    p.add_argument("--ks", type=number(int, 2), nargs="+", default=[2, 3, 4], metavar="K",
                   help="k of the k-NN CDF estimates, 2 being TwoNN")
    p.add_argument("-k", "--k", type=number(int, 2), default=20, help="neighbours of the MLE")
    p.add_argument("--gride", type=number(int, 2), metavar="RANGE_MAX", default=gride,
                   help="also GRIDE across scales up to n2 = RANGE_MAX (e.g. 256): the plateau "
                   "ID per site in the table and in scan.png beside TwoNN, the ID against scale "
                   "in scan_gride.png" + ("" if gride else " (default: off)"))
    if gride:
        p.add_argument("--no-gride", dest="gride", action="store_const", const=None,
                       default=argparse.SUPPRESS, help="leave GRIDE out")
    p.add_bootstrap()
    p.add_seed("the sequence choice and the bootstrap")
    p.add_jobs("torch threads of the forward pass")
    p.add_argument("--download", action="store_true",
                   help="allow the HuggingFace hub to be contacted (off by default)")
    p.add_quiet()
    p.add_cluster()  # estimate the sites on a Dask cluster


def _tokens(text: str) -> str:
    """``--tokens``: 'auto' or a reduction :meth:`idest.activations.Reduction.parse` accepts."""
    from idest.activations import Reduction

    if text != "auto":
        try:
            Reduction.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan", help="intrinsic dimension of every layer of a language model",
        description="Capture activations of a HuggingFace model over a text (one vector per "
        "sequence at every site), estimate the ID of each site with TwoNN, the k-NN CDF and the "
        "MLE from one k-NN search, and write scan.csv, scan.json and scan.png (Sharma & Kaplan "
        "figure 10).")
    add_arguments(p, n_sequences=10_000, seq_len=128, out="idest-scan")
    p.set_defaults(func=run)


def _sequences(args: argparse.Namespace, tokenizer, out: Path):
    """The token sequences of this scan, cached in ``out`` so a resumed scan skips tokenising.

    The cache is keyed by the text's content and the tokenizer's vocabulary (not by
    their names), so an edited text or another tokenizer is tokenised again.
    """
    from idest.activations import TokenSequences, read_texts, stdlib_docstrings, token_sequences

    documents = read_texts(args.text) if args.text else stdlib_docstrings(progress=progress(args))
    meta = {"text": content_hash(documents), "tokenizer": content_hash(tokenizer.get_vocab()),
            "seq_len": args.seq_len, "n_sequences": args.n_sequences, "seed": args.seed}
    cache = out / "sequences.npz"
    if cache.exists():
        try:
            with open(cache, "rb") as handle, np.load(handle) as saved:
                if json.loads(str(saved["meta"])) == meta:
                    return TokenSequences(saved["input_ids"], int(saved["stride"]),
                                          int(saved["n_corpus_tokens"]))
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            print(f"note      : {cache} is damaged; tokenising again")
        else:
            print("note      : the text or the tokenizer changed since the last run in "
                  f"{out}; tokenising again")
    seqs = token_sequences(documents, tokenizer, args.seq_len, n_sequences=args.n_sequences,
                           random_state=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache, "wb") as handle:  # an interrupted write leaves the old file
        np.savez(handle, input_ids=seqs.input_ids, stride=seqs.stride,
                 n_corpus_tokens=seqs.n_corpus_tokens, meta=json.dumps(meta))
    return seqs


def _cell(row: dict) -> str:
    """``id [ci_low, ci_high]`` (GRIDE's with its plateau's n2 range), or the ID alone when no
    interval was computed."""
    cell = f"{row['id']:.2f}"
    if row.get("ci_low") is not None and row.get("ci_high") is not None:
        cell += f" [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    if row.get("n2_low") is not None:
        cell += f" n2 {row['n2_low']}-{row['n2_high']}"
    return cell


def _summary(rows: list[dict]) -> list[str]:
    """One line per site: the ID of every estimator, with its interval."""
    columns = list(dict.fromkeys((r["estimator"], r["k"]) for r in rows if r["estimator"]))
    columns.sort(key=lambda c: c[0] != "twonn" and c[0] != "gride")  # GRIDE beside TwoNN
    names = [f"gride n2<={k}" if m == "gride" else f"{m} k={k}" for m, k in columns]
    width = max(len(r["site"]) for r in rows)
    cells = {(r["site"], r["estimator"], r["k"]): _cell(r) for r in rows if r["id"] is not None}
    widths = [max([len(name)] + [len(v) for (_, *c), v in cells.items() if tuple(c) == column])
              + 2 for name, column in zip(names, columns, strict=True)]
    head = "".join(f"{name:>{w}}" for name, w in zip(names, widths, strict=True))
    lines = [f"{'site':<{width}}  layer{head}  {'n':>6}  {'dup':>5}"]
    for site in dict.fromkeys(r["site"] for r in rows):
        mine = [r for r in rows if r["site"] == site]
        line = "".join(f"{cells.get((site, *c), '-'):>{w}}"
                       for c, w in zip(columns, widths, strict=True))
        line = (f"{site:<{width}}  {mine[0]['layer']:>5}{line}  {mine[0]['n_points']:>6}"
                f"  {mine[0]['n_duplicates_dropped'] or 0:>5}")
        notes = [f"{r['estimator']}: {r['note']}" if r["estimator"] else r["note"]
                 for r in mine if r["note"]]
        lines.append(line + (f"  ({'; '.join(notes)})" if notes else ""))
    if any(r.get("ci_low") is not None for r in rows):
        # without a bootstrap only GRIDE has intervals: its Fisher (Wald) ones
        bootstrap = any(r.get("ci_low") is not None for r in rows if r["estimator"] != "gride")
        lines.append(("ID [95% bootstrap interval over the sequences]" if bootstrap else
                      "ID [95% interval: GRIDE's Fisher information, no bootstrap]")
                     + ("; GRIDE: the plateau's ID, interval over its scales, n2 range" if any(
                         r["estimator"] == "gride" for r in rows) else ""))
    return lines


def _check_sites(model, patterns: list[str], name: str) -> None:
    """Every pattern matches a site, else one line naming the closest sites."""
    import difflib
    import fnmatch
    import re

    from idest.activations import list_sites

    available = list_sites(model)
    generic = list(dict.fromkeys(re.sub(r"\.\d+(?=\.|$)", ".*", n) for n in available))
    for pattern in patterns:
        if not fnmatch.filter(available, pattern):
            close = difflib.get_close_matches(pattern, generic + available, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise ValueError(f"--sites {pattern!r} matches no site of {name}; {hint}"
                             f"'idest scan --list-sites --model {name}' lists them all.")


def _check_seq_len(model, seq_len: int) -> None:
    """A sequence must fit the model's position embeddings."""
    config = model.config
    positions = getattr(config, "max_position_embeddings", None) or getattr(
        config, "n_positions", None)
    if positions and seq_len > positions:
        raise ValueError(f"--seq-len {seq_len} is longer than the {positions} positions of this "
                         f"model ({config.model_type}); pass --seq-len {positions} or less.")


def run(args: argparse.Namespace) -> int:
    if not args.download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from idest.activations import Reduction, list_sites, load_pretrained
    from idest.scan import default_sites, layer_scan

    t0 = time.perf_counter()
    if args.jobs:
        torch.set_num_threads(args.jobs)
    model, tokenizer = load_pretrained(args.model, download=args.download,
                                       tokenizer=args.tokenizer)
    if args.list_sites:
        print("\n".join(list_sites(model)))
        return 0
    _check_seq_len(model, args.seq_len)
    if args.sites:
        _check_sites(model, args.sites, args.model)
    decoder = model.config.model_type == "gpt2" or bool(getattr(model.config, "is_decoder", 0))
    tokens = args.tokens if args.tokens != "auto" else ("last" if decoder else "mean")
    reduction = Reduction.parse(tokens)
    if args.skip_first:
        reduction = Reduction(reduction.kind, reduction.position, skip_first=True)
    sites = args.sites or default_sites(model)
    out = Path(args.out)
    seqs = _sequences(args, tokenizer, out)
    print(f"model     : {args.model} ({type(model).__name__}, "
          f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)")
    overlap = (f", windows overlap (stride {seqs.stride})"
               if seqs.stride < args.seq_len - 2 and len(seqs) > 1 else "")
    print(f"text      : {args.text or 'Python standard-library docstrings'}: "
          f"{seqs.n_corpus_tokens} tokens -> {len(seqs)} sequences of {args.seq_len}{overlap}")
    print(f"vectors   : {tokens}{' (first token skipped)' if args.skip_first else ''} "
          f"at {' '.join(sites)}")
    with cluster_client(args) as client:  # the sites are estimated there (None: here)
        result = layer_scan(model, seqs.batches(args.batch_size), sites, out, reduce=reduction,
                            n_samples=len(seqs), ks=args.ks, mle_k=args.k,
                            n_bootstrap=args.bootstrap, random_state=args.seed,
                            gride_range_max=args.gride,
                            inputs_id={"sequences": content_hash(seqs.input_ids)},
                            title=f"{args.model}: {len(seqs)} sequences of {args.seq_len} "
                            f"tokens, {tokens} token vectors",
                            progress=progress(args), client=client)
    print("\n".join(_summary(result.rows)))
    reused = f" ({result.n_sites_reused} site(s) reused from an earlier run)" \
        if result.n_sites_reused else ""
    print(f"time      : {time.perf_counter() - t0:.1f} s{reused}")
    print(f"table     : {result.csv}\n            {result.json}")
    print(f"plot      : {result.plot}")
    if result.gride_plot:
        print(f"            {result.gride_plot}")
    return 0
