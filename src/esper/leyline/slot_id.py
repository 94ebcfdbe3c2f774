"""Slot ids: `r<row>c<col>` with non-negative integers, ordered numerically row-major."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_SLOT_ID = re.compile(r"r(0|[1-9][0-9]*)c(0|[1-9][0-9]*)")


class SlotIdError(ValueError):
    """A slot id that is not of the form `r<row>c<col>`."""


@dataclass(frozen=True, order=True)
class SlotId:
    row: int
    col: int

    def __str__(self) -> str:
        return f"r{self.row}c{self.col}"


def parse_slot_id(text: str) -> SlotId:
    """Parse `r<row>c<col>` (e.g. `r0c2`). Raises SlotIdError naming the bad id."""
    if not isinstance(text, str):
        raise SlotIdError(f"slot id must be a string like 'r0c1', got {text!r}")
    match = _SLOT_ID.fullmatch(text)
    if match is None:
        raise SlotIdError(
            f"invalid slot id {text!r}: expected 'r<row>c<col>' with non-negative integers "
            "and no leading zeros, e.g. 'r0c1'"
        )
    return SlotId(int(match.group(1)), int(match.group(2)))


def slot_id(row: int, col: int) -> str:
    """The canonical text id of (row, col)."""
    if row < 0 or col < 0:
        raise SlotIdError(f"slot row and column must be non-negative, got row={row}, col={col}")
    return f"r{row}c{col}"


def sort_slot_ids(ids: Iterable[str]) -> list[str]:
    """Numeric row-major order (r0c2 < r0c10 < r1c0); this order fixes the slot head's indices.

    Raises SlotIdError on a malformed or duplicated id.
    """
    ids = list(ids)
    parsed = [parse_slot_id(i) for i in ids]
    if len(set(parsed)) != len(parsed):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise SlotIdError(f"duplicate slot ids: {dupes}")
    return [str(p) for p in sorted(parsed)]
