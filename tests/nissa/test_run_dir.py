import json
import re
from pathlib import Path

import pytest

import esper.nissa.run_dir as run_dir_module
from esper.nissa import create_run_dir, read_events, write_config


def test_creates_timestamped_dir_with_checkpoints(tmp_path: Path) -> None:
    path = create_run_dir(tmp_path / "runs", name="digits_ppo-v1.2")
    assert path.parent == tmp_path / "runs"
    assert re.fullmatch(r"\d{8}-\d{6}-digits_ppo-v1\.2", path.name)
    assert (path / "checkpoints").is_dir()


def test_same_second_gets_a_suffix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_dir_module, "_timestamp", lambda: "20250101-120000")
    names = [create_run_dir(tmp_path, name="exp").name for _ in range(3)]
    assert names == ["20250101-120000-exp", "20250101-120000-exp-2", "20250101-120000-exp-3"]


@pytest.mark.parametrize("name", ["", "my run", "../escape", "a/b", "naïve", "x\n"])
def test_rejects_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(name))):
        create_run_dir(tmp_path, name=name)
    assert list(tmp_path.iterdir()) == []


def test_write_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"task": "digits", "ppo": {"gamma": 0.995}})
    assert path == tmp_path / "config.json"
    assert json.loads(path.read_text()) == {"task": "digits", "ppo": {"gamma": 0.995}}


def test_read_events_skips_a_trailing_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"epoch": 0}\n{"epoch": 1}\n{"epo')
    assert read_events(path) == [{"epoch": 0}, {"epoch": 1}]


def test_read_events_skips_a_line_cut_inside_a_utf8_character(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"epoch": 0}\n{"reason": "\xc3')
    assert read_events(path) == [{"epoch": 0}]


def test_read_events_raises_on_corruption_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"epoch": 0}\n{"epo\n{"epoch": 2}\n')
    with pytest.raises(ValueError, match=r"events\.jsonl:2: corrupt"):
        read_events(path)


def test_read_events_raises_on_a_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"epoch": 0}\n[1, 2]\n')
    with pytest.raises(ValueError, match=r":2: expected a JSON object, got list"):
        read_events(path)
