from esper.leyline import TRANSITIONS, Stage, is_transition_allowed
from esper.leyline.stages import GOVERNOR_TRANSITIONS


def test_codes_are_stable() -> None:
    assert [s.value for s in Stage] == list(range(8))
    assert Stage.FOSSILIZED == 5 and Stage.EMBARGOED == 7


def test_fossilized_is_permanent_and_every_stage_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Stage)
    assert TRANSITIONS[Stage.FOSSILIZED] == frozenset()
    assert not is_transition_allowed(Stage.FOSSILIZED, Stage.PRUNED)
    assert is_transition_allowed(Stage.HOLDING, Stage.BLENDING)


def test_only_the_governor_may_take_a_fossil_out_and_only_to_pruned() -> None:
    assert {Stage.FOSSILIZED: frozenset({Stage.PRUNED})} == GOVERNOR_TRANSITIONS
    assert is_transition_allowed(Stage.FOSSILIZED, Stage.PRUNED, by_governor=True)
    assert not is_transition_allowed(Stage.FOSSILIZED, Stage.HOLDING, by_governor=True)
    assert not is_transition_allowed(Stage.DORMANT, Stage.PRUNED, by_governor=True)
    for from_stage, allowed in TRANSITIONS.items():  # everything else as for anyone
        for to_stage in allowed:
            assert is_transition_allowed(from_stage, to_stage, by_governor=True)
