"""Images stored as uint8 and normalized per batch, on whatever device they are on.

A uint8 image takes a quarter of the memory of its float32 form, so a whole data set fits on the
device; the loader turns each batch into model inputs there. It does so by looking each pixel up
in a (C, 256) table rather than by arithmetic on the device: the table is computed on the CPU
with the ops of normalizing float images directly, in their order, so a batch is bitwise the
same on every device (CUDA divides by a CPU scalar as a multiply by its reciprocal, which can
differ in the last bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

PIXEL_VALUES = 256  # a uint8 holds 0..255


@dataclass(frozen=True)
class PixelNormalization:
    """Per-channel standardization of uint8 images: channel c becomes (x / 255 - mean[c]) / std[c].

    Args:
        mean: per channel, of the images scaled to [0, 1].
        std: per channel, > 0.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.mean or len(self.mean) != len(self.std):
            raise ValueError(
                f"mean and std need one value per channel, got mean {self.mean} and std {self.std}"
            )
        if not all(math.isfinite(m) for m in self.mean):
            raise ValueError(f"mean must be finite, got {self.mean}")
        if not all(math.isfinite(s) and s > 0 for s in self.std):
            raise ValueError(f"std must be finite and > 0, got {self.std}")

    @property
    def channels(self) -> int:
        return len(self.mean)

    def table(self, device: torch.device | str = "cpu") -> Tensor:
        """(C, 256) float32 on `device`: entry [c, v] is pixel value v of channel c, normalized.

        Computed on the CPU as `x.float() / 255`, minus the mean, divided by the std (the order a
        float split normalized up front used), then moved.
        """
        values = torch.arange(PIXEL_VALUES).float() / 255.0  # (256,)
        mean = torch.tensor(self.mean).view(-1, 1)  # (C, 1)
        std = torch.tensor(self.std).view(-1, 1)
        return ((values - mean) / std).to(device)

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 (B, C, ...) -> float32 (B, C, ...) on the images' device. Builds the table on
        every call; a loader keeps one on its device and calls `normalize_pixels`."""
        return normalize_pixels(images, self.table(images.device))


def normalize_pixels(images: Tensor, table: Tensor) -> Tensor:
    """Look every pixel of `images` uint8 (B, C, ...) up in `table` (C, 256), both on one device.

    Returns float32 (B, C, ...), contiguous.
    """
    batch, channels = images.shape[:2]
    index = images.long().flatten(2)  # (B, C, P) pixel values, P pixels per channel
    values = table.expand(batch, channels, PIXEL_VALUES).gather(2, index)  # (B, C, P)
    return values.view(images.shape)
