"""TensorBoard scalars from a run's events (`--tensorboard`, the `tensorboard` extra).

Written under RUN_DIR/tensorboard/<arm>/ (the event's policy group; "main" when it has none),
so TensorBoard overlays the arms of a run, and several runs pointed at together. Per arm:
- per PPO round (step = round): `round/*` (mean return, validation and test accuracy, parameters
  added, graphs compiled), `time/*` (seconds per phase) and `ppo/*` (losses, KL, clip fraction,
  explained variance, gradient norm, entropy per head, the entropy coefficient and learning rate);
- per episode, in the subfolder `episodes` (step = the episode's index in the run: round x envs
  + env for PPO, the episode number for a heuristic run): `episode/*` (return, final validation
  and test accuracy, parameters added), from the run's `episode` events.

A resumed run starts its writers with `purge_step` at the round it resumes from, so scalars a
killed round wrote before its checkpoint are hidden, as its events are cut from events.jsonl.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from esper.leyline.events import Event

TENSORBOARD_DIR = "tensorboard"
_EPISODES = "episodes"


class TensorBoardMissing(ValueError):
    """The `tensorboard` package is not installed (a ValueError: the CLI says so in one line)."""


def summary_writer_class() -> Any:
    """torch's SummaryWriter, or TensorBoardMissing naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as error:
        raise TensorBoardMissing(
            "--tensorboard needs the tensorboard package: pip install 'esper[tensorboard]'"
        ) from error
    return SummaryWriter


class TensorBoardSink:
    """A telemetry sink writing TensorBoard event files under `root` (see the module doc).

    Args:
        root: the folder of the run's TensorBoard files (RUN_DIR/tensorboard).
        resume_round: the round a resumed PPO run starts from (None: a new run); steps from it
            on that earlier writers left are purged.
    """

    def __init__(self, root: Path, resume_round: int | None = None) -> None:
        self._writer_class = summary_writer_class()
        self.root = Path(root)
        self.resume_round = resume_round
        self._writers: dict[tuple[str, str], Any] = {}
        self._n_envs = 1  # a PPO round's episodes (run_start): steps of the episode writers

    def _writer(self, arm: str, kind: str = "") -> Any:
        key = (arm, kind)
        if key not in self._writers:
            purge = None
            if self.resume_round is not None:
                purge = self.resume_round * (self._n_envs if kind == _EPISODES else 1)
            folder = self.root / arm / kind if kind else self.root / arm
            self._writers[key] = self._writer_class(str(folder), purge_step=purge)
        return self._writers[key]

    def write(self, event: Event) -> None:
        arm, payload = event.group or "main", event.payload
        if event.type == "run_start":
            self._n_envs = max(1, int(payload["envs"]))
        elif event.type == "episode":
            self._on_episode(arm, payload)
        elif event.type == "ppo_update":
            self._on_update(arm, event.round, payload)
        elif event.type == "round":
            self._on_round(arm, event.round, payload)

    def _on_episode(self, arm: str, payload: dict[str, Any]) -> None:
        outcome, step = payload["outcome"], int(payload["episode"])
        writer = self._writer(arm, _EPISODES)
        for name in ("episode_return", "test_accuracy", "val_accuracy", "params_added"):
            writer.add_scalar(f"episode/{name.removeprefix('episode_')}", outcome[name], step)

    def _on_update(self, arm: str, step: int, payload: dict[str, Any]) -> None:
        writer = self._writer(arm)
        for name in (
            "policy_loss",
            "value_loss",
            "approx_kl",
            "clip_fraction",
            "explained_variance",
            "grad_norm",
            "entropy_coef",
            "learning_rate",
        ):
            writer.add_scalar(f"ppo/{name}", payload[name], step)
        for head, value in payload["entropy"].items():
            writer.add_scalar(f"ppo/entropy/{head}", value, step)

    def _on_round(self, arm: str, step: int, payload: dict[str, Any]) -> None:
        writer = self._writer(arm)
        writer.add_scalar("round/return", payload["mean_return"], step)
        writer.add_scalar("round/val_accuracy", payload["mean_val_accuracy"], step)
        writer.add_scalar("round/test_accuracy", payload["mean_test_accuracy"], step)
        writer.add_scalar("round/params_added", payload["mean_params_added"], step)
        writer.add_scalar("round/compiled_graphs", payload.get("compiled_graphs", 0), step)
        for phase, seconds in payload["timing_s"].items():
            writer.add_scalar(f"time/{phase}", seconds, step)
        for writer in self._writers.values():
            writer.flush()  # a round's scalars are on disk when the round line shows

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def __repr__(self) -> str:
        return f"TensorBoardSink({str(self.root)!r})"
