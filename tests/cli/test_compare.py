"""`esper compare` (issue 13, item 4) end to end: paired where runs share env seeds, unpaired
otherwise, results files, and one clear line for bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from esper.cli.main import main
from esper.nissa import EVENTS_FILE

TINY = ["--task", "digits", "--episode-length", "3", "--no-live"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three PPO runs: a and b on training seed 0 (so the same env seeds), c on seed 7."""
    root = tmp_path_factory.mktemp("runs")
    ppo = ["train", "ppo", *TINY, "--rounds", "2", "--envs", "2", "--runs-dir", str(root)]
    assert main([*ppo, "--name", "a"]) == 0
    assert main([*ppo, "--name", "b", "--rent-weight", "2"]) == 0
    assert main([*ppo, "--name", "c", "--seed", "7"]) == 0
    return root


def test_runs_on_one_seed_compare_paired_and_others_unpaired(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.json"
    argv = ["compare", str(runs / "a"), str(runs / "b"), str(runs / "c"), "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "paired (4 seeds)" in text and "unpaired" in text
    data = json.loads(out.read_text())
    assert [r["label"] for r in data["runs"]] == ["a", "b", "c"]
    designs = {(c["label"], c["paired"]) for c in data["comparisons"]}
    assert designs == {("b", True), ("c", False)}
    assert all(r["episodes"] == 4 and r["rounds"] == [0, 1] for r in data["runs"])


def test_the_last_rounds_and_a_csv_file(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "figures.csv"
    argv = ["compare", str(runs / "a"), str(runs / "b"), "--last-rounds", "1", "--out", str(out)]
    assert main(argv) == 0
    capsys.readouterr()
    rows = list(csv.DictReader(out.open()))
    assert {r["kind"] for r in rows} == {"run", "comparison"}
    assert {r["n"] for r in rows if r["kind"] == "run"} == {"2"}  # one round of two episodes


def test_heuristic_runs_compare_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    h = ["train", "heuristic", *TINY, "--episodes", "3", "--runs-dir", str(tmp_path)]
    assert main([*h, "--name", "x"]) == 0
    assert main([*h, "--name", "y"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "x"), str(tmp_path / "y")]) == 0
    assert "paired (3 seeds)" in capsys.readouterr().out


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], *named: str) -> None:
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("esper: error:"), line
    for text in named:
        assert text in line, line


def test_bad_input_is_one_clear_line(
    runs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = str(runs / "a")
    _refused(["compare", a, str(tmp_path / "nope")], capsys, "nope", "no such run directory")
    (tmp_path / "empty").mkdir()
    _refused(["compare", a, str(tmp_path / "empty")], capsys, "not a run directory", EVENTS_FILE)
    _refused(["compare", a], capsys, "at least two runs (or one A/B run)")
    _refused(["compare", a, a], capsys, "same name")
    _refused(["compare", a, str(runs / "b"), "--out", str(tmp_path / "x.txt")], capsys, ".json")
    started = tmp_path / "started"
    started.mkdir()
    (started / EVENTS_FILE).write_text(
        json.dumps({"type": "run_start", "payload": {"rounds": 3}, "round": 0}) + "\n"
    )
    _refused(["compare", a, str(started)], capsys, "no finished episode yet")
    assert not (tmp_path / "x.txt").exists()
