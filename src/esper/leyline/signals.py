"""Frozen records that flow between the parts: epoch metrics, slot reports, episode outcomes."""

from __future__ import annotations

from dataclasses import dataclass

from esper.leyline.actions import BlendOp, Curve
from esper.leyline.stages import Stage


@dataclass(frozen=True)
class EpochMetrics:
    """One host epoch as the controller sees it. Accuracies in percent, losses per-sample means."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    val_loss_delta: float  # this epoch minus the previous one (0 on the first epoch)
    val_accuracy_delta: float
    best_val_accuracy: float
    plateau_epochs: int  # consecutive epochs whose accuracy gain stayed below the plateau bar
    is_stabilized: bool  # latched once the host's loss has settled


@dataclass(frozen=True)
class SlotReport:
    """Everything decisions, gates and rewards may know about one slot.

    Contributions are in percentage points of validation accuracy: accuracy with the seed at its
    alpha minus accuracy with that seed's alpha forced to 0, on the same batches, with the paired
    standard error. `prospective` is the same measurement with alpha forced to 1 for a seed that
    is still invisible to the host (TRAINING).
    """

    slot_id: str
    stage: Stage
    epochs_in_stage: int = 0
    seed_age: int = 0  # epochs since germination
    alpha: float = 0.0
    alpha_target: float = 0.0
    alpha_curve: Curve = Curve.LINEAR
    alpha_steps_left: int = 0
    blueprint: str | None = None
    blend: BlendOp | None = None
    seed_params: int = 0
    contribution: float | None = None
    contribution_stderr: float | None = None
    contribution_trend: float | None = None
    prospective: float | None = None
    prospective_stderr: float | None = None
    gradient_ratio: float | None = None  # seed grad norm / host grad norm, last epoch
    is_pruning: bool = False  # alpha is ramping down to 0, then the seed is pruned
    is_fossilizing: bool = False  # alpha is ramping up to 1, then the seed is fossilized
    seed_output_sane: bool = True  # gate G1: finite output of the right shape on a probe
    passes_advance_gate: bool = False  # verdict of gate G2 under the active profile
    passes_fossilize_gate: bool = False  # verdict of gate G3 under the active profile

    @property
    def is_alpha_ramping(self) -> bool:
        return self.alpha_steps_left > 0

    @property
    def has_counterfactual(self) -> bool:
        return self.contribution is not None


@dataclass(frozen=True)
class EpisodeOutcome:
    """How an episode ended. Telemetry and evaluation only; never part of a reward."""

    test_accuracy: float
    val_accuracy: float
    host_params: int
    params_added: int
    seeds_fossilized: int
    seeds_pruned: int
    episode_return: float = 0.0
    grown: tuple[str, ...] = ()  # "blueprint@slot" of every seed visible at the end (alpha > 0)
    rent_weight: float | None = None  # the episode's parameter price (None: not recorded)
    param_budget: int | None = None  # the episode's parameter budget (None: none)

    @property
    def growth_ratio(self) -> float:
        return (self.host_params + self.params_added) / self.host_params
