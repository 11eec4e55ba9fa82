"""Regressions of issue 10 (trust): each test replays one failure of the hostile-user run."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

import idest
from idest.estimators import DuplicatesWarning

ESTIMATORS = {
    "twonn": lambda X, **kw: idest.twonn(X, **kw),
    "knn_cdf": lambda X, **kw: idest.knn_cdf(X, 3, **kw),
    "mle": lambda X, **kw: idest.mle(X, **kw),
}


@pytest.fixture(scope="module")
def cloud():
    """4000 float32 points on a 5-dimensional subspace of R^20."""
    rng = np.random.default_rng(0)
    return (rng.normal(size=(4000, 5)) @ rng.normal(size=(5, 20))).astype(np.float32)


def one_ulp_twins(X, fraction, rng, every_coordinate=False):
    m = int(round(fraction * len(X)))
    twins = X[:m].copy()
    if every_coordinate:
        twins = np.nextafter(twins, np.float32(np.inf))
    else:
        cols = rng.integers(0, X.shape[1], m)
        twins[np.arange(m), cols] = np.nextafter(twins[np.arange(m), cols], np.float32(np.inf))
    return np.vstack([X, twins]), m


# ----------------------------------------------------------------- 2. near-duplicates


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_one_ulp_float32_twins_are_duplicates_at_that_precision(cloud, fraction, name):
    rng = np.random.default_rng(1)
    estimate = ESTIMATORS[name]
    reference = estimate(cloud).dimension
    Y, m = one_ulp_twins(cloud, fraction, rng, every_coordinate=fraction == 0.5)
    with pytest.warns(DuplicatesWarning, match=f"removed 0 exact duplicate.* and {m} point"):
        result = estimate(Y)
    assert result.dimension == pytest.approx(reference, rel=0.01)
    assert result.n_duplicates_dropped == m and result.n_points == len(cloud)


def test_twins_are_found_at_the_precision_of_the_input_dtype():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1500, 6))
    # float64 twins one float64 ulp away
    with pytest.warns(DuplicatesWarning, match="150 point.* float64 input"):
        idest.twonn(np.vstack([X, np.nextafter(X[:150], np.inf)]))
    # float16 twins one float16 ulp away, given as float16 (judged at float16 precision)
    H = X.astype(np.float16)
    twins = np.nextafter(H[:150], np.float16(np.inf))
    with pytest.warns(DuplicatesWarning, match="150 point.* float16 input"):
        idest.twonn(np.vstack([H, twins]))
    # the same values upcast to float32 are ~8000 float32 ulps apart: distinct points
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert idest.twonn(np.vstack([H, twins]).astype(np.float32)).n_duplicates_dropped == 0
    # integers are exact: only exact copies are duplicates
    counts = rng.integers(0, 1000, size=(800, 4))
    r = idest.twonn(counts)
    assert r.n_duplicates_dropped == 0


def test_duplicates_raise_counts_the_precision_twins(cloud):
    Y, m = one_ulp_twins(cloud[:500], 0.1, np.random.default_rng(3))
    with pytest.raises(ValueError, match=f"0 point.* exact duplicate.* and {2 * m} a neighbour "
                                         "closer than the input's precision"):
        idest.twonn(Y, duplicates="raise")


def test_merge_tolerance_does_not_collapse_when_every_point_is_twinned(cloud):
    """Twins far above the precision (1e-4 relative) at every point: the tolerance is
    relative to the second neighbour, so merge_tolerance=0.01 merges all of them."""
    X = cloud.astype(np.float64)
    rng = np.random.default_rng(4)
    twins = X + 1e-4 * np.linalg.norm(X, axis=1, keepdims=True) * rng.normal(
        size=X.shape) / np.sqrt(X.shape[1])
    with pytest.warns(DuplicatesWarning, match=f"merged {len(X)} near-duplicate"):
        r = idest.twonn(np.vstack([X, twins]), merge_tolerance=0.01)
    assert r.dimension == pytest.approx(idest.twonn(X).dimension, rel=1e-12)
    assert r.n_near_duplicates_merged == len(X)


@pytest.mark.parametrize("bad", [0, -1, np.nan, np.inf, "0.1", [0.1]])
def test_merge_tolerance_must_be_a_positive_finite_number(cloud, bad):
    with pytest.raises(ValueError, match="merge_tolerance must be a finite number > 0"):
        idest.twonn(cloud[:100], merge_tolerance=bad)


# ----------------------------------------------------------------- 6. extreme scales


@pytest.mark.parametrize("scale", [1e-300, 1e-200, 1e-150, 1e150, 1e200, 1e300])
@pytest.mark.parametrize("backend", ["cpp", "numba", "tree", "torch"])
def test_knn_is_exact_at_extreme_float64_scales(scale, backend):
    if backend == "torch":
        pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 7))
    reference = idest.knn(X, 4, backend=backend)
    scaled = X * scale
    nn = idest.knn(scaled, 4, backend=backend)
    assert np.isfinite(nn.distances).all() and (nn.distances > 0).all()
    np.testing.assert_array_equal(nn.indices, reference.indices)
    np.testing.assert_allclose(nn.distances, reference.distances * scale, rtol=1e-13)
    np.testing.assert_array_equal(nn.data, scaled)  # the caller's data, not a rescaled copy
    # separate reference set, mixed with float32 queries
    other = idest.knn(X[:50].astype(np.float32) * np.float32(min(scale, 1e30)),
                      2, reference=scaled, backend=backend)
    assert np.isfinite(other.distances).all()
    # nested lists are rescaled like arrays (Hypothesis found the torch backend
    # returning inf distances and the point itself for a list of two 1e297 values)
    listed = idest.knn(scaled.tolist(), 4, reference=scaled[:40].tolist(), backend=backend)
    np.testing.assert_allclose(listed.distances, idest.knn(scaled, 4, reference=scaled[:40],
                                                           backend=backend).distances, rtol=0)


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_estimators_do_not_see_extreme_scales(cloud, scale):
    X = cloud.astype(np.float64)
    for name, estimate in ESTIMATORS.items():
        assert estimate(X * scale).dimension == pytest.approx(estimate(X).dimension,
                                                               rel=1e-9), name


# ----------------------------------------------------------------- 7. edge cases


def test_one_bootstrap_resample_is_refused(cloud):
    for estimate in ESTIMATORS.values():
        with pytest.raises(ValueError, match="n_bootstrap must be 0 .no interval. or an int >= 2"):
            estimate(cloud[:200], n_bootstrap=1)


def test_fitter_edge_cases_give_clear_errors():
    from scaling.fit import circle_window, fit_offset_power_law, fit_power_law

    N = np.repeat(np.logspace(3, 6, 6), 3)
    L = 3 * N ** -0.5 * np.random.default_rng(0).lognormal(0, 0.02, N.size)
    seeds = np.tile([0, 1, 2], 6)
    with pytest.raises(ValueError, match="n_bootstrap must be 0 .*or an int >= 2"):
        fit_power_law(N, L, seeds=seeds, n_bootstrap=1)
    fit = fit_power_law(N, L, seeds=seeds, n_bootstrap=50)  # every size has three runs
    assert "bootstrap over runs" in fit.interval_method
    with pytest.raises(ValueError, match="grid_size must be an int >= 3 .values of log alpha"):
        fit_offset_power_law(N, L, seeds=seeds, grid_size=0)
    with pytest.raises(ValueError, match="at least 3 sizes"):
        circle_window([1e3, 1e4], [0.5, 0.2])
    with pytest.raises(ValueError, match="finite and positive"):
        circle_window([1e3, 1e4, 1e5, 1e6], [0.5, 0.2, -0.1, 0.05])


@pytest.mark.parametrize("batch", [None, [], 3.0, "text"])
def test_capture_refuses_batches_that_are_not_tensors(batch):
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match="capture: a batch must be a tensor"):
        idest.capture(torch.nn.Sequential(torch.nn.Linear(3, 4)), [batch], ["0"])


# ----------------------------------------------------------------- 8. tokenizers


class OneIdTokenizer:
    """What a checkpoint folder without vocabulary files loads: every word is one id."""

    eos_token_id = None

    def __call__(self, texts, add_special_tokens=True, verbose=False):
        if isinstance(texts, str):
            return {"input_ids": [100]}
        return {"input_ids": [[100] * len(t.split()) for t in texts]}


def test_a_tokenizer_without_vocabulary_is_an_error():
    from idest.activations import token_sequences

    with pytest.raises(ValueError, match=r"1 distinct token id\(s\) \(\[100\]\).*tokenizer.json, "
                                         "vocab.txt"):
        token_sequences(["some words here"] * 50, OneIdTokenizer(), 8)


def test_a_checkpoint_folder_without_tokenizer_files_is_an_error(tmp_path):
    pytest.importorskip("transformers")
    from idest.activations import load_pretrained, minilm_path

    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).symlink_to(minilm_path() / name)
    with pytest.raises(ValueError, match="has no tokenizer files: expected one of "
                                         "tokenizer.json, vocab.txt, vocab.json \\+ merges.txt"):
        load_pretrained(tmp_path)
    (tmp_path / "vocab.json").write_text("{}")
    with pytest.raises(ValueError, match="it has vocab.json but no merges.txt"):
        load_pretrained(tmp_path)


# ----------------------------------------------------------------- 5. the command line


def write_bad_files(folder):
    """Every kind of unreadable vector file, with the words its error must contain."""
    good = folder / "good.npy"
    np.save(good, np.random.default_rng(0).normal(size=(50, 3)))
    raw = good.read_bytes()
    files = {
        "empty.npy": (b"", "is empty"),
        "truncated.npy": (raw[:-24], "is truncated"),
        "text.npy": (b"1,2\n3,4\n", "is not a .npy file"),
        "binary.csv": (raw, "is not a text file.*rename it to .npy"),
        "ragged.csv": (b"1,2\n3\n", "not a numeric table"),
        "words.csv": (b"a,b\nx,y\n", "not a numeric table"),
        "bad.npz": (b"PK\x03\x04 not a zip", "is not a readable .npz"),
        "empty.csv": (b"", "is empty"),
        "one_dim.npy": (None, r"shape \(5,\); expected a non-empty 2-D"),
        "strings.npy": (None, "dtype <U1, not numbers"),
        "objects.npy": (None, "holds Python objects"),
        "suffix.dat": (b"1,2\n", "unsupported suffix"),
    }
    for name, (content, _) in files.items():
        if content is not None:
            (folder / name).write_bytes(content)
    np.save(folder / "one_dim.npy", np.arange(5.0))
    np.save(folder / "strings.npy", np.array([["a", "b"]]))
    np.save(folder / "objects.npy", np.array([{}], dtype=object), allow_pickle=True)
    return {name: expected for name, (_, expected) in files.items()}


@pytest.mark.parametrize("command", ["knn", "estimate"])
def test_cli_bad_files_are_one_line_errors(tmp_path, capsys, command):
    from idest.cli import main

    for name, expected in write_bad_files(tmp_path).items():
        assert main([command, str(tmp_path / name)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith(f"idest {command}: error: {tmp_path / name}")
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err

        assert re.search(expected, err), (name, err)
    assert main([command, str(tmp_path / "missing.npy")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_cli_turns_every_user_error_type_into_one_line(capsys, monkeypatch):
    import argparse

    from idest.cli import _main

    for exc in (ValueError("bad value"), TypeError("bad type"), OSError("disk full"),
                KeyError("Site 'x' matches nothing")):
        def fail(args, exc=exc):
            raise exc

        parser = _main.build_parser()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        commands.choices["knn"].set_defaults(func=fail)
        monkeypatch.setattr(_main, "build_parser", lambda parser=parser: parser)
        assert _main.main(["knn", "x.npy"]) == 2
        assert capsys.readouterr().err == f"idest knn: error: {exc.args[0]}\n"


# ----------------------------------------------------------------- 1. content-addressed resume


def test_layer_scan_recomputes_when_the_weights_or_the_batches_change(tmp_path):
    torch = pytest.importorskip("torch")
    from idest.scan import layer_scan

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16))
    batches = [torch.rand(250, 3, generator=torch.Generator().manual_seed(i)) for i in range(2)]

    def scan(model, inputs, out=tmp_path / "scan"):
        return layer_scan(model, inputs, ["0", "2"], out, reduce="flatten", mle_k=10)

    first = scan(net, batches)
    again = scan(net, iter(batches))  # the same content, as a one-shot iterator: reused
    assert again.n_sites_reused == 2 and again.rows == first.rows
    other = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(),
                                torch.nn.Linear(32, 16))  # same architecture, other weights
    with pytest.warns(UserWarning, match=r"2 site\(s\) .* recomputed: the model weights changed"):
        changed = scan(other, batches)
    assert changed.n_sites_reused == 0
    assert changed.rows == scan(other, batches, tmp_path / "fresh").rows
    edited = [b.clone() for b in batches]
    edited[1][7, 2] += 1e-3
    with pytest.warns(UserWarning, match="recomputed: the inputs changed"):
        assert scan(other, edited).n_sites_reused == 0


@pytest.mark.slow
def test_cli_scan_sees_an_edited_text_and_refuses_mistakes_before_capturing(tmp_path, capsys):
    pytest.importorskip("transformers")
    from idest.activations import stdlib_docstrings
    from idest.cli import main

    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(stdlib_docstrings(["json"], topics=False)))
    out = tmp_path / "scan"
    args = ["scan", "--text", str(text), "--n-sequences", "60", "--seq-len", "16",
            "--out", str(out), "--sites", "hidden_states.2", "hidden_states.4"]
    assert main(args) == 0
    before = capsys.readouterr().out
    assert main(args) == 0
    assert "2 site(s) reused" in capsys.readouterr().out
    text.write_text("\n".join(stdlib_docstrings(["csv"], topics=False)))  # edited in place
    with pytest.warns(UserWarning, match="recomputed: the inputs changed"):
        assert main(args) == 0
    after = capsys.readouterr().out
    assert "the text or the tokenizer changed" in after and "reused" not in after
    tokens = [line for line in (before, after) for line in line.splitlines()
              if line.startswith("text")]
    assert tokens[0] != tokens[1]  # the new text's token count

    fresh = tmp_path / "fresh"
    for mistake, expected in ((["--sites", "hidden_state.*"], "did you mean hidden_states"),
                              (["--ks", "1"], "ks")):
        try:
            code = main([*args[:args.index("--out")], "--out", str(fresh), *mistake])
        except SystemExit as exit_:  # refused by the option parser itself
            code = exit_.code
        assert code == 2
        err = capsys.readouterr().err  # transformers may print a loading bar first
        last = err.strip().splitlines()[-1]
        assert "idest scan: error:" in last and expected in last
        assert "Traceback" not in err
        assert not (fresh / "activations").exists()  # refused before any capture
