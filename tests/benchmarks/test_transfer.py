"""benchmarks/transfer.py reuses only runs that completed, and reports the seconds they took;
it selects a run's policy by its training returns alone."""

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


def write_run(run: Path, *ends: dict[str, Any], returns: tuple[float, ...] = ()) -> None:
    run.mkdir()
    events = [{"type": "run_start", "payload": {}}]
    events += [{"type": "round", "payload": {"mean_return": r}} for r in returns]
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


def test_the_selected_policy_is_the_last_one_of_the_best_stretch(
    transfer: Any, tmp_path: Path
) -> None:
    """Rounds 2-4 (played by the policies @2..@4) are the best 3-round stretch: @4 is chosen, not
    the final policy after a collapse, nor @3 of the single best round."""
    returns = (90.0, 91.0, 99.0, 100.0, 98.0, 80.0, 81.0)
    write_run(tmp_path / "run", {"status": "completed", "wall_time_s": 1.0}, returns=returns)
    assert transfer.best_round(tmp_path / "run", 3) == 4
    assert transfer.best_round(tmp_path / "run", 1) == 3
    flat = tmp_path / "flat"
    write_run(flat, returns=(5.0, 5.0, 5.0, 5.0))
    assert transfer.best_round(flat, 2) == 3  # ties go to the later stretch
    with pytest.raises(SystemExit, match="fewer than --best-window 5"):
        transfer.best_round(flat, 5)
