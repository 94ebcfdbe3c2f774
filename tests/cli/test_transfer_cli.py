"""Train once, grow networks never seen (issue 15): `esper train ppo --task A,B` plays each env
on its own task in one round, and `esper evaluate --task T --controllers ppo:RUN` drives a host
the checkpoint was never trained on, reported as a transfer; a run that cannot be played fails
in one line."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from esper.nissa import CHECKPOINTS_DIR, CONFIG_FILE
from esper.simic.checkpoint import LATEST, read_checkpoint
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.tolaria import DataOptions, get_task

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)

TASKS = """
import numpy as np
from torch import nn

import esper

rng = np.random.default_rng(0)
Y = np.arange(96) % 2
FLAT = rng.normal(size=(96, 6)).astype("float32")
FLAT[:, 0] += 2 * Y
SEQ = rng.normal(size=(96, 1, 12)).astype("float32")
SEQ[:, 0, :4] += 2 * Y[:, None]


def mlp():
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))


def conv():
    return nn.Sequential(
        nn.Conv1d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(4, 2),
    )


def dense2():  # 2 slots, dense
    return esper.make_task(
        "dense2", train=(FLAT, Y), test=(FLAT[:32], Y[:32]), host=mlp, cuts=[1, 3],
        batch_size=16, episode_length=3,
    )


def conv1():  # 1 slot, conv1d
    return esper.make_task(
        "conv1", train=(SEQ, Y), test=(SEQ[:32], Y[:32]), host=conv, cuts=[2],
        batch_size=16, episode_length=3,
    )


def long_conv1():  # the same, 4 epochs an episode
    return esper.make_task(
        "long_conv1", train=(SEQ, Y), test=(SEQ[:32], Y[:32]), host=conv, cuts=[2],
        batch_size=16, episode_length=4,
    )
"""
QUIET = ["--no-live", "--quiet"]


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "lab" / "two_hosts.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(TASKS))
    return path


def test_envs_of_a_run_over_two_tasks_each_play_their_own(task_file: Path) -> None:
    dense, conv = f"{task_file}:dense2", f"{task_file}:conv1"
    config = TrainingConfig(task=f"{dense},{conv}", n_envs=4)
    assert [config.task_of(i) for i in range(4)] == [dense, conv, dense, conv]
    data = get_task(dense).load(DataOptions())
    pool = build_pool(config, data)
    try:
        slots = [len(spec.slot_ids) for spec in pool.feature_specs]
        families = [spec.slot_families for spec in pool.feature_specs]
    finally:
        pool.close()
    assert slots == [2, 1, 2, 1]
    assert families[0] == ("dense", "dense") and families[1] == ("conv1d",)


@pytest.mark.parametrize("backend", ["local", "process"])
def test_a_controller_trained_on_two_hosts_drives_a_third_it_never_saw(
    task_file: Path, tmp_path: Path, cli: RunCli, backend: str
) -> None:
    """Trained on a dense host of 2 slots and a conv1d host of 1 in the same rounds (in worker
    processes too), the checkpoint drives the digits CNN (2 slots, another family), reported
    as a transfer, and the dense task it was trained on, reported as not one."""
    tasks = f"{task_file}:dense2,{task_file}:conv1"
    runs = tmp_path / "runs"
    train = ["train", "ppo", "--task", tasks, "--envs", "2", "--rounds", "2", *QUIET]
    code, out, err = cli([*train, "--backend", backend, "--runs-dir", str(runs)])
    assert code == 0, err
    (run,) = runs.iterdir()
    assert run.name.endswith("ppo-dense2-conv1"), run.name
    assert json.loads((run / CONFIG_FILE).read_text())["task"] == tasks.replace(
        str(task_file), str(task_file.resolve())
    )
    out_file = tmp_path / "transfer.json"
    evaluate = ["evaluate", "--task", "digits", "--controllers", f"static,ppo:{run}"]
    evaluate += ["--seeds", "2", "--episode-length", "2"]
    code, out, err = cli([*evaluate, "--no-live", "--out", str(out_file)])
    assert code == 0, err
    assert "a transfer: trained on dense2+conv1, never on this task" in " ".join(out.split())
    results = json.loads(out_file.read_text())
    assert [c["label"] for c in results["controllers"]] == ["static", "ppo"]
    assert all(c["episodes"] == 2 for c in results["controllers"])
    # a host of 3 slots of two families (conv1d, conv1d, dense)
    sequences = Path(__file__).parents[2] / "examples" / "sequence_conv1d.py"
    evaluate = ["evaluate", "--task", f"{sequences}:sequential_digits"]
    evaluate += ["--controllers", f"ppo:{run}", "--seeds", "1", "--episode-length", "2"]
    code, out, err = cli([*evaluate, "--no-live"])
    assert code == 0, err
    assert "a transfer: trained on dense2+conv1" in " ".join(out.split())
    evaluate = ["evaluate", "--task", f"{task_file}:dense2", "--controllers", f"ppo:{run}"]
    code, out, err = cli([*evaluate, "--seeds", "1", "--no-live"])
    assert code == 0, err
    assert "a transfer" not in out


def test_a_run_over_two_tasks_resumes_exactly(task_file: Path, tmp_path: Path, cli: RunCli) -> None:
    """2 rounds straight = 1 round, then --resume to 2: network and both normalizers."""
    tasks = f"{task_file}:dense2,{task_file}:conv1"
    train = ["train", "ppo", "--task", tasks, "--envs", "2", "--seed", "5", *QUIET]
    assert cli([*train, "--rounds", "2", "--runs-dir", str(tmp_path / "a")])[0] == 0
    assert cli([*train, "--rounds", "1", "--runs-dir", str(tmp_path / "b")])[0] == 0
    (resumed,) = (tmp_path / "b").iterdir()
    code, _, err = cli(["train", "ppo", "--resume", str(resumed), "--rounds", "2", *QUIET])
    assert code == 0, err
    (straight,) = (tmp_path / "a").iterdir()
    a = read_checkpoint(straight / CHECKPOINTS_DIR / LATEST)["trainer"]
    b = read_checkpoint(resumed / CHECKPOINTS_DIR / LATEST)["trainer"]
    assert a["round"] == b["round"] == 2
    for name in a["network"]:
        assert torch.equal(a["network"][name], b["network"][name]), name
    assert a["obs_normalizer"] == b["obs_normalizer"]


def test_tasks_of_different_episode_lengths_need_one_set(
    task_file: Path, tmp_path: Path, cli: RunCli
) -> None:
    runs = tmp_path / "runs"
    tasks = f"{task_file}:dense2,{task_file}:long_conv1"
    code, _, err = cli(["train", "ppo", "--task", tasks, "--runs-dir", str(runs), *QUIET])
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("esper: error:") and "different lengths" in line, line
    assert "dense2" in line and "3" in line and "4 epochs" in line and "episode_length" in line
    assert not runs.exists()
    argv = ["train", "ppo", "--task", tasks, "--episode-length", "3", "--envs", "2"]
    code, _, err = cli([*argv, "--rounds", "1", "--runs-dir", str(runs), *QUIET])
    assert code == 0, err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "heuristic", "--task", "digits,stories"],
        ["evaluate", "--task", "digits,stories", "--controllers", "static"],
        ["train", "ppo", "--task", "digits,digits"],
    ],
)
def test_several_tasks_only_where_a_controller_learns_from_them(
    argv: list[str], tmp_path: Path, cli: RunCli
) -> None:
    if argv[0] == "train":
        argv = [*argv, "--runs-dir", str(tmp_path / "r")]
    code, _, err = cli([*argv, "--no-live"])
    assert code == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("esper: error:"), line
    assert "give one" in line or "names a task twice" in line, line
    assert not (tmp_path / "r").exists()
