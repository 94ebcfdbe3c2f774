"""MorphogeneticModel: a host with seed slots, run segment -> slot -> segment ... -> head."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from esper.kasmina import lifecycle
from esper.kasmina.blueprints import blueprint_names, names_across
from esper.kasmina.gates import PERMISSIVE, GateProfile
from esper.kasmina.host import Host
from esper.kasmina.slot import SeedSlot
from esper.leyline import (
    DEFAULT_LIMITS,
    BlendOp,
    FactoredAction,
    IllegalActionError,
    LifecycleEvent,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    budget_left,
    check_budget,
    sort_slot_ids,
)


class MorphogeneticModel(nn.Module):
    """A host network plus one `SeedSlot` per enabled slot.

    Args:
        host: any module following the `Host` protocol.
        slots: ids of the slots to enable (default: all the host offers).
        limits: lifecycle timing rules.
        gates: gate profile (`PERMISSIVE` or `STRICT`).
        shadow_fraction: of each training batch, the share an invisible seed's shadow pass
            takes (1: all of it; see `SeedSlot`).

    Raises:
        SlotIdError: on a malformed slot id; ValueError on an id the host does not offer, or
            a `shadow_fraction` outside (0, 1].
    """

    def __init__(
        self,
        host: Host,
        slots: Sequence[str] | None = None,
        limits: LifecycleLimits = DEFAULT_LIMITS,
        gates: GateProfile = PERMISSIVE,
        shadow_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(host, nn.Module) or not isinstance(host, Host):
            raise TypeError(
                f"host must be an nn.Module with segments(), forward_segment() and head(), "
                f"got {type(host).__name__}"
            )
        self.host = host
        self.specs = host.segments()
        offered = [s.slot_id for s in self.specs]
        enabled = sort_slot_ids(offered if slots is None else slots)
        unknown = sorted(set(enabled) - set(offered))
        if unknown:
            raise ValueError(f"slots {unknown} are not offered by the host; offered: {offered}")
        self.slot_ids: list[str] = enabled  # numeric row-major: fixes the slot head's indices
        by_id = {s.slot_id: s for s in self.specs}
        # what GERMINATE may name here: every enabled slot's family's blueprints, each slot
        # planting only its own family's (a dense head after conv blocks offers both kinds)
        self.blueprints: tuple[str, ...] = names_across(by_id[sid].family for sid in enabled)
        self.limits = limits
        self.slots = nn.ModuleDict(
            {sid: SeedSlot(by_id[sid], limits, gates, shadow_fraction) for sid in enabled}
        )

    def slot(self, slot_id: str) -> SeedSlot:
        module = self.slots[slot_id]
        assert isinstance(module, SeedSlot)
        return module

    def seed_slots(self) -> list[SeedSlot]:
        return [self.slot(sid) for sid in self.slot_ids]

    def forward(self, x: Tensor) -> Tensor:
        for i, spec in enumerate(self.specs):
            x = self.host.forward_segment(i, x)
            if spec.slot_id in self.slots:
                x = self.slots[spec.slot_id](x)
        return self.host.head(x)

    def fused_forward(self, x: Tensor, configs: Sequence[Mapping[str, float]]) -> Tensor:
        """Run K alpha configurations in one batched pass (eval mode only).

        Each config maps slot ids to the alpha to force there; a live slot not named keeps its
        current alpha. The configurations share one pass of the batch (B, ...) up to the first
        slot where their alphas differ, then go on stacked (K*B, ...), every live slot blending
        each configuration at its own alpha, so one pass answers K "what if" questions. Where a
        configuration's alpha is 0 the slot passes the host activation through untouched, so
        configuration `{}` is exactly the plain forward, whatever the seeds compute.

        Returns:
            logits of shape (K, B, ...).
        """
        if self.training:
            raise RuntimeError(
                "fused_forward mixes configurations in BatchNorm statistics: eval() first"
            )
        k, b = len(configs), x.shape[0]
        if k == 0:
            raise ValueError("fused_forward needs at least one configuration")
        for config in configs:
            unknown = sorted(set(config) - set(self.slot_ids))
            if unknown:
                raise ValueError(
                    f"configuration names unknown slots {unknown}; enabled: {self.slot_ids}"
                )
        # One copy of the batch serves every configuration up to the first slot where their
        # alphas part; from there on, K copies stacked on the batch dimension (K*B, ...).
        h, stacked = x, False
        for i, spec in enumerate(self.specs):
            h = self.host.forward_segment(i, h)
            if spec.slot_id in self.slots:
                slot = self.slot(spec.slot_id)
                if slot.is_live:
                    alphas = [float(c.get(slot.slot_id, slot.alpha)) for c in configs]
                    if not stacked and len(set(alphas)) > 1:
                        h, stacked = torch.cat([h] * k), True
                    h = slot(h, config_alphas=alphas if stacked else alphas[:1])
        out = self.host.head(h)
        if not stacked:
            return out.unsqueeze(0).expand(k, *out.shape)
        return out.view(k, b, *out.shape[1:])

    def forward_from(self, position: int, x: Tensor) -> Tensor:
        """Run the segments after slot `position` (with their slots) and the head."""
        for i, spec in enumerate(self.specs[position + 1 :], start=position + 1):
            x = self.host.forward_segment(i, x)
            if spec.slot_id in self.slots:
                x = self.slots[spec.slot_id](x)
        return self.host.head(x)

    def shadow_outputs(self) -> list[tuple[SeedSlot, Tensor]]:
        """For every seed still invisible to the host, the model's output on the last training
        batch (its first `shadow_rows` samples) with that seed fully blended in and everything
        downstream held fixed (eval-mode BatchNorm, so the pass changes no running statistics).
        Backpropagate each loss into that seed's parameters only
        (`torch.autograd.grad(loss, slot.seed_parameters())`)."""
        shadows = [
            s for s in self.seed_slots() if s.is_shadow_training and s.shadow_input is not None
        ]
        if not shadows:
            return []
        was_training = self.training
        self.eval()
        try:
            position = {spec.slot_id: i for i, spec in enumerate(self.specs)}
            return [(s, self.forward_from(position[s.slot_id], s.shadow_output())) for s in shadows]
        finally:
            self.train(was_training)

    def execute(self, action: FactoredAction) -> list[LifecycleEvent]:
        if action.op == Op.WAIT:
            return []
        if action.slot is None or action.slot not in self.slots:
            raise IllegalActionError(
                f"{action.op.name} targets slot {action.slot!r}, which is not enabled; "
                f"enabled: {self.slot_ids}"
            )
        slot = self.slot(action.slot)
        if (
            action.op == Op.GERMINATE
            and self.limits.param_budget is not None
            and slot.stage == Stage.DORMANT  # else the lifecycle names what is wrong
            and action.blueprint in blueprint_names(slot.family)
        ):
            assert action.blueprint is not None  # FactoredAction guarantees it for GERMINATE
            cost = slot.cost_of(action.blueprint, action.blend or BlendOp.ADD)
            check_budget(action, cost, budget_left(self.reports(), self.limits))
        return lifecycle.execute(slot, action)

    def germination_costs(
        self, blueprints: Sequence[str]
    ) -> dict[str, dict[BlendOp, tuple[int, ...]]]:
        """Per enabled slot and blend, the parameters each of `blueprints` would add there (one
        of another layer family than the slot's never fits: `sys.maxsize`)."""

        def cost(slot: SeedSlot, name: str, blend: BlendOp) -> int:
            offered = name in blueprint_names(slot.family)
            return slot.cost_of(name, blend) if offered else sys.maxsize

        return {
            slot.slot_id: {
                blend: tuple(cost(slot, name, blend) for name in blueprints) for blend in BlendOp
            }
            for slot in self.seed_slots()
        }

    def end_epoch(self) -> None:
        for slot in self.seed_slots():
            lifecycle.end_epoch(slot)

    def advance_boundary(self) -> list[LifecycleEvent]:
        return [e for slot in self.seed_slots() for e in lifecycle.advance_boundary(slot)]

    def reports(self) -> dict[str, SlotReport]:
        return {slot.slot_id: slot.report() for slot in self.seed_slots()}

    def host_param_count(self) -> int:
        return sum(p.numel() for p in self.host.parameters())

    def seed_param_count(self) -> int:
        """Parameters of all live seeds (fossilized included)."""
        return sum(slot.seed_params for slot in self.seed_slots() if slot.is_live)
