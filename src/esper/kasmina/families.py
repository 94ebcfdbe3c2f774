"""Layer families: the activation layouts a slot can sit on, each with its own blueprints.

A slot's family is fixed by the activation it sees (a host never names it for a user's network):

| family        | activation   | width is | a seed's gate reads        |
|---------------|--------------|----------|----------------------------|
| `dense`       | (B, C)       | C        | the sample                 |
| `conv1d`      | (B, C, L)    | C        | the sample, averaged on L  |
| `cnn`         | (B, C, H, W) | C        | the sample, averaged on HW |
| `transformer` | (B, T, C)    | C        | each position              |

(B, C, L) and (B, T, C) have the same rank; `SequentialHost` tells them apart by the layer that
made the activation (`family_of`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Family:
    name: str
    rank: int  # dimensions of the activation, batch included
    channel_dim: int  # where the width is
    pooled_dims: tuple[int, ...]  # averaged over for a per-sample gate (channels-first layouts)
    description: str

    def probe(self, width: int, device: torch.device | None = None) -> Tensor:
        """A small random activation of this family's layout (odd, unequal extents)."""
        extents = {2: (2, width), 3: (2, width, 5), 4: (2, width, 5, 7)}[self.rank]
        if self.name == "transformer":
            extents = (2, 5, width)
        return torch.randn(extents, device=device)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("dense", 2, 1, (), "(B, C): an MLP's features"),
        Family("conv1d", 3, 1, (2,), "(B, C, L): a 1-D convolutional net's channels"),
        Family("cnn", 4, 1, (2, 3), "(B, C, H, W): a 2-D convolutional net's channels"),
        Family("transformer", 3, -1, (), "(B, T, C): a sequence model's tokens"),
    )
}

# Modules whose output is channels-first (B, C, L) when three-dimensional, and those whose output
# is channels-last (B, T, C): how `family_of` reads a rank-3 activation.
_CHANNELS_FIRST = (
    nn.Conv1d,
    nn.ConvTranspose1d,
    nn.BatchNorm1d,
    nn.InstanceNorm1d,
    nn.MaxPool1d,
    nn.AvgPool1d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveMaxPool1d,
)
_CHANNELS_LAST = (
    nn.Linear,
    nn.Embedding,
    nn.LayerNorm,
    nn.RMSNorm,
    nn.MultiheadAttention,
    nn.TransformerEncoderLayer,
    nn.TransformerDecoderLayer,
)


def get_family(name: str) -> Family:
    """Raises ValueError naming the known families for an unknown one."""
    if name not in FAMILIES:
        raise ValueError(f"unknown layer family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def _layout(module: nn.Module) -> str | None:
    """ "conv1d" or "transformer" for a layer that fixes a rank-3 layout, "free" for one that
    keeps whatever it is given (activations, dropout, GroupNorm, identity), None otherwise."""
    if isinstance(module, _CHANNELS_FIRST):
        return "conv1d"
    if isinstance(module, _CHANNELS_LAST):
        return "transformer"
    free = isinstance(module, nn.Identity | nn.GroupNorm | nn.modules.dropout._DropoutNd)
    if free or type(module).__module__ == "torch.nn.modules.activation":
        return "free"
    return None


def _block_layout(block: nn.Module) -> str | None:
    """A block of the user's own: the layout its layers agree on, None if they do not."""
    kinds = {_layout(m) for m in block.modules() if m is not block} - {"free"}
    return kinds.pop() if len(kinds) == 1 and None not in kinds else None


def family_of(activation: Tensor, made_by: Sequence[nn.Module] = (), where: str = "") -> str:
    """The family of a slot on `activation`, made by the layers `made_by` (in order).

    Rank 2 is dense and rank 4 cnn. Rank 3 is conv1d when the last of `made_by` that fixes a
    layout is a 1-D conv, norm or pool, and transformer when it is a linear, embedding, layer
    norm or attention layer; layers that keep any layout (activations, dropout, GroupNorm) are
    passed over, and a block of the user's own counts when all its layers agree.

    Raises:
        ValueError: for another rank, or a rank-3 activation whose layout `made_by` does not
            tell (a reshape, a block of both kinds of layers).
    """
    rank = activation.dim()
    shape = tuple(activation.shape)
    if rank == 2:
        return "dense"
    if rank == 4:
        return "cnn"
    if rank == 3:
        for layer in reversed(list(made_by)):
            layout = _layout(layer)
            if layout is None:
                layout = _block_layout(layer)
                if layout is None:
                    break  # a layer of unknown layout: nothing before it tells
            if layout != "free":
                return layout
        raise ValueError(
            f"cannot tell the layout of the activation{where} of shape {shape}: (B, C, L) or "
            "(B, T, C); the layers before it do not say (no 1-D conv, norm or pool, nor "
            "linear, embedding or attention layer last); pass families= to say which "
            "(conv1d or transformer)"
        )
    raise ValueError(
        f"no layer family for the activation{where} of shape {shape}: slots sit on (B, C), "
        "(B, C, L), (B, T, C) or (B, C, H, W)"
    )
