"""`esper report SOURCE [SOURCE...] [-o report.html]`: one self-contained HTML file of runs
(their event logs) and evaluation results files (`esper evaluate --out F.json`)."""

from __future__ import annotations

import argparse
import contextlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from esper.cli.compare import comparison_rows
from esper.karn.report import comparison_section, evaluation_section, page, run_sections
from esper.nissa import atomic_write_text
from esper.simic.evaluation.runs import (
    RunEpisodes,
    compare_runs,
    read_run_events,
    read_runs,
    verdict,
)


def add_report_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "report",
        help="write one self-contained HTML report of runs and evaluation results",
        description=(
            "Plot runs (PPO: per-round figures, PPO health, op mix, reward terms, time per "
            "phase, seed-lifecycle swimlanes; heuristic: episodes and swimlanes; A/B and several "
            "runs overlaid) and evaluation results files (controller table, per-seed paired "
            "plot) into one HTML file that opens offline. Works on runs still going or crashed."
        ),
    )
    parser.add_argument(
        "sources", nargs="+", type=Path, metavar="SOURCE", help="run directories or .json results"
    )
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=None,
        help="the HTML file (default: RUN_DIR/report.html for one run, else report.html here)",
    )
    parser.set_defaults(run=run_report)


def _unique(source: Path, taken: dict[str, Any], name: str | None = None) -> str:
    """A source's label: its name, or with its parent's where another source has that name."""
    label = name or source.name
    return label if label not in taken else f"{source.parent.name}/{label}"


def _comparison(sources: list[Path]) -> str | None:
    """The runs' (or an A/B run's arms') paired comparison, as `esper compare` prints it."""
    runs: list[RunEpisodes] = []
    for path in (s for s in sources if s.is_dir()):
        with contextlib.suppress(ValueError):  # a run without a finished episode yet: left out
            for run in read_runs(path):
                if any(r.label == run.label for r in runs):  # two runs of one name
                    run = replace(run, label=f"{path.parent.name}/{run.label}")
                runs.append(run)
    try:
        _, comparisons = compare_runs(runs)
    except ValueError:  # fewer than two, or two of one name
        return None
    rows = comparison_rows(comparisons)
    title = f"Against {comparisons[0].baseline} (a PPO run: its last 5 rounds)"
    return comparison_section(title, rows, verdict(comparisons))


def run_report(args: argparse.Namespace) -> int:
    runs: dict[str, list[dict[str, Any]]] = {}
    evaluations: dict[str, dict[str, Any]] = {}
    for source in args.sources:
        if source.is_dir():
            runs[_unique(source, runs)] = read_run_events(source)
        elif source.is_file() and source.suffix == ".json":
            try:
                data = json.loads(source.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ValueError(f"{source}: not readable as JSON ({error})") from None
            if not isinstance(data, dict) or not {"controllers", "episodes"} <= set(data):
                raise ValueError(f"{source}: not an esper evaluate results file")
            evaluations[_unique(source, evaluations, source.stem)] = data
        else:
            raise ValueError(f"{source}: no such run directory or .json results file")
    out = args.out
    if out is None:
        single = args.sources[0] if len(args.sources) == 1 and args.sources[0].is_dir() else None
        out = single / "report.html" if single is not None else Path("report.html")
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out {out}: expected an .html file")
    if not out.parent.is_dir():
        raise ValueError(f"--out {out}: no such folder {out.parent}")
    sections = run_sections(runs) if runs else []
    comparison = _comparison(args.sources)
    if comparison is not None:
        sections.insert(0, comparison)
    sections += [evaluation_section(label, data) for label, data in evaluations.items()]
    title = "Esper report: " + ", ".join(s.name for s in args.sources)
    atomic_write_text(out, page(title, sections))
    print(f"report: {out}")
    return 0
