"""What every run command does first: load the task, make the run directory, open telemetry."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from esper.karn.console import ConsoleSink
from esper.leyline import EventContext
from esper.nissa import EVENTS_FILE, JsonlSink, TelemetryHub, create_run_dir, write_config
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.tolaria import DataOptions, SessionOptions, Task, get_task
from esper.tolaria.data import DataSplits


@dataclass
class RunSetup:
    task: Task
    data: DataSplits
    run_dir: Path
    hub: TelemetryHub
    context: EventContext
    env_config: EnvConfig
    config: dict[str, Any]

    def make_envs(self, n: int) -> list[MorphogeneticEnv]:
        return [
            MorphogeneticEnv(
                self.task, self.data, self.env_config, self.hub, replace(self.context, env=i)
            )
            for i in range(n)
        ]


def open_run(args: argparse.Namespace, command: str, controller: str) -> RunSetup:
    task = get_task(args.task)
    data = task.load(DataOptions(args.data_dir, args.train_subset, args.download))
    episode_length = args.episode_length or task.episode_length
    env_config = EnvConfig(
        episode_length=episode_length, session=SessionOptions(device=args.device)
    )
    name = args.name or f"{controller}-{task.name}"
    run_dir = create_run_dir(args.runs_dir, name=name)
    config = {
        key: (str(value) if isinstance(value, Path) else value)
        for key, value in vars(args).items()
        if key != "run"
    }
    config.update(command=command, episode_length=episode_length, telemetry=args.telemetry.name)
    write_config(run_dir, config)
    sinks: list[Any] = [
        JsonlSink(run_dir / EVENTS_FILE),
        ConsoleSink(live=False if args.no_live else None),
    ]
    hub = TelemetryHub(sinks, level=args.telemetry)
    context = EventContext(run=run_dir.name, group=controller)
    return RunSetup(task, data, run_dir, hub, context, env_config, config)
