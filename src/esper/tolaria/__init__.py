"""Running host training: tasks and their data, the one train/evaluate engine, counterfactual
evaluation of seeds, the governor that rolls back catastrophes, and `HostSession`, which runs one
env's host episode step by step.
"""

from esper.tolaria.counterfactual import Contribution, paired_difference
from esper.tolaria.engine import EvalStats, TrainStats, evaluate, train_epoch
from esper.tolaria.governor import Governor, GovernorConfig
from esper.tolaria.seed_optimizer import OptimizerSettings, SeedOptimizer
from esper.tolaria.session import EpochResult, HostSession, SessionOptions
from esper.tolaria.tasks import TASKS, DataOptions, Task, get_task

__all__ = [
    "TASKS",
    "Contribution",
    "DataOptions",
    "EpochResult",
    "EvalStats",
    "Governor",
    "GovernorConfig",
    "HostSession",
    "OptimizerSettings",
    "SeedOptimizer",
    "SessionOptions",
    "Task",
    "TrainStats",
    "evaluate",
    "get_task",
    "paired_difference",
    "train_epoch",
]
