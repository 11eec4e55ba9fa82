"""Ctrl-C stops the compiled k-NN search within a second and leaves no thread running."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from idest.neighbors import _core
from idest.neighbors._backends import _sgemm_capsule


def test_a_set_cancel_flag_stops_the_core_before_any_tile():
    X = np.random.default_rng(0).normal(size=(3000, 32)).astype(np.float32)
    progress = np.array([0, 0, 1], dtype=np.int64)  # done, total, cancel
    with pytest.raises(RuntimeError, match="cancelled"):
        _core.knn(X, None, 5, 13, 2, 256, _sgemm_capsule(), progress)
    assert progress[0] == 0


def test_without_the_flag_the_search_completes():
    X = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    progress = np.zeros(3, dtype=np.int64)
    dist, idx, _ = _core.knn(X, None, 3, 11, 2, 64, _sgemm_capsule(), progress)
    assert progress[0] == progress[1] > 0 and dist.shape == (500, 3)


@pytest.mark.slow
def test_ctrl_c_stops_a_long_search_within_a_second():
    script = textwrap.dedent("""
        import sys, threading, time
        import numpy as np, idest
        X = np.random.default_rng(0).normal(size=(150_000, 256)).astype(np.float32)
        print("ready", flush=True)
        try:
            idest.knn(X, 10, n_jobs=2, progress=False)
            print("finished", flush=True)
        except KeyboardInterrupt:
            print("interrupted", threading.active_count(), flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(1.0)  # well inside the search: ~10 s even with both cores free
    sent = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    elapsed = time.perf_counter() - sent
    assert out.split()[0] == "interrupted", out
    assert out.split()[1] == "1", f"threads left running: {out}"
    assert elapsed < 1.5, f"took {elapsed:.2f} s to stop"
