"""VectorizedTrainer: PPO rounds over an `EnvPool` (docs/architecture.md §2).

A round is a short sequence of named steps: collect one episode per env (the policy acts for
each env as soon as its step comes back), compute GAE advantages, update the policy, log, and
let the caller checkpoint. Only observations, actions, rewards and the steps' telemetry records
cross the pool boundary; the trainer gives those records their run, env and round and sends
them to the hub.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from esper.leyline import (
    EpisodeEvent,
    EpisodeOutcome,
    EventContext,
    FactoredAction,
    Op,
    PPOUpdateEvent,
    RoundEvent,
)
from esper.nissa import TelemetryHub
from esper.simic.advantages import gae, group_relative
from esper.simic.config import TRAINING_SEED_LIMIT, TrainingConfig
from esper.simic.env_pool import EnvPool, StepResult
from esper.simic.learned_policy import ObservationNormalizer, network_input
from esper.simic.normalizer import RunningNormalizer
from esper.simic.ppo import PPOSettings, UpdateMetrics, ppo_update
from esper.simic.rollout_buffer import RolloutBuffer
from esper.tamiyo.action_codec import decode
from esper.tamiyo.features import Observation
from esper.tamiyo.policy_network import PolicyNetwork
from esper.tamiyo.slot_view import Padding, SlotView


class Collected(NamedTuple):
    """One round's episodes, as `VectorizedTrainer.collect` played them (per env where a list)."""

    buffer: RolloutBuffer
    returns: list[float]
    outcomes: list[EpisodeOutcome]  # with their `episode_return`
    ops: Counter[str]  # how often each op was chosen
    compiled_graphs: int  # torch.compile graphs the envs compiled (with `compile`)
    seconds: list[float]  # seconds each env's steps took in the env


@dataclass(frozen=True)
class RoundSummary:
    round: int
    mean_return: float
    outcomes: list[EpisodeOutcome]
    op_counts: dict[str, int]
    update: UpdateMetrics
    timing_s: dict[str, float]
    compiled_graphs: int = 0  # torch.compile graphs the envs compiled this round
    seeds: tuple[int, ...] = ()  # each env's episode seed
    episode_s: tuple[float, ...] = ()  # seconds each env's steps took in the env


class VectorizedTrainer:
    def __init__(
        self,
        config: TrainingConfig,
        pool: EnvPool,
        hub: TelemetryHub | None = None,
        context: EventContext = EventContext(),
        policy_seed: int | None = None,
    ) -> None:
        """`policy_seed` seeds the network, its sampling and its update (None: the config's
        seed; an A/B arm's own, `esper.simic.arms.arm_seed`); the env seeds always come from
        the config's seed."""
        self.config, self.pool, self.hub, self.context = config, pool, hub, context
        seed = config.seed if policy_seed is None else policy_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.network = PolicyNetwork(config.hidden)
        self.optimizer = torch.optim.Adam(
            self.network.parameters(), lr=config.lr, eps=config.adam_eps
        )
        self.obs_normalizer = ObservationNormalizer()
        # Each env's host read through its own view, padded to the run's largest host.
        self.views = [SlotView(spec) for spec in pool.feature_specs]
        self.padding = Padding.of(pool.feature_specs)
        self.return_normalizer = RunningNormalizer((1,), clip=float("inf"))
        self.sample_generator = torch.Generator().manual_seed(seed + 1)
        self.update_generator = torch.Generator().manual_seed(seed + 2)
        self.round = 0

    # -- the round ------------------------------------------------------------------------------

    def round_seeds(self, round_index: int) -> list[int]:
        """The round's env seeds: distinct, or shared by each `envs_per_seed` consecutive envs."""
        n, per_seed = self.pool.n_envs, self.config.envs_per_seed
        base = (self.config.seed * 1_000_003 + round_index * n) % (TRAINING_SEED_LIMIT - n)
        return [base + i // per_seed for i in range(n)]

    def entropy_coef(self) -> float:
        c = self.config
        return self._annealed(c.entropy_coef, c.entropy_coef_final, c.entropy_anneal_rounds)

    def learning_rate(self) -> float:
        c = self.config
        final = c.lr if c.lr_final is None else c.lr_final
        return self._annealed(c.lr, final, c.lr_anneal_rounds)

    def _annealed(self, start: float, final: float, rounds: int) -> float:
        """Linear from `start` at round 0 to `final` at round `rounds`, then `final`."""
        return start + (final - start) * min(1.0, self.round / rounds)

    def run_round(self) -> RoundSummary:
        timing: defaultdict[str, float] = defaultdict(float)
        seeds = tuple(self.round_seeds(self.round))
        return self.update(self.collect(timing), seeds, timing)

    def update(
        self, collected: Collected, seeds: tuple[int, ...], timing: defaultdict[str, float]
    ) -> RoundSummary:
        """The second half of a round: the PPO update on what `collect` (or an A/B round)
        played, the round's telemetry, and the next round."""
        buffer, returns_sum, outcomes, ops, compiled, seconds = collected
        started = time.perf_counter()
        advantages, returns = gae(
            buffer.rewards,
            buffer.values,
            buffer.dones,
            torch.zeros(self.pool.n_envs),  # every episode ends in a true terminal
            self.config.gamma,
            self.config.gae_lambda,
        )
        if self.config.advantage == "group":  # the critic still learns, from GAE's returns
            advantages = group_relative(
                buffer.rewards, buffer.dones, self.config.gamma, self.config.envs_per_seed
            )
        self.return_normalizer.update(returns.reshape(-1, 1).numpy())
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate()
        update = ppo_update(
            self.network,
            self.optimizer,
            buffer,
            advantages,
            returns,
            self.return_normalizer,
            self.ppo_settings(),
            self.update_generator,
        )
        self.obs_normalizer.update(buffer.raw)
        timing["ppo_update"] += time.perf_counter() - started
        summary = RoundSummary(
            self.round,
            float(np.mean(returns_sum)),
            outcomes,
            dict(ops),
            update,
            dict(timing),
            compiled,
            seeds,
            tuple(seconds),
        )
        started = time.perf_counter()
        self._emit(summary)
        timing["telemetry"] += time.perf_counter() - started
        self.round += 1
        return summary

    def ppo_settings(self) -> PPOSettings:
        c = self.config
        return PPOSettings(
            clip=c.clip,
            value_clip=c.value_clip,
            value_coef=c.value_coef,
            entropy_coef=self.entropy_coef(),
            max_grad_norm=c.max_grad_norm,
            target_kl=c.target_kl,
            update_epochs=c.update_epochs,
            minibatch_envs=c.minibatch_envs,
        )

    def collect(self, timing: defaultdict[str, float]) -> Collected:
        """Play one episode in every env; store exactly what the policy saw and did.

        Each env is acted for as soon as its step comes back (`EnvPool.next_result`), so no
        worker waits for another's slower env. The policy acts for one env at a time, with the
        env's own LSTM state and sampling generator (drawn from `sample_generator` at the
        round's start), so what an env is given does not depend on the order steps finish in:
        every backend plays the same episodes. Telemetry goes out in (step, env) order.
        """
        pool = self.pool
        started = time.perf_counter()
        observations = pool.reset(self.round_seeds(self.round))
        timing["reset"] += time.perf_counter() - started
        play = RoundPlay(self, pool.submit, timing)
        for env, observation in enumerate(observations):
            play.act(env, observation)
        for _ in range(play.steps_left()):
            env, result = pool.next_result()
            play.record(env, result)
            self.emit_pool_events(pool.take_events(), play.done)
        return play.finished()

    def _denormalize(self, values: torch.Tensor) -> torch.Tensor:
        mean, std = float(self.return_normalizer.mean[0]), float(self.return_normalizer.std[0])
        return values * std + mean

    def _emit_step(self, env: int, result: StepResult) -> None:
        if self.hub is not None:
            context = EventContext(self.context.run, self.context.group, env, self.round)
            self.hub.emit_records(result.events, context, result.epoch)

    def emit_pool_events(self, events: list[tuple[int, Any]], done: list[int]) -> None:
        """The pool's own records (a replaced worker) of this trainer's envs, at the epoch
        their env was playing."""
        if self.hub is not None:
            last = self.config.resolved_episode_length()
            for env, payload in events:
                context = EventContext(self.context.run, self.context.group, env, self.round)
                self.hub.emit_payload(payload, context, min(done[env] + 1, last))

    def _emit(self, summary: RoundSummary) -> None:
        if self.hub is None:
            return
        u = summary.update
        context = EventContext(self.context.run, self.context.group, 0, summary.round)
        epoch = self.config.resolved_episode_length()
        self.hub.emit_payload(
            PPOUpdateEvent(
                u.policy_loss,
                u.value_loss,
                u.entropy,
                u.approx_kl,
                u.clip_fraction,
                u.explained_variance,
                u.grad_norm,
                u.epochs_run,
                u.initial_log_prob_error,
                self.entropy_coef(),
                self.learning_rate(),
            ),
            context,
            epoch,
        )
        outcomes = summary.outcomes
        n = len(outcomes)
        for env, outcome in enumerate(outcomes):  # before the round: what its line summarizes
            episode = EpisodeEvent(
                summary.round * n + env,
                summary.seeds[env],
                "ppo",
                outcome,
                outcome.growth_ratio,
                summary.episode_s[env],
            )
            episode_context = EventContext(self.context.run, self.context.group, env, summary.round)
            self.hub.emit_payload(episode, episode_context, epoch)
        self.hub.emit_payload(
            RoundEvent(
                mean_return=summary.mean_return,
                mean_val_accuracy=float(np.mean([o.val_accuracy for o in outcomes])),
                mean_test_accuracy=float(np.mean([o.test_accuracy for o in outcomes])),
                mean_params_added=float(np.mean([o.params_added for o in outcomes])),
                op_counts={op.name: summary.op_counts.get(op.name, 0) for op in Op},
                timing_s=summary.timing_s,
                compiled_graphs=summary.compiled_graphs,
            ),
            context,
            epoch,
        )

    # -- state for checkpoints -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "obs_normalizer": self.obs_normalizer.state_dict(),
            "return_normalizer": self.return_normalizer.state_dict(),
            "sample_generator": self.sample_generator.get_state(),
            "update_generator": self.update_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round = int(state["round"])
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.obs_normalizer.load_state_dict(state["obs_normalizer"])
        self.return_normalizer.load_state_dict(state["return_normalizer"])
        self.sample_generator.set_state(state["sample_generator"])
        self.update_generator.set_state(state["update_generator"])


class RoundPlay:
    """One trainer's share of a round in play: acting for its envs (0..n-1) as their steps come
    back, and keeping what the update needs. `submit(env, action)` starts an env's next step
    (the trainer's pool, or its slice of an A/B run's pool)."""

    def __init__(
        self,
        trainer: VectorizedTrainer,
        submit: Callable[[int, FactoredAction], None],
        timing: defaultdict[str, float],
    ) -> None:
        self.trainer, self.submit, self.timing = trainer, submit, timing
        self.specs = trainer.pool.feature_specs
        self.n, self.steps = trainer.pool.n_envs, trainer.config.resolved_episode_length()
        self.initial = trainer.network.initial_state(self.n)
        self.states = [
            (self.initial[0][:, i : i + 1], self.initial[1][:, i : i + 1]) for i in range(self.n)
        ]
        self.generators = [
            torch.Generator().manual_seed(int(seed))
            for seed in torch.randint(2**62, (self.n,), generator=trainer.sample_generator)
        ]
        self.buffer: RolloutBuffer | None = None
        self.done = [0] * self.n  # steps come back, per env
        self.returns = [0.0] * self.n
        self.outcomes: list[EpisodeOutcome | None] = [None] * self.n
        self.ops: Counter[str] = Counter()
        self.compiled = 0
        self.seconds = [0.0] * self.n
        self.telemetry = _InOrder(self.n, trainer._emit_step)

    def steps_left(self) -> int:
        return self.n * self.steps - sum(self.done)

    def act(self, env: int, observation: Observation) -> None:
        trainer = self.trainer
        started = time.perf_counter()
        raw, inputs, masks = network_input(
            [observation],
            [trainer.views[env]],
            trainer.obs_normalizer,
            trainer.padding,
            trainer.config.action_space,
        )
        if self.buffer is None:
            shapes = {k: tuple(v.shape[1:]) for k, v in masks.items()}
            self.buffer = RolloutBuffer.allocate(
                self.steps, self.n, inputs, raw, shapes, self.initial
            )
        actions, log_probs, values_norm, self.states[env] = trainer.network.act(
            inputs, masks, self.states[env], generator=self.generators[env]
        )
        self.buffer.store(
            self.done[env],
            env=slice(env, env + 1),
            inputs=inputs,
            raw=raw,
            masks=masks,
            actions=actions,
            log_probs=log_probs,
            values=trainer._denormalize(values_norm),
        )
        chosen = decode(self.specs[env], actions[0].numpy())
        self.ops[chosen.op.name] += 1
        self.timing["policy_forward"] += time.perf_counter() - started
        self.submit(env, chosen)

    def record(self, env: int, result: StepResult) -> None:
        """Env `env`'s step came back: act for its next one first (its worker gets it at once),
        then keep the step."""
        t = self.done[env]
        self.done[env] += 1
        if self.done[env] < self.steps:
            self.act(env, result.observation)
        assert self.buffer is not None
        self.buffer.record_outcome(t, result.reward, float(result.terminated), env=env)
        self.returns[env] += result.reward
        for phase, spent in result.timing.items():
            self.timing[phase] += spent
        self.seconds[env] += sum(result.timing.values())
        self.compiled += result.compiled_graphs
        if result.outcome is not None:
            self.outcomes[env] = result.outcome
        self.telemetry.add(env, result)

    def finished(self) -> Collected:
        buffer = self.buffer
        assert buffer is not None and all(o is not None for o in self.outcomes)
        if not bool(buffer.dones[-1].all()):
            raise RuntimeError("every env must terminate on the episode's last step")
        finals = [
            replace(o, episode_return=r)
            for o, r in zip(self.outcomes, self.returns, strict=True)
            if o is not None
        ]
        return Collected(buffer, self.returns, finals, self.ops, self.compiled, self.seconds)


class _InOrder:
    """Hands on step results in (step, env) order, whatever order they come in: the log of a
    round is the same for every backend and timing. What is held is the results of envs ahead
    of the slowest one (at most a round's worth, where one worker is much slower)."""

    def __init__(self, n_envs: int, emit: Callable[[int, StepResult], None]) -> None:
        self.n_envs, self.emit = n_envs, emit
        self.held: list[deque[StepResult]] = [deque() for _ in range(n_envs)]
        self.next_env = 0  # whose result is due next, in the step being handed on

    def add(self, env: int, result: StepResult) -> None:
        self.held[env].append(result)
        while self.held[self.next_env]:
            self.emit(self.next_env, self.held[self.next_env].popleft())
            self.next_env = (self.next_env + 1) % self.n_envs


__all__ = ["TRAINING_SEED_LIMIT", "RoundSummary", "VectorizedTrainer"]
