"""`--amp`: bf16 and fp16 autocast run end to end on the CPU (issue 12 item 2, acceptance 1)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from esper.cli.main import main
from esper.nissa import CONFIG_FILE
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.tolaria import HostSession, get_task
from esper.tolaria.data import load_digits

TINY = ["--task", "digits", "--episode-length", "3", "--no-live"]


def test_the_setting_reaches_every_session_as_its_autocast_dtype() -> None:
    options = env_config_for(TrainingConfig(amp="bf16"), 0).session
    assert options.amp == "bf16"
    assert HostSession(get_task("digits"), load_digits(), options).amp == torch.bfloat16
    default = env_config_for(TrainingConfig(), 0).session
    assert HostSession(get_task("digits"), load_digits(), default).amp is None


def test_fp16_sessions_get_a_gradient_scaler_per_episode() -> None:
    options = env_config_for(TrainingConfig(amp="fp16"), 0).session
    session = HostSession(get_task("digits"), load_digits(), options)
    assert session.amp == torch.float16 and session.scaler is None
    session.reset(0)
    first = session.scaler
    session.reset(1)
    assert first is not None and session.scaler is not None and session.scaler is not first


def test_ppo_and_the_heuristic_train_with_bf16_and_evaluate_reads_it(tmp_path: Path) -> None:
    ppo = ["train", "ppo", *TINY, "--amp", "bf16", "--rounds", "1", "--envs", "2"]
    assert main([*ppo, "--runs-dir", str(tmp_path / "ppo")]) == 0
    (run_dir,) = (tmp_path / "ppo").iterdir()
    assert json.loads((run_dir / CONFIG_FILE).read_text())["amp"] == "bf16"
    heuristic = ["train", "heuristic", *TINY, "--amp", "bf16", "--envs", "1"]
    assert main([*heuristic, "--runs-dir", str(tmp_path / "heuristic")]) == 0
    out = tmp_path / "evaluation.json"
    evaluate = ["evaluate", "--task", "digits", "--episode-length", "3", "--amp", "bf16"]
    assert main([*evaluate, "--controllers", "static", "--seeds", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["controllers"][0]["episodes"] == 1


def test_ppo_trains_with_fp16(tmp_path: Path) -> None:
    ppo = ["train", "ppo", *TINY, "--amp", "fp16", "--rounds", "1", "--envs", "2"]
    assert main([*ppo, "--runs-dir", str(tmp_path)]) == 0


def test_evaluation_decides_the_precision_for_every_checkpoint(tmp_path: Path) -> None:
    """Like the device: checkpoints trained with and without bf16 play together, in the
    evaluation's precision (off unless --amp is given beside them)."""
    for amp in ("bf16", "off"):
        ppo = ["train", "ppo", *TINY, "--amp", amp, "--rounds", "1", "--envs", "1"]
        assert main([*ppo, "--runs-dir", str(tmp_path), "--name", amp]) == 0
    controllers = f"ppo:{tmp_path / 'bf16'},ppo:{tmp_path / 'off'}"
    evaluate = ["evaluate", "--controllers", controllers, "--seeds", "1"]
    assert main(evaluate) == 0
    assert main([*evaluate, "--amp", "bf16"]) == 0
