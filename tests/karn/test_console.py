import statistics
import subprocess
import sys
from typing import Any

import pytest
from rich.console import Console

from esper.karn.console import ROUND_LINE_LEGEND, ConsoleSink, seeds_by_stage, summary_table
from esper.leyline.events import (
    EpisodeEvent,
    EpochEvent,
    Event,
    EventContext,
    Initiator,
    LifecycleEvent,
    RewardEvent,
    RollbackEvent,
    RoundEvent,
    RunEndEvent,
    RunStartEvent,
)
from esper.leyline.signals import EpisodeOutcome, EpochMetrics
from esper.leyline.stages import Stage

TEST_ACCURACIES = [91.25, 88.5]


def context(env: int = 0) -> EventContext:
    return EventContext(run="demo", group="A", env=env)


def metrics(epoch: int, val_accuracy: float) -> EpochMetrics:
    return EpochMetrics(
        epoch=epoch,
        train_loss=0.5,
        train_accuracy=80.0,
        val_loss=0.6,
        val_accuracy=val_accuracy,
        val_loss_delta=0.0,
        val_accuracy_delta=0.0,
        best_val_accuracy=val_accuracy,
        plateau_epochs=0,
        is_stabilized=False,
    )


def epoch_event(env: int, epoch: int, stages: dict[str, str], action: str, reward: float) -> Event:
    payload = EpochEvent(
        metrics=metrics(epoch, 70.0 + epoch),
        stages=stages,
        alphas={slot: 0.5 for slot in stages},
        action=action,
        reward=reward,
        seed_params=1_000,
    )
    return Event.wrap(payload, context(env), epoch)


def episode_event(episode: int, env: int, test_accuracy: float) -> Event:
    outcome = EpisodeOutcome(
        test_accuracy=test_accuracy,
        val_accuracy=test_accuracy + 1.0,
        host_params=20_000,
        params_added=1_500 * (episode + 1),
        seeds_fossilized=episode + 1,
        seeds_pruned=1,
        episode_return=2.5 + episode,
    )
    payload = EpisodeEvent(
        episode=episode,
        seed=100 + episode,
        controller="heuristic",
        outcome=outcome,
        growth_ratio=outcome.growth_ratio,
        wall_time_s=12.0 + episode,
    )
    return Event.wrap(payload, context(env), epoch=3)


def run_events() -> list[Event]:
    """A small two-episode heuristic run with a fossilization, a prune and a rollback."""
    start = RunStartEvent(
        command="train heuristic",
        task="digits",
        controller="heuristic",
        episodes=2,
        envs=1,
        config={},
    )
    events = [Event.wrap(start, context(), epoch=0)]
    for episode, test_accuracy in enumerate(TEST_ACCURACIES):
        events += [
            epoch_event(0, 1, {"r0c0": "GERMINATED"}, "GERMINATE r0c0 conv_light", 0.1),
            epoch_event(0, 2, {"r0c0": "TRAINING", "r0c1": "DORMANT"}, "WAIT", -0.05),
            Event.wrap(RewardEvent(terms={"accuracy": 0.2}, total=0.2), context(), epoch=2),
            Event.wrap(
                LifecycleEvent(
                    slot_id="r0c0",
                    from_stage=Stage.HOLDING,
                    to_stage=Stage.FOSSILIZED,
                    reason="contribution 1.3 pp [gate G3]",
                    initiator=Initiator.CONTROLLER,
                    blueprint="conv_light",
                ),
                context(),
                epoch=3,
            ),
            Event.wrap(
                LifecycleEvent(
                    slot_id="r0c1",
                    from_stage=Stage.GERMINATED,
                    to_stage=Stage.TRAINING,
                    reason="gate G1 passed",
                    initiator=Initiator.AUTOMATIC,
                ),
                context(),
                epoch=3,
            ),
            episode_event(episode, 0, test_accuracy),
        ]
    rollback = RollbackEvent(reason="loss is not finite", loss=float("inf"), pruned_slots=("r1c0",))
    events.insert(3, Event.wrap(rollback, context(), epoch=2))
    events.append(Event.wrap(RunEndEvent(status="completed", wall_time_s=30.0), context(), 0))
    return events


def recording_console() -> Console:
    return Console(record=True, width=160)


def play(sink: ConsoleSink, events: list[Event]) -> None:
    for event in events:
        sink.write(event)


def test_plain_run_prints_episode_lines_logs_and_summary() -> None:
    console = recording_console()
    sink = ConsoleSink(console, live=False)
    play(sink, run_events())
    sink.close()
    text = console.export_text()

    assert "run demo: train heuristic on digits, 2 episodes in 1 env" in text
    assert "episode 0 env 0 seed 100 heuristic: test 91.25%" in text
    assert "episode 1 env 0 seed 101 heuristic: test 88.50%" in text
    assert "env 0 epoch 2  governor rollback: loss is not finite (loss inf); pruned r1c0" in text
    assert "fossilized r0c0 conv_light by controller: contribution 1.3 pp [gate G3]" in text
    assert "gate G1 passed" not in text  # only fossilize and prune get a log line

    summary = text[text.index("Episodes") :]
    rows = {line.split()[0]: line for line in summary.splitlines() if line.split()[:1]}
    for cell in ["0", "100", "heuristic", "91.25", "20,000", "1,500", "1.075x", "1 / 1"]:
        assert cell in rows["0"]
    for cell in ["101", "88.50", "3,000", "1.150x", "2 / 1", "3.500", "13.0 s"]:
        assert cell in rows["1"]
    mean_cells = ["89.88", "2,250", "1.112x", "1.5 / 1.0", "3.000", "12.5 s"]
    assert all(cell in rows["mean"] for cell in mean_cells)
    assert f"{statistics.stdev(TEST_ACCURACIES):.2f}" in rows["std"]
    assert "run completed in 30.0 s" in summary


def test_summary_is_printed_once_and_close_is_idempotent() -> None:
    console = recording_console()
    sink = ConsoleSink(console, live=False)
    play(sink, run_events())  # ends with run_end, which prints the summary
    sink.close()
    sink.close()
    assert console.export_text().count("Episodes") == 1


def test_close_without_run_end_prints_the_summary() -> None:
    console = recording_console()
    sink = ConsoleSink(console, live=False)
    play(sink, run_events()[:-1])
    sink.close()
    text = console.export_text()
    assert "mean" in text
    assert "run completed" not in text


def test_close_before_any_episode_says_so() -> None:
    console = recording_console()
    sink = ConsoleSink(console, live=False)
    sink.close()
    assert "no episode finished" in console.export_text()


def test_write_after_close_raises() -> None:
    sink = ConsoleSink(recording_console(), live=False)
    sink.close()
    with pytest.raises(RuntimeError, match="after close"):
        sink.write(run_events()[0])


@pytest.mark.parametrize("is_terminal", [False, True])
def test_live_display_on_a_recording_console_does_not_crash(is_terminal: bool) -> None:
    console = Console(record=True, width=160, force_terminal=is_terminal)
    sink = ConsoleSink(console, live=True)
    play(sink, run_events())
    sink.close()
    sink.close()
    text = console.export_text()
    assert "governor rollback" in text
    assert "91.25" in text
    assert "episode 0 env 0" not in text  # live mode draws the table instead of episode lines


def test_live_table_shows_latest_epoch_per_env() -> None:
    sink = ConsoleSink(recording_console(), live=False)
    sink.write(epoch_event(1, 1, {"r0c0": "GERMINATED"}, "GERMINATE r0c0 conv_light", 0.25))
    sink.write(epoch_event(1, 2, {"r0c0": "TRAINING", "r1c0": "FOSSILIZED"}, "WAIT", -0.5))
    wide = Console(record=True, width=160)
    wide.print(sink._env_table())
    line = next(line for line in wide.export_text().splitlines() if "WAIT" in line)
    cells = [cell.strip() for cell in line.split("│")[1:-1]]
    assert cells == ["1", "0", "2", "72.00", "T1 F1", "WAIT", "-0.500", "-0.250"]


def test_default_live_follows_the_terminal() -> None:
    assert ConsoleSink(Console(force_terminal=True)).is_live
    assert not ConsoleSink(Console(force_terminal=False)).is_live


def test_seeds_by_stage_counts_in_lifecycle_order() -> None:
    stages = {
        "a": "FOSSILIZED",
        "b": "TRAINING",
        "c": "FOSSILIZED",
        "d": "DORMANT",
        "e": "BLENDING",
    }
    assert seeds_by_stage(stages) == "T1 B1 F2"
    assert seeds_by_stage({"a": "DORMANT"}) == "-"
    with pytest.raises(KeyError):
        seeds_by_stage({"a": "SPROUTING"})


def test_summary_table_means_per_controller() -> None:
    def payload(controller: str, test_accuracy: float) -> dict[str, Any]:
        return {
            "episode": 0,
            "seed": 1,
            "controller": controller,
            "outcome": {
                "test_accuracy": test_accuracy,
                "host_params": 100,
                "params_added": 0,
                "seeds_fossilized": 0,
                "seeds_pruned": 0,
                "episode_return": 0.0,
            },
            "growth_ratio": 1.0,
            "wall_time_s": 1.0,
        }

    table = summary_table([payload("static", 50.0), payload("ppo", 60.0), payload("ppo", 70.0)])
    console = recording_console()
    console.print(table)
    text = console.export_text()
    means = [line for line in text.splitlines() if "mean" in line]
    assert len(means) == 2
    assert "static" in means[0] and "50.00" in means[0]
    assert "ppo" in means[1] and "65.00" in means[1]
    assert text.count("std") == 1  # only ppo has more than one episode


def test_console_sink_does_not_import_torch() -> None:
    # A clean interpreter: this test process may have imported torch already.
    code = "import sys, esper.karn.console; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_a_ppo_run_header_counts_rounds_and_the_round_line_is_explained() -> None:
    """The header said "train ppo ppo on digits, 5 episodes" for 5 rounds, and the round line's
    columns were explained nowhere."""
    console = Console(record=True, width=200)
    sink = ConsoleSink(console, live=False)
    start = RunStartEvent("train ppo", "digits", "ppo", 20, 4, {}, rounds=5)
    sink.write(Event.wrap(start, context(), epoch=0))
    text = console.export_text()
    assert "train ppo on digits, 5 rounds x 4 envs (20 episodes)" in text
    for column in ("ret =", "W G A S F P", "H =", "kl =", "clip =", "EV ="):
        assert column in ROUND_LINE_LEGEND


def test_the_round_line_shows_where_the_time_went() -> None:
    console = Console(record=True, width=200)
    sink = ConsoleSink(console, live=False)
    timing = {
        "reset": 0.2,
        "action": 0.1,
        "host_training": 5.0,
        "shadow_passes": 1.0,
        "evaluation": 2.0,
        "policy_forward": 0.5,
        "ppo_update": 1.0,
        "telemetry": 0.2,
    }
    ops = {"WAIT": 3, "GERMINATE": 1}
    record = RoundEvent(60.0, 80.0, 79.5, 120.0, ops, timing)
    sink.write(Event.wrap(record, context(), epoch=0))
    first, second = console.export_text().strip().splitlines()[-2:]
    assert first.endswith("| 10.0s"), first
    assert second.endswith("| tr50 sh10 ev20 pol5 ppo10%"), second
    for short in ("(tr)", "(sh)", "(ev)", "(pol)", "(ppo)"):
        assert short in ROUND_LINE_LEGEND


def test_both_round_lines_fit_in_100_columns_even_with_large_figures() -> None:
    console = Console(record=True, width=300)  # wide: the lines themselves must be short
    sink = ConsoleSink(console, live=False)
    update = {"entropy": {"op": 0.123}, "approx_kl": 0.0123, "clip_fraction": 0.45}
    update |= {"explained_variance": -12.34}
    sink._last_update = update
    # 64 envs x 25 epochs: 1,600 choices a round; a return near -1000; 5-digit growth
    ops = {"WAIT": 1000, "GERMINATE": 300, "ADVANCE": 200, "SET_ALPHA_TARGET": 50}
    ops |= {"FOSSILIZE": 30, "PRUNE": 20}
    timing = {"host_training": 12345.6, "shadow_passes": 1.0, "ppo_update": 2.0}
    record = RoundEvent(-987.65, 99.9, 100.0, 12345.0, ops, timing, compiled_graphs=999)
    sink.write(Event.wrap(record, EventContext(run="r", group="g", round=9999), epoch=0))
    lines = console.export_text().rstrip().splitlines()[-2:]
    assert lines[0].startswith("round 9999") and "999 compiled" in lines[1]
    assert max(len(line) for line in lines) <= 100, lines


def test_a_ppo_run_shows_the_rounds_env_steps_and_an_eta() -> None:
    console = Console(record=True, width=200, force_terminal=True)
    sink = ConsoleSink(console, live=False)
    start = RunStartEvent("train ppo", "digits", "ppo", 4, 2, {}, rounds=2, episode_length=3)
    sink.write(Event.wrap(start, context(), epoch=0))
    progress = sink._progress
    steps = progress.tasks[sink._steps]
    assert steps.visible and steps.total == 6  # 2 envs x 3 epochs
    for env in (0, 1):
        record = EpochEvent(metrics(1, 50.0), {}, {}, "WAIT", 0.0, 0)
        sink.write(Event.wrap(record, context(env), epoch=1))
    assert progress.tasks[sink._steps].completed == 2
    round_record = RoundEvent(1.0, 50.0, 50.0, 0.0, {}, {"host_training": 1.0})
    sink.write(Event.wrap(round_record, context(), epoch=3))
    assert progress.tasks[sink._steps].completed == 0  # the next round starts from none
    assert progress.tasks[sink._task].completed == 1
    assert any(type(c).__name__ == "TimeRemainingColumn" for c in progress.columns)


def test_quiet_prints_no_line_per_round_or_episode() -> None:
    console = Console(record=True, width=200)
    sink = ConsoleSink(console, live=True, quiet=True)
    assert not sink.is_live
    start = RunStartEvent("train ppo", "digits", "ppo", 4, 2, {}, rounds=2, episode_length=3)
    sink.write(Event.wrap(start, context(), epoch=0))
    round_record = RoundEvent(1.0, 50.0, 50.0, 0.0, {}, {"host_training": 1.0})
    sink.write(Event.wrap(round_record, context(), epoch=3))
    sink.close()
    text = console.export_text()
    assert "train ppo on digits" in text and "round    0" not in text


def test_an_ab_round_line_names_its_arm_within_100_columns() -> None:
    console = Console(record=True, width=300)
    sink = ConsoleSink(console, live=False)
    config_ = {"ab": ["a-very-long-arm-name-indeed", "b"]}
    start = RunStartEvent("train ppo", "digits", "ppo", 8, 4, config_, rounds=2, episode_length=3)
    sink.write(Event.wrap(start, context(), epoch=0))
    assert sink._progress.tasks[sink._task].total == 4  # 2 rounds x 2 arms
    sink._last_update = {"entropy": {"op": 0.12}, "approx_kl": 0.0123, "clip_fraction": 0.45}
    sink._last_update |= {"explained_variance": -12.34}
    ops = {"WAIT": 1000, "GERMINATE": 300, "ADVANCE": 200, "SET_ALPHA_TARGET": 50}
    timing = {"host_training": 12345.6, "shadow_passes": 1.0, "ppo_update": 2.0}
    record = RoundEvent(-987.65, 99.9, 100.0, 12345.0, ops, timing, compiled_graphs=999)
    group = EventContext(run="r", group="a-very-long-arm-name-indeed", round=9999)
    sink.write(Event.wrap(record, group, epoch=0))
    lines = console.export_text().rstrip().splitlines()[-2:]
    assert lines[1].startswith("a-very-long-arm~: H")
    assert max(len(line) for line in lines) <= 100, lines


def test_a_resumed_runs_bar_starts_at_the_round_it_resumes_from() -> None:
    """The bar restarted at 0 on resume, so its ETA counted the done rounds again."""
    sink = ConsoleSink(Console(record=True, width=200), live=False)
    start = RunStartEvent("train ppo", "digits", "ppo", 20, 2, {}, rounds=10, first_round=6)
    sink.write(Event.wrap(start, context(), epoch=0))
    task = sink._progress.tasks[sink._task]
    assert (task.completed, task.total) == (6, 10)
