"""TrainingConfig: every setting of a PPO run, validated at the boundary (DESIGN.md §7, §11).

A strict pydantic model: unknown keys, wrong types and inconsistent values fail with messages
naming the field. Sources, applied in order: a preset, a JSON/YAML file (which may name a preset),
then command-line overrides; the resolved config is what a run records (`to_json_dict`).

There is deliberately one discount `gamma`: PPO's GAE and the potential-based shaping must use the
same gamma, or the shaping stops being policy-invariant (Ng, Harada & Russell, 1999). Rewards get
it only through `reward_config()`, so the two cannot differ.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from esper.leyline import LifecycleLimits, sort_slot_ids
from esper.nissa import TelemetryLevel, parse_level
from esper.simic.rewards import RewardConfig, RewardMode
from esper.tolaria import TASKS

_DEVICE = re.compile(r"cpu|cuda(:(0|[1-9][0-9]*))?")

NonNegativeFloat = Annotated[float, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]

# 40 rounds x 4 envs x 25 epochs: about 5 minutes on 2 CPU cores. lr and one env per minibatch
# give 16 Adam steps per round; at the §11 lr of 3e-4 with one minibatch the op distribution had
# not moved after 30 rounds (approx KL ~1e-5 per update).
# contribution_weight 0.2, not 1.0: counterfactual contributions measure how much the host has
# come to depend on a seed (removal damage), which grows with entanglement, not only with
# benefit. Over 30 rounds (benchmarks/learning_sanity.py, seed 0, training envs) at 1.0 the
# return rose 97 -> 114 while test accuracy fell 88.1 -> 84.8 (alpha-retarget churn); at 0.2
# test accuracy rose 87.1 -> 93.5 with a clean germinate-advance-fossilize policy.
_DIGITS: dict[str, Any] = {
    "task": "digits",
    "rounds": 40,
    "lr": 1e-3,
    "minibatch_envs": 1,
    "contribution_weight": 0.2,
}

# Settings that differ from the defaults; every other setting keeps its DESIGN.md §11 value.
PRESETS: dict[str, dict[str, Any]] = {
    "digits": _DIGITS,
    # Parameters cost three times as much: the controller looks for cheap seeds (see
    # docs/results.md: at fewer parameters than the heuristic it beat both baselines).
    "digits_lean": {**_DIGITS, "rent_weight": 1.5},
    "cifar10": {"task": "cifar10"},
    "cifar10_gpu": {"task": "cifar10", "device": "cuda", "amp": True, "rounds": 100, "n_envs": 8},
    "stories": {"task": "stories"},
    "tinystories": {"task": "tinystories"},
}


def _split_csv(value: Any) -> Any:
    """The command-line form `a,b,c` of a tuple setting; other inputs pass through unchanged."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(","))
    return value


class TrainingConfig(BaseModel):
    """Everything a PPO training run needs to know, with DESIGN.md §11 defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # --- run ---
    task: str = "digits"  # a key of esper.tolaria.TASKS
    rounds: int = Field(default=30, ge=1)  # PPO rounds: one episode per env, then one update
    n_envs: int = Field(default=4, ge=1)  # parallel envs, each running a host episode per round
    episode_length: int | None = Field(default=None, ge=1)  # host epochs; None = the task's
    seed: int = Field(default=0, ge=0)  # base seed; envs and policy seeds derive from it
    device: str = "cpu"  # cpu, cuda or cuda:N (syntax only; availability is checked at start)
    backend: Literal["local", "process", "ray"] = "local"  # where envs run (EnvPool)
    slots: tuple[str, ...] | None = Field(default=None, min_length=1)  # None = the host's slots
    data_dir: Path | None = None  # folder of real datasets (cifar10, tinystories)
    train_subset: int | None = Field(default=None, ge=1)  # use only N training samples
    download: bool = False  # download a missing dataset
    telemetry: str = "normal"  # off, minimal, normal or debug
    amp: bool = False  # mixed precision for host training (GPU)
    compile: bool = False  # torch.compile the hosts

    # --- lifecycle ---
    gates: Literal["permissive", "strict"] = "permissive"  # esper.kasmina.gates profile
    min_prune_age: int = Field(default=5, ge=0)  # epochs before the controller may prune a seed
    embargo_epochs: int = Field(default=5, ge=0)  # epochs a slot rests after a prune

    # --- rewards (esper.simic.rewards) ---
    reward_mode: RewardMode = RewardMode.SHAPED  # every env's mode unless env_reward_modes is set
    env_reward_modes: tuple[RewardMode, ...] | None = None  # one mode per env (A/B in one group)
    pbrs_weight: NonNegativeFloat = 0.3  # potential-based stage shaping
    contribution_weight: NonNegativeFloat = 1.0  # counterfactual attribution
    rent_weight: NonNegativeFloat = 0.5  # parameter rent, relative to the host's size
    shock_weight: NonNegativeFloat = 1.0  # penalty on sudden alpha changes of big seeds
    action_cost: NonNegativeFloat = 0.05  # per non-WAIT op (simplified)
    young_prune_penalty: NonNegativeFloat = 1.0  # for pruning a young seed (minimal)
    rollback_penalty: NonNegativeFloat = 5.0  # per governor rollback
    terminal_weight: NonNegativeFloat = 1.0  # on final validation accuracy (pp)
    host_param_floor: int = Field(default=200, ge=1)  # smallest host size rent and shock assume

    # --- PPO ---
    gamma: float = Field(default=0.995, gt=0, le=1)  # discount, for GAE and PBRS alike
    gae_lambda: float = Field(default=0.98, ge=0, le=1)
    clip: PositiveFloat = 0.2  # surrogate ratio clip
    value_clip: PositiveFloat = 10.0  # value-loss clip, on normalized returns
    lr: PositiveFloat = 3e-4  # Adam learning rate
    adam_eps: PositiveFloat = 1e-5
    max_grad_norm: PositiveFloat = 1.0
    target_kl: PositiveFloat | None = 0.015  # stop the update's epochs past this KL; None = never
    entropy_coef: NonNegativeFloat = 0.05  # on normalized per-head entropy, at the first round
    entropy_coef_final: NonNegativeFloat = 0.01  # linearly annealed to this ...
    # ... over this many rounds: a horizon of its own, not `rounds`, so a run resumed with more
    # rounds follows the same schedule as an uninterrupted one.
    entropy_anneal_rounds: int = Field(default=30, ge=1)
    value_coef: NonNegativeFloat = 0.5
    hidden: int = Field(default=128, ge=1)  # MLP and LSTM width
    update_epochs: int = Field(default=4, ge=1)  # passes over the rollout per update
    minibatch_envs: int | None = Field(default=None, ge=1)  # env sequences per minibatch; None=all

    # --- A/B ---
    ab: tuple[RewardMode, ...] | None = None  # reward modes of policy groups trained in lockstep

    # --- validators (cross-field checks read earlier fields from info.data; a field that failed
    # its own validation is absent there, and the check is skipped rather than reported twice) ---

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        if value not in TASKS:
            raise ValueError(f"unknown task {value!r}; known: {', '.join(TASKS)}")
        return value

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, value: str) -> str:
        if _DEVICE.fullmatch(value) is None:
            raise ValueError(f"unknown device {value!r}; expected cpu, cuda or cuda:N")
        return value

    @field_validator("slots", "env_reward_modes", "ab", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("slots")
    @classmethod
    def _valid_slots(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # Canonical (row-major) order: it fixes the slot head's indices.
        return None if value is None else tuple(sort_slot_ids(value))

    @field_validator("telemetry", mode="before")
    @classmethod
    def _telemetry_level(cls, value: Any) -> Any:
        if isinstance(value, TelemetryLevel):
            return value.name.lower()
        if isinstance(value, str):
            return parse_level(value).name.lower()
        return value  # a non-string fails the str type check, naming the field

    @field_validator("env_reward_modes")
    @classmethod
    def _one_mode_per_env(
        cls, value: tuple[RewardMode, ...] | None, info: ValidationInfo
    ) -> tuple[RewardMode, ...] | None:
        n_envs = info.data.get("n_envs")
        if value is not None and n_envs is not None and len(value) != n_envs:
            raise ValueError(f"env_reward_modes has {len(value)} modes but n_envs is {n_envs}")
        return value

    @field_validator("entropy_coef_final")
    @classmethod
    def _entropy_anneals_down(cls, value: float, info: ValidationInfo) -> float:
        start = info.data.get("entropy_coef")
        if start is not None and value > start:
            raise ValueError(
                f"entropy_coef_final ({value}) must be <= entropy_coef ({start}): "
                "the coefficient anneals down"
            )
        return value

    @field_validator("minibatch_envs")
    @classmethod
    def _minibatch_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        n_envs = info.data.get("n_envs")
        if value is not None and n_envs is not None and value > n_envs:
            raise ValueError(f"minibatch_envs ({value}) must be <= n_envs ({n_envs})")
        return value

    @field_validator("ab")
    @classmethod
    def _distinct_groups(
        cls, value: tuple[RewardMode, ...] | None, info: ValidationInfo
    ) -> tuple[RewardMode, ...] | None:
        if value is None:
            return None
        if len(value) < 2 or len(set(value)) != len(value):
            modes = ",".join(mode.value for mode in value)
            raise ValueError(f"ab needs 2 or more distinct reward modes, got {modes!r}")
        if info.data.get("env_reward_modes") is not None:
            # Each A/B group has one reward mode; per-env modes would blur the comparison.
            raise ValueError("ab and env_reward_modes cannot both be set")
        return value

    # --- derived settings ---

    def resolved_episode_length(self) -> int:
        """Host epochs per episode: the setting, else the task's default."""
        if self.episode_length is not None:
            return self.episode_length
        return TASKS[self.task].episode_length

    def reward_config(self, mode: RewardMode | None = None) -> RewardConfig:
        """The rewards' settings for `mode` (default `reward_mode`), with PPO's gamma."""
        return RewardConfig(
            mode=self.reward_mode if mode is None else RewardMode(mode),
            gamma=self.gamma,
            pbrs_weight=self.pbrs_weight,
            contribution_weight=self.contribution_weight,
            rent_weight=self.rent_weight,
            shock_weight=self.shock_weight,
            action_cost=self.action_cost,
            young_prune_penalty=self.young_prune_penalty,
            rollback_penalty=self.rollback_penalty,
            terminal_weight=self.terminal_weight,
            host_param_floor=self.host_param_floor,
        )

    def lifecycle_limits(self) -> LifecycleLimits:
        return LifecycleLimits(min_prune_age=self.min_prune_age, embargo_epochs=self.embargo_epochs)

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings, enums as their values, tuples as lists."""
        return self.model_dump(mode="json")

    # --- sources ---

    @classmethod
    def preset(cls, name: str) -> TrainingConfig:
        """A named starting point (see PRESETS). Raises ValueError listing the known names."""
        return cls.model_validate(_preset_settings(name))

    @classmethod
    def from_file(cls, path: str | Path) -> TrainingConfig:
        """Read a JSON (.json) or YAML (.yaml, .yml) mapping of settings.

        The file may set `preset: NAME`; its other settings then apply on top of that preset.

        Raises:
            ValueError: naming the path, for a file that cannot be read or parsed, is not a
                mapping, or names an unknown preset.
            pydantic.ValidationError: for bad settings; its title is the path.
        """
        path = Path(path)
        settings = _read_settings(path)
        preset = settings.pop("preset", None)
        if preset is not None:
            try:
                settings = {**_preset_settings(preset), **settings}
            except ValueError as error:
                raise ValueError(f"config file {path}: {error}") from None
        try:
            return cls.model_validate(settings)
        except ValidationError as error:
            raise _retitled(error, str(path)) from None

    def with_overrides(self, overrides: Mapping[str, Any]) -> TrainingConfig:
        """A validated copy with `overrides` applied; keys whose value is None are ignored."""
        given = {key: value for key, value in overrides.items() if value is not None}
        return type(self).model_validate({**self.model_dump(), **given})


def _preset_settings(name: Any) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def _read_settings(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ValueError(
            f"config file {path}: unknown format {path.suffix!r}; expected .json, .yaml or .yml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"config file {path}: cannot be read ({error})") from None
    try:
        settings = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        problem = " ".join(str(error).split())
        raise ValueError(f"config file {path}: invalid {suffix[1:].upper()}: {problem}") from None
    if settings is None:  # an empty YAML file: all defaults
        return {}
    if not isinstance(settings, dict):
        raise ValueError(
            f"config file {path}: expected a mapping of settings, got {type(settings).__name__}"
        )
    return settings


def _retitled(error: ValidationError, title: str) -> ValidationError:
    """The same errors, titled with where the settings came from (shown by str and the CLI)."""
    return ValidationError.from_exception_data(
        title,
        error.errors(include_url=False),  # type: ignore[arg-type]
    )


def format_validation_error(error: ValidationError) -> str:
    """One line for the command line: every bad field, its problem and the value given."""
    parts = []
    for detail in error.errors(include_url=False):
        field = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = f"unknown setting{_suggestion(field)}"
        elif detail["type"] not in ("value_error", "missing") and field:
            # Our own value errors already quote the value.
            message += f" (got {_short_repr(detail['input'])})"
        parts.append(f"{field}: {message}" if field else message)
    source = "" if error.title == TrainingConfig.__name__ else f" ({error.title})"
    return f"invalid config{source}: " + "; ".join(" ".join(part.split()) for part in parts)


def _suggestion(unknown: str) -> str:
    if "gamma" in unknown:
        return " (there is one `gamma`, shared by GAE and the reward shaping)"
    close = difflib.get_close_matches(unknown, TrainingConfig.model_fields, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
