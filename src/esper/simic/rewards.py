"""Rewards: pure functions of (before, action, after, config) returning named terms.

Units: one reward unit is one percentage point of validation accuracy held for a whole episode,
so per-step accuracy terms are divided by the episode length T. Terms:
- `attribution` (shaped, basic): sum over live seeds (fossils too) with alpha > 0 of their measured
  counterfactual contribution (pp) / T — accuracy the seeds demonstrably cause;
- `pbrs` (shaped, simplified): potential-based stage shaping w * (gamma * Phi(s') - Phi(s)),
  Phi summed over slots (Ng, Harada & Russell, 1999), 0 at the terminal state; a pruned seed
  loses its potential;
- `rent`: - w * 10 * log(1 + seed params / max(host params, floor)) / T per step, so growing by
  the host's own size costs ~3.5 pp-episodes at w = 0.5;
- `shock` (shaped): - w * sum over slots of (alpha change)^2 * log(1 + seed share), for sudden
  blending of big seeds;
- `action_cost` (simplified): a small fixed cost for every op but WAIT;
- `young_prune` (minimal): a penalty for pruning a seed younger than `young_prune_age`;
- `rollback`: a governor rollback during the step is charged here;
- `terminal` (all modes, last step only): final validation accuracy (pp) x weight.
The sum of the named terms is the reward; every term is logged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from esper.leyline import LIVE_STAGES, FactoredAction, Op, SlotReport, Stage


class RewardMode(StrEnum):
    SHAPED = "shaped"
    SIMPLIFIED = "simplified"
    SPARSE = "sparse"
    MINIMAL = "minimal"
    BASIC = "basic"


DEFAULT_POTENTIALS: dict[Stage, float] = {
    Stage.DORMANT: 0.0,
    Stage.GERMINATED: 1.0,
    Stage.TRAINING: 2.0,
    Stage.BLENDING: 3.5,
    Stage.HOLDING: 5.5,
    Stage.FOSSILIZED: 6.0,
    Stage.PRUNED: 0.0,
    Stage.EMBARGOED: 0.0,
}


@dataclass(frozen=True)
class RewardConfig:
    mode: RewardMode = RewardMode.SHAPED
    gamma: float = 0.995  # must equal PPO's gamma (the trainer's config enforces it)
    pbrs_weight: float = 0.3
    contribution_weight: float = 1.0
    rent_weight: float = 0.5
    shock_weight: float = 1.0
    action_cost: float = 0.05
    young_prune_penalty: float = 1.0
    young_prune_age: int = 10  # above min_prune_age, or the penalty could never fire
    rollback_penalty: float = 5.0
    terminal_weight: float = 1.0
    host_param_floor: int = 200
    potentials: dict[Stage, float] = field(default_factory=lambda: dict(DEFAULT_POTENTIALS))
    # Parameter prices drawn per episode (`for_episode`); empty: `rent_weight` always. The price
    # is in the observation (esper.tamiyo.features), so one controller can serve several.
    rent_weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        bad = [w for w in (self.rent_weight, *self.rent_weights) if not math.isfinite(w) or w < 0]
        if bad:
            raise ValueError(f"rent weights must be finite and >= 0, got {bad[0]!r}")

    def for_episode(self, seed: int) -> RewardConfig:
        """The rewards of the episode played on env seed `seed`: with several `rent_weights`,
        the price `rent_weights[seed % len(rent_weights)]` (consecutive seeds cycle through the
        prices, so a block of held-out seeds covers each about equally); else unchanged."""
        if not self.rent_weights:
            return self
        price = self.rent_weights[seed % len(self.rent_weights)]
        return replace(self, rent_weight=price, rent_weights=())


@dataclass(frozen=True)
class StepState:
    """What rewards may know of a state: validation only, never test."""

    epoch: int
    episode_length: int
    val_accuracy: float
    host_params: int
    reports: Mapping[str, SlotReport]

    @property
    def seed_params(self) -> int:
        """Parameters of seeds that exist (a pruned seed stops paying rent at once)."""
        return sum(r.seed_params for r in self.reports.values() if r.stage in LIVE_STAGES)


@dataclass(frozen=True)
class RewardBreakdown:
    terms: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.terms.values())


def potential(state: StepState, config: RewardConfig) -> float:
    return sum(config.potentials[r.stage] for r in state.reports.values())


def _log_share(params: int, state: StepState, config: RewardConfig) -> float:
    return math.log1p(params / max(state.host_params, config.host_param_floor))


def attribution(after: StepState) -> float:
    live = [
        r.contribution
        for r in after.reports.values()
        if r.stage in LIVE_STAGES and r.alpha > 0 and r.contribution is not None
    ]
    return sum(live) / after.episode_length


def rent(after: StepState, config: RewardConfig) -> float:
    return (
        -config.rent_weight
        * 10
        * _log_share(after.seed_params, after, config)
        / after.episode_length
    )


def shock(before: StepState, after: StepState, config: RewardConfig) -> float:
    total = 0.0
    for slot_id, r in after.reports.items():
        previous = before.reports[slot_id].alpha if slot_id in before.reports else 0.0
        total += (r.alpha - previous) ** 2 * _log_share(r.seed_params, after, config)
    return -config.shock_weight * total


def pbrs(before: StepState, after: StepState, config: RewardConfig, is_terminal: bool) -> float:
    """w * (gamma * Phi(s') - Phi(s)), with Phi = 0 at the terminal state: summed over an
    episode it telescopes to -w * Phi(s_0), so it moves credit earlier but cannot change which
    policy is optimal (Ng et al., 1999). Without the terminal convention a fossilized seed
    would keep paying its potential as a bonus at the end of every episode."""
    after_potential = 0.0 if is_terminal else potential(after, config)
    return config.pbrs_weight * (config.gamma * after_potential - potential(before, config))


def compute_reward(
    before: StepState,
    action: FactoredAction,
    after: StepState,
    config: RewardConfig,
    *,
    is_terminal: bool,
    rolled_back: bool = False,
) -> RewardBreakdown:
    """The reward for the step that took `before` to `after` through `action`."""
    mode = config.mode
    terms: dict[str, float] = {}
    if mode in (RewardMode.SHAPED, RewardMode.BASIC):
        terms["attribution"] = config.contribution_weight * attribution(after)
    if mode in (RewardMode.SHAPED, RewardMode.SIMPLIFIED):
        terms["pbrs"] = pbrs(before, after, config, is_terminal)
    if mode == RewardMode.SHAPED:
        terms["shock"] = shock(before, after, config)
    if mode == RewardMode.SIMPLIFIED:
        terms["action_cost"] = -config.action_cost if action.op != Op.WAIT else 0.0
    if mode == RewardMode.MINIMAL:
        young = (
            action.op == Op.PRUNE
            and action.slot is not None
            and before.reports[action.slot].seed_age < config.young_prune_age
        )
        terms["young_prune"] = -config.young_prune_penalty if young else 0.0
    if mode in (RewardMode.SHAPED, RewardMode.BASIC):
        terms["rent"] = rent(after, config)
    elif mode in (RewardMode.SPARSE, RewardMode.MINIMAL) and is_terminal:
        terms["rent"] = rent(after, config) * after.episode_length  # the episode's rent, once
    terms["rollback"] = -config.rollback_penalty if rolled_back else 0.0
    terms["terminal"] = config.terminal_weight * after.val_accuracy if is_terminal else 0.0
    return RewardBreakdown(terms)
