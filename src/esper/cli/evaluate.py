"""`esper evaluate`: every controller on the same held-out env seeds, with bootstrap intervals
and permutation p-values."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from esper.cli.arguments import apply_threads, positive_int
from esper.cli.run_setup import (
    add_view_flags,
    check_data_dir,
    check_device,
    refuse_unbuilt,
    tasks_label,
)
from esper.cli.settings import add_settings_flags, add_source_flags, requested_settings
from esper.karn.console import ConsoleSink, default_console
from esper.leyline import EventContext, RunStartEvent
from esper.nissa import TelemetryHub
from esper.simic.config import TRAINING_SEED_LIMIT, EpisodeSettings, TrainingConfig
from esper.simic.env_pool import job_pool
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.evaluation import (
    CONTROLLER_FORMS,
    EXACT_SIGN_FLIP_LIMIT,
    ControllerSpec,
    EvaluationSummary,
    check_results_path,
    checkpoint_config,
    checkpoint_file,
    evaluate_controllers,
    evaluation_data_options,
    evaluation_env_config,
    for_task,
    held_out_seeds,
    is_transfer,
    most_common_growth,
    parse_controllers,
    summarize,
    with_budget,
    with_reward_of,
    write_results,
)
from esper.tolaria import DataOptions, get_task


def add_evaluate_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="compare controllers on the same held-out env seeds",
        description=(
            "Run every controller on the same held-out env seeds (never used in training) and "
            "report means with 95% BCa bootstrap intervals, and paired differences with their "
            "intervals and sign-flip permutation p-values. ppo controllers are evaluated in the "
            "setting they were trained in (episode length, slots, lifecycle, data options); a "
            "flag whose default is the checkpoints' overrides it."
        ),
    )
    run = parser.add_argument_group("evaluation")
    add_view_flags(run)
    run.add_argument(
        "--controllers",
        required=True,
        help=f"the controllers to compare, in table order: {CONTROLLER_FORMS}; PATH is a ppo "
        "run directory or checkpoint file (required)",
    )
    run.add_argument(
        "--seeds",
        type=positive_int,
        default=10,
        help="how many held-out env seeds every controller plays one episode on "
        "(default: %(default)s)",
    )
    run.add_argument(
        "--skip-seeds",
        type=int,
        default=0,
        metavar="K",
        help="start K seeds into the held-out block (2^30 + K): a block no earlier evaluation "
        "has looked at (default: %(default)s)",
    )
    run.add_argument(
        "--out",
        type=Path,
        default=None,
        help="also write the results to this file: .json (summary and every episode) or .csv "
        "(summary rows) (default: none, tables only)",
    )
    run.add_argument(
        "--backend",
        choices=("local", "process", "ray"),
        default="local",
        help="where the episodes are played: here, in worker processes or Ray actors, one "
        "controller per worker at a time; the same results everywhere (default: %(default)s)",
    )
    run.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="worker processes or actors (default: this machine's cores, at most the controllers)",
    )
    add_source_flags(run, "episode settings (baseline-only evaluations)", "min_prune_age=8")
    add_settings_flags(parser, EpisodeSettings, EpisodeSettings.preset("digits"), exclude=("seed",))
    parser.set_defaults(run=run_evaluate)


_MAX_SEEDS = 100_000

# Settings a flag may give beside ppo checkpoints: where and how this evaluation runs, not what
# the controllers were trained for (see esper.simic.evaluation.settings); and the parameter
# price and the parameter budget, which then hold for every controller.
_OVERRIDABLE = frozenset(
    {
        "task",
        "episode_length",
        "data_dir",
        "train_subset",
        "download",
        "device",
        "threads",
        "amp",
        "compile",
        "compile_backend",
        "rent_weight",
        "param_budget",
    }
)


def run_evaluate(args: argparse.Namespace) -> int:
    # Everything that can be wrong with the input fails here, before any episode runs.
    given = requested_settings(args, EpisodeSettings)
    settings = EpisodeSettings.resolve(args.preset, args.config, given)
    refuse_unbuilt(settings)
    specs = parse_controllers(args.controllers)
    _check_seed_flags(args)
    if args.out is not None:
        check_results_path(args.out)
    ppo_configs, transfers = _trained_configs(specs, settings.task)
    if ppo_configs:
        _refuse_retraining_settings(args, given)
    apply_threads(settings.threads)
    check_device(settings.device)
    asked = {key: getattr(settings, key) for key in given}  # validated and typed
    env_config = evaluation_env_config(
        settings.task,
        ppo_configs,
        asked.get("episode_length"),
        settings.device,
        baseline=settings,
        amp=settings.amp,
        compile=settings.compile_backend if settings.compile else None,
    )
    # Beside ppo checkpoints only what was asked overrides theirs; alone, the settings decide.
    wanted = asked if ppo_configs else settings.model_dump()
    data_options = evaluation_data_options(
        ppo_configs, wanted.get("data_dir"), wanted.get("train_subset"), wanted.get("download")
    )
    check_data_dir(settings)
    task = get_task(settings.task)
    # The user's own data options must be ones the task reads; a checkpoint's are taken as
    # they were (an older run may have recorded one its task ignored).
    task.check_options(
        DataOptions(
            wanted.get("data_dir"), wanted.get("train_subset"), bool(wanted.get("download"))
        )
    )
    data = task.load(data_options)
    seeds = held_out_seeds(args.seeds, TRAINING_SEED_LIMIT + args.skip_seeds)

    console = default_console()
    console.print(
        Text(
            f"evaluate on {task.name}: {', '.join(s.label for s in specs)} on {len(seeds)} "
            f"held-out env seeds {seeds[0]}..{seeds[-1]}, {env_config.episode_length} epochs "
            f"per episode, {len(data.train):,} training samples, device {settings.device}"
        )
    )
    _print_checkpoints(console, specs, transfers)
    hub = _progress_hub(console, args, task.name, [s.label for s in specs], len(seeds))
    options = replace(data_options, download=False)  # downloaded here already, if at all

    def env_config_of(spec: ControllerSpec) -> EnvConfig:
        config = with_reward_of(env_config, ppo_configs.get(spec.label), asked.get("rent_weight"))
        return with_budget(config, asked["param_budget"]) if "param_budget" in asked else config

    placement = (args.backend, settings.task, options, args.workers, len(specs), settings.threads)
    with job_pool(*placement, settings.device) as pool:
        result = evaluate_controllers(
            specs,
            lambda spec: MorphogeneticEnv(task, data, env_config_of(spec)),
            seeds,
            hub,
            pool,
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


def _progress_hub(
    console: Console, args: argparse.Namespace, task: str, labels: list[str], seeds: int
) -> TelemetryHub:
    """A live bar over the episodes on a terminal (plain lines per finished episode elsewhere,
    nothing with --quiet), then the per-episode table on close."""
    sink = ConsoleSink(console, live=False if args.no_live else None, quiet=args.quiet)
    hub = TelemetryHub([sink], strict=False)
    start = RunStartEvent("evaluate", task, ",".join(labels), len(labels) * seeds, 1, {})
    hub.emit_payload(start, EventContext(run="evaluate"), 0)
    return hub


def _check_seed_flags(args: argparse.Namespace) -> None:
    if args.seeds > _MAX_SEEDS:
        raise ValueError(
            f"--seeds {args.seeds} is more than {_MAX_SEEDS:,} episodes per controller"
        )
    skip_limit = TRAINING_SEED_LIMIT - args.seeds  # held-out seeds stay below 2^31
    if not 0 <= args.skip_seeds <= skip_limit:
        raise ValueError(f"--skip-seeds {args.skip_seeds} is outside 0..{skip_limit:,}")


def _trained_configs(
    specs: list[ControllerSpec], task: str
) -> tuple[dict[str, TrainingConfig], dict[str, str]]:
    """Each ppo checkpoint's training config as it applies on `task`, and the labels of those
    trained on other tasks (transfers: they play `task` with its own host) -> their tasks."""
    trained = {spec.label: checkpoint_config(spec.path) for spec in specs if spec.path is not None}
    configs = {label: for_task(config, task) for label, config in trained.items()}
    transfers = {
        label: tasks_label(config) for label, config in trained.items() if is_transfer(config, task)
    }
    return configs, transfers


def _print_checkpoints(
    console: Any, specs: list[ControllerSpec], transfers: dict[str, str]
) -> None:
    """Each checkpoint's file, and where it is a transfer, the tasks it was trained on."""
    for spec in specs:
        if spec.path is not None:
            line = f"{spec.label}: {checkpoint_file(spec.path)}"
            if spec.label in transfers:
                line += f" (a transfer: trained on {transfers[spec.label]}, never on this task)"
            console.print(Text(line))


def _refuse_retraining_settings(args: argparse.Namespace, given: dict[str, Any]) -> None:
    """ppo controllers play in the setting they were trained in: only where and how this
    evaluation runs may be given beside them."""
    fixed = sorted(set(given) - _OVERRIDABLE)
    if args.preset is not None or args.config is not None:
        fixed.insert(0, "--preset/--config")
    if fixed:
        raise ValueError(
            f"ppo controllers are evaluated in the settings they were trained with; drop "
            f"{', '.join(fixed)} (allowed beside them: {', '.join(sorted(_OVERRIDABLE))})"
        )


def controller_table(summary: EvaluationSummary) -> Table:
    """One row per controller: means over the seeds, test accuracy with its interval."""
    percent = f"{summary.confidence:.0%}"
    table = Table(
        title=f"Controllers on {summary.task}, {len(summary.seeds)} held-out seeds",
        title_justify="left",
        caption=Text(
            f"means over the seeds; [lo, hi]: {percent} BCa bootstrap interval of the mean "
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
    """One row per paired comparison and metric: the mean per-seed difference, its interval and
    its sign-flip p-value."""
    percent = f"{summary.confidence:.0%}"
    exact = len(summary.seeds) <= EXACT_SIGN_FLIP_LIMIT
    table = Table(
        title="Paired differences (same seeds)",
        title_justify="left",
        caption=Text(
            f"[lo, hi]: {percent} BCa bootstrap interval of the mean difference; p: two-sided "
            "sign-flip permutation test of a mean difference of 0 "
            f"({'exact' if exact else f'{summary.n_resamples:,} random sign assignments'})"
        ),
        caption_justify="left",
    )
    table.add_column("comparison", no_wrap=True)
    table.add_column("metric")
    table.add_column(f"difference [{percent} CI]", justify="right", no_wrap=True)
    table.add_column("excludes 0", justify="center")
    table.add_column("p", justify="right")
    for comparison in summary.comparisons:
        name, spec = _METRIC_FORMATS[comparison.metric]
        d = comparison.difference
        table.add_row(
            Text(f"{comparison.minuend} - {comparison.subtrahend}"),
            name,
            f"{d.mean:{spec}} [{d.lo:{spec}}, {d.hi:{spec}}]",
            "yes" if d.excludes_zero else "no",
            f"{comparison.p_value:#.3g}",
        )
    return table
