"""A seed slot: the place after a host segment where one seed can live, and its forward."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from esper.kasmina.alpha_schedule import AlphaSchedule
from esper.kasmina.blending import SeedGate, blend
from esper.kasmina.blueprints import get_blueprint
from esper.kasmina.families import get_family
from esper.kasmina.gates import PERMISSIVE, GateProfile, g2_advance, g3_fossilize
from esper.kasmina.host import SlotSpec
from esper.leyline import (
    DEFAULT_LIMITS,
    LIVE_STAGES,
    PROBATION_STAGES,
    BlendOp,
    Curve,
    LifecycleLimits,
    SlotReport,
    Stage,
    Tempo,
)

_ALPHA_COLUMNS_KEPT = 16  # a pass needs one or two (its batches and a smaller last one)


def shadow_rows(batch: int, fraction: float) -> int:
    """How many of a training batch's `batch` samples a shadow pass at `fraction` takes: at
    least one, ceil(fraction * batch) in all."""
    return max(1, math.ceil(fraction * batch))


@dataclass(frozen=True)
class BlendPlan:
    """What GERMINATE chose for the seed's later blending (used by ADVANCE)."""

    target: float
    tempo: Tempo
    curve: Curve


@dataclass
class SeedMeasurements:
    """What host training measured about the current seed (written by tolaria)."""

    contribution: float | None = None
    contribution_stderr: float | None = None
    contribution_trend: float | None = None
    prospective: float | None = None
    prospective_stderr: float | None = None
    gradient_ratio: float | None = None


class SeedSlot(nn.Module):
    """One slot. Its stage and alpha are changed only by `esper.kasmina.lifecycle`.

    Forward, with h the host activation and x = h.detach() while the seed is isolated:
    - no live seed: h;
    - GERMINATED / TRAINING: exactly h, so the host and its gradients are those of the model
      without the seed. The seed learns from the task loss as if fully blended through a
      shadow pass (`MorphogeneticModel.shadow_outputs`): h.detach() -> blend at alpha 1 -> the
      downstream host with its weights and normalisation statistics held fixed -> loss,
      gradients to this seed only. (A straight-through estimator, h + d - d.detach(), was tried
      first: it linearises the loss at d = 0 and never sees the seed's own effect, so d grew
      without bound; on digits a conv seed measured -60 to -70 pp at alpha 1 after 2 epochs.)
      With `shadow_fraction` f < 1 the shadow pass takes only the batch's first ceil(f * B)
      samples (a random subset: training batches are shuffled), a noisier but unbiased
      gradient at f of the cost.
    - BLENDING / HOLDING / FOSSILIZED: blend(op, h, seed(x) - x, alpha).
    - a fused pass (`config_alphas`): each configuration blended at its own alpha, and exactly h
      where that alpha is 0.
    """

    def __init__(
        self,
        spec: SlotSpec,
        limits: LifecycleLimits = DEFAULT_LIMITS,
        gates: GateProfile = PERMISSIVE,
        shadow_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 < shadow_fraction <= 1.0:
            raise ValueError(f"shadow_fraction must be in (0, 1], got {shadow_fraction!r}")
        self.slot_id, self.width, self.family = (
            spec.slot_id,
            spec.width,
            get_family(spec.family).name,
        )
        self.limits, self.gates = limits, gates
        self._anchor: Tensor
        self.register_buffer("_anchor", torch.zeros(0), persistent=False)  # tracks the device
        self.stage = Stage.DORMANT
        self.epochs_in_stage = 0
        self.seed_age = 0
        self.seed: nn.Module | None = None
        self.gate: SeedGate | None = None
        self.blueprint: str | None = None
        self.blend_op: BlendOp | None = None
        self.plan: BlendPlan | None = None
        self.alpha_schedule = AlphaSchedule()
        self.is_pruning = False
        self.is_fossilizing = False
        self.seed_output_sane = True
        self.measured = SeedMeasurements()
        self.shadow_input: Tensor | None = None
        self.shadow_fraction = shadow_fraction  # of each training batch the shadow pass takes
        # fused-pass alpha columns by (alphas, rows, dtype, device, dims): `_alpha_column`
        self._alpha_columns: dict[tuple[Any, ...], Tensor] = {}

    @property
    def alpha(self) -> float:
        if self.stage == Stage.FOSSILIZED:
            return 1.0
        if self.stage in (Stage.BLENDING, Stage.HOLDING):
            return self.alpha_schedule.value
        return 0.0

    @property
    def is_live(self) -> bool:
        return self.seed is not None and self.stage in LIVE_STAGES

    @property
    def is_isolated(self) -> bool:
        return self.stage in PROBATION_STAGES

    @property
    def seed_params(self) -> int:
        if self.seed is None:
            return 0
        return self.cost_of(self.blueprint or "", self.blend_op or BlendOp.ADD)

    def cost_of(self, blueprint: str, blend_op: BlendOp = BlendOp.ADD) -> int:
        """Parameters a `blueprint` seed planted here with `blend_op` has (GATE adds a gate's).

        Raises:
            ValueError: an unknown blueprint, naming the known ones.
        """
        count = get_blueprint(self.family, blueprint).param_count(self.width)
        return count + (SeedGate.param_count(self.width) if blend_op == BlendOp.GATE else 0)

    def seed_parameters(self) -> list[nn.Parameter]:
        modules = [m for m in (self.seed, self.gate) if m is not None]
        return [p for m in modules for p in m.parameters()]

    def plant(self, blueprint: str, blend_op: BlendOp, plan: BlendPlan) -> None:
        """Build a fresh seed module on this slot's device (the lifecycle calls this)."""
        module = get_blueprint(self.family, blueprint).build(self.width)
        self.seed = module.to(self._anchor.device)
        self.gate = (
            SeedGate(self.width, self.family).to(self._anchor.device)
            if blend_op == BlendOp.GATE
            else None
        )
        self.blueprint, self.blend_op, self.plan = blueprint, blend_op, plan
        self.alpha_schedule = AlphaSchedule()
        self.measured = SeedMeasurements()
        self.seed_age = 0
        self.seed_output_sane = True

    def clear(self) -> None:
        """Free the seed module (on entering EMBARGOED)."""
        self.seed = self.gate = None
        self.blueprint = self.blend_op = self.plan = None
        self.alpha_schedule = AlphaSchedule()
        self.measured = SeedMeasurements()
        self.is_pruning = self.is_fossilizing = False
        self.seed_age = 0
        self.shadow_input = None

    def probe_output_sane(self) -> bool:
        """Run the seed on a small random probe: finite output of the input's shape (gate G1)."""
        assert self.seed is not None
        probe = get_family(self.family).probe(self.width, self._anchor.device)
        with torch.no_grad():
            out = self.seed(probe)
        return out.shape == probe.shape and bool(torch.isfinite(out).all())

    @property
    def is_shadow_training(self) -> bool:
        """Invisible to the host, learning on its own shadow pass (see `shadow_output`)."""
        return self.is_live and self.stage in (Stage.GERMINATED, Stage.TRAINING)

    def forward(self, h: Tensor, config_alphas: Sequence[float] | None = None) -> Tensor:
        """The slot's output for host activation `h`.

        Args:
            h: (B, ...) host activation; in a fused pass (K*B, ...), K configurations of B
                samples each, stacked on the batch dimension.
            config_alphas: for a fused pass, the alpha of each of the K configurations.
        """
        if not self.is_live:
            return h
        if config_alphas is not None:
            return self._blend_configurations(h, config_alphas)
        if self.is_shadow_training:
            if self.training:
                rows = shadow_rows(h.shape[0], self.shadow_fraction)
                self.shadow_input = h[:rows].detach()  # this batch's shadow pass
            return h
        return self._blend(h, self.alpha)

    def _blend_configurations(self, h: Tensor, config_alphas: Sequence[float]) -> Tensor:
        """Configuration k of those stacked on h's batch dimension, blended at alpha k.

        A configuration at alpha 0 gets h itself and the seed never sees its samples: h + 0 * d
        equals h only while d is finite, and a seed gone NaN made the fused pass's real
        configuration NaN where the model returns h (the validation loss went NaN and ended the
        episode). The seed runs once, batched over the configurations that show it.
        """
        k = len(config_alphas)
        if k == 0 or h.shape[0] % k:
            raise ValueError(f"cannot split a batch of {h.shape[0]} into {k} configurations")
        shown = [i for i, a in enumerate(config_alphas) if a != 0]
        if not shown:
            return h
        alpha = self._alpha_column(tuple(config_alphas[i] for i in shown), h.shape[0] // k, h)
        if len(shown) == k:
            return self._blend(h, alpha)
        blocks = list(h.chunk(k))  # K x (B, ...)
        blended = self._blend(torch.cat([blocks[i] for i in shown]), alpha)
        for i, block in zip(shown, blended.chunk(len(shown)), strict=True):
            blocks[i] = block
        return torch.cat(blocks)

    def _alpha_column(self, alphas: tuple[float, ...], rows: int, like: Tensor) -> Tensor:
        """Each of `alphas` repeated `rows` times, shaped to broadcast against `like`'s batch.

        Made once per alphas and batch shape and kept: building it copies from the host, and on
        a GPU a copy from pageable memory waits for the stream, so one per batch would sync the
        evaluation pass at every batch. (Traced by torch.compile, it is made in the graph.)
        """
        if torch.compiler.is_compiling():
            column = torch.tensor(alphas, dtype=like.dtype, device=like.device)
            return column.repeat_interleave(rows).view(-1, *([1] * (like.dim() - 1)))
        key = (alphas, rows, like.dtype, like.device, like.dim())
        kept = self._alpha_columns.get(key)
        if kept is None:
            if len(self._alpha_columns) >= _ALPHA_COLUMNS_KEPT:
                self._alpha_columns.clear()
            column = torch.tensor(alphas, dtype=like.dtype, device=like.device)
            kept = column.repeat_interleave(rows).view(-1, *([1] * (like.dim() - 1)))
            self._alpha_columns[key] = kept
        return kept

    def _blend(self, h: Tensor, alpha: Tensor | float) -> Tensor:
        assert self.seed is not None and self.blend_op is not None
        x = h.detach() if self.is_isolated else h
        d = self.seed(x) - x
        g = self.gate(x) if self.gate is not None else None
        return blend(self.blend_op, h, d, alpha, g)

    def shadow_output(self) -> Tensor:
        """The slot's output with this seed fully blended in, from the last training batch's
        (detached) host activation: the start of the seed's shadow pass."""
        if self.shadow_input is None:
            raise RuntimeError(
                f"slot {self.slot_id}: no training forward since the last shadow pass"
            )
        h, self.shadow_input = self.shadow_input, None
        return self._blend(h, 1.0)

    def report(self) -> SlotReport:
        """The slot as decisions see it, with the gate verdicts of the active profile."""
        m = self.measured
        base = SlotReport(
            slot_id=self.slot_id,
            stage=self.stage,
            epochs_in_stage=self.epochs_in_stage,
            seed_age=self.seed_age,
            alpha=self.alpha,
            alpha_target=self.alpha_schedule.target if self.stage != Stage.FOSSILIZED else 1.0,
            alpha_curve=self.alpha_schedule.curve,
            alpha_steps_left=self.alpha_schedule.steps_left if self.stage == Stage.BLENDING else 0,
            blueprint=self.blueprint,
            blend=self.blend_op,
            seed_params=self.seed_params,
            contribution=m.contribution,
            contribution_stderr=m.contribution_stderr,
            contribution_trend=m.contribution_trend,
            prospective=m.prospective,
            prospective_stderr=m.prospective_stderr,
            gradient_ratio=m.gradient_ratio,
            is_pruning=self.is_pruning,
            is_fossilizing=self.is_fossilizing,
            seed_output_sane=self.seed_output_sane,
        )
        return replace(
            base,
            passes_advance_gate=base.stage == Stage.TRAINING
            and g2_advance(base, self.gates).passed,
            passes_fossilize_gate=base.stage == Stage.HOLDING
            and g3_fossilize(base, self.gates).passed,
        )
