"""`esper train ppo`: train the learned controller; `--resume RUN_DIR` continues a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from esper.cli.arguments import (
    add_threads_option,
    non_negative_int,
    positive_int,
    setting,
    telemetry_level,
)
from esper.cli.run_setup import open_telemetry, recorded_run
from esper.leyline import EventContext, RunStartEvent
from esper.nissa import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    create_run_dir,
    parse_level,
    write_config,
)
from esper.simic.checkpoint import LATEST, load_checkpoint, save_checkpoint
from esper.simic.config import PRESETS, TrainingConfig, format_validation_error
from esper.simic.env_pool import build_pool
from esper.simic.trainer import VectorizedTrainer
from esper.tolaria import DataOptions, get_task

# CLI flag -> TrainingConfig field (None values mean "not given").
_OVERRIDES = {
    "task": "task",
    "rounds": "rounds",
    "envs": "n_envs",
    "episode_length": "episode_length",
    "seed": "seed",
    "device": "device",
    "backend": "backend",
    "reward_mode": "reward_mode",
    "slots": "slots",
    "gates": "gates",
    "data_dir": "data_dir",
    "train_subset": "train_subset",
    "telemetry": "telemetry",
    "lr": "lr",
    "hidden": "hidden",
}


def add_ppo_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "ppo",
        help="train the learned (PPO) controller",
        description="Train the recurrent PPO controller; settings: preset < --config < flags.",
    )
    add_threads_option(parser)
    parser.add_argument("--preset", default=None, help=", ".join(PRESETS))
    parser.add_argument("--config", type=Path, default=None, help="JSON or YAML settings file")
    parser.add_argument("--resume", type=Path, default=None, help="continue the run in RUN_DIR")
    parser.add_argument("--task", default=None)
    parser.add_argument("--rounds", type=positive_int, default=None)
    parser.add_argument("--envs", type=positive_int, default=None)
    parser.add_argument("--episode-length", type=positive_int, default=None)
    parser.add_argument("--seed", type=non_negative_int, default=None)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N")
    parser.add_argument("--backend", default=None, help="local (process and ray: planned)")
    parser.add_argument("--reward-mode", default=None, help="shaped, simplified, sparse, ...")
    parser.add_argument("--slots", default=None, help="comma-separated slot ids, e.g. r0c0,r0c2")
    parser.add_argument("--gates", default=None, help="permissive or strict")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--hidden", type=positive_int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--train-subset", type=positive_int, default=None)
    parser.add_argument("--telemetry", type=telemetry_level, default=None)
    parser.add_argument(
        "--set",
        type=setting,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other setting, e.g. --set rent_weight=1.5 (repeatable)",
    )
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--name", default=None, help="run name (default: ppo-<task>)")
    parser.add_argument("--no-live", action="store_true", help="plain lines, no live display")
    parser.set_defaults(run=run_ppo)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    given = {field: getattr(args, flag) for flag, field in _OVERRIDES.items()}
    if given["telemetry"] is not None:
        given["telemetry"] = given["telemetry"].name.lower()
    flags = {k: v for k, v in given.items() if v is not None}
    settings = dict(args.set)
    both = sorted(set(flags) & set(settings))
    if both:
        raise ValueError(f"--set {both[0]}=... repeats a setting given by its own flag; use one")
    return {**settings, **flags}


def resolve_config(args: argparse.Namespace) -> TrainingConfig:
    """preset (or the task's preset) < --config file < flags."""
    try:
        if args.config is not None:
            config = TrainingConfig.from_file(args.config)
        else:
            config = TrainingConfig.preset(args.preset or args.task or "digits")
        return config.with_overrides(_overrides(args))
    except ValidationError as error:
        raise ValueError(format_validation_error(error)) from None


def _resumed_config(args: argparse.Namespace) -> tuple[TrainingConfig, dict[str, Any]]:
    run_dir: Path = args.resume
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(f"--resume {run_dir}: no {CONFIG_FILE} there (not a run directory?)")
    saved = TrainingConfig.model_validate(json.loads(config_path.read_text()))
    checkpoint = load_checkpoint(run_dir / CHECKPOINTS_DIR / LATEST)
    if checkpoint["config"] != saved.to_json_dict():
        raise ValueError(f"--resume {run_dir}: {CONFIG_FILE} and the checkpoint disagree")
    if args.preset is not None or args.config is not None:
        raise ValueError("--resume continues a run with its own config: drop --preset/--config")
    asked = _overrides(args)
    conflicts = {
        k: (v, getattr(saved, k))
        for k, v in asked.items()
        if k != "rounds" and saved.with_overrides({k: v}) != saved
    }
    if conflicts:
        details = "; ".join(f"{k}={v!r} (run has {old!r})" for k, (v, old) in conflicts.items())
        raise ValueError(f"--resume refused: settings contradict the checkpoint: {details}")
    if "rounds" in asked:
        saved = saved.with_overrides({"rounds": asked["rounds"]})
    return saved, checkpoint


def refuse_unbuilt(config: TrainingConfig) -> None:
    """Settings the config accepts but this version cannot honour yet: refuse, never ignore."""
    unbuilt = {
        "ab": config.ab is not None,
        "amp": config.amp,
        "compile": config.compile,
        f"backend {config.backend!r}": config.backend != "local",
    }
    named = [k for k, is_set in unbuilt.items() if is_set]
    if named:
        raise ValueError(f"not available yet: {', '.join(named)} (remove them from the config)")


def run_ppo(args: argparse.Namespace) -> int:
    checkpoint = None
    if args.resume is not None:
        config, checkpoint = _resumed_config(args)
        run_dir = args.resume
    else:
        config = resolve_config(args)
        refuse_unbuilt(config)
        run_dir = create_run_dir(args.runs_dir, name=args.name or f"ppo-{config.task}")
    write_config(run_dir, config.to_json_dict())
    task = get_task(config.task)
    data = task.load(DataOptions(config.data_dir, config.train_subset, config.download))
    hub = open_telemetry(
        run_dir, parse_level(config.telemetry), is_live=not args.no_live, log_lifecycle=False
    )
    context = EventContext(run=run_dir.name, group=config.reward_mode.value)
    pool = build_pool(config, data, hub, context)
    trainer = VectorizedTrainer(config, pool, hub, context)
    if checkpoint is not None:
        trainer.load_state_dict(checkpoint["trainer"])
    start = RunStartEvent(
        "train ppo", config.task, "ppo", config.rounds, config.n_envs, config.to_json_dict()
    )
    try:
        with recorded_run(hub, context, start):
            while trainer.round < config.rounds:
                trainer.run_round()
                save_checkpoint(
                    run_dir / CHECKPOINTS_DIR / LATEST, trainer.state_dict(), config.to_json_dict()
                )
    finally:
        pool.close()
    print(f"run directory: {run_dir}")
    return 0
