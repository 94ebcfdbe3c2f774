from esper.leyline import TRANSITIONS, Stage, is_transition_allowed


def test_codes_are_stable() -> None:
    assert [s.value for s in Stage] == list(range(8))
    assert Stage.FOSSILIZED == 5 and Stage.EMBARGOED == 7


def test_fossilized_is_permanent_and_every_stage_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Stage)
    assert TRANSITIONS[Stage.FOSSILIZED] == frozenset()
    assert not is_transition_allowed(Stage.FOSSILIZED, Stage.PRUNED)
    assert is_transition_allowed(Stage.HOLDING, Stage.BLENDING)
