"""Results files: JSON and CSV round trips, refused paths."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from esper.simic.evaluation import EvaluationResult, summarize, write_results


def test_json_results_round_trip(tmp_path: Path, synthetic_result: EvaluationResult) -> None:
    summary = summarize(synthetic_result)
    path = tmp_path / "results.json"

    write_results(summary, path)

    data = json.loads(path.read_text())
    assert (data["task"], data["episode_length"], data["seeds"]) == (
        "digits",
        3,
        list(summary.seeds),
    )
    assert [c["label"] for c in data["controllers"]] == ["static", "heuristic", "ppo"]
    assert (
        data["controllers"][2]["test_accuracy"]["mean"] == summary.controllers[2].test_accuracy.mean
    )
    first = data["comparisons"][0]
    assert (first["minuend"], first["subtrahend"], first["excludes_zero"]) == (
        "ppo",
        "heuristic",
        True,
    )
    assert first["p_value"] == summary.comparisons[0].p_value == 0.25
    assert "BCa" in data["methods"]["interval"]
    assert len(data["episodes"]) == 9
    assert data["episodes"][0]["outcome"]["test_accuracy"] == 70.0


def test_csv_results_round_trip(tmp_path: Path, synthetic_result: EvaluationResult) -> None:
    summary = summarize(synthetic_result)
    path = tmp_path / "results.csv"

    write_results(summary, path)

    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    controllers = [r for r in rows if r["kind"] == "controller"]
    assert len(controllers) == 3 * 6  # every controller, every metric
    ppo_accuracy = next(
        r for r in controllers if (r["name"], r["metric"]) == ("ppo", "test_accuracy")
    )
    estimate = summary.controllers[2].test_accuracy
    assert [float(ppo_accuracy[k]) for k in ("mean", "lo", "hi")] == [
        estimate.mean,
        estimate.lo,
        estimate.hi,
    ]
    assert ppo_accuracy["p_value"] == ""  # p-values belong to comparisons
    comparison = next(r for r in rows if r["kind"] == "comparison")
    assert (comparison["name"], comparison["excludes_zero"]) == ("ppo - heuristic", "True")
    assert float(comparison["p_value"]) == summary.comparisons[0].p_value


@pytest.mark.parametrize("name", ["results.txt", "missing/results.json"])
def test_results_go_to_json_or_csv_in_an_existing_folder(
    tmp_path: Path, name: str, synthetic_result: EvaluationResult
) -> None:
    with pytest.raises(ValueError, match="results file"):
        write_results(summarize(synthetic_result), tmp_path / name)
