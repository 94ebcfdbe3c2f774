"""Phase timing (issue 12, item 5): disjoint phases, shadow passes timed apart from training."""

from __future__ import annotations

import time

import pytest

from esper.leyline import FactoredAction
from esper.tolaria import HostSession, get_task
from esper.tolaria.data import load_digits
from esper.tolaria.grouped import train_epochs
from esper.tolaria.timing import PhaseClock


def test_the_cpu_clock_adds_up_phases_and_nests() -> None:
    clock = PhaseClock("cpu")
    assert not clock.is_cuda
    with clock.phase("outer"):
        time.sleep(0.01)
        with clock.phase("inner"):
            time.sleep(0.01)
    with clock.phase("inner"):
        time.sleep(0.01)
    seconds = clock.seconds()
    assert set(seconds) == {"outer", "inner"}
    assert seconds["outer"] >= 0.02 and seconds["inner"] >= 0.02
    assert seconds["outer"] < seconds["inner"] + 0.02  # outer holds one of the two inner


def test_a_phase_that_raises_is_still_timed() -> None:
    clock = PhaseClock("cpu")
    with pytest.raises(RuntimeError), clock.phase("failing"):
        raise RuntimeError("boom")
    assert "failing" in clock.seconds()


def test_an_epoch_reports_shadow_passes_only_while_a_seed_is_invisible() -> None:
    session = HostSession(get_task("digits"), load_digits())
    session.reset(0)
    session.boundary()
    plain = session.train_and_evaluate().timing
    assert set(plain) == {"host_training", "shadow_passes", "evaluation"}
    assert plain["shadow_passes"] == 0 and plain["host_training"] > 0 < plain["evaluation"]
    session.apply(FactoredAction.germinate("r0c0", "conv_light"))
    session.boundary()
    shadowed = session.train_and_evaluate().timing
    assert shadowed["shadow_passes"] > 0 and shadowed["host_training"] > 0


def test_a_vmapped_group_shares_its_phases_among_its_members(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = load_digits()
    sessions = [HostSession(get_task("digits"), data) for _ in range(2)]
    for seed, session in enumerate(sessions):
        session.reset(seed)
        session.apply(FactoredAction.germinate("r0c0", "conv_light"))
    # the group's clock reads 10 s for the epoch, 4 of them shadow passes
    monkeypatch.setattr(PhaseClock, "seconds", lambda self: {"epoch": 10.0, "shadow_passes": 4.0})
    (_, first), (_, second) = train_epochs(sessions)
    assert first == second == {"host_training": 3.0, "shadow_passes": 2.0}
    first["host_training"] = 0.0
    assert second["host_training"] == 3.0  # each member its own record
