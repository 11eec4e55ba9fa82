"""``idest scan``: the intrinsic dimension of every layer of a language model over a text."""

from __future__ import annotations

import argparse
import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from idest.utils import atomic_write, content_hash


def add_arguments(p: argparse.ArgumentParser, *, n_sequences: int, seq_len: int,
                  out: str) -> None:
    """The options of a scan (shared by ``idest scan`` and ``idest demo``, with their defaults)."""
    p.add_argument("--model", default="all-MiniLM-L6-v2",
                   help="a local checkpoint folder, a hub name already in the HuggingFace cache "
                   "(gpt2), or all-MiniLM-L6-v2, the embedded model (default)")
    p.add_argument("--text", help="a text file or a directory of .txt files (default: the "
                   "docstrings of the Python standard library)")
    p.add_argument("--seq-len", type=int, default=seq_len,
                   help=f"tokens per sequence, special tokens included (default {seq_len})")
    p.add_argument("--n-sequences", type=int, default=n_sequences,
                   help=f"number of distinct sequences (default {n_sequences})")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--tokens", default="auto",
                   help="vector per sequence: last | mean | all | position:P (default: last for "
                   "decoders such as GPT-2, mean for encoders such as BERT)")
    p.add_argument("--skip-first", action="store_true",
                   help="leave each sequence's first token out of 'all' and 'mean'")
    p.add_argument("--sites", nargs="+", help="site names or glob patterns (default: GPT-2: every "
                   "block's attention, MLP and residual output; encoders: hidden_states.*)")
    p.add_argument("--list-sites", action="store_true", help="print the capturable sites and stop")
    p.add_argument("--out", default=out, help=f"output folder (default {out}); a scan "
                   "interrupted there resumes where it stopped")
    p.add_argument("--ks", type=int, nargs="+", default=[2, 3, 4],
                   help="k of the k-NN CDF estimates, 2 being TwoNN (default 2 3 4)")
    p.add_argument("--mle-k", type=int, default=20, help="neighbours of the MLE (default 20)")
    p.add_argument("--bootstrap", type=int, default=0, help="bootstrap resamples for intervals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--download", action="store_true",
                   help="allow the HuggingFace hub to be contacted (off by default)")
    p.add_argument("--no-progress", action="store_true")


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

    documents = read_texts(args.text) if args.text else stdlib_docstrings()
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


def _summary(rows: list[dict]) -> list[str]:
    """One line per site: the ID of every estimator."""
    columns = list(dict.fromkeys((r["estimator"], r["k"]) for r in rows if r["estimator"]))
    width = max(len(r["site"]) for r in rows)
    head = "".join(f"{f'{m} k={k}':>14}" for m, k in columns)
    lines = [f"{'site':<{width}}  layer{head}  {'n':>6}  {'dup':>5}"]
    for site in dict.fromkeys(r["site"] for r in rows):
        mine = [r for r in rows if r["site"] == site]
        ids = {(r["estimator"], r["k"]): r["id"] for r in mine}
        cells = "".join(f"{ids[c]:14.2f}" if ids.get(c) is not None else f"{'-':>14}"
                        for c in columns)
        line = (f"{site:<{width}}  {mine[0]['layer']:>5}{cells}  {mine[0]['n_points']:>6}"
                f"  {mine[0]['n_duplicates_dropped'] or 0:>5}")
        lines.append(line + (f"  ({mine[0]['note']})" if mine[0]["note"] else ""))
    return lines


def run(args: argparse.Namespace) -> int:
    if not args.download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from idest.activations import Reduction, list_sites, load_pretrained
    from idest.scan import default_sites, layer_scan

    t0 = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = load_pretrained(args.model, download=args.download)
    if args.list_sites:
        print("\n".join(list_sites(model)))
        return 0
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
    result = layer_scan(model, seqs.batches(args.batch_size), sites, out, reduce=reduction,
                        n_samples=len(seqs), ks=args.ks, mle_k=args.mle_k,
                        n_bootstrap=args.bootstrap, random_state=args.seed,
                        inputs_id={"sequences": content_hash(seqs.input_ids)},
                        title=f"{args.model}: {len(seqs)} sequences of {args.seq_len} tokens, "
                        f"{tokens} token vectors",
                        progress=False if args.no_progress else None)
    print("\n".join(_summary(result.rows)))
    reused = f" ({result.n_sites_reused} site(s) reused from an earlier run)" \
        if result.n_sites_reused else ""
    print(f"time      : {time.perf_counter() - t0:.1f} s{reused}")
    print(f"table     : {result.csv}\n            {result.json}")
    print(f"plot      : {result.plot}")
    return 0
