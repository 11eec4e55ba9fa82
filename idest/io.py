"""Reading vector files: .npy (memory-mapped), .npz and .csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_vectors(path: str | Path, *, key: str | None = None) -> np.ndarray:
    """Load a 2-D array of vectors, one per row.

    ``.npy`` files are memory-mapped (never read whole into memory); ``.npz``
    takes the array ``key`` (default: the only or the first array); ``.csv``
    (comma-separated) and ``.txt`` (whitespace-separated, or comma-separated if
    its first line has commas) are read with numpy, a non-numeric first line
    being taken as a header.

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
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if suffix == ".npz":
        with np.load(path) as archive:
            names = list(archive.keys())
            if not names:
                raise ValueError(f"{path} holds no arrays.")
            name = key or names[0]
            if name not in archive:
                raise ValueError(f"{path} has no array '{name}'; it has {', '.join(names)}.")
            return archive[name]
    if suffix in (".csv", ".txt"):
        with open(path) as fh:
            first = fh.readline()
        # commas separate the values of a .csv, and of a .txt that has them; otherwise whitespace
        delimiter = "," if suffix == ".csv" or "," in first else None
        try:
            [float(v) for v in first.split(delimiter) if v.strip()]
            skip = 0
        except ValueError:
            skip = 1
        return np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2)
    raise ValueError(f"unsupported file type '{suffix}' for {path}: use .npy, .npz, .csv or .txt.")
