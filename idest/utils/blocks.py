"""Row blocks of large arrays, so memmaps never load whole into memory."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: Rows per block of a large array read into memory (not the k-NN tile side):
#: 65,536 rows of 768 float64 values are 400 MB at most.
MEMORY_BLOCK_ROWS = 65_536


def row_blocks(
    A: np.ndarray, dtype: type | None = None, rows: int = MEMORY_BLOCK_ROWS
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, A[start:start + rows])`` as in-memory arrays of ``dtype``.

    Examples
    --------
    >>> [(start, block.shape) for start, block in row_blocks(np.zeros((5, 2)), rows=2)]
    [(0, (2, 2)), (2, (2, 2)), (4, (1, 2))]"""
    for start in range(0, A.shape[0], rows):
        yield start, np.asarray(A[start : start + rows], dtype=dtype)
