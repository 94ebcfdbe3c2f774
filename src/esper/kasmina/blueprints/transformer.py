"""Transformer seed modules: (B, T, C) -> (B, T, C), residual and exactly the identity at birth."""

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


def _zero_init(layer: nn.Linear) -> None:
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class LayerNormSeed(nn.Module):
    """x + m * (LN(x) - x), with a learned per-channel mix m that starts at zero."""

    def __init__(self, width: int) -> None:
        check_width(width, "LayerNormSeed")
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.mix = nn.Parameter(torch.zeros(width))

    @staticmethod
    def param_count(width: int) -> int:
        check_width(width, "LayerNormSeed")
        return 2 * width + width  # norm affine, mix

    def forward(self, x: Tensor) -> Tensor:
        normed: Tensor = self.norm(x)
        return x + self.mix * (normed - x)  # mix (C,) broadcasts over (B, T, C)


class LoRASeed(nn.Module):
    """x + B(A(x)), a rank-`rank` update without biases (Hu et al., 2021); B zero-init."""

    def __init__(self, width: int, rank: int) -> None:
        check_width(width, "LoRASeed")
        super().__init__()
        self.lora_a = nn.Linear(width, rank, bias=False)  # default Kaiming-uniform, as in LoRA
        self.lora_b = nn.Linear(rank, width, bias=False)
        _zero_init(self.lora_b)

    @staticmethod
    def param_count(width: int, rank: int) -> int:
        check_width(width, "LoRASeed")
        return 2 * width * rank

    def forward(self, x: Tensor) -> Tensor:
        delta: Tensor = self.lora_b(self.lora_a(x))  # (B, T, rank) -> (B, T, C)
        return x + delta


class CausalSelfAttentionSeed(nn.Module):
    """x + proj(attn(LN(x))), an extra pre-norm causal self-attention; proj zero-init.

    Raises:
        ValueError: if width is not divisible by n_head.
    """

    def __init__(self, width: int, n_head: int) -> None:
        self._check(width, n_head)
        super().__init__()
        self.n_head = n_head
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        _zero_init(self.proj)

    @staticmethod
    def _check(width: int, n_head: int) -> None:
        check_width(width, "CausalSelfAttentionSeed")
        if width % n_head:
            raise ValueError(
                f"CausalSelfAttentionSeed needs width divisible by n_head {n_head}, "
                f"got width {width}"
            )

    @staticmethod
    def param_count(width: int, n_head: int) -> int:
        CausalSelfAttentionSeed._check(width, n_head)
        return 2 * width + (width + 1) * 3 * width + (width + 1) * width  # norm, qkv, proj

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm(x)).split(C, dim=2)
        # (B, T, C) -> (B, n_head, T, C // n_head)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        delta: Tensor = self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + delta


class MLPSeed(nn.Module):
    """x + fc2(gelu(fc1(LN(x)))), a pre-norm MLP with hidden width expansion * C; fc2 zero-init."""

    def __init__(self, width: int, expansion: int) -> None:
        check_width(width, "MLPSeed")
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, expansion * width)
        self.fc2 = nn.Linear(expansion * width, width)
        _zero_init(self.fc2)

    @staticmethod
    def param_count(width: int, expansion: int) -> int:
        check_width(width, "MLPSeed")
        hidden = expansion * width
        return 2 * width + (width + 1) * hidden + (hidden + 1) * width  # norm, fc1, fc2

    def forward(self, x: Tensor) -> Tensor:
        delta: Tensor = self.fc2(F.gelu(self.fc1(self.norm(x))))  # hidden (B, T, expansion * C)
        return x + delta


def bind(
    seed: type[LoRASeed | CausalSelfAttentionSeed | MLPSeed], **shape: int
) -> tuple[Callable[[int], nn.Module], Callable[[int], int]]:
    """The seed's builder and parameter count with its shape arguments (rank, ...) fixed."""
    return partial(seed, **shape), partial(seed.param_count, **shape)


_BUILTINS: list[tuple[str, Callable[[int], nn.Module], Callable[[int], int], str]] = [
    ("norm", LayerNormSeed, LayerNormSeed.param_count, "LayerNorm with a zero-init mix"),
    ("lora", *bind(LoRASeed, rank=8), "rank-8 low-rank update"),
    ("lora_large", *bind(LoRASeed, rank=32), "rank-32 low-rank update"),
    ("attention", *bind(CausalSelfAttentionSeed, n_head=4), "causal self-attention, 4 heads"),
    ("mlp_small", *bind(MLPSeed, expansion=2), "pre-norm GELU MLP, hidden 2x"),
    ("mlp", *bind(MLPSeed, expansion=4), "pre-norm GELU MLP, hidden 4x"),
]
TRAITS = {  # what each does (`Traits`); a dense activation has no positions to see across
    "norm": Traits(normalizes=True),
    "lora": Traits(mixes_channels=True),
    "lora_large": Traits(mixes_channels=True),
    "attention": Traits(normalizes=True, mixes_channels=True, context=GLOBAL_CONTEXT, depth=1),
    "mlp_small": Traits(normalizes=True, mixes_channels=True, depth=1),
    "mlp": Traits(normalizes=True, mixes_channels=True, depth=1),
}
for entry in _BUILTINS:  # (name, build, param_count, description)
    register(Blueprint("transformer", *entry, traits=TRAITS[entry[0]]))
