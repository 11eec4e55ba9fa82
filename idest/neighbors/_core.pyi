"""Type stub of the compiled core (cpp/bindings.cpp)."""

import numpy as np
from numpy.typing import NDArray

def knn(
    query: NDArray[np.floating],
    reference: NDArray[np.floating] | None,
    k: int,
    n_candidates: int,
    n_threads: int,
    block_rows: int,
    sgemm: object,
    progress: NDArray[np.int64],
    kernel: str = "auto",  # "auto", "sgemm", "fused", "fused-avx2" or "fused-avx512"
    syev: object | None = None,  # scipy.linalg.cython_lapack's dsyev: the early exit
    prefix_dims: int = -1,  # -1 chosen from the spectrum, 0 off, 0 < p < D forced
) -> tuple[NDArray[np.float64], NDArray[np.int64], int]: ...
def refine(
    query: NDArray[np.floating],
    reference: NDArray[np.floating] | None,
    k: int,
    candidates: NDArray[np.int64],
    lower_bound: NDArray[np.float64],
    n_threads: int,
) -> tuple[NDArray[np.float64], NDArray[np.int64], int]: ...
def fma_rate(
    kernel: str = "fused",  # as for knn; "fused"/"auto": the widest the CPU has
    n_threads: int = 1,
    seconds: float = 0.5,
) -> float: ...
