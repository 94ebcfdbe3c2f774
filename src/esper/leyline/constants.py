"""Defaults shared across packages (docs/architecture.md §11). Tune with evidence and record why."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LifecycleLimits:
    """Timing rules of the seed lifecycle, in epochs."""

    min_prune_age: int = 5  # a seed younger than this cannot be pruned by the controller
    embargo_epochs: int = 5  # a slot rests this long after a prune before it is DORMANT again

    def __post_init__(self) -> None:
        if self.min_prune_age < 0:
            raise ValueError(f"min_prune_age must be >= 0, got {self.min_prune_age}")
        if self.embargo_epochs < 0:
            raise ValueError(f"embargo_epochs must be >= 0, got {self.embargo_epochs}")


DEFAULT_LIMITS = LifecycleLimits()

# Steepness k of the SIGMOID alpha curve: 6 is gentle, 24 sharp.
SIGMOID_STEEPNESS = 12.0
