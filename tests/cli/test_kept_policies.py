"""Policies along the way (issue 10, item 1): `--keep-every K` keeps the untrained policy and one
every K rounds; `esper evaluate --controllers ppo:RUN@ROUND` evaluates any of them."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from esper.cli.main import main
from esper.nissa import CHECKPOINTS_DIR
from esper.simic.checkpoint import kept_name, kept_rounds, read_checkpoint

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)
TRAIN = ["train", "ppo", "--envs", "1", "--episode-length", "2", "--no-live", "--keep-every", "2"]


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("kept")
    assert main([*TRAIN, "--rounds", "3", "--name", "k", "--runs-dir", str(runs)]) == 0
    return runs / "k"


def test_the_untrained_policy_and_every_kth_are_kept(kept: Path) -> None:
    checkpoints = kept / CHECKPOINTS_DIR
    assert kept_rounds(checkpoints) == [0, 2]
    untrained = read_checkpoint(checkpoints / kept_name(0))["trainer"]
    second = read_checkpoint(checkpoints / kept_name(2))["trainer"]
    latest = read_checkpoint(checkpoints / "latest.pt")["trainer"]
    assert (untrained["round"], second["round"], latest["round"]) == (0, 2, 3)
    name = next(iter(untrained["network"]))
    assert not torch.equal(untrained["network"][name], second["network"][name])


def test_a_resume_keeps_on_schedule(kept: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "k"
    shutil.copytree(kept, run_dir)
    before = (run_dir / CHECKPOINTS_DIR / kept_name(2)).read_bytes()
    assert main(["train", "ppo", "--resume", str(run_dir), "--rounds", "4", "--no-live"]) == 0
    assert kept_rounds(run_dir / CHECKPOINTS_DIR) == [0, 2, 4]
    assert (run_dir / CHECKPOINTS_DIR / kept_name(2)).read_bytes() == before


def test_evaluate_a_kept_policy_against_the_untrained_one(
    kept: Path, tmp_path: Path, cli: RunCli
) -> None:
    out = tmp_path / "results.json"
    controllers = f"static,ppo:{kept}@0,ppo:{kept}@2,ppo:{kept}"
    code, _, err = cli(
        ["evaluate", "--controllers", controllers, "--seeds", "2", "--out", str(out)]
    )
    assert code == 0, err
    data = json.loads(out.read_text())
    assert [c["label"] for c in data["controllers"]] == ["static", "ppo@0", "ppo@2", "ppo"]
    pairs = {(c["minuend"], c["subtrahend"]) for c in data["comparisons"]}
    assert {("ppo@2", "ppo@0"), ("ppo", "ppo@0"), ("ppo@2", "static")} <= pairs
    assert ("ppo@0", "ppo@0") not in pairs


def test_a_round_that_was_not_kept_is_named_with_the_ones_that_were(
    kept: Path, cli: RunCli
) -> None:
    code, _, err = cli(["evaluate", "--controllers", f"ppo:{kept}@1", "--seeds", "1"])
    assert code == 2
    (line,) = err.splitlines()
    assert (
        line.startswith("esper: error:") and "kept no policy of round 1; kept rounds: 0, 2" in line
    )
