"""Seed modules (blueprints) for CNN and transformer hosts; importing registers the built-ins."""

from esper.kasmina.blueprints import cnn, transformer
from esper.kasmina.blueprints.registry import (
    TOPOLOGIES,
    Blueprint,
    blueprint_names,
    get_blueprint,
    register,
)

__all__ = [
    "TOPOLOGIES",
    "Blueprint",
    "blueprint_names",
    "cnn",
    "get_blueprint",
    "register",
    "transformer",
]
