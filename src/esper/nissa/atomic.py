"""Atomic file writes: readers see the old file or the new one, never a half-written one.

The data goes to a temporary file in the same directory (so the final rename stays on one file
system), is flushed and fsynced, then `os.replace`d over the target. If anything fails, the old
file is untouched and the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

StrPath = str | os.PathLike[str]


_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


def atomic_write_bytes(path: StrPath, data: bytes) -> None:
    """Replace `path` with `data` atomically (the parent directory must exist)."""
    target = Path(path)
    temp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open with mode 0o666 lets the umask decide permissions, as a plain open() would
    # (tempfile.mkstemp would leave the final file readable by its owner only).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_directory(target.parent)


def atomic_write_text(path: StrPath, text: str) -> None:
    """Replace `path` with `text` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: StrPath, obj: Any) -> None:
    """Replace `path` with `obj` as indented JSON atomically.

    `obj` is serialized before anything touches the disk, so an unserializable value raises
    `TypeError` (or `ValueError`) and leaves the old file as it was.
    """
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def remove_temp_files(directory: StrPath) -> list[Path]:
    """Remove the temporary files that writes killed mid-way left in `directory` (only names
    `atomic_write_bytes` makes); returns them. Call it only where no write can be under way."""
    folder = Path(directory)
    if not folder.is_dir():
        return []
    stale = sorted(p for p in folder.iterdir() if _TEMP_NAME.fullmatch(p.name) and p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself survive a power cut (POSIX; Windows cannot open directories).

    Best effort: the new file is already in place, and some file systems (network, FUSE) refuse
    to fsync a directory, which must not turn a finished write into an error.
    """
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
