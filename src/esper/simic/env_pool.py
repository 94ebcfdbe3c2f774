"""Env pools: where the envs of a trainer live. The trainer sees only this interface.

Only observations, actions, rewards and small records cross it, so a pool may keep its envs in
this process (`LocalEnvPool`), in worker processes or in Ray actors without the trainer changing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from esper.kasmina import gate_profile
from esper.leyline import EpisodeOutcome, EventContext, FactoredAction
from esper.nissa import TelemetryHub
from esper.simic.config import EpisodeSettings, TrainingConfig
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.tamiyo.features import FeatureSpec, Observation
from esper.tolaria import SessionOptions, get_task
from esper.tolaria.data import DataSplits


@dataclass(frozen=True)
class StepResult:
    observation: Observation
    reward: float
    reward_terms: dict[str, float]
    terminated: bool
    truncated: bool
    outcome: EpisodeOutcome | None  # on the episode's last step
    timing: dict[str, float]  # phase -> seconds spent in the env


class EnvPool(Protocol):
    n_envs: int
    feature_spec: FeatureSpec

    def reset(self, seeds: Sequence[int], round_index: int) -> list[Observation]: ...

    def step(self, actions: Sequence[FactoredAction]) -> list[StepResult]: ...

    def close(self) -> None: ...


def step_result(env: MorphogeneticEnv, action: FactoredAction) -> StepResult:
    """Step one env and keep only what crosses a pool boundary."""
    _, reward, terminated, truncated, info = env.step(action)
    return StepResult(
        observation=info["observation"],
        reward=float(reward),
        reward_terms=info["reward_terms"],
        terminated=terminated,
        truncated=truncated,
        outcome=info.get("outcome"),
        timing=env.last_timing,
    )


class LocalEnvPool:
    """Envs in this process, stepped in turn."""

    def __init__(self, make_env: Callable[[int], MorphogeneticEnv], n_envs: int) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        self.envs = [make_env(i) for i in range(n_envs)]
        self.n_envs = n_envs
        self.feature_spec = self.envs[0].feature_spec

    def reset(self, seeds: Sequence[int], round_index: int) -> list[Observation]:
        if len(seeds) != self.n_envs:
            raise ValueError(f"need {self.n_envs} seeds, got {len(seeds)}")
        observations = []
        for env, seed in zip(self.envs, seeds, strict=True):
            env.context = replace(env.context, round=round_index)
            observations.append(env.reset(seed=seed)[1]["observation"])
        return observations

    def step(self, actions: Sequence[FactoredAction]) -> list[StepResult]:
        return [step_result(env, a) for env, a in zip(self.envs, actions, strict=True)]

    def close(self) -> None:
        self.envs.clear()


def env_config_for(config: EpisodeSettings, env_index: int) -> EnvConfig:
    """The env settings a run config implies for env `env_index` (its reward mode may differ
    from the others' for A/B inside one policy group)."""
    return EnvConfig(
        episode_length=config.resolved_episode_length(),
        reward=config.reward_config(config.reward_mode_of(env_index)),
        session=SessionOptions(
            slots=config.slots,
            limits=config.lifecycle_limits(),
            gates=gate_profile(config.gates),
            device=config.device,
        ),
        illegal_action="raise",  # our controllers sample the conditional masks: one is a bug
    )


def build_pool(
    config: TrainingConfig,
    data: DataSplits,
    hub: TelemetryHub | None = None,
    context: EventContext = EventContext(),
) -> EnvPool:
    """The env pool `config.backend` names, one env per `config.n_envs`."""
    task = get_task(config.task)

    def make_env(i: int) -> MorphogeneticEnv:
        return MorphogeneticEnv(task, data, env_config_for(config, i), hub, replace(context, env=i))

    if config.backend == "local":
        return LocalEnvPool(make_env, config.n_envs)
    raise ValueError(
        f"backend {config.backend!r} is not available yet; use 'local' (process and ray are "
        "planned: see the issue tracker)"
    )
