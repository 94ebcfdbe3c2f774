"""The header every benchmark prints: machine, versions, threads (airbench-style)."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence

import torch


def header(title: str, runs: int) -> str:
    cpu = platform.processor() or platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    lines = [
        f"# {title}",
        f"machine: {platform.node()} | {cpu} | {os.cpu_count()} CPUs | GPU: {gpu}",
        f"python {platform.python_version()} | torch {torch.__version__} | "
        f"threads {torch.get_num_threads()} | runs {runs}",
    ]
    return "\n".join(lines)


def spread(values: Sequence[float]) -> str:
    """Median [min, max] (n) of a sample."""
    if not values:
        return "n/a"
    return (
        f"{statistics.median(values):.2f} [{min(values):.2f}, {max(values):.2f}] (n={len(values)})"
    )
