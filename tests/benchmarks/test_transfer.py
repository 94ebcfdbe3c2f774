"""benchmarks/transfer.py reuses only runs that completed, and reports the seconds they took."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def transfer() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("transfer")
    finally:
        sys.path.remove(str(BENCHMARKS))


def write_run(run: Path, *ends: dict[str, Any]) -> None:
    run.mkdir()
    events = [{"type": "run_start", "payload": {}}]
    events += [{"type": "run_end", "payload": payload} for payload in ends]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_a_completed_run_is_reused_with_its_wall_seconds(transfer: Any, tmp_path: Path) -> None:
    write_run(tmp_path / "done", {"status": "completed", "wall_time_s": 174.9})
    assert transfer.completed_wall_seconds(tmp_path / "done") == pytest.approx(174.9)


def test_an_unfinished_or_missing_run_is_trained_again(transfer: Any, tmp_path: Path) -> None:
    write_run(tmp_path / "killed")  # a run_start and no end: killed mid-training
    write_run(
        tmp_path / "interrupted",
        {"status": "completed", "wall_time_s": 10.0},
        {"status": "interrupted", "wall_time_s": 20.0},  # resumed, then interrupted again
    )
    for name in ("killed", "interrupted", "never-started"):
        assert transfer.completed_wall_seconds(tmp_path / name) is None, name
