"""The host protocol: a network cut into ordered segments, with a slot after each cut."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import Tensor


@dataclass(frozen=True)
class SlotSpec:
    """Where a slot sits: its id, the activation width there, and the segment it follows."""

    slot_id: str
    width: int  # channels (CNN) or model width (transformer) of the activation at the slot
    position: int  # the slot follows segment `position`


@runtime_checkable
class Host(Protocol):
    """Any module that can be run segment by segment.

    `forward_segment(0, inputs)` takes the raw input; `forward_segment(i, x)` for i > 0 the
    output of slot i-1; `head(x)` maps the last slot's output to logits.
    """

    topology: str  # "cnn" or "transformer": selects the blueprint family

    def segments(self) -> list[SlotSpec]: ...

    def forward_segment(self, index: int, x: Tensor) -> Tensor: ...

    def head(self, x: Tensor) -> Tensor: ...
