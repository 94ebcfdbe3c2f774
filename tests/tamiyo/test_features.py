"""Masks as controllers read them: the slot mask given an op, and the flat per-head union."""

import math

import numpy as np
import pytest

from esper.leyline import (
    ALPHA_TARGETS,
    BlendOp,
    Curve,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    Tempo,
)
from esper.tamiyo.features import (
    ActionMasks,
    FeatureSpec,
    Observation,
    build_features,
    build_masks,
    flat_mask,
)
from esper.tamiyo.tracker import SignalTracker

BLUEPRINTS = ("norm", "attention", "depthwise")
SLOT_IDS = ("r0c0", "r0c1")
SPEC = FeatureSpec(SLOT_IDS, BLUEPRINTS, 25, math.log(10), host_params=1000)
LIMITS = LifecycleLimits(min_prune_age=5)
ALL_TEMPOS, ALL_TARGETS = [True] * len(Tempo), [True] * len(ALPHA_TARGETS)
NOT_INSTANT = [t != Tempo.INSTANT for t in Tempo]


def masks(*reports: SlotReport) -> ActionMasks:
    return build_masks(SPEC, {r.slot_id: r for r in reports}, LIMITS)


def split(flat: np.ndarray) -> list[list[bool]]:
    """The flat mask cut back into heads (op, slot, blueprint, blend, tempo, alpha, curve)."""
    sizes = list(SPEC.head_sizes.values())
    assert flat.shape == (sum(sizes),) and flat.dtype == bool
    return [part.tolist() for part in np.split(flat, np.cumsum(sizes)[:-1])]


def ops(*legal: Op) -> list[bool]:
    return [op in legal for op in Op]


def live(slot_id: str, stage: Stage, **kw: object) -> SlotReport:
    return SlotReport(slot_id, stage, blueprint="norm", **kw)  # type: ignore[arg-type]


def test_allows_reads_the_slot_mask_given_the_op() -> None:
    m = masks(SlotReport("r0c0", Stage.DORMANT), live("r0c1", Stage.GERMINATED, seed_age=1))
    assert m.allows(Op.GERMINATE, "r0c0") and not m.allows(Op.GERMINATE, "r0c1")
    assert not m.allows(Op.PRUNE, "r0c1")  # age 1 < min_prune_age 5
    with pytest.raises(ValueError, match="r9c9"):
        m.allows(Op.GERMINATE, "r9c9")


def test_flat_mask_of_an_empty_host() -> None:
    dormant = masks(SlotReport("r0c0", Stage.DORMANT), SlotReport("r0c1", Stage.DORMANT))
    assert split(flat_mask(dormant)) == [
        ops(Op.WAIT, Op.GERMINATE),
        [True, True],
        [True] * len(BLUEPRINTS),
        [True] * len(BlendOp),
        NOT_INSTANT,  # only GERMINATE uses the tempo head, and never at INSTANT
        ALL_TARGETS,
        [True] * len(Curve),
    ]


def test_flat_mask_is_the_union_over_the_legal_ops() -> None:
    holding = live("r0c0", Stage.HOLDING, seed_age=6, alpha=1.0, alpha_target=1.0)
    advancing = live("r0c1", Stage.TRAINING, seed_age=2, passes_advance_gate=True)
    head = split(flat_mask(masks(holding, advancing)))
    assert head[0] == ops(Op.WAIT, Op.ADVANCE, Op.SET_ALPHA_TARGET, Op.PRUNE)
    assert head[1] == [True, True]  # r0c0 for a retarget or a prune, r0c1 for an advance
    assert head[4] == ALL_TEMPOS  # a prune may be INSTANT
    assert head[5] == [a != 1.0 for a in ALPHA_TARGETS]  # a retarget must change the target


def test_flat_mask_marks_every_choice_of_a_head_no_legal_op_uses() -> None:
    # Nothing but WAIT is legal: the other heads are ignored, yet each must allow one choice.
    busy = masks(live("r0c0", Stage.GERMINATED, seed_age=1), SlotReport("r0c1", Stage.PRUNED))
    head = split(flat_mask(busy))
    assert head[0] == ops(Op.WAIT)
    assert all(all(choices) for choices in head[1:])


def test_an_observation_cannot_have_negative_epochs_left() -> None:
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    metrics = SignalTracker().update(0, 2.3, 10.0, 2.3, 10.0)
    features = build_features(SPEC, metrics, reports, 0.5)
    with pytest.raises(ValueError, match="-1"):
        Observation(features, build_masks(SPEC, reports, LIMITS), metrics, reports, epochs_left=-1)
