"""Comparing finished (or running) runs from their event logs: `esper compare`.

A run's episodes are its `episode` events: every episode of a heuristic run, the episodes of
the last `last_rounds` rounds of a PPO run (a policy still learning is judged on where it got
to). Each run is summarized per metric by its mean and a BCa bootstrap interval; every run after
the first is compared with the first. Two runs that played episodes on the same env seeds are
compared **paired**: episodes are matched by seed (the k-th episode on a seed in one run with the
k-th on it in the other), the mean difference gets a BCa bootstrap interval over the matched
pairs and a two-sided sign-flip p-value, as `esper evaluate` does. Runs with no seed in common
are compared **unpaired**: a two-sample bootstrap of the difference of means, no p-value, and
the table says so.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.stats

from esper.nissa import EVENTS_FILE, read_events
from esper.simic.evaluation.statistics import bootstrap_ci, paired_bootstrap_ci, paired_p_value
from esper.simic.evaluation.summary import Estimate

# outcome fields compared, in table order
RUN_METRICS = ("episode_return", "val_accuracy", "test_accuracy", "params_added")


@dataclass(frozen=True)
class RunEpisodes:
    """The episodes of one run that a comparison reads."""

    label: str
    path: Path
    kind: str  # "ppo" or the controller a run of episodes played
    rounds: tuple[int, ...]  # the PPO rounds read (empty for a run of episodes)
    seeds: tuple[int, ...]  # per sample (an env seed in a round), in log order
    values: dict[str, tuple[float, ...]]  # metric -> per sample: its episodes' mean


@dataclass(frozen=True)
class RunSummary:
    label: str
    kind: str
    episodes: int
    rounds: tuple[int, ...]
    metrics: dict[str, Estimate]


@dataclass(frozen=True)
class RunComparison:
    """`label` - `baseline` on `metric`; `paired` over `pairs` matched episodes, else unpaired
    (p_value NaN)."""

    label: str
    baseline: str
    metric: str
    difference: Estimate
    p_value: float
    paired: bool
    pairs: int


def read_runs(path: Path, last_rounds: int = 5, prefix: bool = True) -> list[RunEpisodes]:
    """The run in `path`, or each arm of it if it is an A/B run (labelled RUN/ARM, or ARM
    without `prefix`)."""
    events = read_run_events(path)
    groups = list(dict.fromkeys(str(e["group"]) for e in events if e.get("type") == "episode"))
    start = next(e for e in events if e.get("type") == "run_start")
    if not start["payload"].get("config", {}).get("ab") or len(groups) < 2:
        return [read_run(path, last_rounds)]
    return [
        read_run(path, last_rounds, f"{path.name}/{group}" if prefix else group, group)
        for group in groups
    ]


def read_run_events(path: Path) -> list[dict[str, Any]]:
    """The events of the run in `path`; ValueError naming why it is not a run."""
    if not path.is_dir():
        raise ValueError(f"{path}: no such run directory")
    log = path / EVENTS_FILE
    if not log.is_file():
        raise ValueError(f"{path}: not a run directory (no {EVENTS_FILE} there)")
    events = read_events(log)
    if not any(e.get("type") == "run_start" for e in events):
        raise ValueError(f"{log}: not a run's event log (no run_start event)")
    return events


def read_run(
    path: Path, last_rounds: int = 5, label: str | None = None, group: str | None = None
) -> RunEpisodes:
    """The episodes of the run in `path` (of its arm `group` only, when given) a comparison
    reads (see the module doc).

    Raises:
        ValueError: `path` is not a run directory, its log is corrupt, or it has no episode
            yet (a PPO run logged before esper logged PPO episodes has none: it says so).
    """
    if last_rounds < 1:
        raise ValueError(f"--last-rounds must be >= 1, got {last_rounds}")
    events = read_run_events(path)
    starts = [e for e in events if e.get("type") == "run_start"]
    episodes = [
        e
        for e in events
        if e.get("type") == "episode" and (group is None or str(e["group"]) == group)
    ]
    is_ppo = int(starts[0]["payload"].get("rounds", 0)) > 0
    if not episodes:
        why = (
            " (a PPO run logged before esper logged PPO episodes, or one that has not "
            "finished a round)"
            if is_ppo
            else ""
        )
        raise ValueError(f"{path}: the run has no finished episode yet{why}")
    rounds: tuple[int, ...] = ()
    if is_ppo:
        done = sorted({int(e["round"]) for e in episodes})
        rounds = tuple(done[-last_rounds:])
        episodes = [e for e in episodes if int(e["round"]) in rounds]
    # Envs on one seed in one round (envs_per_seed > 1) are one sample, not several: their
    # episodes are averaged, so intervals and tests count seeds, not correlated copies.
    units: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for e in episodes:
        units.setdefault((int(e["round"]), int(e["payload"]["seed"])), []).append(e)
    values = {
        metric: tuple(
            float(np.mean([e["payload"]["outcome"][metric] for e in unit]))
            for unit in units.values()
        )
        for metric in RUN_METRICS
    }
    return RunEpisodes(
        label=label or path.name,
        path=path,
        kind="ppo" if is_ppo else str(episodes[0]["payload"]["controller"]),
        rounds=rounds,
        seeds=tuple(seed for _, seed in units),
        values=values,
    )


def summarize_run(run: RunEpisodes, n_resamples: int = 10_000) -> RunSummary:
    metrics = {}
    for metric in RUN_METRICS:
        mean, lo, hi = bootstrap_ci(run.values[metric], n_resamples)
        metrics[metric] = Estimate(mean, lo, hi)
    return RunSummary(run.label, run.kind, len(run.seeds), run.rounds, metrics)


def matched_episodes(a: RunEpisodes, b: RunEpisodes) -> list[tuple[int, int]]:
    """Index pairs (i in a, j in b) of episodes on the same seed: the k-th on a seed in `a`
    with the k-th on it in `b`."""
    positions: defaultdict[int, list[int]] = defaultdict(list)
    for j, seed in enumerate(b.seeds):
        positions[seed].append(j)
    seen: defaultdict[int, int] = defaultdict(int)
    pairs = []
    for i, seed in enumerate(a.seeds):
        k = seen[seed]
        seen[seed] += 1
        if k < len(positions[seed]):
            pairs.append((i, positions[seed][k]))
    return pairs


def compare_runs(
    runs: list[RunEpisodes], n_resamples: int = 10_000
) -> tuple[list[RunSummary], list[RunComparison]]:
    """Each run's summary, and each later run against the first on every metric."""
    if len(runs) < 2:
        raise ValueError("compare needs at least two runs")
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two runs have the same name ({', '.join(labels)}): pass distinct runs")
    summaries = [summarize_run(r, n_resamples) for r in runs]
    baseline = runs[0]
    comparisons = []
    for run in runs[1:]:
        pairs = matched_episodes(run, baseline)
        for metric in RUN_METRICS:
            ours, theirs = run.values[metric], baseline.values[metric]
            if pairs:
                a = [ours[i] for i, _ in pairs]
                b = [theirs[j] for _, j in pairs]
                mean, lo, hi = paired_bootstrap_ci(a, b, n_resamples)
                p = paired_p_value(a, b, n_resamples) if len(pairs) > 1 else math.nan
            else:
                mean, lo, hi = _unpaired_ci(ours, theirs, n_resamples)
                p = math.nan
            comparisons.append(
                RunComparison(
                    run.label,
                    baseline.label,
                    metric,
                    Estimate(mean, lo, hi),
                    p,
                    bool(pairs),
                    len(pairs),
                )
            )
    return summaries, comparisons


def _unpaired_ci(
    a: tuple[float, ...], b: tuple[float, ...], n_resamples: int
) -> tuple[float, float, float]:
    """mean(a) - mean(b) with a BCa bootstrap interval resampling each run on its own."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    point = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return point, math.nan, math.nan
    if np.all(x == x[0]) and np.all(y == y[0]):
        return point, point, point

    def difference(u: np.ndarray, v: np.ndarray, axis: int = -1) -> Any:
        return np.mean(u, axis=axis) - np.mean(v, axis=axis)

    result = scipy.stats.bootstrap(
        (x, y),
        difference,
        n_resamples=n_resamples,
        method="BCa",
        rng=np.random.default_rng(0),
    )
    interval = result.confidence_interval
    return point, float(interval.low), float(interval.high)


def verdict(
    comparisons: list[RunComparison], metric: str = "episode_return", alpha: float = 0.05
) -> str:
    """Which run wins on `metric`, in one line: a run clearly above the first (the largest such
    gain, if several), the first when every other is clearly below it, else none. Clearly: the
    interval excludes 0 and, paired, the sign-flip test agrees (p < `alpha`; at 0.05, with 5
    pairs or fewer it never can: the smallest exact p is 2 / 2^n)."""
    rows = [c for c in comparisons if c.metric == metric]
    if not rows:
        raise ValueError(f"no comparison on {metric!r}")
    name = metric.removeprefix("episode_")
    baseline = rows[0].baseline

    def clear(c: RunComparison) -> bool:
        return not c.paired or c.p_value < alpha

    better = [c for c in rows if c.difference.lo > 0 and clear(c)]
    if better:
        best = max(better, key=lambda c: c.difference.mean)
        d = best.difference
        design = "paired" if best.paired else "unpaired"
        also = f" (largest of {len(better)} gains)" if len(better) > 1 else ""
        return (
            f"{best.label} wins on {name}: {d.mean:+.2f} [{d.lo:+.2f}, {d.hi:+.2f}] over "
            f"{baseline}, {design}{also}"
        )
    if all(c.difference.hi < 0 and clear(c) for c in rows):
        return f"{baseline} wins on {name}: every other run is clearly below it"
    return (
        f"no run wins on {name}: no difference from {baseline} is clear (an interval "
        f"including 0, or a paired test with p >= {alpha})"
    )
