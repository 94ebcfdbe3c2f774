"""`esper evaluate`: controllers on the same held-out seeds, results file, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from esper.simic.trainer import TRAINING_SEED_LIMIT

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)


def test_evaluate_writes_paired_results(tmp_path: Path, cli: RunCli) -> None:
    out = tmp_path / "results.json"
    argv = ["evaluate", "--task", "digits", "--controllers", "static,heuristic", "--seeds", "2"]

    code, stdout, err = cli([*argv, "--episode-length", "3", "--out", str(out)])

    assert code == 0, err
    data = json.loads(out.read_text())
    assert (data["task"], data["episode_length"]) == ("digits", 3)
    assert [c["label"] for c in data["controllers"]] == ["static", "heuristic"]
    assert len(data["seeds"]) == 2 and min(data["seeds"]) >= TRAINING_SEED_LIMIT
    episode_seeds = [(e["controller"], e["seed"]) for e in data["episodes"]]
    assert episode_seeds == [(c, s) for c in ("static", "heuristic") for s in data["seeds"]]
    assert "heuristic - static" in stdout
    assert "excludes 0" in stdout


def test_a_trained_ppo_checkpoint_is_evaluated_in_its_own_setting(
    tmp_path: Path, cli: RunCli
) -> None:
    runs = tmp_path / "runs"
    train = ["train", "ppo", "--task", "digits", "--rounds", "1", "--envs", "2"]
    code, _, err = cli([*train, "--episode-length", "3", "--runs-dir", str(runs), "--no-live"])
    assert code == 0, err
    (run_dir,) = runs.iterdir()
    out = tmp_path / "results.json"

    argv = ["evaluate", "--controllers", f"static,ppo:{run_dir}", "--seeds", "2"]
    code, stdout, err = cli([*argv, "--out", str(out)])

    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["episode_length"] == 3  # the checkpoint's, not the task's 25
    assert [c["label"] for c in data["controllers"]] == ["static", "ppo"]
    assert [(c["minuend"], c["subtrahend"]) for c in data["comparisons"]] == [("ppo", "static")] * 2
    assert "ppo - static" in stdout

    code, _, err = cli(["evaluate", "--task", "stories", *argv[1:]])
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("esper: error: ppo was trained on task 'digits'")


BAD_INPUT = {  # case: (arguments, what the error line must name)
    "unknown controller": (["--controllers", "bogus"], "bogus"),
    "missing checkpoint": (["--controllers", "ppo:/nonexistent"], "/nonexistent"),
    "results format": (["--controllers", "static", "--out", "results.txt"], "results.txt"),
}


@pytest.mark.parametrize(("argv", "named"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_exits_with_one_clear_line(argv: list[str], named: str, cli: RunCli) -> None:
    code, stdout, err = cli(["evaluate", *argv, "--seeds", "2"])

    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("esper: error:")
    assert named in line
    assert stdout == ""  # refused before any episode ran
