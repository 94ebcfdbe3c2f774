"""Dense seed modules: (B, C) -> (B, C), for an MLP's features, residual and exactly the identity
at birth.

The transformer family's norm, low-rank and MLP seeds act on the last dimension only, so the
same modules serve here; their sizes are chosen for the narrower widths of an MLP.
"""

from __future__ import annotations

from esper.kasmina.blueprints.registry import Blueprint, register
from esper.kasmina.blueprints.transformer import TRAITS, LayerNormSeed, LoRASeed, MLPSeed, bind

for entry in (
    ("norm", LayerNormSeed, LayerNormSeed.param_count, "LayerNorm with a zero-init mix"),
    ("lora", *bind(LoRASeed, rank=4), "rank-4 low-rank update"),
    ("lora_large", *bind(LoRASeed, rank=16), "rank-16 low-rank update"),
    ("mlp_small", *bind(MLPSeed, expansion=1), "residual pre-norm GELU MLP block, hidden 1x"),
    ("mlp", *bind(MLPSeed, expansion=4), "residual pre-norm GELU MLP block, hidden 4x"),
):
    register(Blueprint("dense", *entry, traits=TRAITS[entry[0]]))
