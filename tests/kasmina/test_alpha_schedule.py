import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from esper.kasmina import AlphaSchedule, curve_fraction
from esper.leyline import Curve

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(start=unit, target=unit, steps=st.integers(0, 12), curve=st.sampled_from(list(Curve)))
def test_ramp_starts_at_start_ends_exactly_at_target_and_is_monotone(
    start: float, target: float, steps: int, curve: Curve
) -> None:
    schedule = AlphaSchedule(start, target, steps, curve)
    values = [schedule.value]
    for _ in range(steps):
        values.append(schedule.tick())
    if steps > 0:
        assert values[0] == start
    assert values[-1] == target  # exactly, not approximately
    assert not schedule.is_ramping
    sign = 1 if target >= start else -1
    assert all(sign * (b - a) >= -1e-12 for a, b in itertools.pairwise(values))
    assert schedule.tick() == target  # ticking past the end holds the target


def test_reference_values() -> None:
    assert curve_fraction(Curve.LINEAR, 0.25) == 0.25
    assert curve_fraction(Curve.COSINE, 0.5) == pytest.approx(0.5)
    assert curve_fraction(Curve.COSINE, 0.25) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    assert curve_fraction(Curve.SIGMOID, 0.5) == pytest.approx(0.5)
    assert curve_fraction(Curve.SIGMOID, 0.1) < 0.05  # steep: slow start


def test_retarget_refused_while_ramping_and_allowed_after() -> None:
    schedule = AlphaSchedule(0.0, 1.0, 3, Curve.LINEAR)
    schedule.tick()
    with pytest.raises(RuntimeError, match="while ramping"):
        schedule.retarget(0.5, 3, Curve.LINEAR)
    schedule.tick()
    schedule.tick()
    schedule.retarget(0.5, 2, Curve.COSINE)
    assert schedule.value == 1.0
    schedule.tick()
    assert schedule.tick() == 0.5


def test_instant_ramp_and_bad_values() -> None:
    assert AlphaSchedule(0.0, 0.7, 0).value == 0.7
    with pytest.raises(ValueError, match="target"):
        AlphaSchedule(0.0, 1.5, 3)
    with pytest.raises(ValueError, match="steps"):
        AlphaSchedule(0.0, 1.0, -1)


def test_state_dict_round_trip() -> None:
    schedule = AlphaSchedule(0.2, 0.9, 5, Curve.SIGMOID)
    schedule.tick()
    clone = AlphaSchedule()
    clone.load_state_dict(schedule.state_dict())
    assert [clone.tick() for _ in range(5)] == [schedule.tick() for _ in range(5)]
