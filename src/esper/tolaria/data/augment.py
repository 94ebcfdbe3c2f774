"""Batched image augmentation: random crop with zero padding and horizontal flip."""

from __future__ import annotations

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


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = 4) -> Tensor:
    """Random crop (zero padding `padding`) and horizontal flip with probability 1/2, per image.

    `x` is (B, C, H, W) on any device; the draws come from the CPU `generator`, so the result
    depends only on its state. Returns (B, C, H, W).
    """
    if x.dim() != 4:
        raise ValueError(f"expected images (B, C, H, W), got shape {tuple(x.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative integer, got {padding!r}")
    batch = x.shape[0]
    offsets = torch.randint(0, 2 * padding + 1, (2, batch), generator=generator)
    flip = torch.rand(batch, generator=generator) < 0.5
    top, left, flip = (t.to(x.device) for t in (offsets[0], offsets[1], flip))
    return crop_flip(x, top, left, flip, padding)
