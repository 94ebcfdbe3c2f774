"""The blueprint registry: seed modules keyed by (layer family, name) (`kasmina/families.py`).

Every blueprint builds a residual module s = x + f(x) whose last layer is zero-initialised, so a
freshly germinated seed is exactly the identity and never changes the host's function
(docs/architecture.md §4 "Blueprints"). Each also reports its exact parameter count for a width,
analytically.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from torch import nn

from esper.kasmina.families import FAMILIES, get_family

FAMILY_NAMES = tuple(FAMILIES)


@dataclass(frozen=True)
class Traits:
    """What a seed does, in terms that mean the same in every layer family: a learned
    controller reads them (with the seed's parameter share at a slot) instead of the seed's
    name, so it can choose among blueprints of a host it was not trained on
    (`esper.tamiyo.slot_view`). A blueprint registered without traits reads as a seed that
    mixes nothing, which is only true of the identity: say what yours does.

    Attributes:
        normalizes: it renormalizes its input (a norm layer, or a pre-norm block).
        mixes_channels: it mixes features across channels (a linear map over C, full or
            low-rank, or a channel gate).
        context: how many positions further it sees along each spatial or sequence axis (a
            3-wide kernel: 2; two of them: 4; `math.inf`: the whole input, as attention or a
            squeeze-excite gate does; 0 for a dense activation, which has no positions).
        depth: the nonlinear layers it stacks (0: linear in its input, as a low-rank update).
    """

    normalizes: bool = False
    mixes_channels: bool = False
    context: float = 0.0
    depth: int = 0

    def __post_init__(self) -> None:
        if not (self.context >= 0 and self.depth >= 0):
            raise ValueError(f"traits need context >= 0 and depth >= 0, got {self}")


GLOBAL_CONTEXT = math.inf


@dataclass(frozen=True)
class Blueprint:
    family: str  # one of FAMILY_NAMES
    name: str  # e.g. "conv_light"
    build: Callable[[int], nn.Module]  # width -> seed module, the identity at birth
    param_count: Callable[[int], int]  # width -> exact parameter count, without building
    description: str
    traits: Traits = field(default_factory=Traits)


_BLUEPRINTS: dict[tuple[str, str], Blueprint] = {}  # insertion order is registration order


def check_width(width: int, seed: str) -> None:
    """Raise early for a width no blueprint can be built for.

    Raises:
        ValueError: if width < 1.
    """
    if width < 1:
        raise ValueError(f"{seed} needs width >= 1, got width {width}")


def register(bp: Blueprint) -> Blueprint:
    """Add a blueprint to the registry and return it.

    Raises:
        ValueError: if the family is unknown or (family, name) is already registered.
    """
    get_family(bp.family)
    if (bp.family, bp.name) in _BLUEPRINTS:
        raise ValueError(f"blueprint ({bp.family!r}, {bp.name!r}) is already registered")
    _BLUEPRINTS[bp.family, bp.name] = bp
    return bp


def blueprint_names(family: str) -> tuple[str, ...]:
    """Names registered for a family, in registration order.

    Raises:
        ValueError: if the family is unknown.
    """
    get_family(family)
    return tuple(name for (fam, name) in _BLUEPRINTS if fam == family)


def names_across(families: Iterable[str]) -> tuple[str, ...]:
    """The blueprint names of any of `families`, each once, in registration order (a host whose
    slots are of several families offers them all; each slot plants only its family's)."""
    wanted = {get_family(f).name for f in families}
    return tuple(dict.fromkeys(name for (fam, name) in _BLUEPRINTS if fam in wanted))


def get_blueprint(family: str, name: str) -> Blueprint:
    """Look up one blueprint; an unknown name is an error, never a silent no-op.

    Raises:
        ValueError: naming the bad family or name and the known ones.
    """
    known = blueprint_names(family)
    if name not in known:
        raise ValueError(
            f"unknown {family} blueprint {name!r}; known: {', '.join(known) or '(none)'}"
        )
    return _BLUEPRINTS[family, name]
