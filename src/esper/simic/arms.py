"""The arms of an A/B run (`--ab A,B[,C...]`): what each changes, and that they stay comparable.

An arm is written `[NAME:]SPEC`, SPEC one of
- a reward mode (`shaped`, `simplified`, `sparse`, `minimal`, `basic`): that `reward_mode`;
- a preset name (`digits_lean`): the settings that preset gives, but for the run's own (rounds,
  envs, seed, task and data, placement: those are the run's);
- `KEY=VALUE[;KEY=VALUE...]`: settings, as `--set` takes them (`;` between them, since `,`
  separates arms), e.g. `lean:rent_weight=2.5;lr=1e-4`.
NAME (letters, digits, `.`, `_`, `-`, `=`) names the arm in events, folders and tables; without
it the arm is named by SPEC. Every arm starts from the run's own config.

Arms are compared paired: every round all arms play the same env seeds. So they must agree on
everything an episode is played in (task, episode length, slots, gates, lifecycle limits and
budgets, data, device, precision): only rewards and the learner (PPO hyperparameters, network,
action space) may differ, and each arm's run settings (rounds, envs, seed, task and data,
placement) are the run's. `keep_every` is refused: kept rounds are not written per arm yet.
Each arm's policy is seeded from a stable hash of its name and the run's seed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING

from esper.simic.config import PRESETS, Placement, TrainingConfig
from esper.simic.rewards import RewardMode

if TYPE_CHECKING:
    from esper.simic.environment import EnvConfig

_NAME = re.compile(r"[A-Za-z0-9._=-]{1,64}")
# What every arm takes from the run: how long, how many envs, which env seeds, where they run.
RUN_SETTINGS = frozenset(
    {"ab", "rounds", "n_envs", "seed", "envs_per_seed", "keep_every", "task", "data_dir"}
    | {"train_subset", "download", "threads", "telemetry"}
    | set(Placement.model_fields)
)


@dataclass(frozen=True)
class Arm:
    name: str
    spec: str
    settings: dict[str, str]  # what it changes in the run's config, as typed


def parse_arm(text: str) -> Arm:
    """One `[NAME:]SPEC` (see the module doc). Raises ValueError naming what is wrong."""
    text = text.strip()
    name, sep, spec = text.partition(":")
    if not sep:
        name, spec = "", text
    if not spec:
        raise ValueError(f"arm {text!r} is empty; write [NAME:]SPEC")
    if spec in {mode.value for mode in RewardMode}:
        settings = {"reward_mode": spec}
    elif spec in PRESETS:  # what the preset sets beyond the run's own settings
        settings = {k: str(v) for k, v in PRESETS[spec].items() if k not in RUN_SETTINGS}
    elif "=" in spec:
        settings = {}
        for part in spec.split(";"):
            key, eq, value = part.partition("=")
            key = key.strip()
            if not eq or not key:
                raise ValueError(f"arm {text!r}: {part!r} is not KEY=VALUE")
            settings[key] = value.strip()
    else:
        modes = ", ".join(mode.value for mode in RewardMode)
        raise ValueError(
            f"arm {text!r}: {spec!r} is neither a reward mode ({modes}), a preset "
            f"({', '.join(PRESETS)}) nor KEY=VALUE[;KEY=VALUE...]"
        )
    name = name or spec
    if _NAME.fullmatch(name) is None:
        raise ValueError(
            f"arm {text!r}: name {name!r} must be 1-64 letters, digits, '.', '_', '-' or '=' "
            "(give one: NAME:SPEC)"
        )
    return Arm(name, spec, settings)


def parse_arms(texts: tuple[str, ...]) -> list[Arm]:
    arms = [parse_arm(t) for t in texts]
    names = [a.name for a in arms]
    if len(arms) < 2:
        raise ValueError(f"needs 2 or more arms, got {len(arms)}")
    if len(set(names)) != len(names):
        raise ValueError(f"arms need distinct names, got {', '.join(names)}")
    return arms


def arm_seed(run_seed: int, name: str) -> int:
    """The seed of an arm's policy (network, sampling, update): a stable hash of its name and
    the run's seed, the same on every machine and Python."""
    digest = hashlib.sha256(f"{run_seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 3)


def arm_configs(config: TrainingConfig) -> dict[str, TrainingConfig]:
    """Each arm's config (the run's, with the arm's settings), checked to be comparable.

    Raises:
        ValueError: an arm that sets a run setting, settings an arm's config refuses (as one
            ConfigError line), or arms that would play episodes in different settings.
    """
    if config.ab is None:
        raise ValueError("not an A/B config: ab is not set")
    if config.keep_every is not None:
        raise ValueError(
            "keep_every with ab: kept rounds hold every arm and cannot be evaluated per arm "
            "yet; evaluate an arm's latest policy (checkpoints/arms/ARM.pt) instead"
        )
    from esper.simic.env_pool import env_config_for  # env_pool imports this module's users

    base = config.updated({"ab": None})
    arms = parse_arms(config.ab)
    configs = {}
    for arm in arms:
        fixed = sorted(set(arm.settings) & RUN_SETTINGS)
        if fixed:
            raise ValueError(
                f"arm {arm.name} sets {', '.join(fixed)}: every arm takes the run's rounds, "
                "envs, seed, task and data, and placement; set them for the run"
            )
        try:
            configs[arm.name] = base.updated(arm.settings)
        except ValueError as error:  # ConfigError: the arm's settings, named
            raise ValueError(f"arm {arm.name}: {error}") from None
    reference = _episode_setting(env_config_for(base, 0))
    for name, arm_config in configs.items():
        played = _episode_setting(env_config_for(arm_config, 0))
        differing = [
            f.name for f in fields(played) if getattr(played, f.name) != getattr(reference, f.name)
        ]
        if differing:
            raise ValueError(
                f"arm {name} changes what episodes are played in ({', '.join(differing)}): "
                "arms may differ only in rewards and the learner, so that they play the same "
                "episodes and compare paired"
            )
    return configs


def _episode_setting(env: EnvConfig) -> EnvConfig:
    """An env's settings without its rewards (what arms may change)."""
    return replace(env, reward=None)  # type: ignore[arg-type]
