"""Env pools: where the envs of a trainer live. The trainer sees only this interface.

Only observations, actions, rewards and small records cross it, so a pool may keep its envs in
this process (`LocalEnvPool`), in worker processes or in Ray actors without the trainer changing.
A step's telemetry travels back inside its `StepResult` (payload records, not events): the
trainer gives them their run, env and round, so nothing inside an env is set from outside.

Steps are asynchronous: `submit(env, action)` starts one env's step and `next_result()` hands
back whichever step finished first, so a controller that acts for each env on its own keeps
every worker busy (no env waits for the slowest one of its step). `step(actions)` is the
lockstep form on top of the two: one action per env, the results in env order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol

from esper.kasmina import gate_profile
from esper.leyline import EpisodeOutcome, FactoredAction
from esper.simic.config import EpisodeSettings, HeuristicRunConfig, TrainingConfig
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.tamiyo.features import FeatureSpec, Observation
from esper.tolaria import DataOptions, SessionOptions, get_task
from esper.tolaria.data import DataSplits
from esper.tolaria.grouped import Trained, train_epochs


@dataclass(frozen=True)
class StepResult:
    observation: Observation
    reward: float
    reward_terms: dict[str, float]
    terminated: bool
    truncated: bool
    outcome: EpisodeOutcome | None  # on the episode's last step
    timing: dict[str, float]  # phase -> seconds spent in the env
    epoch: int  # the host epoch this step trained (1 = the episode's first)
    events: tuple[Any, ...]  # telemetry payload records (`MorphogeneticEnv` info["events"])
    compiled_graphs: int = 0  # torch.compile graphs this step compiled


class EnvPool(Protocol):
    n_envs: int
    feature_spec: FeatureSpec  # env 0's
    feature_specs: list[FeatureSpec]  # each env's (envs of several tasks have several)

    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        """Reset the first len(seeds) envs (1..n_envs) for an episode; `step` then takes one
        action for each of them."""
        ...

    def submit(self, env: int, action: FactoredAction) -> None:
        """Start env `env`'s next step (an env of this episode with no step in flight)."""
        ...

    def next_result(self) -> tuple[int, StepResult]:
        """The next finished step (env, result), waiting for one if none is done; in the order
        the steps finish, which in worker processes depends on timing."""
        ...

    def step(self, actions: Sequence[FactoredAction]) -> list[StepResult]:
        """One step of every env of this episode (lockstep): `lockstep` on this pool."""
        ...

    def take_events(self) -> list[tuple[int, Any]]:
        """The pool's own telemetry since the last call (a replaced worker): (env, payload)."""
        ...

    def close(self) -> None: ...


def lockstep(pool: EnvPool, actions: Sequence[FactoredAction]) -> list[StepResult]:
    """Submit one action per env of the episode, gather every result, return them in env
    order."""
    for env, action in enumerate(actions):
        pool.submit(env, action)
    results: dict[int, StepResult] = {}
    while len(results) < len(actions):
        env, result = pool.next_result()
        results[env] = result
    return [results[env] for env in range(len(actions))]


class InFlight:
    """Which envs of an episode a pool may step now: the episode's envs, each with at most
    one step in flight. Raises ValueError on any other request."""

    def __init__(self) -> None:
        self.live = 0  # envs of this episode: the first `live`
        self.envs: set[int] = set()  # with a step in flight

    def start(self, live: int) -> None:
        if self.envs:
            raise ValueError(f"reset while envs {sorted(self.envs)} have steps in flight")
        self.live = live

    def add(self, env: int) -> None:
        if not 0 <= env < self.live:
            raise ValueError(f"env {env} is not in this episode (envs 0 to {self.live - 1})")
        if env in self.envs:
            raise ValueError(f"env {env} already has a step in flight")
        self.envs.add(env)

    def check_count(self, actions: int) -> None:
        """For a lockstep step: one action per env of the episode."""
        if actions != self.live:
            raise ValueError(f"need {self.live} actions, got {actions}")

    def check_some(self) -> None:
        if not self.envs:
            raise ValueError("next_result without a step in flight")


def step_result(env: MorphogeneticEnv, step: FactoredAction | Trained) -> StepResult:
    """Step one env (or finish the step it `act`ed on, whose host training `step` is) and keep
    only what crosses a pool boundary."""
    if isinstance(step, FactoredAction):
        (_, reward, terminated, truncated, info), timing = env.timed_step(step)
    else:
        (_, reward, terminated, truncated, info), timing = env.finish_step(step)
    return StepResult(
        observation=info["observation"],
        reward=float(reward),
        reward_terms=info["reward_terms"],
        terminated=terminated,
        truncated=truncated,
        outcome=info.get("outcome"),
        timing=timing,
        epoch=env.epoch,
        events=info["events"],
        compiled_graphs=info["compiled_graphs"],
    )


class LocalEnvPool:
    """Envs in this process, stepped in turn."""

    def __init__(self, make_env: Callable[[int], MorphogeneticEnv], n_envs: int) -> None:
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        self.envs = [make_env(i) for i in range(n_envs)]
        self.n_envs = n_envs
        self.feature_specs = [env.feature_spec for env in self.envs]
        self.feature_spec = self.feature_specs[0]
        self._in_flight = InFlight()
        self._queue: deque[tuple[int, FactoredAction]] = deque()  # submitted, in order

    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        if not 1 <= len(seeds) <= self.n_envs:
            raise ValueError(f"need 1 to {self.n_envs} seeds, got {len(seeds)}")
        self._in_flight.start(len(seeds))
        return [
            env.reset(seed=seed)[1]["observation"]
            for env, seed in zip(self.envs[: len(seeds)], seeds, strict=True)
        ]

    def submit(self, env: int, action: FactoredAction) -> None:
        self._in_flight.add(env)
        self._queue.append((env, action))

    def next_result(self) -> tuple[int, StepResult]:
        """The oldest submitted step, played now: envs take turns in submission order."""
        self._in_flight.check_some()
        env, action = self._queue.popleft()
        try:
            return env, step_result(self.envs[env], action)
        finally:
            self._in_flight.envs.discard(env)

    def step(self, actions: Sequence[FactoredAction]) -> list[StepResult]:
        self._in_flight.check_count(len(actions))
        return lockstep(self, actions)

    def take_events(self) -> list[tuple[int, Any]]:
        return []  # nothing here fails on its own

    def close(self) -> None:
        self.envs.clear()


class VmapEnvPool(LocalEnvPool):
    """Envs in this process whose hosts train together: every step submitted when a result is
    asked for runs as one batch, each env's action and boundary, then one epoch for all of them
    with the envs of one model structure vmapped into a single forward/backward
    (`esper.tolaria.grouped`), then each env's validation and reward. The results are handed
    back in submission order, so a controller acting for each env as its step returns submits
    the whole next batch before the next training runs."""

    def __init__(self, make_env: Callable[[int], MorphogeneticEnv], n_envs: int) -> None:
        super().__init__(make_env, n_envs)
        self._done: deque[tuple[int, StepResult]] = deque()

    def next_result(self) -> tuple[int, StepResult]:
        self._in_flight.check_some()
        if not self._done:
            self._play_queued()
        env, result = self._done.popleft()
        self._in_flight.envs.discard(env)
        return env, result

    def _play_queued(self) -> None:
        batch = list(self._queue)
        self._queue.clear()
        envs = [self.envs[env] for env, _ in batch]
        try:
            for env, (_, action) in zip(envs, batch, strict=True):
                env.act(action)
            trained = train_epochs([env.session for env in envs])
            for env, (index, _), epoch in zip(envs, batch, trained, strict=True):
                self._done.append((index, step_result(env, epoch)))
        except BaseException:
            # No step of the batch happened: the pool is as after a reset of these envs' steps
            # (the episode itself is not resumable; the caller resets or gives up).
            for env, (index, _) in zip(envs, batch, strict=True):
                env.abandon_step()
                self._in_flight.envs.discard(index)
            self._done.clear()
            raise


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
            shadow_fraction=config.shadow_fraction,
            amp=config.amp,
            compile=config.compile_backend if config.compile else None,
            host_widths=config.host_widths,
            host_norm=config.host_norm,
            batch_size=config.batch_size,
            eval_batch_size=config.eval_batch_size,
        ),
        illegal_action="raise",  # our controllers sample the conditional masks: one is a bug
        observe_budget=bool(config.param_budgets),
        task=config.task_of(env_index) if len(config.tasks) > 1 else None,
    )


def spread_over(
    configs: Sequence[EnvConfig], devices: Sequence[str], workers: int
) -> list[EnvConfig]:
    """The env configs with env i on the device of its worker (i mod W, `worker_specs`): worker
    k's envs train on devices[k mod D], so every worker uses one device and the devices share
    the workers evenly."""
    w = min(workers, len(configs))
    if w < len(devices):
        raise ValueError(f"{len(devices)} devices for {w} workers: each worker uses one device")
    return [
        replace(c, session=replace(c.session, device=devices[(i % w) % len(devices)]))
        for i, c in enumerate(configs)
    ]


def build_pool(
    config: TrainingConfig | HeuristicRunConfig,
    data: DataSplits,
    env_configs: Sequence[EnvConfig] | None = None,
) -> EnvPool:
    """The env pool `config.backend` names: one env per `config.n_envs`, or one per entry of
    `env_configs` (an A/B run's envs, `esper.simic.ab`). `data` serves the local backend;
    worker processes load the task's data themselves, once each. Envs of a run over several
    tasks play each their own (`EnvConfig.task`); `data` is the first task's."""
    configs = (
        [env_config_for(config, i) for i in range(config.n_envs)]
        if env_configs is None
        else list(env_configs)
    )
    n_envs = len(configs)
    if config.backend in ("local", "vmap"):
        first = config.tasks[0]
        loaded = {first: (get_task(first), data)}
        options = DataOptions(config.data_dir, config.train_subset, download=False)

        def make_env(i: int) -> MorphogeneticEnv:
            name = configs[i].task or first
            if name not in loaded:
                task = get_task(name)
                loaded[name] = task, task.load(options)
            return MorphogeneticEnv(*loaded[name], configs[i])

        pool = LocalEnvPool if config.backend == "local" else VmapEnvPool
        return pool(make_env, n_envs)
    from esper.simic.workers import ProcessEnvPool, default_workers

    options = DataOptions(config.data_dir, config.train_subset, download=False)
    if config.backend == "process":
        workers = config.workers or default_workers(n_envs)
        if config.devices is not None:  # at least a worker per device
            workers = max(workers, min(len(config.devices), n_envs))
            configs = spread_over(configs, config.devices, workers)
        return ProcessEnvPool(
            config.tasks[0],
            options,
            configs,
            workers,
            threads=config.threads,
            deadline_s=config.worker_deadline_s,
            device=config.device,
        )
    from esper.simic.ray_pool import RayEnvPool

    return RayEnvPool(
        config.tasks[0],
        options,
        configs,
        config.workers,
        threads=config.threads,
        deadline_s=config.worker_deadline_s,
        address=config.ray_address,
        cpus=config.worker_cpus,
        gpus=config.worker_gpus,
    )


@contextmanager
def job_pool(
    backend: str,
    task: str,
    data: DataOptions,
    workers: int | None,
    jobs: int,
    threads: int = 1,
    device: str = "cpu",
) -> Iterator[Any]:
    """Workers without envs for `SupervisedPool.run_jobs` (whole episodes of a controller),
    closed when the body ends: `process` or `ray`; None for `local` (play them here). `workers`
    None: this machine's cores (process) or the cluster's CPUs (ray), at most `jobs`."""
    if backend == "local":
        yield None
        return
    from esper.simic.workers import ProcessEnvPool, default_workers

    pool: Any
    if backend == "process":
        count = min(workers or default_workers(jobs), jobs)
        pool = ProcessEnvPool(task, data, [], count, threads=threads, device=device)
    elif backend == "ray":
        from esper.simic.ray_pool import RayEnvPool

        pool = RayEnvPool(task, data, [], workers, threads=threads)
    else:
        raise ValueError(f"unknown backend {backend!r}; expected local, process or ray")
    try:
        yield pool
    finally:
        pool.close()
