"""Run a controller for whole episodes over a set of envs in lockstep (no learning)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

from esper.leyline import EpisodeEvent, EpisodeOutcome, EventContext
from esper.nissa import TelemetryHub
from esper.simic.env_pool import EnvPool, LocalEnvPool
from esper.simic.environment import MorphogeneticEnv
from esper.tamiyo.policy import Policy


@dataclass(frozen=True)
class EpisodeRecord:
    episode: int
    seed: int
    controller: str
    outcome: EpisodeOutcome
    wall_time_s: float


def run_episodes(
    policy: Policy,
    envs: Sequence[MorphogeneticEnv],
    seeds: Sequence[int],
    hub: TelemetryHub | None = None,
    context: EventContext = EventContext(),
    *,
    with_steps: bool = True,
) -> list[EpisodeRecord]:
    """Play one episode per seed, `len(envs)` at a time, with one `act` call per step, on these
    envs in this process (`run_pool_episodes` on them)."""
    pool = LocalEnvPool(lambda i: envs[i], len(envs))
    return run_pool_episodes(policy, pool, seeds, hub, context, with_steps=with_steps)


def run_pool_episodes(
    policy: Policy,
    pool: EnvPool,
    seeds: Sequence[int],
    hub: TelemetryHub | None = None,
    context: EventContext = EventContext(),
    *,
    with_steps: bool = True,
) -> list[EpisodeRecord]:
    """Play one episode per seed on an env pool (any backend), `pool.n_envs` at a time in
    lockstep, with one `act` call per step. One `episode` event per episode goes to `hub` and,
    `with_steps`, every step's records (epoch, reward, lifecycle changes), from env i as
    `context` with env=i."""
    step_hub = hub if with_steps else None
    records: list[EpisodeRecord] = []
    for start in range(0, len(seeds), pool.n_envs):
        batch = list(seeds[start : start + pool.n_envs])
        contexts = [replace(context, env=i) for i in range(len(batch))]
        started = time.perf_counter()
        observations = pool.reset(batch)
        state = policy.initial_state(len(batch))
        returns = [0.0] * len(batch)
        outcomes: list[EpisodeOutcome | None] = [None] * len(batch)
        epoch = 0
        while any(o is None for o in outcomes):
            step = policy.act(observations, state)
            state = step.state
            results = pool.step(step.actions)
            for i, result in enumerate(results):
                if step_hub is not None:
                    step_hub.emit_records(result.events, contexts[i], result.epoch)
                returns[i] += result.reward
                if result.outcome is not None:
                    outcomes[i] = result.outcome
                epoch = result.epoch
            observations = [r.observation for r in results]
            for env, payload in pool.take_events():
                if hub is not None:
                    hub.emit_payload(payload, replace(context, env=env), epoch)
        wall = (time.perf_counter() - started) / len(batch)
        for i, (seed, outcome) in enumerate(zip(batch, outcomes, strict=True)):
            assert outcome is not None
            final = replace(outcome, episode_return=returns[i])
            record = EpisodeRecord(start + i, seed, policy.name, final, wall)
            records.append(record)
            if hub is not None:
                hub.emit_payload(episode_event(record), contexts[i], epoch)
    return records


def episode_event(record: EpisodeRecord) -> EpisodeEvent:
    outcome = record.outcome
    return EpisodeEvent(
        record.episode,
        record.seed,
        record.controller,
        outcome,
        outcome.growth_ratio,
        record.wall_time_s,
    )
