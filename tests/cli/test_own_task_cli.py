"""`--task file.py:function` and `--task package.module:function`: a user's task trains with the
heuristic and with PPO, in worker processes too, and evaluates; one that does not fit fails with
one line naming the problem and leaves nothing behind (issue 14, acceptance 1)."""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from esper.cli.main import main
from esper.nissa import CONFIG_FILE

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)

TASKS = """
import numpy as np
from torch import nn

import esper

rng = np.random.default_rng(0)
X, Y = rng.normal(size=(80, 6)).astype("float32"), np.arange(80) % 2
X[:, 0] += 2 * Y  # learnable


def mlp():
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def tiny():
    return esper.make_task(
        "tiny", train=(X, Y), test=(X[:30], Y[:30]), host=mlp, cuts=[1, 3],
        batch_size=16, episode_length=3,
    )


def wrong_classes():
    # labels 0..2, but the network gives two logits
    return esper.make_task(
        "wrong", train=(X, np.arange(80) % 3), test=(X[:30], Y[:30]), host=mlp, cuts=[1, 3]
    )
"""
TINY_RUN = ["--no-live", "--quiet"]


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "lab" / "my_tasks.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(TASKS))
    return path


def _run_dir(runs: Path, prefix: str) -> Path:
    (run,) = runs.iterdir()
    assert run.name.endswith(prefix), run.name  # named after the task, not its file path
    return run


def test_a_task_from_a_file_trains_with_both_controllers_and_evaluates(
    task_file: Path, tmp_path: Path
) -> None:
    spec = f"{task_file}:tiny"
    heuristic = ["train", "heuristic", "--task", spec, "--envs", "2", *TINY_RUN]
    assert main([*heuristic, "--runs-dir", str(tmp_path / "h")]) == 0
    _run_dir(tmp_path / "h", "heuristic-tiny")
    ppo = ["train", "ppo", "--task", spec, "--envs", "2", "--rounds", "2", *TINY_RUN]
    assert main([*ppo, "--backend", "process", "--runs-dir", str(tmp_path / "p")]) == 0
    run = _run_dir(tmp_path / "p", "ppo-tiny")
    config = json.loads((run / CONFIG_FILE).read_text())
    assert config["task"] == f"{task_file.resolve()}:tiny"  # absolute: found from anywhere
    assert config["episode_length"] is None  # the task's own (3)
    out = tmp_path / "evaluation.json"
    evaluate = ["evaluate", "--task", spec, "--controllers", f"static,heuristic,ppo:{run}"]
    evaluate += ["--backend", "process", "--workers", "2"]  # workers resolve the task's name
    assert main([*evaluate, "--seeds", "2", "--no-live", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [c["label"] for c in results["controllers"]] == ["static", "heuristic", "ppo"]
    assert all(c["episodes"] == 2 for c in results["controllers"])


def test_a_task_from_a_module_trains_with_both_controllers_and_evaluates(
    task_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(task_file.parent))
    spec = "my_tasks:tiny"
    heuristic = ["train", "heuristic", "--task", spec, "--envs", "1", *TINY_RUN]
    assert main([*heuristic, "--runs-dir", str(tmp_path / "h")]) == 0
    ppo = ["train", "ppo", "--task", spec, "--envs", "2", "--rounds", "1", *TINY_RUN]
    assert main([*ppo, "--runs-dir", str(tmp_path / "p")]) == 0
    run = _run_dir(tmp_path / "p", "ppo-tiny")
    assert json.loads((run / CONFIG_FILE).read_text())["task"] == spec
    out = tmp_path / "evaluation.json"
    evaluate = ["evaluate", "--task", spec, "--controllers", f"heuristic,ppo:{run}"]
    assert main([*evaluate, "--seeds", "1", "--no-live", "--out", str(out)]) == 0


@pytest.mark.parametrize(
    ("function", "named"),
    [
        ("wrong_classes", "the host's output for a batch (2, 6) is (2, 2); classification"),
        ("nope", "has no function 'nope'; it defines: mlp, tiny, wrong_classes"),
    ],
)
@pytest.mark.parametrize("command", [["train", "ppo"], ["train", "heuristic"], ["evaluate"]])
def test_a_task_that_does_not_fit_fails_in_one_line_leaving_nothing(
    cli: RunCli, task_file: Path, tmp_path: Path, function: str, named: str, command: list[str]
) -> None:
    runs = tmp_path / "runs"
    argv = [*command, "--task", f"{task_file}:{function}", "--no-live"]
    if command == ["evaluate"]:
        argv += ["--controllers", "static", "--out", str(tmp_path / "e.json")]
    else:
        argv += ["--runs-dir", str(runs)]
    code, _, err = cli(argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("esper: error:"), err
    assert named in lines[0], lines[0]
    assert not runs.exists() and not (tmp_path / "e.json").exists()


def test_esper_tasks_lists_the_built_in_ones_and_how_to_add_one(cli: RunCli) -> None:
    code, out, _ = cli(["tasks"])
    assert code == 0
    for name in ("digits", "mnist5k", "cifar10", "stories", "tinystories"):
        assert name in out
    assert "esper.make_task" in out and "path/to/file.py:my_task" in out


def test_esper_tasks_shows_a_task_s_slots_and_families(cli: RunCli, task_file: Path) -> None:
    code, out, _ = cli(["tasks", f"{task_file}:tiny"])
    assert code == 0
    assert "classification, 2 classes, sample shape (6,); train 64, validation 16, test 30" in out
    assert re.search(r"r0c0 .* dense .* 8 .* norm, lora", out)
    code, out, _ = cli(["tasks", "cifar10"])
    assert code == 0 and "data_dir" in out  # its data is not read here
    code, _, err = cli(["tasks", f"{task_file}:wrong_classes"])
    assert code == 2 and "esper: error: the host's output" in err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--task", "stories", "--host-widths", "8"], "task stories's host has no widths"),
        (["--host-widths", "0"], "host_widths"),
        (["--host-norm", "layer"], "--host-norm"),
        (["--batch-size", "0"], "batch_size"),
    ],
)
def test_bad_host_sizes_fail_in_one_line(
    cli: RunCli, tmp_path: Path, flags: list[str], named: str
) -> None:
    code, _, err = cli(["train", "heuristic", *flags, "--runs-dir", str(tmp_path / "r")])
    assert code == 2 and err.startswith("esper: error:") and named in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()


def test_mnist5k_trains_with_the_heuristic_and_ppo(tmp_path: Path) -> None:
    heuristic = ["train", "heuristic", "--task", "mnist5k", "--episodes", "1", "--episode-length"]
    assert main([*heuristic, "2", *TINY_RUN, "--runs-dir", str(tmp_path / "h")]) == 0
    ppo = ["train", "ppo", "--preset", "mnist5k", "--rounds", "1", "--envs", "1"]
    ppo += ["--episode-length", "2", "--host-widths", "4,8,8", "--batch-size", "128"]
    assert main([*ppo, *TINY_RUN, "--runs-dir", str(tmp_path / "p")]) == 0
    run = _run_dir(tmp_path / "p", "ppo-mnist5k")
    config = json.loads((run / CONFIG_FILE).read_text())
    assert (config["host_widths"], config["batch_size"]) == ([4, 8, 8], 128)
