"""Plumbing shared by every stage of idest and by ``scaling``: input validation,
progress bars, row blocks of large arrays, a scoped thread limit, resumable storage,
content hashes, and units of work on a Dask cluster.

These are public names: ``scaling`` and user code import them from here, never
from the modules below.
"""

from idest.utils.blocks import row_blocks
from idest.utils.cluster import as_completed_units, check_client, dask_client, worker_threads
from idest.utils.hashing import content_hash
from idest.utils.process import exit_with_parent
from idest.utils.progress import progress_bar
from idest.utils.store import RecordStore, StoreWarning, atomic_write, read_json, write_json
from idest.utils.threads import limit_threads
from idest.utils.validation import (
    check_array,
    check_choice,
    check_confidence,
    check_finite,
    check_fraction,
    check_int,
    check_positive,
    check_random_state,
    invalid,
)

__all__ = ["RecordStore", "StoreWarning", "as_completed_units", "atomic_write", "check_array",
           "check_choice", "check_client", "check_confidence", "check_finite", "check_fraction",
           "check_int", "check_positive", "check_random_state", "content_hash", "dask_client",
           "exit_with_parent", "invalid", "limit_threads", "progress_bar", "read_json",
           "row_blocks", "worker_threads", "write_json"]
