"""Evaluation: controller specs, held-out seeds, bootstrap intervals, paired runs, results files."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from esper.leyline import EpisodeOutcome
from esper.simic.config import TrainingConfig
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.episodes import EpisodeRecord
from esper.simic.evaluation import (
    ControllerSpec,
    EvaluationResult,
    bootstrap_ci,
    evaluate_controllers,
    evaluation_env_config,
    held_out_seeds,
    most_common_growth,
    paired_bootstrap_ci,
    parse_controllers,
    summarize,
    with_reward_of,
    write_results,
)
from esper.simic.rewards import RewardMode
from esper.simic.trainer import TRAINING_SEED_LIMIT
from esper.tolaria import get_task
from esper.tolaria.data import DataSplits

# -- parse_controllers ------------------------------------------------------------------------


def test_parse_controllers_keeps_the_order_and_labels_one_ppo_as_ppo() -> None:
    specs = parse_controllers("static, random,heuristic,ppo:runs/2024-ppo-digits")

    assert specs == [
        ControllerSpec("static", "static"),
        ControllerSpec("random", "random"),
        ControllerSpec("heuristic", "heuristic"),
        ControllerSpec("ppo", "ppo", Path("runs/2024-ppo-digits")),
    ]


def test_several_ppo_controllers_are_labelled_by_their_run_directory() -> None:
    specs = parse_controllers("ppo:runs/a,ppo:runs/b/checkpoints/latest.pt")

    assert [s.label for s in specs] == ["ppo:a", "ppo:b"]
    assert specs[1].path == Path("runs/b/checkpoints/latest.pt")


def test_run_directory_timestamps_are_dropped_from_labels_when_names_stay_distinct() -> None:
    lean, default = "runs/20261125-191342-lean", "runs/20261125-193000-ppo-digits"
    assert [s.label for s in parse_controllers(f"ppo:{lean},ppo:{default}")] == [
        "ppo:lean",
        "ppo:ppo-digits",
    ]
    again = "runs/20261126-080000-ppo-digits"
    assert [s.label for s in parse_controllers(f"ppo:{default},ppo:{again}")] == [
        "ppo:20261125-193000-ppo-digits",
        "ppo:20261126-080000-ppo-digits",
    ]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("bogus", "'bogus'"),
        ("static,", "''"),
        ("ppo", "ppo:PATH"),
        ("ppo:", "ppo:PATH"),
        ("static,static", "static"),
        ("ppo:runs/a,ppo:other/a", "ppo:a"),
    ],
)
def test_bad_controller_lists_are_refused_naming_the_problem(text: str, named: str) -> None:
    with pytest.raises(ValueError, match="controller") as error:
        parse_controllers(text)
    assert named in str(error.value)


def test_an_unknown_controller_error_lists_the_allowed_forms() -> None:
    with pytest.raises(ValueError) as error:
        parse_controllers("static,heuristc")
    message = str(error.value)
    assert "'heuristc'" in message
    assert all(form in message for form in ("static", "random", "heuristic", "ppo:PATH"))


# -- held-out seeds ---------------------------------------------------------------------------


def test_held_out_seeds_lie_where_training_never_goes() -> None:
    seeds = held_out_seeds(10)

    assert len(set(seeds)) == 10
    assert min(seeds) >= TRAINING_SEED_LIMIT


@pytest.mark.parametrize(("n", "base"), [(0, TRAINING_SEED_LIMIT), (3, TRAINING_SEED_LIMIT - 1)])
def test_held_out_seeds_refuse_no_seeds_or_training_seeds(n: int, base: int) -> None:
    with pytest.raises(ValueError):
        held_out_seeds(n, base)


# -- bootstrap --------------------------------------------------------------------------------


def test_a_constant_sample_has_a_zero_width_interval_at_the_constant() -> None:
    mean, lo, hi = bootstrap_ci([0.1] * 7)

    assert lo == hi
    assert mean == pytest.approx(0.1, abs=1e-12) and lo == pytest.approx(0.1, abs=1e-12)


def test_the_interval_matches_the_normal_approximation_on_a_large_sample() -> None:
    """For n = 400 the bootstrap distribution of the mean is close to normal: the 95% interval
    is mean +- 1.96 s / sqrt(n) (with the plug-in, biased, standard deviation)."""
    sample = np.random.default_rng(1).normal(10.0, 2.0, size=400)

    mean, lo, hi = bootstrap_ci(sample)

    half_width = 1.96 * sample.std(ddof=0) / np.sqrt(sample.size)
    assert mean == pytest.approx(sample.mean())
    assert lo == pytest.approx(mean - half_width, abs=0.1 * half_width)
    assert hi == pytest.approx(mean + half_width, abs=0.1 * half_width)


def test_the_bootstrap_is_deterministic_given_its_seed() -> None:
    sample = np.random.default_rng(2).uniform(60, 80, size=30)

    assert bootstrap_ci(sample, seed=3) == bootstrap_ci(sample, seed=3)
    # Resampled means of 30 distinct values almost never tie, so the quantiles move.
    assert bootstrap_ci(sample, seed=3) != bootstrap_ci(sample, seed=4)


def test_pairing_finds_a_shift_that_the_spread_between_seeds_hides() -> None:
    """Seeds differ by up to 20 points; the controller adds 1.5 +- 0.2 on every one of them."""
    rng = np.random.default_rng(0)
    baseline = rng.uniform(60, 80, size=10)
    better = baseline + 1.5 + rng.normal(0, 0.2, size=10)

    mean, lo, hi = paired_bootstrap_ci(better, baseline)

    assert 0 < lo < 1.5 < hi
    assert mean == pytest.approx(float(np.mean(better - baseline)))
    _, lo_better, _ = bootstrap_ci(better)
    _, _, hi_baseline = bootstrap_ci(baseline)
    assert lo_better < hi_baseline  # the unpaired intervals overlap


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": []}, "non-empty"),
        ({"values": [1.0], "confidence": 1.0}, "confidence"),
        ({"values": [1.0], "n_resamples": 0}, "n_resamples"),
    ],
)
def test_bootstrap_refuses_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(**kwargs)


def test_paired_samples_must_pair_up() -> None:
    with pytest.raises(ValueError, match="same shape"):
        paired_bootstrap_ci([1.0, 2.0], [1.0])


# -- the evaluation env -----------------------------------------------------------------------


def test_without_ppo_the_env_is_a_default_training_env_for_the_task() -> None:
    config = evaluation_env_config("digits", {})

    assert config.episode_length == get_task("digits").episode_length
    assert evaluation_env_config("digits", {}, episode_length=4).episode_length == 4


def test_a_ppo_checkpoint_sets_the_episode_length_and_rewards_it_was_trained_with() -> None:
    trained = TrainingConfig(episode_length=7, reward_mode=RewardMode.SPARSE, device="cuda")

    config = evaluation_env_config("digits", {"ppo": trained}, device="cpu")

    assert config.episode_length == 7
    assert config.reward.mode == RewardMode.SPARSE
    assert config.session.device == "cpu"  # where we evaluate, not where it trained


def test_a_checkpoint_from_another_task_is_refused() -> None:
    with pytest.raises(ValueError, match="'stories'"):
        evaluation_env_config("digits", {"ppo": TrainingConfig(task="stories")})


def test_ppo_checkpoints_trained_in_different_settings_cannot_share_an_env() -> None:
    configs = {"ppo:a": TrainingConfig(episode_length=5), "ppo:b": TrainingConfig()}

    with pytest.raises(ValueError, match=r"ppo:a and ppo:b .*episode_length"):
        evaluation_env_config("digits", configs)


def test_checkpoints_trained_with_different_rewards_share_an_env_but_keep_their_rewards() -> None:
    lean = TrainingConfig(rent_weight=1.5, host_param_floor=300)
    configs = {"ppo:a": TrainingConfig(), "ppo:lean": lean}

    shared = evaluation_env_config("digits", configs)

    assert shared.reward.rent_weight == TrainingConfig().rent_weight
    assert with_reward_of(shared, None) == shared  # baselines
    own = with_reward_of(shared, lean)
    assert (own.reward.rent_weight, own.reward.host_param_floor) == (1.5, 300)
    assert replace(own, reward=shared.reward) == shared  # nothing else changes


# -- running ----------------------------------------------------------------------------------


def test_every_controller_plays_the_same_seeds(digits: DataSplits) -> None:
    task = get_task("digits")
    seeds = held_out_seeds(2)
    specs = [
        ControllerSpec("static", "static"),
        ControllerSpec("heuristic", "heuristic"),
        ControllerSpec("static", "static again"),
    ]

    result = evaluate_controllers(
        specs, lambda spec: MorphogeneticEnv(task, digits, EnvConfig(episode_length=3)), seeds
    )

    assert (result.task, result.episode_length, result.seeds) == ("digits", 3, tuple(seeds))
    assert list(result.records) == ["static", "heuristic", "static again"]
    for label, records in result.records.items():
        assert [r.seed for r in records] == seeds
        assert {r.controller for r in records} == {label}
    # reset() rebuilds everything from the seed: the same controller on a seed ends the same way.
    assert [r.outcome for r in result.records["static"]] == [
        r.outcome for r in result.records["static again"]
    ]
    assert all(r.outcome.params_added == 0 for r in result.records["static"])


# -- summary and results files ----------------------------------------------------------------


def record(controller: str, seed: int, accuracy: float, params_added: int = 0) -> EpisodeRecord:
    outcome = EpisodeOutcome(accuracy, accuracy, 1000, params_added, int(params_added > 0), 0)
    return EpisodeRecord(0, seed, controller, outcome, wall_time_s=1.0)


def synthetic_result() -> EvaluationResult:
    seeds = (TRAINING_SEED_LIMIT, TRAINING_SEED_LIMIT + 1, TRAINING_SEED_LIMIT + 2)
    base = {seeds[0]: 70.0, seeds[1]: 80.0, seeds[2]: 75.0}
    shifts = {"static": (0.0, 0), "heuristic": (1.0, 100), "ppo": (3.0, 50)}
    records = {
        label: tuple(
            record(label, s, base[s] + shift + 0.1 * i, added) for i, s in enumerate(seeds)
        )
        for label, (shift, added) in shifts.items()
    }
    return EvaluationResult("digits", 3, seeds, records)


def test_summary_compares_ppo_with_both_baselines_and_the_heuristic_with_static() -> None:
    summary = summarize(synthetic_result())

    assert [c.label for c in summary.controllers] == ["static", "heuristic", "ppo"]
    ppo = summary.controllers[2]
    assert ppo.test_accuracy.mean == pytest.approx(78.1)
    assert ppo.growth_ratio.mean == pytest.approx(1.05)
    assert ppo.seeds_fossilized.mean == 1.0
    pairs = [(c.minuend, c.subtrahend, c.metric) for c in summary.comparisons]
    assert pairs == [
        ("ppo", "heuristic", "test_accuracy"),
        ("ppo", "heuristic", "params_added"),
        ("ppo", "static", "test_accuracy"),
        ("ppo", "static", "params_added"),
        ("heuristic", "static", "test_accuracy"),
        ("heuristic", "static", "params_added"),
    ]
    ppo_vs_heuristic = summary.comparisons[0].difference
    assert ppo_vs_heuristic.mean == pytest.approx(2.0)
    assert ppo_vs_heuristic.excludes_zero  # +2 on every seed
    assert summary.comparisons[1].difference.mean == -50


def test_the_most_common_growth_is_named_with_its_count() -> None:
    result = synthetic_result()
    grown = [("conv_small@r0c0", "norm@r0c1"), ("conv_small@r0c0", "norm@r0c1"), ()]
    ppo = tuple(
        replace(r, outcome=replace(r.outcome, grown=g))
        for r, g in zip(result.records["ppo"], grown, strict=True)
    )
    summary = summarize(replace(result, records={**result.records, "ppo": ppo}))

    assert most_common_growth(summary, "ppo") == ("conv_small@r0c0+norm@r0c1", 2)
    assert most_common_growth(summary, "static") == ("none", 3)


def test_summary_refuses_records_that_do_not_pair_up() -> None:
    result = synthetic_result()
    shuffled = dict(result.records, ppo=result.records["ppo"][::-1])

    with pytest.raises(ValueError, match="ppo"):
        summarize(EvaluationResult("digits", 3, result.seeds, shuffled))


def test_json_results_round_trip(tmp_path: Path) -> None:
    summary = summarize(synthetic_result())
    path = tmp_path / "results.json"

    write_results(summary, path)

    data = json.loads(path.read_text())
    assert (data["task"], data["episode_length"], data["seeds"]) == (
        "digits",
        3,
        list(summary.seeds),
    )
    assert [c["label"] for c in data["controllers"]] == ["static", "heuristic", "ppo"]
    assert (
        data["controllers"][2]["test_accuracy"]["mean"] == summary.controllers[2].test_accuracy.mean
    )
    first = data["comparisons"][0]
    assert (first["minuend"], first["subtrahend"], first["excludes_zero"]) == (
        "ppo",
        "heuristic",
        True,
    )
    assert len(data["episodes"]) == 9
    assert data["episodes"][0]["outcome"]["test_accuracy"] == 70.0


def test_csv_results_round_trip(tmp_path: Path) -> None:
    summary = summarize(synthetic_result())
    path = tmp_path / "results.csv"

    write_results(summary, path)

    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    controllers = [r for r in rows if r["kind"] == "controller"]
    assert len(controllers) == 3 * 6  # every controller, every metric
    ppo_accuracy = next(
        r for r in controllers if (r["name"], r["metric"]) == ("ppo", "test_accuracy")
    )
    estimate = summary.controllers[2].test_accuracy
    assert [float(ppo_accuracy[k]) for k in ("mean", "lo", "hi")] == [
        estimate.mean,
        estimate.lo,
        estimate.hi,
    ]
    comparison = next(r for r in rows if r["kind"] == "comparison")
    assert (comparison["name"], comparison["excludes_zero"]) == ("ppo - heuristic", "True")


@pytest.mark.parametrize("name", ["results.txt", "missing/results.json"])
def test_results_go_to_json_or_csv_in_an_existing_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="results file"):
        write_results(summarize(synthetic_result()), tmp_path / name)
