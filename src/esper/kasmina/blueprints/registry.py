"""The blueprint registry: seed modules keyed by (layer family, name) (`kasmina/families.py`).

Every blueprint builds a residual module s = x + f(x) whose last layer is zero-initialised, so a
freshly germinated seed is exactly the identity and never changes the host's function
(docs/architecture.md §4 "Blueprints"). Each also reports its exact parameter count for a width,
analytically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from esper.kasmina.families import FAMILIES, get_family

FAMILY_NAMES = tuple(FAMILIES)


@dataclass(frozen=True)
class Blueprint:
    family: str  # one of FAMILY_NAMES
    name: str  # e.g. "conv_light"
    build: Callable[[int], nn.Module]  # width -> seed module, the identity at birth
    param_count: Callable[[int], int]  # width -> exact parameter count, without building
    description: str


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
