"""The embedded `digits` task: scikit-learn's bundled 8x8 handwritten digits (no download)."""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits as sklearn_load_digits

from esper.tolaria.data.splits import DataSplits, standardized_image_splits

VAL_FRACTION = 0.2
TEST_FRACTION = 0.2


def load_digits(seed: int = 0) -> DataSplits:
    """1,797 digits split train/val/test 60/20/20, stratified by class and fixed by `seed`.

    Pixels are scaled to [0, 1] (/16) and standardized with the train split's mean and std.
    Inputs (N, 1, 8, 8) float32, targets (N,) int64, 10 classes.
    """
    pixels, labels = sklearn_load_digits(return_X_y=True)
    images = torch.as_tensor(pixels, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0
    targets = torch.as_tensor(labels, dtype=torch.int64)
    return standardized_image_splits(images, targets, seed, VAL_FRACTION, TEST_FRACTION)
