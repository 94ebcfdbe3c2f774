"""HostSession: one env's host training, step by step (DESIGN.md §2, steps 2.1 and 2.4).

It owns the model, optimizer, loaders and governor of one episode. A controller-facing wrapper
(the gymnasium env in `esper.simic.environment`) turns its results into observations and rewards.
Per step: `apply(action)` -> `boundary()` -> `train_and_evaluate()`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from esper.kasmina import PERMISSIVE, GateProfile, MorphogeneticModel
from esper.leyline import DEFAULT_LIMITS, FactoredAction, LifecycleEvent, LifecycleLimits
from esper.tolaria import counterfactual
from esper.tolaria.data import DataSplits, TensorLoader
from esper.tolaria.engine import EvalStats, TrainStats, evaluate, train_epoch
from esper.tolaria.governor import Governor, GovernorConfig
from esper.tolaria.seed_optimizer import OptimizerSettings, SeedOptimizer
from esper.tolaria.tasks import Task


@dataclass(frozen=True)
class SessionOptions:
    slots: tuple[str, ...] | None = None  # enabled slot ids (None: all the host offers)
    limits: LifecycleLimits = DEFAULT_LIMITS
    gates: GateProfile = PERMISSIVE
    device: str = "cpu"
    measure_counterfactual: bool = True
    governor: GovernorConfig = GovernorConfig()


@dataclass(frozen=True)
class EpochResult:
    train: TrainStats
    val: EvalStats
    contributions: tuple[counterfactual.Contribution, ...]
    rollback_reason: str | None
    events: tuple[LifecycleEvent, ...]  # governor prunes, if any
    train_s: float  # wall time of training (metrics are read back, so the device has synced)
    evaluate_s: float  # wall time of the validation pass with counterfactuals


class HostSession:
    """Trains one host with seeds for one episode at a time (call `reset` to start one)."""

    def __init__(
        self, task: Task, data: DataSplits, options: SessionOptions = SessionOptions()
    ) -> None:
        self.task, self.data, self.options = task, data, options
        self.device = torch.device(options.device)
        self.val_loader = TensorLoader(data.val, task.eval_batch_size, shuffle=False, seed=0).to(
            self.device
        )
        self.test_loader = TensorLoader(data.test, task.eval_batch_size, shuffle=False, seed=0).to(
            self.device
        )
        self._model: MorphogeneticModel | None = None

    @property
    def model(self) -> MorphogeneticModel:
        if self._model is None:
            raise RuntimeError("call reset(seed) before using the session")
        return self._model

    def reset(self, seed: int) -> EvalStats:
        """Build a fresh host (initialised from `seed`) and evaluate it on validation."""
        torch.manual_seed(seed)
        host = self.task.build_host(self.data)
        self._model = MorphogeneticModel(
            host, self.options.slots, self.options.limits, self.options.gates
        ).to(self.device)
        self.optimizer = SeedOptimizer(
            self._model,
            OptimizerSettings(
                self.task.host_lr, self.task.seed_lr, self.task.momentum, self.task.weight_decay
            ),
        )
        self.train_loader = TensorLoader(
            self.data.train,
            self.task.batch_size,
            shuffle=True,
            seed=seed,
            augment=self.task.augment,
        ).to(self.device)
        self.governor = Governor(self.data.chance_loss, self.options.governor)
        self.governor.snapshot(self._model)
        return evaluate(self._model, self.val_loader)

    def apply(self, action: FactoredAction) -> list[LifecycleEvent]:
        """Execute the controller's action (raises IllegalActionError if it is illegal)."""
        events = self.model.execute(action)
        self.optimizer.sync()
        return events

    def boundary(self) -> list[LifecycleEvent]:
        """Tick alpha schedules and run the automatic transitions."""
        events = self.model.advance_boundary()
        self.optimizer.sync()
        return events

    def train_and_evaluate(self) -> EpochResult:
        """One epoch of training, the governor's check, then validation with counterfactuals."""
        model = self.model
        started = time.perf_counter()
        train = train_epoch(model, self.optimizer, self.train_loader)
        trained = time.perf_counter()
        model.end_epoch()
        for slot_id, ratio in train.gradient_ratios.items():
            model.slot(slot_id).measured.gradient_ratio = ratio
        reason = self.governor.diagnose(train.loss)
        events: list[LifecycleEvent] = []
        if reason is None:
            self.governor.record_healthy(model, train.loss)
        else:
            events = self.governor.rollback(model, reason)
            self.optimizer.sync()
            self.optimizer.reset_state()
        found = counterfactual.probes(model) if self.options.measure_counterfactual else []
        val = evaluate(model, self.val_loader, [{}, *(p.config for p in found)])
        measured = counterfactual.contributions(found, val.correct)
        counterfactual.record(model, measured)
        evaluated = time.perf_counter()
        return EpochResult(
            train,
            val,
            tuple(measured),
            reason,
            tuple(events),
            trained - started,
            evaluated - trained,
        )

    def test_accuracy(self) -> float:
        """Accuracy on the test split (episode outcomes only; never a decision or a reward)."""
        return evaluate(self.model, self.test_loader).accuracy
