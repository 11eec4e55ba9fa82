"""One thread limiter, scoped to a call: the BLAS/OpenMP pools and torch's intra-op pool.

Small matrices train and search fastest on one thread, and on a shared machine extra
threads spin; but a library must not change its caller's process for good. The limit
below holds inside a ``with`` block only and every pool gets its previous size back
afterwards, even when the block raises.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from idest.utils.validation import check_int


@contextlib.contextmanager
def limit_threads(n_jobs: int | None) -> Iterator[None]:
    """Run the block with at most ``n_jobs`` BLAS/OpenMP threads and torch intra-op threads.

    The native pools (OpenBLAS, MKL, BLIS, OpenMP) are limited through threadpoolctl;
    torch's intra-op pool through ``torch.set_num_threads``, and only if torch is already
    imported when the block starts (this function never imports it: import torch first if
    the block will use it). Both are restored on exit.

    Parameters
    ----------
    n_jobs : int or None
        The limit, at least 1; None leaves every pool as it is (a no-op block).

    Examples
    --------
    >>> from threadpoolctl import threadpool_info
    >>> from idest.utils import limit_threads
    >>> before = [p["num_threads"] for p in threadpool_info()]
    >>> with limit_threads(1):
    ...     all(p["num_threads"] == 1 for p in threadpool_info())
    True
    >>> [p["num_threads"] for p in threadpool_info()] == before
    True
    """
    if n_jobs is None:
        yield
        return
    n_jobs = check_int(n_jobs, "n_jobs", "limit_threads", 1)
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else None
    try:
        if torch is not None:
            torch.set_num_threads(n_jobs)
        with threadpool_limits(n_jobs):
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(previous)
