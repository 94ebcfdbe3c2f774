"""Does the learned controller win? Controllers compared on the same held-out env seeds.

Every controller plays one episode on each of the same env seeds (a paired design), seeds that
training never uses (`TRAINING_SEED_LIMIT`). Each figure is reported with a percentile bootstrap
confidence interval (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13), and a
comparison of two controllers bootstraps the per-seed differences, so the variance shared by both
controllers on a seed (an easy or hard host initialization) cancels out.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from esper.nissa import CHECKPOINTS_DIR, TelemetryHub, atomic_write_text
from esper.simic.checkpoint import LATEST, CheckpointError, load_checkpoint
from esper.simic.config import TrainingConfig, format_validation_error
from esper.simic.env_pool import env_config_for
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.episodes import EpisodeRecord, run_episodes
from esper.simic.learned_policy import LearnedPolicy
from esper.simic.trainer import TRAINING_SEED_LIMIT
from esper.tamiyo.policy import HeuristicPolicy, Policy, RandomPolicy, StaticPolicy

ControllerKind = Literal["static", "random", "heuristic", "ppo"]
_BASELINES: dict[str, ControllerKind] = {
    "static": "static",
    "random": "random",
    "heuristic": "heuristic",
}
CONTROLLER_FORMS = "static, random, heuristic or ppo:PATH (comma-separated)"

# Per-episode figures reported for every controller, in table order.
METRICS: dict[str, Callable[[EpisodeRecord], float]] = {
    "test_accuracy": lambda r: r.outcome.test_accuracy,
    "params_added": lambda r: r.outcome.params_added,
    "growth_ratio": lambda r: r.outcome.growth_ratio,
    "seeds_fossilized": lambda r: r.outcome.seeds_fossilized,
    "seeds_pruned": lambda r: r.outcome.seeds_pruned,
    "wall_time_s": lambda r: r.wall_time_s,
}
# Figures compared between controllers: the claim is "more accurate with no more parameters".
COMPARED_METRICS = ("test_accuracy", "params_added")


# -- controllers ------------------------------------------------------------------------------


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


def evaluation_env_config(
    task: str,
    ppo_configs: Mapping[str, TrainingConfig],
    episode_length: int | None = None,
    device: str = "cpu",
) -> EnvConfig:
    """The env every controller is evaluated in: the setting the ppo checkpoints were trained in
    (episode length, slots, lifecycle, and the first one's rewards), else a default training
    config's for `task`. Rewards may differ between checkpoints (they change what a controller
    wanted, not what happens in an episode): see `with_reward_of`.

    Args:
        ppo_configs: label -> the training config of each ppo controller.
        episode_length: overrides the episode length (None: the training config's).

    Raises:
        ValueError: a checkpoint trained on another task, or ppo checkpoints trained in
            different settings (they cannot share one env).
    """
    for label, config in ppo_configs.items():
        if config.task != task:
            raise ValueError(
                f"{label} was trained on task {config.task!r}; evaluating on {task!r} needs a "
                f"checkpoint trained on {task!r}"
            )
    settings = {
        label: _on_device(env_config_for(config, 0), device)
        for label, config in ppo_configs.items()
    }
    if not settings:
        settings = {"default": _on_device(env_config_for(TrainingConfig(task=task), 0), device)}
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


def with_reward_of(config: EnvConfig, trained: TrainingConfig | None) -> EnvConfig:
    """`config` with the rewards (and the reward-derived feature scale) a ppo checkpoint was
    trained with, so that it sees the observations it learned on and its returns are its own;
    unchanged for a baseline controller (trained=None)."""
    return config if trained is None else replace(config, reward=env_config_for(trained, 0).reward)


def _on_device(config: EnvConfig, device: str) -> EnvConfig:
    return replace(config, session=replace(config.session, device=device))


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


# -- running ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluationResult:
    task: str
    episode_length: int
    seeds: tuple[int, ...]
    records: dict[str, tuple[EpisodeRecord, ...]]  # label -> one record per seed, seed order


def held_out_seeds(n: int, base: int = TRAINING_SEED_LIMIT) -> list[int]:
    """`n` env seeds that training never uses (training seeds lie below TRAINING_SEED_LIMIT)."""
    if n < 1:
        raise ValueError(f"need at least 1 seed, got {n}")
    if base < TRAINING_SEED_LIMIT:
        raise ValueError(
            f"held-out seeds start at {TRAINING_SEED_LIMIT} or above (training uses the seeds "
            f"below it), got base {base}"
        )
    return list(range(base, base + n))


def evaluate_controllers(
    specs: Sequence[ControllerSpec],
    make_env: Callable[[ControllerSpec], MorphogeneticEnv],
    seeds: Sequence[int],
    hub: TelemetryHub | None = None,
) -> EvaluationResult:
    """Play every controller on every seed, in its own env, one episode after another.

    All controllers are built before any episode runs, so a bad checkpoint fails at once. Each
    episode starts from a fresh controller state (`run_episodes` with one env).
    """
    envs = [make_env(spec) for spec in specs]
    policies = [build_policy(spec, env) for spec, env in zip(specs, envs, strict=True)]
    lengths = {env.config.episode_length for env in envs}
    if len(lengths) != 1 or len({env.task.name for env in envs}) != 1:
        raise ValueError("every controller must play the same task and episode length")
    records = {  # labelled by spec, so that two ppo checkpoints stay apart
        spec.label: tuple(
            replace(r, controller=spec.label) for r in run_episodes(policy, [env], seeds, hub)
        )
        for spec, policy, env in zip(specs, policies, envs, strict=True)
    }
    return EvaluationResult(envs[0].task.name, lengths.pop(), tuple(seeds), records)


# -- statistics -------------------------------------------------------------------------------


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap confidence interval of the mean: (mean, lo, hi).

    Raises:
        ValueError: no values, n_resamples < 1, or confidence outside (0, 1).
    """
    sample = np.asarray(values, dtype=np.float64)  # (n,)
    if sample.ndim != 1 or sample.size == 0:
        raise ValueError(f"need a non-empty 1-d sample, got shape {sample.shape}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, sample.size, size=(n_resamples, sample.size))  # (R, n)
    means = sample[picks].mean(axis=1)  # (R,)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    return float(sample.mean()), float(lo), float(hi)


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Bootstrap of the mean per-seed difference a_i - b_i: (mean, lo, hi).

    Raises:
        ValueError: samples of different lengths (they must pair up seed by seed).
    """
    a_values, b_values = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a_values.shape != b_values.shape:
        raise ValueError(
            f"paired samples must have the same shape, got {a_values.shape} and {b_values.shape}"
        )
    return bootstrap_ci(a_values - b_values, n_resamples, confidence, seed)


# -- summary ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float  # confidence interval bounds
    hi: float

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0


@dataclass(frozen=True)
class ControllerSummary:
    label: str
    episodes: int
    test_accuracy: Estimate  # %
    params_added: Estimate
    growth_ratio: Estimate  # (host + added) / host
    seeds_fossilized: Estimate
    seeds_pruned: Estimate
    wall_time_s: Estimate  # per episode


@dataclass(frozen=True)
class Comparison:
    """`minuend` - `subtrahend` on `metric`, paired by seed."""

    minuend: str
    subtrahend: str
    metric: str
    difference: Estimate


@dataclass(frozen=True)
class EvaluationSummary:
    task: str
    episode_length: int
    seeds: tuple[int, ...]
    confidence: float
    n_resamples: int
    controllers: tuple[ControllerSummary, ...]
    comparisons: tuple[Comparison, ...]
    episodes: tuple[EpisodeRecord, ...]


def summarize(
    result: EvaluationResult, n_resamples: int = 10_000, confidence: float = 0.95
) -> EvaluationSummary:
    """Means and bootstrap intervals per controller, and the paired comparisons: every ppo
    controller against the heuristic and the static host, and the heuristic against static."""

    def estimate(values: np.ndarray) -> Estimate:
        return Estimate(*bootstrap_ci(values, n_resamples, confidence))

    for label, records in result.records.items():
        if tuple(r.seed for r in records) != result.seeds:
            raise ValueError(f"{label} did not play the evaluation seeds in order")
    columns = {
        label: {name: np.array([get(r) for r in records]) for name, get in METRICS.items()}
        for label, records in result.records.items()
    }
    controllers = tuple(
        ControllerSummary(
            label,
            len(result.records[label]),
            **{name: estimate(values) for name, values in per_metric.items()},
        )
        for label, per_metric in columns.items()
    )
    comparisons = tuple(
        Comparison(
            a,
            b,
            metric,
            Estimate(
                *paired_bootstrap_ci(
                    columns[a][metric], columns[b][metric], n_resamples, confidence
                )
            ),
        )
        for a, b in _compared_pairs(list(result.records))
        for metric in COMPARED_METRICS
    )
    episodes = tuple(r for records in result.records.values() for r in records)
    return EvaluationSummary(
        result.task,
        result.episode_length,
        result.seeds,
        confidence,
        n_resamples,
        controllers,
        comparisons,
        episodes,
    )


def most_common_growth(summary: EvaluationSummary, label: str) -> tuple[str, int]:
    """The final network a controller grew most often ("+"-joined blueprint@slot, "none" for
    the host alone) and on how many seeds."""
    grown = Counter(
        "+".join(r.outcome.grown) or "none" for r in summary.episodes if r.controller == label
    )
    return grown.most_common(1)[0] if grown else ("none", 0)


def _compared_pairs(labels: list[str]) -> list[tuple[str, str]]:
    baselines = [b for b in ("heuristic", "static") if b in labels]
    pairs: list[tuple[str, str]] = [
        (ppo, b) for ppo in labels if ppo.startswith("ppo") for b in baselines
    ]
    if "heuristic" in labels and "static" in labels:
        pairs.append(("heuristic", "static"))
    return pairs


# -- results files ----------------------------------------------------------------------------

CSV_COLUMNS = ("kind", "name", "metric", "mean", "lo", "hi", "excludes_zero", "episodes")


def results_dict(summary: EvaluationSummary) -> dict[str, Any]:
    """JSON-ready: the summary, each comparison's `excludes_zero`, and every episode's record."""
    data = asdict(summary)
    for comparison, entry in zip(summary.comparisons, data["comparisons"], strict=True):
        entry["excludes_zero"] = comparison.difference.excludes_zero
    for record, entry in zip(summary.episodes, data["episodes"], strict=True):
        entry["growth_ratio"] = record.outcome.growth_ratio
    return data


def csv_rows(summary: EvaluationSummary) -> list[dict[str, Any]]:
    """One row per controller and metric, then one per comparison (no per-episode rows)."""
    rows: list[dict[str, Any]] = []
    for controller in summary.controllers:
        for metric in METRICS:
            value: Estimate = getattr(controller, metric)
            rows.append(
                {
                    "kind": "controller",
                    "name": controller.label,
                    "metric": metric,
                    **asdict(value),
                    "excludes_zero": "",
                    "episodes": controller.episodes,
                }
            )
    for comparison in summary.comparisons:
        rows.append(
            {
                "kind": "comparison",
                "name": f"{comparison.minuend} - {comparison.subtrahend}",
                "metric": comparison.metric,
                **asdict(comparison.difference),
                "excludes_zero": comparison.difference.excludes_zero,
                "episodes": len(summary.seeds),
            }
        )
    return rows


def check_results_path(path: Path) -> None:
    """Fail before an evaluation, not after it, on a results file that cannot be written.

    Raises:
        ValueError: a suffix other than .json or .csv, or a folder that does not exist.
    """
    if path.suffix.lower() not in (".json", ".csv"):
        raise ValueError(
            f"results file {path}: unknown format {path.suffix!r}; expected .json or .csv"
        )
    if not path.parent.is_dir():
        raise ValueError(f"results file {path}: folder {path.parent} does not exist")


def write_results(summary: EvaluationSummary, path: Path) -> None:
    """Write the summary as `.json` (everything) or `.csv` (the summary rows), atomically.

    Raises:
        ValueError: a suffix other than .json or .csv, or a folder that does not exist.
    """
    check_results_path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(results_dict(summary), indent=2) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(csv_rows(summary))
        text = buffer.getvalue()
    atomic_write_text(path, text)
