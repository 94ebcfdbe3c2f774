"""A training run killed (SIGKILL) again and again, resumed each time, ends as if never killed
(issue 11, acceptance 1): its final checkpoint's tensors equal an uninterrupted run's, its
events.jsonl holds every record of the uninterrupted run exactly once (apart from times and the
run_start / run_end records each process writes), and no temporary file is left.

Kills come at random times and, through faults the child process injects into itself
(`killable.py`), inside a checkpoint write, between a round's committed events and its
checkpoint, and inside a resume that is rolling the run back.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from esper.nissa import CHECKPOINTS_DIR, EVENTS_FILE, read_events
from esper.simic.checkpoint import LATEST, kept_rounds, read_checkpoint

ROUNDS = 16
ARGS = [
    "train", "ppo", "--task", "digits", "--envs", "2", "--episode-length", "2", "--seed", "3",
    "--rounds", str(ROUNDS), "--keep-every", "3", "--no-live",
]  # fmt: skip
PROCESS_RECORDS = {"run_start", "run_end"}  # one pair per process, not per round
# The kills after the first (a fresh run killed while writing round 2's checkpoint), in a fixed
# shuffled order: "random" at a random moment of the process's life (maybe while it starts),
# "in a round" at a random moment after its first commit (so that the run moves on).
FAULTS: list[dict[str, Any]] = [
    {"at": "replace", "name": LATEST, "nth": 2},  # a checkpoint write, in a resumed process
    {"at": "checkpoint", "nth": 1},  # the round's events committed, its checkpoint not
    {"at": "rollback"},  # an interrupted resume
    {"at": "replace", "name": "config.json", "nth": 1},  # after the checkpoint, before config
    *[{"at": "random"}] * 4,
    *[{"at": "in a round"}] * 4,
]


class Server:
    """`killable.py` in a subprocess: forks `esper` children on request."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("killable.py"))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def start(self, argv: list[str], fault: dict[str, Any] | None = None) -> int:
        request = {"argv": argv, "fault": fault, "log": str(self.log)}
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(self._answer()["pid"])

    def wait(self) -> int:
        return int(self._answer()["status"])

    def run(self, argv: list[str], fault: dict[str, Any] | None = None) -> int:
        self.start(argv, fault)
        return self.wait()

    def _answer(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"the fork server died; its children wrote:\n{self.log.read_text()[-3000:]}"
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("server") / "children.log")
    yield server
    server.close()


def tensors(state: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every tensor and number of a checkpoint's trainer state, by dotted name."""
    if isinstance(state, dict):
        for key, value in state.items():
            yield from tensors(value, f"{prefix}.{key}")
    elif isinstance(state, list | tuple):
        for index, value in enumerate(state):
            yield from tensors(value, f"{prefix}.{index}")
    else:
        yield prefix, state


def comparable(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events without wall times, the run's name and the records each process writes once."""
    kept = []
    for event in events:
        if event["type"] in PROCESS_RECORDS:
            continue
        event = {k: v for k, v in event.items() if k not in ("time", "run")}
        if event["type"] in ("round", "episode"):  # their wall times
            dropped = ("timing_s", "wall_time_s")
            event["payload"] = {k: v for k, v in event["payload"].items() if k not in dropped}
        kept.append(event)
    return kept


def wait_for_commit(path: Path, mtime_ns: int, pid: int, timeout_s: float = 60.0) -> None:
    """Until the checkpoint `path` is rewritten or process `pid` has ended."""
    deadline = time.monotonic() + timeout_s
    while path.stat().st_mtime_ns == mtime_ns:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        assert time.monotonic() < deadline, f"{path} was not rewritten in {timeout_s} s"
        time.sleep(0.005)


def temp_files(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.endswith(".tmp")]


def test_a_run_killed_a_dozen_times_ends_as_if_never_killed(server: Server, tmp_path: Path) -> None:
    started = time.perf_counter()
    assert server.run([*ARGS, "--runs-dir", str(tmp_path), "--name", "straight"]) == 0
    round_s = (time.perf_counter() - started) / ROUNDS  # an upper bound: startup included
    straight = tmp_path / "straight"

    run_dir = tmp_path / "killed"
    fresh = [*ARGS, "--runs-dir", str(tmp_path), "--name", "killed"]
    resume = ["train", "ppo", "--resume", str(run_dir), "--no-live"]
    first = server.run(fresh, {"at": "replace", "name": LATEST, "nth": 3})
    assert first == -signal.SIGKILL
    assert temp_files(run_dir)  # the kill left the write's temporary file

    rng = random.Random(11)
    faults = [FAULTS[0], *rng.sample(FAULTS[1:], len(FAULTS) - 1)]
    statuses = [first]
    rounds_at_kill = [read_checkpoint(run_dir / CHECKPOINTS_DIR / LATEST)["trainer"]["round"]]
    for fault in faults:
        committed = (run_dir / CHECKPOINTS_DIR / LATEST).stat().st_mtime_ns
        timed = fault["at"] in ("random", "in a round")
        pid = server.start(resume, None if timed else fault)
        if timed:
            if fault["at"] == "in a round":
                wait_for_commit(run_dir / CHECKPOINTS_DIR / LATEST, committed, pid)
            time.sleep(rng.uniform(0, round_s))
            with contextlib.suppress(ProcessLookupError):  # it may have finished first
                os.kill(pid, signal.SIGKILL)
        statuses.append(server.wait())
        rounds_at_kill.append(
            read_checkpoint(run_dir / CHECKPOINTS_DIR / LATEST)["trainer"]["round"]
        )
    assert server.run(resume) == 0  # the last resume finishes the run

    log = server.log.read_text()
    assert set(statuses) <= {0, -signal.SIGKILL}, log[-3000:]  # every resume was accepted
    assert statuses.count(-signal.SIGKILL) >= 10, (statuses, rounds_at_kill)
    assert len(set(rounds_at_kill)) >= 4, rounds_at_kill  # kills spread over several rounds

    a = read_checkpoint(straight / CHECKPOINTS_DIR / LATEST)["trainer"]
    b = read_checkpoint(run_dir / CHECKPOINTS_DIR / LATEST)["trainer"]
    assert a["round"] == b["round"] == ROUNDS
    left, right = dict(tensors(a)), dict(tensors(b))
    assert left.keys() == right.keys()
    for name, value in left.items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, right[name]), name
        else:
            assert value == right[name], name

    events = comparable(read_events(run_dir / EVENTS_FILE))
    keys = Counter(
        (e["type"], e["round"], e["env"], e["epoch"], e["payload"].get("slot_id")) for e in events
    )
    assert [k for k, n in keys.items() if n > 1] == []
    assert events == comparable(read_events(straight / EVENTS_FILE))
    assert temp_files(run_dir) == []
    assert kept_rounds(run_dir / CHECKPOINTS_DIR) == kept_rounds(straight / CHECKPOINTS_DIR)


AB_ARGS = [
    "train", "ppo", "--task", "digits", "--envs", "2", "--episode-length", "3", "--seed", "5",
    "--rounds", "4", "--ab", "reward_mode=shaped,lean:rent_weight=2.5;lr=1e-3", "--no-live",
]  # fmt: skip


@pytest.mark.parametrize(
    "fault",
    [{"at": "checkpoint", "nth": 2}, {"at": "replace", "name": LATEST, "nth": 3}],
    ids=["between-events-and-checkpoint", "inside-a-checkpoint-write"],
)
def test_a_killed_ab_run_resumes_every_arm_exactly(
    server: Server, tmp_path: Path, fault: dict[str, Any]
) -> None:
    """Issue 13, acceptance 1: a kill and --resume continue both arms exactly."""
    assert server.run([*AB_ARGS, "--runs-dir", str(tmp_path), "--name", "straight"]) == 0
    run_dir = tmp_path / "killed"
    assert server.run([*AB_ARGS, "--runs-dir", str(tmp_path), "--name", "killed"], fault) == (
        -signal.SIGKILL
    )
    assert server.run(["train", "ppo", "--resume", str(run_dir), "--no-live"]) == 0
    straight = tmp_path / "straight"
    for name in (LATEST, "arms/reward_mode=shaped.pt", "arms/lean.pt"):
        a = read_checkpoint(straight / CHECKPOINTS_DIR / name)["trainer"]
        b = read_checkpoint(run_dir / CHECKPOINTS_DIR / name)["trainer"]
        left, right = dict(tensors(a)), dict(tensors(b))
        assert left.keys() == right.keys() and len(left) > 20, name
        for key, value in left.items():
            same = torch.equal(value, right[key]) if isinstance(value, torch.Tensor) else None
            assert same if same is not None else value == right[key], (name, key)
    assert read_checkpoint(run_dir / CHECKPOINTS_DIR / LATEST)["trainer"]["round"] == 4
    events = comparable(read_events(run_dir / EVENTS_FILE))
    assert events == comparable(read_events(straight / EVENTS_FILE))
    assert {e["group"] for e in events if e["type"] == "round"} == {"reward_mode=shaped", "lean"}
