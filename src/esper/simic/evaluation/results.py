"""Results files of an evaluation: JSON (everything) or CSV (the summary rows)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from esper.nissa import atomic_write_text
from esper.simic.evaluation.summary import METRICS, Estimate, EvaluationSummary

CSV_COLUMNS = (
    "kind",
    "name",
    "metric",
    "mean",
    "lo",
    "hi",
    "excludes_zero",
    "p_value",
    "episodes",
)
# How the figures were computed, recorded in every JSON file (earlier files held percentile
# intervals and no p-values).
METHODS = {
    "interval": "BCa bootstrap of the mean (scipy.stats.bootstrap)",
    "p_value": "two-sided paired sign-flip permutation test of the mean difference",
}


def results_dict(summary: EvaluationSummary) -> dict[str, Any]:
    """JSON-ready: the summary, the methods, each comparison's `excludes_zero`, and every
    episode's record."""
    data = {**asdict(summary), "methods": METHODS}
    for comparison, entry in zip(summary.comparisons, data["comparisons"], strict=True):
        entry["excludes_zero"] = comparison.difference.excludes_zero
    for record, entry in zip(summary.episodes, data["episodes"], strict=True):
        entry["growth_ratio"] = record.outcome.growth_ratio
    return data


def csv_rows(summary: EvaluationSummary) -> list[dict[str, Any]]:
    """One row per controller and metric, then one per comparison (no per-episode rows)."""
    rows: list[dict[str, Any]] = []
    for controller in summary.controllers:
        for metric in METRICS:
            value: Estimate = getattr(controller, metric)
            rows.append(
                {
                    "kind": "controller",
                    "name": controller.label,
                    "metric": metric,
                    **asdict(value),
                    "excludes_zero": "",
                    "p_value": "",
                    "episodes": controller.episodes,
                }
            )
    for comparison in summary.comparisons:
        rows.append(
            {
                "kind": "comparison",
                "name": f"{comparison.minuend} - {comparison.subtrahend}",
                "metric": comparison.metric,
                **asdict(comparison.difference),
                "excludes_zero": comparison.difference.excludes_zero,
                "p_value": comparison.p_value,
                "episodes": len(summary.seeds),
            }
        )
    return rows


def check_results_path(path: Path) -> None:
    """Fail before an evaluation, not after it, on a results file that cannot be written.

    Raises:
        ValueError: a suffix other than .json or .csv, or a folder that does not exist.
    """
    if path.suffix.lower() not in (".json", ".csv"):
        raise ValueError(
            f"results file {path}: unknown format {path.suffix!r}; expected .json or .csv"
        )
    if not path.parent.is_dir():
        raise ValueError(f"results file {path}: folder {path.parent} does not exist")


def write_results(summary: EvaluationSummary, path: Path) -> None:
    """Write the summary as `.json` (everything) or `.csv` (the summary rows), atomically.

    Raises:
        ValueError: a suffix other than .json or .csv, or a folder that does not exist.
    """
    check_results_path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(results_dict(summary), indent=2) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_rows(summary))
        text = buffer.getvalue()
    atomic_write_text(path, text)
