"""`esper train heuristic`: grow hosts with the rule-based controller and record the run."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from esper.cli.arguments import add_common_options, positive_int
from esper.cli.run_setup import RunSetup, open_run, recorded_run
from esper.kasmina import blueprint_names
from esper.leyline import RunStartEvent
from esper.simic.episodes import run_episodes
from esper.tamiyo.policy import HeuristicPolicy


def add_heuristic_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "heuristic",
        help="grow hosts with the rule-based controller",
        description="Run the heuristic controller for some episodes and write a run directory.",
    )
    add_common_options(parser)
    parser.add_argument("--episodes", type=positive_int, default=3, help="(default: 3)")
    parser.add_argument(
        "--envs", type=positive_int, default=1, help="envs in lockstep (default: 1)"
    )
    parser.set_defaults(run=run_heuristic)


def run_heuristic(args: argparse.Namespace) -> int:
    setup: RunSetup = open_run(args, command="train heuristic", controller="heuristic")
    envs = setup.make_envs(args.envs)
    policy = HeuristicPolicy(blueprint_names(envs[0].session.model.topology))
    seeds = [args.seed + i for i in range(args.episodes)]
    start = RunStartEvent(
        "train heuristic", args.task, policy.name, args.episodes, args.envs, setup.config
    )
    with recorded_run(setup.hub, setup.context, start):
        run_episodes(policy, envs, seeds, setup.hub)
    Console().print(f"run directory: {setup.run_dir}")
    return 0
