"""Which controllers an evaluation compares: parsing `--controllers`, labels, and building each."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from esper.nissa import CHECKPOINTS_DIR
from esper.simic.checkpoint import (
    ARMS_DIR,
    LATEST,
    CheckpointError,
    kept_name,
    kept_rounds,
    load_checkpoint,
)
from esper.simic.config import TrainingConfig, format_validation_error
from esper.simic.environment import MorphogeneticEnv
from esper.simic.learned_policy import LearnedPolicy
from esper.tamiyo.policy import (
    HeuristicPolicy,
    PlanPolicy,
    Policy,
    RandomPolicy,
    StaticPolicy,
)

ControllerKind = Literal["static", "random", "heuristic", "ppo", "plan"]
_BASELINES: dict[str, ControllerKind] = {
    "static": "static",
    "random": "random",
    "heuristic": "heuristic",
}
CONTROLLER_FORMS = (
    "static, random, heuristic, ppo:PATH, ppo:RUN@ROUND (a policy kept by --keep-every; "
    "@0 is the untrained one) or plan:BLUEPRINT@SLOT+... (a fixed growth plan, planted and "
    "kept as early as the lifecycle allows), comma-separated"
)
_AT_ROUND = re.compile(r"(.+)@(\d+)")


@dataclass(frozen=True)
class ControllerSpec:
    kind: ControllerKind
    # The name in tables and results: the kind, or for several ppo "ppo:<run dir name>" (without
    # its timestamp prefix when the names stay distinct), with "@ROUND" for a kept policy.
    label: str
    path: Path | None = None  # ppo only: a run directory or a checkpoint file
    at_round: int | None = None  # ppo only: the kept policy of this round (path is its file)
    plan: str | None = None  # plan only: "BLUEPRINT@SLOT+..." (checked against the env's host)


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
        elif part.startswith("plan:") and part[len("plan:") :].strip():
            plan = part[len("plan:") :].strip()
            specs.append(ControllerSpec("plan", f"plan:{plan}", plan=plan))
        elif path:
            specs.append(_ppo_spec(path))
        elif part == "ppo" or part.startswith("ppo:"):
            raise ValueError(f"controller {part!r} needs a checkpoint: ppo:PATH")
        else:
            raise ValueError(f"unknown controller {part!r}; expected {CONTROLLER_FORMS}")
    ppo = {i: spec.path for i, spec in enumerate(specs) if spec.path is not None}
    # distinct runs (an A/B run's arms count apart): name each by its run directory
    runs = {_run_dir(p) / p.stem if _is_arm_checkpoint(p) else _run_dir(p) for p in ppo.values()}
    if len(runs) > 1:  # several runs: name each by its run directory
        names = [_run_name(path) for path in ppo.values()]
        short = [_TIMESTAMP.sub("", name) for name in names]  # "20261125-191342-lean" -> "lean"
        distinct = len(set(short)) == len(set(names))
        for i, name in zip(ppo, short if distinct else names, strict=True):
            at = specs[i].at_round
            specs[i] = replace(specs[i], label=f"ppo:{name}" + (f"@{at}" if at is not None else ""))
    labels = [spec.label for spec in specs]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"controllers given twice: {', '.join(twice)} (in {text!r})")
    return specs


_TIMESTAMP = re.compile(r"^\d{8}-\d{6}-")  # create_run_dir's prefix


def _ppo_spec(path: str) -> ControllerSpec:
    """ppo:PATH, or ppo:RUN@ROUND for the policy a run kept after ROUND rounds."""
    at = _AT_ROUND.fullmatch(path)
    if at is None or Path(path).exists():  # a file whose name holds "@" is still a path
        return ControllerSpec("ppo", "ppo", Path(path))
    run, round_index = Path(at.group(1)), int(at.group(2))
    checkpoints = run / CHECKPOINTS_DIR
    file = checkpoints / kept_name(round_index)
    if not file.is_file():
        kept = kept_rounds(checkpoints)
        shown = ", ".join(map(str, kept)) if kept else "none (train with --keep-every K)"
        raise CheckpointError(
            f"ppo:{path}: {run} kept no policy of round {round_index}; kept rounds: {shown}"
        )
    return ControllerSpec("ppo", f"ppo@{round_index}", file, round_index)


def _is_arm_checkpoint(path: Path) -> bool:
    return path.parent.name == ARMS_DIR and path.parent.parent.name == CHECKPOINTS_DIR


def _run_dir(path: Path) -> Path:
    """The run directory, for a run directory or a checkpoint inside one (an A/B arm's too)."""
    if _is_arm_checkpoint(path):
        return path.parents[2]
    return path.parent.parent if path.parent.name == CHECKPOINTS_DIR else path


def _run_name(path: Path) -> str:
    """A run's name; an A/B arm's checkpoint: RUN/ARM."""
    name = _run_dir(path).name
    return f"{name}/{path.stem}" if _is_arm_checkpoint(path) else name


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
        config = TrainingConfig.model_validate(load_checkpoint(file)["config"])
    except ValidationError as error:
        raise CheckpointError(f"checkpoint {file}: {format_validation_error(error)}") from None
    if config.ab is not None:
        arms = _run_dir(path) / CHECKPOINTS_DIR / ARMS_DIR
        raise CheckpointError(
            f"{path} is an A/B run of {len(config.ab)} arms: evaluate one arm as "
            f"ppo:{arms}/ARM.pt (ARM one of {', '.join(p.stem for p in sorted(arms.glob('*.pt')))})"
        )
    return config


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
    elif spec.kind == "plan":
        assert spec.plan is not None, spec
        spec_ = env.feature_spec
        offered = None if spec_.offered is None else dict(zip(slot_ids, spec_.offered, strict=True))
        policy = PlanPolicy(PlanPolicy.parse(spec.plan, slot_ids, blueprints, offered))
    else:
        assert spec.path is not None, spec
        policy = LearnedPolicy.from_checkpoint(checkpoint_file(spec.path), env.feature_spec)
    policy.name = spec.label  # episode records and events carry the label
    return policy
