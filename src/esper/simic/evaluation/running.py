"""Playing the evaluation: every controller, one episode on each held-out env seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from esper.leyline import EventContext
from esper.nissa import TelemetryHub
from esper.simic.environment import MorphogeneticEnv
from esper.simic.episodes import EpisodeRecord, episode_event, run_episodes
from esper.simic.evaluation.controllers import ControllerSpec, build_policy
from esper.simic.trainer import TRAINING_SEED_LIMIT
from esper.simic.workers import ControllerJob, SupervisedPool


@dataclass(frozen=True)
class EvaluationResult:
    task: str
    episode_length: int
    seeds: tuple[int, ...]
    records: dict[str, tuple[EpisodeRecord, ...]]  # label -> one record per seed, seed order


def held_out_seeds(n: int, base: int = TRAINING_SEED_LIMIT) -> list[int]:
    """`n` env seeds that training never uses (training seeds lie below TRAINING_SEED_LIMIT).

    Raises:
        ValueError: n < 1, or a base below TRAINING_SEED_LIMIT.
    """
    if n < 1:
        raise ValueError(f"need at least 1 seed, got {n}")
    if base < TRAINING_SEED_LIMIT:
        raise ValueError(
            f"held-out seeds start at {TRAINING_SEED_LIMIT} or above (training uses the seeds "
            f"below it), got base {base}"
        )
    return list(range(base, base + n))


def evaluate_controllers(
    specs: Sequence[ControllerSpec],
    make_env: Callable[[ControllerSpec], MorphogeneticEnv],
    seeds: Sequence[int],
    hub: TelemetryHub | None = None,
    pool: SupervisedPool[Any] | None = None,
) -> EvaluationResult:
    """Play every controller on every seed, in its own env, one episode after another.

    All controllers are built before any episode runs, so a bad checkpoint fails at once. Each
    episode starts from a fresh controller state (`run_episodes` with one env). With a `pool`
    (workers without envs), each controller plays its seeds in a worker: the same episodes in
    the same order, several controllers at once.

    Raises:
        ValueError: envs that differ in task or episode length (the episodes would not pair up).
    """
    envs = [make_env(spec) for spec in specs]
    policies = [build_policy(spec, env) for spec, env in zip(specs, envs, strict=True)]
    lengths = {env.episode_length for env in envs}
    if len(lengths) != 1 or len({env.task.name for env in envs}) != 1:
        raise ValueError("every controller must play the same task and episode length")
    length = lengths.pop()
    if pool is None:
        played = [
            run_episodes(policy, [env], seeds, hub, with_steps=False)
            for policy, env in zip(policies, envs, strict=True)
        ]
    else:
        jobs = [
            ControllerJob(spec, env.config, tuple(seeds))
            for spec, env in zip(specs, envs, strict=True)
        ]
        played = pool.run_jobs(jobs, steps_each=len(seeds) * length)
        for controller_episodes in played:
            for record in controller_episodes:
                if hub is not None:
                    hub.emit_payload(episode_event(record), EventContext(), length)
    records = {  # labelled by spec, so that two ppo checkpoints stay apart
        spec.label: tuple(replace(r, controller=spec.label) for r in episodes)
        for spec, episodes in zip(specs, played, strict=True)
    }
    return EvaluationResult(envs[0].task.name, length, tuple(seeds), records)
