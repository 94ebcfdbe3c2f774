"""`esper train heuristic`: grow hosts with the rule-based controller and record the run.

Its settings are a `HeuristicRunConfig`, validated and recorded like a PPO run's: the same
presets, config files, flags and `--set`, so a heuristic baseline can be run under exactly the
slots, limits, gates and rewards a PPO run used.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from esper.cli.arguments import apply_threads
from esper.cli.run_setup import (
    add_run_dir_flags,
    check_tensorboard,
    load_data,
    new_run_dir,
    open_telemetry,
    recorded_run,
    refuse_unbuilt,
    tensorboard_sink,
)
from esper.cli.settings import add_settings_flags, add_source_flags, resolve_settings
from esper.leyline import EventContext, RunStartEvent
from esper.nissa import parse_level, write_config
from esper.simic.config import HeuristicRunConfig
from esper.simic.env_pool import build_pool
from esper.simic.episodes import run_pool_episodes
from esper.tamiyo.policy import HeuristicPolicy


def add_heuristic_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "heuristic",
        help="grow hosts with the rule-based controller",
        description=(
            "Run the heuristic controller for some episodes and write a run directory. "
            "Settings: a preset (--preset, else the config file's `preset:`, else the task's "
            "own), then a --config file, then flags and --set. Defaults shown are those of the "
            "digits preset."
        ),
    )
    run = parser.add_argument_group("run")
    add_source_flags(run, "settings", "min_prune_age=8")
    add_run_dir_flags(run, "heuristic")
    add_settings_flags(parser, HeuristicRunConfig, HeuristicRunConfig.preset("digits"))
    parser.set_defaults(run=run_heuristic)


def run_heuristic(args: argparse.Namespace) -> int:
    config = resolve_settings(args, HeuristicRunConfig)
    refuse_unbuilt(config)
    apply_threads(config.threads)
    check_tensorboard(args)
    task, data = load_data(config)  # checked before a run directory exists
    with new_run_dir(args.runs_dir, args.name, f"heuristic-{task.name}") as run:
        write_config(run.path, config.to_json_dict())
        hub = open_telemetry(
            run.path,
            parse_level(config.telemetry),
            is_live=not args.no_live,
            tensorboard=tensorboard_sink(args, run.path),
            quiet=args.quiet,
        )
        try:
            context = EventContext(run=run.path.name, group="heuristic")
            pool = build_pool(config, data)
            policy = HeuristicPolicy(list(pool.feature_spec.blueprints))
            seeds = [config.seed + i for i in range(config.episodes)]
            start = RunStartEvent(
                "train heuristic",
                task.name,
                policy.name,
                config.episodes,
                config.n_envs,
                config.to_json_dict(),
                episode_length=config.resolved_episode_length(),
            )
            run.keep()
            try:
                with recorded_run(hub, context, start):
                    run_pool_episodes(policy, pool, seeds, hub, context)
            finally:
                pool.close()
        finally:
            hub.close()
    Console().print(f"run directory: {run.path}")
    return 0
