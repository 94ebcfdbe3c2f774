"""Held-out seeds and the evaluation's episodes."""

from __future__ import annotations

import pytest

from esper.nissa import MemorySink, TelemetryHub
from esper.simic.env_pool import job_pool
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.evaluation import ControllerSpec, evaluate_controllers, held_out_seeds
from esper.simic.trainer import TRAINING_SEED_LIMIT
from esper.tolaria import DataOptions, get_task
from esper.tolaria.data import DataSplits


def test_held_out_seeds_lie_where_training_never_goes() -> None:
    seeds = held_out_seeds(10)

    assert len(set(seeds)) == 10
    assert min(seeds) >= TRAINING_SEED_LIMIT


@pytest.mark.parametrize(("n", "base"), [(0, TRAINING_SEED_LIMIT), (3, TRAINING_SEED_LIMIT - 1)])
def test_held_out_seeds_refuse_no_seeds_or_training_seeds(n: int, base: int) -> None:
    with pytest.raises(ValueError):
        held_out_seeds(n, base)


def test_every_controller_plays_the_same_seeds(digits: DataSplits) -> None:
    task = get_task("digits")
    seeds = held_out_seeds(2)
    specs = [
        ControllerSpec("static", "static"),
        ControllerSpec("heuristic", "heuristic"),
        ControllerSpec("static", "static again"),
    ]

    result = evaluate_controllers(
        specs,
        lambda spec: MorphogeneticEnv(
            task, digits, EnvConfig(episode_length=3, illegal_action="raise")
        ),
        seeds,
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


def test_an_evaluation_on_worker_processes_plays_the_same_episodes(digits: DataSplits) -> None:
    """One controller per worker, its seeds in order: the random controller, whose generator
    runs on from episode to episode, ends each episode as it does here (issue 11, item 5)."""
    task = get_task("digits")
    seeds = held_out_seeds(3)
    specs = [
        ControllerSpec("random", "random"),
        ControllerSpec("heuristic", "heuristic"),
        ControllerSpec("plan", "plan", plan="norm@r0c0"),
    ]

    def make_env(spec: ControllerSpec) -> MorphogeneticEnv:
        return MorphogeneticEnv(task, digits, EnvConfig(episode_length=4, illegal_action="raise"))

    here = evaluate_controllers(specs, make_env, seeds)
    sink = MemorySink()
    with job_pool("process", "digits", DataOptions(), 2, len(specs)) as pool:
        there = evaluate_controllers(specs, make_env, seeds, TelemetryHub([sink]), pool)
    for label in here.records:
        assert [(r.seed, r.outcome) for r in here.records[label]] == [
            (r.seed, r.outcome) for r in there.records[label]
        ]
    assert len([e for e in sink.events if e.type == "episode"]) == len(specs) * len(seeds)
