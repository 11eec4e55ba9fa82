"""Fault injection: kill -9 in the middle of work, cut files at every byte, then resume.

Every test compares the resumed result with an uninterrupted run: resuming must give
exactly the table that a run without the fault gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from idest.utils import RecordStore, StoreWarning, read_json, write_json

torch = pytest.importorskip("torch")

#: A module shared by the killed subprocesses and the test (same model, batches, sweep).
HELPERS = textwrap.dedent('''
    import sys, time
    import numpy as np
    import torch


    class Slow(torch.nn.Module):
        """A small MLP whose forward pass sleeps, so a kill lands inside the capture."""

        def __init__(self, pause=0.0):
            super().__init__()
            torch.manual_seed(0)
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Tanh(),
                                            torch.nn.Linear(32, 16))
            self.pause = pause

        def forward(self, x):
            time.sleep(self.pause)
            return self.body(x)


    def batches():
        g = torch.Generator().manual_seed(1)
        return [torch.rand(40, 4, generator=g) for _ in range(30)]


    def scan(out, pause=0.0):
        import idest.scan
        idest.scan.CHECKPOINT_ROWS = 40
        return idest.scan.layer_scan(Slow(pause), batches(), ["body.0", "body.2"], out,
                                     reduce="flatten", mle_k=10, inputs_id="rand-40x30")


    def sweep_config():
        from scaling.teacher_student._sweep import SweepConfig
        from scaling.teacher_student._train import Phase, Schedule
        tiny = Schedule("test-sweep", (Phase(60, 100, 0.01), Phase(10, 400, 0.001)),
                        shortened=True)
        return SweepConfig(features=(2, 3, 4, 5, 6, 7), widths=(8, 16), depths=(2,), seeds=(0, 1),
                           schedule=tiny, variant="clean", n_eval=1000, n_id=400)


    if __name__ == "__main__":
        what, path = sys.argv[1], sys.argv[2]
        if what == "sweep":
            from scaling.teacher_student._sweep import run_sweep
            run_sweep(sweep_config(), path, n_jobs=2, progress=False)
        elif what == "scan":
            scan(path, pause=0.05)
        elif what == "append":
            from idest.utils import RecordStore
            store = RecordStore(path, ["i", "payload"], ["i"], parsers={"i": int})
            done = {int(k[0]) for k in store.keys()}
            for i in range(100000):
                if i not in done:
                    store.append([{"i": i, "payload": "x" * (i % 500)}])
        elif what == "json":
            from idest.utils import write_json
            for i in range(100000):
                write_json(path, {"i": i, "payload": list(range(20000))})
''')


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    (folder / "fault_helpers.py").write_text(HELPERS)
    sys.path.insert(0, str(folder))
    import fault_helpers

    yield folder, fault_helpers
    sys.path.remove(str(folder))


def start(folder, *args):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), *sys.path])}
    return subprocess.Popen([sys.executable, str(folder / "fault_helpers.py"), *map(str, args)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for(condition, process, timeout=180.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the process ended early: {process.stderr.read().decode()}")
        assert time.monotonic() < deadline, "timed out waiting for the process"
        time.sleep(0.05)


def children(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def kill9(process):
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()


def quiet(function, *args, **kwargs):
    """Run without failing on the warnings a resume is entitled to (a repaired file)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StoreWarning)
        return function(*args, **kwargs)


# ----------------------------------------------------------------- kill -9 during a sweep


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill9_during_a_parallel_sweep_leaves_no_orphans_and_resumes_exactly(helpers,
                                                                            tmp_path):
    from scaling.teacher_student._sweep import TIMING_COLUMNS, read_results, run_key, run_sweep

    folder, fh = helpers
    path = tmp_path / "sweep.csv"
    process = start(folder, "sweep", path)
    wait_for(lambda: len(quiet(read_results, path)) >= 1 and len(children(process.pid)) >= 2,
             process)
    workers = children(process.pid)
    kill9(process)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), "pool workers outlived their parent"
    done = len(quiet(read_results, path))
    total = len(fh.sweep_config().runs())
    assert 1 <= done < total
    resumed = quiet(run_sweep, fh.sweep_config(), path, n_jobs=1, progress=False)
    assert len(resumed.trained) == total - done
    reference = run_sweep(fh.sweep_config(), tmp_path / "reference.csv", n_jobs=1,
                          progress=False)

    def table(rows):
        return sorted(({k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows),
                      key=run_key)

    assert table(resumed.rows) == table(reference.rows)


# ----------------------------------------------------------------- kill -9 during a capture


@pytest.mark.slow
def test_kill9_during_a_scans_capture_resumes_to_the_same_table(helpers, tmp_path):
    folder, fh = helpers
    out = tmp_path / "scan"
    process = start(folder, "scan", out)
    state = out / "activations" / "capture-state.json"
    wait_for(lambda: (read_json(state) or {}).get("batches_done", 0) >= 4, process)
    kill9(process)
    saved = read_json(state)
    assert 4 <= saved["batches_done"] < 30
    calls = []
    model = fh.Slow()
    model.register_forward_hook(lambda *_: calls.append(1))
    import idest.scan

    idest.scan.CHECKPOINT_ROWS = 40
    resumed = idest.scan.layer_scan(model, fh.batches(), ["body.0", "body.2"], out,
                                    reduce="flatten", mle_k=10, inputs_id="rand-40x30")
    assert len(calls) == 30 - saved["batches_done"]  # only the batches not checkpointed
    reference = fh.scan(tmp_path / "reference")
    assert resumed.rows == reference.rows
    assert resumed.csv.read_text() == reference.csv.read_text()
    for site in ("body.0", "body.2"):
        np.testing.assert_array_equal(np.load(out / "activations" / f"{site}.npy"),
                                      np.load(tmp_path / "reference" / "activations" /
                                              f"{site}.npy"))


# ----------------------------------------------------------------- kill -9 during writes


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(2))
def test_kill9_during_record_appends_loses_at_most_the_record_being_written(helpers,
                                                                           tmp_path, attempt):
    folder, _ = helpers
    path = tmp_path / "records.csv"
    store = RecordStore(path, ["i", "payload"], ["i"], parsers={"i": int})
    process = start(folder, "append", path)
    wait_for(lambda: path.exists() and path.stat().st_size > 20_000 * (attempt + 1), process)
    kill9(process)
    rows = quiet(store.read)
    assert [int(r["i"]) for r in rows] == list(range(len(rows)))  # nothing merged or skipped
    assert all(r["payload"] == "x" * (int(r["i"]) % 500) for r in rows)
    store.append([{"i": i, "payload": "x" * (i % 500)} for i in range(len(rows), 300)])
    reference = RecordStore(tmp_path / "reference.csv", ["i", "payload"], ["i"])
    reference.append([{"i": i, "payload": "x" * (i % 500)} for i in range(300)])
    # byte for byte the uninterrupted file (or, if the kill came after record 300, its start)
    assert path.read_bytes().startswith(reference.path.read_bytes())


@pytest.mark.slow
def test_kill9_during_json_writes_leaves_the_old_or_the_new_file(helpers, tmp_path):
    folder, _ = helpers
    path = tmp_path / "state.json"
    for _ in range(3):
        process = start(folder, "json", path)
        wait_for(lambda: path.exists(), process)
        time.sleep(0.1 + 0.2 * np.random.default_rng().random())
        kill9(process)
        value = read_json(path)
        assert value is not None and value["payload"] == list(range(20000))
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
            "state.json"]


# ----------------------------------------------------------------- every byte of the last record


def cuts_of_last_record(path):
    """Every prefix of the file that ends inside its last record."""
    full = path.read_bytes()
    start = full.rindex(b"\n", 0, len(full) - 1) + 1
    return full, start, range(start + 1, len(full))


def test_regimes_cache_resumes_from_every_cut_of_its_last_point(tmp_path):
    from scaling.random_features import FeatureSource, SweepCache, sweep_regime

    source = FeatureSource("power_law", 1.0, n_features=64)
    path = tmp_path / "points.csv"
    reference = sweep_regime(source, "resolution_P", [4, 8], seeds=[0, 1],
                             cache=SweepCache(path), progress=False)
    full, start, cuts = cuts_of_last_record(path)
    for cut in cuts:
        path.write_bytes(full[:cut])
        with pytest.warns(StoreWarning):
            cache = SweepCache(path)
        rows = sweep_regime(source, "resolution_P", [4, 8], seeds=[0, 1], cache=cache,
                            progress=False)
        assert cache.n_added == 1 and rows == reference
        assert path.read_bytes() == full


def test_teacher_student_csv_drops_every_cut_of_its_last_row(tmp_path):
    from scaling.teacher_student._sweep import COLUMNS, read_results

    path = tmp_path / "results.csv"
    rows = [dict.fromkeys(COLUMNS, "1.5") | {"features": f, "width": 8, "depth": 2, "seed": 0}
            for f in (2, 3, 4)]
    RecordStore(path, COLUMNS, ("features", "width", "depth", "seed")).append(rows)
    full, start, cuts = cuts_of_last_record(path)
    for cut in cuts:
        path.write_bytes(full[:cut])
        with pytest.warns(StoreWarning):
            kept = read_results(path)
        assert [r["features"] for r in kept] == ["2", "3"] and path.read_bytes() == full[:start]


def test_cnn_csv_drops_every_cut_of_its_last_run(tmp_path):
    from scaling.cnn import _cnn

    path = tmp_path / "sweep.csv"
    rows = [dict.fromkeys(_cnn._SWEEP_COLUMNS, "") | {
        "family": "mnist", "n": n, "n_params": 10 * n, "seed": 0, "loss": 0.5, "config": "c"}
        for n in (1, 2, 3)]
    store = _cnn._sweep_store(path)
    store.append(rows)
    full, start, cuts = cuts_of_last_record(path)
    for cut in cuts:
        path.write_bytes(full[:cut])
        with pytest.warns(StoreWarning):
            kept = _cnn._finished_runs(store, "mnist", "c")
        assert [r["n"] for r in kept] == ["1", "2"] and path.read_bytes() == full[:start]


def test_scan_recomputes_a_cut_result_or_checkpoint_file(helpers, tmp_path):
    """The scan's JSON files are replaced atomically, but a file cut by other means (a
    copy, a full disk before this version) must be recomputed, not trusted."""
    _, fh = helpers
    reference = fh.scan(tmp_path / "scan")
    result = tmp_path / "scan" / "results" / "body.2.json"
    full = result.read_bytes()
    for cut in range(0, len(full), max(1, len(full) // 16)):
        result.write_bytes(full[:cut])
        resumed = fh.scan(tmp_path / "scan")
        assert resumed.n_sites_reused == 1 and resumed.rows == reference.rows
        assert json.loads(result.read_bytes()) == json.loads(full)
    state = tmp_path / "scan" / "activations" / "capture-state.json"
    write_json(state, {"garbage": True})
    state.write_bytes(state.read_bytes()[:5])
    (tmp_path / "scan" / "results" / "body.0.json").unlink()
    (tmp_path / "scan" / "activations" / "body.0.done.json").unlink()
    assert fh.scan(tmp_path / "scan").rows == reference.rows


def test_cut_token_sequence_cache_is_rebuilt(tmp_path, capsys):
    pytest.importorskip("transformers")
    import argparse

    from transformers import AutoTokenizer

    from idest.activations import minilm_path
    from idest.cli import _scan

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    text = tmp_path / "t.txt"
    text.write_text("The quick brown fox jumps over the lazy dog. " * 40)
    args = argparse.Namespace(text=str(text), seq_len=16, n_sequences=10, seed=0)
    first = _scan._sequences(args, tokenizer, tmp_path)
    cache = tmp_path / "sequences.npz"
    full = cache.read_bytes()
    for cut in range(0, len(full), max(1, len(full) // 16)):
        cache.write_bytes(full[:cut])
        again = _scan._sequences(args, tokenizer, tmp_path)
        np.testing.assert_array_equal(again.input_ids, first.input_ids)
        assert "tokenising again" in capsys.readouterr().out
    text.write_text("Another text entirely, about cats and their naps. " * 40)
    edited = _scan._sequences(args, tokenizer, tmp_path)
    assert "the text or the tokenizer changed" in capsys.readouterr().out
    assert not np.array_equal(edited.input_ids, first.input_ids)
