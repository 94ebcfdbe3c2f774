"""Run configs: every setting of every command, validated at the boundary (docs/architecture.md).

One hierarchy of strict pydantic models, so that `train heuristic`, `train ppo` and `evaluate`
write and read the same validated settings:
- `EpisodeSettings`: what an episode is (task, data, host device, slots, lifecycle limits, gates,
  rewards). Every command has these.
- `HeuristicRunConfig`: + how many episodes the heuristic plays, in how many envs.
- `TrainingConfig`: + the PPO run (rounds, envs, backend, the update's hyperparameters, A/B).
Unknown keys, wrong types, non-finite numbers and values outside their range fail with messages
naming the field. Each field's description is its command-line help (`esper.cli.settings`
derives the flags from the model, so there is no second table to keep in step).

Sources, applied in order: a preset, a JSON/YAML file, then command-line flags. The preset is the
one named by `--preset`, else by the file's `preset:` key, else the one named after the task (of
several tasks, the first): a file that sets only `rent_weight` still starts from the task's tuned
settings, not from class defaults that do not learn on it.

There is deliberately one discount `gamma`: PPO's GAE and the potential-based shaping must use the
same gamma, or the shaping stops being policy-invariant (Ng, Harada & Russell, 1999). Rewards get
it only through `reward_config()`, so the two cannot differ.
"""

from __future__ import annotations

import difflib
import json
import re
import reprlib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from esper.leyline import LifecycleLimits, sort_slot_ids
from esper.nissa import TelemetryLevel, parse_level
from esper.simic.rewards import RewardConfig, RewardMode
from esper.tamiyo.features import ActionSpace
from esper.tolaria import TASKS, get_task
from esper.tolaria.own_task import canonical_spec, is_task_spec

_DEVICE = re.compile(r"cpu|cuda(:(0|[1-9][0-9]*))?")

# Env seeds used for training lie below this; evaluation draws its held-out seeds above it.
TRAINING_SEED_LIMIT = 2**30

# Upper bounds that no real run reaches; they turn a typo (`--rounds 10**30`) into a clear error
# at the start instead of an overflow, an absurd allocation or a run that never ends.
_MAX_COUNT = 1_000_000
_MAX_EPOCHS = 10_000
_MAX_ENVS = 1024
_MAX_WEIGHT = 1e6
_MAX_DRAWN = 16  # prices or budgets drawn per episode
_MAX_PARAM_BUDGET = 10**12

NonNegativeFloat = Annotated[float, Field(ge=0, le=_MAX_WEIGHT)]
PositiveFloat = Annotated[float, Field(gt=0, le=_MAX_WEIGHT)]
ParamBudget = Annotated[int, Field(ge=0, le=_MAX_PARAM_BUDGET)]

# 40 rounds x 4 envs x 25 epochs: about 5 minutes on 2 CPU cores. lr and one env per minibatch
# give 16 Adam steps per round; at the §11 lr of 3e-4 with one minibatch the op distribution had
# not moved after 30 rounds (approx KL ~1e-5 per update).
# contribution_weight 0.2, not 1.0: counterfactual contributions measure how much the host has
# come to depend on a seed (removal damage), which grows with entanglement, not only with
# benefit. Over 30 rounds (benchmarks/learning_sanity.py, seed 0, training envs) at 1.0 the
# return rose 97 -> 114 while test accuracy fell 88.1 -> 84.8 (alpha-retarget churn); at 0.2
# test accuracy rose 87.1 -> 93.5 with a clean germinate-advance-fossilize policy.
# action_space "simple" (seeds planted as fixed plans plant them): on the 10 held-out seeds
# (docs/results.md, benchmarks/learning.py) it beat the full action space on every training
# seed of both presets, and only with it did every digits policy beat its own untrained one and
# the budget-matched plan search.
_DIGITS: dict[str, Any] = {
    "task": "digits",
    "rounds": 40,
    "lr": 1e-3,
    "minibatch_envs": 1,
    "contribution_weight": 0.2,
    "action_space": "simple",
}

# Settings that differ from the defaults; every other setting keeps its docs/architecture.md §11
# value. A command takes from a preset only the settings it has (a heuristic run ignores `lr`).
PRESETS: dict[str, dict[str, Any]] = {
    "digits": _DIGITS,
    # Parameters cost three times as much: the controller looks for cheap seeds. 8 envs a round
    # (twice the episodes; 2 envs a minibatch keep 16 Adam steps a round): at 4 the policies
    # stopped trying the bigger blueprints after a few rounds, and one of three training seeds
    # ended below its own untrained policy; at 8 all three beat it, on a held-out block of their
    # own (docs/results.md, "The lean preset with 8 envs a round").
    "digits_lean": {**_DIGITS, "rent_weight": 1.5, "n_envs": 8, "minibatch_envs": 2},
    # The digits settings on the 28x28 digits (the data extra): the same kind of task, bigger
    # images and three times the training samples.
    "mnist5k": {**_DIGITS, "task": "mnist5k"},
    "cifar10": {"task": "cifar10"},
    "cifar10_gpu": {"task": "cifar10", "device": "cuda", "amp": "auto", "rounds": 100, "n_envs": 8},
    "stories": {"task": "stories"},
    "tinystories": {"task": "tinystories"},
}


class ConfigError(ValueError):
    """Settings that cannot be used; the message names every bad field and where it came from."""


def _split_csv(value: Any) -> Any:
    """The command-line form `a,b,c` of a tuple setting; other inputs pass through unchanged."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(","))
    return value


def _own_preset(task: Any) -> str | None:
    """The preset named after a task (`digits`, `mnist5k`...), or after the first of several
    (`digits,examples/tabular_mlp.py:breast_cancer` takes the digits preset); None without one."""
    tasks = _split_csv(task)
    first = tasks[0] if isinstance(tasks, tuple | list) and tasks else tasks
    return first if isinstance(first, str) and first in PRESETS else None


def _described(default: Any, description: str, **limits: Any) -> Any:
    return Field(default=default, description=description, **limits)


Settings = TypeVar("Settings", bound="EpisodeSettings")


class EpisodeSettings(BaseModel):
    """What an episode is: task and data, where the host trains, slots, lifecycle, rewards."""

    _SEVERAL_TASKS: ClassVar[bool] = False  # whether `task` may name several (a PPO run)

    # allow_inf_nan=False: `--lr inf` or `rent_weight: .inf` would train (and save) a NaN policy.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # --- task and data ---
    task: str = _described(
        "digits",
        "the task hosts train on: "
        + ", ".join(TASKS)
        + ", or your own as package.module:function or path/to/file.py:function (a PPO run: "
        "several, comma-separated; env i plays the i-th in turn)",
    )
    episode_length: int | None = _described(
        None, "host epochs per episode (none: the task's own)", ge=1, le=_MAX_EPOCHS
    )
    host_widths: tuple[Annotated[int, Field(ge=1, le=4096)], ...] | None = _described(
        None,
        "a CNN task's host: one conv block and one slot per width, e.g. 8,16,32 (none: the "
        "task's own)",
        min_length=1,
        max_length=8,
    )
    host_norm: Literal["group", "batch"] | None = _described(
        None, "a CNN task's host norm: group or batch (none: the task's own)"
    )
    batch_size: int | None = _described(
        None, "training batch size (none: the task's own)", ge=1, le=1_000_000
    )
    eval_batch_size: int | None = _described(
        None, "evaluation batch size (none: the task's own)", ge=1, le=1_000_000
    )
    seed: int = _described(
        0,
        "base seed: env seeds and the policy's seeds derive from it",
        ge=0,
        lt=TRAINING_SEED_LIMIT,
    )
    data_dir: Path | None = _described(
        None, "folder (or file) of a real dataset: cifar10, tinystories"
    )
    train_subset: int | None = _described(
        None, "train on only the first N training samples (none: all)", ge=1, le=100_000_000
    )
    download: bool = _described(False, "download a missing dataset (torchvision / datasets)")

    # --- where and how hosts train ---
    device: str = _described("cpu", "where hosts train: cpu, cuda or cuda:N")
    threads: int = _described(
        1,
        "CPU threads for torch; part of the result (a different count changes reduction order)",
        ge=1,
        le=1024,
    )
    amp: Literal["off", "auto", "bf16", "fp16"] = _described(
        "off",
        "autocast host training and evaluation: bf16, fp16, auto (bf16 where the device has it, "
        "else fp16) or off; losses and metrics stay fp32",
    )
    compile: bool = _described(
        False,
        "torch.compile the hosts' training and evaluation forwards (recompiled as seeds change; "
        "the graphs compiled are counted in the round events)",
    )
    compile_backend: Literal["inductor", "aot_eager", "eager"] = _described(
        "inductor",
        "the torch.compile backend with compile: inductor (generated kernels), aot_eager or "
        "eager (tracing only: for debugging)",
    )
    shadow_fraction: float | None = _described(
        None,
        "share of each training batch an invisible seed's shadow pass takes, in (0, 1]: less is "
        "cheaper and noisier (none: the task's own)",
        gt=0,
        le=1,
    )
    telemetry: str = _described("normal", "what events.jsonl records: off, minimal, normal, debug")

    # --- lifecycle ---
    slots: tuple[str, ...] | None = _described(
        None, "comma-separated slot ids to enable, e.g. r0c0,r0c1 (none: all)", min_length=1
    )
    gates: Literal["permissive", "strict"] = _described(
        "permissive", "quality-gate profile: permissive (structural checks) or strict"
    )
    min_prune_age: int = _described(
        5, "epochs before a controller may prune a seed", ge=0, le=_MAX_EPOCHS
    )
    embargo_epochs: int = _described(5, "epochs a slot rests after a prune", ge=0, le=_MAX_EPOCHS)
    param_budget: int | None = _described(
        None,
        "at most this many parameters in live seeds at any time: a germination that would "
        "pass it is illegal (none: no limit)",
        ge=0,
        le=_MAX_PARAM_BUDGET,
    )
    param_budgets: tuple[ParamBudget, ...] | None = _described(
        None,
        "parameter budgets drawn per episode, comma-separated (episode seed mod count picks "
        "one; the controller sees what its episode's budget leaves); none: param_budget for "
        "every episode",
    )

    # --- rewards (esper.simic.rewards) ---
    reward_mode: RewardMode = _described(
        RewardMode.SHAPED, "reward: " + ", ".join(m.value for m in RewardMode)
    )
    pbrs_weight: NonNegativeFloat = _described(0.3, "weight of the potential-based stage shaping")
    contribution_weight: NonNegativeFloat = _described(
        1.0, "weight of the counterfactual attribution (pp the seeds measurably cause)"
    )
    rent_weight: NonNegativeFloat = _described(
        0.5, "weight of the parameter rent (relative to the host's size)"
    )
    rent_weights: tuple[NonNegativeFloat, ...] | None = _described(
        None,
        "parameter prices drawn per episode, comma-separated (episode seed mod count picks one; "
        "the controller sees the price); none: rent_weight for every episode",
    )
    shock_weight: NonNegativeFloat = _described(
        1.0, "weight of the penalty on sudden alpha changes of big seeds"
    )
    action_cost: NonNegativeFloat = _described(0.05, "cost of every op but WAIT (simplified)")
    young_prune_penalty: NonNegativeFloat = _described(
        1.0, "penalty for pruning a young seed (minimal)"
    )
    rollback_penalty: NonNegativeFloat = _described(5.0, "charge per governor rollback")
    terminal_weight: NonNegativeFloat = _described(
        1.0, "weight of the final validation accuracy (pp) at the last step"
    )
    host_param_floor: int = _described(
        200, "smallest host size that rent and shock assume", ge=1, le=10**12
    )
    gamma: float = _described(0.995, "discount, for GAE and the reward shaping alike", gt=0, le=1)

    # --- validators (cross-field checks read earlier fields from info.data; a field that failed
    # its own validation is absent there, and the check is skipped rather than reported twice) ---

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        """A built-in name, or a user's `module:function` / `file.py:function`, loaded here so
        that a task that cannot be built fails at the boundary (a file path is made absolute:
        a resumed run finds it from anywhere). A PPO run may name several, comma-separated
        (`TrainingConfig.tasks`)."""
        names = [part.strip() for part in value.split(",")]
        if len(names) > 1 and not cls._SEVERAL_TASKS:
            raise ValueError(
                f"{value!r} names {len(names)} tasks; only a PPO training run plays several "
                "(esper train ppo --task A,B); give one"
            )
        canonical = []
        for name in names:
            if name not in TASKS:
                name = canonical_spec(name) if is_task_spec(name) else name
                get_task(name)
            canonical.append(name)
        if len(set(canonical)) != len(canonical):
            raise ValueError(f"{value!r} names a task twice")
        return ",".join(canonical)

    @field_validator("device")
    @classmethod
    def _device_syntax(cls, value: str) -> str:
        if _DEVICE.fullmatch(value) is None:
            raise ValueError(f"unknown device {value!r}; expected cpu, cuda or cuda:N")
        return value

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_from_bool(cls, value: Any) -> Any:
        """Configs written before the precisions had names said true or false."""
        if isinstance(value, bool):
            return "auto" if value else "off"
        return value

    @model_validator(mode="after")
    def _sizable_host(self) -> EpisodeSettings:
        """Widths and norm only where the task's host has them, of a size it can take."""
        if self.host_widths is not None or self.host_norm is not None:
            for name in self.tasks:
                get_task(name).resized(self.host_widths, self.host_norm)
        return self

    @model_validator(mode="after")
    def _one_episode_length(self) -> EpisodeSettings:
        """Envs of one round play episodes of one length: tasks whose own lengths differ need
        `episode_length` set."""
        if self.episode_length is None and len(self.tasks) > 1:
            lengths = {name: get_task(name).episode_length for name in self.tasks}
            if len(set(lengths.values())) > 1:
                shown = ", ".join(f"{name} {n}" for name, n in lengths.items())
                raise ValueError(
                    f"the tasks' episodes have different lengths ({shown} epochs) and one "
                    "round plays one length: set episode_length"
                )
        return self

    @field_validator("slots", "host_widths", "rent_weights", "param_budgets", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("slots")
    @classmethod
    def _valid_slots(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        # Canonical (row-major) order: it fixes the slot head's indices.
        return tuple(sort_slot_ids(value))

    @field_validator("rent_weights", "param_budgets")
    @classmethod
    def _some_drawn(cls, value: tuple[Any, ...] | None, info: ValidationInfo) -> Any:
        what = "prices" if info.field_name == "rent_weights" else "budgets"
        if value is not None and not 1 <= len(value) <= _MAX_DRAWN:
            raise ValueError(f"give 1 to {_MAX_DRAWN} {what}, got {len(value)}")
        return value

    @field_validator("param_budgets")
    @classmethod
    def _one_kind_of_budget(
        cls, value: tuple[int, ...] | None, info: ValidationInfo
    ) -> tuple[int, ...] | None:
        if value is not None and info.data.get("param_budget") is not None:
            raise ValueError(
                f"param_budget={info.data['param_budget']} is set too; give one budget or "
                "budgets drawn per episode, not both"
            )
        return value

    @field_validator("telemetry", mode="before")
    @classmethod
    def _telemetry_level(cls, value: Any) -> Any:
        if isinstance(value, TelemetryLevel):
            return value.name.lower()
        if isinstance(value, str):
            return parse_level(value).name.lower()
        return value  # a non-string fails the str type check, naming the field

    # --- derived settings ---

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks envs play: one, or several for a PPO run (env i plays `task_of(i)`)."""
        return tuple(self.task.split(","))

    def task_of(self, env_index: int) -> str:
        """The task env `env_index` plays: the tasks in turn, so each keeps its own."""
        return self.tasks[env_index % len(self.tasks)]

    def resolved_episode_length(self) -> int:
        """Host epochs per episode: the setting, else the task's default (the same for every
        task, `_one_episode_length`)."""
        if self.episode_length is not None:
            return self.episode_length
        return get_task(self.tasks[0]).episode_length

    def reward_mode_of(self, env_index: int) -> RewardMode:
        """The reward mode env `env_index` plays with (the same for every env here)."""
        return self.reward_mode

    def reward_config(self, mode: RewardMode | None = None) -> RewardConfig:
        """The rewards' settings for `mode` (default `reward_mode`), with PPO's gamma."""
        return RewardConfig(
            mode=self.reward_mode if mode is None else RewardMode(mode),
            gamma=self.gamma,
            pbrs_weight=self.pbrs_weight,
            contribution_weight=self.contribution_weight,
            rent_weight=self.rent_weight,
            rent_weights=self.rent_weights or (),
            shock_weight=self.shock_weight,
            action_cost=self.action_cost,
            young_prune_penalty=self.young_prune_penalty,
            rollback_penalty=self.rollback_penalty,
            terminal_weight=self.terminal_weight,
            host_param_floor=self.host_param_floor,
        )

    def lifecycle_limits(self) -> LifecycleLimits:
        return LifecycleLimits(
            min_prune_age=self.min_prune_age,
            embargo_epochs=self.embargo_epochs,
            param_budget=self.param_budget,
            param_budgets=self.param_budgets or (),
        )

    def to_json_dict(self) -> dict[str, Any]:
        """JSON-ready: paths as strings, enums as their values, tuples as lists."""
        return self.model_dump(mode="json")

    # --- sources ---

    @classmethod
    def preset(cls: type[Settings], name: str) -> Settings:
        """A named starting point (see PRESETS). Raises ValueError listing the known names."""
        return cls.model_validate(cls._preset_settings(name))

    @classmethod
    def resolve(
        cls: type[Settings],
        preset: str | None = None,
        file: str | Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Settings:
        """preset < file < overrides (see the module docstring for which preset applies).

        Raises:
            ConfigError: naming the source and every bad field.
        """
        settings = _read_settings(Path(file)) if file is not None else {}
        given = dict(overrides or {})  # None here is a value ("none"): it clears the setting
        named = settings.pop("preset", None)
        if preset is not None and named is not None and named != preset:
            raise ConfigError(f"--preset {preset} contradicts the config file's preset: {named}")
        name = preset or named
        if name is None:  # the task's own preset (of several tasks: the first's), if any
            name = _own_preset(given.get("task", settings.get("task", "digits")))
        try:
            base = cls._preset_settings(name) if name is not None else {}
        except ValueError as error:
            source = f"config file {file}: " if named is not None else ""
            raise ConfigError(f"{source}{error}") from None
        return cls.validated({**base, **settings, **given}, source=file)

    @classmethod
    def validated(cls: type[Settings], settings: Mapping[str, Any], source: Any = None) -> Settings:
        """`model_validate`, with a failure as one ConfigError line naming `source`."""
        try:
            return cls.model_validate(dict(settings))
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, source, cls)) from None

    @classmethod
    def from_file(cls: type[Settings], path: str | Path) -> Settings:
        """Read a JSON (.json) or YAML (.yaml, .yml) mapping of settings, on top of its preset.

        Raises:
            ConfigError: naming the path, for a file that cannot be read or parsed, is not a
                mapping, names an unknown preset, or holds bad settings.
        """
        return cls.resolve(file=path)

    def with_overrides(self: Settings, overrides: Mapping[str, Any]) -> Settings:
        """A validated copy with `overrides` applied; keys whose value is None are ignored
        (for callers that fill a mapping from optional arguments; see `updated`).

        Raises:
            ConfigError: naming every bad field.
        """
        given = {key: value for key, value in overrides.items() if value is not None}
        return self.updated(given)

    def updated(self: Settings, settings: Mapping[str, Any]) -> Settings:
        """A validated copy with `settings` applied, None included (it clears a setting).

        Raises:
            ConfigError: naming every bad field.
        """
        return type(self).validated({**self.model_dump(), **settings})

    @classmethod
    def _preset_settings(cls, name: Any) -> dict[str, Any]:
        """The preset's settings that this kind of config has."""
        if not isinstance(name, str) or name not in PRESETS:
            shown = _short_repr(name)
            raise ValueError(f"unknown preset {shown}; known: {', '.join(PRESETS)}")
        return {k: v for k, v in PRESETS[name].items() if k in cls.model_fields}


class Placement(BaseModel):
    """Where a run's envs live (`docs/scale-out.md`): never part of its result."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    backend: Literal["local", "vmap", "process", "ray"] = _described(
        "local",
        "where envs run: local (this process, in turn), vmap (this process, the hosts of envs "
        "of one structure trained as one vmapped step), process (worker processes) or ray (Ray "
        "actors, the ray extra); the same episodes everywhere (vmap: to float tolerance)",
    )
    workers: int | None = _described(
        None,
        "worker processes or Ray actors (none: this machine's cores, or the Ray cluster's CPUs "
        "over worker_cpus; at most n_envs)",
        ge=1,
        le=_MAX_ENVS,
    )
    devices: tuple[str, ...] | None = _described(
        None,
        "devices to spread the envs over, comma-separated (cuda:0,cuda:1): worker k trains its "
        "envs on the k-th mod their count; backend process only (none: every env on device)",
        min_length=1,
        max_length=64,
    )
    worker_deadline_s: float = _described(
        900.0,
        "seconds a worker may take for one env step before it is replaced (process and ray)",
        gt=0,
        le=86_400,
    )
    ray_address: str | None = _described(
        None,
        "Ray cluster to join: auto or HOST:PORT (none: start a local Ray for the run)",
        min_length=1,
        max_length=200,
    )
    worker_cpus: float = _described(1.0, "CPUs each Ray actor asks for", gt=0, le=1024)
    worker_gpus: float = _described(
        0.0, "GPUs each Ray actor asks for (fractions share a GPU)", ge=0, le=64
    )

    @field_validator("devices", mode="before")
    @classmethod
    def _comma_separated_devices(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(","))
        return value

    @field_validator("devices")
    @classmethod
    def _cuda_devices(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        bad = [d for d in value if re.fullmatch(r"cuda:(0|[1-9][0-9]*)", d) is None]
        if bad:
            raise ValueError(f"devices must be cuda:N, got {', '.join(map(repr, bad))}")
        if len(set(value)) != len(value):
            raise ValueError(f"devices are named twice in {','.join(value)}")
        return value

    @model_validator(mode="after")
    def _devices_need_workers(self) -> Placement:
        if self.devices is not None and self.backend != "process":
            raise ValueError(
                f"devices spreads envs over worker processes: it needs backend process, not "
                f"{self.backend}"
            )
        if self.devices is not None and getattr(self, "device", "cuda").split(":")[0] != "cuda":
            raise ValueError("devices are GPUs: set device cuda with them")
        limits = [x for x in (self.workers, getattr(self, "n_envs", None)) if x is not None]
        hosts = min(limits, default=None)  # at most this many workers can run
        if self.devices is not None and hosts is not None and hosts < len(self.devices):
            raise ValueError(
                f"{len(self.devices)} devices but only {hosts} workers (envs) to put on them: "
                "each worker trains on one device"
            )
        return self

    @model_validator(mode="after")
    def _vmap_runs_eager(self) -> Placement:
        if self.backend == "vmap" and getattr(self, "compile", False):
            raise ValueError(
                "compile and backend vmap do not go together (vmapped groups run eager); use "
                "backend local or process with compile"
            )
        if self.backend == "vmap" and getattr(self, "amp", "off") == "fp16":
            raise ValueError(
                "amp fp16 and backend vmap do not go together (each env's gradient scaler "
                "skips its own steps, so fp16 envs train one by one); use bf16 or backend local"
            )
        return self


class HeuristicRunConfig(EpisodeSettings, Placement):
    """`esper train heuristic`: the rule-based controller plays episodes (no learning)."""

    episodes: int = _described(
        3, "episodes to play (env seeds seed, seed+1, ...)", ge=1, le=_MAX_COUNT
    )
    n_envs: int = _described(1, "envs played in lockstep", ge=1, le=_MAX_ENVS)

    @field_validator("episodes")
    @classmethod
    def _seeds_stay_training_seeds(cls, value: int, info: ValidationInfo) -> int:
        seed = info.data.get("seed")
        if seed is not None and seed + value > TRAINING_SEED_LIMIT:
            raise ValueError(
                f"seed + episodes ({seed} + {value}) must stay <= {TRAINING_SEED_LIMIT}: env "
                "seeds above it are held out for evaluation"
            )
        return value


class TrainingConfig(EpisodeSettings, Placement):
    """Everything a PPO training run needs to know, with docs/architecture.md §11 defaults."""

    _SEVERAL_TASKS: ClassVar[bool] = True  # a controller may learn from several hosts and tasks

    # --- run ---
    rounds: int = _described(
        30, "PPO rounds: one episode per env, then one update", ge=1, le=_MAX_COUNT
    )
    n_envs: int = _described(4, "envs per round, each running a host episode", ge=1, le=_MAX_ENVS)
    env_reward_modes: tuple[RewardMode, ...] | None = _described(
        None, "one reward mode per env, comma-separated (A/B inside one policy)"
    )
    keep_every: int | None = _described(
        None,
        "also keep the policy every K rounds, and the untrained one, as checkpoints/round-N.pt "
        "(for learning curves: evaluate ppo:RUN@N; none: only latest.pt)",
        ge=1,
        le=_MAX_COUNT,
    )

    # --- PPO ---
    action_space: ActionSpace = _described(
        "full",
        "what the policy chooses: full (every head) or simple (seeds planted as fixed plans "
        "plant them: ADD, FAST, alpha 1, linear; no SET_ALPHA_TARGET)",
    )
    gae_lambda: float = _described(0.98, "GAE lambda", ge=0, le=1)
    clip: float = _described(0.2, "surrogate ratio clip", gt=0, le=10)
    value_clip: PositiveFloat = _described(10.0, "value-loss clip, on normalized returns")
    lr: float = _described(3e-4, "Adam learning rate at the first round", gt=0, le=1)
    lr_final: float | None = _described(
        None,
        "Adam learning rate after lr_anneal_rounds, annealed linearly (none: lr throughout)",
        gt=0,
        le=1,
    )
    # Its own horizon, like the entropy's, so that a resumed run keeps the same schedule.
    lr_anneal_rounds: int = _described(
        40, "rounds over which the learning rate anneals to lr_final", ge=1, le=_MAX_COUNT
    )
    adam_eps: float = _described(1e-5, "Adam epsilon", gt=0, le=1)
    max_grad_norm: PositiveFloat = _described(1.0, "global gradient-norm clip")
    target_kl: float | None = _described(
        0.015,
        "stop the update's epochs past 1.5x this KL (none: never stop early)",
        gt=0,
        le=_MAX_WEIGHT,
    )
    entropy_coef: NonNegativeFloat = _described(
        0.05, "entropy bonus (normalized per head) at the first round"
    )
    entropy_coef_final: NonNegativeFloat = _described(
        0.01, "entropy bonus after entropy_anneal_rounds (annealed linearly)"
    )
    # A horizon of its own, not `rounds`, so a run resumed with more rounds follows the same
    # schedule as an uninterrupted one.
    entropy_anneal_rounds: int = _described(
        30, "rounds over which the entropy bonus anneals", ge=1, le=_MAX_COUNT
    )
    value_coef: NonNegativeFloat = _described(0.5, "weight of the value loss")
    hidden: int = _described(128, "width of the policy's MLP and LSTM", ge=1, le=8192)
    update_epochs: int = _described(4, "passes over the rollout per update", ge=1, le=1000)
    minibatch_envs: int | None = _described(
        None, "env sequences per minibatch (none: all in one)", ge=1, le=_MAX_ENVS
    )
    # Common random numbers: envs on one seed start from the same host, data order and price;
    # envs that act alike then play the same episode, so only what their actions did apart
    # differs (docs/architecture.md §7; on digits no gain was measured: docs/results.md).
    envs_per_seed: int = _described(
        1,
        "consecutive envs of a round that play the same env seed (n_envs must be a multiple)",
        ge=1,
        le=_MAX_ENVS,
    )
    advantage: Literal["gae", "group"] = _described(
        "gae",
        "gae: GAE over the critic's values; group: return-to-go minus the mean return-to-go "
        "of the other envs on the same seed at the same step (needs envs_per_seed >= 2)",
    )

    # --- A/B ---
    ab: tuple[str, ...] | None = _described(
        None,
        "arms of an A/B run trained in lockstep on the same env seeds, comma-separated: each "
        "[NAME:]SPEC, SPEC a reward mode, a preset or KEY=VALUE[;KEY=VALUE...] "
        "(esper.simic.arms)",
        max_length=16,
    )

    @field_validator("env_reward_modes", "ab", mode="before")
    @classmethod
    def _comma_separated_modes(cls, value: Any) -> Any:
        return _split_csv(value)

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

    @field_validator("lr_final")
    @classmethod
    def _lr_anneals_down(cls, value: float | None, info: ValidationInfo) -> float | None:
        start = info.data.get("lr")
        if value is not None and start is not None and value > start:
            raise ValueError(
                f"lr_final ({value}) must be <= lr ({start}): the learning rate anneals down"
            )
        return value

    @field_validator("minibatch_envs")
    @classmethod
    def _minibatch_fits(cls, value: int | None, info: ValidationInfo) -> int | None:
        n_envs = info.data.get("n_envs")
        if value is not None and n_envs is not None and value > n_envs:
            raise ValueError(f"minibatch_envs ({value}) must be <= n_envs ({n_envs})")
        return value

    @field_validator("envs_per_seed")
    @classmethod
    def _seed_groups_fit(cls, value: int, info: ValidationInfo) -> int:
        n_envs = info.data.get("n_envs")
        if n_envs is not None and n_envs % value != 0:
            raise ValueError(f"n_envs ({n_envs}) must be a multiple of envs_per_seed ({value})")
        return value

    @field_validator("advantage")
    @classmethod
    def _group_needs_a_group(cls, value: str, info: ValidationInfo) -> str:
        per_seed = info.data.get("envs_per_seed")
        if value == "group" and per_seed is not None and per_seed < 2:
            raise ValueError(
                f"advantage 'group' needs envs_per_seed >= 2 (got {per_seed}): an env's "
                "baseline is the other envs on its seed"
            )
        return value

    @field_validator("ab")
    @classmethod
    def _distinct_groups(
        cls, value: tuple[str, ...] | None, info: ValidationInfo
    ) -> tuple[str, ...] | None:
        if value is None:
            return None
        from esper.simic.arms import parse_arms  # it reads this module's presets

        parse_arms(value)  # the syntax and distinct names; arm_configs checks the rest
        if info.data.get("env_reward_modes") is not None:
            # Each A/B group has one reward mode; per-env modes would blur the comparison.
            raise ValueError("ab and env_reward_modes cannot both be set")
        return value

    def reward_mode_of(self, env_index: int) -> RewardMode:
        """Env `env_index`'s reward mode: its entry of env_reward_modes, else reward_mode."""
        modes = self.env_reward_modes
        return modes[env_index] if modes is not None else self.reward_mode


def _read_settings(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError(
            f"config file {path}: unknown format {path.suffix!r}; expected .json, .yaml or .yml"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"config file {path}: cannot be read ({error})") from None
    try:
        settings = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError, RecursionError) as error:  # ValueError: JSON, huge ints
        problem = " ".join(str(error).split())[:200]
        raise ConfigError(f"config file {path}: invalid {suffix[1:].upper()}: {problem}") from None
    if settings is None:  # an empty YAML file: the preset alone
        return {}
    if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
        kind = type(settings).__name__ if not isinstance(settings, dict) else "non-text keys"
        raise ConfigError(f"config file {path}: expected a mapping of settings, got {kind}")
    return settings


def format_validation_error(
    error: ValidationError, source: Any = None, model: type[BaseModel] | None = None
) -> str:
    """One line for the command line: every bad field, its problem and the value given.

    Args:
        model: the config that refused a key (for "did you mean ...?"; default TrainingConfig).
    """
    parts = []
    for detail in error.errors(include_url=False):
        field = ".".join(str(part) for part in detail["loc"])
        message = str(detail["msg"]).removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = f"unknown setting{_suggestion(field, model or TrainingConfig)}"
        elif detail["type"] not in ("value_error", "missing") and field:
            # Our own value errors already quote the value.
            message += f" (got {_short_repr(detail.get('input'))})"
        parts.append(f"{field}: {message}" if field else message)
    where = f" ({source})" if source is not None else ""
    return f"invalid config{where}: " + "; ".join(" ".join(part.split()) for part in parts)


def _suggestion(unknown: str, model: type[BaseModel]) -> str:
    if "gamma" in unknown:
        return " (there is one `gamma`, shared by GAE and the reward shaping)"
    for other in (TrainingConfig, HeuristicRunConfig):
        if other is not model and unknown in other.model_fields:
            command = "train ppo" if other is TrainingConfig else "train heuristic"
            return f" (a `{command}` setting; this command does not use it)"
    close = difflib.get_close_matches(unknown, model.model_fields, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


# Bounded at every level: a YAML alias bomb under one key must not take minutes to print.
_REPR = reprlib.Repr()  # (keyword arguments need Python 3.12)
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 2, 4, 4, 4
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 40


def _short_repr(value: Any, limit: int = 60) -> str:
    try:
        text = _REPR.repr(value)
    except Exception:  # a YAML-built object whose repr fails must not hide the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


__all__ = [
    "PRESETS",
    "TRAINING_SEED_LIMIT",
    "ConfigError",
    "EpisodeSettings",
    "HeuristicRunConfig",
    "TrainingConfig",
    "format_validation_error",
]
