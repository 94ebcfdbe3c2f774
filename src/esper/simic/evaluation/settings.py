"""The setting every controller is evaluated in: one env config and one set of data options,
taken from the ppo checkpoints' training configs so that each learned controller plays where it
learned, and refused when the checkpoints disagree (they could not share one setting).

What the command line may override, and why:
- episode length (`episode_length`): evaluate on purpose with longer or shorter episodes;
- data options (`evaluation_data_options`): `data_dir` because the folder may have moved (the data
  in it is the same), `download` because fetching missing files is this machine's business, and
  `train_subset` to evaluate on purpose on another training split. A data option that is not
  overridden comes from the checkpoints, which must then agree on it.
- device, precision (`amp`) and compilation: where and how we evaluate, never where or how it
  trained.
Rewards may differ between checkpoints (they change what a controller wanted, not what happens in
an episode): see `with_reward_of`. One reward setting may be overridden for all: the parameter
price (`rent_weight`), to evaluate every controller at one price (a controller trained over
several prices sees it in its observation; one trained at one price sees a price it never saw,
centred by its normalizer, and is scored at it). And one lifecycle setting: the parameter
budget (`param_budget`, `with_budget`), to evaluate every controller under one budget (a controller
trained over budgets drawn per episode sees what it leaves; the masks hold every one to it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from esper.simic.config import EpisodeSettings, TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.simic.environment import EnvConfig
from esper.tolaria import DataOptions

# What a training config says about its task's host and data rather than about its controller:
# dropped when the controller is evaluated on a task it was not trained on (`for_task`), so the
# target plays with its own host, episode length and data.
_HOST_SETTINGS = (
    "slots",
    "host_widths",
    "host_norm",
    "batch_size",
    "eval_batch_size",
    "episode_length",
    "data_dir",
    "train_subset",
)

# The command-line flag that overrides each data option, named in refusals.
_DATA_FLAGS = {"data_dir": "--data-dir", "train_subset": "--train-subset", "download": "--download"}


def for_task(config: TrainingConfig, task: str) -> TrainingConfig:
    """A ppo checkpoint's training config as it applies on `task`: on a task it was trained on
    (one of several: that one) its own settings; on any other a transfer (`is_transfer`): what
    it says about the controller (rewards, lifecycle, gates, action space) with the target
    task's own host, episode length and data (`_HOST_SETTINGS`). The policy network reads any
    host, so nothing else needs to agree.

    Raises:
        ValueError: when the trained settings do not hold on `task` (a parameter budget or a
            lifecycle setting the target refuses).
    """
    if task in config.tasks:
        return config if config.tasks == (task,) else config.model_copy(update={"task": task})
    settings = {**config.model_dump(), "task": task}
    settings.update(dict.fromkeys(_HOST_SETTINGS))
    return TrainingConfig.model_validate(settings)


def is_transfer(config: TrainingConfig, task: str) -> bool:
    """Whether a controller trained with `config` meets `task` for the first time."""
    return task not in config.tasks


def evaluation_env_config(
    task: str,
    ppo_configs: Mapping[str, TrainingConfig],
    episode_length: int | None = None,
    device: str = "cpu",
    baseline: EpisodeSettings | None = None,
    amp: str = "off",
    compile: str | None = None,
) -> EnvConfig:
    """The env every controller is evaluated in: the setting the ppo checkpoints were trained in
    (episode length, slots, lifecycle, and the first one's rewards), else a default training
    config's for `task`.

    Args:
        ppo_configs: label -> the training config of each ppo controller.
        episode_length: overrides the episode length (None: the training config's).
        device: where the hosts train during evaluation.
        amp: their autocast precision during evaluation (`SessionOptions.amp`).
        compile: the torch.compile backend for their forwards, None: eager
            (`SessionOptions.compile`).
        baseline: the episode settings when no ppo controller brings its own (default: the
            settings of a default training config for `task`).

    Raises:
        ValueError: ppo checkpoints trained in different settings (they cannot share one env).
    """
    ppo_configs = {label: for_task(config, task) for label, config in ppo_configs.items()}
    settings = {
        label: _placed(env_config_for(config, 0), device, amp, compile)
        for label, config in ppo_configs.items()
    }
    if not settings:
        requested = baseline if baseline is not None else TrainingConfig(task=task)
        settings = {"default": _placed(env_config_for(requested, 0), device, amp, compile)}
    (first_label, first), *others = settings.items()
    for label, other in others:
        differing = [
            f.name
            for f in fields(EnvConfig)
            if f.name != "reward" and getattr(first, f.name) != getattr(other, f.name)
        ]
        if differing:
            raise ValueError(
                f"{first_label} and {label} were trained in different settings "
                f"({', '.join(differing)} differ); evaluate them in separate runs"
            )
    if episode_length is not None:
        first = replace(first, episode_length=episode_length)
    return first


def with_reward_of(
    config: EnvConfig, trained: TrainingConfig | None, price: float | None = None
) -> EnvConfig:
    """`config` with the rewards (and the reward-derived feature scale) a ppo checkpoint was
    trained with, so that it sees the observations it learned on and its returns are its own;
    unchanged for a baseline controller (trained=None). With `price`, every episode is played
    and scored at that parameter price (rent weight) instead of the trained one(s)."""
    if trained is not None:
        config = replace(config, reward=env_config_for(trained, 0).reward)
    if price is not None:
        config = replace(config, reward=replace(config.reward, rent_weight=price, rent_weights=()))
    return config


def with_budget(config: EnvConfig, budget: int | None) -> EnvConfig:
    """`config` with every episode played under one parameter budget (None: none) instead of
    the trained one(s); a controller trained over several budgets still sees what it leaves."""
    limits = replace(config.session.limits, param_budget=budget, param_budgets=())
    return replace(config, session=replace(config.session, limits=limits))


def _placed(config: EnvConfig, device: str, amp: str, compile: str | None) -> EnvConfig:
    session = replace(config.session, device=device, amp=amp, compile=compile)
    return replace(config, session=session)


def evaluation_data_options(
    ppo_configs: Mapping[str, TrainingConfig],
    data_dir: Path | None = None,
    train_subset: int | None = None,
    download: bool | None = None,
) -> DataOptions:
    """The data every controller's env reads: the ppo checkpoints' data options, each one
    replaced by the argument that overrides it; without ppo controllers, the arguments alone.

    Args:
        ppo_configs: label -> the training config of each ppo controller.
        data_dir: where the real datasets are now (None: where the checkpoints read them).
        train_subset: train on only this many samples (None: as the checkpoints did).
        download: whether a missing dataset may be downloaded (None: as the checkpoints did).

    Returns:
        The options to load the task's data with.

    Raises:
        ValueError: two ppo checkpoints trained on different data options that no argument
            overrides, naming both, the option and its two values.
    """
    given: dict[str, Any] = {
        name: value
        for name, value in (
            ("data_dir", data_dir),
            ("train_subset", train_subset),
            ("download", download),
        )
        if value is not None
    }
    trained = {
        label: DataOptions(config.data_dir, config.train_subset, config.download)
        for label, config in ppo_configs.items()
    }
    if not trained:
        return DataOptions(**given)
    (first_label, first), *others = trained.items()
    for label, other in others:
        differing = [
            name
            for name in _DATA_FLAGS
            if name not in given and getattr(first, name) != getattr(other, name)
        ]
        if differing:
            values = "; ".join(
                f"{name} {_shown(getattr(first, name))} vs {_shown(getattr(other, name))}"
                for name in differing
            )
            flags = ", ".join(_DATA_FLAGS[name] for name in differing)
            raise ValueError(
                f"{first_label} and {label} were trained on different data ({values}); "
                f"give {flags} to set it for all, or evaluate them in separate runs"
            )
    return replace(first, **given)


def _shown(value: Any) -> str:
    return repr(str(value)) if isinstance(value, Path) else repr(value)
