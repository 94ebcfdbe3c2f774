"""Esper: grow neural networks while they train.

A controller (rule-based or PPO-trained) watches a host network epoch by epoch and plants, trains,
blends, keeps or removes small modules ("seeds") in it. See docs/architecture.md §1 for the parts:
leyline (contracts), kasmina (the growing model), tolaria (host training), tamiyo (deciding),
simic (learning to decide), nissa (telemetry), karn (looking at runs).

Growing your own network on your own data (docs/own_task.md):

    import esper

    def my_task() -> esper.Task:
        return esper.make_task("mine", train=(x, y), test=(x_test, y_test),
                               host=lambda: nn.Sequential(...), cuts=[2, 5])

then `esper train ppo --task my_file.py:my_task`, or `esper.MorphogeneticEnv("my_file.py:my_task")`
for a Gymnasium agent of your own.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public names, imported on first use (so `import esper` and `esper --help` stay light).
_PUBLIC = {
    "Task": "esper.tolaria.tasks",
    "TaskError": "esper.tolaria.own_task",
    "make_task": "esper.tolaria.own_task",
    "load_task": "esper.tolaria.own_task",
    "get_task": "esper.tolaria.tasks",
    "SequentialHost": "esper.kasmina",
    "Host": "esper.kasmina",
    "MorphogeneticEnv": "esper.simic.environment",
}
__all__ = [
    "Host",
    "MorphogeneticEnv",
    "SequentialHost",
    "Task",
    "TaskError",
    "__version__",
    "get_task",
    "load_task",
    "make_task",
]

if TYPE_CHECKING:
    from esper.kasmina import Host, SequentialHost
    from esper.simic.environment import MorphogeneticEnv
    from esper.tolaria.own_task import TaskError, load_task, make_task
    from esper.tolaria.tasks import Task, get_task


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'esper' has no attribute {name!r}")
