"""`--devices cuda:0,cuda:1` (issue 12, item 3): envs spread over GPUs through worker processes.
The assignment and every refusal are checked here; the CUDA machine's half is the process
backend's own tests run there."""

from __future__ import annotations

import pytest
import torch

from esper.cli.main import main
from esper.simic.config import ConfigError, TrainingConfig
from esper.simic.env_pool import env_config_for, spread_over
from esper.simic.workers import worker_specs
from esper.tolaria import DataOptions


def test_each_worker_trains_on_one_device_and_the_devices_share_the_workers() -> None:
    config = TrainingConfig(n_envs=5, device="cuda", backend="process", devices="cuda:0,cuda:1")
    assert config.devices == ("cuda:0", "cuda:1")
    configs = spread_over([env_config_for(config, i) for i in range(5)], config.devices, 3)
    specs = worker_specs("digits", DataOptions(), configs, workers=3, threads=1)
    per_worker = [{c.session.device for c in spec.envs.values()} for spec in specs]
    assert per_worker == [{"cuda:0"}, {"cuda:1"}, {"cuda:0"}]
    assert [c.session.device for c in configs] == ["cuda:0", "cuda:1", "cuda:0", "cuda:0", "cuda:1"]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"devices": "cuda:0", "backend": "local", "device": "cuda"}, "needs backend process"),
        ({"devices": "cuda:0", "backend": "process"}, "set device cuda"),
        ({"devices": "cuda", "backend": "process", "device": "cuda"}, "must be cuda:N"),
        ({"devices": "cuda:0,cuda:0", "backend": "process", "device": "cuda"}, "named twice"),
        (
            {
                "devices": "cuda:0,cuda:1,cuda:2",
                "backend": "process",
                "device": "cuda",
                "workers": 2,
            },
            "3 devices but only 2 workers",
        ),
        (
            {"devices": "cuda:0,cuda:1", "backend": "process", "device": "cuda", "n_envs": 1},
            "2 devices but only 1 workers",
        ),
    ],
)
def test_devices_that_cannot_be_honoured_are_refused(settings: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        TrainingConfig.validated(settings)


def test_a_resume_on_another_backend_drops_the_devices() -> None:
    from esper.cli.train_ppo import RESUME_MAY_CHANGE

    assert "devices" in RESUME_MAY_CHANGE
    trained = TrainingConfig(n_envs=4, device="cuda", backend="process", devices="cuda:0,cuda:1")
    assert trained.updated({"backend": "local", "devices": None}).devices is None
    with pytest.raises(ConfigError, match="needs backend process"):
        trained.updated({"backend": "local"})  # what _resumed_config now avoids


def test_a_gpu_the_machine_lacks_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    """CUDA is faked as one device, so this runs with or without a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    argv = ["train", "ppo", "--device", "cuda", "--backend", "process", "--devices"]
    code = main([*argv, "cuda:0,cuda:1", "--runs-dir", str(tmp_path / "runs"), "--no-live"])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert line == "esper: error: device 'cuda:1': this machine has 1 CUDA device(s)"
    assert not (tmp_path / "runs").exists()
