"""Run directories: `runs/<YYYYmmdd-HHMMSS>-<name>/` with its config, events and checkpoints."""

from __future__ import annotations

import contextlib
import json
import multiprocessing.util
import os
import re
import socket
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from esper.nissa.atomic import StrPath, atomic_write_json

_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]+")
CONFIG_FILE = "config.json"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS_DIR = "checkpoints"
LOCK_FILE = "run.lock"


class RunDirLockedError(ValueError):
    """Another process trains in this run directory; the message names it."""


@contextlib.contextmanager
def locked_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold `run_dir/run.lock` exclusively while the body runs: a second trainer (a resume
    started while the first still runs) is refused instead of training the same rounds twice.

    The lock is an advisory `flock` on the file, so the operating system releases it when the
    holder dies, even by SIGKILL: a crashed run never leaves a stale lock. The file stays; it
    names the last holder (process, host, start time). Workers forked by `multiprocessing`
    close their copy of the descriptor, so they never hold the lock. On systems without
    `fcntl` (Windows) nothing is locked.

    Raises:
        RunDirLockedError: another process holds the lock.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = run_dir / LOCK_FILE
    with path.open("a+", encoding="utf-8") as file:
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirLockedError(
                f"run directory {run_dir} is in use by {_holder(file)}: wait for it to finish "
                "or stop it, then resume"
            ) from None
        file.seek(0)
        file.truncate()
        started = datetime.now().isoformat(timespec="seconds")
        file.write(f"process {os.getpid()} on {socket.gethostname()} since {started}\n")
        file.flush()
        # A forked child (a process-backend worker) shares the locked file description: it
        # closes its copy as it starts (before its target runs), or it would hold the lock
        # after this process died. Only a child killed with its parent mid-start-up can still
        # hold it, until it exits.
        multiprocessing.util.register_after_fork(file, _close_in_child)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _close_in_child(file: TextIO) -> None:
    if not file.closed:  # the descriptor only: the parent's buffer is not flushed here
        os.close(file.fileno())


def _holder(file: TextIO) -> str:
    file.seek(0)
    return file.read().strip() or "another process"


def check_events_length(path: Path, length: int) -> int:
    """The size of events.jsonl, which must hold at least the `length` bytes a checkpoint
    committed.

    Raises:
        ValueError: the file is shorter (it was changed outside esper).
    """
    size = path.stat().st_size if path.exists() else 0
    if size < length:
        raise ValueError(
            f"{path} holds {size} bytes, fewer than the {length} its checkpoint committed: "
            "the event log was changed outside esper"
        )
    return size


def truncate_events(path: Path, length: int) -> None:
    """Cut events.jsonl back to its first `length` bytes: the events a checkpoint committed
    (what a killed round appended after them is dropped, as the round is trained again).

    Raises:
        ValueError: the file is shorter than `length` (`check_events_length`).
    """
    if check_events_length(path, length) > length:
        with path.open("rb+") as file:
            file.truncate(length)
            file.flush()
            os.fsync(file.fileno())


def create_run_dir(root: Path = Path("runs"), *, name: str) -> Path:
    """Create and return a fresh `root/<YYYYmmdd-HHMMSS>-<name>/` with `checkpoints/` inside.

    The timestamp is local time. If that directory already exists (two runs started within the
    same second), `-2`, `-3`, … is appended; creation is atomic, so concurrent callers never
    share a directory.

    Raises:
        ValueError: if `name` is empty or has characters other than letters, digits, '-', '_'
            and '.'.
    """
    if not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"invalid run name {name!r}: use only letters, digits, '-', '_' and '.' (at least one)"
        )
    root.mkdir(parents=True, exist_ok=True)
    base = f"{_timestamp()}-{name}"
    run_dir = root / base
    suffix = 1
    while True:
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            suffix += 1
            run_dir = root / f"{base}-{suffix}"
    (run_dir / CHECKPOINTS_DIR).mkdir()
    return run_dir


def write_config(run_dir: Path, config: Mapping[str, Any]) -> Path:
    """Write the resolved config as `run_dir/config.json` (atomically) and return its path."""
    path = run_dir / CONFIG_FILE
    atomic_write_json(path, dict(config))
    return path


def read_events(path: StrPath) -> list[dict[str, Any]]:
    """Read an events.jsonl file: one dict per line, in order.

    A last line without its newline is what a crash mid-write leaves: it is skipped if it does
    not parse. Any other line that is not a JSON object is corruption.

    Raises:
        ValueError: naming the file and the line number of the first corrupt line.
    """
    events: list[dict[str, Any]] = []
    with open(path, "rb") as file:
        for line_number, line in enumerate(file, start=1):
            is_complete = line.endswith(b"\n")
            try:
                record = json.loads(line)
            except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
                if not is_complete:
                    break
                raise ValueError(f"{path}:{line_number}: corrupt event line: {error}") from error
            if not isinstance(record, dict):
                raise ValueError(
                    f"{path}:{line_number}: expected a JSON object, got {type(record).__name__}"
                )
            events.append(record)
    return events


def _timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")
