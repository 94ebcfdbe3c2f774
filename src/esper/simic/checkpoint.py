"""Checkpoints: everything needed to continue a PPO run exactly, written atomically.

A checkpoint holds the trainer's state (policy, optimizer, normalizers, its RNG generators,
round), the Python / NumPy / torch global RNG states, the resolved config and a format version.
It is loaded with `torch.load(weights_only=True)`: only tensors and plain containers, never
arbitrary pickled objects.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.nissa import atomic_write_bytes

FORMAT_VERSION = 1
LATEST = "latest.pt"
_REQUIRED = ("format_version", "trainer", "config", "rng")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says which file and why."""


def _rng_state() -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys).copy()), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }


def _restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy(), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def save_checkpoint(path: Path, trainer_state: dict[str, Any], config: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact."""
    payload = {
        "format_version": FORMAT_VERSION,
        "trainer": trainer_state,
        "config": config,
        "rng": _rng_state(),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint; restores the global RNG states.

    Raises:
        CheckpointError: missing, truncated, corrupted, or of another format version.
    """
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated / garbage files
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupted): {type(error).__name__}"
        ) from None
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED):
        raise CheckpointError(f"checkpoint {path} lacks {list(_REQUIRED)}: not an esper checkpoint")
    if payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload['format_version']}, "
            f"this esper reads version {FORMAT_VERSION}"
        )
    _restore_rng(payload["rng"])
    return payload
