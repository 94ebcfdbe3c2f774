"""A short PPO training on some backend, and the check that two of them are the same run:
network tensors, episode outcomes and every event apart from wall times (issue 11)."""

from __future__ import annotations

from typing import Any

import torch

from esper.nissa import MemorySink, TelemetryHub
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.trainer import VectorizedTrainer
from esper.tolaria.data import DataSplits

Training = tuple[dict[str, torch.Tensor], list[Any], list[dict[str, Any]]]


def trained(config: TrainingConfig, digits: DataSplits) -> Training:
    """`config.rounds` rounds on `config.backend`: (network, outcomes per round, events). Sets
    the thread count itself (module fixtures run before the suite's per-test setting)."""
    torch.set_num_threads(config.threads)
    sink = MemorySink()
    pool = build_pool(config, digits)
    try:
        trainer = VectorizedTrainer(config, pool, TelemetryHub([sink]))
        outcomes = [trainer.run_round().outcomes for _ in range(config.rounds)]
    finally:
        pool.close()
    events = [
        without_wall_times(e.to_dict())
        for e in sink.events
        if e.type != "round"  # its timing_s are wall times
    ]
    return trainer.network.state_dict(), outcomes, events


def without_wall_times(event: dict[str, Any]) -> dict[str, Any]:
    """An event without its time stamp, and an episode's without its wall time."""
    event = {k: v for k, v in event.items() if k != "time"}
    if event["type"] == "episode":
        event["payload"] = {k: v for k, v in event["payload"].items() if k != "wall_time_s"}
    return event


def assert_same_training(a: Training, b: Training) -> None:
    assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
    assert a[1] == b[1]
    assert a[2] == b[2] and len(a[2]) > 20
