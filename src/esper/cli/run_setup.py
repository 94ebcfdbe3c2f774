"""What every run command does first: load the task, make the run directory, open telemetry."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from esper.karn.console import ConsoleSink
from esper.leyline import EventContext, RunEndEvent, RunStartEvent
from esper.nissa import (
    EVENTS_FILE,
    JsonlSink,
    Sink,
    TelemetryHub,
    TelemetryLevel,
    create_run_dir,
    write_config,
)
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
    hub = open_telemetry(run_dir, args.telemetry, is_live=not args.no_live)
    context = EventContext(run=run_dir.name, group=controller)
    return RunSetup(task, data, run_dir, hub, context, env_config, config)


def open_telemetry(
    run_dir: Path, level: TelemetryLevel, is_live: bool, log_lifecycle: bool = True
) -> TelemetryHub:
    """events.jsonl in the run directory plus the console (live only on a terminal)."""
    sinks: list[Sink] = [
        JsonlSink(run_dir / EVENTS_FILE),
        ConsoleSink(live=None if is_live else False, log_lifecycle=log_lifecycle),
    ]
    return TelemetryHub(sinks, level=level)


@contextmanager
def recorded_run(hub: TelemetryHub, context: EventContext, start: RunStartEvent) -> Iterator[None]:
    """Emit `run_start`, run the body, then `run_end` with how it ended, and close the hub."""
    started = time.perf_counter()
    hub.emit_payload(start, context, 0)
    status = "failed"
    try:
        yield
        status = "completed"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        hub.emit_payload(RunEndEvent(status, time.perf_counter() - started), context, 0)
        hub.close()
