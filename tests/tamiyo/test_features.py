"""Masks as controllers read them: the slot mask given an op, and the flat per-head union."""

import math
from dataclasses import replace

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
    restrict_masks,
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


def dormant_and_holding() -> ActionMasks:
    """r0c0 empty (GERMINATE legal), r0c1 holding at alpha 1 (SET_ALPHA_TARGET and PRUNE)."""
    holding = live("r0c1", Stage.HOLDING, seed_age=6, alpha=1.0, alpha_target=1.0)
    return masks(SlotReport("r0c0", Stage.DORMANT), holding)


def test_the_full_action_space_keeps_the_masks() -> None:
    m = dormant_and_holding()
    assert restrict_masks(m, "full") == m


def test_the_simple_action_space_plants_seeds_as_a_plan_does() -> None:
    full = dormant_and_holding()
    assert full.op.tolist() == ops(Op.WAIT, Op.GERMINATE, Op.SET_ALPHA_TARGET, Op.PRUNE)
    assert full.tempo[Op.GERMINATE].tolist() == NOT_INSTANT  # so there is something to remove
    assert full.blend.all() and full.curve.all()

    simple = restrict_masks(full, "simple")

    assert not simple.op[Op.SET_ALPHA_TARGET] and not simple.slot[Op.SET_ALPHA_TARGET].any()
    assert simple.blend.tolist() == [[b == BlendOp.ADD for b in BlendOp]] * len(SLOT_IDS)
    assert simple.curve.tolist() == [c == Curve.LINEAR for c in Curve]
    assert simple.tempo[Op.GERMINATE].tolist() == [t == Tempo.FAST for t in Tempo]
    assert simple.tempo[Op.PRUNE].tolist() == full.tempo[Op.PRUNE].tolist() == ALL_TEMPOS
    germinable = np.flatnonzero(full.slot[Op.GERMINATE])
    assert germinable.tolist() == [0]
    for j in germinable:
        assert simple.alpha_target[Op.GERMINATE, j].tolist() == [a == 1.0 for a in ALPHA_TARGETS]
    assert simple.op[Op.GERMINATE] and np.array_equal(
        simple.slot[Op.GERMINATE], full.slot[Op.GERMINATE]
    )
    for op in set(Op) - {Op.GERMINATE, Op.SET_ALPHA_TARGET}:
        assert simple.op[op] == full.op[op], op
        for head in ("slot", "tempo", "alpha_target"):
            assert np.array_equal(getattr(simple, head)[op], getattr(full, head)[op]), (op, head)
    assert np.array_equal(simple.blueprint, full.blueprint)
    assert simple.slot_ids == full.slot_ids
    assert full == dormant_and_holding()  # the full masks are not modified in place


@pytest.mark.parametrize(
    "reports",
    [
        (SlotReport("r0c0", Stage.DORMANT), SlotReport("r0c1", Stage.DORMANT)),
        (SlotReport("r0c0", Stage.DORMANT), live("r0c1", Stage.HOLDING, seed_age=6, alpha=1.0)),
        (
            live("r0c0", Stage.HOLDING, seed_age=6, alpha=0.5, alpha_target=0.5),
            live("r0c1", Stage.TRAINING, seed_age=2, passes_advance_gate=True),
        ),
        (live("r0c0", Stage.GERMINATED, seed_age=1), SlotReport("r0c1", Stage.PRUNED)),
    ],
)
def test_the_simple_masks_allow_nothing_the_full_ones_forbid(
    reports: tuple[SlotReport, ...],
) -> None:
    full = masks(*reports)
    simple = restrict_masks(full, "simple")
    for head, allowed in simple.as_dict().items():
        everything = full.as_dict()[head]
        assert allowed.shape == everything.shape and allowed.dtype == bool, head
        assert np.all(allowed <= everything), head
    assert simple.op[Op.WAIT]


def test_an_unknown_action_space_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="'tiny'"):
        restrict_masks(dormant_and_holding(), "tiny")  # type: ignore[arg-type]


# -- a parameter budget --------------------------------------------------------------------------

BUDGET = LifecycleLimits(min_prune_age=5, param_budget=100)


def costs(*row: int, gate: int) -> dict[BlendOp, tuple[int, ...]]:
    """What each of BLUEPRINTS (norm, attention, depthwise) adds per blend; a gate adds `gate`."""
    return {b: tuple(c + (gate if b == BlendOp.GATE else 0) for c in row) for b in BlendOp}


COSTS = {"r0c0": costs(12, 60, 64, gate=5), "r0c1": costs(24, 120, 128, gate=9)}


def test_a_budget_masks_the_blueprints_that_do_not_fit_each_slot() -> None:
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    m = build_masks(SPEC, reports, BUDGET, COSTS)
    assert m.blueprint.tolist() == [[True, True, True], [True, False, False]]
    assert m.allows_planting("r0c0", "depthwise") and not m.allows_planting("r0c1", "depthwise")
    assert split(flat_mask(m))[2] == [True, True, True]  # the union over the slots
    assert m.blend.all()  # every legal blueprint fits with a gate too (64 + 5, 24 + 9)


def test_a_blend_is_legal_only_if_every_legal_blueprint_fits_with_it() -> None:
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    m = build_masks(SPEC, reports, LifecycleLimits(param_budget=66), COSTS)
    assert m.blueprint[0].tolist() == [True, True, True]  # depthwise: 64 with ADD
    assert m.blend[0].tolist() == [True, True, False]  # 69 with GATE
    assert not m.allows_planting("r0c0", "norm", BlendOp.GATE)  # fits, but the heads are apart
    assert m.allows_planting("r0c0", "depthwise", BlendOp.MULTIPLY)


def test_the_budget_left_is_what_the_live_seeds_leave() -> None:
    planted = live("r0c0", Stage.TRAINING, seed_age=1, seed_params=64)
    m = build_masks(
        SPEC, {"r0c0": planted, "r0c1": SlotReport("r0c1", Stage.DORMANT)}, BUDGET, COSTS
    )
    assert m.blueprint[1].tolist() == [True, False, False]  # 36 left: norm (24) only
    tight = LifecycleLimits(param_budget=80)  # 16 left: nothing fits r0c1
    m = build_masks(
        SPEC, {"r0c0": planted, "r0c1": SlotReport("r0c1", Stage.DORMANT)}, tight, COSTS
    )
    assert not m.allows(Op.GERMINATE, "r0c1") and not m.op[Op.GERMINATE]
    assert not m.allows_planting("r0c1", "norm")
    # A pruned seed's slot holds nothing live: its parameters no longer count.
    pruned = SlotReport("r0c0", Stage.EMBARGOED, seed_params=64)
    m = build_masks(SPEC, {"r0c0": pruned, "r0c1": SlotReport("r0c1", Stage.DORMANT)}, tight, COSTS)
    assert m.blueprint[1].tolist() == [True, False, False]


def test_no_budget_allows_every_blueprint_and_a_budget_needs_the_costs() -> None:
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    free = build_masks(SPEC, reports, LIMITS)  # what every policy trained before budgets saw
    assert free.blueprint.shape == (len(SLOT_IDS), len(BLUEPRINTS)) and free.blueprint.all()
    assert free.blend.shape == (len(SLOT_IDS), len(BlendOp)) and free.blend.all()
    with pytest.raises(ValueError, match="germination costs"):
        build_masks(SPEC, reports, BUDGET)
    with pytest.raises(ValueError, match="budget"):
        LifecycleLimits(param_budget=-1)
    m = build_masks(SPEC, reports, LIMITS)
    with pytest.raises(ValueError, match="lora"):
        m.allows_planting("r0c0", "lora")


def test_each_slot_plants_only_the_blueprints_offered_there() -> None:
    """A host of two layer families: each slot's row of the blueprint mask is its family's,
    with or without a budget, and a slot offered none cannot GERMINATE."""
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    spec = replace(SPEC, offered=(("norm", "depthwise"), ()))
    m = build_masks(spec, reports, LIMITS)
    assert m.blueprint.tolist() == [[True, False, True], [False, False, False]]
    assert m.allows(Op.GERMINATE, "r0c0") and not m.allows(Op.GERMINATE, "r0c1")
    spec = replace(SPEC, offered=(("norm", "depthwise"), ("attention", "depthwise")))
    m = build_masks(spec, reports, BUDGET, COSTS)  # r0c1: 120 and 128 over the budget
    assert m.blueprint.tolist() == [[True, False, True], [False, False, False]]
    with pytest.raises(ValueError, match="offered has 1 rows for 2 slots"):
        replace(SPEC, offered=(("norm",),))


def test_the_simple_action_space_keeps_the_budget() -> None:
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    simple = restrict_masks(build_masks(SPEC, reports, BUDGET, COSTS), "simple")
    assert simple.blueprint.tolist() == [[True, True, True], [True, False, False]]
    assert simple.blend.tolist() == [[b == BlendOp.ADD for b in BlendOp]] * len(SLOT_IDS)
