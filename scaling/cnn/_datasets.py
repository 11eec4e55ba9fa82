"""Readers for the standard local files of the image data sets of Sharma & Kaplan A.4.

CIFAR-10 "python version" pickle batches, MNIST / Fashion-MNIST idx files (plain
or gzipped) and SVHN cropped-digit ``.mat`` files. Nothing is downloaded: point
the readers at files you already have. Every reader returns ``(images, labels)``
with images as uint8 of shape (n, height, width, channels) and labels as int64
class indices 0..9.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from idest.utils import check_choice

#: idx type codes (the third byte of the magic number) and their big-endian dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _check_split(split: str, caller: str) -> None:
    check_choice(split, "split", caller, ("train", "test"))


def _missing(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{path} not found: {what}. Nothing is downloaded; place the "
                             "standard files there first.")


def read_idx(path: str | Path) -> np.ndarray:
    """Read one idx file (the MNIST format), gzipped or not.

    The header is two zero bytes, a type code, the number of dimensions, then one
    big-endian int32 per dimension; the data follow in C order.

    Parameters
    ----------
    path : str or Path
        ``*-idx?-ubyte`` or ``*-idx?-ubyte.gz``.

    Returns
    -------
    ndarray
        In the file's dtype (native byte order) and shape.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> raw = bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9])  # 1-D, 3 unsigned bytes
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d, "labels-idx1-ubyte")
    ...     _ = p.write_bytes(raw)
    ...     read_idx(p).tolist()
    [7, 8, 9]
    """
    path = Path(path)
    if not path.exists():
        raise _missing(path, "expected an idx file")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an idx file (bad magic number {data[:4]!r}); "
                         "expected the MNIST idx format.")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, ">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    count = int(np.prod(shape))
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: header announces shape {shape} ({count * dtype.itemsize} "
                         f"bytes) but the file holds {len(data) - offset}; it is truncated.")
    return np.frombuffer(data, dtype, count=count, offset=offset).reshape(shape).astype(
        dtype.newbyteorder("="))


def _find(directory: Path, name: str) -> Path:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise _missing(directory / name, "expected the standard MNIST file name (optionally .gz)")


def read_mnist(directory: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST or Fashion-MNIST (same file names) from a directory of idx files.

    Parameters
    ----------
    directory : str or Path
        Holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte`` (each optionally ``.gz``).
    split : {"train", "test"}, default="train"

    Returns
    -------
    images : ndarray of uint8, shape (n, 28, 28, 1)
    labels : ndarray of int64, shape (n,)

    Examples
    --------
    >>> import gzip, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as d:  # a one-image test split
    ...     labels_file = pathlib.Path(d, "t10k-labels-idx1-ubyte")
    ...     _ = labels_file.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 1, 7]))
    ...     with gzip.open(pathlib.Path(d, "t10k-images-idx3-ubyte.gz"), "wb") as f:
    ...         _ = f.write(bytes([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28]) + bytes(784))
    ...     images, labels = read_mnist(d, "test")
    >>> images.shape, labels.tolist()
    ((1, 28, 28, 1), [7])
    """
    _check_split(split, "read_mnist")
    directory = Path(directory).expanduser()
    image_file, label_file = _MNIST_FILES[split]
    images = read_idx(_find(directory, image_file))
    labels = read_idx(_find(directory, label_file)).astype(np.int64)
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"read_mnist: images of shape {images.shape} do not match "
                         f"{labels.shape[0]} labels in {directory}.")
    return images.astype(np.uint8)[..., None], labels


def read_cifar10(directory: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from the "python version" pickle batches.

    Parameters
    ----------
    directory : str or Path
        ``cifar-10-batches-py``, holding ``data_batch_1`` .. ``data_batch_5`` and ``test_batch``.
    split : {"train", "test"}, default="train"

    Returns
    -------
    images : ndarray of uint8, shape (n, 32, 32, 3)
    labels : ndarray of int64, shape (n,)

    Examples
    --------
    >>> import pathlib, pickle, tempfile
    >>> import numpy as np

from idest.utils import check_choice
    >>> with tempfile.TemporaryDirectory() as d:  # a test batch of two images
    ...     batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [3, 5]}
    ...     _ = pathlib.Path(d, "test_batch").write_bytes(pickle.dumps(batch))
    ...     images, labels = read_cifar10(d, "test")
    >>> images.shape, labels.tolist()
    ((2, 32, 32, 3), [3, 5])
    """
    _check_split(split, "read_cifar10")
    directory = Path(directory).expanduser()
    images, labels = [], []
    for name in _CIFAR_FILES[split]:
        path = directory / name
        if not path.exists():
            raise _missing(path, "expected the CIFAR-10 python batches")
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"{path}: expected rows of 3072 bytes (3 × 32 × 32), got "
                             f"shape {data.shape}.")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], dtype=np.int64))
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def read_svhn(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """SVHN cropped digits (``train_32x32.mat``, ``test_32x32.mat``, ``extra_32x32.mat``).

    The files hold ``X`` of shape (32, 32, 3, n) and ``y`` of shape (n, 1) with the
    digit 0 stored as label 10; it is mapped back to 0.

    Parameters
    ----------
    path : str or Path
        One ``.mat`` file (MATLAB v5, read by ``scipy.io.loadmat``).

    Returns
    -------
    images : ndarray of uint8, shape (n, 32, 32, 3)
    labels : ndarray of int64, shape (n,)

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np

from idest.utils import check_choice
    >>> from scipy.io import savemat
    >>> with tempfile.TemporaryDirectory() as d:
    ...     path = os.path.join(d, "test_32x32.mat")
    ...     savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[10], [4]])})
    ...     images, labels = read_svhn(path)
    >>> images.shape, labels.tolist()
    ((2, 32, 32, 3), [0, 4])
    """
    from scipy.io import loadmat

    path = Path(path).expanduser()
    if not path.exists():
        raise _missing(path, "expected an SVHN *_32x32.mat file")
    content = loadmat(path)
    if "X" not in content or "y" not in content:
        raise ValueError(f"{path} has no 'X' and 'y' arrays; expected SVHN cropped digits.")
    images = np.ascontiguousarray(np.moveaxis(content["X"], -1, 0).astype(np.uint8))
    labels = content["y"].reshape(-1).astype(np.int64) % 10
    return images, labels


def load_digits_images(size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits, upsampled to ``size`` × ``size`` for the MNIST network.

    The offline stand-in for MNIST used by the tests and the demo: 1797 grey
    images with 17 levels (0..16), scaled to [0, 1] and enlarged by bilinear
    interpolation (``scipy.ndimage.zoom``, order 1) so that the Table 3 network
    applies unchanged. They hold no more information than the 8×8 originals.

    Parameters
    ----------
    size : int, default=28

    Returns
    -------
    images : ndarray of float32, shape (1797, size, size, 1), values in [0, 1]
    labels : ndarray of int64, shape (1797,)

    Examples
    --------
    >>> images, labels = load_digits_images()
    >>> images.shape, float(images.max()), labels[:3].tolist()
    ((1797, 28, 28, 1), 1.0, [0, 1, 2])
    """
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = digits.images.astype(np.float32) / 16.0
    large = zoom(small, (1, size / 8, size / 8), order=1, grid_mode=True, mode="nearest")
    return np.clip(large, 0.0, 1.0)[..., None].astype(np.float32), digits.target.astype(np.int64)
