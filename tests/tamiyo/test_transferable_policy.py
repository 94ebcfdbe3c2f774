"""One policy network for every host (issue 15, acceptance 1): its shapes do not depend on the
host's slots or blueprints, it is equivariant in the order of the slots, padding a host to a
larger run changes nothing it chooses, and what it reads of a blueprint is a descriptor, not a
name (`esper.tamiyo.slot_view`)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sharp_networks import sharp_network

from esper.kasmina.blueprints import FAMILY_NAMES, Traits, blueprint_names, get_blueprint
from esper.leyline import (
    BlendOp,
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
from esper.tamiyo.policy_network import PolicyNetwork
from esper.tamiyo.slot_view import (
    BLUEPRINT_DESCRIPTOR,
    GLOBAL_INPUT,
    SLOT_CORE,
    Padding,
    SlotView,
    layout_row,
    traits_row,
)

HIDDEN = 16
METRICS = EpochMetrics(
    epoch=4,
    train_loss=0.7,
    train_accuracy=75.0,
    val_loss=0.8,
    val_accuracy=72.0,
    val_loss_delta=-0.05,
    val_accuracy_delta=0.5,
    best_val_accuracy=72.0,
    plateau_epochs=2,
    is_stabilized=True,
)


def host_spec(family: str, widths: tuple[int, ...], host_params: int = 5000) -> FeatureSpec:
    """The spec of a host whose slots are all of `family`, as the env makes it."""
    names = blueprint_names(family)
    params = tuple(tuple(get_blueprint(family, b).param_count(w) for b in names) for w in widths)
    return FeatureSpec(
        slot_ids=tuple(f"r0c{j}" for j in range(len(widths))),
        blueprints=names,
        episode_length=20,
        chance_loss=2.3,
        host_params=host_params,
        offered=(names,) * len(widths),
        slot_families=(family,) * len(widths),
        slot_widths=widths,
        planting_params=params,
    )


def reports_for(spec: FeatureSpec, planted: dict[str, str] | None = None) -> dict[str, SlotReport]:
    """Dormant slots, but those in `planted` hold a HOLDING seed of that blueprint."""
    reports = {s: SlotReport(s, Stage.DORMANT) for s in spec.slot_ids}
    for slot, blueprint in (planted or {}).items():
        reports[slot] = SlotReport(
            slot,
            Stage.HOLDING,
            seed_age=6,
            blueprint=blueprint,
            blend=BlendOp.ADD,
            seed_params=100,
            alpha=1.0,
            alpha_target=1.0,
            contribution=1.5,
            contribution_stderr=0.4,
            passes_fossilize_gate=True,
        )
    return reports


def observe(spec: FeatureSpec, reports: dict[str, SlotReport]) -> Observation:
    features = build_features(spec, METRICS, reports, 0.5)
    masks = build_masks(spec, reports, LifecycleLimits())
    return Observation(features, masks, METRICS, reports, epochs_left=10)


def inputs_of(
    observations: list[Observation], specs: list[FeatureSpec], padding: Padding | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    views = [SlotView(s) for s in specs]
    _, inputs, masks = network_input(
        observations, views, ObservationNormalizer(), padding or Padding.of(specs)
    )
    return inputs, masks


def logits_of(
    network: PolicyNetwork,
    inputs: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    op: Op,
    slot: torch.Tensor | None = None,
) -> dict[Head, torch.Tensor]:
    n = inputs["globals"].shape[0]
    with torch.no_grad():
        trunk, _ = network.core(
            {k: v.unsqueeze(0) for k, v in inputs.items()}, network.initial_state(n)
        )
        ops = torch.full((1, n), int(op))
        where = None if slot is None else slot.unsqueeze(0)
        return network._masked_logits(
            trunk, {k: v.unsqueeze(0) for k, v in masks.items()}, ops, where
        )


def test_the_network_has_the_same_parameters_whatever_the_host() -> None:
    """Its shapes depend only on the hidden size: a checkpoint of one host loads for any."""
    shapes = {k: tuple(v.shape) for k, v in PolicyNetwork(HIDDEN).state_dict().items()}
    again = {k: tuple(v.shape) for k, v in PolicyNetwork(HIDDEN).state_dict().items()}
    assert shapes == again
    network = PolicyNetwork(HIDDEN)
    network.load_state_dict(sharp_network(3).state_dict())  # strict: every key, every shape


@pytest.mark.parametrize("seed", range(3))
def test_one_network_drives_hosts_of_one_two_and_three_slots_of_every_family(seed: int) -> None:
    """One set of weights acts for a dense host of 1 slot, a transformer of 2 and a CNN of 3 in
    one batch (padded to the largest); every action it takes is legal in its own host."""
    specs = [
        host_spec("dense", (32,)),
        host_spec("transformer", (64, 64)),
        host_spec("cnn", (8, 16, 32)),
        host_spec("conv1d", (16, 16)),
    ]
    plants = [{}, {"r0c1": "lora"}, {"r0c0": "conv_light"}, {"r0c1": "depthwise"}]
    reports = [reports_for(s, p) for s, p in zip(specs, plants, strict=True)]
    observations = [observe(s, r) for s, r in zip(specs, reports, strict=True)]
    network = sharp_network(seed)
    inputs, masks = inputs_of(observations * 8, specs * 8)
    assert inputs["slots"].shape[1] == 3 and inputs["blueprints"].shape[2] == 7
    generator = torch.Generator().manual_seed(seed)
    actions, log_probs, values, _ = network.act(
        inputs, masks, network.initial_state(len(specs) * 8), generator
    )
    assert torch.all(torch.isfinite(log_probs)) and torch.all(torch.isfinite(values))
    chosen_ops = set()
    for i, indices in enumerate(actions.numpy()):
        spec, report = specs[i % 4], reports[i % 4]
        action = decode(spec, indices)
        check_action(action, report, LifecycleLimits(), spec.blueprints)  # never raises
        chosen_ops.add(action.op)
    assert len(chosen_ops) >= 2  # it does more than one thing


@pytest.mark.parametrize("seed", range(4))
def test_permuting_the_slots_permutes_the_slot_heads_choice(seed: int) -> None:
    """Slot equivariance: the same host with its slots listed in another order gets slot
    logits in that order, and the same distribution over every later head given the slot."""
    spec = host_spec("cnn", (8, 16, 32))
    reports = reports_for(spec, {"r0c1": "conv_light"})
    inputs, masks = inputs_of([observe(spec, reports)], [spec])
    network = sharp_network(seed)
    perm = torch.tensor([2, 0, 1])
    permuted_inputs = {
        "globals": inputs["globals"],
        "slots": inputs["slots"][:, perm],
        "slot_valid": inputs["slot_valid"][:, perm],
        "blueprints": inputs["blueprints"][:, perm],
    }
    permuted_masks = dict(masks)
    permuted_masks["slot"] = masks["slot"][:, :, perm]
    permuted_masks["blueprint"] = masks["blueprint"][:, perm]
    permuted_masks["blend"] = masks["blend"][:, perm]
    permuted_masks["alpha_target"] = masks["alpha_target"][:, :, perm]
    for op in (Op.GERMINATE, Op.FOSSILIZE, Op.PRUNE):
        base = logits_of(network, inputs, masks, op)[Head.SLOT][0, 0]
        moved = logits_of(network, permuted_inputs, permuted_masks, op)[Head.SLOT][0, 0]
        torch.testing.assert_close(moved, base[perm], rtol=1e-5, atol=1e-4)
    for j in range(3):  # the slot at position j of the permuted host is slot perm[j]
        base = logits_of(network, inputs, masks, Op.GERMINATE, torch.tensor([int(perm[j])]))
        moved = logits_of(network, permuted_inputs, permuted_masks, Op.GERMINATE, torch.tensor([j]))
        for head in (Head.BLUEPRINT, Head.BLEND, Head.TEMPO, Head.ALPHA_TARGET, Head.CURVE):
            torch.testing.assert_close(moved[head], base[head], rtol=1e-5, atol=1e-4)


def test_padding_a_host_to_a_larger_run_changes_nothing_it_chooses() -> None:
    """A host padded to more slots and blueprints (a batch with a larger host) gets the same
    logits on its own slots and blueprints, and the padding is never legal."""
    spec = host_spec("cnn", (8, 16))
    reports = reports_for(spec, {"r0c0": "norm"})
    observation = observe(spec, reports)
    network = sharp_network(1)
    tight = inputs_of([observation], [spec])
    padded = inputs_of([observation], [spec], Padding(slots=5, blueprints=11))
    for op in (Op.GERMINATE, Op.PRUNE):
        a = logits_of(network, *tight, op)[Head.SLOT][0, 0]
        b = logits_of(network, *padded, op)[Head.SLOT][0, 0]
        torch.testing.assert_close(b[:2], a, rtol=1e-5, atol=1e-4)
        assert torch.all(b[2:] < -1e7)
    a = logits_of(network, *tight, Op.GERMINATE, torch.tensor([1]))[Head.BLUEPRINT][0, 0]
    b = logits_of(network, *padded, Op.GERMINATE, torch.tensor([1]))[Head.BLUEPRINT][0, 0]
    torch.testing.assert_close(b[:7], a, rtol=1e-5, atol=1e-4)
    assert torch.all(b[7:] < -1e7)


def test_a_blueprint_is_read_by_its_descriptor_not_its_name() -> None:
    """Renaming every blueprint (same traits and sizes) changes no logit."""
    spec = host_spec("cnn", (8, 16))
    renamed = FeatureSpec(
        **{
            **spec.__dict__,
            "blueprints": tuple(reversed(spec.blueprints)),
            "offered": (tuple(reversed(spec.blueprints)),) * 2,
            "planting_params": tuple(tuple(reversed(row)) for row in spec.planting_params or ()),
        }
    )
    network = sharp_network(2)
    a = inputs_of([observe(spec, reports_for(spec))], [spec])
    b = inputs_of([observe(renamed, reports_for(renamed))], [renamed])
    base = logits_of(network, *a, Op.GERMINATE, torch.tensor([0]))[Head.BLUEPRINT][0, 0]
    moved = logits_of(network, *b, Op.GERMINATE, torch.tensor([0]))[Head.BLUEPRINT][0, 0]
    torch.testing.assert_close(moved, base.flip(0), rtol=1e-5, atol=1e-4)


def test_the_descriptor_table_says_what_each_blueprint_is_at_each_slot() -> None:
    spec = host_spec("cnn", (8, 32), host_params=1000)
    view = SlotView(spec)
    assert view.blueprint_descriptors.shape == (2, 7, len(BLUEPRINT_DESCRIPTOR))
    share = BLUEPRINT_DESCRIPTOR.index("log_param_share")
    axes = BLUEPRINT_DESCRIPTOR.index("axes")
    traits = slice(BLUEPRINT_DESCRIPTOR.index("normalizes"), share)
    for j, width in enumerate((8, 32)):
        for b, name in enumerate(spec.blueprints):
            row = view.blueprint_descriptors[j, b]
            bp = get_blueprint("cnn", name)
            assert row[axes] == 1.0 and row[axes + 1] == 0.0  # images, channels first
            assert row[share] == pytest.approx(math.log1p(bp.param_count(width) / 1000))
            np.testing.assert_allclose(row[traits], traits_row(bp.traits), rtol=1e-6)
    assert np.all(np.abs(view.blueprint_descriptors) <= 10)
    assert [layout_row(f) for f in ("dense", "conv1d", "cnn", "transformer")] == [
        [0.0, 0.0],
        [0.5, 0.0],
        [1.0, 0.0],
        [0.5, 1.0],
    ]
    # position and width of each slot
    np.testing.assert_allclose(view.slot_descriptors[:, -2], [0.25, 0.75])
    np.testing.assert_allclose(view.slot_descriptors[:, -1], [3 / 8, 5 / 8])


def test_a_slot_of_another_family_offers_nothing_of_the_first() -> None:
    """A host of two families: each slot's descriptors are its own family's, zeros for the
    other's blueprints."""
    dense, cnn = blueprint_names("dense"), blueprint_names("cnn")
    names = tuple(dict.fromkeys((*cnn, *dense)))
    spec = FeatureSpec(
        slot_ids=("r0c0", "r0c1"),
        blueprints=names,
        episode_length=20,
        chance_loss=2.3,
        host_params=2000,
        offered=(cnn, dense),
        slot_families=("cnn", "dense"),
        slot_widths=(16, 32),
        planting_params=tuple(
            tuple(get_blueprint(f, b).param_count(w) if b in offered else 0 for b in names)
            for f, offered, w in (("cnn", cnn, 16), ("dense", dense, 32))
        ),
    )
    table = SlotView(spec).blueprint_descriptors
    for j, offered in enumerate((cnn, dense)):
        for b, name in enumerate(names):
            assert (np.abs(table[j, b]).sum() > 0) == (name in offered), (j, name)


def test_split_reads_the_flat_features_back_into_their_parts() -> None:
    spec = host_spec("transformer", (64, 64))
    reports = reports_for(spec, {"r0c1": "lora"})
    features = build_features(spec, METRICS, reports, 0.5)
    view = SlotView(spec)
    globals_, core, planted = view.split(features[None])
    assert globals_.shape == (1, GLOBAL_INPUT) and core.shape == (1, 2, SLOT_CORE)
    np.testing.assert_array_equal(globals_[0, : spec.global_size], features[: spec.global_size])
    assert globals_[0, -1] == 10.0  # no budget observed: the largest the clip allows
    lora = spec.blueprints.index("lora")
    np.testing.assert_array_equal(planted[0, 1], view.blueprint_descriptors[1, lora])
    np.testing.assert_array_equal(planted[0, 0], np.zeros(len(BLUEPRINT_DESCRIPTOR)))
    holding = list(Stage).index(Stage.HOLDING)
    assert core[0, 1, holding] == 1.0 and core[0, 0, list(Stage).index(Stage.DORMANT)] == 1.0


def test_every_built_in_blueprint_says_what_it_does() -> None:
    """A blueprint without traits reads as the identity: every built-in one declares its own,
    and two blueprints of a family differ in traits or in size, so the head can tell them
    apart."""
    for family in FAMILY_NAMES:
        rows = []
        for name in blueprint_names(family):
            blueprint = get_blueprint(family, name)
            assert blueprint.traits != Traits(), (family, name)
            rows.append((*traits_row(blueprint.traits), blueprint.param_count(16)))
        assert len(set(rows)) == len(rows), family
