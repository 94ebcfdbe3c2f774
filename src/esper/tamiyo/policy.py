"""The one controller protocol shared by the static, plan, random, heuristic and learned
controllers.

`act` takes the observations of all envs at a step and returns one action per env (the learned
policy also returns log-probabilities, values and its recurrent state).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from esper.leyline import ALPHA_TARGETS, HEADS_USED, BlendOp, Curve, FactoredAction, Head, Op, Tempo
from esper.tamiyo.features import PLANTING, Observation
from esper.tamiyo.heuristic import HeuristicConfig, HeuristicController


@dataclass(frozen=True)
class PolicyStep:
    actions: list[FactoredAction]
    state: Any
    log_probs: np.ndarray | None = None  # (n_envs,) joint log-probability of each action
    values: np.ndarray | None = None  # (n_envs,) V(s)


class Policy(Protocol):
    name: str

    def initial_state(self, n_envs: int) -> Any:
        """Per-env controller state at the start of an episode (e.g. LSTM hidden state)."""
        ...

    def act(self, observations: Sequence[Observation], state: Any) -> PolicyStep: ...


class StaticPolicy:
    """Never grows anything: the host alone."""

    name = "static"

    def initial_state(self, n_envs: int) -> None:
        return None

    def act(self, observations: Sequence[Observation], state: Any) -> PolicyStep:
        return PolicyStep([FactoredAction.wait() for _ in observations], state)


class PlanPolicy:
    """A scripted controller: plants a fixed list of (slot, blueprint) seeds and takes each through
    its lifecycle as early as the observation's masks allow.

    Each step it goes through the plan in order and takes the first action the masks allow: a
    GERMINATE of a seed not yet planted (as `PLANTING` says: ADD, FAST, alpha 1, linear), else an
    ADVANCE or a FOSSILIZE of a planted one; otherwise WAIT. It never prunes, and never replants a
    slot whose seed was lost (e.g. to a governor rollback); a seed that does not fit the
    parameter budget when its turn comes is skipped. Being scripted, its trajectory through
    the stages does not depend on how training went, which makes it the controller for testing
    lifecycle mechanics and for mapping what fixed growth plans can buy
    (`benchmarks/fixed_plans.py`).

    Args:
        plan: (slot id, blueprint) pairs, at most one per slot.

    Raises:
        ValueError: if the plan names a slot twice.
    """

    def __init__(self, plan: Sequence[tuple[str, str]]) -> None:
        self.plan = tuple(plan)
        slots = [slot for slot, _ in self.plan]
        if len(set(slots)) != len(slots):
            raise ValueError(f"plan {self.plan} names a slot twice")
        self.name = "+".join(f"{bp}@{slot}" for slot, bp in self.plan) or "none"

    @classmethod
    def parse(
        cls,
        text: str,
        slots: Sequence[str],
        blueprints: Sequence[str],
        offered: Mapping[str, Sequence[str]] | None = None,
    ) -> list[tuple[str, str]]:
        """The plan "BLUEPRINT@SLOT+BLUEPRINT@SLOT" ("none": no seed) as (slot, blueprint) pairs.
        `offered`: per slot, the blueprints it can plant (a host of several layer families);
        None: every slot all of `blueprints`.

        Raises:
            ValueError: a part that is not BLUEPRINT@SLOT with a known blueprint and slot, a
                blueprint the slot cannot plant, or a slot named twice.
        """
        if text.strip() == "none":
            return []
        plan = []
        for part in text.split("+"):
            blueprint, _, slot = part.strip().partition("@")
            if blueprint not in blueprints or slot not in slots:
                raise ValueError(
                    f"plan part {part!r}: expected BLUEPRINT@SLOT with a blueprint in "
                    f"{list(blueprints)} and a slot in {list(slots)}"
                )
            if offered is not None and blueprint not in offered[slot]:
                raise ValueError(
                    f"plan part {part!r}: slot {slot} plants only {', '.join(offered[slot])} "
                    "(its layer family's blueprints)"
                )
            plan.append((slot, blueprint))
        if len({slot for slot, _ in plan}) != len(plan):
            raise ValueError(f"plan {text!r} names a slot twice")
        return plan

    def initial_state(self, n_envs: int) -> list[set[str]]:
        return [set() for _ in range(n_envs)]  # per env: the slots planted so far

    def _action(self, obs: Observation, planted: set[str]) -> FactoredAction:
        for slot, blueprint in self.plan:
            if slot not in planted and obs.masks.allows(Op.GERMINATE, slot):
                planted.add(slot)
                if not obs.masks.allows_planting(slot, blueprint, PLANTING.blend):
                    continue  # over the parameter budget: this step of the plan is skipped
                return FactoredAction.germinate(
                    slot,
                    blueprint,
                    PLANTING.blend,
                    PLANTING.tempo,
                    PLANTING.alpha_target,
                    PLANTING.curve,
                )
            for op in (Op.ADVANCE, Op.FOSSILIZE):
                if slot in planted and obs.masks.allows(op, slot):
                    return FactoredAction(op, slot=slot)
        return FactoredAction.wait()

    def act(self, observations: Sequence[Observation], state: list[set[str]]) -> PolicyStep:
        actions = [self._action(o, p) for o, p in zip(observations, state, strict=True)]
        return PolicyStep(actions, state)


# The heuristic's first choices, one ranking over every layer family's built-in blueprints:
# those with real capacity before the near-no-ops (a `norm` seed at a 2-channel slot has 6
# parameters and cannot change much). Each family's order is the ranking's subsequence of its
# names: cnn and conv1d conv_light, attention, depthwise, conv_heavy, bottleneck, conv_small,
# norm; transformer mlp_small, lora, attention, mlp, lora_large, norm; dense the same less
# attention.
PREFERRED_ORDER = (
    "conv_light",
    "mlp_small",
    "lora",
    "attention",
    "depthwise",
    "mlp",
    "conv_heavy",
    "lora_large",
    "bottleneck",
    "conv_small",
    "norm",
)


def preferred_order(blueprints: Sequence[str]) -> tuple[str, ...]:
    """`blueprints` in the heuristic's ranking, then any others (a user's own) as given."""
    ranked = [name for name in PREFERRED_ORDER if name in blueprints]
    return (*ranked, *(name for name in blueprints if name not in PREFERRED_ORDER))


class HeuristicPolicy:
    """One rule-based `HeuristicController` per env."""

    name = "heuristic"

    def __init__(
        self, blueprints: Sequence[str], config: HeuristicConfig = HeuristicConfig()
    ) -> None:
        self.blueprints = tuple(blueprints)
        if config.blueprint_order is None:
            config = replace(config, blueprint_order=preferred_order(self.blueprints))
        self.config = config

    def initial_state(self, n_envs: int) -> list[HeuristicController]:
        return [HeuristicController(self.blueprints, self.config) for _ in range(n_envs)]

    def act(
        self, observations: Sequence[Observation], state: list[HeuristicController]
    ) -> PolicyStep:
        actions = [c.decide(o) for c, o in zip(state, observations, strict=True)]
        return PolicyStep(actions, state)


class RandomPolicy:
    """Uniform over legal choices, head by head (op, then slot given op, then the rest)."""

    name = "random"

    def __init__(self, slot_ids: Sequence[str], blueprints: Sequence[str], seed: int = 0) -> None:
        self.slot_ids, self.blueprints = tuple(slot_ids), tuple(blueprints)
        self.rng = np.random.default_rng(seed)

    def initial_state(self, n_envs: int) -> None:
        return None

    def _pick(self, mask: np.ndarray) -> int:
        return int(self.rng.choice(np.flatnonzero(mask)))

    def _sample(self, obs: Observation) -> FactoredAction:
        m = obs.masks
        op = Op(self._pick(m.op))
        if op == Op.WAIT:
            return FactoredAction.wait()
        slot = self._pick(m.slot[op])
        used = HEADS_USED[op]
        choices: dict[str, Any] = {"slot": self.slot_ids[slot]}
        if Head.BLUEPRINT in used:
            choices["blueprint"] = self.blueprints[self._pick(m.blueprint[slot])]
        if Head.BLEND in used:
            choices["blend"] = list(BlendOp)[self._pick(m.blend[slot])]
        if Head.TEMPO in used:
            choices["tempo"] = list(Tempo)[self._pick(m.tempo[op])]
        if Head.ALPHA_TARGET in used:
            choices["alpha_target"] = ALPHA_TARGETS[self._pick(m.alpha_target[op, slot])]
        if Head.CURVE in used:
            choices["curve"] = list(Curve)[self._pick(m.curve)]
        return FactoredAction(op, **choices)

    def act(self, observations: Sequence[Observation], state: Any) -> PolicyStep:
        return PolicyStep([self._sample(o) for o in observations], state)
