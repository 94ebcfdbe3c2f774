"""Defaults shared across packages (docs/architecture.md §11). Tune with evidence and record why."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class LifecycleLimits:
    """Rules of the seed lifecycle: timings in epochs, and the growth budget."""

    min_prune_age: int = 5  # a seed younger than this cannot be pruned by the controller
    embargo_epochs: int = 5  # a slot rests this long after a prune before it is DORMANT again
    # At most this many parameters in live seeds at once (None: no limit). A germination that
    # would pass it is illegal, so what an episode adds never exceeds it at any epoch.
    param_budget: int | None = None
    # Budgets drawn per episode (`for_episode`); empty: `param_budget` for every episode.
    param_budgets: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.min_prune_age < 0:
            raise ValueError(f"min_prune_age must be >= 0, got {self.min_prune_age}")
        if self.embargo_epochs < 0:
            raise ValueError(f"embargo_epochs must be >= 0, got {self.embargo_epochs}")
        if self.param_budget is not None and self.param_budget < 0:
            raise ValueError(f"param_budget must be >= 0 or None, got {self.param_budget}")
        if any(b < 0 for b in self.param_budgets):
            raise ValueError(f"param_budgets must all be >= 0, got {list(self.param_budgets)}")
        if self.param_budgets and self.param_budget is not None:
            raise ValueError("give param_budget or param_budgets, not both")

    def for_episode(self, seed: int) -> LifecycleLimits:
        """The limits of the episode played on env seed `seed`: with several `param_budgets`,
        the budget `param_budgets[seed % len(param_budgets)]` (consecutive seeds cycle through
        them, as the parameter prices do); otherwise these limits."""
        if not self.param_budgets:
            return self
        budget = self.param_budgets[seed % len(self.param_budgets)]
        return replace(self, param_budget=budget, param_budgets=())


DEFAULT_LIMITS = LifecycleLimits()

# Steepness k of the SIGMOID alpha curve: 6 is gentle, 24 sharp.
SIGMOID_STEEPNESS = 12.0
