"""benchmarks/learning.py merges one evaluation per variant into one results dict, and reads
per-seed values out of it."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def learning() -> Any:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module("learning")
    finally:
        sys.path.remove(str(BENCHMARKS))


def part(seeds: list[int], labels: list[str]) -> dict[str, Any]:
    return {
        "seeds": seeds,
        "controllers": [{"label": label} for label in labels],
        "comparisons": [
            {"minuend": label, "subtrahend": "static", "metric": "test_accuracy"}
            for label in labels
            if label != "static"
        ],
        "episodes": [{"controller": label, "seed": s} for label in labels for s in seeds],
    }


def test_baselines_evaluated_in_every_part_appear_once(learning: Any) -> None:
    merged = learning.merge_results(
        [part([7, 8], ["static", "ppo:a@0"]), part([7, 8], ["static", "ppo:b@0"])]
    )
    assert [c["label"] for c in merged["controllers"]] == ["static", "ppo:a@0", "ppo:b@0"]
    assert len(merged["comparisons"]) == 2
    assert len(merged["episodes"]) == 6  # static's two episodes once, each policy's two


def test_evaluations_on_different_seeds_are_not_merged(learning: Any) -> None:
    with pytest.raises(SystemExit, match="different seeds"):
        learning.merge_results([part([7], ["static"]), part([8], ["static"])])


def test_episode_values_are_one_per_seed_in_seed_order(learning: Any) -> None:
    results = {
        "episodes": [
            {"controller": "ppo:a@40", "seed": 9, "outcome": {"episode_return": 2.0}},
            {"controller": "ppo:a@0", "seed": 8, "outcome": {"episode_return": 5.0}},
            {"controller": "ppo:a@40", "seed": 8, "outcome": {"episode_return": 1.0}},
        ]
    }
    assert learning.episode_values(results, "ppo:a@40") == [1.0, 2.0]
    assert learning.episode_values(results, "ppo:a@0") == [5.0]


def test_only_a_variant_that_changes_episodes_gets_baselines_of_its_own(learning: Any) -> None:
    assert learning.baseline_tag("lean", ["rent_weight=1.5", "contribution_weight=0.2"]) == ""
    assert learning.baseline_tag("fast", ["lr=0.01"]) == ""  # training only: same episodes
    assert learning.baseline_tag("budget", ["param_budget=78"]) == " (budget)"
    assert learning.baseline_tag("r0c1", ["slots=r0c1", "rent_weight=1"]) == " (r0c1)"


def test_a_tagged_variants_baselines_keep_apart_when_merged(learning: Any) -> None:
    shipped = learning.relabeled(part([7], ["static", "heuristic", "ppo@0"]), "a", "")
    budget = learning.relabeled(part([7], ["static", "plan:norm@r0c0", "ppo@0"]), "b", " (b)")
    merged = learning.merge_results([shipped, budget])
    labels = [c["label"] for c in merged["controllers"]]
    assert labels == [
        "static",
        "heuristic",
        "ppo:a@0",
        "static (b)",
        "plan:norm@r0c0 (b)",
        "ppo:b@0",
    ]
    assert {(c["minuend"], c["subtrahend"]) for c in merged["comparisons"]} == {
        ("heuristic", "static"),
        ("ppo:a@0", "static"),
        ("plan:norm@r0c0 (b)", "static (b)"),
        ("ppo:b@0", "static (b)"),
    }
    assert len(merged["episodes"]) == 6


def test_a_variant_with_its_own_envs_trains_and_searches_with_them(learning: Any) -> None:
    """`--train "x:n_envs=8"` must reach `esper train` as `--envs 8` (a `--set n_envs` beside
    `--envs` is refused there) and give its plan search rounds x 8 episodes."""
    args = argparse.Namespace(envs=4, rounds=40)
    own = ["rent_weight=1.5", " n_envs=8", "minibatch_envs=2"]
    assert learning.envs_of(args, own) == 8
    assert learning.envs_of(args, ["rent_weight=1.5"]) == 4
    assert learning._set_flags(own) == ["--set", "rent_weight=1.5", "--set", "minibatch_envs=2"]
