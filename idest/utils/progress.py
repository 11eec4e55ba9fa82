"""Progress bars for long work: shown on a terminal, silenced on request."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tqdm.auto import tqdm

#: Work (floating-point operations) above which ``progress=None`` shows a bar.
AUTO_THRESHOLD_FLOPS = 2e11


@contextlib.contextmanager
def progress_bar(
    progress: bool | None, *, total: int | None, desc: str, unit: str = "it",
    work: float = float("inf"),
) -> Iterator[tqdm | None]:
    """A tqdm bar, or None when silenced.

    Examples
    --------
    >>> with progress_bar(False, total=10, desc="search") as bar:
    ...     bar is None
    True

    ``progress=True`` always shows it, ``False`` never; ``None`` shows it when
    ``work`` exceeds :data:`AUTO_THRESHOLD_FLOPS` and stderr is a terminal.
    """
    if progress is False or (progress is None and work < AUTO_THRESHOLD_FLOPS):
        yield None
        return
    bar = tqdm(total=total, desc=desc, unit=unit, disable=None if progress is None else False,
               leave=False)
    try:
        yield bar
    finally:
        bar.close()
