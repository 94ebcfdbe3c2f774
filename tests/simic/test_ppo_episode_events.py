"""A PPO round logs each of its episodes (issue 13: what `compare`, reports and TensorBoard read):
seed, outcome with its return, the index round x envs + env; the console's round line still sums
them up alone."""

from __future__ import annotations

from esper.nissa import MemorySink, TelemetryHub
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.trainer import VectorizedTrainer
from esper.tolaria.data import DataSplits


def test_each_round_logs_its_episodes_before_its_round_line(digits: DataSplits) -> None:
    config = TrainingConfig.preset("digits").with_overrides(
        {"n_envs": 2, "episode_length": 3, "rounds": 2, "seed": 4}
    )
    sink = MemorySink()
    trainer = VectorizedTrainer(config, build_pool(config, digits), TelemetryHub([sink]))
    summaries = [trainer.run_round() for _ in range(2)]
    events = [e for e in sink.events if e.type in ("episode", "round", "reward")]
    episodes = [e for e in events if e.type == "episode"]
    assert [e.payload["episode"] for e in episodes] == [0, 1, 2, 3]
    assert [(e.round, e.env) for e in episodes] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [e.payload["seed"] for e in episodes] == [
        s for r in range(2) for s in trainer.round_seeds(r)
    ]
    for e in episodes:
        rewards = [
            r.payload["total"]
            for r in events
            if r.type == "reward" and (r.round, r.env) == (e.round, e.env)
        ]
        assert e.payload["outcome"]["episode_return"] == sum(rewards)
        assert e.payload["controller"] == "ppo" and e.payload["wall_time_s"] > 0
    order = [e.type for e in events if e.type != "reward"]
    assert order == ["episode", "episode", "round"] * 2
    for summary in summaries:
        assert summary.mean_return == sum(o.episode_return for o in summary.outcomes) / 2
