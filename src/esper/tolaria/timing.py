"""Time spent per phase, honest on a GPU without syncing inside the work it times.

A CUDA kernel launch returns at once, so a wall clock read around GPU work measures the launches,
not the work, unless every phase ends in a sync, and a sync per batch is what data on the device
is there to avoid. On CUDA a phase is timed by two events recorded on the stream; their elapsed
times are read once, when `seconds()` is asked for (after the epoch's single sync, so reading
them costs nothing more). On the CPU the work is done when the call returns and the wall clock
is exact.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch


class PhaseClock:
    """Accumulates seconds per named phase on `device`; `seconds()` reads them out."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.is_cuda = self.device.type == "cuda"
        self._seconds: defaultdict[str, float] = defaultdict(float)
        self._pending: list[tuple[str, torch.cuda.Event, torch.cuda.Event]] = []

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the body as `name` (phases may nest; each is timed on its own)."""
        if not self.is_cuda:
            started = time.perf_counter()
            try:
                yield
            finally:
                self._seconds[name] += time.perf_counter() - started
            return
        start, end = (torch.cuda.Event(enable_timing=True) for _ in range(2))  # type: ignore[no-untyped-call]
        start.record(torch.cuda.current_stream(self.device))
        try:
            yield
        finally:
            end.record(torch.cuda.current_stream(self.device))
            self._pending.append((name, start, end))

    def seconds(self) -> dict[str, float]:
        """Seconds per phase so far (on CUDA, waits for the last recorded phase to finish)."""
        for name, start, end in self._pending:
            end.synchronize()
            self._seconds[name] += start.elapsed_time(end) / 1000.0
        self._pending.clear()
        return dict(self._seconds)
