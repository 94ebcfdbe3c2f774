"""Blend operators: how a seed's residual change d = seed(x) - x enters the host activation h.

Written as h + (something), the host path always keeps its full gradient. The older
`lerp(h, s, alpha)` form scales the host path by (1 - alpha) and starves every upstream host layer
once alpha reaches 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from esper.kasmina.families import get_family
from esper.leyline import BlendOp


def blend(op: BlendOp, h: Tensor, d: Tensor, alpha: Tensor | float, gate: Tensor | None) -> Tensor:
    """Blend the seed's change `d` into `h` at strength `alpha` (a float or a tensor that
    broadcasts against h, e.g. (N, 1, 1, 1) per-sample alphas in a fused pass)."""
    if op == BlendOp.ADD:
        return h + alpha * d
    if op == BlendOp.MULTIPLY:
        return h * (1 + alpha * torch.tanh(d))
    if op == BlendOp.GATE:
        assert gate is not None, "GATE blending needs the gate's output"
        return h + alpha * gate * d
    raise ValueError(f"unknown blend op {op!r}; known: {[b.name for b in BlendOp]}")


class SeedGate(nn.Module):
    """g(x) in (0, 1): one gate value per sample (dense, conv1d, cnn: channels averaged over the
    positions) or per position (transformer).

    Starts at exactly 0.5 (zero weights), so the seed's identity at birth does not depend on it.
    """

    def __init__(self, width: int, family: str) -> None:
        super().__init__()
        self.family = get_family(family)
        self.proj = nn.Linear(width, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.family.pooled_dims
        if not pooled:
            return torch.sigmoid(self.proj(x))  # (B, 1) dense, (B, T, 1) transformer
        gate = torch.sigmoid(self.proj(x.mean(dim=pooled)))  # (B, 1)
        return gate.view(*gate.shape, *([1] * len(pooled)))  # (B, 1, 1...)

    @staticmethod
    def param_count(width: int) -> int:
        return width + 1
