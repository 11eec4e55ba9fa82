"""CNN families of Sharma & Kaplan Tables 2 and 3, their training, sweeps and data readers."""

from __future__ import annotations

import csv
import gzip
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="scaling.cnn._cnn needs torch")

from scaling import cnn  # noqa: E402
from scaling.cnn._datasets import (  # noqa: E402
    load_digits_images,
    read_cifar10,
    read_idx,
    read_mnist,
    read_svhn,
)


def layer_shapes(model, shape):
    """Output shape (H, W, C) or (features,) after every named layer, as the tables list them."""
    x = torch.zeros(1, *shape)
    shapes = {}
    for name, layer in model.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[2:]) + (x.shape[1],) if x.ndim == 4 else (x.shape[1],)
    return shapes


@pytest.mark.parametrize("n", [1, 2, 5, 13])
def test_cifar10_network_matches_table_2(n):
    model = cnn.cifar10_cnn(n)
    assert cnn.n_params(model) == 714 + 4640 * n + 54 * n**2 == cnn.cifar10_n_params(n)
    shapes = layer_shapes(model, (3, 32, 32))
    assert [shapes[k] for k in ("conv1", "pool1", "conv2", "pool2", "conv3", "dense",
                                "output")] == \
        [(32, 32, n), (16, 16, n), (16, 16, 2 * n), (8, 8, 2 * n), (6, 6, 2 * n), (64,), (10,)]


@pytest.mark.parametrize("n", [1, 3, 8])
def test_mnist_and_svhn_networks_match_table_3(n):
    mnist = cnn.mnist_cnn(n)
    assert [layer_shapes(mnist, (1, 28, 28))[k]
            for k in ("conv1", "pool1", "conv2", "pool2", "dense", "output")] == \
        [(28, 28, n), (14, 14, n), (12, 12, n), (6, 6, n), (32,), (10,)]
    # conv 1→n (10n) + conv n→n (9n² + n) + dense 36n→32 + output 32→10
    assert cnn.n_params(mnist) == 10 * n + 9 * n * n + n + 36 * n * 32 + 32 + 330
    assert cnn.n_params(mnist) == cnn.mnist_n_params(n)
    svhn = cnn.svhn_cnn(n)
    assert [layer_shapes(svhn, (3, 32, 32))[k]
            for k in ("conv1", "pool1", "conv2", "pool2", "dense", "output")] == \
        [(32, 32, n), (16, 16, n), (14, 14, n), (7, 7, n), (32,), (10,)]
    assert cnn.n_params(svhn) == 28 * n + 9 * n * n + n + 49 * n * 32 + 32 + 330
    assert cnn.n_params(svhn) == cnn.svhn_n_params(n)
    assert cnn.FAMILIES["fashion_mnist"] is cnn.mnist_cnn


# ------------------------------------------------------------------------- readers


def write_idx(path, array, opener=open):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.array(array.shape, dtype=">i4").tobytes()
    with opener(path, "wb") as handle:
        handle.write(header + array.tobytes())


def test_read_idx_round_trips_plain_gzip_and_other_dtypes(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a-idx3-ubyte", images)
    write_idx(tmp_path / "a-idx3-ubyte.gz", images, gzip.open)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte"), images)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), images)
    floats = rng.normal(size=(3, 4)).astype(">f4")
    write_idx(tmp_path / "f-idx2", floats)
    back = read_idx(tmp_path / "f-idx2")
    assert back.dtype == np.float32 and np.array_equal(back, floats)

    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes((tmp_path / "a-idx3-ubyte").read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "short")


def test_read_mnist_from_standard_file_names(tmp_path):
    rng = np.random.default_rng(1)
    for prefix, count in (("train", 6), ("t10k", 4)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8), gzip.open)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte",
                  rng.integers(0, 10, size=count, dtype=np.uint8))
    images, labels = read_mnist(tmp_path, "test")
    assert images.shape == (4, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and labels.shape == (4,)
    assert read_mnist(tmp_path)[0].shape == (6, 28, 28, 1)
    with pytest.raises(ValueError, match="split"):
        read_mnist(tmp_path, "validation")
    with pytest.raises(FileNotFoundError, match="Nothing is downloaded"):
        read_mnist(tmp_path / "elsewhere")


def test_read_cifar10_pickle_batches(tmp_path):
    rng = np.random.default_rng(2)
    expected = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        hwc = rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8)
        labels = rng.integers(0, 10, size=3).tolist()
        rows = hwc.transpose(0, 3, 1, 2).reshape(3, -1)  # the file's R, G, B planes
        with open(tmp_path / name, "wb") as handle:
            pickle.dump({b"data": rows, b"labels": labels, b"batch_label": b"x"}, handle)
        expected[name] = (hwc, labels)
    images, labels = read_cifar10(tmp_path, "train")
    assert images.shape == (15, 32, 32, 3) and labels.shape == (15,)
    np.testing.assert_array_equal(images[3:6], expected["data_batch_2"][0])
    test_images, test_labels = read_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(test_images, expected["test_batch"][0])
    assert test_labels.tolist() == expected["test_batch"][1]


def test_read_svhn_mat_maps_label_10_to_0(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(4, 32, 32, 3), dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat",
            {"X": np.moveaxis(images, 0, -1), "y": np.array([[10], [1], [9], [10]])})
    back, labels = read_svhn(tmp_path / "test_32x32.mat")
    np.testing.assert_array_equal(back, images)
    assert labels.tolist() == [0, 1, 9, 0]


# ------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits_images()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    train, test = order[:600], order[600:900]
    return (images[train], labels[train]), (images[test], labels[test])


def test_tiny_training_reduces_loss_and_restores_the_best_epoch(digits):
    train, test = digits
    torch.manual_seed(0)
    model = cnn.mnist_cnn(4)
    threads = torch.get_num_threads()
    result = cnn.train_cnn(model, train, test, epochs=4, n_jobs=1, progress=False)
    assert torch.get_num_threads() == threads  # restored after training
    history = np.array(result.history)
    assert result.test_loss < 0.8 * np.log(10)  # well below chance, ln 10
    assert result.test_loss == history[:, 2].min()
    assert result.best_epoch == 1 + int(history[:, 2].argmin())
    loss, accuracy = cnn._cnn._evaluate(model, *cnn._cnn._tensors(test, model, "test", "t"), 256)
    assert loss == pytest.approx(result.test_loss, rel=1e-5)  # the best weights are back
    assert accuracy == pytest.approx(result.test_accuracy)


def test_width_sweep_resumes_and_measures_the_hidden_layer_id(digits, tmp_path):
    train, test = digits
    table = tmp_path / "sweep.csv"
    first = cnn.width_sweep("mnist", [2], train, test, seeds=[0], epochs=2, results=table,
                            id_samples=300, n_jobs=1, progress=False)
    assert len(first) == 1 and 1.0 < first[0]["id_twonn"] < 32
    assert first[0]["id_points"] > 100
    rows = cnn.width_sweep("mnist", [2, 3], train, test, seeds=[0], epochs=2, results=table,
                           id_samples=300, n_jobs=1, progress=False)
    with open(table, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2  # width 2 was not trained again
    assert [r["n"] for r in rows] == [2, 3]
    assert rows[0] == first[0]
    assert rows[1]["n_params"] == cnn.mnist_n_params(3) and 1.0 < rows[1]["id_twonn"] < 32
    assert rows[1]["loss"] < np.log(10)
    # Other settings are other runs: nothing stored under the old ones is reused.
    with pytest.warns(UserWarning, match="2 mnist run.* made with other settings"):
        other = cnn.width_sweep("mnist", [2], train, test, seeds=[0], epochs=1, results=table,
                                measure_id=False, n_jobs=1, progress=False)
    assert other[0]["id_twonn"] == "" and other[0]["config"] != first[0]["config"]
    with open(table, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 3


def test_bad_input_raises_value_error(digits):
    (images, labels), test = digits
    with pytest.raises(ValueError, match=r"shape \(n, height, width, 3\)"):
        cnn.train_cnn(cnn.cifar10_cnn(1), (images, labels), test, epochs=1)
    with pytest.raises(ValueError, match="labels must be integers in 0..9"):
        cnn.train_cnn(cnn.mnist_cnn(1), (images, labels + 5), test, epochs=1)
    with pytest.raises(ValueError, match="one label per image"):
        cnn.train_cnn(cnn.mnist_cnn(1), (images, labels[:-1]), test, epochs=1)
    with pytest.raises(ValueError, match="family must be one of"):
        cnn.width_sweep("imagenet", [1], (images, labels), test)
    with pytest.raises(ValueError, match=r"cifar10_cnn: n must be an int in \[1, inf\); got 0\."):
        cnn.cifar10_cnn(0)
