"""Batched image augmentation: random crop with zero padding and horizontal flip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def crop_flip(x: Tensor, top: Tensor, left: Tensor, flip: Tensor, padding: int) -> Tensor:
    """Crop each zero-padded image at its own offset, flipping where asked.

    Args:
        x: images (B, C, H, W).
        top, left: offsets (B,) int64 in [0, 2 * padding] into the padded image.
        flip: (B,) bool, mirror left-right.
        padding: zeros added on every side before cropping.

    Returns:
        (B, C, H, W), same dtype and device as `x`.
    """
    batch, channels, height, width = x.shape
    padded_width = width + 2 * padding
    padded = F.pad(x, (padding, padding, padding, padding)).flatten(2)  # (B, C, Hp * Wp)
    rows = top[:, None] + torch.arange(height, device=x.device)  # (B, H)
    cols = left[:, None] + torch.arange(width, device=x.device)  # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    # One gather over flat pixel positions; measured faster than advanced indexing on CPU.
    flat = (rows[:, :, None] * padded_width + cols[:, None, :]).flatten(1)  # (B, H * W)
    crops = padded.gather(2, flat[:, None, :].expand(batch, channels, height * width))
    return crops.view(batch, channels, height, width)


@dataclass(frozen=True)
class CropFlip:
    """Random crop of a zero-padded image and a horizontal flip with probability 1/2, per image.

    A planned augmentation (`tensor_loader.PlannedAugment`): `draw` makes a whole pass's random
    choices up front from the loader's CPU generator, the loader moves them to the device in one
    copy, and `apply` augments each batch there from its slice. Called as `f(x, generator)` it
    draws for that one batch (what `random_crop_flip` does). Either way the generator is used in
    the same order, so both give the same images for the same seed.

    Args:
        padding: zeros added on every side before cropping, >= 0.
    """

    padding: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.padding, bool) or not isinstance(self.padding, int) or self.padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {self.padding!r}")

    def draw(self, batch_sizes: Sequence[int], generator: torch.Generator) -> Tensor:
        """The choices for batches of `batch_sizes`, in order: (N, 3) int64 on the CPU, N their
        sum, one row per image (top, left, flip as 0/1).

        Batch by batch, as one batch at a time would draw them: the offsets (2, b), then the flips
        (b,); so a pass's plan leaves the generator where per-batch augmentation did.
        """
        parts = []
        for size in batch_sizes:
            offsets = torch.randint(0, 2 * self.padding + 1, (2, size), generator=generator)
            flip = torch.rand(size, generator=generator) < 0.5
            parts.append(torch.cat([offsets, flip.long()[None]]))  # (3, b)
        return torch.cat(parts, 1).T.contiguous()  # (N, 3)

    def apply(self, x: Tensor, draws: Tensor) -> Tensor:
        """Augment images `x` (B, C, H, W) with their rows of a plan, `draws` (B, 3) on x's device.

        Returns (B, C, H, W).
        """
        _check_images(x)
        return crop_flip(x, draws[:, 0], draws[:, 1], draws[:, 2].bool(), self.padding)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Draw for this batch alone and apply (the plain per-batch `Augment` form)."""
        _check_images(x)
        return self.apply(x, self.draw([x.shape[0]], generator).to(x.device))


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop (zero padding `padding`) and horizontal flip with probability 1/2, per image.

    `x` is (B, C, H, W) on any device; the draws come from the CPU `generator`, so the result
    depends only on its state. Returns (B, C, H, W).
    """
    return CropFlip(padding)(x, generator)


def _check_images(x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
