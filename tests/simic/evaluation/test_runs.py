"""Comparing runs from their logs (`esper.simic.evaluation.runs`): matching by seed and the
paired/unpaired split, on synthetic episodes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from esper.simic.evaluation.runs import (
    RUN_METRICS,
    RunEpisodes,
    compare_runs,
    matched_episodes,
    verdict,
)


def run(label: str, seeds: list[int], returns: list[float]) -> RunEpisodes:
    values = {metric: tuple(float(v) for v in returns) for metric in RUN_METRICS}
    return RunEpisodes(label, Path(label), "ppo", (0,), tuple(seeds), values)


def test_episodes_on_a_seed_match_in_order_and_unshared_seeds_are_left_out() -> None:
    a = run("a", [5, 6, 5, 9], [0, 0, 0, 0])
    b = run("b", [6, 5, 5, 5, 7], [0, 0, 0, 0, 0])
    # a's first 5 with b's first 5, a's second 5 with b's second; 6 with 6; 9 and 7 unmatched
    assert matched_episodes(a, b) == [(0, 1), (1, 0), (2, 2)]


def test_runs_on_shared_seeds_are_compared_paired() -> None:
    base = run("base", [1, 2, 3, 4], [10.0, 20.0, 30.0, 40.0])
    other = run("other", [4, 3, 2, 1], [41.0, 32.0, 23.0, 14.0])  # +1, +2, +3, +4 per seed
    _, comparisons = compare_runs([base, other], n_resamples=2000)
    (first, *_) = comparisons
    assert first.paired and first.pairs == 4 and first.baseline == "base"
    assert first.difference.mean == pytest.approx(2.5)
    assert first.difference.lo > 0  # every paired difference is positive
    assert first.p_value == pytest.approx(2 / 2**4)  # exact sign flip: all four of one sign


def test_runs_without_a_shared_seed_are_compared_unpaired() -> None:
    rng = np.random.default_rng(0)
    base = run("base", list(range(10)), list(rng.normal(50, 5, 10)))
    other = run("other", list(range(100, 110)), list(rng.normal(60, 5, 10)))
    summaries, comparisons = compare_runs([base, other], n_resamples=2000)
    assert [s.episodes for s in summaries] == [10, 10]
    difference = comparisons[0]
    assert not difference.paired and difference.pairs == 0 and math.isnan(difference.p_value)
    expected = float(
        np.mean(other.values["episode_return"]) - np.mean(base.values["episode_return"])
    )
    assert difference.difference.mean == pytest.approx(expected)
    assert difference.difference.lo < expected < difference.difference.hi


def test_compare_refuses_one_run_and_twin_names() -> None:
    a = run("a", [1], [1.0])
    with pytest.raises(ValueError, match="at least two runs"):
        compare_runs([a])
    with pytest.raises(ValueError, match="same name"):
        compare_runs([a, run("a", [2], [2.0])])


def test_the_verdict_names_a_winner_only_when_an_interval_excludes_zero() -> None:
    seeds = list(range(8))
    base = run("base", seeds, [10.0 * (i + 1) for i in seeds])
    up = run("up", seeds, [11.0 * (i + 1) for i in seeds])  # +1 .. +8: all above
    down = run("down", seeds, [9.0 * (i + 1) for i in seeds])
    mixed = run("mixed", seeds, [10.0 * (i + 1) + (2 if i % 2 else -2) for i in seeds])
    _, comparisons = compare_runs([base, up, mixed], n_resamples=2000)
    assert verdict(comparisons).startswith("up wins on return: +4.50 [")
    _, comparisons = compare_runs([base, down], n_resamples=2000)
    assert verdict(comparisons) == "base wins on return: every other run is clearly below it"
    _, comparisons = compare_runs([base, mixed], n_resamples=2000)
    assert verdict(comparisons).startswith("no run wins on return")
    few = [run("base", seeds[:4], [1.0, 2.0, 3.0, 4.0]), run("up", seeds[:4], [2.0, 3.1, 4.2, 5.3])]
    _, comparisons = compare_runs(few, n_resamples=2000)
    assert comparisons[0].difference.lo > 0  # the interval alone would say "up"
    assert verdict(comparisons).startswith("no run wins")  # 4 pairs: p >= 2/16


def test_envs_on_one_seed_in_a_round_count_as_one_sample(tmp_path: Path) -> None:
    """With envs_per_seed 2, 'paired (8 episodes)' came from 4 seeds: correlated copies made the
    interval and the test too sure. Episodes on a seed in a round are now averaged."""
    import json

    from esper.simic.evaluation.runs import read_run

    lines = [{"type": "run_start", "round": 0, "group": "", "payload": {"rounds": 2}}]
    for round_index in range(2):
        for env in range(4):
            outcome = {m: float(10 * round_index + env) for m in RUN_METRICS}
            payload = {"seed": 100 + round_index * 10 + env // 2, "outcome": outcome}
            lines.append({"type": "episode", "round": round_index, "group": "", "payload": payload})
    (tmp_path / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    read = read_run(tmp_path)
    assert read.seeds == (100, 101, 110, 111)
    assert read.values["episode_return"] == (0.5, 2.5, 10.5, 12.5)  # each seed's two envs
