"""Wrap a user's `nn.Sequential` as a host by listing the indices after which slots sit."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from esper.kasmina.families import FAMILIES, family_of
from esper.kasmina.host import SlotSpec
from esper.leyline import slot_id


class SequentialHost(nn.Module):
    """A host made of `seq[: cuts[0] + 1]`, `seq[cuts[0] + 1 : cuts[1] + 1]`, ... with the
    remaining modules as the head.

    Each slot's layer family is read from the activation at its cut (`families.family_of`):
    (B, C) dense, (B, C, L) conv1d, (B, T, C) transformer, (B, C, H, W) cnn.

    Args:
        seq: the network.
        cuts: strictly increasing indices of modules after which a slot sits.
        example_input: one input batch, run once to read the shape at each cut.
        families: the family at a cut (by index into `cuts`' modules), for a rank-3 activation
            whose layout no layer of the segment tells.

    Raises:
        ValueError: on cuts out of order or out of range, an activation no family fits, or an
            unknown family.
    """

    def __init__(
        self,
        seq: nn.Sequential,
        cuts: Sequence[int],
        example_input: Tensor,
        families: Mapping[int, str] | None = None,
    ) -> None:
        super().__init__()
        cuts = list(cuts)
        if not cuts or any(b <= a for a, b in itertools.pairwise(cuts)):
            raise ValueError(f"cuts must be a non-empty strictly increasing list, got {cuts}")
        if cuts[0] < 0 or cuts[-1] >= len(seq) - 1:
            raise ValueError(
                f"cuts must lie in [0, {len(seq) - 2}] (at least one module after the last cut "
                f"is the head), got {cuts}"
            )
        given = dict(families or {})
        stray = sorted(set(given) - set(cuts))
        if stray:
            raise ValueError(f"families names modules {stray} that are not cuts ({cuts})")
        for name in given.values():
            if name not in FAMILIES:
                raise ValueError(f"unknown layer family {name!r}; known: {', '.join(FAMILIES)}")
        self.seq = seq
        self.cuts = cuts
        self.bounds = [0, *(c + 1 for c in cuts), len(seq)]  # segment i: seq[bounds[i]:bounds[i+1]]
        self.specs = self._probe(example_input, given)

    def _probe(self, example_input: Tensor, given: Mapping[int, str]) -> list[SlotSpec]:
        was_training = self.training
        self.eval()
        specs = []
        try:
            with torch.no_grad():
                x = example_input
                for i, cut in enumerate(self.cuts):
                    x = self.forward_segment(i, x)
                    where = f" after module {cut}"
                    family = given.get(cut) or family_of(x, list(self.seq)[: cut + 1], where)
                    if x.dim() != FAMILIES[family].rank:
                        raise ValueError(
                            f"families names {family} for the activation{where}, but it has "
                            f"shape {tuple(x.shape)}: {FAMILIES[family].description}"
                        )
                    width = int(x.shape[FAMILIES[family].channel_dim])
                    specs.append(SlotSpec(slot_id(0, i), width, i, family))
        finally:
            self.train(was_training)
        return specs

    def segments(self) -> list[SlotSpec]:
        return list(self.specs)

    def _run(self, start: int, stop: int, x: Tensor) -> Tensor:
        for module in list(self.seq)[start:stop]:
            x = module(x)
        return x

    def forward_segment(self, index: int, x: Tensor) -> Tensor:
        return self._run(self.bounds[index], self.bounds[index + 1], x)

    def head(self, x: Tensor) -> Tensor:
        return self._run(self.bounds[-2], self.bounds[-1], x)

    def forward(self, x: Tensor) -> Tensor:
        return self.seq(x)
