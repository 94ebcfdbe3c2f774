import copy
import math

import pytest
import torch
import torch.nn.functional as F
from growth_helpers import (
    alpha_configs,
    epoch,
    germinate,
    perturb_seeds,
    separate_forward,
    trained_cnn_host,
    transformer_host,
    walk_to,
)
from torch import nn

from esper.kasmina import MorphogeneticModel, blueprint_names
from esper.leyline import (
    BlendOp,
    FactoredAction,
    IllegalActionError,
    LifecycleLimits,
    Op,
    SlotIdError,
    Stage,
    Tempo,
)


def real_seed_params(model: MorphogeneticModel, slot_id: str) -> int:
    return sum(p.numel() for p in model.slot(slot_id).seed_parameters())


@pytest.mark.parametrize("widths", [(4, 8, 16), (8, 16, 32)])
@pytest.mark.parametrize("blend", list(BlendOp))
def test_germinating_any_cnn_blueprint_leaves_outputs_unchanged(
    widths: tuple[int, ...], blend: BlendOp
) -> None:
    host = trained_cnn_host(widths)
    x = torch.randn(16, 1, 8, 8)
    for blueprint in blueprint_names("cnn"):
        model = MorphogeneticModel(copy.deepcopy(host)).eval()
        before = model(x)
        for slot_id in model.slot_ids:
            germinate(model, slot_id, blueprint, blend)
            assert model.slot(slot_id).seed_params == real_seed_params(model, slot_id)
        after = model(x)
        # The same seeds fully blended in (alpha = 1 everywhere): still the identity at birth.
        blended = model.fused_forward(x, [dict.fromkeys(model.slot_ids, 1.0)])[0]
        assert (after - before).abs().max() <= 1e-6, blueprint
        assert (blended - before).abs().max() <= 1e-6, blueprint


@pytest.mark.parametrize("n_embd", [32, 64])
@pytest.mark.parametrize("blend", list(BlendOp))
def test_germinating_any_transformer_blueprint_leaves_outputs_unchanged(
    n_embd: int, blend: BlendOp
) -> None:
    host = transformer_host(n_embd)
    idx = torch.randint(0, 64, (4, 16))
    for blueprint in blueprint_names("transformer"):
        model = MorphogeneticModel(copy.deepcopy(host)).eval()
        before = model(idx)
        for slot_id in model.slot_ids:
            germinate(model, slot_id, blueprint, blend)
            assert model.slot(slot_id).seed_params == real_seed_params(model, slot_id)
        blended = model.fused_forward(idx, [dict.fromkeys(model.slot_ids, 1.0)])[0]
        assert (model(idx) - before).abs().max() <= 1e-6, blueprint
        assert (blended - before).abs().max() <= 1e-6, blueprint


def test_a_walked_up_seed_at_alpha_one_is_still_identity_at_birth() -> None:
    model = MorphogeneticModel(trained_cnn_host()).eval()
    x = torch.randn(8, 1, 8, 8)
    before = model(x)
    germinate(model, "r0c1", "conv_heavy", BlendOp.MULTIPLY)
    walk_to(model, "r0c1", Stage.HOLDING)
    assert model.slot("r0c1").alpha == 1.0
    assert (model(x) - before).abs().max() <= 1e-6


def _loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


@pytest.mark.parametrize("blend", list(BlendOp))
def test_training_stage_is_invisible_to_the_host_but_the_seed_learns(blend: BlendOp) -> None:
    host = trained_cnn_host()
    plain = MorphogeneticModel(copy.deepcopy(host))
    model = MorphogeneticModel(copy.deepcopy(host))
    germinate(model, "r0c1", "conv_light", blend)
    epoch(model)
    assert model.slot("r0c1").stage == Stage.TRAINING
    perturb_seeds(model)  # a seed that has learned something: its blended output would differ
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    out = model(x)
    assert torch.equal(out, plain(x))
    _loss(model, x, y).backward()
    _loss(plain, x, y).backward()
    running_mean = model.host.blocks[2][1].running_mean.clone()
    # The seed learns on its shadow pass, into its own parameters only.
    (slot, shadow_out), *others = model.shadow_outputs()
    assert slot.slot_id == "r0c1" and not others
    params = slot.seed_parameters()
    grads = torch.autograd.grad(F.cross_entropy(shadow_out, y), params)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    for (name, p), q in zip(model.host.named_parameters(), plain.host.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        assert torch.equal(p.grad, q.grad), name
    assert torch.equal(model.host.blocks[2][1].running_mean, running_mean)  # BN untouched
    if blend == BlendOp.ADD:
        # By hand: the training forward's activation at r0c1, plus the seed's change, then the
        # downstream block and head in eval mode (held fixed).
        with torch.no_grad():
            model.train()
            h = model.host.forward_segment(1, model.host.forward_segment(0, x))
            model.eval()
            seed = model.slot("r0c1").seed
            assert seed is not None
            reference = model.host.head(model.host.forward_segment(2, seed(h)))
        assert torch.allclose(shadow_out.detach(), reference, atol=1e-5)


@pytest.mark.parametrize("stage", [Stage.HOLDING, Stage.FOSSILIZED])
def test_full_alpha_keeps_gradient_flowing_to_every_upstream_host_layer(stage: Stage) -> None:
    model = MorphogeneticModel(trained_cnn_host())
    germinate(model, "r0c2", "conv_heavy", BlendOp.ADD)
    walk_to(model, "r0c2", Stage.HOLDING)
    if stage == Stage.FOSSILIZED:
        model.slot("r0c2").measured.contribution = 1.0
        model.execute(FactoredAction(Op.FOSSILIZE, slot="r0c2"))
    assert model.slot("r0c2").stage == stage and model.slot("r0c2").alpha == 1.0
    perturb_seeds(model)
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 10, (32,))
    _loss(model, x, y).backward()
    for name, p in model.host.blocks.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    isolated = model.slot("r0c2").is_isolated
    assert isolated == (stage == Stage.HOLDING)


def _grow_three_seeds(model: MorphogeneticModel, blueprints: list[str]) -> None:
    blends = [BlendOp.ADD, BlendOp.MULTIPLY, BlendOp.GATE]
    for slot_id, bp, blend in zip(model.slot_ids, blueprints, blends, strict=False):
        germinate(model, slot_id, bp, blend, target=0.7)
    walk_to(model, model.slot_ids[0], Stage.HOLDING)  # the others stay in TRAINING
    perturb_seeds(model)


def test_fused_forward_equals_separate_forwards_cnn() -> None:
    model = MorphogeneticModel(trained_cnn_host())
    _grow_three_seeds(model, ["conv_light", "attention", "bottleneck"])
    model.eval()
    x = torch.randn(16, 1, 8, 8)
    configs = alpha_configs(model)
    with torch.no_grad():
        fused = model.fused_forward(x, configs)
        assert fused.shape == (len(configs), 16, 10)
        assert torch.allclose(fused[0], model(x), atol=1e-5)
        for k, config in enumerate(configs):
            assert (fused[k] - separate_forward(model, x, config)).abs().max() <= 1e-5


def test_fused_forward_equals_separate_forwards_transformer() -> None:
    model = MorphogeneticModel(transformer_host())
    _grow_three_seeds(model, ["attention", "lora"])
    model.eval()
    idx = torch.randint(0, 64, (4, 16))
    configs = alpha_configs(model)
    with torch.no_grad():
        fused = model.fused_forward(idx, configs)
        assert fused.shape == (len(configs), 4, 16, 64)
        assert torch.allclose(fused[0], model(idx), atol=1e-5)
        for k, config in enumerate(configs):
            assert (fused[k] - separate_forward(model, idx, config)).abs().max() <= 1e-5


def test_a_fused_pass_makes_its_alpha_columns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch of a fused pass built its alpha column from a Python list: a host-to-device
    copy per batch and slot, which on a GPU waits for the stream (issue 12: no sync inside an
    epoch). Batches of one shape now reuse the column; the results are unchanged."""
    model = MorphogeneticModel(trained_cnn_host())
    _grow_three_seeds(model, ["conv_light", "attention", "bottleneck"])
    model.eval()
    configs = alpha_configs(model)
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        first = model.fused_forward(x, configs)
        made = []
        real = torch.tensor
        monkeypatch.setattr(torch, "tensor", lambda *a, **k: made.append(a) or real(*a, **k))
        again = [model.fused_forward(x, configs) for _ in range(3)]
    assert made == []  # every column came from the first pass
    assert all(torch.equal(first, a) for a in again)


def test_fused_forward_refuses_train_mode_and_unknown_slots() -> None:
    model = MorphogeneticModel(trained_cnn_host())
    with pytest.raises(RuntimeError, match="eval"):
        model.fused_forward(torch.randn(2, 1, 8, 8), [{}])
    model.eval()
    with pytest.raises(ValueError, match="unknown slots"):
        model.fused_forward(torch.randn(2, 1, 8, 8), [{"r5c5": 0.0}])


def test_enabled_slots_are_validated() -> None:
    with pytest.raises(SlotIdError):
        MorphogeneticModel(trained_cnn_host(), slots=["slot1"])
    with pytest.raises(ValueError, match="not offered"):
        MorphogeneticModel(trained_cnn_host(), slots=["r0c7"])
    assert MorphogeneticModel(trained_cnn_host(), slots=["r0c2", "r0c0"]).slot_ids == [
        "r0c0",
        "r0c2",
    ]


def test_germination_costs_are_what_planting_adds() -> None:
    names = blueprint_names("cnn")
    costs = MorphogeneticModel(trained_cnn_host()).germination_costs(names)
    for slot_id, by_blend in costs.items():
        for blend, row in by_blend.items():
            for name, cost in zip(names, row, strict=True):
                model = MorphogeneticModel(trained_cnn_host())
                germinate(model, slot_id, name, blend)
                assert cost == model.slot(slot_id).seed_params == real_seed_params(model, slot_id)


def test_a_germination_over_the_parameter_budget_is_illegal() -> None:
    costs = MorphogeneticModel(trained_cnn_host()).germination_costs(("norm", "depthwise"))
    depthwise, norm = costs["r0c0"][BlendOp.ADD][1], costs["r0c1"][BlendOp.ADD][0]
    budget = depthwise + norm - 1  # room for either seed, not both
    model = MorphogeneticModel(trained_cnn_host(), limits=LifecycleLimits(param_budget=budget))
    germinate(model, "r0c0", "depthwise")
    expected = f"adds {norm} parameters; the parameter budget has {norm - 1} left"
    with pytest.raises(IllegalActionError, match=expected):
        germinate(model, "r0c1", "norm")
    assert model.seed_param_count() == depthwise
    gated = FactoredAction.germinate("r0c1", "norm", BlendOp.GATE, Tempo.FAST)
    with pytest.raises(IllegalActionError, match="budget"):  # the gate's parameters count too
        MorphogeneticModel(trained_cnn_host(), limits=LifecycleLimits(param_budget=norm)).execute(
            gated
        )


# -- a non-finite seed in the fused pass ---------------------------------------------------------


class InfiniteSeed(nn.Module):
    """A broken seed whose output is +inf everywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, math.inf)


def _grow_to(model: MorphogeneticModel, slot_id: str, stage: Stage, blend: BlendOp) -> None:
    germinate(model, slot_id, "conv_light", blend)
    if stage == Stage.FOSSILIZED:
        walk_to(model, slot_id, Stage.HOLDING)
        model.slot(slot_id).measured.contribution = 1.0
        model.execute(FactoredAction(Op.FOSSILIZE, slot=slot_id))
    else:
        walk_to(model, slot_id, stage)
    assert model.slot(slot_id).stage == stage


def _break_seed(model: MorphogeneticModel, slot_id: str, seed_output: str) -> None:
    slot = model.slot(slot_id)
    if seed_output == "finite":
        perturb_seeds(model)
    elif seed_output == "nan_weights":
        with torch.no_grad():
            for p in slot.seed_parameters():
                p.fill_(math.nan)
    else:
        slot.seed = InfiniteSeed()


LIVE = [Stage.GERMINATED, Stage.TRAINING, Stage.BLENDING, Stage.HOLDING, Stage.FOSSILIZED]


@pytest.mark.parametrize("seed_output", ["finite", "nan_weights", "inf_output"])
@pytest.mark.parametrize("blend", list(BlendOp), ids=lambda b: b.name)
@pytest.mark.parametrize("stage", LIVE, ids=lambda s: s.name)
def test_fused_real_configuration_is_the_model_whatever_the_seed_outputs(
    stage: Stage, blend: BlendOp, seed_output: str
) -> None:
    """Regression: configuration 0 of the fused pass gave every live slot a per-sample alpha, so
    an invisible seed (alpha 0) computed h + 0 * NaN = NaN where the model returns h; the
    validation loss became NaN and the episode ended."""
    host = trained_cnn_host()
    alone = MorphogeneticModel(copy.deepcopy(host)).eval()
    model = MorphogeneticModel(copy.deepcopy(host))
    _grow_to(model, "r0c1", stage, blend)
    _break_seed(model, "r0c1", seed_output)
    model.eval()
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        real, removed, prospective = model.fused_forward(x, [{}, {"r0c1": 0.0}, {"r0c1": 1.0}])
        torch.testing.assert_close(real, model(x), atol=1e-5, rtol=0, equal_nan=True)
        # At alpha 0 a sample gets the host's activation itself, never h + 0 * d.
        torch.testing.assert_close(removed, alone(x), atol=1e-5, rtol=0)
        if stage in (Stage.GERMINATED, Stage.TRAINING):
            assert torch.equal(real, removed)
        if seed_output == "finite":
            assert torch.isfinite(prospective).all()


def test_fused_forward_gradients_equal_those_of_separate_forwards() -> None:
    """The per-configuration selection keeps every gradient path: the seed learns from the
    configurations that show it, the host from all of them."""
    model = MorphogeneticModel(trained_cnn_host())
    _grow_three_seeds(model, ["conv_light", "attention", "bottleneck"])
    model.eval()
    x, y = torch.randn(8, 1, 8, 8), torch.randint(0, 10, (8,))
    configs = alpha_configs(model)
    params = list(model.parameters())

    fused = model.fused_forward(x, configs)
    fused_loss = sum(F.cross_entropy(fused[k], y) for k in range(len(configs)))
    fused_grads = torch.autograd.grad(fused_loss, params, allow_unused=True)
    separate_loss = sum(F.cross_entropy(separate_forward(model, x, c), y) for c in configs)
    separate_grads = torch.autograd.grad(separate_loss, params, allow_unused=True)

    for a, b in zip(fused_grads, separate_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # gradients reach ~20


@pytest.mark.parametrize("fraction", [0.25, 0.5, 1.0])
def test_a_fractional_shadow_pass_is_the_full_one_on_the_batch_first_samples(
    fraction: float,
) -> None:
    host = trained_cnn_host()
    full = MorphogeneticModel(copy.deepcopy(host))
    part = MorphogeneticModel(copy.deepcopy(host), shadow_fraction=fraction)
    for model in (full, part):
        torch.manual_seed(1)  # the same seed weights in both
        germinate(model, "r0c0", "conv_light", BlendOp.ADD)
        epoch(model)
        torch.manual_seed(2)
        perturb_seeds(model)
    x, y = torch.randn(30, 1, 8, 8), torch.randint(0, 10, (30,))
    assert torch.equal(full(x), part(x))  # the host's pass is the same whatever the fraction
    ((_, full_out),) = full.shadow_outputs()
    ((slot, part_out),) = part.shadow_outputs()
    rows = math.ceil(fraction * 30)
    assert part_out.shape[0] == rows
    torch.testing.assert_close(part_out, full_out[:rows], rtol=0, atol=1e-6)
    # Its gradient is the seed's gradient of the loss on those samples alone.
    grads = torch.autograd.grad(F.cross_entropy(part_out, y[:rows]), slot.seed_parameters())
    by_hand = torch.autograd.grad(
        F.cross_entropy(full_out[:rows], y[:rows]), full.slot("r0c0").seed_parameters()
    )
    for g, h in zip(grads, by_hand, strict=True):
        torch.testing.assert_close(g, h, rtol=1e-5, atol=1e-7)


def test_a_shadow_pass_takes_at_least_one_sample() -> None:
    model = MorphogeneticModel(trained_cnn_host(), shadow_fraction=0.01)
    germinate(model, "r0c1", "conv_light", BlendOp.ADD)
    epoch(model)
    model(torch.randn(20, 1, 8, 8))
    ((_, out),) = model.shadow_outputs()
    assert out.shape[0] == 1


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5, math.nan])
def test_a_shadow_fraction_outside_0_1_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="shadow_fraction must be in"):
        MorphogeneticModel(trained_cnn_host(), shadow_fraction=fraction)
