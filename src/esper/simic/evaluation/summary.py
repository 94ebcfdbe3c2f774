"""What an evaluation found: per-controller means with intervals, and the paired comparisons."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from esper.simic.episodes import EpisodeRecord
from esper.simic.evaluation.running import EvaluationResult
from esper.simic.evaluation.statistics import bootstrap_ci, paired_bootstrap_ci, paired_p_value

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


@dataclass(frozen=True)
class Estimate:
    mean: float
    lo: float  # BCa bootstrap confidence interval bounds (NaN where none can be computed)
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
    p_value: float  # two-sided sign-flip permutation test of a mean difference of 0


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
    """Means and BCa bootstrap intervals per controller, and the paired comparisons (interval
    and sign-flip p-value of the mean difference): every ppo controller against the heuristic
    and the static host, and the heuristic against static.

    Args:
        n_resamples: bootstrap resamples, and random sign assignments of a p-value from more
            seeds than it enumerates exactly.
        confidence: the intervals' nominal coverage.

    Raises:
        ValueError: a controller whose records are not one per evaluation seed, in seed order.
    """
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
            **{
                name: Estimate(*bootstrap_ci(values, n_resamples, confidence))
                for name, values in per_metric.items()
            },
        )
        for label, per_metric in columns.items()
    )
    comparisons = tuple(
        _compare(a, b, metric, columns[a][metric], columns[b][metric], n_resamples, confidence)
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


def _compare(
    a: str,
    b: str,
    metric: str,
    a_values: np.ndarray,
    b_values: np.ndarray,
    n_resamples: int,
    confidence: float,
) -> Comparison:
    difference = Estimate(*paired_bootstrap_ci(a_values, b_values, n_resamples, confidence))
    return Comparison(a, b, metric, difference, paired_p_value(a_values, b_values, n_resamples))


def _compared_pairs(labels: list[str]) -> list[tuple[str, str]]:
    """Every ppo controller against the baselines (heuristic, static, fixed plans) and, when its
    run's untrained policy (`...@0`) is evaluated too, against that: did training help at all?
    Every plan and the heuristic against static."""
    plans = [label for label in labels if label.startswith("plan:")]
    baselines = [b for b in ("heuristic", "static") if b in labels] + plans
    pairs: list[tuple[str, str]] = [
        (ppo, b) for ppo in labels if ppo.startswith("ppo") for b in baselines
    ]
    if "static" in labels:
        pairs += [(plan, "static") for plan in plans]
    for label in labels:
        untrained = re.sub(r"@\d+$", "", label) + "@0"
        if label.startswith("ppo") and label != untrained and untrained in labels:
            pairs.append((label, untrained))
    if "heuristic" in labels and "static" in labels:
        pairs.append(("heuristic", "static"))
    return pairs
