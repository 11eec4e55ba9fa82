"""Cost of activation capture over the bare forward pass (GPT-2 small shape, random weights).

Run (full size, a few minutes)::

    .venv/bin/pytest benchmarks/bench_capture.py --benchmark-json=benchmarks/results/capture.json

A 12-layer, 768-wide GPT-2 built from ``GPT2Config()`` (no download) runs the
same batches of token ids three ways in one session: the bare forward pass
under ``torch.no_grad()``, :func:`idest.capture` of every TransformerLens site
(embed, and for every block resid_pre, attn_out, resid_mid, mlp_out,
resid_post, then ln_final and the hidden_states aliases: 75 sites) with the
paper's last-token reduction, and the same with every token kept
(``reduce="all"``, the heaviest reduction: 75 copies of each batch's
activations). Each capture round is preceded by a bare forward pass timed
beside it, so the ratio compares paired rounds (on a shared machine, load
from other processes comes and goes); the ratios of medians and of minima
are printed and kept in ``extra_info``. The target is at most 1.15 for the
last-token capture. torch runs one thread (intra-op threads on a
loaded 2-core machine mostly wait on each other). ``--quick`` uses fewer,
shorter sequences.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import idest  # noqa: E402
from idest.activations._sites import _transformer_sites  # noqa: E402

ROUNDS = 5


@pytest.fixture(scope="module")
def setup(quick):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = transformers.GPT2Model(transformers.GPT2Config(use_cache=False)).eval()
    n_batches, batch, seq_len = (2, 4, 32) if quick else (4, 8, 128)
    generator = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(0, 50257, (batch, seq_len), generator=generator)}
               for _ in range(n_batches)]
    sites = [s.name for s in _transformer_sites(model)]
    assert len(sites) == 75
    yield model, batches, sites
    torch.set_num_threads(threads)


def bare_forward(model, batches):
    with torch.no_grad():
        for b in batches:
            model(**b)


def test_forward(benchmark, setup):
    model, batches, _ = setup
    benchmark.pedantic(bare_forward, args=(model, batches), rounds=ROUNDS, warmup_rounds=1)


@pytest.mark.parametrize("reduce", ["last", "all"])
def test_capture_every_site(benchmark, setup, reduce):
    """Capture timed by pytest-benchmark; before each round (untimed by it) the bare
    forward pass on the same batches, timed here: paired rounds, so load from other
    processes hits both sides alike."""
    model, batches, sites = setup
    bare_times = []

    def timed_bare_forward():
        start = time.perf_counter()
        bare_forward(model, batches)
        bare_times.append(time.perf_counter() - start)

    acts = benchmark.pedantic(idest.capture, args=(model, batches, sites),
                              kwargs={"reduce": reduce, "progress": False},
                              setup=timed_bare_forward, rounds=ROUNDS, warmup_rounds=1)
    rows = sum(b["input_ids"].numel() if reduce == "all" else len(b["input_ids"])
               for b in batches)
    assert all(a.shape == (rows, 768) for a in acts.values())
    ratio = benchmark.stats.stats.median / float(np.median(bare_times))
    fastest = benchmark.stats.stats.min / min(bare_times)
    benchmark.extra_info.update(ratio_to_forward_median=ratio, ratio_to_forward_min=fastest,
                                forward_median_s=float(np.median(bare_times)))
    print(f"\ncapture[{reduce}]: {ratio:.3f} x the bare forward pass (median of paired "
          f"rounds), {fastest:.3f} (min)")
