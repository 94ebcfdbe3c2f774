"""CNNHost: conv → norm → ReLU blocks with doubling widths; a slot after each block."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from esper.kasmina.blueprints.cnn import group_norm
from esper.kasmina.host import SlotSpec
from esper.leyline import slot_id

# GroupNorm by default: it normalizes each sample on its own, so a seed's counterfactual ("this
# seed's alpha at 0") is not confounded by BatchNorm's running statistics, gathered in training
# with the seed in place (measured on digits: removing a blended seed "cost" 5-10 pp while the
# host was no better for it). BatchNorm, the classic choice, stays available.
_NORMS: dict[str, Callable[[int], nn.Module]] = {"batch": nn.BatchNorm2d, "group": group_norm}


class CNNHost(nn.Module):
    """A small image classifier cut into one segment per conv block.

    Args:
        in_channels: channels of the input images.
        image_size: height = width of the input images.
        widths: output channels of each block (one slot after each, ids r0c0, r0c1, ...).
        num_classes: logits produced by the head.
        pool: max-pool 2x2 after each block (bool for all, or one flag per block).
        norm: "group" (GroupNorm, up to 8 groups) or "batch" (BatchNorm).

    Raises:
        ValueError: on empty or non-positive widths, or pooling that shrinks the image below 1x1.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 8,
        widths: Sequence[int] = (2, 4, 8),
        num_classes: int = 10,
        pool: bool | Sequence[bool] = True,
        norm: str = "group",
    ) -> None:
        super().__init__()
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"widths must be a non-empty list of positive ints, got {widths}")
        if in_channels < 1 or num_classes < 2:
            raise ValueError(
                f"need in_channels >= 1 and num_classes >= 2, got {in_channels}, {num_classes}"
            )
        if norm not in _NORMS:
            raise ValueError(f"unknown norm {norm!r}; known: {sorted(_NORMS)}")
        pools = [pool] * len(widths) if isinstance(pool, bool) else list(pool)
        if len(pools) != len(widths):
            raise ValueError(f"pool has {len(pools)} flags for {len(widths)} blocks")
        if image_size < 2 ** sum(pools):
            raise ValueError(
                f"image_size {image_size} is too small for {sum(pools)} 2x2 poolings "
                f"(needs >= {2 ** sum(pools)})"
            )
        self.in_channels, self.image_size, self.widths = in_channels, image_size, tuple(widths)
        blocks: list[nn.Module] = []
        c_in = in_channels
        for width, has_pool in zip(widths, pools, strict=True):
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, width, 3, padding=1, bias=False),  # the norm supplies the bias
                _NORMS[norm](width),
                nn.ReLU(inplace=True),
            ]
            if has_pool:
                layers.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*layers))
            c_in = width
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(widths[-1], num_classes)

    def segments(self) -> list[SlotSpec]:
        return [SlotSpec(slot_id(0, i), w, i, "cnn") for i, w in enumerate(self.widths)]

    def forward_segment(self, index: int, x: Tensor) -> Tensor:
        return self.blocks[index](x)  # (B, C_in, H, W) -> (B, widths[index], H', W')

    def head(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(x.mean(dim=(2, 3)), 1))  # GAP -> (B, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        for i in range(len(self.blocks)):
            x = self.forward_segment(i, x)
        return self.head(x)
