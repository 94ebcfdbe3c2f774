"""Checkpoint files: a checksum over their content, damage refused naming the file, no diverged
policy ever written (issue 9: corrupt files that still unpickled were loaded silently)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
import torch

from esper.simic.checkpoint import (
    FORMAT_VERSION,
    CheckpointError,
    load_checkpoint,
    non_finite_tensors,
    read_checkpoint,
    save_checkpoint,
)

TRAINER = {
    "round": 3,
    "network": {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)},
    "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": []},
    "obs_normalizer": {"mean": [0.0], "m2": [1.0], "count": 2},
    "return_normalizer": {"mean": [0.0], "m2": [1.0], "count": 2},
    "sample_generator": torch.Generator().get_state(),
    "update_generator": torch.Generator().get_state(),
}


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "latest.pt"
    save_checkpoint(path, TRAINER, {"task": "digits"})
    return path


def test_round_trip(saved: Path) -> None:
    payload = load_checkpoint(saved)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["config"] == {"task": "digits"}
    assert torch.equal(payload["trainer"]["network"]["w"], TRAINER["network"]["w"])


def _envelope(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def test_a_flipped_byte_that_still_unpickles_is_refused(saved: Path) -> None:
    """Flip a byte inside a tensor's data: the inner payload still unpickles (that is how an Adam
    moment moved by 1e6 without a word), but its checksum no longer matches."""
    envelope = _envelope(saved)
    content = bytearray(envelope["content"].numpy().tobytes())
    inner = io.BytesIO(bytes(content))
    assert torch.load(inner, weights_only=True)["trainer"]["round"] == 3
    w_bytes = TRAINER["network"]["w"].numpy().tobytes()
    at = bytes(content).index(w_bytes) + 5
    content[at] ^= 0x40
    assert torch.load(io.BytesIO(bytes(content)), weights_only=True)  # still unpickles
    envelope["content"] = torch.frombuffer(content, dtype=torch.uint8)
    buffer = io.BytesIO()
    torch.save(envelope, buffer)
    saved.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match=f"checkpoint {saved} is corrupted: its checksum"):
        read_checkpoint(saved)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.99])
def test_a_truncated_file_is_refused_naming_it(saved: Path, cut: float) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(CheckpointError, match=str(saved)):
        read_checkpoint(saved)


def test_an_old_format_is_refused_naming_the_version(saved: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"format_version": 2, "trainer": TRAINER, "config": {}, "rng": {}}, buffer)
    saved.write_bytes(buffer.getvalue())
    expected = "format version 2, this esper reads version 3 .an older esper's.*train it again"
    with pytest.raises(CheckpointError, match=expected):
        read_checkpoint(saved)


def test_a_missing_trainer_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {k: v for k, v in TRAINER.items() if k != "optimizer"}, {})
    with pytest.raises(CheckpointError, match=r"lacks trainer state \['optimizer'\]"):
        read_checkpoint(path)


def test_a_non_finite_policy_is_never_written(saved: Path) -> None:
    before = saved.read_bytes()
    broken = {**TRAINER, "network": {"w": torch.tensor([1.0, float("nan")])}}
    with pytest.raises(CheckpointError, match=r"non-finite values in network\.w"):
        save_checkpoint(saved, broken, {})
    assert saved.read_bytes() == before  # the last good checkpoint is kept
    assert list(saved.parent.iterdir()) == [saved]  # and no temporary file is left


def test_non_finite_tensors_names_nested_values() -> None:
    state = {"a": [torch.zeros(2), {"b": torch.tensor([float("inf")])}], "c": float("nan")}
    assert non_finite_tensors(state) == ["a.1.b", "c"]
    assert non_finite_tensors({"ints": torch.arange(3), "rng": torch.ByteTensor(4)}) == []


@pytest.mark.parametrize("rounds", [-(10**30), -1, 2.5, "3", True])
def test_a_round_count_that_is_not_one_is_refused(tmp_path: Path, rounds: object) -> None:
    """Found by benchmarks/fuzz_cli.py: round -10**30 resumed and trained a NaN policy."""
    path = tmp_path / "latest.pt"
    save_checkpoint(path, {**TRAINER, "round": rounds}, {})
    with pytest.raises(CheckpointError, match="is not a count of rounds done"):
        read_checkpoint(path)


def test_a_non_finite_policy_is_refused_at_load(tmp_path: Path) -> None:
    """An all-NaN policy was evaluated without a word; save refuses to write one, and a file
    made some other way is refused when read."""
    path = tmp_path / "latest.pt"
    save_checkpoint(path, TRAINER, {})
    envelope = torch.load(path, weights_only=True)
    payload = torch.load(io.BytesIO(envelope["content"].numpy().tobytes()), weights_only=True)
    payload["trainer"]["network"]["w"] = torch.full((2, 3), float("nan"))
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    content = buffer.getvalue()
    envelope["content"] = torch.frombuffer(bytearray(content), dtype=torch.uint8)
    envelope["sha256"] = hashlib.sha256(content).hexdigest()
    buffer = io.BytesIO()
    torch.save(envelope, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match=r"non-finite values in network\.w"):
        read_checkpoint(path)
