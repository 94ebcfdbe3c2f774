"""HostSession: one env's host training, step by step (docs/architecture.md §2, steps 2.1 and 2.4).

It owns the model, optimizer, loaders and governor of one episode. A controller-facing wrapper
(the gymnasium env in `esper.simic.environment`) turns its results into observations and rewards.
Per step: `apply(action)` -> `boundary()` -> `train_and_evaluate()`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from esper.kasmina import PERMISSIVE, GateProfile, MorphogeneticModel
from esper.leyline import (
    DEFAULT_LIMITS,
    FactoredAction,
    LifecycleEvent,
    LifecycleLimits,
    Op,
)
from esper.tolaria import counterfactual
from esper.tolaria.compiling import COMPILES, compiled_forwards
from esper.tolaria.data import DataSplits, Split, TensorLoader
from esper.tolaria.engine import EvalStats, TrainStats, autocast_dtype, evaluate, train_epoch
from esper.tolaria.governor import Governor, GovernorConfig
from esper.tolaria.grouped import Trained, training_phases
from esper.tolaria.seed_optimizer import OptimizerSettings, SeedOptimizer
from esper.tolaria.tasks import Task
from esper.tolaria.timing import PhaseClock


@dataclass(frozen=True)
class SessionOptions:
    slots: tuple[str, ...] | None = None  # enabled slot ids (None: all the host offers)
    limits: LifecycleLimits = DEFAULT_LIMITS
    gates: GateProfile = PERMISSIVE
    device: str = "cpu"
    measure_counterfactual: bool = True
    governor: GovernorConfig = GovernorConfig()
    # channels_last for image hosts (4-D inputs) on the CPU, where its kernels are faster; None:
    # the task's default (`Task.channels_last`)
    channels_last: bool | None = None
    # of each training batch, the share an invisible seed's shadow pass takes; None: the task's
    # (`Task.shadow_fraction`)
    shadow_fraction: float | None = None
    # autocast for host training and evaluation: "off", "auto", "bf16" or "fp16"
    # (`engine.autocast_dtype`)
    amp: str = "off"
    # torch.compile backend for the training and evaluation forwards (None: eager;
    # `esper.tolaria.compiling`)
    compile: str | None = None
    # the task's host size and batch sizes (`Task.resized`); None: the task's own
    host_widths: tuple[int, ...] | None = None
    host_norm: str | None = None
    batch_size: int | None = None
    eval_batch_size: int | None = None

    def task_for(self, task: Task) -> Task:
        """`task` with these options' host size and batch sizes."""
        return task.resized(self.host_widths, self.host_norm, self.batch_size, self.eval_batch_size)


def memory_format(task: Task, data: DataSplits, options: SessionOptions) -> torch.memory_format:
    """channels_last for an image task (inputs C x H x W) on the CPU when the options or the
    task ask for it; the default format otherwise (CUDA keeps its own choice: fp32 convolutions
    there were not measured in channels_last)."""
    wanted = task.channels_last if options.channels_last is None else options.channels_last
    if wanted and len(data.input_shape) == 3 and torch.device(options.device).type == "cpu":
        return torch.channels_last
    return torch.contiguous_format


@dataclass(frozen=True)
class EpochResult:
    train: TrainStats
    val: EvalStats
    contributions: tuple[counterfactual.Contribution, ...]
    rollback_reason: str | None
    events: tuple[LifecycleEvent, ...]  # governor prunes, if any
    # seconds per phase (`PhaseClock`, disjoint): host_training, shadow_passes (the invisible
    # seeds' share of training) and evaluation (the validation pass with counterfactuals)
    timing: dict[str, float]


class HostSession:
    """Trains one host with seeds for one episode at a time (call `reset` to start one)."""

    def __init__(
        self, task: Task, data: DataSplits, options: SessionOptions = SessionOptions()
    ) -> None:
        task = options.task_for(task)
        self.task, self.data, self.options = task, data, options
        self.device = torch.device(options.device)
        self.memory_format = memory_format(task, data, options)
        self.amp = autocast_dtype(options.amp, self.device)
        self.scaler: torch.amp.GradScaler | None = None  # fp16 only, one per episode (reset)
        self.forwards = None if options.compile is None else compiled_forwards(options.compile)
        self.compiled_graphs = 0  # graphs compiled for this session's calls, all episodes
        self.shadow_fraction = (
            task.shadow_fraction if options.shadow_fraction is None else options.shadow_fraction
        )
        self.val_loader = self._loader(data.val, task.eval_batch_size, shuffle=False, seed=0)
        self.test_loader = self._loader(data.test, task.eval_batch_size, shuffle=False, seed=0)
        self._model: MorphogeneticModel | None = None
        self._rng_states: tuple[torch.Tensor, torch.Tensor | None] = (torch.get_rng_state(), None)

    @property
    def model(self) -> MorphogeneticModel:
        if self._model is None:
            raise RuntimeError("call reset(seed) before using the session")
        return self._model

    def _cuda_devices(self) -> list[int]:
        if self.device.type != "cuda":
            return []
        return [self.device.index if self.device.index is not None else torch.cuda.current_device()]

    def _save_rng(self) -> None:
        cuda = self._cuda_devices()
        self._rng_states = (
            torch.get_rng_state(),
            torch.cuda.get_rng_state(cuda[0]) if cuda else None,
        )

    @contextmanager
    def _private_rng(self) -> Iterator[None]:
        """Run on this session's own random stream (module initialisation of the host and of
        planted seeds, dropout), then give torch's global RNG back as it was: an episode depends
        only on its seed and actions, never on what other envs in the process did meanwhile."""
        cuda = self._cuda_devices()
        with torch.random.fork_rng(devices=cuda):
            cpu_state, cuda_state = self._rng_states
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, cuda[0])
            try:
                yield
            finally:
                self._save_rng()

    def reset(self, seed: int) -> EvalStats:
        """Build a fresh host (initialised from `seed`) and evaluate it on validation."""
        with torch.random.fork_rng(devices=self._cuda_devices()):
            torch.manual_seed(seed)  # the stream starts where torch.manual_seed(seed) puts it
            self._save_rng()
        with self._private_rng():
            host = self.task.build_host(self.data)
            self._model = MorphogeneticModel(
                host,
                self.options.slots,
                self.options.limits.for_episode(seed),  # its budget may be drawn
                self.options.gates,
                shadow_fraction=self.shadow_fraction,
            ).to(self.device)
            self._in_memory_format()
        self.optimizer = SeedOptimizer(
            self._model,
            OptimizerSettings(
                self.task.host_lr, self.task.seed_lr, self.task.momentum, self.task.weight_decay
            ),
        )
        # fp16: each episode (each env) scales its own losses, from the scaler's initial scale
        if self.amp == torch.float16:
            self.scaler = torch.amp.GradScaler(self.device.type)
        self.train_loader = self._loader(
            self.data.train, self.task.batch_size, shuffle=True, seed=seed, augment=True
        )
        self.governor = Governor(self.data.chance_loss, self.options.governor)
        self.governor.snapshot(self._model)
        return self._evaluate(self.val_loader)

    def _evaluate(
        self, loader: TensorLoader, configs: Sequence[Mapping[str, float]] = ({},)
    ) -> EvalStats:
        if self.forwards is None:
            return evaluate(self.model, loader, configs, self.amp)
        graphs = COMPILES.graphs
        try:
            return evaluate(self.model, loader, configs, self.amp, self.forwards[1])
        finally:
            self.compiled_graphs += COMPILES.graphs - graphs

    def apply(self, action: FactoredAction) -> list[LifecycleEvent]:
        """Execute the controller's action (raises IllegalActionError if it is illegal)."""
        with self._private_rng():  # a GERMINATE initialises a seed module
            events = self.model.execute(action)
        if action.op == Op.GERMINATE:  # the one action that builds modules: the new seed's
            self._in_memory_format()
        self.optimizer.sync()
        return events

    def boundary(self) -> list[LifecycleEvent]:
        """Tick alpha schedules and run the automatic transitions."""
        with self._private_rng():  # G1 probes a germinated seed with random input
            events = self.model.advance_boundary()
        self.optimizer.sync()
        return events

    def train(self) -> Trained:
        """One epoch of host training: its statistics and the seconds of its phases,
        "host_training" and within it "shadow_passes" (disjoint: the first excludes the second;
        timed on the device, `PhaseClock`)."""
        clock = PhaseClock(self.device)
        graphs = COMPILES.graphs
        with self._private_rng(), clock.phase("epoch"):  # dropout, where a host has it
            train = train_epoch(
                self.model,
                self.optimizer,
                self.train_loader,
                self.amp,
                self.scaler,
                clock,
                None if self.forwards is None else self.forwards[0],
            )
        self.compiled_graphs += COMPILES.graphs - graphs
        return train, training_phases(clock)

    def train_and_evaluate(self, trained: Trained | None = None) -> EpochResult:
        """One epoch of training (or the epoch `trained` ran for this session, e.g. in a vmapped
        group: `esper.tolaria.grouped`), the governor's check, then validation with
        counterfactuals."""
        model = self.model
        train, timing = self.train() if trained is None else trained
        model.end_epoch()
        for slot_id, ratio in train.gradient_ratios.items():
            # A seed gone NaN has NaN gradients: no signal it could learn from. Recorded as 0
            # (no usable gradient), G2 holds it back and the observation stays finite.
            usable = ratio if math.isfinite(ratio) else 0.0
            model.slot(slot_id).measured.gradient_ratio = usable
        reason = self.governor.diagnose(train.loss)
        events: list[LifecycleEvent] = []
        if reason is None:
            self.governor.record_healthy(model, train.loss)
        else:
            events = self.governor.rollback(model, reason)
            self.optimizer.sync()
            self.optimizer.reset_state()
        clock = PhaseClock(self.device)
        with clock.phase("evaluation"):
            found = counterfactual.probes(model) if self.options.measure_counterfactual else []
            configs = [{}, *(p.config for p in found)]
            val = self._evaluate(self.val_loader, configs)
            measured = counterfactual.contributions(found, val)
            counterfactual.record(model, measured)
        return EpochResult(
            train, val, tuple(measured), reason, tuple(events), {**timing, **clock.seconds()}
        )

    def _in_memory_format(self) -> None:
        if self.memory_format != torch.contiguous_format:  # `Module.to`'s stubs lack the argument
            self.model.to(memory_format=self.memory_format)  # type: ignore[call-overload]

    def _loader(
        self, split: Split, batch_size: int, shuffle: bool, seed: int, augment: bool = False
    ) -> TensorLoader:
        return TensorLoader(
            split,
            batch_size,
            shuffle=shuffle,
            seed=seed,
            augment=self.task.augment if augment else None,
            memory_format=self.memory_format,
        ).to(self.device)

    def test_accuracy(self) -> float:
        """Accuracy on the test split (episode outcomes only; never a decision or a reward)."""
        return self._evaluate(self.test_loader).accuracy
