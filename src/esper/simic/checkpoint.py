"""Checkpoints: everything needed to continue a PPO run exactly, written atomically and checked.

A checkpoint holds the trainer's state (policy, optimizer, normalizers, its RNG generators,
round), the Python / NumPy / torch global RNG states, the resolved config, a format version and
`events_bytes`: the length of the run's events.jsonl once the events of the rounds it holds
were committed (a resume cuts the log back to it; absent in checkpoints before 2026-12).

On disk it is a small envelope `{"format_version", "sha256", "content"}` where `content` is the
`torch.save` bytes of that payload (a uint8 tensor) and `sha256` their digest. A file that still
unpickles after damage is therefore still refused: a flipped byte once moved an Adam moment by
1e6 and loaded without a word. Both layers are read with `torch.load(weights_only=True)`: only
tensors and plain containers, never arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.nissa import atomic_write_bytes

# 3: a policy whose shapes do not depend on the host (issue 15); 2 (a policy of one host's
# slots and blueprint names, in the same sha256 envelope) and 1 (no checksum) are refused.
FORMAT_VERSION = 3
LATEST = "latest.pt"
ARMS_DIR = "arms"  # an A/B run's per-arm checkpoints: checkpoints/arms/<arm>.pt
_KEPT = re.compile(r"round-(\d{6})\.pt")


def kept_name(round_index: int) -> str:
    """The file a policy kept after `round_index` rounds is saved as (0: the untrained one)."""
    return f"round-{round_index:06d}.pt"


def kept_rounds(checkpoints: Path) -> list[int]:
    """The rounds whose policies were kept in a run's checkpoints folder, ascending."""
    if not checkpoints.is_dir():
        return []
    found = (_KEPT.fullmatch(p.name) for p in checkpoints.iterdir())
    return sorted(int(m.group(1)) for m in found if m is not None)


_REQUIRED = ("format_version", "trainer", "config", "rng")
_TRAINER_KEYS = (
    "round",
    "network",
    "optimizer",
    "obs_normalizer",
    "return_normalizer",
    "sample_generator",
    "update_generator",
)


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


def _to_bytes(obj: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def save_checkpoint(
    path: Path,
    trainer_state: dict[str, Any],
    config: dict[str, Any],
    *,
    events_bytes: int | None = None,
) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint intact.

    Raises:
        CheckpointError: the trainer state holds a non-finite tensor (a policy that has
            diverged is never saved over a good one).
    """
    bad = non_finite_tensors(trainer_state)
    if bad:
        raise CheckpointError(
            f"not writing checkpoint {path}: non-finite values in {', '.join(bad[:5])}"
        )
    payload = {
        "format_version": FORMAT_VERSION,
        "trainer": trainer_state,
        "config": config,
        "rng": _rng_state(),
    }
    if events_bytes is not None:
        payload["events_bytes"] = events_bytes
    content = _to_bytes(payload)
    envelope = {
        "format_version": FORMAT_VERSION,
        "sha256": hashlib.sha256(content).hexdigest(),
        "content": torch.frombuffer(bytearray(content), dtype=torch.uint8),
    }
    atomic_write_bytes(path, _to_bytes(envelope))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint; restores the global RNG states.

    Raises:
        CheckpointError: missing, truncated, corrupted (checksum), of another format version,
            or lacking part of what a checkpoint holds.
    """
    payload = read_checkpoint(path)
    _restore_rng(payload["rng"])
    return payload


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read and check a checkpoint without touching the global RNG states (see load_checkpoint).

    Raises:
        CheckpointError: as `load_checkpoint`.
    """
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    envelope = _unpickle(path, path.read_bytes())
    if not isinstance(envelope, dict) or "format_version" not in envelope:
        raise CheckpointError(f"checkpoint {path} is not an esper checkpoint")
    if envelope["format_version"] != FORMAT_VERSION:
        older = (
            " (an older esper's, whose policy fit one host only: train it again)"
            if envelope["format_version"] in (1, 2)
            else ""
        )
        raise CheckpointError(
            f"checkpoint {path} has format version {envelope['format_version']!r}, "
            f"this esper reads version {FORMAT_VERSION}{older}"
        )
    content = envelope.get("content")
    if not isinstance(content, torch.Tensor) or content.dtype != torch.uint8:
        raise CheckpointError(f"checkpoint {path} is not an esper checkpoint (no content)")
    data = content.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != envelope.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupted: its checksum does not match")
    payload = _unpickle(path, data)
    if not isinstance(payload, dict) or any(k not in payload for k in _REQUIRED):
        raise CheckpointError(f"checkpoint {path} lacks {list(_REQUIRED)}: not an esper checkpoint")
    trainer = payload["trainer"]
    # an A/B run's checkpoint holds each arm's trainer state (`esper.simic.ab`)
    arms = trainer.get("arms") if isinstance(trainer, dict) and "round" in trainer else None
    states = list(arms.values()) if isinstance(arms, dict) and arms else [trainer]
    for state in states:
        missing = [k for k in _TRAINER_KEYS if not isinstance(state, dict) or k not in state]
        if missing:
            raise CheckpointError(f"checkpoint {path} lacks trainer state {missing}")
    rounds = trainer["round"]
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 0:
        shown = repr(rounds)[:40]
        raise CheckpointError(f"checkpoint {path}: round {shown} is not a count of rounds done")
    committed = payload.get("events_bytes", 0)
    if not isinstance(committed, int) or isinstance(committed, bool) or committed < 0:
        shown = repr(committed)[:40]
        raise CheckpointError(f"checkpoint {path}: events_bytes {shown} is not a file length")
    bad = non_finite_tensors(trainer)
    if bad:  # never written by save_checkpoint: made elsewhere, or by an older esper
        raise CheckpointError(f"checkpoint {path} holds non-finite values in {', '.join(bad[:5])}")
    return payload


def _unpickle(path: Path, data: bytes) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for truncated / garbage files
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupted): {type(error).__name__}"
        ) from None


def non_finite_tensors(state: Any, prefix: str = "") -> list[str]:
    """Dotted names of every floating tensor or float in `state` holding a NaN or infinity."""
    if isinstance(state, torch.Tensor):
        is_bad = state.is_floating_point() and not bool(torch.isfinite(state).all())
        return [prefix or "value"] if is_bad else []
    if isinstance(state, float):
        return [prefix or "value"] if not math.isfinite(state) else []
    if isinstance(state, Mapping):
        items: list[tuple[Any, Any]] = list(state.items())
    elif isinstance(state, list | tuple):
        items = list(enumerate(state))
    else:
        return []
    found: list[str] = []
    for key, value in items:
        found += non_finite_tensors(value, f"{prefix}.{key}" if prefix else str(key))
    return found
