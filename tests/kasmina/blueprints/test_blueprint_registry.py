"""The contract every registered blueprint keeps, and the registry's errors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from esper.kasmina.blueprints import (
    FAMILY_NAMES,
    Blueprint,
    blueprint_names,
    get_blueprint,
    register,
)
from esper.kasmina.blueprints import registry as registry_module

CONV_WIDTHS = (1, 2, 3, 4, 8, 12, 16, 32)
# dense from 2: a LayerNorm over one feature is constant, so its affine weight never learns
WIDTHS = {
    "dense": (2, 3, 4, 8, 16, 32),
    "conv1d": CONV_WIDTHS,
    "cnn": CONV_WIDTHS,
    "transformer": (8, 16, 32, 64),
}
CASES = [
    (family, name, width)
    for family in FAMILY_NAMES
    for name in blueprint_names(family)
    for width in WIDTHS[family]
]


def _input(family: str, width: int) -> torch.Tensor:
    shapes = {
        "dense": (4, width),  # (B, C)
        "conv1d": (4, width, 7),  # (B, C, L), odd L
        "cnn": (4, width, 5, 7),  # (B, C, H, W), odd and unequal H, W
        "transformer": (4, 6, width),  # (B, T, C)
    }
    return torch.randn(shapes[family])


def test_every_family_has_blueprints() -> None:
    assert set(FAMILY_NAMES) == {"dense", "conv1d", "cnn", "transformer"}
    assert all(blueprint_names(family) for family in FAMILY_NAMES)


@pytest.mark.parametrize(("family", "name", "width"), CASES)
def test_param_count_is_exact(family: str, name: str, width: int) -> None:
    bp = get_blueprint(family, name)
    assert bp.param_count(width) == sum(p.numel() for p in bp.build(width).parameters())


@pytest.mark.parametrize(("family", "name", "width"), CASES)
def test_identity_at_birth(family: str, name: str, width: int) -> None:
    torch.manual_seed(0)
    seed = get_blueprint(family, name).build(width)
    x = _input(family, width)
    assert torch.equal(seed(x), x)


@pytest.mark.parametrize(("family", "name", "width"), CASES)
def test_training_changes_output_and_reaches_every_parameter(
    family: str, name: str, width: int
) -> None:
    torch.manual_seed(0)
    seed = get_blueprint(family, name).build(width)
    x = _input(family, width)
    target = torch.randn_like(x)
    optimizer = torch.optim.SGD(seed.parameters(), lr=0.1)
    reached: set[str] = set()
    for step in range(2):  # the zero-init last layer learns first, the layers before it next
        optimizer.zero_grad()
        F.mse_loss(seed(x), target).backward()
        reached |= {n for n, p in seed.named_parameters() if p.grad is not None and p.grad.any()}
        optimizer.step()
        if step == 0:
            with torch.no_grad():
                assert not torch.equal(seed(x), x)
    assert reached == {n for n, _ in seed.named_parameters()}


@pytest.mark.parametrize(("family", "name"), [c[:2] for c in CASES if c[2] == 8])
def test_seeds_never_use_batchnorm(family: str, name: str) -> None:
    seed = get_blueprint(family, name).build(8)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in seed.modules())


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_width_zero_is_rejected_naming_the_width(family: str) -> None:
    for name in blueprint_names(family):
        bp = get_blueprint(family, name)
        with pytest.raises(ValueError, match="width 0"):
            bp.build(0)
        with pytest.raises(ValueError, match="width 0"):
            bp.param_count(0)


def test_unknown_name_error_lists_known_blueprints() -> None:
    with pytest.raises(ValueError, match="'conv_huge'") as info:
        get_blueprint("cnn", "conv_huge")
    assert all(name in str(info.value) for name in blueprint_names("cnn"))


def test_unknown_family_error_lists_families() -> None:
    for lookup in (lambda: get_blueprint("rnn", "norm"), lambda: blueprint_names("rnn")):
        with pytest.raises(ValueError, match=r"'rnn'.*dense, conv1d, cnn, transformer"):
            lookup()


def test_register_adds_in_order_and_rejects_duplicates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "_BLUEPRINTS", dict(registry_module._BLUEPRINTS))
    bp = Blueprint("cnn", "test_identity", lambda w: nn.Identity(), lambda w: 0, "no-op")
    assert register(bp) is bp
    assert blueprint_names("cnn")[-1] == "test_identity"
    assert get_blueprint("cnn", "test_identity") is bp
    with pytest.raises(ValueError, match="already registered"):
        register(bp)
    with pytest.raises(ValueError, match="already registered"):
        register(get_blueprint("transformer", "lora"))


def test_register_rejects_unknown_family() -> None:
    with pytest.raises(ValueError, match="'rnn'"):
        register(Blueprint("rnn", "x", lambda w: nn.Identity(), lambda w: 0, "no-op"))
