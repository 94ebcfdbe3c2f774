import json

import pytest

from esper.leyline import EpochMetrics
from esper.tamiyo.tracker import SignalTracker, TrackerConfig

# (epoch, val_loss, val_accuracy); train numbers are passed through unchanged.
EPISODE = [
    (1, 2.0, 20.0),
    (2, 1.0, 50.0),  # loss halves: not settled; best beaten by 30 pp: not flat
    (3, 0.99, 50.3),  # loss -1%: settled 1; best beaten by only 0.3 pp: flat 1
    (4, 0.985, 50.0),  # settled 2; below the best: flat 2
    (5, 1.2, 52.0),  # loss rose: settled 3 -> latched; best beaten by 1.7 pp: plateau reset
    (6, 0.5, 52.2),  # loss -58%: not settled, but the latch holds; flat 1
]


def run(tracker: SignalTracker, episode: list[tuple[int, float, float]]) -> list[EpochMetrics]:
    return [tracker.update(e, loss + 0.1, acc - 1.0, loss, acc) for e, loss, acc in episode]


def test_reference_values() -> None:
    metrics = run(SignalTracker(), EPISODE)
    assert [m.plateau_epochs for m in metrics] == [0, 0, 1, 2, 0, 1]
    assert [m.is_stabilized for m in metrics] == [False, False, False, False, True, True]
    assert [m.best_val_accuracy for m in metrics] == [20.0, 50.0, 50.3, 50.3, 52.0, 52.2]
    deltas = [(m.val_loss_delta, m.val_accuracy_delta) for m in metrics]
    expected = [(0.0, 0.0), (-1.0, 30.0), (-0.01, 0.3), (-0.005, -0.3), (0.215, 2.0), (-0.7, 0.2)]
    for got, want in zip(deltas, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-12)
    first = metrics[0]
    assert (first.epoch, first.train_loss, first.train_accuracy) == (1, 2.1, 19.0)
    assert (first.val_loss, first.val_accuracy) == (2.0, 20.0)


def test_plateau_resets_on_a_new_best_by_exactly_the_bar() -> None:
    tracker = SignalTracker(TrackerConfig(plateau_pp=0.5))
    metrics = run(tracker, [(1, 1.0, 50.0), (2, 1.0, 50.4), (3, 1.0, 50.9), (4, 1.0, 50.9)])
    assert [m.plateau_epochs for m in metrics] == [0, 1, 0, 1]


def test_plateau_counts_against_the_best_not_the_previous_epoch() -> None:
    # 48 -> 49 -> 49.75 gains >= plateau_pp over each previous epoch, but only recovers from a
    # dip below the best of 50: still flat. 50.5 beats the best by the bar and resets it.
    accuracies = [50.0, 48.0, 49.0, 49.75, 50.5, 50.75]
    episode = [(e, 1.0, a) for e, a in enumerate(accuracies, start=1)]
    metrics = run(SignalTracker(TrackerConfig(plateau_pp=0.5)), episode)
    assert [m.val_accuracy_delta for m in metrics[2:4]] == [1.0, 0.75]
    assert [m.plateau_epochs for m in metrics] == [0, 1, 2, 3, 0, 1]


def test_stabilization_needs_consecutive_settled_epochs() -> None:
    # settled, not settled, settled, settled: never three in a row
    losses = [1.0, 0.99, 0.5, 0.495, 0.49]
    metrics = run(SignalTracker(), [(e, v, 50.0) for e, v in enumerate(losses, start=1)])
    assert not any(m.is_stabilized for m in metrics)
    metrics = run(SignalTracker(), [(e, 1.0, 50.0) for e in range(1, 5)])
    assert [m.is_stabilized for m in metrics] == [False, False, False, True]


def test_a_loss_at_zero_counts_as_settled() -> None:
    metrics = run(SignalTracker(TrackerConfig(stabilize_epochs=1)), [(1, 0.0, 100), (2, 0.0, 100)])
    assert metrics[-1].is_stabilized


def test_histories_keep_the_last_values_as_tuples() -> None:
    tracker = SignalTracker(TrackerConfig(history=3))
    run(tracker, EPISODE)
    assert tracker.accuracy_history == (50.0, 52.0, 52.2)
    assert tracker.loss_history == (0.985, 1.2, 0.5)


def test_reset_starts_a_new_episode() -> None:
    tracker = SignalTracker()
    run(tracker, EPISODE)
    tracker.reset()
    assert tracker.accuracy_history == ()
    assert run(tracker, EPISODE) == run(SignalTracker(), EPISODE)


def test_state_round_trip_continues_exactly() -> None:
    whole = SignalTracker(TrackerConfig(history=4))
    expected = run(whole, EPISODE)
    first = SignalTracker(TrackerConfig(history=4))
    run(first, EPISODE[:4])
    resumed = SignalTracker(TrackerConfig(history=4))
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert resumed.state_dict() == first.state_dict()
    assert run(resumed, EPISODE[4:]) == expected[4:]
    assert resumed.state_dict() == whole.state_dict()


def test_load_refuses_a_bad_state() -> None:
    tracker = SignalTracker(TrackerConfig(history=2))
    state = SignalTracker().state_dict()
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        tracker.load_state_dict({**state, "extra": 1})
    with pytest.raises(ValueError, match="history=2"):
        tracker.load_state_dict({**state, "accuracy_history": [1.0] * 3, "loss_history": [1.0] * 3})


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((2, 1.0, 50.0, 1.0, 50.0), "epoch must increase"),
        ((3, float("nan"), 50.0, 1.0, 50.0), "train_loss"),
        ((3, 1.0, 50.0, -1.0, 50.0), "val_loss"),
        ((3, 1.0, 50.0, 1.0, 150.0), "val_accuracy"),
    ],
)
def test_update_rejects_bad_inputs(
    args: tuple[int, float, float, float, float], match: str
) -> None:
    tracker = SignalTracker()
    tracker.update(2, 1.0, 50.0, 1.0, 50.0)
    with pytest.raises(ValueError, match=match):
        tracker.update(*args)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="stabilize_epochs"):
        TrackerConfig(stabilize_epochs=0)
    with pytest.raises(ValueError, match="history"):
        TrackerConfig(history=0)
