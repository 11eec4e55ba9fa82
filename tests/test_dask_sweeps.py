"""Sweeps through a Dask client: the driver stores every unit once (issue 16).

Interrupted and resumed, or with a worker killed mid-unit, a sweep run through the
client ends with exactly the table of an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

from idest.utils import limit_threads

pytest.importorskip("torch", reason="the sweeps train torch models")
pytest.importorskip("distributed", reason="needs the dask extra")

from scaling.cnn import width_sweep  # noqa: E402
from scaling.random_features import FeatureSource, SweepCache, solvable_sweep, sweep_regime  # noqa: E402
from scaling.teacher_student import SweepConfig, read_results, run_sweep  # noqa: E402
from scaling.teacher_student._sweep import KEY, TIMING_COLUMNS, run_key  # noqa: E402
from scaling.teacher_student._train import Phase, Schedule  # noqa: E402

TINY = Schedule("test-dask", (Phase(60, 100, 0.01), Phase(10, 400, 0.001)), shortened=True)
CONFIG = SweepConfig(features=(2, 3), widths=(8, 16), depths=(2,), seeds=(0,),
                     schedule=TINY, variant="clean", n_eval=500, n_id=300)


@pytest.fixture
def client(dask_cluster):
    dask_cluster.wait_for_workers(2, timeout=60)
    return dask_cluster


def table(rows):
    """Rows without their timings, sorted by run; each run must appear once."""
    keys = [run_key(r) for r in rows]
    assert len(keys) == len(set(keys)), "a run was stored twice"
    return sorted(({k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rows),
                  key=run_key)


@pytest.fixture(scope="module")
def uninterrupted(dask_cluster, tmp_path_factory):
    path = tmp_path_factory.mktemp("dask-sweep") / "whole.csv"
    return run_sweep(CONFIG, path, progress=False, client=dask_cluster)


class Stop(Exception):
    """Stands for Ctrl-C or a lost driver after the first unit is on disk."""


@pytest.mark.slow  # trains torch models on both workers (the fixture: 11-23 s at load 8-9)
def test_sweep_through_the_client_equals_the_serial_one(uninterrupted, tmp_path):
    assert sorted(uninterrupted.trained) == sorted(CONFIG.runs())
    serial = run_sweep(dataclasses.replace(CONFIG, features=(3,)), tmp_path / "serial.csv",
                       n_jobs=1, progress=False)
    assert table(serial.rows) == [r for r in table(uninterrupted.rows) if r["features"] == "3"]


@pytest.mark.slow  # trains torch models on both workers (the fixture: 11-23 s at load 8-9)
def test_interrupted_sweep_resumes_to_the_uninterrupted_table(client, uninterrupted, tmp_path):
    path = tmp_path / "resumed.csv"

    def stop_after_first_unit(path, rows):
        raise Stop

    with pytest.raises(Stop):
        run_sweep(CONFIG, path, progress=False, client=client, on_unit=stop_after_first_unit)
    first = read_results(path)
    assert len({r["features"] for r in first}) == 1 and len(first) == 2  # one whole unit
    deadline = time.monotonic() + 30  # the other units were cancelled, not left running
    while any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(client.processing().values())
    resumed = run_sweep(CONFIG, path, progress=False, client=client)
    assert resumed.n_previous == 2 and len(resumed.trained) == len(CONFIG.runs()) - 2
    assert table(resumed.rows) == table(uninterrupted.rows)
    assert list(KEY) == ["features", "width", "depth", "seed"]  # the resume key is unchanged


@pytest.mark.slow
def test_killed_worker_mid_sweep_gives_the_full_table(client, uninterrupted, tmp_path):
    """SIGKILL a worker while it trains a unit: the scheduler trains it again elsewhere."""
    pids = client.run(os.getpid)
    killed = []

    def kill_the_first_busy_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [addr for addr, tasks in client.processing().items() if tasks]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(busy[0])
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_the_first_busy_worker)
    killer.start()
    outcome = run_sweep(CONFIG, tmp_path / "killed.csv", progress=False, client=client)
    killer.join()
    assert killed, "no worker was killed"
    assert table(outcome.rows) == table(uninterrupted.rows)


def test_regime_sweeps_through_the_client(client, tmp_path):
    """Bit for bit against in-process points on the workers' one BLAS thread (the BLAS
    thread count moves the last digits of a population's features)."""
    source = FeatureSource("hypercube", 3, n_features=64, n_pool=256, hidden=(32,))
    with limit_threads(1):
        here = sweep_regime(source, "variance_D", [16, 32, 64], fixed=8, seeds=[0, 1],
                            progress=False)
    cache = SweepCache(tmp_path / "points.csv")
    there = sweep_regime(source, "variance_D", [16, 32, 64], fixed=8, seeds=[0, 1],
                         cache=cache, progress=False, client=client)
    assert there == here and cache.n_added == 6
    assert SweepCache(tmp_path / "points.csv").get(here[-1].key) == here[-1]
    sizes = dict(varied="T", sizes=[4, 8, 16], fixed=32, seeds=[0, 1], progress=False)
    with limit_threads(1):
        solvable = solvable_sweep(16, **sizes)
    np.testing.assert_array_equal(solvable_sweep(16, client=client, **sizes).losses,
                                  solvable.losses)


@pytest.mark.slow  # trains torch models on both workers (the fixture: 11-23 s at load 8-9)
def test_cnn_width_sweep_through_the_client(client, tmp_path):
    rng = np.random.default_rng(0)
    data = (rng.random((40, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 40))
    common = dict(seeds=(0, 1), epochs=1, measure_id=False, n_jobs=1, progress=False)
    here = width_sweep("mnist", [1, 2], data, data, **common)
    there = width_sweep("mnist", [1, 2], data, data, results=tmp_path / "w.csv",
                        client=client, **common)

    def timeless(rows):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]

    assert timeless(there) == timeless(here)
    assert len(read_results_csv(tmp_path / "w.csv")) == 4


def read_results_csv(path):
    import csv

    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_missing_extra_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"run_sweep: .*pip install 'idest\[dask\]'"):
        run_sweep(CONFIG, tmp_path / "r.csv", progress=False, client=object())
    assert not (tmp_path / "r.csv").exists()


def test_command_line_options(tmp_path):
    from idest.cli import build_parser

    parser = build_parser()
    for command in (["reproduce"], ["regimes"], ["scan"], ["estimate", "x.npy"], ["knn"]):
        args = parser.parse_args([*command, "--workers", "2"])
        assert (args.scheduler, args.workers) == (None, 2)
    with pytest.raises(SystemExit):  # one or the other
        parser.parse_args(["reproduce", "--workers", "2", "--scheduler", "tcp://x:1"])
