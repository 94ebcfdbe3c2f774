"""`esper evaluate`: every controller on the same held-out env seeds, with bootstrap intervals."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from esper.cli.arguments import add_threads_option, device, positive_int, readable_dir
from esper.karn.console import ConsoleSink, default_console
from esper.nissa import TelemetryHub
from esper.simic.environment import MorphogeneticEnv
from esper.simic.evaluation import (
    CONTROLLER_FORMS,
    EvaluationSummary,
    check_results_path,
    checkpoint_config,
    checkpoint_file,
    evaluate_controllers,
    evaluation_env_config,
    held_out_seeds,
    most_common_growth,
    parse_controllers,
    summarize,
    with_reward_of,
    write_results,
)
from esper.tolaria import TASKS, DataOptions, get_task


def add_evaluate_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="compare controllers on the same held-out env seeds",
        description=(
            "Run every controller on the same held-out env seeds (never used in training) and "
            "report means with 95%% bootstrap intervals and paired differences."
        ),
    )
    add_threads_option(parser)
    parser.add_argument("--task", default="digits", choices=sorted(TASKS), help="(default: digits)")
    parser.add_argument("--controllers", required=True, help=CONTROLLER_FORMS)
    parser.add_argument(
        "--seeds", type=positive_int, default=10, help="held-out env seeds (default: 10)"
    )
    parser.add_argument(
        "--episode-length",
        type=positive_int,
        default=None,
        help="host epochs per episode (default: the ppo checkpoint's, else the task's)",
    )
    parser.add_argument("--out", type=Path, default=None, help="results file, .json or .csv")
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--data-dir", type=readable_dir, default=None, help="real datasets' folder")
    parser.set_defaults(run=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    # Everything that can be wrong with the input fails here, before any episode runs.
    specs = parse_controllers(args.controllers)
    if args.out is not None:
        check_results_path(args.out)
    ppo_configs = {
        spec.label: checkpoint_config(spec.path) for spec in specs if spec.path is not None
    }
    env_config = evaluation_env_config(args.task, ppo_configs, args.episode_length, args.device)
    task = get_task(args.task)
    data = task.load(DataOptions(args.data_dir))
    seeds = held_out_seeds(args.seeds)

    console = default_console()
    console.print(
        Text(
            f"evaluate on {task.name}: {', '.join(s.label for s in specs)} on {len(seeds)} "
            f"held-out env seeds {seeds[0]}..{seeds[-1]}, {env_config.episode_length} epochs "
            f"per episode, device {args.device}"
        )
    )
    for spec in specs:
        if spec.path is not None:
            console.print(Text(f"{spec.label}: {checkpoint_file(spec.path)}"))
    # Plain lines per finished episode as progress, then the per-episode table on close.
    hub = TelemetryHub([ConsoleSink(console, live=False)])
    result = evaluate_controllers(
        specs,
        lambda spec: MorphogeneticEnv(
            task, data, with_reward_of(env_config, ppo_configs.get(spec.label))
        ),
        seeds,
        hub,
    )
    hub.close()

    summary = summarize(result)
    console.print(controller_table(summary))
    if summary.comparisons:
        console.print(comparison_table(summary))
    if args.out is not None:
        write_results(summary, args.out)
        console.print(Text(f"results: {args.out}"))
    return 0


def controller_table(summary: EvaluationSummary) -> Table:
    """One row per controller: means over the seeds, test accuracy with its interval."""
    percent = f"{summary.confidence:.0%}"
    table = Table(
        title=f"Controllers on {summary.task}, {len(summary.seeds)} held-out seeds",
        title_justify="left",
        caption=Text(
            f"means over the seeds; [lo, hi]: {percent} percentile bootstrap interval of the mean "
            f"({summary.n_resamples:,} resamples)"
        ),
        caption_justify="left",
    )
    table.add_column("controller", no_wrap=True)
    table.add_column(f"test acc % [{percent} CI]", justify="right", no_wrap=True)
    for name in ("params added", "growth", "fossilized", "pruned", "s/episode"):
        table.add_column(name, justify="right")
    table.add_column("grown most often")
    for c in summary.controllers:
        acc = c.test_accuracy
        grown, count = most_common_growth(summary, c.label)
        table.add_row(
            Text(c.label),
            f"{acc.mean:.2f} [{acc.lo:.2f}, {acc.hi:.2f}]",
            f"{c.params_added.mean:,.0f}",
            f"{c.growth_ratio.mean:.3f}x",
            f"{c.seeds_fossilized.mean:.1f}",
            f"{c.seeds_pruned.mean:.1f}",
            f"{c.wall_time_s.mean:.1f}",
            Text(f"{grown} ({count}/{c.episodes})"),
        )
    return table


_METRIC_FORMATS = {
    "test_accuracy": ("test acc %", "+.2f"),
    "params_added": ("params added", "+,.0f"),
}


def comparison_table(summary: EvaluationSummary) -> Table:
    """One row per paired comparison and metric: the mean per-seed difference and its interval."""
    percent = f"{summary.confidence:.0%}"
    table = Table(title="Paired differences (same seeds)", title_justify="left")
    table.add_column("comparison", no_wrap=True)
    table.add_column("metric")
    table.add_column(f"difference [{percent} CI]", justify="right", no_wrap=True)
    table.add_column("excludes 0", justify="center")
    for comparison in summary.comparisons:
        name, spec = _METRIC_FORMATS[comparison.metric]
        d = comparison.difference
        table.add_row(
            Text(f"{comparison.minuend} - {comparison.subtrahend}"),
            name,
            f"{d.mean:{spec}} [{d.lo:{spec}}, {d.hi:{spec}}]",
            "yes" if d.excludes_zero else "no",
        )
    return table
