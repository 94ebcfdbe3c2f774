"""An A/B run: several arms (`esper.simic.arms`) trained in lockstep on one pool.

Every round all arms play the same env seeds, each arm on its own slice of the pool's envs
(arm a: envs a*n .. a*n + n - 1, built with that arm's rewards), all of them stepped together,
so a worker of the pool is never idle while another arm's envs play. Each arm has its own
network, optimizer, normalizers and generators (seeded from its name), its own events (their
`group` is the arm's name), its own round line and its own checkpoint; the run's checkpoint
holds every arm, so a resume restores them all at once.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from esper.leyline import EventContext, FactoredAction
from esper.nissa import TelemetryHub
from esper.simic.arms import arm_seed
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import EnvPool, StepResult, env_config_for
from esper.simic.trainer import RoundPlay, RoundSummary, VectorizedTrainer
from esper.tamiyo.features import FeatureSpec


def ab_env_configs(arms: dict[str, TrainingConfig]) -> list[Any]:
    """The pool's env configs: each arm's n envs in turn, with that arm's rewards."""
    return [env_config_for(config, i) for config in arms.values() for i in range(config.n_envs)]


class ArmView:
    """What an arm's trainer sees of the run's pool: its n envs' count and feature layout. Its
    envs are played by `ABTrainer`, never through the view."""

    def __init__(self, pool: EnvPool, n_envs: int, feature_specs: list[FeatureSpec]) -> None:
        self.pool, self.n_envs, self.feature_specs = pool, n_envs, feature_specs
        self.feature_spec = feature_specs[0]

    def _refuse(self, *args: Any) -> Any:
        raise RuntimeError("an arm's envs are played by its ABTrainer, not through the arm")

    reset = submit = next_result = step = _refuse

    def take_events(self) -> list[tuple[int, Any]]:
        return []

    def close(self) -> None:
        pass  # the run's pool is closed by its owner


class ABTrainer:
    """The arms of one A/B run (`arms`: name -> config, in table order) on `pool`."""

    def __init__(
        self,
        arms: dict[str, TrainingConfig],
        pool: EnvPool,
        hub: TelemetryHub | None = None,
        run: str = "",
    ) -> None:
        self.names = list(arms)
        self.n = arms[self.names[0]].n_envs
        if pool.n_envs != self.n * len(arms):
            raise ValueError(f"the pool has {pool.n_envs} envs for {len(arms)} arms of {self.n}")
        self.pool = pool
        self.context = EventContext(run=run, group="ab")
        self.arms: dict[str, VectorizedTrainer] = {}
        for k, (name, config) in enumerate(arms.items()):
            specs = pool.feature_specs[k * self.n : (k + 1) * self.n]
            self.arms[name] = VectorizedTrainer(
                config,
                ArmView(pool, self.n, specs),
                hub,
                EventContext(run=run, group=name),
                policy_seed=arm_seed(config.seed, name),
            )

    @property
    def hub(self) -> TelemetryHub | None:
        return self.arms[self.names[0]].hub

    @hub.setter
    def hub(self, hub: TelemetryHub | None) -> None:
        for arm in self.arms.values():
            arm.hub = hub

    @property
    def round(self) -> int:
        return self.arms[self.names[0]].round

    def run_round(self) -> list[RoundSummary]:
        """One round of every arm on the same env seeds; their summaries in arm order."""
        arms = list(self.arms.values())
        seeds = arms[0].round_seeds(self.round)
        timings: dict[str, defaultdict[str, float]] = {n: defaultdict(float) for n in self.names}
        started = time.perf_counter()
        observations = self.pool.reset(seeds * len(arms))
        for timing in timings.values():  # one reset for all: an equal share each
            timing["reset"] += (time.perf_counter() - started) / len(arms)
        plays = [
            RoundPlay(arm, self._submitter(a), timings[name])
            for a, (name, arm) in enumerate(self.arms.items())
        ]
        for a, play in enumerate(plays):
            for i in range(self.n):
                play.act(i, observations[a * self.n + i])
        for _ in range(sum(play.steps_left() for play in plays)):
            env, result = self.pool.next_result()
            self._record(plays, env, result)
        return [
            arm.update(play.finished(), tuple(seeds), timings[name])
            for (name, arm), play in zip(self.arms.items(), plays, strict=True)
        ]

    def _submitter(self, arm: int) -> Any:
        offset = arm * self.n

        def submit(env: int, action: FactoredAction) -> None:
            self.pool.submit(offset + env, action)

        return submit

    def _record(self, plays: list[RoundPlay], env: int, result: StepResult) -> None:
        arm, local = divmod(env, self.n)
        plays[arm].record(local, result)
        routed: dict[int, list[tuple[int, Any]]] = defaultdict(list)
        for pool_env, payload in self.pool.take_events():  # a replaced worker, per arm
            owner, own_env = divmod(pool_env, self.n)
            routed[owner].append((own_env, payload))
        for owner, events in routed.items():
            list(self.arms.values())[owner].emit_pool_events(events, plays[owner].done)

    # -- state for checkpoints -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {"round": self.round, "arms": {n: a.state_dict() for n, a in self.arms.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = list(state["arms"])
        if saved != self.names:
            raise ValueError(f"the checkpoint holds arms {saved}, this run has {self.names}")
        for name, arm in self.arms.items():
            arm.load_state_dict(state["arms"][name])
