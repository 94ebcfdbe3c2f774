"""The host protocol: a network cut into ordered segments, with a slot after each cut."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor


@dataclass(frozen=True)
class SlotSpec:
    """Where a slot sits: its id, the activation width there, the segment it follows, and the
    layer family of the activation there (`kasmina/families.py`), which picks its blueprints."""

    slot_id: str
    width: int  # channels (dense, conv1d, cnn) or model width (transformer) at the slot
    position: int  # the slot follows segment `position`
    family: str  # "dense", "conv1d", "cnn" or "transformer"


@runtime_checkable
class Host(Protocol):
    """Any module that can be run segment by segment.

    `forward_segment(0, inputs)` takes the raw input; `forward_segment(i, x)` for i > 0 the
    output of slot i-1; `head(x)` maps the last slot's output to logits.
    """

    def segments(self) -> list[SlotSpec]: ...

    def forward_segment(self, index: int, x: Tensor) -> Tensor: ...

    def head(self, x: Tensor) -> Tensor: ...
