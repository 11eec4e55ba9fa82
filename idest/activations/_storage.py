"""Streamed storage of captured rows (in memory or a growing .npy) and its checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from idest.activations._reductions import Reduction
from idest.utils import read_json, write_json


class _Sink:
    """Rows of one site, copied straight from the reduced tensor into preallocated storage.

    In memory: blocks of ``chunk_rows`` rows. On disk: one ``.npy`` opened with
    ``open_memmap``, sized from the expected number of rows and grown (copied
    chunk by chunk) if that was too small. Nothing small and long-lived is
    allocated per batch: with glibc's adaptive mmap threshold, such objects
    scattered between the forward pass's large temporaries made the heap grow
    by ~25 MB per batch.
    """

    def __init__(self, path: Path | None, chunk_rows: int, expected_rows: Callable[[int], int],
                 keep_on_device: bool = False):
        self.path = path
        self.chunk_rows = chunk_rows
        self.expected_rows = expected_rows  # rows of the first batch -> expected total
        self.blocks: list[np.ndarray] = []  # in memory
        self.array: np.memmap | None = None  # on disk
        self.tensors: list | None = [] if keep_on_device else None  # on the model's device
        self.n = 0

    def append(self, rows: Any) -> None:
        """Copy a (m, width) CPU or GPU tensor in, converting to float32 (float64 stays)."""
        import torch

        dtype = np.float64 if rows.dtype == torch.float64 else np.float32
        m, width = rows.shape
        if self.tensors is not None:  # a copy where it is: hooks may hand out reused buffers
            self.tensors.append(rows.to(torch.float64 if dtype == np.float64 else torch.float32,
                                        copy=True))
            self.n += m
            return
        if self.path is not None:
            if self.array is None:
                self.array = np.lib.format.open_memmap(
                    self.path, mode="w+", dtype=dtype,
                    shape=(max(self.expected_rows(m), m), width))
            if self.n + m > len(self.array):
                self._resize(max(2 * len(self.array), self.n + m))
            torch.from_numpy(self.array[self.n : self.n + m]).copy_(rows)
            self.n += m
            return
        done = 0
        while done < m:
            if self.n == len(self.blocks) * self.chunk_rows:
                self.blocks.append(np.empty((self.chunk_rows, width), dtype))
            offset = self.n % self.chunk_rows
            take = min(m - done, self.chunk_rows - offset)
            torch.from_numpy(self.blocks[-1][offset : offset + take]).copy_(rows[done:done + take])
            done += take
            self.n += take

    def _resize(self, rows: int) -> None:
        """Copy the rows written so far into a new .npy of ``rows`` rows, chunk by chunk."""
        tmp = self.path.with_name(self.path.name + ".resize.npy")
        new = np.lib.format.open_memmap(tmp, mode="w+", dtype=self.array.dtype,
                                        shape=(rows, self.array.shape[1]))
        for start in range(0, self.n, self.chunk_rows):
            stop = min(self.n, start + self.chunk_rows)
            new[start:stop] = self.array[start:stop]
        new.flush()
        del new
        self.array = None
        os.replace(tmp, self.path)
        self.array = np.lib.format.open_memmap(self.path, mode="r+")

    def reopen(self, n: int) -> None:
        """Continue a file of which the first ``n`` rows were written by an earlier run."""
        self.array = np.lib.format.open_memmap(self.path, mode="r+")
        self.n = n

    def checkpoint(self) -> int:
        """Flush the file to disk; the number of rows stored."""
        if self.array is not None:
            self.array.flush()
        return self.n

    @property
    def empty(self) -> bool:
        return self.n == 0

    def close(self) -> Any:
        if self.tensors is not None:
            import torch

            return torch.cat(self.tensors) if len(self.tensors) > 1 else self.tensors[0]
        if self.path is None:
            full = np.concatenate(self.blocks) if len(self.blocks) > 1 else self.blocks[0]
            return full[: self.n]
        if self.n != len(self.array):
            self._resize(self.n)
        self.array.flush()
        self.array = None
        return np.load(self.path, mmap_mode="r")


class _Checkpoint:
    """The resumable state of a streamed capture: batches done and rows stored per site.

    Saved (atomically) each time a chunk of rows has gone to disk, after every
    site's buffer has been flushed, so the files and the state always agree.
    """

    def __init__(self, path: Path, key: Any, reductions: Mapping[str, Reduction],
                 sinks: Mapping[str, _Sink]):
        self.path = path
        self.sinks = sinks
        self.state = json.loads(json.dumps(
            {"key": key, "reduce": {name: repr(r) for name, r in reductions.items()}},
            default=str))
        self.saved = dict.fromkeys(sinks, 0)  # rows per site at the last save

    def restore(self) -> tuple[int, int | None]:
        """Reopen the files of a matching earlier run: (batches it finished, its first
        batch's size), or (0, None) when there is none."""
        saved = read_json(self.path)
        if not saved or {k: saved.get(k) for k in self.state} != self.state:
            return 0, None
        for name, sink in self.sinks.items():
            if saved["rows"][name]:
                sink.reopen(saved["rows"][name])
        self.saved = saved["rows"]
        return saved["batches_done"], saved["first_size"]

    def save_if_due(self, batches_done: int, first_size: int, every_rows: int) -> None:
        """Save the state once some site has written ``every_rows`` rows since the last save."""
        if all(sink.n - self.saved[name] < every_rows for name, sink in self.sinks.items()):
            return
        self.saved = {name: sink.checkpoint() for name, sink in self.sinks.items()}
        write_json(self.path, {**self.state, "batches_done": batches_done,
                                "first_size": first_size, "rows": self.saved})
