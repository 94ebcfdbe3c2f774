import json
import os
from pathlib import Path

import pytest

from esper.nissa import atomic_write_bytes, atomic_write_json, atomic_write_text


def test_writes_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    atomic_write_json(path, {"round": 1})
    atomic_write_json(path, {"round": 2, "name": "é"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"round": 2, "name": "é"}
    atomic_write_text(tmp_path / "note.txt", "hello\n")
    assert (tmp_path / "note.txt").read_text() == "hello\n"
    atomic_write_bytes(tmp_path / "blob.bin", b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin", "note.txt", "record.json"]


def test_failed_serialization_leaves_old_file(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    atomic_write_json(path, {"round": 1})
    # json.dumps raises on the second key, after it has serialized the first
    with pytest.raises(TypeError):
        atomic_write_json(path, {"round": 2, "policy": object()})
    assert json.loads(path.read_text()) == {"round": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failure_after_temp_file_exists_leaves_old_file_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    path = tmp_path / "checkpoint.pt"
    atomic_write_bytes(path, b"old")

    def fail(*args: object) -> None:
        raise OSError(f"{failing} failed")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match=f"{failing} failed"):
        atomic_write_bytes(path, b"new data that never lands")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


@pytest.mark.skipif(os.name != "posix", reason="umask is POSIX")
def test_permissions_follow_umask_like_a_plain_open(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    atomic_write_bytes(tmp_path / "atomic", b"")
    assert (tmp_path / "atomic").stat().st_mode == plain.stat().st_mode
