"""The one controller protocol shared by the static, random, heuristic and learned controllers.

`act` takes the observations of all envs at a step and returns one action per env (the learned
policy also returns log-probabilities, values and its recurrent state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from esper.leyline import ALPHA_TARGETS, HEADS_USED, BlendOp, Curve, FactoredAction, Head, Op, Tempo
from esper.tamiyo.features import Observation
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


# The heuristic's first choices: blueprints with real capacity before the near-no-ops (a `norm`
# seed at a 2-channel slot has 6 parameters and cannot change much).
PREFERRED_ORDER: dict[str, tuple[str, ...]] = {
    "cnn": (
        "conv_light",
        "attention",
        "depthwise",
        "conv_heavy",
        "bottleneck",
        "conv_small",
        "norm",
    ),
    "transformer": ("mlp_small", "lora", "attention", "mlp", "lora_large", "norm"),
}


class HeuristicPolicy:
    """One rule-based `HeuristicController` per env."""

    name = "heuristic"

    def __init__(
        self, blueprints: Sequence[str], config: HeuristicConfig = HeuristicConfig()
    ) -> None:
        self.blueprints = tuple(blueprints)
        if config.blueprint_order is None:
            preferred = next(
                (o for o in PREFERRED_ORDER.values() if set(o) == set(self.blueprints)), None
            )
            config = replace(config, blueprint_order=preferred)
        self.config = config

    def initial_state(self, n_envs: int) -> list[HeuristicController]:
        return [HeuristicController(self.blueprints, self.config) for _ in range(n_envs)]

    def act(
        self, observations: Sequence[Observation], state: list[HeuristicController]
    ) -> PolicyStep:
        actions = [c.decide(o.metrics, o.reports) for c, o in zip(state, observations, strict=True)]
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
            choices["blueprint"] = self.blueprints[self._pick(m.blueprint)]
        if Head.BLEND in used:
            choices["blend"] = list(BlendOp)[self._pick(m.blend)]
        if Head.TEMPO in used:
            choices["tempo"] = list(Tempo)[self._pick(m.tempo[op])]
        if Head.ALPHA_TARGET in used:
            choices["alpha_target"] = ALPHA_TARGETS[self._pick(m.alpha_target[op, slot])]
        if Head.CURVE in used:
            choices["curve"] = list(Curve)[self._pick(m.curve)]
        return FactoredAction(op, **choices)

    def act(self, observations: Sequence[Observation], state: Any) -> PolicyStep:
        return PolicyStep([self._sample(o) for o in observations], state)
