"""One epoch of host training for several envs at once: envs whose models have the same
structure train as one vmapped forward/backward over their stacked weights (`torch.func`).

Hosts this small leave a GPU nearly idle: per-kernel launch cost, not arithmetic, sets the speed,
so N models stepped one by one cost about N times one. Stacked, a group of N runs one kernel
where each model ran one, on N times the data.

A group is the envs whose models agree on everything that decides what a training step computes
(`structure_key`): the host's parameters (names, shapes, dtypes, device), each slot's seed,
blend, stage and alpha, the optimizer's hyperparameters per parameter and which parameters
already have momentum, the precision and the loader's batching. The key is taken at the start of
every epoch, after the controller's action and the boundary, so a lifecycle op that changes one
env's structure moves it to another group (or alone) from the next epoch on: groups are re-formed
each epoch, the weights and momentum stacked from the envs' own modules and optimizers and
written back at its end, so everything else (the governor, counterfactuals, checkpoints) sees the
envs' usual state. Each env keeps its own loader (order and augmentation), so the episodes are
those of stepping the envs one by one, to float tolerance (vmapped convolutions sum in another
order).

Not grouped (trained one by one, `engine.train_epoch`): fp16 (its gradient scaler skips steps
per env), BatchNorm (running statistics are updated in place) and dropout (vmap would draw other
random numbers than the env's own stream).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from esper.kasmina import MorphogeneticModel
from esper.leyline import Stage
from esper.tolaria.engine import TrainStats, autocast_to, flat_logits
from esper.tolaria.timing import PhaseClock

if TYPE_CHECKING:
    from esper.tolaria.session import HostSession

# An epoch's statistics and the seconds of its phases (`training_phases`).
Trained = tuple[TrainStats, dict[str, float]]


def training_phases(clock: PhaseClock) -> dict[str, float]:
    """Disjoint training phases from a clock that timed the whole epoch as "epoch" and the
    invisible seeds' shadow passes within it: host_training (the rest) and shadow_passes."""
    seconds = clock.seconds()
    shadow = seconds.get("shadow_passes", 0.0)
    return {"host_training": seconds["epoch"] - shadow, "shadow_passes": shadow}


def structure_key(session: HostSession) -> Hashable | None:
    """What must be equal for two sessions to train as one group; None: never grouped."""
    model, optimizer = session.model, session.optimizer.optimizer
    if session.amp == torch.float16 or _has_batch_statistics_or_dropout(model):
        return None
    lrs = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    params = tuple(
        (
            name,
            tuple(p.shape),
            p.dtype,
            p.device,
            lrs.get(id(p)),  # None: not optimized
            "momentum_buffer" in optimizer.state.get(p, {}),
        )
        for name, p in model.named_parameters()
    )
    slots = tuple(
        (s.slot_id, s.stage, s.blueprint, s.blend_op, s.alpha, s.shadow_fraction)
        for s in model.seed_slots()
    )
    settings = session.optimizer.settings
    loader = session.train_loader
    return (
        type(model.host),
        params,
        slots,
        settings.momentum,
        settings.weight_decay,
        session.amp,
        loader.num_samples,
        loader.batch_size,
        loader.drop_last,
    )


def _has_batch_statistics_or_dropout(model: nn.Module) -> bool:
    """Whether a layer keeps running statistics (updated in place, which vmap cannot batch) or
    draws random numbers in training (dropout of any kind, RReLU): such a host trains alone."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            return True
        if isinstance(module, nn.modules.batchnorm._NormBase) and module.track_running_stats:
            return True  # InstanceNorm with running statistics
        if isinstance(module, nn.modules.dropout._DropoutNd) and module.p > 0:
            return True  # Dropout, Dropout1d/2d/3d, AlphaDropout, FeatureAlphaDropout
        if isinstance(module, nn.RReLU):
            return True
        rate = getattr(module, "dropout", None)  # attention dropout given as a rate
        if isinstance(rate, float) and rate > 0:
            return True
    return False


def train_epochs(sessions: Sequence[HostSession]) -> list[Trained]:
    """One epoch for every session, grouped by `structure_key`; results in session order. A
    group's time is shared equally by its members."""
    groups: dict[Hashable, list[int]] = {}
    for i, session in enumerate(sessions):
        key = structure_key(session)
        groups.setdefault(("alone", i) if key is None else key, []).append(i)
    results: list[Trained | None] = [None] * len(sessions)
    for members in groups.values():
        if len(members) == 1:
            results[members[0]] = sessions[members[0]].train()
            continue
        clock = PhaseClock(sessions[members[0]].device)
        with clock.phase("epoch"):
            stats = _train_group([sessions[i] for i in members], clock)  # one key: checked
        shares = training_phases(clock)
        for i, stat in zip(members, stats, strict=True):
            results[i] = (stat, {name: s / len(members) for name, s in shares.items()})
    done = [r for r in results if r is not None]
    assert len(done) == len(sessions)  # every session is in exactly one group
    return done


class _Calls(nn.Module):
    """The model's two training computations as one module, so `functional_call` can run either
    on stacked weights: the training forward, and the shadow passes of invisible seeds."""

    def __init__(self, model: MorphogeneticModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, kind: str, x: Tensor | None = None) -> Any:
        if kind == "train":
            return self.model(x)
        return self.model.shadow_outputs()


@dataclass
class _Stacks:
    """A group's weights and momentum stacked over its sessions (K, ...), by parameter name,
    with what the update needs: each name's learning rate (None: not optimized)."""

    named: list[dict[str, nn.Parameter]]  # each session's own parameters
    params: dict[str, Tensor]
    velocity: dict[str, Tensor]  # only the names that have momentum already
    lrs: dict[str, float | None]

    @staticmethod
    def of(sessions: Sequence[HostSession]) -> _Stacks:
        named = [dict(s.model.named_parameters()) for s in sessions]
        optimizer = sessions[0].optimizer.optimizer
        lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
        # In the default memory format: vmap cannot clone in channels_last (GroupNorm does).
        params = {n: torch.stack([m[n].detach() for m in named]).contiguous() for n in named[0]}
        velocity = {
            n: torch.stack(
                [
                    s.optimizer.optimizer.state[m[n]]["momentum_buffer"]
                    for s, m in zip(sessions, named, strict=True)
                ]
            )
            for n in named[0]
            if "momentum_buffer" in optimizer.state.get(named[0][n], {})
        }
        lrs = {n: lr_of.get(id(p)) for n, p in named[0].items()}
        return _Stacks(named, params, velocity, lrs)


def _losses(
    template: MorphogeneticModel, shadows: list[str], device: torch.device, amp: Any
) -> tuple[Any, Any]:
    """One env's training loss and its invisible seeds' shadow loss, as functions of its
    weights, to be differentiated and vmapped (`train_group`). The template's module is run
    with the weights given; the slots' shadow inputs travel as values between the two."""
    calls = _Calls(template)

    def main_loss(p: dict[str, Tensor], x: Tensor, y: Tensor) -> tuple[Tensor, Any]:
        with autocast_to(device, amp):
            output = functional_call(calls, _prefixed(p), ("train", x))
        logits, targets = flat_logits(output.float(), y)
        loss = F.cross_entropy(logits, targets)
        inputs = {sid: template.slot(sid).shadow_input for sid in shadows}
        for sid in shadows:  # read out of the module: the shadow pass gets them explicitly
            template.slot(sid).shadow_input = None
        correct = (logits.detach().argmax(-1) == targets).sum()
        return loss, (loss.detach(), correct, inputs)

    def shadow_loss(
        seeds: dict[str, Tensor], rest: dict[str, Tensor], inputs: dict[str, Tensor], y: Tensor
    ) -> Tensor:
        for sid, h in inputs.items():
            template.slot(sid).shadow_input = h
        with autocast_to(device, amp):
            outputs = functional_call(calls, _prefixed({**rest, **seeds}), ("shadow",))
        total = torch.zeros((), device=device)
        for _, output in outputs:
            logits, targets = flat_logits(output.float(), y[: output.shape[0]])
            total = total + F.cross_entropy(logits, targets)
        return total

    return main_loss, shadow_loss


def train_group(
    sessions: Sequence[HostSession], clock: PhaseClock | None = None
) -> list[TrainStats]:
    """One epoch of SGD for sessions of one `structure_key`, vmapped over their stacked weights;
    the same arithmetic as `engine.train_epoch` + `SeedOptimizer.step` (torch's SGD with momentum
    and weight decay) for each, with the new weights and momentum written back to each session's
    model and optimizer. `clock` times the shadow passes as "shadow_passes"."""
    if len({structure_key(s) for s in sessions}) != 1 or structure_key(sessions[0]) is None:
        raise ValueError("train_group needs sessions of one structure that can be grouped")
    return _train_group(sessions, clock)


def _train_group(sessions: Sequence[HostSession], clock: PhaseClock | None) -> list[TrainStats]:
    """`train_group` for sessions known to share one groupable structure."""
    for session in sessions:
        session.model.train()
    template = sessions[0].model
    device, settings = next(template.parameters()).device, sessions[0].optimizer.settings
    stacks = _Stacks.of(sessions)
    names = list(stacks.params)
    shadows = [s.slot_id for s in template.seed_slots() if s.is_shadow_training]
    shadow_names = [n for n in names if any(n.startswith(f"slots.{sid}.") for sid in shadows)]
    host_names = [n for n in names if n.startswith("host.")]
    norm_names = {
        s.slot_id: [n for n in names if n.startswith(f"slots.{s.slot_id}.")]
        for s in template.seed_slots()
        if s.is_live and s.stage != Stage.FOSSILIZED
    }
    main_loss, shadow_loss = _losses(template, shadows, device, sessions[0].amp)
    main_step, shadow_step = vmap(grad(main_loss, has_aux=True)), vmap(grad(shadow_loss))
    k = len(sessions)
    loss_sum = torch.zeros(k, device=device)
    correct_sum = torch.zeros(k, device=device, dtype=torch.int64)
    samples = 0
    norms: dict[str, Tensor] = {}
    try:
        for batches in zip(*(s.train_loader for s in sessions), strict=True):
            x = torch.stack([b[0] for b in batches]).contiguous()
            y = torch.stack([b[1] for b in batches])
            grads, (loss, correct, inputs) = main_step(stacks.params, x, y)
            if shadows:
                with contextlib.nullcontext() if clock is None else clock.phase("shadow_passes"):
                    seeds = {n: stacks.params[n] for n in shadow_names}
                    rest = {n: v for n, v in stacks.params.items() if n not in seeds}
                    for n, g in shadow_step(seeds, rest, inputs, y).items():
                        grads[n] = grads[n] + g
            if not norms:  # the first batch's, as engine.train_epoch reads them
                norms = {"host": _stacked_norm([grads[n] for n in host_names], k, device)}
                for sid, slot_names in norm_names.items():
                    norms[sid] = _stacked_norm([grads[n] for n in slot_names], k, device)
            _sgd(stacks, grads, settings.momentum, settings.weight_decay)
            count = y[0].numel()
            loss_sum += loss * count
            correct_sum += correct
            samples += count
    finally:
        for sid in shadows:
            template.slot(sid).shadow_input = None
    if samples == 0:
        raise ValueError("train_group got no batches")
    _write_back(sessions, stacks)
    return _stats(loss_sum, correct_sum, samples, norms)


def _stats(
    loss_sum: Tensor, correct_sum: Tensor, samples: int, norms: dict[str, Tensor]
) -> list[TrainStats]:
    """Each session's epoch statistics, read back once."""
    host_norms = norms.pop("host").tolist()
    seed_norms = {sid: n.tolist() for sid, n in norms.items()}
    losses, corrects = loss_sum.tolist(), correct_sum.tolist()
    stats = []
    for i, host in enumerate(host_norms):
        usable = math.isfinite(host) and host > 0
        ratios = {sid: n[i] / host if usable else 0.0 for sid, n in seed_norms.items()}
        stats.append(
            TrainStats(
                loss=losses[i] / samples,
                accuracy=100.0 * corrects[i] / samples,
                samples=samples,
                gradient_ratios=ratios,
            )
        )
    return stats


def _prefixed(params: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"model.{n}": v for n, v in params.items()}


def _stacked_norm(grads: list[Tensor], k: int, device: torch.device) -> Tensor:
    """Per env (K,), the 2-norm of all of `grads` (each (K, ...)), as `engine._norm` takes it:
    the norm of the per-tensor norms."""
    if not grads:
        return torch.zeros(k, device=device)
    per_tensor = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads])
    return torch.linalg.vector_norm(per_tensor, dim=0)


@torch.no_grad()
def _sgd(stacks: _Stacks, grads: dict[str, Tensor], momentum: float, weight_decay: float) -> None:
    """torch.optim.SGD's update (no dampening, no Nesterov), op for op, on stacked tensors."""
    for name, lr in stacks.lrs.items():
        if lr is None:
            continue
        p, g = stacks.params[name], grads[name]
        if weight_decay != 0:
            g = g.add(p, alpha=weight_decay)
        if momentum != 0:
            buf = stacks.velocity.get(name)
            if buf is None:
                stacks.velocity[name] = buf = torch.clone(g).detach()
            else:
                buf.mul_(momentum).add_(g)
            g = buf
        p.add_(g, alpha=-lr)


@torch.no_grad()
def _write_back(sessions: Sequence[HostSession], stacks: _Stacks) -> None:
    """Each session's weights and momentum from the stacks (its own Parameter objects, which
    its optimizer holds)."""
    for i, (session, own) in enumerate(zip(sessions, stacks.named, strict=True)):
        state = session.optimizer.optimizer.state
        for name, p in own.items():
            p.copy_(stacks.params[name][i])
            if name in stacks.velocity:
                state[p]["momentum_buffer"] = stacks.velocity[name][i].clone()
