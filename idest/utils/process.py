"""Worker processes that never outlive the process that started them."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time

#: ``prctl`` option asking Linux to signal this process when its parent dies.
_PR_SET_PDEATHSIG = 1


def exit_with_parent(poll_seconds: float = 1.0) -> None:
    """Make the calling process exit as soon as its parent process dies, however it dies.

    Meant for the initializer of pool workers (``ProcessPoolExecutor(initializer=...)``):
    a parent killed with ``kill -9`` runs no clean-up, and its workers would go on
    computing (and holding memory) as orphans. On Linux the kernel is asked to send
    ``SIGKILL`` when the parent exits (``prctl(PR_SET_PDEATHSIG)``); on every system
    a daemon thread also checks every ``poll_seconds`` that the parent is still the
    same process and exits (``os._exit``) when it is not.

    Parameters
    ----------
    poll_seconds : float, default=1.0
        Interval of the watchdog's check.

    Examples
    --------
    >>> import concurrent.futures as cf, os
    >>> with cf.ProcessPoolExecutor(1, initializer=exit_with_parent) as pool:
    ...     pool.submit(os.getpid).result() != os.getpid()
    True
    """
    parent = multiprocessing.parent_process()
    parent_pid = parent.pid if parent is not None else os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
    threading.Thread(target=_watch, args=(parent_pid, poll_seconds), daemon=True,
                     name="idest-exit-with-parent").start()


def _watch(parent_pid: int, poll_seconds: float) -> None:
    while True:
        time.sleep(poll_seconds)
        if os.getppid() != parent_pid:
            os._exit(1)
