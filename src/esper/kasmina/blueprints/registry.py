"""The blueprint registry: seed modules keyed by (topology, name).

Every blueprint builds a residual module s = x + f(x) whose last layer is zero-initialised, so a
freshly germinated seed is exactly the identity and never changes the host's function
(docs/architecture.md §4 "Blueprints"). Each also reports its exact parameter count for a width,
analytically.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

TOPOLOGIES = ("cnn", "transformer")


@dataclass(frozen=True)
class Blueprint:
    topology: str  # one of TOPOLOGIES
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


def _check_topology(topology: str) -> None:
    if topology not in TOPOLOGIES:
        raise ValueError(f"unknown topology {topology!r}; known: {', '.join(TOPOLOGIES)}")


def register(bp: Blueprint) -> Blueprint:
    """Add a blueprint to the registry and return it.

    Raises:
        ValueError: if the topology is unknown or (topology, name) is already registered.
    """
    _check_topology(bp.topology)
    if (bp.topology, bp.name) in _BLUEPRINTS:
        raise ValueError(f"blueprint ({bp.topology!r}, {bp.name!r}) is already registered")
    _BLUEPRINTS[bp.topology, bp.name] = bp
    return bp


def blueprint_names(topology: str) -> tuple[str, ...]:
    """Names registered for a topology, in registration order.

    Raises:
        ValueError: if the topology is unknown.
    """
    _check_topology(topology)
    return tuple(name for (topo, name) in _BLUEPRINTS if topo == topology)


def get_blueprint(topology: str, name: str) -> Blueprint:
    """Look up one blueprint; an unknown name is an error, never a silent no-op.

    Raises:
        ValueError: naming the bad topology or name and the known ones.
    """
    known = blueprint_names(topology)
    if name not in known:
        raise ValueError(
            f"unknown {topology} blueprint {name!r}; known: {', '.join(known) or '(none)'}"
        )
    return _BLUEPRINTS[topology, name]
