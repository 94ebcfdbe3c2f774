"""Where telemetry events go: the `Sink` protocol, the JSONL file every run writes, and memory."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Protocol, TextIO

from esper.leyline.events import Event

logger = logging.getLogger(__name__)

_SCAN_CHUNK = 1 << 16  # bytes read per step when scanning backwards for the last newline


class Sink(Protocol):
    """Receives every event the hub lets through (already checked to serialize).

    `write` raises `OSError` for an I/O failure: the hub then drops this sink's events for a
    while and calls `write` again later, so a sink should recover there if it can (reopen its
    file). Any other exception is a bug in the sink.
    """

    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends one `event.to_json()` line per event to a file (a run's events.jsonl).

    Each line is flushed as it is written, so a crash of the process loses at most the line being
    written (no fsync per event: that would cost a disk round trip each time).

    `transactional=True` (a training run's log) holds events back instead, until `commit()`
    appends them in one write and fsyncs the file; `committed_bytes` is then the file's length,
    which a checkpoint records, so that a resume can cut the log back to the events of the rounds
    it holds (a killed round's events are never half in the log and half replayed). Opening a file
    whose last line was left unfinished (by a crash, or by a write that failed) first drops that
    fragment, so appending starts on a fresh line and the file stays readable by `read_events`.

    Before each write the sink checks that `path` still names the file it holds open. If the
    file was removed or replaced (or a folder now stands there), writing on would put events
    into a file nobody can read: the sink reopens `path` instead, and says so in the log. A
    failed write or reopen raises `OSError` and is retried on the next `write` the hub allows.

    Raises:
        OSError: `path` cannot be opened for appending (the run directory is missing, ...).
    """

    def __init__(self, path: str | os.PathLike[str], *, transactional: bool = False) -> None:
        self.path = Path(path)
        self.is_transactional = transactional
        self.committed_bytes = 0  # the file's length after the last commit (or the open)
        self._pending: list[str] = []  # lines held back until `commit` (transactional only)
        self._file: TextIO | None = None
        self._identity: tuple[int, int] | None = None  # (device, inode) of the open file
        self._is_closed = False
        self._open()

    @property
    def pending(self) -> int:
        """Events held back, not yet committed."""
        return len(self._pending)

    def write(self, event: Event) -> None:
        if self._is_closed:
            raise RuntimeError(f"JsonlSink.write({event.type!r}) called after close()")
        line = event.to_json() + "\n"  # serialize first: a bad payload writes nothing
        if self.is_transactional:
            self._pending.append(line)
            return
        self._append(line, sync=False)

    def commit(self) -> None:
        """Append the held-back events in one write and fsync the file (transactional only).

        Raises:
            OSError: the write or the sync failed; the held-back events are dropped (the file
                may hold part of them: `committed_bytes` still marks the last good length).
        """
        lines, self._pending = self._pending, []
        if lines:
            self._append("".join(lines), sync=True)

    def close(self) -> None:
        """Close the file; a transactional sink first commits what it holds (a failed run's
        last events are kept: a resume cuts the log back to its checkpoint anyway)."""
        if self._is_closed:
            return
        try:
            if self._pending:
                self.commit()
        finally:
            self._is_closed = True
            file, self._file = self._file, None
            if file is not None:
                file.close()

    def _append(self, text: str, *, sync: bool) -> None:
        file = self._current_file()
        try:
            file.write(text)
            file.flush()
            if sync:
                os.fsync(file.fileno())
        except OSError:
            # Part of the text may be on disk; the reopen on the next write drops a fragment.
            self._discard()
            raise
        if sync:
            self.committed_bytes = os.fstat(file.fileno()).st_size

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"

    def _current_file(self) -> TextIO:
        """The open file, after reopening `path` if it no longer names that file."""
        if self._file is not None and self._names_open_file():
            return self._file
        if self._file is not None:
            logger.warning(
                "%s no longer names the file this sink was writing (removed or replaced); "
                "reopening it",
                self.path,
            )
            self._discard()
        return self._open()

    def _names_open_file(self) -> bool:
        # One stat per event: about a microsecond, against events that come at most thousands
        # of times a second.
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (stat.st_dev, stat.st_ino) == self._identity

    def _open(self) -> TextIO:
        _end_at_line_boundary(self.path)
        file = self.path.open("a", encoding="utf-8", newline="\n")
        stat = os.fstat(file.fileno())
        self._file, self._identity = file, (stat.st_dev, stat.st_ino)
        self.committed_bytes = stat.st_size
        return file

    def _discard(self) -> None:
        """Let go of the open file after a failure (closing flushes, which may fail again)."""
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


class MemorySink:
    """Keeps events in a list, for tests and the live console."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.is_closed = False

    def write(self, event: Event) -> None:
        if self.is_closed:
            raise RuntimeError("MemorySink.write called after close()")
        self.events.append(event)

    def close(self) -> None:
        self.is_closed = True

    def __repr__(self) -> str:
        return f"MemorySink({len(self.events)} events)"


def _end_at_line_boundary(path: Path) -> None:
    """Make an existing file end with a newline: finish a complete last line, drop a fragment.

    This matches how `read_events` reads a crashed file: a trailing fragment is skipped.
    """
    if not path.exists():
        return
    with path.open("rb+") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return
        # Scan backwards for the newline that ends the last complete line.
        start = end
        while start > 0:
            step = min(_SCAN_CHUNK, start)
            file.seek(start - step)
            newline = file.read(step).rfind(b"\n")
            if newline >= 0:
                start = start - step + newline + 1
                break
            start -= step
        file.seek(start)
        try:
            json.loads(file.read())
        except ValueError:
            file.truncate(start)
        else:
            file.write(b"\n")
