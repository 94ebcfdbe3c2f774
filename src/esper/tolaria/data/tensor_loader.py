"""Batches from tensors held in memory: far cheaper than torch's DataLoader for small data sets.

The loader owns a CPU `torch.Generator` seeded from `seed`, so each env's order and augmentation
are reproducible and independent of the global RNG; `state_dict()` captures it for exact resume.

Moved to a device, the split stays there and a pass copies host to device only twice, both at
its start: the shuffle order, and a planned augmentation's draws. Batches are gathered,
normalized (uint8 images) and augmented on the device, and nothing is read back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from esper.tolaria.data.normalization import normalize_pixels
from esper.tolaria.data.splits import Split

Augment = Callable[[Tensor, torch.Generator], Tensor]  # per batch: f(x, generator) -> x


@runtime_checkable
class PlannedAugment(Protocol):
    """An augmentation whose random choices for a whole pass are drawn before its first batch.

    The loader calls `draw` once per pass, moves the result to its device in one copy, and calls
    `apply` on each batch with that batch's rows; a per-batch `Augment` instead draws on the CPU
    and copies its draws to the device every batch. `esper.tolaria.data.CropFlip` is one.
    """

    def draw(self, batch_sizes: Sequence[int], generator: torch.Generator) -> Tensor:
        """The choices for one pass's batches, in order: (N, ...) on the CPU, one row per sample
        (N the sum of `batch_sizes`), all drawn from `generator`."""
        ...

    def apply(self, x: Tensor, draws: Tensor) -> Tensor:
        """Augment the input batch `x` (B, ...) with its rows of the plan, `draws` (B, ...) on
        x's device."""
        ...


class TensorLoader:
    """Iterate (x, y) batches over a `Split`, on whatever device its tensors are on.

    Args:
        split: the samples; `to(device)` moves them once (GPU preload).
        batch_size: samples per batch, >= 1; the last batch is smaller unless `drop_last`.
        shuffle: draw a fresh permutation at the start of every pass.
        seed: seeds the loader's own generator (shuffling and `augment`), >= 0.
        augment: optional; a `PlannedAugment` draws once per pass and applies to each batch on
            the device, a plain `f(x, generator) -> x` is called on each batch.
        drop_last: skip the final batch when it is smaller than `batch_size`.
        memory_format: of the input batches (`torch.channels_last` for image hosts that run
            faster in it). Unshuffled and not normalized, the split is stored in it, so batches
            are views; other batches are new tensors (in the default format), converted.

    A split of uint8 images with a `normalization` is normalized batch by batch, after the
    gather and before `augment` (so crops pad with zeros in normalized space, as when the split
    was normalized up front).
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool,
        seed: int,
        augment: Augment | PlannedAugment | None = None,
        drop_last: bool = False,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if augment is not None and not (isinstance(augment, PlannedAugment) or callable(augment)):
            raise ValueError(
                f"augment must be a PlannedAugment, a callable f(x, generator) or None, "
                f"got {augment!r}"
            )
        if len(split) == 0:
            raise ValueError("cannot load from an empty split")
        if drop_last and len(split) < batch_size:
            raise ValueError(
                f"drop_last with batch_size={batch_size} > {len(split)} samples gives no batches"
            )
        self.memory_format = memory_format
        self.shuffle = shuffle
        self.batch_size = batch_size
        self.augment = augment
        self.drop_last = drop_last
        self._generator = torch.Generator().manual_seed(seed)
        self._hold(split)

    @property
    def num_samples(self) -> int:
        """Samples in the split (a pass yields fewer when `drop_last` drops a partial batch)."""
        return len(self._split)

    @property
    def device(self) -> torch.device:
        return self._split.inputs.device

    def __len__(self) -> int:
        """Batches per pass."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def to(self, device: torch.device | str) -> TensorLoader:
        """Move the split's tensors (and its normalization table) to `device` once; returns
        self."""
        self._hold(self._split.to(device))
        return self

    def _hold(self, split: Split) -> None:
        """Keep `split`, in the batches' memory format where batches are views of it, and the
        table normalizing its images on its device."""
        norm = split.normalization
        self._pixel_table = None if norm is None else norm.table(split.inputs.device)  # (C, 256)
        is_viewed = not self.shuffle and norm is None and split.inputs.dim() == 4
        if is_viewed and self.memory_format != torch.contiguous_format:
            split = replace(split, inputs=split.inputs.contiguous(memory_format=self.memory_format))
        self._split = split

    def _batch_sizes(self) -> list[int]:
        """The sizes of a pass's batches, in order."""
        return [
            min(self.batch_size, self.num_samples - i * self.batch_size) for i in range(len(self))
        ]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        inputs, targets = self._split.inputs, self._split.targets
        order = None
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=self._generator).to(self.device)
        sizes = self._batch_sizes()
        augment, draws = self.augment, None
        if isinstance(augment, PlannedAugment):
            draws = augment.draw(sizes, self._generator).to(self.device)  # (N, ...) for the pass
        for i, size in enumerate(sizes):
            start, end = i * self.batch_size, i * self.batch_size + size
            if order is None:
                x, y = inputs[start:end], targets[start:end]
            else:
                index = order[start:end]
                x, y = inputs.index_select(0, index), targets.index_select(0, index)
            if self._pixel_table is not None:
                x = normalize_pixels(x, self._pixel_table)
            if isinstance(augment, PlannedAugment):
                assert draws is not None  # drawn above, for the whole pass
                x = augment.apply(x, draws[start:end])
            elif augment is not None:
                x = augment(x, self._generator)
            if self.memory_format != torch.contiguous_format and x.dim() == 4:
                x = x.contiguous(memory_format=self.memory_format)  # a no-op when it is
            yield x, y

    def state_dict(self) -> dict[str, Any]:
        """The generator state; taken between passes, loading it repeats the next pass exactly."""
        return {"generator_state": self._generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"generator_state"}:
            raise ValueError(f"expected keys {{'generator_state'}}, got {sorted(state)}")
        self._generator.set_state(state["generator_state"])
