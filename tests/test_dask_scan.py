"""Scans and the command line on a Dask cluster: the same table as in process (issue 16)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the layer scan needs torch")
pytest.importorskip("distributed", reason="needs the dask extra")

import idest.scan  # noqa: E402
from idest.cli import main  # noqa: E402
from idest.scan import layer_scan  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def client(dask_cluster):
    dask_cluster.wait_for_workers(2, timeout=60)
    return dask_cluster


def scan_inputs():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.Tanh(), torch.nn.Linear(32, 16),
                              torch.nn.Tanh(), torch.nn.Linear(16, 8))
    batches = [torch.rand(200, 3) for _ in range(3)]
    batches[1][:20] = batches[0][:20]  # exact duplicates (dropped and counted at every site)
    return net, batches


SETTINGS = dict(reduce="flatten", mle_k=10, n_bootstrap=5, gride_range_max=16, progress=False)


@pytest.mark.parametrize("sharded", [False, True], ids=["one-task-per-site", "sharded-knn"])
def test_scan_on_the_cluster_equals_in_process(client, tmp_path, monkeypatch, sharded):
    net, batches = scan_inputs()
    sites = ["0", "2", "4"]
    here = layer_scan(net, batches, sites, tmp_path / "here", **SETTINGS)
    if sharded:  # every site counts as large: its search is sharded over both workers
        monkeypatch.setattr(idest.scan, "SHARDED_SITE_ROWS", 1)
    there = layer_scan(net, batches, sites, tmp_path / "there", client=client, **SETTINGS)
    assert there.rows == here.rows and len(here.rows) == 3 * 5
    assert all(r["id"] is not None for r in here.rows if r["estimator"] != "gride")
    assert {r["n_duplicates_dropped"] for r in here.rows} == {20}
    assert (tmp_path / "there" / "scan.csv").read_text() == \
        (tmp_path / "here" / "scan.csv").read_text()
    again = layer_scan(net, batches, sites, tmp_path / "there", client=client, **SETTINGS)
    assert again.n_sites_reused == 3 and again.rows == here.rows  # the same resumable store


def test_scan_client_errors(client, tmp_path):
    net, batches = scan_inputs()
    with pytest.raises(ValueError, match="keep_on_device"):
        layer_scan(net, batches, ["0"], tmp_path, client=client, keep_on_device=True)
    with pytest.raises(TypeError, match="distributed.Client"):
        layer_scan(net, batches, ["0"], tmp_path, client="tcp://localhost:8786")


def test_estimate_command_on_a_running_scheduler(client, tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(600, 5)).astype(np.float32)
    X[100:110] = X[0]
    np.save(tmp_path / "x.npy", X)
    args = ["estimate", str(tmp_path / "x.npy"), "--bootstrap", "5"]
    assert main(args) == 0
    here = capsys.readouterr().out
    assert main([*args, "--scheduler", client.scheduler.address]) == 0
    there = capsys.readouterr().out
    assert "dashboard" in there
    table = [line for line in here.splitlines() if not line.startswith("time")]
    assert [line for line in there.splitlines()
            if not line.startswith(("time", "dask"))] == table


def test_missing_extra_is_named(monkeypatch, tmp_path, capsys):
    net, batches = scan_inputs()
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"layer_scan: .*pip install 'idest\[dask\]'"):
        layer_scan(net, batches, ["0"], tmp_path, client=object())
    np.save(tmp_path / "x.npy", np.zeros((10, 2)))
    assert main(["estimate", str(tmp_path / "x.npy"), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "idest estimate: error: dask_client: " in err and "pip install 'idest[dask]'" in err
