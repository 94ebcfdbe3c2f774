"""`esper train ppo` end to end: run directory, exact resume, refused resumes
(docs/architecture.md §7 "Checkpoints and resume"; issue 4 acceptance 1, 2 and 8).

Runs go through the CLI entry point `esper.cli.main.main`, as a user would start them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from esper.cli.main import main
from esper.nissa import CHECKPOINTS_DIR, CONFIG_FILE, EVENTS_FILE, locked_run_dir, read_events
from esper.simic.checkpoint import LATEST, read_checkpoint

# The learning rate anneals over 3 of the 4 rounds, so an exact resume must restore its schedule.
ARGS = [
    *("train", "ppo", "--task", "digits", "--envs", "2", "--episode-length", "4", "--seed", "3"),
    *("--set", "lr_final=1e-4", "--set", "lr_anneal_rounds=3"),
]
HEALTH_FIELDS = (
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "clip_fraction",
    "explained_variance",
    "grad_norm",
)
ROUND_LINE = re.compile(r"^round\s+\d+ \|", re.MULTILINE)


@dataclass(frozen=True)
class Outcome:
    code: int
    out: str
    err: str


def run(argv: list[str]) -> Outcome:
    """`esper argv` in this process, its output captured (usable outside a test function)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Outcome(code, out.getvalue(), err.getvalue())


def only_run_dir(runs_dir: Path) -> Path:
    (run_dir,) = runs_dir.iterdir()
    return run_dir


def checkpoint(run_dir: Path) -> dict:
    return read_checkpoint(run_dir / CHECKPOINTS_DIR / LATEST)


@dataclass(frozen=True)
class Runs:
    straight: Path  # 4 rounds
    straight_run: Outcome
    resumed: Path  # 2 rounds, then --resume to 4
    first_half: Outcome
    second_half: Outcome


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("runs")
    straight_root, resumed_root = root / "straight", root / "resumed"
    straight_run = run([*ARGS, "--rounds", "4", "--runs-dir", str(straight_root), "--no-live"])
    assert straight_run.code == 0, straight_run.err
    first = run([*ARGS, "--rounds", "2", "--runs-dir", str(resumed_root), "--no-live"])
    assert first.code == 0, first.err
    resumed = only_run_dir(resumed_root)
    second = run(["train", "ppo", "--resume", str(resumed), "--rounds", "4", "--no-live"])
    assert second.code == 0, second.err
    return Runs(only_run_dir(straight_root), straight_run, resumed, first, second)


# -- acceptance 2: exact resume -----------------------------------------------------------------


def test_resumed_run_reproduces_the_uninterrupted_one_exactly(runs: Runs) -> None:
    straight, resumed = checkpoint(runs.straight), checkpoint(runs.resumed)
    assert straight["trainer"]["round"] == resumed["trainer"]["round"] == 4
    a, b = straight["trainer"]["network"], resumed["trainer"]["network"]
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # The rest of the learning state agrees too (normalizers are exact float lists).
    for part in ("obs_normalizer", "return_normalizer"):
        assert straight["trainer"][part] == resumed["trainer"][part], part


def test_resumed_run_continues_its_events(runs: Runs) -> None:
    events = read_events(runs.resumed / EVENTS_FILE)
    assert [e["round"] for e in events if e["type"] == "round"] == [0, 1, 2, 3]
    assert len(ROUND_LINE.findall(runs.first_half.out)) == 2
    assert len(ROUND_LINE.findall(runs.second_half.out)) == 2


def test_resume_is_exact_when_no_schedule_depends_on_the_round_count(
    tmp_path: Path,
) -> None:
    """Isolates the learning state (network, optimizer, normalizers, RNGs) from the entropy
    schedule (annealed over `entropy_anneal_rounds`): with the coefficient constant, 1 round +
    resume + 1 equals 2 straight."""
    config = tmp_path / "constant_entropy.json"
    config.write_text(json.dumps({"preset": "digits", "entropy_coef_final": 0.05}))
    common = [*ARGS, "--config", str(config), "--no-live"]
    assert run([*common, "--rounds", "2", "--runs-dir", str(tmp_path / "a")]).code == 0
    assert run([*common, "--rounds", "1", "--runs-dir", str(tmp_path / "b")]).code == 0
    resumed = only_run_dir(tmp_path / "b")
    assert run(["train", "ppo", "--resume", str(resumed), "--rounds", "2", "--no-live"]).code == 0
    a = checkpoint(only_run_dir(tmp_path / "a"))["trainer"]
    b = checkpoint(resumed)["trainer"]
    for name in a["network"]:
        assert torch.equal(a["network"][name], b["network"][name]), name
    assert a["obs_normalizer"] == b["obs_normalizer"]


# -- acceptance 1: what a run leaves behind -----------------------------------------------------


def test_run_directory_has_config_events_and_checkpoint(runs: Runs) -> None:
    run_dir = runs.straight
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    assert (config["task"], config["rounds"], config["n_envs"]) == ("digits", 4, 2)
    assert (config["episode_length"], config["seed"]) == (4, 3)
    assert checkpoint(run_dir)["config"] == config

    events = read_events(run_dir / EVENTS_FILE)
    updates = [e for e in events if e["type"] == "ppo_update"]
    rounds = [e for e in events if e["type"] == "round"]
    assert [e["round"] for e in updates] == [e["round"] for e in rounds] == [0, 1, 2, 3]
    for update in updates:
        payload = update["payload"]
        for field in HEALTH_FIELDS:
            assert field in payload, field
        assert set(payload["entropy"]) >= {"op", "slot"}
        assert payload["initial_log_prob_error"] <= 1e-5
    learning_rates = [update["payload"]["learning_rate"] for update in updates]
    assert learning_rates == pytest.approx([1e-3, 7e-4, 4e-4, 1e-4])  # the digits lr, 1e-3
    assert events[-1]["type"] == "run_end"
    assert events[-1]["payload"]["status"] == "completed"


def test_console_prints_one_round_line_per_round(runs: Runs) -> None:
    lines = ROUND_LINE.findall(runs.straight_run.out)
    assert len(lines) == 4
    assert str(runs.straight) in runs.straight_run.out.replace("\n", "")


# -- acceptance 8: refused resumes --------------------------------------------------------------


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / run_dir.name))


def _assert_one_error_line(outcome: Outcome, *expected: str) -> str:
    assert outcome.code == 2
    assert "Traceback" not in outcome.err
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1, outcome.err
    assert lines[0].startswith("esper: error:"), lines[0]
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def test_a_truncated_checkpoint_is_refused_in_one_line(runs: Runs, tmp_path: Path) -> None:
    run_dir = _copy(runs.resumed, tmp_path)
    path = run_dir / CHECKPOINTS_DIR / LATEST
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    outcome = run(["train", "ppo", "--resume", str(run_dir), "--rounds", "5", "--no-live"])
    _assert_one_error_line(outcome, str(path))


def test_a_garbage_checkpoint_is_refused_in_one_line(runs: Runs, tmp_path: Path) -> None:
    run_dir = _copy(runs.resumed, tmp_path)
    path = run_dir / CHECKPOINTS_DIR / LATEST
    path.write_bytes(b"this is not a checkpoint\x00\xff" * 100)
    outcome = run(["train", "ppo", "--resume", str(run_dir), "--rounds", "5", "--no-live"])
    _assert_one_error_line(outcome, str(path))


def test_a_missing_checkpoint_is_refused_in_one_line(runs: Runs, tmp_path: Path) -> None:
    run_dir = _copy(runs.resumed, tmp_path)
    (run_dir / CHECKPOINTS_DIR / LATEST).unlink()
    outcome = run(["train", "ppo", "--resume", str(run_dir), "--no-live"])
    _assert_one_error_line(outcome, LATEST)


def test_a_resume_contradicting_the_runs_seed_is_refused(runs: Runs, tmp_path: Path) -> None:
    run_dir = _copy(runs.resumed, tmp_path)
    before = (run_dir / EVENTS_FILE).read_bytes()
    outcome = run(["train", "ppo", "--resume", str(run_dir), "--seed", "9", "--no-live"])
    _assert_one_error_line(outcome, "seed")
    assert (run_dir / EVENTS_FILE).read_bytes() == before  # nothing was run or written


def test_a_resume_repeating_the_runs_own_settings_is_accepted(runs: Runs, tmp_path: Path) -> None:
    """Same seed and envs as the run (not a contradiction), one more round."""
    run_dir = _copy(runs.resumed, tmp_path)
    argv = ["train", "ppo", "--resume", str(run_dir), "--seed", "3", "--envs", "2"]
    outcome = run([*argv, "--rounds", "5", "--no-live"])
    assert outcome.code == 0, outcome.err
    assert checkpoint(run_dir)["trainer"]["round"] == 5


def test_resuming_a_directory_without_config_is_refused(tmp_path: Path) -> None:
    outcome = run(["train", "ppo", "--resume", str(tmp_path), "--no-live"])
    _assert_one_error_line(outcome, CONFIG_FILE)


def test_a_resume_while_another_process_trains_in_the_run_is_refused(
    runs: Runs, tmp_path: Path
) -> None:
    """Two trainers in one run directory trained the same rounds twice, their events
    interleaved (issue 11); the lock refuses the second, naming the first, and changes nothing."""
    run_dir = _copy(runs.resumed, tmp_path)
    with locked_run_dir(run_dir):
        before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
        outcome = run(["train", "ppo", "--resume", str(run_dir), "--rounds", "5", "--no-live"])
        after = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    _assert_one_error_line(outcome, f"is in use by process {os.getpid()}")
    assert after == before


def test_a_resume_cuts_the_log_back_to_its_checkpoint_and_removes_stale_temp_files(
    runs: Runs, tmp_path: Path
) -> None:
    """What a process killed mid-round leaves: events past the checkpoint's committed length
    (written again by the resume) and the temporary file of an interrupted checkpoint write."""
    run_dir = _copy(runs.resumed, tmp_path)
    events = run_dir / EVENTS_FILE
    assert checkpoint(run_dir)["events_bytes"] < events.stat().st_size  # run_end came after
    with events.open("a", encoding="utf-8") as log:
        log.write('{"type": "epoch", "round": 4, "env": 0, "epoch": 1, "payload": {}}\n{"ty')
    stale = run_dir / CHECKPOINTS_DIR / ".latest.pt.0123456789ab.tmp"
    stale.write_bytes(b"half a checkpoint")
    outcome = run(["train", "ppo", "--resume", str(run_dir), "--rounds", "5", "--no-live"])
    assert outcome.code == 0, outcome.err
    rounds = [(e["type"], e["round"]) for e in read_events(events) if e["type"] == "round"]
    assert rounds == [("round", r) for r in range(5)]
    assert not [e for e in read_events(events) if e["type"] == "epoch" and e["payload"] == {}]
    assert not stale.exists()


def test_a_log_shorter_than_its_checkpoint_says_is_refused(runs: Runs, tmp_path: Path) -> None:
    run_dir = _copy(runs.resumed, tmp_path)
    events = run_dir / EVENTS_FILE
    events.write_bytes(events.read_bytes()[:100])
    outcome = run(["train", "ppo", "--resume", str(run_dir), "--rounds", "5", "--no-live"])
    _assert_one_error_line(outcome, "holds 100 bytes, fewer than the", "changed outside esper")


def test_a_resume_may_move_the_envs_to_worker_processes(runs: Runs, tmp_path: Path) -> None:
    """Where envs run is not part of the result: 2 rounds here, then 2 more on the process
    backend, equal 4 straight rounds on the local one."""
    first = run([*ARGS, "--rounds", "2", "--runs-dir", str(tmp_path), "--no-live"])
    assert first.code == 0, first.err
    run_dir = only_run_dir(tmp_path)
    moved = ["--backend", "process", "--workers", "2", "--rounds", "4", "--no-live"]
    second = run(["train", "ppo", "--resume", str(run_dir), *moved])
    assert second.code == 0, second.err
    assert json.loads((run_dir / CONFIG_FILE).read_text())["backend"] == "process"
    a, b = checkpoint(runs.straight)["trainer"], checkpoint(run_dir)["trainer"]
    assert all(torch.equal(a["network"][k], b["network"][k]) for k in a["network"])
