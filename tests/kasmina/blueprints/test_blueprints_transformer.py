"""Transformer blueprints; the contract all blueprints share is in test_blueprint_registry.py."""

import pytest
import torch

from esper.kasmina.blueprints import blueprint_names, get_blueprint


def test_registration_order() -> None:
    assert blueprint_names("transformer") == (
        "norm",
        "lora",
        "lora_large",
        "attention",
        "mlp_small",
        "mlp",
    )


def test_param_counts_match_reference_values() -> None:
    # hand-computed at width 64
    expected = {
        "norm": 3 * 64,
        "lora": 2 * 64 * 8,
        "lora_large": 2 * 64 * 32,
        "attention": 128 + 65 * 192 + 65 * 64,  # LN, qkv, proj
        "mlp_small": 128 + 65 * 128 + 129 * 64,
        "mlp": 128 + 65 * 256 + 257 * 64,
    }
    assert {name: get_blueprint("transformer", name).param_count(64) for name in expected} == (
        expected
    )


@pytest.mark.parametrize("width", [6, 10])
def test_attention_rejects_width_not_divisible_by_heads(width: int) -> None:
    bp = get_blueprint("transformer", "attention")
    with pytest.raises(ValueError, match=f"n_head 4, got width {width}"):
        bp.build(width)
    with pytest.raises(ValueError, match=f"n_head 4, got width {width}"):
        bp.param_count(width)


def test_attention_is_causal() -> None:
    torch.manual_seed(0)
    seed = get_blueprint("transformer", "attention").build(16)
    with torch.no_grad():
        for p in seed.parameters():
            p.normal_(std=0.5)  # away from the zero-init, which would hide any leak
        x = torch.randn(2, 8, 16)  # (B, T, C)
        x_changed = x.clone()
        x_changed[:, 5] = torch.randn(2, 16)  # change token 5 only (not by a constant: LN drops it)
        y, y_changed = seed(x), seed(x_changed)
    assert torch.allclose(y[:, :5], y_changed[:, :5], atol=1e-6, rtol=0)
    assert not torch.allclose(y[:, 5:], y_changed[:, 5:], atol=1e-3)
