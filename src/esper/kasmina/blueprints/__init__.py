"""Seed modules (blueprints) for every layer family; importing registers the built-ins."""

from esper.kasmina.blueprints import cnn, dense, transformer
from esper.kasmina.blueprints.registry import (
    FAMILY_NAMES,
    GLOBAL_CONTEXT,
    Blueprint,
    Traits,
    blueprint_names,
    get_blueprint,
    names_across,
    register,
)

__all__ = [
    "FAMILY_NAMES",
    "GLOBAL_CONTEXT",
    "Blueprint",
    "Traits",
    "blueprint_names",
    "cnn",
    "dense",
    "get_blueprint",
    "names_across",
    "register",
    "transformer",
]
