"""`esper evaluate`: controllers on the same held-out seeds, results file, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esper.cli.main import main
from esper.simic.trainer import TRAINING_SEED_LIMIT


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `esper argv`; argparse errors exit through SystemExit."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_evaluate_writes_paired_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    argv = ["evaluate", "--task", "digits", "--controllers", "static,heuristic", "--seeds", "2"]

    code, stdout, err = run_cli([*argv, "--episode-length", "3", "--out", str(out)], capsys)

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
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    train = ["train", "ppo", "--task", "digits", "--rounds", "1", "--envs", "2"]
    code, _, err = run_cli(
        [*train, "--episode-length", "3", "--runs-dir", str(runs), "--no-live"], capsys
    )
    assert code == 0, err
    (run_dir,) = runs.iterdir()
    out = tmp_path / "results.json"

    argv = ["evaluate", "--controllers", f"static,ppo:{run_dir}", "--seeds", "2"]
    code, stdout, err = run_cli([*argv, "--out", str(out)], capsys)

    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["episode_length"] == 3  # the checkpoint's, not the task's 25
    assert [c["label"] for c in data["controllers"]] == ["static", "ppo"]
    assert [(c["minuend"], c["subtrahend"]) for c in data["comparisons"]] == [("ppo", "static")] * 2
    assert "ppo - static" in stdout

    code, _, err = run_cli(["evaluate", "--task", "stories", *argv[1:]], capsys)
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("esper: error: ppo was trained on task 'digits'")


BAD_INPUT = {  # case: (arguments, what the error line must name)
    "unknown controller": (["--controllers", "bogus"], "bogus"),
    "missing checkpoint": (["--controllers", "ppo:/nonexistent"], "/nonexistent"),
    "results format": (["--controllers", "static", "--out", "results.txt"], "results.txt"),
}


@pytest.mark.parametrize(("argv", "named"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_exits_with_one_clear_line(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, err = run_cli(["evaluate", *argv, "--seeds", "2"], capsys)

    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("esper: error:")
    assert named in line
    assert stdout == ""  # refused before any episode ran
