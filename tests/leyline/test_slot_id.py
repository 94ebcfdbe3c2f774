import pytest

from esper.leyline import SlotIdError, parse_slot_id, slot_id, sort_slot_ids


def test_numeric_row_major_order() -> None:
    assert sort_slot_ids(["r1c0", "r0c10", "r0c2"]) == ["r0c2", "r0c10", "r1c0"]


@pytest.mark.parametrize("bad", ["", "r0", "c0", "R0C1", "r-1c0", "r01c1", "r0c1 ", "x0y1", "r0c"])
def test_malformed_ids_raise_naming_the_id_and_form(bad: str) -> None:
    with pytest.raises(SlotIdError) as err:
        parse_slot_id(bad)
    assert repr(bad) in str(err.value)
    assert "r<row>c<col>" in str(err.value)


def test_slot_id_error_is_a_value_error() -> None:
    assert issubclass(SlotIdError, ValueError)


def test_round_trip_and_duplicates() -> None:
    assert str(parse_slot_id(slot_id(3, 12))) == "r3c12"
    with pytest.raises(SlotIdError, match="duplicate"):
        sort_slot_ids(["r0c1", "r0c1"])
    with pytest.raises(SlotIdError):
        slot_id(-1, 0)
