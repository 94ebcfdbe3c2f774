"""PolicyNetwork over random slot states (docs/architecture.md §6, §10; issue 4 acceptance 5).

A randomly initialised network, its heads scaled up so that it is far from uniform (a freshly
initialised policy is near uniform and would hide a mask that is merely down-weighted), samples
actions for random slot states. Every decoded action must pass the legality oracle; `evaluate`
must recompute the joint log-probs `act` returned; heads the op does not use carry no entropy.
"""

from __future__ import annotations

import hypothesis.strategies as st
import torch
from hypothesis import HealthCheck, given, settings
from sharp_networks import sharp_network

from esper.leyline import (
    ALPHA_TARGETS,
    HEAD_ORDER,
    HEADS_USED,
    BlendOp,
    Curve,
    EpochMetrics,
    Head,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    check_action,
)
from esper.simic.learned_policy import ObservationNormalizer, network_input
from esper.tamiyo.action_codec import decode
from esper.tamiyo.features import FeatureSpec, Observation, build_features, build_masks
from esper.tamiyo.slot_view import Padding, SlotView

SLOT_IDS = ("r0c0", "r0c1", "r0c2")
BLUEPRINTS = ("norm", "attention", "conv_light", "conv_heavy")
SPEC = FeatureSpec(
    slot_ids=SLOT_IDS,
    blueprints=BLUEPRINTS,
    episode_length=20,
    chance_loss=2.3,
    host_params=500,
    slot_families=("cnn",) * 3,
    slot_widths=(8, 16, 32),
    planting_params=((16, 40, 600, 1200), (32, 150, 2400, 4700), (64, 560, 9300, 18600)),
)
VIEW = SlotView(SPEC)
PADDING = Padding.of([SPEC])
N_ENVS = 32  # every step's state is shown to this many envs, so each example samples many actions

MAYBE_PP = st.one_of(st.none(), st.floats(-20, 20))
MAYBE_STDERR = st.one_of(st.none(), st.floats(0, 5))


@st.composite
def slot_reports(draw: st.DrawFn, slot_id: str) -> SlotReport:
    stage = draw(st.sampled_from(Stage))
    has_seed = stage not in (Stage.DORMANT, Stage.PRUNED, Stage.EMBARGOED)
    return SlotReport(
        slot_id=slot_id,
        stage=stage,
        epochs_in_stage=draw(st.integers(0, 30)),
        seed_age=draw(st.integers(0, 30)) if has_seed else 0,
        alpha=draw(st.floats(0, 1)),
        alpha_target=draw(st.sampled_from((0.0, *ALPHA_TARGETS))),
        alpha_curve=draw(st.sampled_from(Curve)),
        alpha_steps_left=draw(st.integers(0, 8)),
        blueprint=draw(st.sampled_from(BLUEPRINTS)) if has_seed else None,
        blend=draw(st.sampled_from(BlendOp)) if has_seed else None,
        seed_params=draw(st.integers(0, 5000)) if has_seed else 0,
        contribution=draw(MAYBE_PP),
        contribution_stderr=draw(MAYBE_STDERR),
        contribution_trend=draw(MAYBE_PP),
        prospective=draw(MAYBE_PP),
        prospective_stderr=draw(MAYBE_STDERR),
        gradient_ratio=draw(st.one_of(st.none(), st.floats(0, 10))),
        is_pruning=draw(st.booleans()) and has_seed,
        is_fossilizing=draw(st.booleans()) and has_seed,
        passes_advance_gate=draw(st.booleans()),
        passes_fossilize_gate=draw(st.booleans()),
    )


@st.composite
def slot_states(draw: st.DrawFn) -> dict[str, SlotReport]:
    return {slot_id: draw(slot_reports(slot_id)) for slot_id in SLOT_IDS}


def epoch_metrics(epoch: int) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=0.7,
        train_accuracy=75.0,
        val_loss=0.8,
        val_accuracy=72.0,
        val_loss_delta=-0.05,
        val_accuracy_delta=0.5,
        best_val_accuracy=72.0,
        plateau_epochs=epoch % 4,
        is_stabilized=epoch > 2,
    )


def network_inputs(
    reports: dict[str, SlotReport],
    limits: LifecycleLimits,
    epoch: int,
    costs: dict[str, dict[BlendOp, tuple[int, ...]]] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(N_ENVS, ...) inputs and masks: one state shown to every env."""
    metrics = epoch_metrics(epoch)
    features = build_features(SPEC, metrics, reports, 0.5)
    masks = build_masks(SPEC, reports, limits, costs)
    observation = Observation(features, masks, metrics, reports, epochs_left=20 - epoch)
    _, inputs, stacked = network_input(
        [observation] * N_ENVS, [VIEW] * N_ENVS, ObservationNormalizer(), PADDING
    )
    return inputs, stacked


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    states=st.lists(slot_states(), min_size=1, max_size=4),
    min_prune_age=st.integers(0, 6),
    seed=st.integers(0, 2**16),
    deterministic=st.booleans(),
)
def test_sampled_actions_are_legal_and_evaluate_recomputes_their_log_probs(
    states: list[dict[str, SlotReport]], min_prune_age: int, seed: int, deterministic: bool
) -> None:
    limits = LifecycleLimits(min_prune_age=min_prune_age)
    network = sharp_network(seed)
    generator = torch.Generator().manual_seed(seed)
    state = initial = network.initial_state(N_ENVS)
    features, masks, actions, log_probs = [], [], [], []
    for t, reports in enumerate(states):
        x, m = network_inputs(reports, limits, epoch=t)
        a, logp, value, state = network.act(x, m, state, generator, deterministic)
        assert a.shape == (N_ENVS, len(HEAD_ORDER)) and logp.shape == value.shape == (N_ENVS,)
        assert torch.all(logp <= 0) and torch.all(torch.isfinite(logp))
        for indices in a.numpy():
            check_action(decode(SPEC, indices), reports, limits, SPEC.blueprints)  # never raises
        features.append(x)
        masks.append(m)
        actions.append(a)
        log_probs.append(logp)

    sequence_masks = {k: torch.stack([m[k] for m in masks]) for k in masks[0]}  # (T, B, ...)
    sequence_inputs = {k: torch.stack([x[k] for x in features]) for k in features[0]}
    with torch.no_grad():
        evaluation = network.evaluate(
            sequence_inputs, sequence_masks, torch.stack(actions), initial
        )
    stored = torch.stack(log_probs)  # (T, B)
    assert evaluation.log_prob.shape == stored.shape
    assert float((evaluation.log_prob - stored).abs().max()) <= 1e-5

    ops = torch.stack(actions)[..., HEAD_ORDER.index(Head.OP)]  # (T, B)
    for head in HEAD_ORDER:
        is_used = torch.tensor(
            [head == Head.OP or head in HEADS_USED[Op(int(o))] for o in ops.flatten()]
        )
        is_used = is_used.reshape(ops.shape)
        assert torch.equal(evaluation.used[..., HEAD_ORDER.index(head)], is_used)
        assert torch.all(evaluation.entropy[head][~is_used] == 0)
        entropy = evaluation.entropy[head][is_used]
        assert torch.all(entropy >= -1e-6) and torch.all(entropy <= 1 + 1e-5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spent=st.integers(0, 100),
    room=st.integers(0, 1500),
    adds=st.lists(
        st.integers(1, 1500),
        min_size=len(SLOT_IDS) * len(BLUEPRINTS),
        max_size=len(SLOT_IDS) * len(BLUEPRINTS),
    ),
    gate=st.integers(1, 200),
    seed=st.integers(0, 2**16),
)
def test_sampled_germinations_fit_the_parameter_budget(
    spent: int, room: int, adds: list[int], gate: int, seed: int
) -> None:
    """Blueprint and blend are sampled side by side given the slot: every pair drawn fits
    what the live seed (`spent` parameters, on r0c2) leaves of the budget (`room`)."""
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS[:2]}
    reports["r0c2"] = SlotReport(
        "r0c2", Stage.TRAINING, seed_age=1, blueprint="norm", blend=BlendOp.ADD, seed_params=spent
    )
    budget = spent + room
    n = len(BLUEPRINTS)
    costs = {
        slot_id: {
            b: tuple(c + (gate if b == BlendOp.GATE else 0) for c in adds[j * n : (j + 1) * n])
            for b in BlendOp
        }
        for j, slot_id in enumerate(SLOT_IDS)
    }
    limits = LifecycleLimits(param_budget=budget)
    x, m = network_inputs(reports, limits, 3, costs)
    network = sharp_network(seed)
    actions, *_ = network.act(
        x, m, network.initial_state(N_ENVS), torch.Generator().manual_seed(seed)
    )
    left = room
    for indices in actions.numpy():
        action = decode(SPEC, indices)
        check_action(action, reports, limits, SPEC.blueprints)
        if action.op == Op.GERMINATE:
            assert action.slot is not None and action.blueprint is not None
            assert action.blend is not None
            cost = costs[action.slot][action.blend][BLUEPRINTS.index(action.blueprint)]
            assert cost <= left, (action, cost, left)


def test_scaled_network_is_far_from_uniform() -> None:
    """The property test above would prove little if its policy were near uniform."""
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    reports["r0c1"] = SlotReport(
        "r0c1",
        Stage.HOLDING,
        seed_age=9,
        contribution=2.0,
        passes_fossilize_gate=True,
        alpha=1.0,
        alpha_target=1.0,
    )
    x, m = network_inputs(reports, LifecycleLimits(), epoch=3)
    network = sharp_network(0)
    actions, *_ = network.act(x, m, network.initial_state(N_ENVS))
    with torch.no_grad():
        evaluation = network.evaluate(
            {k: v.unsqueeze(0) for k, v in x.items()},
            {k: v.unsqueeze(0) for k, v in m.items()},
            actions.unsqueeze(0),
            network.initial_state(N_ENVS),
        )
    assert float(evaluation.entropy[Head.OP].mean()) < 0.7


def test_masked_choices_are_never_sampled_even_when_the_network_prefers_them() -> None:
    """Bias the op head toward ADVANCE (illegal on dormant slots): it must still never appear."""
    reports = {s: SlotReport(s, Stage.DORMANT) for s in SLOT_IDS}
    x, m = network_inputs(reports, LifecycleLimits(), epoch=0)
    network = sharp_network(1)
    with torch.no_grad():
        network.op_head.bias[Op.ADVANCE] = 1e4
        network.op_head.bias[Op.PRUNE] = 1e4
    generator = torch.Generator().manual_seed(0)
    actions, log_probs, _, _ = network.act(x, m, network.initial_state(N_ENVS), generator)
    ops = set(actions[:, 0].tolist())
    assert ops <= {Op.WAIT, Op.GERMINATE}
    assert torch.all(torch.isfinite(log_probs))
