"""The resumable store and content hashes: every way a file can be cut or edited."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from idest.utils import RecordStore, StoreWarning, atomic_write, content_hash

COLUMNS = ("n", "seed", "loss", "note")


def store(path):
    return RecordStore(path, COLUMNS, ("n", "seed"), parsers={"n": int, "seed": int,
                                                              "loss": float})


def records(count):
    return [{"n": n, "seed": n % 2, "loss": 1.0 / (n + 1), "note": f"run, {n}"}
            for n in range(count)]


def test_store_round_trip_and_keys(tmp_path):
    s = store(tmp_path / "a" / "runs.csv")
    assert s.read() == [] and s.keys() == set()
    s.append(records(2))
    s.append(records(3)[2:])
    rows = s.read()
    assert [r["note"] for r in rows] == ["run, 0", "run, 1", "run, 2"]
    assert float(rows[1]["loss"]) == 0.5
    assert s.keys() == {("0", "0"), ("1", "1"), ("2", "0")}


def test_newlines_in_values_cannot_split_a_record(tmp_path):
    s = store(tmp_path / "runs.csv")
    s.append([{"n": 1, "seed": 0, "loss": 0.5, "note": "two\nlines\r\nhere"}])
    assert s.read()[0]["note"] == "two lines here"


@pytest.mark.parametrize("terminator", ["\n", "\r\n"])
def test_every_cut_of_the_last_record_is_dropped_and_recomputed(tmp_path, terminator):
    """Truncate the file at every byte offset inside its last record: the reader keeps
    exactly the complete records, warns, removes the cut bytes, and appending the lost
    record again gives the uninterrupted file byte for byte."""
    path = tmp_path / "runs.csv"
    s = store(path)
    s.append(records(3))
    full = path.read_bytes()
    if terminator == "\n":  # a file written by another CSV writer
        full = full.replace(b"\r\n", b"\n")
    start = full.rindex(b"\n", 0, len(full) - 1) + 1
    for cut in range(start + 1, len(full)):
        path.write_bytes(full[:cut])
        with pytest.warns(StoreWarning, match="removed its last"):
            rows = s.read()
        assert [r["n"] for r in rows] == ["0", "1"]
        assert path.read_bytes() == full[:start]
        s.append(records(3)[2:])  # the resume recomputes the lost record
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert [r["n"] for r in s.read()] == ["0", "1", "2"]
        path.write_bytes(full[:cut])
        with pytest.warns(StoreWarning):  # appending to a cut file repairs it first
            s.append(records(3)[2:])
        assert s.read() == store(path).read() and len(s.read()) == 3


def test_a_cut_header_is_an_empty_store(tmp_path):
    path = tmp_path / "runs.csv"
    s = store(path)
    s.append(records(1))
    header = path.read_bytes().split(b"\n")[0] + b"\n"
    for cut in range(1, len(header)):
        path.write_bytes(header[:cut])
        with pytest.warns(StoreWarning):
            assert s.read() == []
        assert path.read_bytes() == b""
    path.write_bytes(header)
    assert s.read() == []


def test_malformed_last_record_is_dropped(tmp_path):
    path = tmp_path / "runs.csv"
    s = store(path)
    s.append(records(2))
    with open(path, "ab") as f:
        f.write(b"2,0,not-a-number,x\r\n")
    with pytest.warns(StoreWarning, match="malformed last record.*loss='not-a-number'"):
        assert len(s.read()) == 2
    with open(path, "ab") as f:
        f.write(b"2,0,0.5\xff\xfe,x\r\n")  # not UTF-8
    with pytest.warns(StoreWarning, match="unreadable"):
        assert len(s.read()) == 2


def test_merged_rows_of_the_old_writers_are_an_error_not_a_record(tmp_path):
    """The failure of issue 10: a cut row with the next row glued onto it."""
    path = tmp_path / "runs.csv"
    s = store(path)
    s.append(records(1))
    with open(path, "ab") as f:
        f.write(b"1,1,0.2")           # cut short, no newline
        f.write(b"2,0,0.3,run\r\n")   # the next append of a writer that did not check
        f.write(b"3,1,0.4,run\r\n")
    with pytest.raises(ValueError, match=r"runs.csv, line 3: 6 field\(s\) where the header "
                                         r"has 4.*fix or delete that line"):
        s.read()


def test_header_mismatch_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"runs.csv has the columns \['a', 'b'\] but this "
                                         r"store writes.*write to a new file"):
        store(path).read()
    path.write_text("garbage without newline")
    with pytest.raises(ValueError, match="is not the header"):
        store(path).read()


def test_append_checks_columns(tmp_path):
    with pytest.raises(ValueError, match=r"missing \['note'\], extra \['x'\]"):
        store(tmp_path / "r.csv").append([{"n": 1, "seed": 0, "loss": 1.0, "x": 2}])
    with pytest.raises(ValueError, match="must be distinct"):
        RecordStore(tmp_path / "r.csv", ["a"], ["b"])


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path):
    target = tmp_path / "sequences.npz"
    with atomic_write(target, "wb") as f:
        np.savez(f, a=np.arange(3))
    with pytest.raises(KeyboardInterrupt), atomic_write(target, "wb") as f:
        f.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt
    with np.load(target) as saved:
        assert saved["a"].tolist() == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["sequences.npz"]  # no temporary left


def test_content_hash_sees_content_not_names():
    torch = pytest.importorskip("torch")
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert content_hash(x) == content_hash(np.asfortranarray(x))  # layout does not matter
    assert content_hash(x) == content_hash(x[:, ::-1][:, ::-1])
    assert content_hash(x) != content_hash(x.astype(np.float64))
    assert content_hash(x) != content_hash(x.reshape(4, 3))
    y = x.copy()
    y[2, 3] = np.nextafter(y[2, 3], np.float32(np.inf))  # one ulp
    assert content_hash(x) != content_hash(y)
    assert content_hash(torch.from_numpy(x)) == content_hash(torch.from_numpy(x).clone())
    assert content_hash(torch.ones(3, dtype=torch.bfloat16)) != content_hash(torch.ones(3))
    assert content_hash([1, "1", 1.0, None, True]) != content_hash([1, 1, 1, None, 1])
    assert content_hash({"a": [x], "b": {1, 2}}) == content_hash({"b": {2, 1}, "a": [x.copy()]})
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)  # same architecture, other weights
    assert content_hash(a) != content_hash(b)
    b.load_state_dict(a.state_dict())
    assert content_hash(a) == content_hash(b)
    with pytest.raises(TypeError, match="cannot hash a object"):
        content_hash(object())


def test_append_together_lands_all_records_or_none(tmp_path, monkeypatch):
    path = tmp_path / "runs.csv"
    s = store(path)
    s.append(records(2), together=True)  # creates the file, header included
    s.append(records(4)[2:], together=True)
    assert [r["n"] for r in s.read()] == ["0", "1", "2", "3"]
    before = path.read_bytes()

    def killed(*args):  # the process dies before the rename
        raise KeyboardInterrupt

    monkeypatch.setattr("idest.utils.store.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        s.append(records(9)[4:], together=True)
    assert path.read_bytes() == before  # none of the five records, not part of them
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_two_threads_writing_one_file_use_their_own_temporaries(tmp_path):
    """A cancelled Dask task keeps running in its thread: it and the task that replaced it
    may write one checkpoint at once, and each must replace the file whole."""
    import threading

    target = tmp_path / "state.bin"
    both_open = threading.Barrier(2)
    errors = []

    def write(payload: bytes) -> None:
        try:
            with atomic_write(target, "wb") as f:
                f.write(payload)
                both_open.wait(timeout=10)  # both temporaries exist now
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(bytes([b]) * 1000,)) for b in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert target.read_bytes() in (b"\x01" * 1000, b"\x02" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["state.bin"]
