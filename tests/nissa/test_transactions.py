"""A training run's log as a transaction (issue 11): events held back until `commit`, the
committed length a checkpoint records, the log cut back to it, stale temporary files removed,
and a run directory locked while a process trains in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from esper.leyline.events import Event, EventContext, RewardEvent
from esper.nissa import (
    LOCK_FILE,
    JsonlSink,
    MemorySink,
    RunDirLockedError,
    TelemetryHub,
    atomic_write_bytes,
    locked_run_dir,
    read_events,
    remove_temp_files,
    truncate_events,
)


def event(total: float) -> Event:
    return Event.wrap(RewardEvent({"terminal": total}, total), EventContext(run="r"), 1)


def test_a_transactional_sink_writes_nothing_until_commit(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    sink = JsonlSink(path, transactional=True)
    sink.write(event(1.0))
    sink.write(event(2.0))
    assert path.read_bytes() == b"" and sink.pending == 2 and sink.committed_bytes == 0
    sink.commit()
    assert [e["payload"]["total"] for e in read_events(path)] == [1.0, 2.0]
    assert sink.committed_bytes == path.stat().st_size and sink.pending == 0
    sink.write(event(3.0))
    assert sink.committed_bytes == path.stat().st_size  # the held-back one is not on disk
    assert len(read_events(path)) == 2
    sink.close()  # a close commits what is held back
    assert [e["payload"]["total"] for e in read_events(path)] == [1.0, 2.0, 3.0]


def test_reopening_a_log_starts_its_committed_length_at_the_files(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "x"}\n{"type": "cut', encoding="utf-8")  # a killed write
    sink = JsonlSink(path, transactional=True)
    assert sink.committed_bytes == len('{"type": "x"}\n')  # the fragment was dropped
    sink.close()


def test_the_hub_commits_every_transactional_sink_and_the_console_sees_events_at_once(
    tmp_path: Path,
) -> None:
    log, live = JsonlSink(tmp_path / "events.jsonl", transactional=True), MemorySink()
    hub = TelemetryHub([log, live])
    hub.emit(event(1.0))
    assert len(live.events) == 1 and log.pending == 1
    hub.commit()
    assert log.pending == 0 and len(read_events(tmp_path / "events.jsonl")) == 1
    hub.close()


def test_a_failed_commit_counts_its_events_as_missed_and_does_not_raise(tmp_path: Path) -> None:
    log = JsonlSink(tmp_path / "events.jsonl", transactional=True)
    hub = TelemetryHub([log], strict=True)
    committed = log.committed_bytes

    def full_disk() -> None:
        raise OSError(28, "No space left on device")

    log.commit = full_disk  # type: ignore[method-assign]
    hub.emit(event(1.0))
    hub.emit(event(2.0))
    hub.commit()
    (health,) = hub.health().sinks
    assert health.dropped == 2 and "No space left" in (health.last_error or "")
    assert log.committed_bytes == committed
    hub.close()


def test_truncate_events_cuts_back_to_the_committed_length(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c"')
    truncate_events(path, 9)
    assert path.read_bytes() == b'{"a": 1}\n'
    truncate_events(path, 9)  # already that long: nothing changes
    assert path.read_bytes() == b'{"a": 1}\n'
    with pytest.raises(ValueError, match="fewer than the 100"):
        truncate_events(path, 100)


def test_remove_temp_files_removes_only_what_atomic_writes_leave(tmp_path: Path) -> None:
    atomic_write_bytes(tmp_path / "latest.pt", b"ok")
    stale = tmp_path / ".latest.pt.0123456789ab.tmp"
    stale.write_bytes(b"half")
    keep = [tmp_path / "notes.tmp", tmp_path / ".latest.pt.tmp", tmp_path / "latest.pt"]
    for path in keep[:2]:
        path.write_bytes(b"user")
    assert remove_temp_files(tmp_path) == [stale]
    assert not stale.exists() and all(p.exists() for p in keep)
    assert remove_temp_files(tmp_path / "missing") == []


def test_a_locked_run_directory_refuses_a_second_holder_naming_the_first(tmp_path: Path) -> None:
    with locked_run_dir(tmp_path):
        assert f"process {os.getpid()}" in (tmp_path / LOCK_FILE).read_text()
        with (
            pytest.raises(RunDirLockedError, match=f"in use by process {os.getpid()} on"),
            locked_run_dir(tmp_path),
        ):
            pass
    with locked_run_dir(tmp_path):  # released on exit
        pass


def test_the_lock_of_a_killed_holder_is_released(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from pathlib import Path\n"
            "from esper.nissa import locked_run_dir\n"
            "with locked_run_dir(Path(sys.argv[1])):\n"
            "    print('held', flush=True)\n"
            "    time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    with pytest.raises(RunDirLockedError, match=f"process {holder.pid}"), locked_run_dir(tmp_path):
        pass
    holder.kill()
    holder.wait()
    with locked_run_dir(tmp_path):
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="forked workers need os.fork")
def test_a_forked_worker_does_not_keep_a_killed_holders_lock(tmp_path: Path) -> None:
    """A worker forked while the lock is held (the process backend forks its workers on CPU)
    must not hold the lock on: when the trainer is killed, a resume may start at once, even
    while a worker still finishes its step."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import multiprocessing, sys, time\n"
            "from pathlib import Path\n"
            "from esper.nissa import locked_run_dir\n"
            "def work(started):\n"
            "    started.set()\n"
            "    time.sleep(60)\n"
            "with locked_run_dir(Path(sys.argv[1])):\n"
            "    fork = multiprocessing.get_context('fork')\n"
            "    started = fork.Event()\n"
            "    worker = fork.Process(target=work, args=(started,))\n"
            "    worker.start()\n"
            "    started.wait()  # past its start-up, where the copy is closed\n"
            "    print(worker.pid, flush=True)\n"
            "    time.sleep(60)\n",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    worker = int(holder.stdout.readline())
    try:
        holder.kill()
        holder.wait()
        os.kill(worker, 0)  # the worker outlives its parent
        with locked_run_dir(tmp_path):
            pass
    finally:
        os.kill(worker, 9)
