"""Counterfactual evaluation: what each seed demonstrably does to validation accuracy.

For a seed the host can see (alpha > 0, still on probation), its contribution is
accuracy(real) - accuracy(that seed's alpha forced to 0). For a seed still invisible to the host
(GERMINATED / TRAINING), its prospective contribution is accuracy(that seed at alpha 1) -
accuracy(real). All configurations run in one fused pass on the same batches, so the difference
is paired: its standard error comes from the per-sample flips.
Fossilized seeds are measured too: rewards keep attributing accuracy to them, so keeping a seed
for good never costs the controller the credit it earned while the seed was on probation (when
fossils went unmeasured, PPO learned to hold seeds at alpha < 1 instead of fossilizing them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from esper.kasmina import MorphogeneticModel
from esper.leyline import Stage
from esper.tolaria.engine import EvalStats

_PROSPECTIVE_STAGES = (Stage.GERMINATED, Stage.TRAINING)


@dataclass(frozen=True)
class Probe:
    """One "what if" configuration and what it measures."""

    slot_id: str
    is_prospective: bool
    config: dict[str, float]


@dataclass(frozen=True)
class Contribution:
    slot_id: str
    is_prospective: bool
    value_pp: float  # percentage points of accuracy
    stderr_pp: float


def probes(model: MorphogeneticModel) -> list[Probe]:
    """The configurations to evaluate besides the real one (index 0, `{}`)."""
    found = []
    for slot in model.seed_slots():
        if not slot.is_live:
            continue
        if slot.stage in _PROSPECTIVE_STAGES:
            found.append(Probe(slot.slot_id, True, {slot.slot_id: 1.0}))
        elif slot.alpha > 0:
            found.append(Probe(slot.slot_id, False, {slot.slot_id: 0.0}))
    return found


def paired_difference(better: Tensor, worse: Tensor) -> tuple[float, float]:
    """Mean and standard error, in percentage points, of per-sample correctness differences.

    Args:
        better, worse: (N,) bool correctness of two configurations on the same samples.
    """
    d = better.double() - worse.double()  # (N,) in {-1, 0, 1}
    n = d.numel()
    stderr = float(d.std(unbiased=True)) / n**0.5 if n > 1 else 0.0
    return 100.0 * float(d.mean()), 100.0 * stderr


def contributions(found: list[Probe], val: EvalStats) -> list[Contribution]:
    """Turn a fused evaluation of the real configuration and `found` into contributions.

    A configuration whose loss is not finite counts as getting every sample wrong. Its argmax
    over NaN logits is meaningless (the first NaN wins: class 0, right for a tenth of the
    samples), so a seed gone NaN, probed at alpha 1, read as merely mediocre (measured on
    digits after one epoch: -9.5 pp, the host at 19.5%); counted wrong it is clearly harmful.

    Args:
        found: the probes evaluated as configurations 1.. (configuration 0 is the real model).
        val: the evaluation; `val.correct` is (1 + len(found), N).
    """
    if val.correct.shape[0] != 1 + len(found):
        raise ValueError(f"expected {1 + len(found)} configurations, got {val.correct.shape[0]}")
    correct = [
        row if math.isfinite(loss) else torch.zeros_like(row)
        for row, loss in zip(val.correct, val.losses, strict=True)
    ]
    real = correct[0]
    result = []
    for k, probe in enumerate(found, start=1):
        pair = (correct[k], real) if probe.is_prospective else (real, correct[k])
        value, stderr = paired_difference(*pair)
        result.append(Contribution(probe.slot_id, probe.is_prospective, value, stderr))
    return result


def record(model: MorphogeneticModel, measured: list[Contribution]) -> None:
    """Store contributions in the slots' measurements (with the trend since the last one)."""
    for c in measured:
        m = model.slot(c.slot_id).measured
        if c.is_prospective:
            m.prospective, m.prospective_stderr = c.value_pp, c.stderr_pp
        else:
            m.contribution_trend = None if m.contribution is None else c.value_pp - m.contribution
            m.contribution, m.contribution_stderr = c.value_pp, c.stderr_pp


__all__ = ["Contribution", "Probe", "contributions", "paired_difference", "probes", "record"]
