"""Where telemetry events go: the `Sink` protocol, the JSONL file every run writes, and memory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

from esper.leyline.events import Event

_SCAN_CHUNK = 1 << 16  # bytes read per step when scanning backwards for the last newline


class Sink(Protocol):
    """Receives every event the hub lets through. May raise; the hub then disables it."""

    def write(self, event: Event) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """Appends one `json.dumps(event.to_dict())` line per event to a file (a run's events.jsonl).

    Each line is flushed as it is written, so a crash of the process loses at most the line being
    written (no fsync per event: that would cost a disk round trip each time). Reopening a file
    whose last line a crash left unfinished first drops that fragment, so a resumed run appends
    on a fresh line and the file stays readable by `read_events`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        _end_at_line_boundary(self.path)
        self._file = self.path.open("a", encoding="utf-8", newline="\n")

    def write(self, event: Event) -> None:
        line = json.dumps(event.to_dict())  # serialize first: a bad payload writes nothing
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.path)!r})"


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
