"""`esper train ppo`: train the learned controller; `--resume RUN_DIR` continues a run.

A round is a transaction. Its events are held back while it runs (the console shows them live);
at its end they are appended to events.jsonl and synced, then `checkpoints/latest.pt` is
written atomically with the log's committed length and the resolved config, then
`config.json` from that committed state. A kill at any moment therefore loses only the round
in flight: `--resume` cuts the log back to the checkpoint's length, removes the temporary files
of a write the kill interrupted, and trains that round again. A run directory is locked while a
process trains in it.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from esper.cli.arguments import apply_threads
from esper.cli.compare import print_arm_comparison
from esper.cli.run_setup import (
    NewRunDir,
    add_run_dir_flags,
    check_tensorboard,
    load_data,
    new_run_dir,
    open_telemetry,
    recorded_run,
    refuse_unbuilt,
    tasks_label,
    tensorboard_sink,
)
from esper.cli.settings import (
    add_settings_flags,
    add_source_flags,
    requested_settings,
    resolve_settings,
)
from esper.leyline import EventContext, RunStartEvent
from esper.nissa import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    EVENTS_FILE,
    JsonlSink,
    TelemetryHub,
    check_events_length,
    locked_run_dir,
    parse_level,
    remove_temp_files,
    truncate_events,
    write_config,
)
from esper.simic.ab import ABTrainer, ab_env_configs
from esper.simic.arms import arm_configs
from esper.simic.checkpoint import (
    ARMS_DIR,
    LATEST,
    CheckpointError,
    kept_name,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from esper.simic.config import ConfigError, TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.trainer import RoundSummary, VectorizedTrainer
from esper.simic.workers import warm_up
from esper.tolaria import Task
from esper.tolaria.data import DataSplits

# What a resume may change: how long the run goes on, and where its envs run (every backend
# gives the same episodes, so the run stays the run it was; vmap to float tolerance only).
RESUME_MAY_CHANGE = (
    "rounds",
    "backend",
    "workers",
    "devices",
    "worker_deadline_s",
    "ray_address",
    "worker_cpus",
    "worker_gpus",
)


def add_ppo_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "ppo",
        help="train the learned (PPO) controller",
        description=(
            "Train the recurrent PPO controller. Settings: a preset (--preset, else the config "
            "file's `preset:`, else the task's own), then a --config file, then flags and --set. "
            "Defaults shown are those of the digits preset."
        ),
    )
    run = parser.add_argument_group("run")
    add_source_flags(run, "settings", "rent_weight=1.5")
    run.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help=(
            "continue the run in RUN_DIR with its own settings (only --rounds and where envs run "
            "may change: --backend, --workers, --worker-deadline-s, --ray-address, "
            "--worker-cpus, --worker-gpus)"
        ),
    )
    add_run_dir_flags(run, "ppo")
    add_settings_flags(parser, TrainingConfig, TrainingConfig.preset("digits"))
    parser.set_defaults(run=run_ppo)


def resolve_config(args: argparse.Namespace) -> TrainingConfig:
    """preset < --config file < flags (see `TrainingConfig.resolve`)."""
    return resolve_settings(args, TrainingConfig)


def _resumed_config(args: argparse.Namespace) -> tuple[TrainingConfig, dict[str, Any]]:
    run_dir: Path = args.resume
    if args.preset is not None or args.config is not None or args.name is not None:
        raise ValueError(
            "--resume continues a run in its own folder with its own config: "
            "drop --preset/--config/--name"
        )
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise ValueError(f"--resume {run_dir}: no {CONFIG_FILE} there (not a run directory?)")
    try:
        saved_json = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"--resume {run_dir}: {CONFIG_FILE} is unreadable ({error})") from None
    saved = TrainingConfig.validated(saved_json, source=config_path)
    checkpoint = load_checkpoint(run_dir / CHECKPOINTS_DIR / LATEST)
    trained = TrainingConfig.validated(checkpoint["config"], source=run_dir / CHECKPOINTS_DIR)
    # The settings a resume may change may differ: config.json follows each checkpoint, so a
    # kill between the two leaves the previous ones there (older esper wrote it before).
    free = {k: getattr(saved, k) for k in RESUME_MAY_CHANGE}
    if trained.with_overrides(free) != saved:
        raise ValueError(f"--resume {run_dir}: {CONFIG_FILE} and the checkpoint disagree")
    asked = requested_settings(args, TrainingConfig)
    conflicts = {
        k: (v, getattr(trained, k))
        for k, v in asked.items()
        if k not in RESUME_MAY_CHANGE and trained.updated({k: v}) != trained
    }
    if conflicts:
        details = "; ".join(f"{k}={v} (run has {old})" for k, (v, old) in conflicts.items())
        raise ValueError(f"--resume refused: settings contradict the checkpoint: {details}")
    rounds = asked.get("rounds", saved.rounds)
    done = checkpoint["trainer"]["round"]
    placement = {k: v for k, v in asked.items() if k in RESUME_MAY_CHANGE and k != "rounds"}
    if placement.get("backend", "process") != "process" and "devices" not in placement:
        placement["devices"] = None  # GPUs to spread worker processes over: none without them
    resumed = trained.updated({**placement, "rounds": rounds})
    if resumed.rounds < done:
        raise ValueError(
            f"--resume {run_dir}: --rounds {resumed.rounds} is below the {done} rounds done"
        )
    return resumed, checkpoint


# A run's trainer: one policy, or the arms of an A/B run (`esper.simic.ab`).
Trainer = VectorizedTrainer | ABTrainer


def check_rounds(summaries: RoundSummary | list[RoundSummary], trainer: Trainer) -> None:
    """`check_round` for the round of every arm."""
    if isinstance(trainer, ABTrainer):
        assert isinstance(summaries, list)
        for summary, (name, arm) in zip(summaries, trainer.arms.items(), strict=True):
            try:
                check_round(summary, arm)
            except CheckpointError as error:
                raise CheckpointError(f"arm {name}: {error}") from None
        return
    assert isinstance(summaries, RoundSummary)
    check_round(summaries, trainer)


def check_round(summary: RoundSummary, trainer: VectorizedTrainer) -> None:
    """Stop before a diverged policy is checkpointed (a NaN loss or parameter is never saved)."""
    u = summary.update
    losses = {"policy_loss": u.policy_loss, "value_loss": u.value_loss, "grad_norm": u.grad_norm}
    bad = [f"{k}={v}" for k, v in losses.items() if not math.isfinite(v)]
    bad += [
        name
        for name, p in trainer.network.named_parameters()
        if not bool(p.detach().isfinite().all())
    ]
    if bad:
        raise CheckpointError(
            f"round {summary.round}: the policy diverged ({', '.join(bad[:4])}); the last "
            "good checkpoint is kept (lower lr or the reward weights and train again)"
        )


def run_ppo(args: argparse.Namespace) -> int:
    check_tensorboard(args)
    if args.resume is not None:
        run_dir: Path = args.resume
        if not run_dir.is_dir():
            raise ValueError(f"--resume {run_dir}: no such run directory")
        config, checkpoint = _resumed_config(args)
        if config.backend == "process":
            warm_up(config.device)
        run = NewRunDir(run_dir, is_kept=True)
        return _train(args, config, run, load_data(config), checkpoint)
    config = resolve_config(args)
    refuse_unbuilt(config)
    if config.ab is not None:
        arm_configs(config)  # arms that would not compare paired fail before a run folder
    if config.backend == "process":
        warm_up(config.device)
    task, splits = load_data(config)  # device and data are checked before a run directory exists
    suffix = f"ppo-{tasks_label(config).replace('+', '-')}"  # names: letters, digits, -_.
    with new_run_dir(args.runs_dir, args.name, suffix) as run:
        write_config(run.path, config.to_json_dict())
        return _train(args, config, run, (task, splits), None)


def _train(
    args: argparse.Namespace,
    config: TrainingConfig,
    run: NewRunDir,
    task_data: tuple[Task, DataSplits],
    checkpoint: dict[str, Any] | None,
) -> int:
    apply_threads(config.threads)
    task, data = task_data
    run_dir = run.path
    context = EventContext(run=run_dir.name, group=config.reward_mode.value)
    arms = arm_configs(config) if config.ab is not None else None
    pool = build_pool(config, data, None if arms is None else ab_env_configs(arms))
    try:
        trainer: Trainer = (
            VectorizedTrainer(config, pool, context=context)
            if arms is None
            else ABTrainer(arms, pool, run=run_dir.name)
        )
        if checkpoint is not None:
            _restore(trainer, checkpoint, run_dir)
            _committed_length(run_dir, checkpoint)
        # Everything that can refuse a resume is checked above, before the lock is taken
        # (taking it writes the holder's name): a refused command changes no file.
        with locked_run_dir(run_dir):
            if checkpoint is not None:
                _check_unchanged(args, checkpoint)
                _roll_back_to(run_dir, checkpoint)
            _run_rounds(args, config, run, trainer, task)
    finally:
        pool.close()
    if isinstance(trainer, ABTrainer) and not args.quiet:
        try:
            print_arm_comparison(run_dir)
        except ValueError as error:  # e.g. --telemetry off: no episodes were logged
            print(f"no comparison of the arms: {error}")
    print(f"run directory: {run_dir}")
    return 0


def _run_rounds(
    args: argparse.Namespace,
    config: TrainingConfig,
    run: NewRunDir,
    trainer: Trainer,
    task: Task,
) -> None:
    run_dir = run.path
    log = JsonlSink(run_dir / EVENTS_FILE, transactional=True)
    hub = open_telemetry(
        run_dir,
        parse_level(config.telemetry),
        is_live=not args.no_live,
        log_lifecycle=False,
        events=log,
        tensorboard=tensorboard_sink(
            args, run_dir, trainer.round if args.resume is not None else None
        ),
        quiet=args.quiet,
    )
    trainer.hub = hub
    is_new = trainer.round == 0 and not (run_dir / CHECKPOINTS_DIR / LATEST).exists()
    arms = len(config.ab) if config.ab is not None else 1
    start = RunStartEvent(
        "train ppo",
        tasks_label(config),
        "ppo",
        config.rounds * config.n_envs * arms,
        config.n_envs * arms,
        config.to_json_dict(),
        rounds=config.rounds,
        episode_length=config.resolved_episode_length(),
        first_round=trainer.round,
    )
    run.keep()
    try:
        with recorded_run(hub, trainer.context, start):
            if is_new:  # round 0 (the untrained network) is resumable too
                commit_round(trainer, config, run_dir, hub, log)
            keep_policy(trainer, config, run_dir, log.committed_bytes)
            while trainer.round < config.rounds:
                check_rounds(trainer.run_round(), trainer)
                commit_round(trainer, config, run_dir, hub, log)
    finally:
        hub.close()


def _check_unchanged(args: argparse.Namespace, checkpoint: dict[str, Any]) -> None:
    """Under the lock: the checkpoint read before it is still the run's latest (another
    process may have committed a round in between)."""
    now = read_checkpoint(args.resume / CHECKPOINTS_DIR / LATEST)
    before = (checkpoint["trainer"]["round"], checkpoint.get("events_bytes"))
    if (now["trainer"]["round"], now.get("events_bytes")) != before:
        raise ValueError(
            f"--resume {args.resume}: another process trained in the run while this one was "
            "starting; resume again"
        )


def _roll_back_to(run_dir: Path, checkpoint: dict[str, Any]) -> None:
    """Undo what a killed process did after its last commit: the events of the round it was
    training and the temporary files of an interrupted write."""
    truncate_events(run_dir / EVENTS_FILE, _committed_length(run_dir, checkpoint))
    remove_temp_files(run_dir)
    remove_temp_files(run_dir / CHECKPOINTS_DIR)


def _committed_length(run_dir: Path, checkpoint: dict[str, Any]) -> int:
    """The length events.jsonl had when `checkpoint` was written (a checkpoint from before
    `events_bytes` keeps the log as it is).

    Raises:
        ValueError: the log is shorter than that (it was changed outside esper).
    """
    events = run_dir / EVENTS_FILE
    committed = checkpoint.get("events_bytes")
    size = check_events_length(events, committed or 0)
    return size if committed is None else int(committed)


def commit_round(
    trainer: Trainer,
    config: TrainingConfig,
    run_dir: Path,
    hub: TelemetryHub,
    log: JsonlSink,
) -> None:
    """End the round as a transaction: its events (synced), then the checkpoint that names the
    log's committed length, then the policy kept for this round, then config.json."""
    hub.commit()
    state, settings = trainer.state_dict(), config.to_json_dict()
    if isinstance(trainer, ABTrainer):  # each arm's own, a whole checkpoint evaluate reads;
        # before the run's, so a kill between them leaves no arm behind the run
        (run_dir / CHECKPOINTS_DIR / ARMS_DIR).mkdir(exist_ok=True)
        for name, arm in trainer.arms.items():
            save_checkpoint(
                run_dir / CHECKPOINTS_DIR / ARMS_DIR / f"{name}.pt",
                arm.state_dict(),
                arm.config.to_json_dict(),
                events_bytes=log.committed_bytes,
            )
    save_checkpoint(
        run_dir / CHECKPOINTS_DIR / LATEST, state, settings, events_bytes=log.committed_bytes
    )
    keep_policy(trainer, config, run_dir, log.committed_bytes)
    write_config(run_dir, settings)


def keep_policy(trainer: Trainer, config: TrainingConfig, run_dir: Path, events_bytes: int) -> None:
    """Keep this round's policy as its own checkpoint when `keep_every` asks for it (each a
    whole checkpoint: any of them can be evaluated or resumed from)."""
    every = config.keep_every
    if every is None or trainer.round % every != 0:
        return
    path = run_dir / CHECKPOINTS_DIR / kept_name(trainer.round)
    if not path.exists():  # a resume passes its start round again
        state, settings = trainer.state_dict(), config.to_json_dict()
        save_checkpoint(path, state, settings, events_bytes=events_bytes)


def _restore(trainer: Trainer, checkpoint: dict[str, Any], run_dir: Path) -> None:
    try:
        trainer.load_state_dict(checkpoint["trainer"])
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        problem = " ".join(str(error).split())[:200]
        raise CheckpointError(
            f"checkpoint {run_dir / CHECKPOINTS_DIR / LATEST} does not fit this run's policy: "
            f"{type(error).__name__}: {problem}"
        ) from None
