"""The header every benchmark prints: machine, versions, threads (airbench-style)."""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence

import torch


def cpu_model() -> str:
    """The processor's name (Linux: /proc/cpuinfo's "model name"), else the architecture.
    Results that depend on exact float arithmetic can differ between processor families."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{platform.machine()} {line.partition(':')[2].strip()}"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def header(title: str, runs: int) -> str:
    cpu = cpu_model()
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
