"""`--tensorboard` (issue 13, item 3): scalars written per round and per episode, one folder per
policy group, read back with TensorBoard's own event reader; a resume hides what a killed round
wrote; a missing package is one clear line."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest

from esper.cli.main import main
from esper.karn.tensorboard import TensorBoardSink
from esper.leyline import EventContext, RoundEvent
from esper.leyline.events import Event
from esper.nissa import read_events

accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the tensorboard extra is not installed (make test installs it)",
)

TINY = ["--task", "digits", "--episode-length", "3", "--no-live", "--tensorboard"]


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    reader = accumulator.EventAccumulator(str(folder))
    reader.Reload()
    return {
        tag: [(s.step, s.value) for s in reader.Scalars(tag)] for tag in reader.Tags()["scalars"]
    }


def test_a_ppo_run_writes_round_and_episode_scalars_its_events_agree_with(tmp_path: Path) -> None:
    argv = ["train", "ppo", *TINY, "--rounds", "2", "--envs", "2", "--name", "r"]
    assert main([*argv, "--runs-dir", str(tmp_path)]) == 0
    run = tmp_path / "r"
    events = read_events(run / "events.jsonl")
    (group,) = {e["group"] for e in events if e["type"] == "round"}
    rounds = scalars(run / "tensorboard" / group)
    logged = [e["payload"]["mean_return"] for e in events if e["type"] == "round"]
    assert [step for step, _ in rounds["round/return"]] == [0, 1]
    assert [v for _, v in rounds["round/return"]] == pytest.approx(logged, abs=1e-4)
    assert {"ppo/approx_kl", "ppo/entropy/op", "time/host_training", "round/test_accuracy"} <= set(
        rounds
    )
    episodes = scalars(run / "tensorboard" / group / "episodes")
    returns: dict[tuple[int, int], float] = {}
    for e in events:
        if e["type"] == "reward":
            key = (e["round"], e["env"])
            returns[key] = returns.get(key, 0.0) + e["payload"]["total"]
    expected = [returns[(r, env)] for r in (0, 1) for env in (0, 1)]
    assert [step for step, _ in episodes["episode/return"]] == [0, 1, 2, 3]
    assert [v for _, v in episodes["episode/return"]] == pytest.approx(expected, abs=1e-4)


def test_a_heuristic_run_writes_its_episodes(tmp_path: Path) -> None:
    argv = ["train", "heuristic", *TINY, "--episodes", "3", "--name", "h"]
    assert main([*argv, "--runs-dir", str(tmp_path)]) == 0
    episodes = scalars(tmp_path / "h" / "tensorboard" / "heuristic" / "episodes")
    assert [step for step, _ in episodes["episode/test_accuracy"]] == [0, 1, 2]
    assert {"episode/val_accuracy", "episode/params_added", "episode/return"} <= set(episodes)


def _round(sink: TensorBoardSink, index: int, value: float) -> None:
    record = RoundEvent(value, 50.0, 50.0, 0.0, {}, {"host_training": 1.0})
    sink.write(Event.wrap(record, EventContext(run="r", group="arm", round=index), epoch=0))


def test_a_resumed_run_hides_what_a_killed_round_wrote(tmp_path: Path) -> None:
    first = TensorBoardSink(tmp_path)
    for index in range(3):  # rounds 0 and 1 committed, round 2 written and then killed
        _round(first, index, float(index))
    first.close()
    resumed = TensorBoardSink(tmp_path, resume_round=2)
    _round(resumed, 2, 20.0)
    _round(resumed, 3, 30.0)
    resumed.close()
    assert scalars(tmp_path / "arm")["round/return"] == [(0, 0.0), (1, 1.0), (2, 20.0), (3, 30.0)]


def test_without_the_package_the_flag_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_tensorboard(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith(("tensorboard", "torch.utils.tensorboard")):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    code = main(["train", "ppo", *TINY, "--runs-dir", str(tmp_path / "runs")])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert line.startswith("esper: error: --tensorboard needs the tensorboard package")
    assert "esper[tensorboard]" in line
    assert not (tmp_path / "runs").exists()
