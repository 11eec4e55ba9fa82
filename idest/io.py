"""Reading vector files: .npy (memory-mapped), .npz and .csv, with errors that name the file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

#: The first bytes of every .npy file.
_NPY_MAGIC = b"\x93NUMPY"


def load_vectors(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """Load a 2-D array of vectors, one per row.

    ``.npy`` files are memory-mapped (never read whole into memory); ``.npz``
    takes the array ``key`` (default: the only or the first array); ``.csv``
    (comma-separated) and ``.txt`` (whitespace-separated, or comma-separated if
    its first line has commas) are read with numpy, a non-numeric first line
    being taken as a header.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        The file is empty, truncated, not of the type its suffix says, or holds
        something other than a 2-D numeric array; the message names the file,
        what is wrong and the fix.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, np.zeros((3, 2)))
    >>> load_vectors(path).shape
    (3, 2)
    >>> txt = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> np.savetxt(txt, np.ones((4, 3)))                     # numpy's default: spaces
    >>> load_vectors(txt).shape
    (4, 3)
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give a .npy, .npz or .csv file.")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv", ".txt"):
        raise ValueError(f"{path} has the unsupported suffix '{suffix}'; use .npy, .npz, .csv "
                         "or .txt.")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes); was it written completely?")
    if suffix == ".npy":
        X = _load_npy(path)
    elif suffix == ".npz":
        X = _load_npz(path, key)
    else:
        X = _load_csv(path)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds an array of dtype {X.dtype}, not numbers; save the "
                         "vectors as a float array.")
    if X.ndim != 2 or 0 in X.shape:
        raise ValueError(f"{path} holds an array of shape {X.shape}; expected a non-empty 2-D "
                         "array of shape (n_points, n_features), one vector per row.")
    return X


def _load_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        magic = fh.read(len(_NPY_MAGIC))
        if magic != _NPY_MAGIC:
            kind = "a zip archive (.npz)" if magic.startswith(b"PK") else "text or another format"
            raise ValueError(f"{path} is not a .npy file (it looks like {kind}); give it the "
                             "suffix of its format (.csv for text).")
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(fh)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{path} has a damaged .npy header ({exc}); write it again.") from None
        offset = fh.tell()
    if dtype.hasobject:
        raise ValueError(f"{path} holds Python objects (dtype {dtype}), not numbers; save the "
                         "vectors as a float array.")
    expected = offset + int(np.prod(shape)) * dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise ValueError(f"{path} is truncated: its header announces an array of shape {shape} "
                         f"({expected} bytes) but the file holds {size}; write it again.")
    return np.load(path, mmap_mode="r")


def _load_npz(path: Path, key: str | None) -> np.ndarray:
    try:
        with open(path, "rb") as fh, np.load(fh) as archive:
            names = list(archive.keys())
            if not names:
                raise ValueError(f"{path} holds no arrays.")
            name = key or names[0]
            if name not in archive:
                raise ValueError(f"{path} has no array '{name}'; it has {', '.join(names)}.")
            return archive[name]
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValueError(f"{path} is not a readable .npz archive ({exc}); write it again, or "
                         "give it the suffix of its format.") from None
    except ValueError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise ValueError(f"{path} holds an unreadable array ({exc}).") from None


def _load_csv(path: Path) -> np.ndarray:
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
            fh.read()  # the whole file must be text
    except UnicodeDecodeError as exc:
        hint = " (it is a .npy file: rename it to .npy)" if _is_npy(path) else ""
        raise ValueError(f"{path} is not a text file: byte {exc.start} is not UTF-8"
                         f"{hint}.") from None
    # commas separate the values of a .csv, and of a .txt that has them; otherwise whitespace
    delimiter = "," if path.suffix.lower() == ".csv" or "," in first else None
    try:
        [float(v) for v in first.split(delimiter) if v.strip()]
        skip = 0
    except ValueError:
        skip = 1
    try:
        return np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)
    except ValueError as exc:
        reason = str(exc).split(";")[0].rstrip(".")
        raise ValueError(f"{path} is not a numeric table ({reason}); every line after an "
                         "optional header must hold the same number of numbers.") from None


def _is_npy(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(len(_NPY_MAGIC)) == _NPY_MAGIC
