"""End to end: the heuristic grows digits hosts over full default-length episodes."""

from esper.kasmina import blueprint_names
from esper.leyline import Stage
from esper.nissa import MemorySink, TelemetryHub
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.episodes import run_episodes
from esper.tamiyo.policy import HeuristicPolicy
from esper.tolaria import get_task
from esper.tolaria.data import DataSplits

SEEDS = (100, 101, 102)


def fossilizations(
    data: DataSplits, seeds: tuple[int, ...]
) -> dict[int, list[tuple[str, float | None]]]:
    """Play one heuristic episode per seed; per seed, (slot, measured contribution) of every
    seed fossilized in it."""
    task = get_task("digits")
    sink = MemorySink()
    env = MorphogeneticEnv(task, data, EnvConfig(), TelemetryHub([sink]))
    assert env.config.episode_length == task.episode_length == 25
    policy = HeuristicPolicy(blueprint_names(env.session.model.topology))
    found = {}
    for seed in seeds:
        first_event = len(sink.events)
        (record,) = run_episodes(policy, [env], [seed])
        events = [e.payload for e in sink.events[first_event:] if e.type == "lifecycle"]
        fossil_events = [p["slot_id"] for p in events if p["to_stage"] == "FOSSILIZED"]
        fossils = [s for s in env.session.model.seed_slots() if s.stage == Stage.FOSSILIZED]
        assert sorted(fossil_events) == sorted(s.slot_id for s in fossils)
        assert record.outcome.seeds_fossilized == len(fossils)
        visible = [s for s in env.session.model.seed_slots() if s.is_live and s.alpha > 0]
        assert record.outcome.grown == tuple(f"{s.blueprint}@{s.slot_id}" for s in visible)
        assert record.outcome.params_added == sum(s.seed_params for s in visible)
        # A fossil is never measured again, so its slot keeps the contribution it was kept on.
        found[seed] = [(s.slot_id, s.measured.contribution) for s in fossils]
    return found


def test_the_heuristic_fossilizes_seeds_on_measured_positive_contributions(
    digits: DataSplits,
) -> None:
    found = fossilizations(digits, SEEDS)

    per_seed = {seed: len(fossils) for seed, fossils in found.items()}
    assert sum(per_seed.values()) >= 1, f"fossilized per seed: {per_seed}"
    for seed, fossils in found.items():
        for slot_id, contribution in fossils:
            assert contribution is not None and contribution > 0, (seed, slot_id)
