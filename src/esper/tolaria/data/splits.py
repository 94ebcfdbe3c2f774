"""Train / validation / test tensors, the task kind they serve, and a seeded stratified order."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from esper.tolaria.data.normalization import PixelNormalization

TASK_KINDS = ("classification", "language")


class DataError(ValueError):
    """Missing or malformed data; the message says what was expected where and how to get it."""


@dataclass(frozen=True)
class Split:
    """One split held in memory: `inputs` (N, *input_shape) and `targets` (N,) or (N, T).

    With a `normalization`, `inputs` are uint8 images (N, C, H, W) that the loader normalizes
    batch by batch on their device; `normalized()` gives the float split they stand for.
    """

    inputs: Tensor
    targets: Tensor
    normalization: PixelNormalization | None = None

    def __post_init__(self) -> None:
        if self.inputs.shape[0] != self.targets.shape[0]:
            raise DataError(
                f"inputs and targets must have the same number of samples, got "
                f"inputs {tuple(self.inputs.shape)} and targets {tuple(self.targets.shape)}"
            )
        norm = self.normalization
        if norm is None:
            return
        if self.inputs.dtype != torch.uint8 or self.inputs.dim() < 3:
            raise DataError(
                f"a normalization needs uint8 images (N, C, ...), got {self.inputs.dtype} inputs "
                f"{tuple(self.inputs.shape)}"
            )
        if self.inputs.shape[1] != norm.channels:
            raise DataError(
                f"inputs have {self.inputs.shape[1]} channels, the normalization {norm.channels}"
            )

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device: torch.device | str) -> Split:
        """The split with its tensors on `device` (the normalization is device-free)."""
        return replace(self, inputs=self.inputs.to(device), targets=self.targets.to(device))

    def normalized(self) -> Split:
        """The split with the inputs the model sees: stored images normalized to float32 (four
        times their memory), or this split itself when it has no normalization."""
        if self.normalization is None:
            return self
        return Split(self.normalization(self.inputs), self.targets)


@dataclass(frozen=True)
class DataSplits:
    """The three splits of a task. Controllers and rewards see `val` only; `test` is for outcomes.

    `num_classes` is the number of classes, or the vocabulary size when `kind` is "language".
    `input_shape` is the shape of one sample, without the batch dimension.
    """

    train: Split
    val: Split
    test: Split
    kind: str
    num_classes: int
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise DataError(f"unknown task kind {self.kind!r}; allowed: {TASK_KINDS}")
        if self.num_classes < 2:
            raise DataError(f"num_classes must be >= 2, got {self.num_classes}")
        for name in ("train", "val", "test"):
            split: Split = getattr(self, name)
            if len(split) == 0:
                raise DataError(f"the {name} split is empty")
            if tuple(split.inputs.shape[1:]) != self.input_shape:
                raise DataError(
                    f"{name} inputs have sample shape {tuple(split.inputs.shape[1:])}, "
                    f"expected input_shape {self.input_shape}"
                )

    @property
    def chance_loss(self) -> float:
        """Cross-entropy of a uniform guess, ln(num_classes); loss thresholds are relative to it."""
        return math.log(self.num_classes)


def stratified_order(labels: Tensor, seed: int) -> Tensor:
    """A seeded permutation of `labels` (N,) in which every contiguous run is class-balanced.

    Each sample gets the key (rank within its class + 0.5) / class count, with ranks from a seeded
    shuffle; sorting by key interleaves the classes, so cutting the order into consecutive pieces
    gives stratified splits (each class within one sample of its proportion in every piece).
    Returns indices (N,) int64.
    """
    n = labels.shape[0]
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator)
    shuffled = labels[perm]
    counts = torch.bincount(shuffled)
    by_class = torch.sort(shuffled, stable=True).indices  # (N,) shuffled positions grouped by class
    class_start = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.int64)
    rank[by_class] = torch.arange(n) - class_start[shuffled[by_class]]
    key = (rank.double() + 0.5) / counts[shuffled].double()
    return perm[torch.sort(key, stable=True).indices]


def standardized_image_splits(
    images: Tensor, targets: Tensor, seed: int, val_fraction: float, test_fraction: float
) -> DataSplits:
    """Images (N, C, H, W) in [0, 1] and labels (N,) split val/test/train by `stratified_order`
    (`val_fraction` and `test_fraction` of N, the rest train), standardized with the train
    split's mean and std: the embedded digit tasks' splits."""
    n = targets.shape[0]
    n_val, n_test = round(val_fraction * n), round(test_fraction * n)
    order = stratified_order(targets, seed)
    val_index, test_index, train_index = torch.split(order, [n_val, n_test, n - n_val - n_test])
    mean, std = images[train_index].mean(), images[train_index].std()

    def split(index: Tensor) -> Split:
        return Split((images[index] - mean) / std, targets[index])

    return DataSplits(
        train=split(train_index),
        val=split(val_index),
        test=split(test_index),
        kind="classification",
        num_classes=int(targets.max()) + 1,
        input_shape=tuple(images.shape[1:]),
    )
