"""Convolutional seed modules, residual and exactly the identity at birth: each is built for 2-D
activations (B, C, H, W) (the `cnn` family) and for 1-D ones (B, C, L) (`conv1d`), by `dims`.

Seeds use GroupNorm, never BatchNorm: batch statistics would couple each sample's output to the
rest of the batch, and the fused forward stacks K alpha configurations on the batch dimension
(docs/architecture.md §4). Convolutions that feed a norm have no bias.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.kasmina.blueprints.registry import (
    GLOBAL_CONTEXT,
    Blueprint,
    Traits,
    check_width,
    register,
)


class GroupNorm(nn.GroupNorm):
    """`nn.GroupNorm` that sidesteps a crash of PyTorch's CPU kernel (seen in 2.13.0+cpu).

    The CPU backward of GroupNorm on a channels_last input dies with SIGSEGV when the input's
    gradient is not asked for: a seed's first norm reads the detached host activation (shadow
    passes, isolated seeds), so `torch.autograd.grad(loss, seed_params)` crashed the process.
    Such an input needs no gradient, so it is made NCHW-contiguous first (one copy outside the
    graph); every other input takes the normal path. `tests/tolaria/test_channels_last.py`
    runs the crashing case in a subprocess."""

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and not x.requires_grad and torch.is_grad_enabled():
            x = x.contiguous()
        return super().forward(x)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm over `channels` with the largest group count <= 8 that divides it."""
    groups = max(g for g in range(1, 9) if channels % g == 0)
    return GroupNorm(groups, channels)  # 2 * channels parameters


_CONV: dict[int, type[nn.Conv1d | nn.Conv2d]] = {1: nn.Conv1d, 2: nn.Conv2d}


def _spatial(x: Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.dim()))  # the dimensions after (B, C)


def _per_channel(v: Tensor, x: Tensor) -> Tensor:
    """A (B, C) or (C,) tensor shaped to broadcast against x's (B, C, ...)."""
    return v.view(*v.shape, *([1] * (x.dim() - 2)))


def _zero_init(layer: nn.Conv1d | nn.Conv2d | nn.Linear) -> None:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class GroupNormSeed(nn.Module):
    """x + m * (GN(x) - x), with a learned per-channel mix m that starts at zero."""

    def __init__(self, width: int) -> None:
        check_width(width, "GroupNormSeed")
        super().__init__()
        self.norm = group_norm(width)
        self.mix = nn.Parameter(torch.zeros(width))

    @staticmethod
    def param_count(width: int) -> int:
        check_width(width, "GroupNormSeed")
        return 2 * width + width  # norm affine, mix

    def forward(self, x: Tensor) -> Tensor:
        normed: Tensor = self.norm(x)
        return x + _per_channel(self.mix, x) * (normed - x)


class SqueezeExciteSeed(nn.Module):
    """Channel attention x * (1 + tanh(fc2(silu(fc1(gap(x)))))), squeeze-excite (Hu et al., 2018).

    fc2 is zero-initialised, so every channel scale starts at exactly 1. SiLU, as in EfficientNet,
    rather than the paper's ReLU: with the narrow hidden layer (max(1, C // 4) units) a ReLU unit
    is often negative for the whole batch at init, and then fc1 never gets a gradient.
    """

    def __init__(self, width: int) -> None:
        check_width(width, "SqueezeExciteSeed")
        super().__init__()
        hidden = max(1, width // 4)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        _zero_init(self.fc2)

    @staticmethod
    def param_count(width: int) -> int:
        check_width(width, "SqueezeExciteSeed")
        hidden = max(1, width // 4)
        return (width + 1) * hidden + (hidden + 1) * width  # fc1, fc2 with biases

    def forward(self, x: Tensor) -> Tensor:
        pooled = x.mean(dim=_spatial(x))  # (B, C)
        scale = torch.tanh(self.fc2(F.silu(self.fc1(pooled))))  # (B, C)
        return x * (1 + _per_channel(scale, x))


class DepthwiseSeed(nn.Module):
    """x + pointwise(relu(GN(depthwise3(x)))), a MobileNet-style separable conv (3x3 or 3-wide);
    pointwise zero-init."""

    def __init__(self, width: int, dims: int) -> None:
        check_width(width, "DepthwiseSeed")
        super().__init__()
        conv = _CONV[dims]
        self.depthwise = conv(width, width, 3, padding=1, groups=width, bias=False)
        self.norm = group_norm(width)
        self.pointwise = conv(width, width, 1)
        _zero_init(self.pointwise)

    @staticmethod
    def param_count(width: int, dims: int) -> int:
        check_width(width, "DepthwiseSeed")
        return 3**dims * width + 2 * width + (width + 1) * width  # depthwise, norm, pointwise

    def forward(self, x: Tensor) -> Tensor:
        delta: Tensor = self.pointwise(F.relu(self.norm(self.depthwise(x))))
        return x + delta


class BottleneckSeed(nn.Module):
    """x + up1(relu(GN(conv3(relu(GN(down1(x))))))), down to max(1, C // 4) channels; up
    zero-init."""

    def __init__(self, width: int, dims: int) -> None:
        check_width(width, "BottleneckSeed")
        super().__init__()
        conv = _CONV[dims]
        hidden = max(1, width // 4)
        self.down = conv(width, hidden, 1, bias=False)
        self.norm_1 = group_norm(hidden)
        self.conv = conv(hidden, hidden, 3, padding=1, bias=False)
        self.norm_2 = group_norm(hidden)
        self.up = conv(hidden, width, 1)
        _zero_init(self.up)

    @staticmethod
    def param_count(width: int, dims: int) -> int:
        check_width(width, "BottleneckSeed")
        hidden = max(1, width // 4)
        # down, norm_1, conv, norm_2, up
        return width * hidden + 2 * hidden + 3**dims * hidden**2 + 2 * hidden + (hidden + 1) * width

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.norm_1(self.down(x)))  # (B, C // 4, ...)
        h = F.relu(self.norm_2(self.conv(h)))
        delta: Tensor = self.up(h)
        return x + delta


class PreActConvSeed(nn.Module):
    """x + f(x), f = `depth` pre-activation blocks GN -> ReLU -> conv (He et al., 2016, "Identity
    Mappings"); the last conv is zero-init. Pre-activation keeps the ReLU away from the zero-init
    output, so gradients reach every layer from the second step on."""

    def __init__(self, width: int, kernel_size: int, depth: int, dims: int) -> None:
        check_width(width, "PreActConvSeed")
        super().__init__()
        convs = [  # only the last conv is not followed by a norm, so only it has a bias
            _CONV[dims](width, width, kernel_size, padding=kernel_size // 2, bias=i == depth - 1)
            for i in range(depth)
        ]
        self.body = nn.Sequential(*(m for c in convs for m in (group_norm(width), nn.ReLU(), c)))
        _zero_init(convs[-1])

    @staticmethod
    def param_count(width: int, kernel_size: int, depth: int, dims: int) -> int:
        check_width(width, "PreActConvSeed")
        # per block: norm affine + conv weight; plus the last conv's bias
        return depth * (2 * width + kernel_size**dims * width**2) + width

    def forward(self, x: Tensor) -> Tensor:
        delta: Tensor = self.body(x)
        return x + delta


Seed = type[GroupNormSeed | SqueezeExciteSeed | DepthwiseSeed | BottleneckSeed | PreActConvSeed]


def _bind(seed: Seed, **shape: int) -> tuple[Callable[[int], nn.Module], Callable[[int], int]]:
    """The seed's builder and parameter count with its shape arguments (dims, ...) fixed."""
    return partial(seed, **shape), partial(seed.param_count, **shape)


def _builtins(dims: int) -> list[tuple[str, Callable[[int], nn.Module], Callable[[int], int], str]]:
    k = "3x3" if dims == 2 else "3-wide"
    one = "1x1" if dims == 2 else "pointwise"
    return [
        ("norm", GroupNormSeed, GroupNormSeed.param_count, "GroupNorm with a zero-init mix"),
        ("attention", SqueezeExciteSeed, SqueezeExciteSeed.param_count, "squeeze-excite"),
        ("depthwise", *_bind(DepthwiseSeed, dims=dims), f"depthwise {k} + pointwise"),
        ("bottleneck", *_bind(BottleneckSeed, dims=dims), f"{one} down, {k}, {one} up"),
        (
            "conv_small",
            *_bind(PreActConvSeed, kernel_size=1, depth=1, dims=dims),
            f"one pre-activation {one} conv block",
        ),
        (
            "conv_light",
            *_bind(PreActConvSeed, kernel_size=3, depth=1, dims=dims),
            f"one pre-activation {k} conv block",
        ),
        (
            "conv_heavy",
            *_bind(PreActConvSeed, kernel_size=3, depth=2, dims=dims),
            f"two pre-activation {k} conv blocks",
        ),
    ]


TRAITS = {  # what each does (`Traits`), the same in 1-D and 2-D
    "norm": Traits(normalizes=True),
    "attention": Traits(mixes_channels=True, context=GLOBAL_CONTEXT, depth=1),
    "depthwise": Traits(normalizes=True, mixes_channels=True, context=2, depth=1),
    "bottleneck": Traits(normalizes=True, mixes_channels=True, context=2, depth=2),
    "conv_small": Traits(normalizes=True, mixes_channels=True, depth=1),
    "conv_light": Traits(normalizes=True, mixes_channels=True, context=2, depth=1),
    "conv_heavy": Traits(normalizes=True, mixes_channels=True, context=4, depth=2),
}


for family, dims in (("cnn", 2), ("conv1d", 1)):
    for entry in _builtins(dims):  # (name, build, param_count, description)
        register(Blueprint(family, *entry, traits=TRAITS[entry[0]]))
