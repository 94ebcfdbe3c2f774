import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esper.leyline import (
    LIVE_STAGES,
    BlendOp,
    EpochMetrics,
    FactoredAction,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    check_action,
    flat_to_factored,
    legal_ops,
    sort_slot_ids,
)
from esper.tamiyo.features import FeatureSpec, Observation, build_features, build_masks
from esper.tamiyo.heuristic import HeuristicConfig, HeuristicController, epochs_to_judge
from esper.tamiyo.policy import HeuristicPolicy, PlanPolicy

BLUEPRINTS = ("norm", "attention", "depthwise")
LIMITS = LifecycleLimits(min_prune_age=5, embargo_epochs=5)
EPISODE_LENGTH = 25
STDERR = 0.3  # a typical paired standard error on digits, in pp


def metrics(epoch: int = 10, plateau: int = 3, is_stabilized: bool = True) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=0.5,
        train_accuracy=80.0,
        val_loss=0.6,
        val_accuracy=78.0,
        val_loss_delta=0.0,
        val_accuracy_delta=0.1,
        best_val_accuracy=78.0,
        plateau_epochs=plateau,
        is_stabilized=is_stabilized,
    )


def slot(slot_id: str, stage: Stage = Stage.DORMANT, **kw: Any) -> SlotReport:
    if stage in LIVE_STAGES:
        kw.setdefault("blueprint", "norm")
    return SlotReport(slot_id=slot_id, stage=stage, **kw)


def slots(*reports: SlotReport) -> dict[str, SlotReport]:
    return {r.slot_id: r for r in reports}


def observation(
    reports: dict[str, SlotReport],
    m: EpochMetrics | None = None,
    limits: LifecycleLimits = LIMITS,
    episode_length: int = EPISODE_LENGTH,
    blueprints: tuple[str, ...] = BLUEPRINTS,
    costs: Mapping[str, Mapping[BlendOp, Sequence[int]]] | None = None,
) -> Observation:
    """What the env would show: masks from `limits` (and `costs`, under a parameter budget),
    the epochs left from `episode_length`."""
    m = m or metrics()
    spec = FeatureSpec(
        tuple(sort_slot_ids(reports)), blueprints, episode_length, math.log(10), host_params=1000
    )
    return Observation(
        build_features(spec, m, reports, 0.5),
        build_masks(spec, reports, limits, costs),
        m,
        reports,
        epochs_left=episode_length - m.epoch,
    )


def decide(
    ctl: HeuristicController, reports: dict[str, SlotReport], m: EpochMetrics | None = None
) -> FactoredAction:
    return ctl.decide(observation(reports, m, blueprints=ctl.blueprints))


def controller(**config: Any) -> HeuristicController:
    return HeuristicController(BLUEPRINTS, HeuristicConfig(**config))


def germinate(blueprint: str, slot_id: str) -> FactoredAction:
    return flat_to_factored(f"GERMINATE_{blueprint.upper()}", slot_id, BLUEPRINTS)


def training(age: int, prospective: float | None, **kw: Any) -> SlotReport:
    kw.setdefault("prospective_stderr", None if prospective is None else STDERR)
    return slot("r0c0", Stage.TRAINING, seed_age=age, prospective=prospective, **kw)


def blending(age: int, contribution: float, **kw: Any) -> SlotReport:
    kw.setdefault("contribution_stderr", STDERR)
    return slot("r0c0", Stage.BLENDING, seed_age=age, contribution=contribution, alpha=0.4, **kw)


def holding(contribution: float, stderr: float = STDERR, **kw: Any) -> SlotReport:
    kw.setdefault("passes_fossilize_gate", True)
    kw.setdefault("seed_age", 9)
    return slot(
        "r0c0",
        Stage.HOLDING,
        alpha=1.0,
        alpha_target=1.0,
        contribution=contribution,
        contribution_stderr=stderr,
        **kw,
    )


def decisions(ctl: HeuristicController, reports: list[SlotReport]) -> list[Op]:
    return [decide(ctl, slots(r)).op for r in reports]


# --- germination ---------------------------------------------------------------------------


def test_no_germination_before_the_minimum_epoch() -> None:
    dormant = slots(slot("r0c0"))
    assert decide(controller(), dormant, metrics(epoch=4)) == FactoredAction.wait()
    assert decide(controller(), dormant, metrics(epoch=5)) == germinate("norm", "r0c0")


def test_no_germination_before_a_plateau() -> None:
    dormant = slots(slot("r0c0"))
    assert decide(controller(), dormant, metrics(plateau=1)) == FactoredAction.wait()


def test_an_unstabilized_host_needs_a_longer_plateau() -> None:
    dormant = slots(slot("r0c0"))
    assert decide(controller(), dormant, metrics(plateau=2, is_stabilized=False)).op == Op.WAIT
    assert decide(controller(), dormant, metrics(plateau=3, is_stabilized=False)).op == Op.GERMINATE


def test_germinates_the_first_dormant_slot_in_numeric_order_with_the_first_blueprint() -> None:
    reports = slots(slot("r1c0"), slot("r0c10"), slot("r0c2", Stage.EMBARGOED))
    assert decide(controller(), reports) == germinate("norm", "r0c10")


def test_blueprint_order_sets_the_rotation() -> None:
    ctl = controller(blueprint_order=("depthwise", "norm"))
    picked = [decide(ctl, slots(slot("r0c0"))).blueprint for _ in range(3)]
    assert picked == ["depthwise", "norm", "depthwise"]


def test_the_rotation_skips_blueprints_over_the_parameter_budget() -> None:
    ctl = controller(blueprint_order=("depthwise", "attention", "norm"))
    costs = {"r0c0": dict.fromkeys(BlendOp, (12, 40, 64))}  # norm, attention, depthwise
    budget = LifecycleLimits(min_prune_age=5, param_budget=50)
    obs = observation(slots(slot("r0c0")), limits=budget, costs=costs)
    assert [ctl.decide(obs).blueprint for _ in range(3)] == ["attention", "norm", "attention"]
    tight = observation(slots(slot("r0c0")), limits=replace(budget, param_budget=11), costs=costs)
    assert ctl.decide(tight) == FactoredAction.wait()  # nothing fits: GERMINATE is not legal


def test_under_a_budget_the_heuristic_tries_the_next_slot() -> None:
    ctl = controller()
    ctl.penalties["norm"] = 10.0  # over the bar: the only blueprint that fits r0c0
    costs = {
        "r0c0": dict.fromkeys(BlendOp, (12, 40, 64)),
        "r0c1": dict.fromkeys(BlendOp, (5, 8, 90)),
    }
    budget = LifecycleLimits(min_prune_age=5, param_budget=20)
    obs = observation(slots(slot("r0c0"), slot("r0c1")), limits=budget, costs=costs)
    assert ctl.decide(obs) == germinate("attention", "r0c1")


def test_one_seed_in_flight_at_a_time() -> None:
    dormant = slot("r0c1")
    for stage in (Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING):
        busy = slots(slot("r0c0", stage, seed_age=1), dormant)
        assert decide(controller(), busy) == FactoredAction.wait()
    settled = slots(holding(0.2, seed_age=1), dormant)
    assert decide(controller(), settled) == germinate("norm", "r0c1")


def test_rotation_skips_a_penalised_blueprint_until_the_penalty_decays() -> None:
    ctl = controller(prune_penalty=8.0, blueprint_order=("norm", "attention"))
    # A norm seed measures +1.5 pp, then falls to -1.0 pp once old enough to prune.
    assert decisions(ctl, [training(4, 1.5), training(5, -1.0)]) == [Op.WAIT, Op.PRUNE]
    assert ctl.penalties["norm"] == 8.0
    dormant = slots(slot("r0c0"))
    # Decayed to 4.0 > 3.0: norm is skipped; then 2.0: norm is back in its turn.
    assert decide(ctl, dormant) == germinate("attention", "r0c0")
    assert decide(ctl, dormant) == germinate("norm", "r0c0")
    assert ctl.penalties == {"norm": 2.0, "attention": 0.0, "depthwise": 0.0}


def test_germinates_only_with_time_left_to_judge_the_seed() -> None:
    # Germinate, 2 epochs in TRAINING, a FAST (3-epoch) blend, then the FOSSILIZE step: 7.
    assert epochs_to_judge(HeuristicConfig()) == 7
    dormant = slots(slot("r0c0"))
    for epoch, op in ((18, Op.GERMINATE), (19, Op.WAIT), (24, Op.WAIT)):
        assert decide(controller(), dormant, metrics(epoch=epoch)).op == op, epoch
    # A longer stay in TRAINING moves the last chance earlier.
    assert epochs_to_judge(HeuristicConfig(advance_min_epochs=4)) == 9
    assert decide(controller(advance_min_epochs=4), dormant, metrics(epoch=17)).op == Op.WAIT
    assert decide(controller(advance_min_epochs=4), dormant, metrics(epoch=16)).op == Op.GERMINATE


def test_the_policy_never_germinates_too_late_to_judge() -> None:
    """Regression: at epoch 24 of 25 the heuristic planted a seed that could never be judged."""
    policy = HeuristicPolicy(BLUEPRINTS)
    dormant = slots(slot("r0c0"))
    ops = [
        policy.act([observation(dormant, metrics(epoch=e))], policy.initial_state(1)).actions[0].op
        for e in (18, 19, 24)
    ]
    assert ops == [Op.GERMINATE, Op.WAIT, Op.WAIT]


def test_waits_when_every_blueprint_is_penalised() -> None:
    ctl = controller(prune_penalty=8.0, blueprint_order=("norm",))
    assert decisions(ctl, [training(4, 1.5), training(5, -1.0)]) == [Op.WAIT, Op.PRUNE]
    dormant = slots(slot("r0c0"))
    assert decide(ctl, dormant) == FactoredAction.wait()
    assert decide(ctl, dormant) == germinate("norm", "r0c0")


# --- advance, fossilize, prune -------------------------------------------------------------


def test_advances_a_seed_unless_its_prospective_contribution_is_clearly_harmful() -> None:
    # Clearly harmful means below -2 standard errors, whatever the size in pp.
    ready = {"passes_advance_gate": True, "epochs_in_stage": 2}

    def advances(prospective: float, stderr: float) -> bool:
        seed = training(3, prospective, prospective_stderr=stderr, **ready)
        return decisions(controller(), [seed]) == [Op.ADVANCE]

    assert advances(-0.3, 0.3) and advances(-1.9, 1.0) and advances(0.0, 0.0)
    assert not advances(-5.0, 1.0)
    assert not advances(-0.4, 0.1)  # small but certain harm (a fixed -0.5 pp allowance passed it)


def test_a_measured_seed_advances_only_after_the_minimum_epochs_and_the_gate() -> None:
    early = [training(n + 1, 0.8, passes_advance_gate=True, epochs_in_stage=n) for n in (1, 2)]
    assert decisions(controller(), early) == [Op.WAIT, Op.ADVANCE]
    assert decisions(controller(), [training(3, 0.8, epochs_in_stage=2)]) == [Op.WAIT]  # gate


def test_advances_an_unmeasured_seed_after_three_epochs_in_training() -> None:
    unmeasured = [
        training(n + 1, None, passes_advance_gate=True, epochs_in_stage=n) for n in (1, 2, 3)
    ]
    assert decisions(controller(), unmeasured) == [Op.WAIT, Op.WAIT, Op.ADVANCE]


def test_fossilizes_on_a_contribution_above_two_standard_errors_only() -> None:
    assert decide(controller(), slots(holding(1.5, 0.3))).op == Op.FOSSILIZE
    assert decide(controller(), slots(holding(0.4, 0.1))).op == Op.FOSSILIZE  # small but certain
    assert decide(controller(), slots(holding(3.0, 1.6))).op == Op.WAIT  # large but noisy
    assert decide(controller(), slots(holding(1.0, 0.6))).op == Op.WAIT  # < 2 stderr
    assert decide(controller(), slots(holding(0.0, 0.0))).op == Op.WAIT  # no sample flipped
    assert decide(controller(significance_stderrs=3.0), slots(holding(0.8, 0.3))).op == Op.WAIT
    negative = holding(-1.0, seed_age=3)  # too young to prune
    assert decide(controller(), slots(negative)).op == Op.WAIT
    refused = holding(1.5, passes_fossilize_gate=False)  # gate G3 says no
    assert decide(controller(), slots(refused)).op == Op.WAIT


def test_prunes_on_a_drop_only_once_old_enough() -> None:
    ctl = controller()
    sequence = [blending(2, 3.0), blending(3, -0.5), blending(4, -0.4), blending(5, -0.6)]
    assert decisions(ctl, sequence) == [Op.WAIT, Op.WAIT, Op.WAIT, Op.PRUNE]
    assert "fell from +3.00 to -0.60" in ctl.last_reason


def test_a_drop_prunes_only_a_seed_that_now_hurts() -> None:
    # 2.6 pp below its best but still >= 0 (and not clearly helping): a noisy dip, kept.
    still_helping = [blending(2, 3.0), blending(3, 0.5), blending(4, 0.6), blending(5, 0.4)]
    assert decisions(controller(), still_helping) == [Op.WAIT] * 4
    hurting = [blending(2, 3.0), blending(3, 0.5), blending(4, 0.6), blending(5, -0.1)]
    assert decisions(controller(), hurting) == [Op.WAIT] * 3 + [Op.PRUNE]


def test_a_drop_prunes_when_it_exceeds_two_standard_errors_of_the_difference() -> None:
    def fall(best: float, now: float, stderr: float) -> list[Op]:
        first = blending(5, best, contribution_stderr=stderr)
        second = blending(6, now, contribution_stderr=stderr)
        return decisions(controller(), [first, second])

    # 1.5 pp with errors of 0.2 each: 5.3 standard errors of the difference, clearly a fall.
    assert fall(1.0, -0.5, stderr=0.2) == [Op.WAIT, Op.PRUNE]
    # 3.5 pp with errors of 1.5 each: 1.65 standard errors of the difference, noise.
    assert fall(3.0, -0.5, stderr=1.5) == [Op.WAIT, Op.WAIT]


def test_prunes_after_patience_without_improvement() -> None:
    flat = [training(age, 0.2) for age in range(1, 7)]  # best set at age 1, never beaten
    assert decisions(controller(), flat) == [Op.WAIT] * 5 + [Op.PRUNE]


def test_prunes_a_seed_that_stays_harmful_even_while_improving() -> None:
    harmful = [training(age, -6.0 + age) for age in range(1, 6)]  # -5 .. -1, a new best each time
    assert decisions(controller(), harmful) == [Op.WAIT] * 4 + [Op.PRUNE]


def test_never_prunes_a_seed_that_clearly_helps_now() -> None:
    # +2.9 pp never beats the +5 pp best: prune_patience epochs without improvement, yet kept.
    refused = {"passes_fossilize_gate": False}
    holds = [holding(2.9, 0.5, seed_age=age, **refused) for age in range(8, 13)]
    assert decisions(controller(), [blending(7, 5.0), *holds]) == [Op.WAIT] * 6


def test_bookkeeping_restarts_with_a_new_seed_or_a_new_signal() -> None:
    # Each second report would be a prunable 5.4 pp drop to below 0 for the same seed.
    same_seed = [blending(7, 5.0), blending(8, -0.4)]
    assert decisions(controller(), same_seed) == [Op.WAIT, Op.PRUNE]
    other_seed = [blending(7, 5.0), blending(8, -0.4, blueprint="attention")]
    assert decisions(controller(), other_seed) == [Op.WAIT, Op.WAIT]
    replanted = [blending(9, 5.0), blending(6, -0.4)]  # seed age went back: a new seed
    assert decisions(controller(), replanted) == [Op.WAIT, Op.WAIT]
    # Prospective (alpha 1, TRAINING) and contribution at a partial alpha are not comparable.
    blend_in = [training(6, 5.0), blending(7, -0.4)]
    assert decisions(controller(), blend_in) == [Op.WAIT, Op.WAIT]


def test_pruning_comes_first_then_fossilizing() -> None:
    failing = slot(
        "r0c2", Stage.BLENDING, seed_age=6, contribution=-1.0, contribution_stderr=STDERR
    )
    ctl = controller(prune_patience=1)
    assert decide(ctl, slots(holding(1.5), failing)) == flat_to_factored(
        "PRUNE", "r0c2", BLUEPRINTS
    )
    advancing = slot(
        "r0c1",
        Stage.TRAINING,
        prospective=1.0,
        prospective_stderr=STDERR,
        passes_advance_gate=True,
        epochs_in_stage=2,
    )
    assert decide(controller(), slots(advancing, holding(1.5))).op == Op.FOSSILIZE


# --- contract ------------------------------------------------------------------------------


def test_unknown_blueprint_in_order_is_named() -> None:
    with pytest.raises(ValueError, match="conv_huge"):
        controller(blueprint_order=("norm", "conv_huge"))


def test_bad_config_is_refused() -> None:
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="significance_stderrs"):
            HeuristicConfig(significance_stderrs=bad)


def test_bad_observations_are_refused() -> None:
    with pytest.raises(ValueError, match="key 'r0c1'"):
        decide(controller(), {"r0c1": slot("r0c0")})
    with pytest.raises(ValueError, match="lora"):
        decide(controller(), slots(training(2, 0.1, blueprint="lora")))
    with pytest.raises(ValueError, match=r"contribution 1.5 pp without its standard error"):
        decide(controller(), slots(holding(1.5, stderr=None)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prospective"):
        decide(controller(), slots(training(2, 0.1, prospective_stderr=None)))
    masks_elsewhere = replace(observation(slots(slot("r0c1"))), reports=slots(slot("r0c0")))
    with pytest.raises(ValueError, match="masks cover slots"):
        controller().decide(masks_elsewhere)


def test_works_on_other_topologies() -> None:
    names = ("norm", "lora", "lora_large", "attention", "mlp_small", "mlp")
    ctl = HeuristicController(names, HeuristicConfig(blueprint_order=("lora", "mlp")))
    assert decide(ctl, slots(slot("r0c0"))).blueprint == "lora"


def test_state_round_trip_and_reset() -> None:
    sequence = [training(4, 1.5), training(5, -1.0), training(1, 0.5), blending(3, 1.0)]
    whole = controller(prune_penalty=8.0)
    expected = [decide(whole, slots(r)) for r in sequence]
    first = controller(prune_penalty=8.0)
    for r in sequence[:2]:
        decide(first, slots(r))
    resumed = controller(prune_penalty=8.0)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.state_dict() == first.state_dict()
    assert [decide(resumed, slots(r)) for r in sequence[2:]] == expected[2:]
    assert resumed.state_dict() == whole.state_dict()
    resumed.reset()
    assert resumed.state_dict() == controller().state_dict()


def test_load_refuses_another_blueprint_set() -> None:
    other = HeuristicController(("norm", "lora"))
    with pytest.raises(ValueError, match="penalties"):
        controller().load_state_dict(other.state_dict())


# --- property: never an illegal action -----------------------------------------------------

SLOT_IDS = ("r0c0", "r0c1", "r0c10", "r1c0")
maybe_pp = st.none() | st.floats(-10, 10)
stderrs = st.floats(0, 3)


@st.composite
def reports(draw: st.DrawFn, slot_id: str) -> SlotReport:
    stage = draw(st.sampled_from(Stage))
    is_ramping = stage == Stage.BLENDING
    contribution, prospective = draw(maybe_pp), draw(maybe_pp)
    return SlotReport(
        slot_id=slot_id,
        stage=stage,
        epochs_in_stage=draw(st.integers(0, 8)),
        seed_age=draw(st.integers(0, 12)),
        alpha=draw(st.floats(0, 1)),
        blueprint=draw(st.sampled_from(BLUEPRINTS)) if stage in LIVE_STAGES else None,
        contribution=contribution,
        contribution_stderr=None if contribution is None else draw(stderrs),
        prospective=prospective,
        prospective_stderr=None if prospective is None else draw(stderrs),
        is_pruning=is_ramping and draw(st.booleans()),
        is_fossilizing=is_ramping and draw(st.booleans()),
        passes_advance_gate=draw(st.booleans()),
        passes_fossilize_gate=draw(st.booleans()),
    )


@st.composite
def episodes(draw: st.DrawFn) -> list[tuple[EpochMetrics, dict[str, SlotReport]]]:
    ids = draw(st.lists(st.sampled_from(SLOT_IDS), min_size=1, max_size=4, unique=True))
    steps = []
    for _ in range(draw(st.integers(1, 8))):
        m = metrics(
            epoch=draw(st.integers(0, EPISODE_LENGTH)),
            plateau=draw(st.integers(0, 8)),
            is_stabilized=draw(st.booleans()),
        )
        steps.append((m, {i: draw(reports(i)) for i in ids}))
    return steps


@settings(max_examples=200, deadline=None)
@given(
    episode=episodes(),
    patience=st.integers(1, 5),
    penalty=st.floats(0, 10),
    order=st.permutations(BLUEPRINTS),
    min_prune_age=st.integers(0, 12),
)
def test_never_returns_an_action_the_masks_forbid(
    episode: list[tuple[EpochMetrics, dict[str, SlotReport]]],
    patience: int,
    penalty: float,
    order: list[str],
    min_prune_age: int,
) -> None:
    """Whatever limits the env's masks were built under, the heuristic stays inside them."""
    limits = LifecycleLimits(min_prune_age=min_prune_age)
    ctl = controller(prune_patience=patience, prune_penalty=penalty, blueprint_order=tuple(order))
    for m, step_reports in episode:
        action = ctl.decide(observation(step_reports, m, limits))
        if action.slot is not None:
            assert action.op in legal_ops(step_reports[action.slot], limits)
        check_action(action, step_reports, limits, BLUEPRINTS)


def test_prunes_only_when_the_env_masks_allow_it() -> None:
    """Regression: under min_prune_age=8 the heuristic, judging legality with the default
    limits (5), sent a PRUNE at age 6 that the env refused."""
    limits = LifecycleLimits(min_prune_age=8)
    policy = HeuristicPolicy(BLUEPRINTS)  # built as `esper evaluate` builds it
    state = policy.initial_state(1)
    ops = []
    for age in range(1, 9):  # a seed that never improves on its first measurement
        step_reports = slots(training(age, 0.2))
        (action,) = policy.act([observation(step_reports, limits=limits)], state).actions
        check_action(action, step_reports, limits, BLUEPRINTS)
        ops.append(action.op)
    assert ops == [Op.WAIT] * 7 + [Op.PRUNE]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("conv_light@r9c9", "plan part 'conv_light@r9c9'"),
        ("nope@r0c0", "plan part 'nope@r0c0'"),
        ("conv_light", "plan part 'conv_light'"),
        ("norm@r0c0+conv_light@r0c0", "names a slot twice"),
    ],
)
def test_a_plan_text_is_checked_against_the_host(text: str, problem: str) -> None:
    slots, blueprints = ("r0c0", "r0c1"), ("norm", "conv_light")
    assert PlanPolicy.parse("norm@r0c1+conv_light@r0c0", slots, blueprints) == [
        ("r0c1", "norm"),
        ("r0c0", "conv_light"),
    ]
    assert PlanPolicy.parse("none", slots, blueprints) == []
    with pytest.raises(ValueError, match=problem):
        PlanPolicy.parse(text, slots, blueprints)
