"""Wrap a user's `nn.Sequential` as a host by listing the indices after which slots sit."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from esper.kasmina.host import SlotSpec
from esper.leyline import slot_id

_WIDTH_DIM = {"cnn": 1, "transformer": -1}  # (B, C, H, W) vs (B, T, C)


class SequentialHost(nn.Module):
    """A host made of `seq[: cuts[0] + 1]`, `seq[cuts[0] + 1 : cuts[1] + 1]`, ... with the
    remaining modules as the head.

    Args:
        seq: the network.
        cuts: strictly increasing indices of modules after which a slot sits.
        topology: "cnn" (activations (B, C, ...)) or "transformer" (activations (B, T, C)).
        example_input: one input batch, run once to read the width at each cut.

    Raises:
        ValueError: on an unknown topology or cuts out of order or out of range.
    """

    def __init__(
        self, seq: nn.Sequential, cuts: Sequence[int], topology: str, example_input: Tensor
    ) -> None:
        super().__init__()
        if topology not in _WIDTH_DIM:
            raise ValueError(f"unknown topology {topology!r}; known: {sorted(_WIDTH_DIM)}")
        cuts = list(cuts)
        if not cuts or any(b <= a for a, b in itertools.pairwise(cuts)):
            raise ValueError(f"cuts must be a non-empty strictly increasing list, got {cuts}")
        if cuts[0] < 0 or cuts[-1] >= len(seq):
            raise ValueError(f"cuts must lie in [0, {len(seq) - 1}], got {cuts}")
        self.topology = topology
        self.seq = seq
        self.bounds = [
            0,
            *(c + 1 for c in cuts),
            len(seq),
        ]  # segment i is seq[bounds[i]:bounds[i+1]]
        self.widths = self._probe_widths(example_input)

    def _probe_widths(self, example_input: Tensor) -> list[int]:
        was_training = self.training
        self.eval()
        widths = []
        with torch.no_grad():
            x = example_input
            for i in range(len(self.bounds) - 2):
                x = self.forward_segment(i, x)
                widths.append(int(x.shape[_WIDTH_DIM[self.topology]]))
        self.train(was_training)
        return widths

    def segments(self) -> list[SlotSpec]:
        return [SlotSpec(slot_id(0, i), w, i) for i, w in enumerate(self.widths)]

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
