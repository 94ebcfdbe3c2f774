"""The `esper` command: a real run writes its run directory; bad input is one clear line."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from esper.nissa import CONFIG_FILE, EVENTS_FILE, read_events

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)


def only_run_dir(runs_dir: Path) -> Path:
    (run_dir,) = runs_dir.iterdir()
    return run_dir


def test_train_heuristic_writes_a_run_directory(tmp_path: Path, cli: RunCli) -> None:
    argv = ["train", "heuristic", "--task", "digits", "--episodes", "1", "--episode-length", "4"]
    code, out, _ = cli([*argv, "--runs-dir", str(tmp_path), "--no-live"])

    assert code == 0
    run_dir = only_run_dir(tmp_path)
    assert run_dir.name.endswith("-heuristic-digits")
    assert str(run_dir) in out.replace("\n", "")  # the console may wrap a long path
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    assert (config["task"], config["episodes"], config["episode_length"]) == ("digits", 1, 4)
    events = read_events(run_dir / EVENTS_FILE)
    types = [e["type"] for e in events]
    assert types[0] == "run_start" and types[-1] == "run_end"
    assert events[-1]["payload"]["status"] == "completed"
    assert [e["epoch"] for e in events if e["type"] == "epoch"] == [1, 2, 3, 4]
    (episode,) = [e["payload"] for e in events if e["type"] == "episode"]
    assert 0 <= episode["outcome"]["test_accuracy"] <= 100


def test_three_heuristic_episodes_record_outcomes_that_match_their_events(
    tmp_path: Path, cli: RunCli
) -> None:
    """Acceptance 1: `esper train heuristic --task digits --episodes 3` (25 epochs each). What
    the heuristic grows depends on the training trajectory, so this checks the mechanism only
    (tests/simic/test_episodes_e2e.py takes a scripted plan through every stage)."""
    argv = ["train", "heuristic", "--task", "digits", "--episodes", "3"]
    code, out, _ = cli([*argv, "--runs-dir", str(tmp_path), "--no-live"])

    assert code == 0
    assert "run completed" in out  # the final summary
    events = read_events(only_run_dir(tmp_path) / EVENTS_FILE)
    assert len([e for e in events if e["type"] == "epoch"]) == 3 * 25
    episodes = [e["payload"] for e in events if e["type"] == "episode"]
    assert [e["seed"] for e in episodes] == [0, 1, 2]
    # One env (the default) plays the episodes in turn: each episode event closes its lifecycle
    # events.
    per_episode: list[list[str]] = [[]]
    for event in events:
        if event["type"] == "lifecycle":
            per_episode[-1].append(event["payload"]["to_stage"])
        elif event["type"] == "episode":
            per_episode.append([])
    assert per_episode.pop() == []  # no lifecycle event after the last episode
    for episode, stages in zip(episodes, per_episode, strict=True):
        assert episode["outcome"]["seeds_fossilized"] == stages.count("FOSSILIZED"), episode
        assert episode["outcome"]["seeds_pruned"] == stages.count("PRUNED"), episode


BAD_INPUT = {  # case: (arguments, what the error line must name)
    "unknown task": (["--task", "nope"], "nope"),
    "negative episodes": (["--episodes", "-1"], "-1"),
    "missing data dir": (["--data-dir", "/nonexistent"], "/nonexistent"),
    "cifar10 without data dir": (["--task", "cifar10"], "--data-dir"),
}


@pytest.mark.parametrize(("extra", "named"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_exits_with_one_clear_line(
    extra: list[str], named: str, tmp_path: Path, cli: RunCli
) -> None:
    runs_dir = tmp_path / "runs"
    argv = ["train", "heuristic", *extra, "--runs-dir", str(runs_dir), "--no-live"]

    code, _, err = cli(argv)

    assert code != 0
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("esper: error:"), lines[0]
    assert named in lines[0]
    assert not runs_dir.exists()  # nothing was started


def test_cifar10_with_an_empty_data_dir_says_where_to_put_the_files(
    tmp_path: Path, cli: RunCli
) -> None:
    argv = ["train", "heuristic", "--task", "cifar10", "--data-dir", str(tmp_path)]
    code, _, err = cli([*argv, "--runs-dir", str(tmp_path / "runs"), "--no-live"])

    assert code != 0
    (line,) = err.splitlines()
    assert line.startswith("esper: error: CIFAR-10 not found")
    assert str(tmp_path / "cifar-10-batches-py") in line


def test_bad_input_from_a_real_process_has_no_traceback() -> None:
    command = [sys.executable, "-m", "esper.cli.main", "train", "heuristic", "--task", "nope"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("esper: error:")
    assert "nope" in line and "digits" in line  # the bad value and the allowed ones
    assert done.stdout == ""


def test_a_heuristic_run_on_worker_processes_records_the_same_events(
    tmp_path: Path, cli: RunCli
) -> None:
    """5 episodes on 2 envs (the last batch has one) in worker processes: the same events as
    in this process, apart from times and the run's name (issue 11, item 5)."""
    logs = []
    for backend in ("local", "process"):
        argv = ["train", "heuristic", "--episodes", "5", "--envs", "2", "--episode-length", "3"]
        code, _, err = cli([*argv, "--backend", backend, "--runs-dir", str(tmp_path / backend)])
        assert code == 0, err
        (run_dir,) = (tmp_path / backend).iterdir()
        events = read_events(run_dir / "events.jsonl")
        logs.append(
            [
                {k: v for k, v in e.items() if k not in ("time", "run")}
                | {"payload": {k: v for k, v in e["payload"].items() if k != "wall_time_s"}}
                for e in events
                if e["type"] not in ("run_start", "run_end")
            ]
        )
    assert logs[0] == logs[1]
    assert sum(e["type"] == "episode" for e in logs[0]) == 5
