"""MorphogeneticEnv: one env's host episode as a `gymnasium.Env` (docs/architecture.md §5, §2).

`reset(seed=...)` builds a fresh host and evaluates it; each `step(action)` executes the action,
ticks the epoch boundary, trains one epoch, evaluates on validation (with counterfactuals) and
returns the reward of that step. An episode is `episode_length` steps (= host epochs); the last
one terminates (a true terminal: there is nothing to bootstrap). Observations are the analytic
features (a `Box`); `info["action_mask"]` holds the masks, `info["observation"]` the full
`Observation` (raw records for the heuristic), `info["reward_terms"]` the reward's named terms
(at the episode's parameter price: `RewardConfig.for_episode(seed)`, also in the observation),
`info["events"]` the step's telemetry payloads (lifecycle changes, a governor rollback, the
epoch and its reward terms, in that order), and on the last step `info["outcome"]` the
`EpisodeOutcome` (test accuracy: telemetry only).

An env holds no telemetry hub, file or console: its events are records returned with the step,
and whoever runs it (a pool, a worker process, an evaluation) wraps them with the run, env and
round they belong to. Wall times are not in `info` (gymnasium asks it to be deterministic):
`timed_step` returns them beside the step.
`action_masks()` gives the same masks as one flat vector, for mask-aware agents that mask each
head of the `MultiDiscrete` action independently (e.g. sb3-contrib's MaskablePPO).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import gymnasium as gym
import numpy as np

from esper.kasmina import blueprint_names
from esper.leyline import (
    BlendOp,
    EpisodeOutcome,
    EpochEvent,
    EpochMetrics,
    FactoredAction,
    IllegalActionError,
    Initiator,
    LifecycleEvent,
    RewardEvent,
    RollbackEvent,
    SlotReport,
    Stage,
    budget_left,
)
from esper.simic.rewards import RewardConfig, StepState, compute_reward
from esper.tamiyo.action_codec import decode
from esper.tamiyo.features import (
    FEATURE_CLIP,
    ActionMasks,
    FeatureSpec,
    Observation,
    build_features,
    build_masks,
    flat_mask,
)
from esper.tamiyo.tracker import SignalTracker
from esper.tolaria import DataOptions, EpochResult, HostSession, SessionOptions, Task, get_task
from esper.tolaria.data import DataSplits
from esper.tolaria.grouped import Trained


@dataclass(frozen=True)
class EnvConfig:
    episode_length: int | None = None  # host epochs per episode; None: the task's
    reward: RewardConfig = field(default_factory=RewardConfig)
    session: SessionOptions = field(default_factory=SessionOptions)
    # "wait": an illegal action is replaced by WAIT and reported in info["illegal_action"]. The
    # default, because a gymnasium agent may ignore masks (gymnasium's checker samples unmasked
    # actions) or mask heads independently (`action_masks`). "raise": an illegal action is a bug;
    # Esper's own trainer and evaluation ask for it (`env_config_for`).
    illegal_action: Literal["raise", "wait"] = "wait"
    # Show the controller what the episode's parameter budget leaves (`FeatureSpec.observe_budget`):
    # set for a run that draws budgets per episode; kept when an evaluation fixes one budget.
    observe_budget: bool = False
    # The task this env plays, by name, where a pool's envs play several (a run trained over
    # tasks, `TrainingConfig.tasks`); None: the pool's one task. The env itself is given its
    # task; pools read this to give it.
    task: str | None = None

    def __post_init__(self) -> None:
        if self.episode_length is not None and self.episode_length < 1:
            raise ValueError(f"episode_length must be >= 1, got {self.episode_length}")
        if self.illegal_action not in ("raise", "wait"):
            raise ValueError(
                f"illegal_action must be 'raise' or 'wait', got {self.illegal_action!r}"
            )


# What one gymnasium step returns: observation, reward, terminated, truncated, info.
GymStep: TypeAlias = tuple[np.ndarray, float, bool, bool, dict[str, Any]]


def describe(action: FactoredAction) -> str:
    parts = [action.op.name, action.slot or "", action.blueprint or ""]
    return " ".join(p for p in parts if p)


class MorphogeneticEnv(gym.Env[np.ndarray, np.ndarray]):
    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium declares it an instance field)

    def __init__(
        self,
        task: Task | str,
        data: DataSplits | None = None,
        config: EnvConfig = EnvConfig(),
    ) -> None:
        """One env on `task`: a `Task`, or its name (a built-in, `package.module:function` or
        `path/to/file.py:function`); `data` defaults to the task's own."""
        if isinstance(task, str):
            task = get_task(task)
        self.task, self.config = task, config
        self.episode_length: int = config.episode_length or task.episode_length
        self.data = data if data is not None else task.load(DataOptions())
        self.session = HostSession(task, self.data, config.session)
        self.session.reset(0)  # builds a model once, to size the spaces
        model = self.session.model
        # What each blueprint adds on each slot: the task's host has the same widths every
        # episode, so once (the masks read it under a parameter budget).
        self._costs = model.germination_costs(model.blueprints)
        slots = [model.slot(s) for s in model.slot_ids]
        self.feature_spec = FeatureSpec(
            slot_ids=tuple(model.slot_ids),
            blueprints=model.blueprints,
            episode_length=self.episode_length,
            chance_loss=self.data.chance_loss,
            host_params=model.host_param_count(),
            observe_budget=config.observe_budget,
            offered=tuple(blueprint_names(slot.family) for slot in slots),
            slot_families=tuple(slot.family for slot in slots),
            slot_widths=tuple(slot.width for slot in slots),
            planting_params=tuple(
                tuple(c if c != sys.maxsize else 0 for c in self._costs[s][BlendOp.ADD])
                for s in model.slot_ids
            ),
        )
        self.observation_space = gym.spaces.Box(
            -FEATURE_CLIP, FEATURE_CLIP, shape=(self.feature_spec.size,), dtype=np.float32
        )
        self.action_space = gym.spaces.MultiDiscrete(list(self.feature_spec.head_sizes.values()))
        self.tracker = SignalTracker()
        self.epoch = 0
        self.episode_seed = 0
        self.pruned = 0  # seeds pruned this episode
        self.reward = config.reward.for_episode(0)  # this episode's rewards (its price)
        self._acted: tuple[FactoredAction, list[LifecycleEvent], bool, float] | None = None
        self._graphs_seen = 0  # the session's compiled graphs already reported by a step

    # -- gymnasium API -------------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.episode_seed = seed if seed is not None else int(self.np_random.integers(2**31 - 1))
        val = self.session.reset(self.episode_seed)
        self.reward = self.config.reward.for_episode(self.episode_seed)
        self.tracker.reset()
        self.epoch = 0
        self._acted = None
        self.pruned = 0
        # Before any training the train-split figures are not measured; validation stands in.
        metrics = self.tracker.update(0, val.loss, val.accuracy, val.loss, val.accuracy)
        self._state = self._step_state(metrics)
        obs = self._observe(metrics)
        return obs.features, {"action_mask": obs.masks.as_dict(), "observation": obs}

    def step(self, action: np.ndarray | FactoredAction) -> GymStep:
        return self.timed_step(action)[0]

    def timed_step(self, action: np.ndarray | FactoredAction) -> tuple[GymStep, dict[str, float]]:
        """`step`, and the seconds it spent per phase: action, host_training, shadow_passes and
        evaluation (`EpochResult.timing`)."""
        self.act(action)
        return self.finish_step()

    def act(self, action: np.ndarray | FactoredAction) -> None:
        """The first half of a step: the action and the epoch boundary, up to host training.
        `finish_step` completes it (`timed_step` is the two in a row; a vmapped pool trains
        several envs' hosts between them)."""
        if self._state.epoch >= self.episode_length:
            raise RuntimeError("episode is over: call reset() first")
        if self._acted is not None:
            raise RuntimeError("act() twice: finish_step() first")
        chosen = action if isinstance(action, FactoredAction) else decode(self.feature_spec, action)
        started = time.perf_counter()
        chosen, events, is_illegal = self._execute(chosen)
        self._acted = (chosen, events, is_illegal, time.perf_counter() - started)

    def abandon_step(self) -> None:
        """Forget a step `act` began (its action stays applied: the episode must be reset)."""
        self._acted = None

    def finish_step(self, trained: Trained | None = None) -> tuple[GymStep, dict[str, float]]:
        """The rest of the step `act` began: this epoch's host training (or the one `trained`
        ran for this env's session), validation, the reward and the observation."""
        if self._acted is None:
            raise RuntimeError("finish_step() without act()")
        (chosen, events, is_illegal, action_s), self._acted = self._acted, None
        result = self.session.train_and_evaluate(trained)
        events += result.events
        self.epoch += 1
        metrics = self._track(result)
        before, after = self._state, self._step_state(metrics)
        terminated = self.epoch >= self.episode_length
        reward = compute_reward(
            before,
            chosen,
            after,
            self.reward,
            is_terminal=terminated,
            rolled_back=result.rollback_reason is not None,
        )
        self._state = after
        self.pruned += sum(e.to_stage == Stage.PRUNED for e in events)
        obs = self._observe(metrics)
        timing = {
            "action": action_s,
            **result.timing,
        }
        info: dict[str, Any] = {
            "illegal_action": is_illegal,
            "action_mask": obs.masks.as_dict(),
            "observation": obs,
            "reward_terms": reward.terms,
            "action": chosen,
            "events": self._events(events, result, metrics, chosen, reward.terms, reward.total),
        }
        if terminated:
            info["outcome"] = self.outcome()  # its test evaluation may compile too
        info["compiled_graphs"] = self.session.compiled_graphs - self._graphs_seen
        self._graphs_seen = self.session.compiled_graphs
        return (obs.features, reward.total, terminated, False, info), timing

    def action_masks(self) -> np.ndarray:
        """The legal choices now, as one flat boolean vector (sum(action_space.nvec),): each
        head's mask in `action_space` order, concatenated (sb3-contrib's MaskablePPO convention).

        A flat vector cannot say that a choice is legal only with another (a slot only for one
        op, INSTANT tempo for PRUNE but not GERMINATE), so per head it is the union of the
        conditional masks in `info["action_mask"]`: a choice is True when some legal op that uses
        the head allows it (on some slot that op may target). A head no legal op uses is all
        True (its value is ignored). Every action these masks exclude is illegal, but not every
        action they allow is legal: a union-legal, conditionally illegal combination (ADVANCE on
        the slot that only GERMINATE may target, or under a parameter budget a blueprint that
        fits another slot but not this one) is handled as `config.illegal_action` says:
        replaced by WAIT with `info["illegal_action"]` True ("wait", the default), or
        `IllegalActionError` ("raise").

        Raises:
            RuntimeError: before the first `reset()`.
        """
        if not hasattr(self, "_state"):
            raise RuntimeError("no episode yet: call reset() first")
        reports = self._state.reports
        return flat_mask(self._masks(reports))

    def _execute(self, action: FactoredAction) -> tuple[FactoredAction, list[LifecycleEvent], bool]:
        """Apply the action and tick the epoch boundary; returns what was actually done."""
        is_illegal = False
        try:
            events = self.session.apply(action)
        except IllegalActionError:
            if self.config.illegal_action == "raise":
                raise
            action, events, is_illegal = FactoredAction.wait(), [], True
        return action, events + self.session.boundary(), is_illegal

    def _track(self, result: EpochResult) -> EpochMetrics:
        train_loss, train_accuracy = result.train.loss, result.train.accuracy
        if result.rollback_reason is not None:
            # This epoch's training figures belong to the discarded weights (maybe NaN); the
            # restored host's validation figures stand in, as at reset.
            train_loss, train_accuracy = result.val.loss, result.val.accuracy
        return self.tracker.update(
            self.epoch, train_loss, train_accuracy, result.val.loss, result.val.accuracy
        )

    # -- internals -----------------------------------------------------------------------------

    def _step_state(self, metrics: EpochMetrics) -> StepState:
        model = self.session.model
        return StepState(
            epoch=metrics.epoch,
            episode_length=self.episode_length,
            val_accuracy=metrics.val_accuracy,
            host_params=model.host_param_count(),
            reports=model.reports(),
        )

    def _masks(self, reports: Mapping[str, SlotReport]) -> ActionMasks:
        return build_masks(self.feature_spec, reports, self.session.model.limits, self._costs)

    def _observe(self, metrics: EpochMetrics) -> Observation:
        reports = self._state.reports
        return Observation(
            features=build_features(
                self.feature_spec,
                metrics,
                reports,
                self.reward.rent_weight,
                budget_left(reports, self.session.model.limits),
            ),
            masks=self._masks(reports),
            metrics=metrics,
            reports=reports,
            epochs_left=self.episode_length - metrics.epoch,
        )

    def outcome(self) -> EpisodeOutcome:
        """The episode's result so far: test accuracy of the current model (telemetry only)."""
        model = self.session.model
        visible = [s for s in model.seed_slots() if s.is_live and s.alpha > 0]
        return EpisodeOutcome(
            test_accuracy=self.session.test_accuracy(),
            val_accuracy=self._state.val_accuracy,
            host_params=model.host_param_count(),
            params_added=sum(s.seed_params for s in visible),
            seeds_fossilized=sum(s.stage == Stage.FOSSILIZED for s in model.seed_slots()),
            seeds_pruned=self.pruned,
            grown=tuple(f"{s.blueprint}@{s.slot_id}" for s in visible),
            rent_weight=self.reward.rent_weight,
            param_budget=model.limits.param_budget,
        )

    def _events(
        self,
        lifecycle: list[LifecycleEvent],
        result: EpochResult,
        metrics: EpochMetrics,
        action: FactoredAction,
        terms: dict[str, float],
        total: float,
    ) -> tuple[Any, ...]:
        """The step's telemetry payloads, in the order a log shows them."""
        records: list[Any] = list(lifecycle)
        if result.rollback_reason is not None:
            pruned = tuple(e.slot_id for e in lifecycle if e.initiator == Initiator.GOVERNOR)
            records.append(RollbackEvent(result.rollback_reason, result.train.loss, pruned))
        reports = self._state.reports
        records.append(
            EpochEvent(
                metrics=metrics,
                stages={s: r.stage.name for s, r in reports.items()},
                alphas={s: r.alpha for s, r in reports.items()},
                action=describe(action),
                reward=total,
                seed_params=self._state.seed_params,
            )
        )
        records.append(RewardEvent(terms, total))
        return tuple(records)


# `gymnasium.make("esper/Grow-v0", task="digits")`, or any task name `get_task` takes
# ("path/to/file.py:function", "package.module:function"), once this module is imported.
ENV_ID = "esper/Grow-v0"
if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point="esper.simic.environment:MorphogeneticEnv")
