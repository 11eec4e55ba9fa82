"""Files that survive interruption: whole files replaced atomically, records appended safely.

Whole files (:func:`atomic_write`, :func:`write_json`) go to a temporary file in
the same folder, are flushed to disk (fsync) and renamed over the target, so a
reader sees the old content or the new, never a mixture, whatever kills the
writer. Resumable tables (:class:`RecordStore`) are appended a record per line
and checked on every read, so an interruption costs at most the last record,
which is recomputed rather than merged with the next one.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` only if the block completes.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(target) as f:
    ...     _ = f.write("done")
    >>> target.read_text()
    'done'
    """
    path = Path(path)
    # one name per process and thread: two writers of one file never share a temporary
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_json(path: str | Path) -> Any:
    """The content of a JSON file, or None if it is missing or unreadable.

    Examples
    --------
    >>> read_json("/nonexistent/file.json") is None
    True
    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: str | Path, value: Any, indent: int | None = None) -> None:
    """Replace a JSON file atomically (an interruption leaves the old or the new one).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "state.json"
    >>> write_json(target, {"done": 3})
    >>> read_json(target)
    {'done': 3}
    """
    with atomic_write(path) as handle:
        handle.write(json.dumps(value, indent=indent))


class StoreWarning(UserWarning):
    """A resumable file was repaired: a cut or malformed last record was removed."""


class RecordStore:
    """An append-only CSV of records that survives being killed at any byte.

    A record is one line (a newline inside a value is written as a space), so a
    write cut short by a crash or a full disk can only damage the last line. The
    file is checked on every read: its header must be ``columns``; a last
    record that is cut (no final newline) or malformed (wrong number of fields,
    a value its column's parser refuses, bytes that are not UTF-8) is reported
    with a :class:`StoreWarning`, truncated away and so recomputed by the
    caller, never merged with the next record; a malformed record anywhere
    else, or another header, is an error naming the file and the fix. Appends
    first make sure the file ends with a complete record, then write and fsync.

    Parameters
    ----------
    path : str or Path
        The CSV file; created (with its header) on the first append.
    columns : sequence of str
        Every column, in order.
    key : sequence of str
        The columns that identify a record (what is looked up to skip work).
    parsers : mapping of str to callable, optional
        Per-column check (e.g. ``int``, ``float``) applied to every value read;
        a ValueError marks the record malformed.
    owner : str, default="RecordStore"
        Named in error messages (the function or class using the store).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.csv"
    >>> store = RecordStore(path, ["n", "loss"], key=["n"], parsers={"n": int, "loss": float})
    >>> store.append([{"n": 1, "loss": 0.5}, {"n": 2, "loss": 0.25}])
    >>> with open(path, "a") as f:  # a crash in the middle of a write
    ...     _ = f.write("3,0.1")
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     rows = store.read()
    >>> [r["n"] for r in rows], len(caught)
    (['1', '2'], 1)
    >>> sorted(store.keys())
    [('1',), ('2',)]
    """

    def __init__(self, path: str | Path, columns: Sequence[str], key: Sequence[str], *,
                 parsers: Mapping[str, Callable[[str], Any]] | None = None,
                 owner: str = "RecordStore"):
        self.path = Path(path)
        self.columns = tuple(columns)
        self.key = tuple(key)
        self.parsers = dict(parsers or {})
        self.owner = owner
        unknown = [c for c in (*self.key, *self.parsers) if c not in self.columns]
        if len(set(self.columns)) != len(self.columns) or unknown or not self.key:
            raise ValueError(f"{owner}: the record columns must be distinct and hold every key "
                             f"and parsed column; got columns {self.columns}, key {self.key}, "
                             f"parsers for {tuple(self.parsers)}.")

    # ------------------------------------------------------------------ reading

    def read(self) -> list[dict[str, str]]:
        """Every complete record, as dicts of strings, after repairing a damaged last one."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        header = self._header_bytes()
        if not lines:  # not even a complete header
            if header.startswith(tail):
                self._truncate(0, "a header cut short")
                return []
            self._fail(1, f"its first line {tail[:80]!r} is not the header {self._header()}")
        if lines[0].rstrip(b"\r") != header.rstrip(b"\r\n"):
            found = self._parse(lines[0])
            raise ValueError(
                f"{self.owner}: {self.path} has the columns {found} but this store writes "
                f"{list(self.columns)}; resume with the same version and settings, or write to a "
                "new file (move or delete this one).")
        records, offset = [], len(lines[0]) + 1
        for number, line in enumerate(lines[1:], start=2):
            problem = self._problem(line)
            if problem is not None:
                if number == len(lines) and not tail:  # the last record: drop it
                    self._truncate(offset, f"a malformed last record ({problem})")
                    return records
                self._fail(number, problem)
            records.append(dict(zip(self.columns, self._parse(line), strict=True)))
            offset += len(line) + 1
        if tail:
            self._truncate(offset, "a record cut short (no final newline)")
        return records

    def keys(self) -> set[tuple[str, ...]]:
        """The key of every complete record (see :meth:`read`)."""
        return {self.key_of(r) for r in self.read()}

    def key_of(self, record: Mapping[str, Any]) -> tuple[str, ...]:
        """The key of a record, as the strings stored in the file."""
        return tuple(_cell(record[c]) for c in self.key)

    # ------------------------------------------------------------------ writing

    def append(self, records: Iterable[Mapping[str, Any]], *, together: bool = False) -> None:
        """Append records (every column present; values written with ``str``) and fsync.

        With ``together`` the records land all or none: the file is rewritten with them
        and renamed over the old one (:func:`atomic_write`, a cost in the file's size),
        where a plain append cut short by a kill keeps the records written before the cut
        (a fatal signal can stop a write of several pages part way).
        """
        records = list(records)
        for record in records:
            missing = [c for c in self.columns if c not in record]
            extra = [c for c in record if c not in self.columns]
            if missing or extra:
                raise ValueError(f"{self.owner}: a record for {self.path} must have exactly the "
                                 f"columns {list(self.columns)}; missing {missing}, extra {extra}.")
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        if not new:
            self.read()  # checks the header and removes a damaged last record
            new = self.path.stat().st_size == 0
        text = io.StringIO()
        writer = csv.writer(text)
        if new:
            writer.writerow(self.columns)
        writer.writerows([_cell(r[c]) for c in self.columns] for r in records)
        if together:
            before = b"" if new else self.path.read_bytes()
            with atomic_write(self.path, "wb") as handle:
                handle.write(before + text.getvalue().encode("utf-8"))
            return
        with open(self.path, "ab") as handle:
            handle.write(text.getvalue().encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        if new:
            _fsync_directory(self.path.parent)

    # ------------------------------------------------------------------ helpers

    def _header(self) -> list[str]:
        return list(self.columns)

    def _header_bytes(self) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerow(self.columns)
        return text.getvalue().encode("utf-8")

    @staticmethod
    def _parse(line: bytes) -> list[str]:
        rows = list(csv.reader([line.rstrip(b"\r").decode("utf-8")], strict=True))
        return rows[0] if rows else []

    def _problem(self, line: bytes) -> str | None:
        """Why a record line is malformed, or None."""
        try:
            fields = self._parse(line)
        except (UnicodeDecodeError, csv.Error) as exc:
            return f"unreadable ({exc})"
        if len(fields) != len(self.columns):
            return f"{len(fields)} field(s) where the header has {len(self.columns)}"
        for column, value in zip(self.columns, fields, strict=True):
            parse = self.parsers.get(column)
            if parse is not None:
                try:
                    parse(value)
                except (ValueError, TypeError):
                    return f"{column}={value!r} is not a valid {getattr(parse, '__name__', '')}"
        return None

    def _truncate(self, offset: int, what: str) -> None:
        size = self.path.stat().st_size
        warnings.warn(f"{self.owner}: {self.path} ended with {what}; removed its last "
                      f"{size - offset} byte(s), that record will be recomputed.",
                      StoreWarning, stacklevel=3)
        with open(self.path, "r+b") as handle:
            handle.truncate(offset)
            handle.flush()
            os.fsync(handle.fileno())

    def _fail(self, line: int, problem: str) -> None:
        raise ValueError(f"{self.owner}: {self.path}, line {line}: {problem}. Only the last "
                         "record of a resumable file can be damaged by an interruption, so this "
                         "file was edited or is not this store's; fix or delete that line (its "
                         "run is then recomputed) or write to a new file.")


def _cell(value: Any) -> str:
    """A value as stored: ``str`` (``repr`` round-trips floats), newlines as spaces."""
    return str(value).replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
