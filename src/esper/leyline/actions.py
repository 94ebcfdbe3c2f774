"""Ops, the factored action heads, and the heuristic's flat action names.

The learned controller samples a factored action head by head (op, then slot given the op, then
the heads that op uses). The heuristic speaks flat names (`WAIT`, `GERMINATE_<BLUEPRINT>`,
`ADVANCE`, `FOSSILIZE`, `PRUNE`); `flat_to_factored` converts them and raises on anything unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Op(IntEnum):
    WAIT = 0
    GERMINATE = 1
    ADVANCE = 2
    SET_ALPHA_TARGET = 3
    FOSSILIZE = 4
    PRUNE = 5


class BlendOp(IntEnum):
    """How a seed's residual change d = seed(x) - x enters the host activation h."""

    ADD = 0  # h + a*d
    MULTIPLY = 1  # h * (1 + a*tanh(d))
    GATE = 2  # h + a*g(x)*d, g a learned per-sample gate in (0, 1)


class Tempo(IntEnum):
    """Length of an alpha ramp, in epochs (the enum value is the number of epochs)."""

    INSTANT = 0
    FAST = 3
    STANDARD = 5
    SLOW = 8


class Curve(IntEnum):
    LINEAR = 0
    COSINE = 1
    SIGMOID = 2


ALPHA_TARGETS: tuple[float, ...] = (0.5, 0.7, 1.0)


class Head(StrEnum):
    OP = "op"
    SLOT = "slot"
    BLUEPRINT = "blueprint"
    BLEND = "blend"
    TEMPO = "tempo"
    ALPHA_TARGET = "alpha_target"
    CURVE = "curve"


# Sampling order of the heads; later heads are conditioned on earlier ones.
HEAD_ORDER: tuple[Head, ...] = tuple(Head)

# Which heads each op uses (beyond `op` itself). Unused heads are ignored: not sampled into the
# joint log-probability, not entropy-regularised.
HEADS_USED: dict[Op, tuple[Head, ...]] = {
    Op.WAIT: (),
    Op.GERMINATE: (
        Head.SLOT,
        Head.BLUEPRINT,
        Head.BLEND,
        Head.TEMPO,
        Head.ALPHA_TARGET,
        Head.CURVE,
    ),
    Op.ADVANCE: (Head.SLOT,),
    Op.SET_ALPHA_TARGET: (Head.SLOT, Head.TEMPO, Head.ALPHA_TARGET, Head.CURVE),
    Op.FOSSILIZE: (Head.SLOT,),
    Op.PRUNE: (Head.SLOT, Head.TEMPO, Head.CURVE),
}

# Fixed choices of the heads whose size does not depend on the host (slot and blueprint do).
FIXED_HEAD_CHOICES: dict[Head, tuple[object, ...]] = {
    Head.OP: tuple(Op),
    Head.BLEND: tuple(BlendOp),
    Head.TEMPO: tuple(Tempo),
    Head.ALPHA_TARGET: ALPHA_TARGETS,
    Head.CURVE: tuple(Curve),
}


@dataclass(frozen=True)
class FactoredAction:
    """One controller decision. Fields of heads the op does not use must be None."""

    op: Op
    slot: str | None = None
    blueprint: str | None = None
    blend: BlendOp | None = None
    tempo: Tempo | None = None
    alpha_target: float | None = None
    curve: Curve | None = None

    def __post_init__(self) -> None:
        used = HEADS_USED[self.op]
        for head in HEAD_ORDER[1:]:
            value = getattr(self, head.value)
            if head in used and value is None:
                raise ValueError(f"{self.op.name} needs head '{head.value}', got None")
            if head not in used and value is not None:
                raise ValueError(
                    f"{self.op.name} does not use head '{head.value}', got {value!r}; "
                    f"it uses {[h.value for h in used]}"
                )
        if self.alpha_target is not None and self.alpha_target not in ALPHA_TARGETS:
            raise ValueError(
                f"alpha_target must be one of {ALPHA_TARGETS}, got {self.alpha_target}"
            )

    @staticmethod
    def wait() -> FactoredAction:
        return FactoredAction(Op.WAIT)

    @staticmethod
    def germinate(
        slot: str,
        blueprint: str,
        blend: BlendOp = BlendOp.ADD,
        tempo: Tempo = Tempo.STANDARD,
        alpha_target: float = 1.0,
        curve: Curve = Curve.LINEAR,
    ) -> FactoredAction:
        """GERMINATE with every head given (defaults: docs/architecture.md §11)."""
        return FactoredAction(
            Op.GERMINATE,
            slot=slot,
            blueprint=blueprint,
            blend=blend,
            tempo=tempo,
            alpha_target=alpha_target,
            curve=curve,
        )


# Defaults the heuristic uses for the heads it does not speak.
HEURISTIC_BLEND = BlendOp.ADD
HEURISTIC_TEMPO = Tempo.FAST  # short episodes: 3 epochs of ramp leave time to judge the seed
HEURISTIC_ALPHA_TARGET = 1.0
HEURISTIC_CURVE = Curve.LINEAR

FLAT_SIMPLE_OPS = ("WAIT", "ADVANCE", "FOSSILIZE", "PRUNE")
GERMINATE_PREFIX = "GERMINATE_"


def flat_action_names(blueprints: Sequence[str]) -> list[str]:
    """All flat action names for a host with these blueprints."""
    return ["WAIT", *(GERMINATE_PREFIX + b.upper() for b in blueprints), *FLAT_SIMPLE_OPS[1:]]


def flat_to_factored(name: str, slot: str | None, blueprints: Sequence[str]) -> FactoredAction:
    """Convert a heuristic's flat action into a factored one.

    Args:
        name: `WAIT`, `GERMINATE_<BLUEPRINT>`, `ADVANCE`, `FOSSILIZE` or `PRUNE`.
        slot: the target slot id (ignored for WAIT, required otherwise).
        blueprints: the blueprint names of the host's slots.

    Raises:
        ValueError: on an unknown action name or blueprint, or a missing slot.
    """
    if name == "WAIT":
        return FactoredAction.wait()
    if slot is None:
        raise ValueError(f"flat action {name!r} needs a slot")
    if name.startswith(GERMINATE_PREFIX):
        wanted = name[len(GERMINATE_PREFIX) :].lower()
        if wanted not in blueprints:
            raise ValueError(
                f"unknown blueprint in flat action {name!r}; known: {sorted(blueprints)}"
            )
        return FactoredAction.germinate(
            slot,
            wanted,
            blend=HEURISTIC_BLEND,
            tempo=HEURISTIC_TEMPO,
            alpha_target=HEURISTIC_ALPHA_TARGET,
            curve=HEURISTIC_CURVE,
        )
    if name == "ADVANCE":
        return FactoredAction(Op.ADVANCE, slot=slot)
    if name == "FOSSILIZE":
        return FactoredAction(Op.FOSSILIZE, slot=slot)
    if name == "PRUNE":
        return FactoredAction(Op.PRUNE, slot=slot, tempo=Tempo.INSTANT, curve=HEURISTIC_CURVE)
    raise ValueError(f"unknown flat action {name!r}; known: {flat_action_names(blueprints)}")
