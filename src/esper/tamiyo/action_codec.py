"""Factored actions <-> integer head indices (the env's `MultiDiscrete` action space)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from esper.leyline import (
    ALPHA_TARGETS,
    HEAD_ORDER,
    HEADS_USED,
    BlendOp,
    Curve,
    FactoredAction,
    Head,
    Op,
    Tempo,
)
from esper.tamiyo.features import FeatureSpec


def decode(spec: FeatureSpec, indices: Sequence[int] | np.ndarray) -> FactoredAction:
    """One index per head in `HEAD_ORDER`; heads the op does not use are ignored.

    Raises:
        ValueError: when there is not one index per head or an index is out of range.
    """
    values = [int(i) for i in np.asarray(indices).reshape(-1)]
    sizes = spec.head_sizes
    if len(values) != len(HEAD_ORDER):
        raise ValueError(f"expected {len(HEAD_ORDER)} head indices, got {len(values)}")
    for head, value in zip(HEAD_ORDER, values, strict=True):
        if not 0 <= value < sizes[head]:
            raise ValueError(f"head '{head.value}' index {value} out of range [0, {sizes[head]})")
    chosen = dict(zip(HEAD_ORDER, values, strict=True))
    op = Op(chosen[Head.OP])
    used = HEADS_USED[op]
    choices: dict[Head, Sequence[Any]] = {
        Head.SLOT: spec.slot_ids,
        Head.BLUEPRINT: spec.blueprints,
        Head.BLEND: list(BlendOp),
        Head.TEMPO: list(Tempo),
        Head.ALPHA_TARGET: ALPHA_TARGETS,
        Head.CURVE: list(Curve),
    }
    fields: dict[str, Any] = {h.value: choices[h][chosen[h]] for h in used}
    return FactoredAction(op, **fields)


def encode(spec: FeatureSpec, action: FactoredAction) -> np.ndarray:
    """Head indices (len(HEAD_ORDER),) int64; unused heads are 0."""
    index = {
        Head.OP: int(action.op),
        Head.SLOT: spec.slot_ids.index(action.slot) if action.slot is not None else 0,
        Head.BLUEPRINT: spec.blueprints.index(action.blueprint) if action.blueprint else 0,
        Head.BLEND: list(BlendOp).index(action.blend) if action.blend is not None else 0,
        Head.TEMPO: list(Tempo).index(action.tempo) if action.tempo is not None else 0,
        Head.ALPHA_TARGET: (
            ALPHA_TARGETS.index(action.alpha_target) if action.alpha_target is not None else 0
        ),
        Head.CURVE: list(Curve).index(action.curve) if action.curve is not None else 0,
    }
    return np.asarray([index[h] for h in HEAD_ORDER], dtype=np.int64)
