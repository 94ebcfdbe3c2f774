"""Which controllers an evaluation compares: parsing `--controllers`, labels, and building each."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from esper.nissa import CHECKPOINTS_DIR
from esper.simic.checkpoint import LATEST, CheckpointError, load_checkpoint
from esper.simic.config import TrainingConfig, format_validation_error
from esper.simic.environment import MorphogeneticEnv
from esper.simic.learned_policy import LearnedPolicy
from esper.tamiyo.policy import HeuristicPolicy, Policy, RandomPolicy, StaticPolicy

ControllerKind = Literal["static", "random", "heuristic", "ppo"]
_BASELINES: dict[str, ControllerKind] = {
    "static": "static",
    "random": "random",
    "heuristic": "heuristic",
}
CONTROLLER_FORMS = "static, random, heuristic or ppo:PATH (comma-separated)"


@dataclass(frozen=True)
class ControllerSpec:
    kind: ControllerKind
    # The name in tables and results: the kind, or for several ppo "ppo:<run dir name>" (without
    # its timestamp prefix when the names stay distinct).
    label: str
    path: Path | None = None  # ppo only: a run directory or a checkpoint file


def parse_controllers(text: str) -> list[ControllerSpec]:
    """Parse "static,random,heuristic,ppo:PATH[,ppo:PATH2]" into specs, in the given order.

    Raises:
        ValueError: an unknown name, a ppo without a path, or a controller given twice.
    """
    specs: list[ControllerSpec] = []
    for part in (part.strip() for part in text.split(",")):
        path = part[len("ppo:") :].strip() if part.startswith("ppo:") else ""
        if part in _BASELINES:
            specs.append(ControllerSpec(_BASELINES[part], part))
        elif path:
            specs.append(ControllerSpec("ppo", "ppo", Path(path)))
        elif part == "ppo" or part.startswith("ppo:"):
            raise ValueError(f"controller {part!r} needs a checkpoint: ppo:PATH")
        else:
            raise ValueError(f"unknown controller {part!r}; expected {CONTROLLER_FORMS}")
    ppo = {i: spec.path for i, spec in enumerate(specs) if spec.path is not None}
    if len(ppo) > 1:  # several: name each by its run directory
        names = [_run_name(path) for path in ppo.values()]
        short = [_TIMESTAMP.sub("", name) for name in names]  # "20261125-191342-lean" -> "lean"
        for i, name in zip(ppo, short if len(set(short)) == len(short) else names, strict=True):
            specs[i] = replace(specs[i], label=f"ppo:{name}")
    labels = [spec.label for spec in specs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"controllers given twice: {', '.join(twice)} (in {text!r})")
    return specs


_TIMESTAMP = re.compile(r"^\d{8}-\d{6}-")  # create_run_dir's prefix


def _run_name(path: Path) -> str:
    """The run directory's name, for a run directory or a checkpoint inside one."""
    if path.parent.name == CHECKPOINTS_DIR:
        return path.parent.parent.name
    return path.name


def checkpoint_file(path: Path) -> Path:
    """A run directory's latest checkpoint, or `path` itself when it is not a directory."""
    return path / CHECKPOINTS_DIR / LATEST if path.is_dir() else path


def checkpoint_config(path: Path) -> TrainingConfig:
    """The training config a ppo checkpoint (or run directory) was trained with.

    Raises:
        CheckpointError: no checkpoint there, an unreadable one, or one holding a bad config.
    """
    file = checkpoint_file(path)
    try:
        return TrainingConfig.model_validate(load_checkpoint(file)["config"])
    except ValidationError as error:
        raise CheckpointError(f"checkpoint {file}: {format_validation_error(error)}") from None


def build_policy(spec: ControllerSpec, env: MorphogeneticEnv) -> Policy:
    """The controller `spec` names, for envs like `env`, named by the spec's label.

    Raises:
        CheckpointError, ValueError: a ppo checkpoint that is unreadable or made for other envs.
    """
    slot_ids, blueprints = env.feature_spec.slot_ids, env.feature_spec.blueprints
    policy: Policy
    if spec.kind == "static":
        policy = StaticPolicy()
    elif spec.kind == "random":
        policy = RandomPolicy(slot_ids, blueprints, seed=0)
    elif spec.kind == "heuristic":
        policy = HeuristicPolicy(blueprints)
    else:
        assert spec.path is not None, spec
        policy = LearnedPolicy.from_checkpoint(checkpoint_file(spec.path), env.feature_spec)
    policy.name = spec.label  # episode records and events carry the label
    return policy
