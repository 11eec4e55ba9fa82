"""Activation capture: hooks, TransformerLens names on HF GPT-2 and BERT, reductions, streaming."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="activation capture needs torch")
transformers = pytest.importorskip("transformers", reason="the GPT-2 tests need transformers")

from idest.activations import Reduction, capture, hooks, list_sites, resolve_sites  # noqa: E402

N_LAYER, WIDTH, VOCAB = 3, 32, 97


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=N_LAYER, n_embd=WIDTH, n_head=4, vocab_size=VOCAB,
                                     n_positions=64, bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="module")
def tokens():
    return torch.randint(1, VOCAB, (12, 10), generator=torch.Generator().manual_seed(1))


def hidden_states(model, **inputs):
    with torch.no_grad():
        return model(**inputs, output_hidden_states=True).hidden_states


def test_resid_pre_and_ln_final_equal_hf_hidden_states(gpt2, tokens):
    acts = capture(gpt2, [{"input_ids": tokens}], ["blocks.*.hook_resid_pre", "ln_final",
                                                    "hidden_states.*"], reduce="all")
    hs = [h.reshape(-1, WIDTH).numpy() for h in hidden_states(gpt2, input_ids=tokens)]
    assert len(hs) == N_LAYER + 1
    for i in range(N_LAYER):
        np.testing.assert_array_equal(acts[f"blocks.{i}.hook_resid_pre"], hs[i])
    np.testing.assert_array_equal(acts["ln_final"], hs[-1])
    for i, h in enumerate(hs):
        np.testing.assert_array_equal(acts[f"hidden_states.{i}"], h)


def test_attn_plus_mlp_plus_resid_pre_is_resid_post(gpt2, tokens):
    acts = capture(gpt2, [{"input_ids": tokens}], "blocks.*", reduce="all")
    for i in range(N_LAYER):
        pre, attn, mlp = (acts[f"blocks.{i}.hook_{name}"] for name in ("resid_pre", "attn_out",
                                                                        "mlp_out"))
        np.testing.assert_allclose(pre + attn + mlp, acts[f"blocks.{i}.hook_resid_post"], atol=1e-5)
        np.testing.assert_allclose(pre + attn, acts[f"blocks.{i}.hook_resid_mid"], atol=1e-5)
    assert np.abs(acts["blocks.0.hook_attn_out"]).max() > 0  # not a vacuous identity


def padded(tokens, lengths, side):
    T = tokens.shape[1]
    mask = torch.zeros_like(tokens)
    for b, n in enumerate(lengths):
        if side == "right":
            mask[b, :n] = 1
        else:
            mask[b, T - n:] = 1
    return {"input_ids": tokens * mask, "attention_mask": mask}


@pytest.mark.parametrize("side", ["left", "right"])
def test_last_token_and_fixed_position_skip_padding(gpt2, tokens, side):
    lengths = [10, 4, 7, 1, 9, 2, 10, 5, 3, 6, 8, 10]
    batch = padded(tokens, lengths, side)
    acts = capture(gpt2, [batch], ["ln_final"], reduce="last")["ln_final"]
    first = capture(gpt2, [batch], ["ln_final"], reduce="position:0")["ln_final"]
    hs = hidden_states(gpt2, **batch)[-1].numpy()
    T = tokens.shape[1]
    last_pos = [n - 1 if side == "right" else T - 1 for n in lengths]
    first_pos = [0 if side == "right" else T - n for n in lengths]
    np.testing.assert_array_equal(acts, hs[np.arange(len(lengths)), last_pos])
    np.testing.assert_array_equal(first, hs[np.arange(len(lengths)), first_pos])
    if side == "right":  # causal attention: right padding cannot change the last real token
        for b, n in enumerate(lengths[:4]):
            alone = hidden_states(gpt2, input_ids=tokens[b:b + 1, :n])[-1][0, -1].numpy()
            np.testing.assert_allclose(acts[b], alone, atol=1e-5)
    every = capture(gpt2, [batch], ["ln_final"], reduce=Reduction("all", skip_first=True))
    assert every["ln_final"].shape == (sum(lengths) - len(lengths), WIDTH)


def test_mean_respects_the_mask(gpt2, tokens):
    batch = padded(tokens, [3] * len(tokens), "right")
    mean = capture(gpt2, [batch], ["ln_final"], reduce="mean")["ln_final"]
    hs = hidden_states(gpt2, **batch)[-1].numpy()
    np.testing.assert_allclose(mean, hs[:, :3].mean(axis=1), atol=1e-6)


def test_every_batch_size_gives_the_same_vectors(gpt2, tokens):
    sites = ["embed", "blocks.1.hook_attn_out", "ln_final"]
    results = [capture(gpt2, [{"input_ids": tokens[i:i + bs]} for i in range(0, 12, bs)], sites,
                       reduce="last") for bs in (1, 5, 12)]
    for other in results[1:]:
        for site in sites:
            np.testing.assert_allclose(other[site], results[0][site], rtol=1e-5, atol=1e-6)


def test_streamed_capture_larger_than_its_chunk_equals_in_memory(gpt2, tokens, tmp_path):
    batches = [{"input_ids": tokens[i:i + 4]} for i in range(0, 12, 4)]
    memory = capture(gpt2, batches, "blocks.*.hook_mlp_out", reduce="all", chunk_rows=7)
    # a generator has no len(): the files start at one batch and grow, then shrink to size
    streamed = capture(gpt2, (b for b in batches), "blocks.*.hook_mlp_out", reduce="all",
                       out_dir=tmp_path, chunk_rows=7)
    assert list(streamed) == list(memory)
    for site, arr in memory.items():
        assert arr.shape == (120, WIDTH)
        assert isinstance(streamed[site], np.memmap)
        np.testing.assert_array_equal(streamed[site], arr)
        np.testing.assert_array_equal(np.load(tmp_path / f"{site}.npy"), arr)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.npy" for s in memory)


def test_interrupted_streamed_capture_resumes_from_its_checkpoint(gpt2, tokens, tmp_path):
    batches = [{"input_ids": tokens[i:i + 2]} for i in range(0, 12, 2)]  # 6 batches, 20 rows
    sites = "blocks.*.hook_resid_post"
    expected = capture(gpt2, batches, sites, reduce="all")

    def interrupted():
        yield from batches[:5]
        raise KeyboardInterrupt

    options = {"reduce": "all", "out_dir": tmp_path, "chunk_rows": 30, "resume_key": "text v1"}
    with pytest.raises(KeyboardInterrupt):
        capture(gpt2, interrupted(), sites, **options)
    state = json.loads((tmp_path / "capture-state.json").read_text())
    assert state["batches_done"] == 4  # chunks of 30 rows went out after batches 2 and 4
    forwards = []
    handle = gpt2.register_forward_hook(lambda *_: forwards.append(1))
    try:
        resumed = capture(gpt2, batches, sites, **options)
        assert len(forwards) == 2
        for site, arr in expected.items():
            np.testing.assert_array_equal(resumed[site], arr)
        assert not (tmp_path / "capture-state.json").exists()
        with pytest.raises(KeyboardInterrupt):
            capture(gpt2, interrupted(), sites, **options)
        forwards.clear()
        capture(gpt2, batches, sites, **{**options, "resume_key": "text v2"})
        assert len(forwards) == 6  # another key: a fresh capture
    finally:
        handle.remove()


def test_bert_hidden_states_and_names():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=50, hidden_size=24, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=48)
    bert = transformers.BertModel(config).eval()
    ids = torch.randint(0, 50, (5, 8))
    names = list_sites(bert)
    assert names[:2] == ["embed", "blocks.0.hook_resid_pre"] and "hidden_states.2" in names
    acts = capture(bert, [{"input_ids": ids}], "hidden_states.*", reduce="all")
    for i, h in enumerate(hidden_states(bert, input_ids=ids)):
        np.testing.assert_array_equal(acts[f"hidden_states.{i}"], h.reshape(-1, 24).numpy())


def test_cnn_reductions_and_low_precision_upcast():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(inplace=True),
                              torch.nn.Flatten(), torch.nn.Linear(4 * 25, 3))
    x = torch.randn(6, 3, 5, 5)
    with torch.no_grad():
        conv = net[0](x)
    flat = capture(net, [x], "0", reduce="flatten")["0"]
    # the copy is taken before the in-place ReLU overwrites the conv output
    np.testing.assert_array_equal(flat, conv.reshape(6, -1).numpy())
    per_pixel = capture(net, [(x, torch.zeros(6))], "0", reduce="all")["0"]
    np.testing.assert_array_equal(per_pixel, conv.permute(0, 2, 3, 1).reshape(-1, 4).numpy())
    mean = capture(net, [x], "0", reduce="mean")["0"]
    np.testing.assert_allclose(mean, conv.mean(dim=(2, 3)).numpy(), atol=1e-6)
    half = capture(net.to(torch.bfloat16), [x.to(torch.bfloat16)], ["0", "3"], reduce="flatten")
    assert half["0"].dtype == np.float32 and half["3"].shape == (6, 3)


def test_missing_site_lists_available_names_and_hooks_are_removed(gpt2, tokens):
    with pytest.raises(KeyError, match=r"matches nothing in GPT2\w*; did you mean "
                                       r"'blocks\.\d\.hook_attn_out'.*idest.list_sites"):
        resolve_sites(gpt2, "blocks.9.hook_attn_out")
    with pytest.raises(KeyError, match=r"'zzz' matches nothing.* sites exist, e\.g\. embed, "
                                       r"blocks\.0\.hook_resid_pre"):
        resolve_sites(gpt2, "zzz")

    def boom(site, tensor):
        raise RuntimeError("interrupted")

    def n_hooks():
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in gpt2.modules())

    before = n_hooks()
    with pytest.raises(RuntimeError, match="interrupted"), hooks(gpt2, "blocks.*", boom):
        assert n_hooks() == before + 5 * N_LAYER
        gpt2(input_ids=tokens)
    assert n_hooks() == before
    gpt2.train()
    capture(gpt2, [{"input_ids": tokens}], "ln_final")
    assert gpt2.training
    gpt2.eval()


def test_depth_metadata(gpt2):
    sites = {s.name: s for s in resolve_sites(gpt2, ["embed", "blocks.*.hook_attn_out", "ln_final",
                                                     "transformer.h.0.mlp.c_fc"])}
    assert [sites[f"blocks.{i}.hook_attn_out"].layer for i in range(N_LAYER)] == [1, 2, 3]
    assert sites["embed"].relative_depth == 0 and sites["ln_final"].relative_depth == 1
    assert sites["transformer.h.0.mlp.c_fc"].kind == "Conv1D"


@pytest.mark.parametrize("spec, message", [
    ("middle", "must be one of"), ("position", "needs position"), ("last:3", "only 'position'"),
    ("position:x", "position:<int>")])
def test_bad_reductions(spec, message):
    with pytest.raises(ValueError, match=message):
        Reduction.parse(spec)


def test_position_outside_a_short_sequence_is_refused(gpt2, tokens):
    batch = padded(tokens, [10] * 11 + [2], "left")
    with pytest.raises(ValueError, match="sequence 11 of the batch, which has 2"):
        capture(gpt2, [batch], "ln_final", reduce="position:5")
