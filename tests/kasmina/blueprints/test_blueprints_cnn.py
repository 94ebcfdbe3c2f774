"""CNN blueprints; the contract shared by all blueprints is in test_blueprint_registry.py."""

import pytest
import torch

from esper.kasmina.blueprints import blueprint_names, get_blueprint
from esper.kasmina.blueprints.cnn import group_norm


def test_registration_order() -> None:
    assert blueprint_names("cnn") == (
        "norm",
        "attention",
        "depthwise",
        "bottleneck",
        "conv_small",
        "conv_light",
        "conv_heavy",
    )


@pytest.mark.parametrize(("channels", "groups"), [(1, 1), (6, 6), (7, 7), (9, 3), (12, 6), (64, 8)])
def test_group_norm_uses_largest_group_count_up_to_8(channels: int, groups: int) -> None:
    assert group_norm(channels).num_groups == groups


def test_param_counts_match_reference_values() -> None:
    # hand-computed at width 16: GN affine 32; hidden 4 for attention and bottleneck
    expected = {
        "norm": 48,  # 32 + mix 16
        "attention": 17 * 4 + 5 * 16,
        "depthwise": 9 * 16 + 32 + 17 * 16,
        "bottleneck": 16 * 4 + 8 + 9 * 16 + 8 + 5 * 16,
        "conv_small": 32 + 17 * 16,
        "conv_light": 32 + 9 * 256 + 16,
        "conv_heavy": 2 * (32 + 9 * 256) + 16,
    }
    assert {name: get_blueprint("cnn", name).param_count(16) for name in expected} == expected


def test_attention_scales_each_channel_by_a_factor_in_0_2() -> None:
    torch.manual_seed(0)
    seed = get_blueprint("cnn", "attention").build(8)
    with torch.no_grad():
        for p in seed.parameters():
            p.normal_(std=3.0)  # away from the zero-init, into tanh saturation
        x = torch.rand(4, 8, 5, 5) + 0.5  # positive, so out / x is well defined
        scale = seed(x) / x  # (B, C, H, W)
    per_channel = scale[:, :, :1, :1]
    assert torch.allclose(scale, per_channel.expand_as(scale), atol=1e-6)
    assert (scale >= 0).all() and (scale <= 2).all()
    assert not torch.allclose(scale, torch.ones_like(scale))
