"""Batches from tensors held in memory: far cheaper than torch's DataLoader for small data sets.

The loader owns a CPU `torch.Generator` seeded from `seed`, so each env's order and augmentation
are reproducible and independent of the global RNG; `state_dict()` captures it for exact resume.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from esper.tolaria.data.splits import Split

Augment = Callable[[Tensor, torch.Generator], Tensor]


class TensorLoader:
    """Iterate (x, y) batches over a `Split`, on whatever device its tensors are on.

    Args:
        split: the samples; `to(device)` moves them once (GPU preload).
        batch_size: samples per batch, >= 1; the last batch is smaller unless `drop_last`.
        shuffle: draw a fresh permutation at the start of every pass.
        seed: seeds the loader's own generator (shuffling and `augment`), >= 0.
        augment: optional `f(x, generator) -> x` applied to each input batch.
        drop_last: skip the final batch when it is smaller than `batch_size`.
        memory_format: of the input batches (`torch.channels_last` for image hosts that run
            faster in it). Unshuffled, the split is stored in it, so batches are views;
            shuffled batches are gathered (which gives the default format) and converted.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        shuffle: bool,
        seed: int,
        augment: Augment | None = None,
        drop_last: bool = False,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        if augment is not None and not callable(augment):
            raise ValueError(f"augment must be callable or None, got {augment!r}")
        if len(split) == 0:
            raise ValueError("cannot load from an empty split")
        if drop_last and len(split) < batch_size:
            raise ValueError(
                f"drop_last with batch_size={batch_size} > {len(split)} samples gives no batches"
            )
        self.memory_format = memory_format
        self.shuffle = shuffle
        self._split = self._formatted(split)
        self.batch_size = batch_size
        self.augment = augment
        self.drop_last = drop_last
        self._generator = torch.Generator().manual_seed(seed)

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
        """Move the split's tensors to `device` once; returns self."""
        self._split = self._formatted(
            Split(self._split.inputs.to(device), self._split.targets.to(device))
        )
        return self

    def _formatted(self, split: Split) -> Split:
        if self.shuffle or self.memory_format == torch.contiguous_format or split.inputs.dim() != 4:
            return split
        return Split(split.inputs.contiguous(memory_format=self.memory_format), split.targets)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        inputs, targets = self._split.inputs, self._split.targets
        order = None
        if self.shuffle:
            order = torch.randperm(self.num_samples, generator=self._generator).to(self.device)
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, self.num_samples), self.batch_size):
            end = start + self.batch_size
            if order is None:
                x, y = inputs[start:end], targets[start:end]
            else:
                index = order[start:end]
                x, y = inputs.index_select(0, index), targets.index_select(0, index)
            if self.augment is not None:
                x = self.augment(x, self._generator)
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
