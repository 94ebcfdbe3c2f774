"""Slots on every layer family: read from a user's `nn.Sequential`, and the growth contract
(identity at birth in every blend, exact counts, fused = separate) on dense and 1-D conv hosts."""

import copy
import sys
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from growth_helpers import (
    alpha_configs,
    conv1d_host,
    germinate,
    mlp_host,
    perturb_seeds,
    separate_forward,
    walk_to,
)
from torch import nn

from esper.kasmina import MorphogeneticModel, SeedGate, SequentialHost, blueprint_names
from esper.kasmina.families import FAMILIES
from esper.leyline import BlendOp, IllegalActionError, Stage

HOSTS: dict[str, tuple[Callable[[], SequentialHost], tuple[int, ...]]] = {
    "mlp": (mlp_host, (5,)),
    "conv1d": (conv1d_host, (2, 12)),
}


def _model_and_input(host: str, batch: int = 8) -> tuple[MorphogeneticModel, torch.Tensor]:
    build, shape = HOSTS[host]
    torch.manual_seed(3)
    return MorphogeneticModel(build()), torch.randn(batch, *shape)


def test_the_family_is_read_from_each_cut() -> None:
    assert [(s.family, s.width) for s in mlp_host().segments()] == [
        ("dense", 16),
        ("dense", 12),
        ("dense", 8),
    ]
    assert [(s.family, s.width) for s in conv1d_host().segments()] == [
        ("conv1d", 8),
        ("conv1d", 12),
        ("dense", 12),
    ]
    image = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
    assert SequentialHost(image, [1], torch.randn(2, 1, 8, 8)).segments()[0].family == "cnn"
    tokens = nn.Sequential(nn.Embedding(20, 6), nn.Linear(6, 6), nn.Flatten(), nn.Linear(24, 3))
    spec = SequentialHost(tokens, [1], torch.randint(0, 20, (2, 4))).segments()[0]
    assert (spec.family, spec.width) == ("transformer", 6)  # (B, T, C): width is the last dim


def test_a_layout_no_layer_tells_must_be_named() -> None:
    seq = nn.Sequential(nn.Unflatten(1, (4, 3)), nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(ValueError, match=r"after module 0 of shape \(2, 4, 3\).*families="):
        SequentialHost(seq, [0], torch.randn(2, 12))
    named = SequentialHost(seq, [0], torch.randn(2, 12), families={0: "conv1d"})
    assert (named.segments()[0].family, named.segments()[0].width) == ("conv1d", 4)
    named = SequentialHost(seq, [0], torch.randn(2, 12), families={0: "transformer"})
    assert named.segments()[0].width == 3


@pytest.mark.parametrize(
    ("cuts", "families", "match"),
    [
        ([], None, "non-empty"),
        ([2, 1], None, "strictly increasing"),
        ([3], None, r"\[0, 2\].*head"),
        ([0], {1: "dense"}, r"modules \[1\] that are not cuts"),
        ([0], {0: "rnn"}, "unknown layer family 'rnn'; known: dense, conv1d, cnn, transformer"),
    ],
)
def test_bad_cuts_and_families_are_named(
    cuts: list[int], families: dict[int, str] | None, match: str
) -> None:
    seq = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=match):
        SequentialHost(seq, cuts, torch.randn(2, 4), families=families)


def test_an_activation_of_no_family_is_refused() -> None:
    seq = nn.Sequential(nn.Unflatten(1, (2, 2, 1, 2)), nn.Flatten(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 2, 2, 1, 2\).*\(B, C\), \(B, C, L\)"):
        SequentialHost(seq, [0], torch.randn(2, 8))


def test_a_host_of_two_families_offers_both_and_each_slot_plants_its_own() -> None:
    model, _ = _model_and_input("conv1d")
    assert set(model.blueprints) == set(blueprint_names("conv1d")) | set(blueprint_names("dense"))
    with pytest.raises(IllegalActionError, match="mlp"):
        germinate(model, "r0c0", "mlp")  # a dense blueprint on a conv1d slot
    with pytest.raises(IllegalActionError, match="conv_light"):
        germinate(model, "r0c2", "conv_light")
    germinate(model, "r0c2", "mlp")
    germinate(model, "r0c0", "conv_light")
    costs = model.germination_costs(model.blueprints)
    mlp, conv = model.blueprints.index("mlp"), model.blueprints.index("conv_light")
    assert costs["r0c0"][BlendOp.ADD][mlp] == sys.maxsize  # never fits
    assert costs["r0c2"][BlendOp.ADD][mlp] == model.slot("r0c2").seed_params
    assert costs["r0c0"][BlendOp.ADD][conv] == model.slot("r0c0").seed_params


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("blend", list(BlendOp), ids=lambda b: b.name)
def test_every_blueprint_of_every_slot_is_the_identity_at_birth(host: str, blend: BlendOp) -> None:
    base, x = _model_and_input(host)
    base.eval()
    before = base(x)
    for slot_id in base.slot_ids:
        for blueprint in blueprint_names(base.slot(slot_id).family):
            model = copy.deepcopy(base)
            germinate(model, slot_id, blueprint, blend)
            slot = model.slot(slot_id)
            assert slot.seed_params == sum(p.numel() for p in slot.seed_parameters())
            blended = model.fused_forward(x, [{slot_id: 1.0}])[0]
            assert (model(x) - before).abs().max() <= 1e-6, (slot_id, blueprint)
            assert (blended - before).abs().max() <= 1e-6, (slot_id, blueprint)


def _grown(host: str) -> tuple[MorphogeneticModel, torch.Tensor]:
    model, x = _model_and_input(host)
    plants = {"mlp": ["mlp_small", "lora", "norm"], "conv1d": ["conv_light", "attention", "mlp"]}
    blends = [BlendOp.ADD, BlendOp.MULTIPLY, BlendOp.GATE]
    for slot_id, bp, blend in zip(model.slot_ids, plants[host], blends, strict=True):
        germinate(model, slot_id, bp, blend, target=0.7)
    walk_to(model, model.slot_ids[0], Stage.HOLDING)  # the others stay in TRAINING
    perturb_seeds(model)
    return model.eval(), x


@pytest.mark.parametrize("host", HOSTS)
def test_fused_forward_equals_separate_forwards(host: str) -> None:
    model, x = _grown(host)
    configs = alpha_configs(model)
    with torch.no_grad():
        fused = model.fused_forward(x, configs)
        assert torch.allclose(fused[0], model(x), atol=1e-5)
        for k, config in enumerate(configs):
            assert (fused[k] - separate_forward(model, x, config)).abs().max() <= 1e-5


@pytest.mark.parametrize("host", HOSTS)
def test_fused_gradients_equal_those_of_separate_forwards(host: str) -> None:
    model, x = _grown(host)
    y = torch.randint(0, 3, (x.shape[0],))
    configs = alpha_configs(model)
    params = list(model.parameters())
    fused = model.fused_forward(x, configs)
    fused_loss = sum(F.cross_entropy(fused[k], y) for k in range(len(configs)))
    fused_grads = torch.autograd.grad(fused_loss, params, allow_unused=True)
    separate = sum(F.cross_entropy(separate_forward(model, x, c), y) for c in configs)
    separate_grads = torch.autograd.grad(separate, params, allow_unused=True)
    for a, b in zip(fused_grads, separate_grads, strict=True):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_gate_gives_one_value_per_sample_or_position(family: str) -> None:
    probe = FAMILIES[family].probe(6)
    gate = SeedGate(6, family)
    with torch.no_grad():
        gate.proj.weight.normal_()
        out = gate(probe)
    assert out.dim() == probe.dim() and out.shape[0] == probe.shape[0]
    per_position = family == "transformer"
    assert out.shape[1] == (probe.shape[1] if per_position else 1)
    assert (out * probe).shape == probe.shape


class _ResBlock1d(nn.Module):
    """A block of the user's own whose layers are all channels-first."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv, self.norm = nn.Conv1d(width, width, 3, padding=1), nn.BatchNorm1d(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm(self.conv(x))


class _SqueezeExcite1d(nn.Module):
    """A block mixing a 1-D pool and linear layers: its output's layout is not told by them."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.pool, self.fc = nn.AdaptiveAvgPool1d(1), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc(self.pool(x).squeeze(-1)))[:, :, None]


def test_the_layout_is_read_from_every_layer_before_the_cut() -> None:
    """A segment of layout-free layers alone (a ReLU) takes the layout of the layers before it;
    a block of the user's own counts when its layers agree."""
    seq = nn.Sequential(
        nn.Conv1d(2, 4, 3), nn.ReLU(), _ResBlock1d(4), nn.Flatten(), nn.Linear(40, 2)
    )
    host = SequentialHost(seq, [0, 1, 2], torch.randn(2, 2, 12))
    assert [(s.family, s.width) for s in host.segments()] == [("conv1d", 4)] * 3


def test_a_block_of_both_kinds_of_layers_must_be_named() -> None:
    """A squeeze-excite block holds a Linear: read from its layers' order it was taken for
    (B, T, C), and its (B, 4, 16) activation got width 16, its length."""
    seq = nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1), _SqueezeExcite1d(4), nn.Flatten(), nn.Linear(64, 2)
    )
    with pytest.raises(ValueError, match="families="):
        SequentialHost(seq, [1], torch.randn(2, 2, 16))
    named = SequentialHost(seq, [1], torch.randn(2, 2, 16), families={1: "conv1d"})
    assert named.segments()[0].width == 4


def test_a_named_family_must_fit_the_activation_s_rank() -> None:
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(ValueError, match=r"families names cnn .* shape \(2, 8\): \(B, C, H, W\)"):
        SequentialHost(seq, [1], torch.randn(2, 4), families={1: "cnn"})
