"""End to end on digits: scripted controllers take seeds through every stage, and the events, the
model and the episode's outcome tell the same story.

The controllers are scripted (`PlanPolicy`), so which stages a seed visits does not depend on how
training went: these tests hold on any machine and at any thread count.
"""

from collections import defaultdict
from typing import Any

from esper.kasmina import get_blueprint
from esper.leyline import Stage, Tempo
from esper.leyline.actions import HEURISTIC_TEMPO
from esper.nissa import MemorySink, TelemetryHub
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.episodes import EpisodeRecord, run_episodes
from esper.tamiyo.heuristic import HeuristicConfig, epochs_to_judge
from esper.tamiyo.policy import PlanPolicy
from esper.tolaria import get_task
from esper.tolaria.data import DataSplits

PLAN = (("r0c0", "conv_light"), ("r0c1", "depthwise"))
FULL_LIFECYCLE = ["GERMINATED", "TRAINING", "BLENDING", "HOLDING", "FOSSILIZED"]


def play(
    data: DataSplits, plan: tuple[tuple[str, str], ...], episode_length: int, seed: int = 3
) -> tuple[MorphogeneticEnv, EpisodeRecord, list[dict[str, Any]]]:
    """One `PlanPolicy` episode; the env afterwards, its record and its telemetry events."""
    sink = MemorySink()
    config = EnvConfig(episode_length=episode_length, illegal_action="raise")
    env = MorphogeneticEnv(get_task("digits"), data, config)
    (record,) = run_episodes(PlanPolicy(plan), [env], [seed], TelemetryHub([sink]))
    return env, record, [{"type": e.type, "epoch": e.epoch, **e.payload} for e in sink.events]


def test_a_plan_takes_every_seed_through_the_whole_lifecycle(digits: DataSplits) -> None:
    env, record, events = play(digits, PLAN, episode_length=10)

    assert [e["epoch"] for e in events if e["type"] == "epoch"] == list(range(1, 11))
    stages: dict[str, list[str]] = defaultdict(list)
    for event in (e for e in events if e["type"] == "lifecycle"):
        stages[event["slot_id"]].append(event["to_stage"])
    assert dict(stages) == {slot: FULL_LIFECYCLE for slot, _ in PLAN}

    model = env.session.model
    fossils = [s for s in model.seed_slots() if s.stage == Stage.FOSSILIZED]
    assert sorted(s.slot_id for s in fossils) == sorted(slot for slot, _ in PLAN)
    assert record.outcome.seeds_fossilized == len(fossils) == len(PLAN)
    assert record.outcome.seeds_pruned == 0
    assert sorted(record.outcome.grown) == sorted(f"{bp}@{slot}" for slot, bp in PLAN)
    widths = {spec.slot_id: spec.width for spec in model.specs}
    planned_params = sum(get_blueprint("cnn", bp).param_count(widths[s]) for s, bp in PLAN)
    assert record.outcome.params_added == sum(s.seed_params for s in fossils) == planned_params


def test_the_heuristics_time_to_judge_is_the_lifecycles(digits: DataSplits) -> None:
    """The heuristic germinates only with `epochs_to_judge` epochs left. A plan that moves at the
    heuristic's fastest pace (one epoch in TRAINING, the same FAST blend) fossilizes on the very
    last step of an episode that long, and cannot in one epoch less."""
    assert Tempo.FAST == HEURISTIC_TEMPO  # the blend tempo PlanPolicy plants with
    horizon = epochs_to_judge(HeuristicConfig(advance_min_epochs=1))
    plan = PLAN[:1]

    _, record, events = play(digits, plan, episode_length=horizon)
    fossilized = [e for e in events if e.get("to_stage") == "FOSSILIZED"]
    assert [e["epoch"] for e in fossilized] == [horizon]
    assert record.outcome.seeds_fossilized == 1

    _, record, events = play(digits, plan, episode_length=horizon - 1)
    assert [e["to_stage"] for e in events if e["type"] == "lifecycle"] == FULL_LIFECYCLE[:-1]
    assert record.outcome.seeds_fossilized == 0
