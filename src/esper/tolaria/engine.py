"""The one training and evaluation engine every caller uses (heuristic, PPO, evaluation,
benchmarks). Losses and accuracies are per-sample means over the epoch (per token for language
tasks); metrics stay on the device until the end of the pass, so there is one sync per epoch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from esper.kasmina import MorphogeneticModel
from esper.leyline import Stage
from esper.tolaria.seed_optimizer import SeedOptimizer
from esper.tolaria.timing import PhaseClock


@dataclass(frozen=True)
class TrainStats:
    loss: float  # per-sample mean over the epoch
    accuracy: float  # percent
    samples: int
    gradient_ratios: dict[str, float]  # probationary seed grad norm / host grad norm (1st batch)


@dataclass(frozen=True)
class EvalStats:
    """Evaluation of K alpha configurations on the same samples.

    `losses[k]`, `accuracies[k]` (percent) per configuration; `correct` (K, N) bool, one column
    per evaluated sample (token), for paired comparisons between configurations.
    """

    losses: tuple[float, ...]
    accuracies: tuple[float, ...]
    correct: Tensor

    @property
    def loss(self) -> float:
        return self.losses[0]

    @property
    def accuracy(self) -> float:
        return self.accuracies[0]


def flat_logits(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """(B, C) or (B, T, V) logits with (B,) or (B, T) targets -> (N, C), (N,)."""
    return logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The dtype `amp` ("off", "auto", "bf16", "fp16") autocasts to on `device`; None: off.
    "auto" is bf16 on the CPU and on GPUs that have it, else fp16."""
    if amp == "off":
        return None
    if amp == "auto":
        cuda = device.type == "cuda" and torch.cuda.is_available()
        return torch.float16 if cuda and not torch.cuda.is_bf16_supported() else torch.bfloat16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def autocast_to(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    """Autocast to `dtype`; off, no context at all (a disabled autocast costs ~2 us a batch)."""
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype)


def _norm(params: Iterable[torch.nn.Parameter]) -> Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _gradient_norms(model: MorphogeneticModel) -> dict[str, Tensor]:
    """Host and per-seed gradient norms, as tensors (no sync)."""
    norms = {"host": _norm(model.host.parameters())}
    for slot in model.seed_slots():
        if slot.is_live and slot.stage != Stage.FOSSILIZED:
            norms[slot.slot_id] = _norm(slot.seed_parameters())
    return norms


def _shadow_backward(
    model: MorphogeneticModel,
    y: Tensor,
    amp: torch.dtype | None,
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Gradients for seeds still invisible to the host, from their shadow passes: the loss with
    that seed blended in, differentiated with respect to that seed's parameters only. A shadow
    pass may take only the batch's first samples (`shadow_fraction`): its targets are those."""
    with autocast_to(y.device, amp):  # the shadow forwards run here, as the main one did
        outputs = model.shadow_outputs()
    for slot, output in outputs:
        logits, targets = flat_logits(output.float(), y[: output.shape[0]])
        params = slot.seed_parameters()
        loss = F.cross_entropy(logits, targets)
        grads = torch.autograd.grad(loss if scaler is None else scaler.scale(loss), params)
        for p, g in zip(params, grads, strict=True):
            p.grad = g if p.grad is None else p.grad + g


def train_epoch(
    model: MorphogeneticModel,
    optimizer: SeedOptimizer,
    batches: Iterable[tuple[Tensor, Tensor]],
    amp: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    clock: PhaseClock | None = None,
    forward: Callable[[MorphogeneticModel, Tensor], Tensor] | None = None,
) -> TrainStats:
    """One pass of SGD over `batches` with cross-entropy; forwards autocast to `amp`, the loss
    and the metrics in fp32, the weights stay fp32. fp16 needs `scaler` (bf16 does not): the
    losses are scaled, the gradients unscaled before their norms are read and the step, and a
    step whose gradients overflowed is skipped (`torch.amp.GradScaler`). `clock` times the
    shadow passes as the phase "shadow_passes"; `forward(model, x)` replaces `model(x)` (a
    compiled one: `esper.tolaria.compiling`)."""
    if amp == torch.float16 and scaler is None:
        raise ValueError("fp16 training needs a GradScaler")
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    samples = 0
    norms: dict[str, Tensor] = {}
    shadowing = any(slot.is_shadow_training for slot in model.seed_slots())  # fixed for the epoch
    for x, y in batches:
        with autocast_to(device, amp):
            output = model(x) if forward is None else forward(model, x)
        logits, targets = flat_logits(output.float(), y)
        loss = F.cross_entropy(logits, targets)
        optimizer.zero_grad()
        (loss if scaler is None else scaler.scale(loss)).backward()  # type: ignore[no-untyped-call]
        if shadowing:
            with contextlib.nullcontext() if clock is None else clock.phase("shadow_passes"):
                _shadow_backward(model, y, amp, scaler)
        if scaler is not None:
            scaler.unscale_(optimizer.optimizer)
        if not norms:
            norms = _gradient_norms(model)
        optimizer.step(scaler)
        loss_sum += loss.detach() * targets.numel()
        correct += (logits.detach().argmax(-1) == targets).sum()
        samples += targets.numel()
    if samples == 0:
        raise ValueError("train_epoch got no batches")
    host_norm = float(norms.pop("host"))
    usable = math.isfinite(host_norm) and host_norm > 0  # an fp16 overflow reads as no signal
    ratios = {sid: float(n) / host_norm if usable else 0.0 for sid, n in norms.items()}
    return TrainStats(
        loss=float(loss_sum) / samples,
        accuracy=100.0 * float(correct) / samples,
        samples=samples,
        gradient_ratios=ratios,
    )


@torch.no_grad()
def evaluate(
    model: MorphogeneticModel,
    batches: Iterable[tuple[Tensor, Tensor]],
    configs: Sequence[Mapping[str, float]] = ({},),
    amp: torch.dtype | None = None,
    fused_forward: Callable[..., Tensor] | None = None,
) -> EvalStats:
    """Evaluate K alpha configurations in one fused pass per batch (see `fused_forward`), the
    forward autocast to `amp`, losses and counts in fp32. `fused_forward(model, x, configs)`
    replaces `model.fused_forward(x, configs)` (a compiled one)."""
    model.eval()
    device = next(model.parameters()).device
    k = len(configs)
    loss_sums: Tensor | None = None
    correct_parts: list[Tensor] = []
    for x, y in batches:
        with autocast_to(device, amp):
            fused = (
                model.fused_forward(x, configs)
                if fused_forward is None
                else fused_forward(model, x, configs)
            )
            logits = fused.float()  # (K, B, ...)
        flat = logits.reshape(k, -1, logits.shape[-1])  # (K, N, C)
        targets = y.reshape(-1)
        per_config = (
            F.cross_entropy(flat.reshape(-1, flat.shape[-1]), targets.repeat(k), reduction="none")
            .view(k, -1)
            .sum(dim=1)
        )  # (K,)
        loss_sums = per_config if loss_sums is None else loss_sums + per_config
        correct_parts.append(flat.argmax(-1) == targets)  # (K, N)
    if loss_sums is None:
        raise ValueError("evaluate got no batches")
    correct = torch.cat(correct_parts, dim=1)
    n = correct.shape[1]
    return EvalStats(
        losses=tuple((loss_sums / n).tolist()),
        accuracies=tuple((100.0 * correct.float().mean(dim=1)).tolist()),
        correct=correct.cpu(),
    )
