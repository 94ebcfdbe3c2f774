"""`esper compare RUN_A RUN_B [...]`: the final figures of runs side by side, from their logs.

Paired where the runs played the same env seeds (PPO runs of one training seed and envs count,
heuristic runs of one seed range), unpaired otherwise, and the table says which
(`esper.simic.evaluation.runs`). Reads only the event logs, so it works on a run still training
and on one that crashed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from esper.cli.arguments import positive_int
from esper.karn.console import default_console
from esper.nissa import atomic_write_text
from esper.simic.evaluation.runs import (
    RUN_METRICS,
    RunComparison,
    RunSummary,
    compare_runs,
    read_runs,
    verdict,
)

_NAMES = {
    "episode_return": ("return", ".2f"),
    "val_accuracy": ("val acc %", ".2f"),
    "test_accuracy": ("test acc %", ".2f"),
    "params_added": ("params added", ",.0f"),
}
_OUT_SUFFIXES = (".json", ".csv")


def add_compare_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "compare",
        help="compare the final figures of runs, paired where they share env seeds",
        description=(
            "Compare runs (or the arms of one A/B run) from their event logs: per run the mean "
            "return, validation and test accuracy and parameters added over its episodes (a PPO "
            "run: its last rounds) with 95% BCa bootstrap intervals, then every run against "
            "the first: paired by env seed where they share seeds (interval of the mean "
            "difference and a sign-flip p-value), unpaired otherwise. Works on running and "
            "crashed runs."
        ),
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories")
    parser.add_argument(
        "--last-rounds",
        type=positive_int,
        default=5,
        help="PPO runs: compare the episodes of this many last rounds (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the figures to this .json or .csv file (written atomically)",
    )
    parser.set_defaults(run=run_compare)


def print_arm_comparison(run_dir: Path, last_rounds: int = 5) -> None:
    """An A/B run's arms side by side (what `esper compare RUN_DIR` prints), at its end."""
    _print(*compare_runs(read_runs(run_dir, last_rounds, prefix=False)))


def _print(summaries: list[RunSummary], comparisons: list[RunComparison]) -> Console:
    console = default_console()
    console.print(_runs_table(summaries))
    console.print(_comparison_table(comparisons))
    console.print(Text(verdict(comparisons)))
    return console


def run_compare(args: argparse.Namespace) -> int:
    if args.out is not None:
        _check_out(args.out)
    runs = [run for path in args.runs for run in read_runs(path, args.last_rounds)]
    if len(runs) < 2:
        raise ValueError(
            f"compare needs at least two runs (or one A/B run): {args.runs[0]} is one run"
        )
    summaries, comparisons = compare_runs(runs)
    console = _print(summaries, comparisons)
    if args.out is not None:
        _write(args.out, summaries, comparisons)
        console.print(Text(f"results: {args.out}"))
    return 0


def _check_out(path: Path) -> None:
    if path.suffix.lower() not in _OUT_SUFFIXES:
        raise ValueError(f"--out {path}: expected a .json or .csv file")
    if not path.parent.is_dir():
        raise ValueError(f"--out {path}: no such folder {path.parent}")
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder")


def _interval(estimate: Any, spec: str) -> str:
    if math.isnan(estimate.lo):
        return f"{estimate.mean:{spec}} [n/a]"
    return f"{estimate.mean:{spec}} [{estimate.lo:{spec}}, {estimate.hi:{spec}}]"


def _runs_table(summaries: list[RunSummary]) -> Table:
    table = Table(
        title="Runs",
        title_justify="left",
        caption=Text(
            "means over the episodes read (a PPO run: its last rounds); [lo, hi]: 95% BCa "
            "bootstrap interval of the mean"
        ),
        caption_justify="left",
    )
    table.add_column("run", no_wrap=True)
    table.add_column("kind")
    table.add_column("seeds", justify="right")
    for metric in RUN_METRICS:
        table.add_column(_NAMES[metric][0], justify="right", no_wrap=True)
    for s in summaries:
        kind = s.kind if not s.rounds else f"ppo r{s.rounds[0]}-{s.rounds[-1]}"
        cells = [_interval(s.metrics[m], _NAMES[m][1]) for m in RUN_METRICS]
        table.add_row(Text(s.label), kind, str(s.episodes), *cells)
    return table


def _comparison_table(comparisons: list[RunComparison]) -> Table:
    table = Table(
        title=f"Against {comparisons[0].baseline}",
        title_justify="left",
        caption=Text(
            "paired: samples matched by env seed (a seed's episodes in a round averaged), 95% "
            "BCa bootstrap interval of the mean "
            "difference, p: two-sided sign-flip permutation test; unpaired: the runs share no "
            "env seed, interval of the difference of means (two-sample bootstrap), no p"
        ),
        caption_justify="left",
    )
    table.add_column("run", no_wrap=True)
    table.add_column("metric")
    table.add_column("difference [95% CI]", justify="right", no_wrap=True)
    table.add_column("design")
    table.add_column("p", justify="right")
    for run, *cells in comparison_rows(comparisons):
        table.add_row(Text(run), *cells)
    return table


def comparison_rows(comparisons: list[RunComparison]) -> list[tuple[str, str, str, str, str]]:
    """Each comparison as (runs, metric, difference [CI], design, p), for a table."""
    rows = []
    for c in comparisons:
        name, spec = _NAMES[c.metric]
        design = f"paired ({c.pairs} seeds)" if c.paired else "unpaired"
        p = "-" if math.isnan(c.p_value) else f"{c.p_value:.3g}"
        interval = _interval(c.difference, "+" + spec)
        rows.append((f"{c.label} - {c.baseline}", name, interval, design, p))
    return rows


def _no_nan(value: Any) -> Any:
    """NaN (no interval, no p-value) as null: strict JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _no_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_nan(v) for v in value]
    return value


def _write(path: Path, summaries: list[RunSummary], comparisons: list[RunComparison]) -> None:
    if path.suffix.lower() == ".json":
        data = {
            "runs": [asdict(s) for s in summaries],
            "comparisons": [asdict(c) for c in comparisons],
            "verdict": verdict(comparisons),
        }
        atomic_write_text(path, json.dumps(_no_nan(data), indent=2) + "\n")
        return
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["kind", "run", "baseline", "metric", "mean", "lo", "hi", "design", "p", "n"])
    for s in summaries:
        for metric, e in s.metrics.items():
            writer.writerow(["run", s.label, "", metric, e.mean, e.lo, e.hi, "", "", s.episodes])
    for c in comparisons:
        d = c.difference
        design = "paired" if c.paired else "unpaired"
        writer.writerow(
            [
                "comparison",
                c.label,
                c.baseline,
                c.metric,
                d.mean,
                d.lo,
                d.hi,
                design,
                c.p_value,
                c.pairs,
            ]
        )
    atomic_write_text(path, buffer.getvalue())
