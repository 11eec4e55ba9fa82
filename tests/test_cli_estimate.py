"""``idest estimate``."""

import json

import numpy as np

from idest.cli._main import main
from idest.datasets import hypercube


def test_estimate_prints_a_table_and_writes_json(tmp_path, capsys):
    X = hypercube(1500, 4, random_state=0)
    path = tmp_path / "x.npy"
    np.save(path, np.vstack([X, X[:30]]))
    out_json = tmp_path / "r.json"
    assert main(["estimate", str(path), "--bootstrap", "30", "--seed", "1",
                 "--out", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "1500 used, 30 duplicate(s) dropped" in out
    for name in ("twonn", "knn_cdf", "mle"):
        assert name in out
    saved = json.loads(out_json.read_text())
    assert [r["method"] for r in saved["results"]] == ["twonn", "knn_cdf", "knn_cdf", "mle"]
    assert all(r["interval"][0] < r["dimension"] < r["interval"][1] for r in saved["results"])


def test_estimate_single_methods(tmp_path, capsys):
    path = tmp_path / "x.csv"
    np.savetxt(path, hypercube(600, 3, random_state=0), delimiter=",")
    assert main(["estimate", str(path), "--method", "mle", "--k", "5", "10",
                 "--bootstrap", "0"]) == 0
    assert "k 5..10" in capsys.readouterr().out
    assert main(["estimate", str(path), "--method", "knn_cdf", "--ks", "3", "5"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("knn_cdf")]
    assert len(lines) == 2


def test_estimate_reports_bad_input(tmp_path, capsys):
    assert main(["estimate", str(tmp_path / "missing.npy")]) == 2
    path = tmp_path / "const.npy"
    np.save(path, np.ones((50, 3)))
    assert main(["estimate", str(path)]) == 2
    assert "distinct point" in capsys.readouterr().err
