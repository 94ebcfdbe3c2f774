"""What every run command does first: check its inputs, load the task, make the run directory,
open telemetry. Everything that can be refused is checked before the run directory exists, and a
run that fails while it is being set up leaves no directory behind."""

from __future__ import annotations

import argparse
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from esper.karn.console import ConsoleSink
from esper.karn.tensorboard import TENSORBOARD_DIR, TensorBoardSink, summary_writer_class
from esper.leyline import EventContext, RunEndEvent, RunStartEvent
from esper.nissa import (
    CHECKPOINTS_DIR,
    EVENTS_FILE,
    JsonlSink,
    Sink,
    TelemetryHub,
    TelemetryLevel,
    create_run_dir,
)
from esper.simic.config import EpisodeSettings
from esper.tolaria import DataOptions, Task, get_task
from esper.tolaria.data import DataSplits

_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_MAX_NAME = 100  # file systems allow 255 bytes; the timestamp prefix and suffixes need room


def check_run_name(name: str) -> None:
    """Raises ValueError unless `name` is a usable run-directory name."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"invalid run name {name[:40]!r}: use letters, digits, '-', '_' and '.' only"
        )
    if len(name) > _MAX_NAME:
        raise ValueError(f"run name of {len(name)} characters is too long (at most {_MAX_NAME})")


def check_runs_dir(runs_dir: Path) -> None:
    """Raises ValueError if the runs folder cannot hold a new run (a file, or not writable)."""
    existing = next((p for p in (runs_dir, *runs_dir.parents) if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise ValueError(f"runs folder {runs_dir}: {existing} is a file, not a folder")
    probe = existing / f".esper-write-check-{time.monotonic_ns()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        raise ValueError(f"runs folder {runs_dir}: cannot write in {existing} ({error})") from None


def check_device(device: str) -> None:
    """Raises ValueError for a CUDA device this machine does not have."""
    parsed = torch.device(device)
    if parsed.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise ValueError(f"device {device!r}: this machine has {count} CUDA device(s)")


def refuse_unbuilt(settings: EpisodeSettings, extra: dict[str, bool] | None = None) -> None:
    """Settings the config accepts but this version cannot honour yet: refuse, never ignore."""
    unbuilt = dict(extra or {})
    named = [name for name, is_set in unbuilt.items() if is_set]
    if named:
        raise ValueError(f"not available yet: {', '.join(named)} (remove them from the config)")


def check_data_dir(settings: EpisodeSettings) -> None:
    if settings.data_dir is not None and not settings.data_dir.exists():
        raise ValueError(f"data_dir {str(settings.data_dir)!r} does not exist")


def load_data(settings: EpisodeSettings) -> tuple[Task, DataSplits]:
    """The task and its data splits, after the device and data folder were checked (a run over
    several tasks: the first, and every one's data options checked)."""
    check_device(settings.device)
    for device in getattr(settings, "devices", None) or ():  # a run's placement (process)
        check_device(device)
    check_data_dir(settings)
    options = DataOptions(settings.data_dir, settings.train_subset, settings.download)
    for name in settings.tasks[1:]:
        get_task(name).check_options(options)
    task = get_task(settings.tasks[0])
    task.check_options(options)
    return task, task.load(options)


def tasks_label(settings: EpisodeSettings) -> str:
    """The tasks' names as a run shows them: "digits", or "digits+mnist5k"."""
    return "+".join(get_task(name).name for name in settings.tasks)


def add_view_flags(group: Any) -> None:
    """`--no-live` and `--quiet`: how a long command shows its progress."""
    group.add_argument(
        "--no-live",
        action="store_true",
        help="plain lines, no live display (default: live on a terminal)",
    )
    group.add_argument(
        "--quiet",
        action="store_true",
        help="for logs: no live display and no line per round, episode or seed, only the "
        "run's header and its end (default: off)",
    )


def add_run_dir_flags(group: Any, command: str) -> None:
    """`--runs-dir`, `--name`, `--no-live`, `--quiet` and `--tensorboard`: where a run goes
    and how it shows."""
    group.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="where runs go (default: runs)"
    )
    group.add_argument(
        "--name",
        default=None,
        help=f"run directory RUNS_DIR/NAME (default: RUNS_DIR/<date>-<time>-{command}-<task>)",
    )
    add_view_flags(group)
    group.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard scalars under RUN_DIR/tensorboard/ (the tensorboard extra)",
    )


@dataclass
class NewRunDir:
    """A run directory being set up: removed on failure until `keep()` says the run started."""

    path: Path
    is_kept: bool = False

    def keep(self) -> None:
        self.is_kept = True


@contextmanager
def new_run_dir(runs_dir: Path, name: str | None, default_name: str) -> Iterator[NewRunDir]:
    """A fresh run directory; if the body fails before `keep()`, it is removed again (a refused
    or failed setup leaves nothing behind, a run that has started keeps its events).

    `--name NAME` gives exactly `runs_dir/NAME` (refused if it exists); without it the folder is
    `runs_dir/<YYYYmmdd-HHMMSS>-<default_name>`.
    """
    if name is not None:
        check_run_name(name)
    check_runs_dir(runs_dir)
    if name is None:
        run_dir = create_run_dir(runs_dir, name=default_name)
    else:
        run_dir = runs_dir / name
        if run_dir.exists():
            raise ValueError(
                f"run directory {run_dir} exists: continue it with --resume {run_dir}, "
                "or choose another --name"
            )
        runs_dir.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
        (run_dir / CHECKPOINTS_DIR).mkdir()
    handle = NewRunDir(run_dir)
    try:
        yield handle
    except BaseException:
        if not handle.is_kept:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def check_tensorboard(args: argparse.Namespace) -> None:
    """With --tensorboard, the package must be there before a run directory is made."""
    if getattr(args, "tensorboard", False):
        summary_writer_class()


def tensorboard_sink(
    args: argparse.Namespace, run_dir: Path, resume_round: int | None = None
) -> TensorBoardSink | None:
    if not getattr(args, "tensorboard", False):
        return None
    return TensorBoardSink(run_dir / TENSORBOARD_DIR, resume_round)


def open_telemetry(
    run_dir: Path,
    level: TelemetryLevel,
    is_live: bool,
    log_lifecycle: bool = True,
    events: JsonlSink | None = None,
    tensorboard: TensorBoardSink | None = None,
    quiet: bool = False,
) -> TelemetryHub:
    """events.jsonl in the run directory (`events`, else a plain `JsonlSink`), the console
    (live only on a terminal), and TensorBoard's files where asked (`tensorboard`). In a run
    telemetry never stops training: a bad event is dropped and counted, a failing sink retried
    (tests set ESPER_TELEMETRY_STRICT=1, so there the same bug raises)."""
    sinks: list[Sink] = [
        events if events is not None else JsonlSink(run_dir / EVENTS_FILE),
        ConsoleSink(live=None if is_live else False, log_lifecycle=log_lifecycle, quiet=quiet),
    ]
    if tensorboard is not None:
        sinks.append(tensorboard)
    return TelemetryHub(sinks, level=level, strict=False)


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
        end = RunEndEvent(status, time.perf_counter() - started, telemetry=hub.health())
        hub.emit_payload(end, context, 0)
        hub.close()
