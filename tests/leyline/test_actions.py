import pytest

from esper.leyline import (
    HEADS_USED,
    BlendOp,
    Curve,
    FactoredAction,
    Head,
    Op,
    Tempo,
    flat_action_names,
    flat_to_factored,
)

BLUEPRINTS = ("norm", "conv_light")


def test_flat_germinate_converts_with_blueprint() -> None:
    action = flat_to_factored("GERMINATE_CONV_LIGHT", "r0c1", BLUEPRINTS)
    assert action.op == Op.GERMINATE
    assert action.slot == "r0c1"
    assert action.blueprint == "conv_light"
    assert action.tempo != Tempo.INSTANT  # germination always ramps


@pytest.mark.parametrize("name", ["GERMINATE_UNKNOWN", "GROW", "germinate_norm", "NOOP"])
def test_unknown_flat_names_raise(name: str) -> None:
    with pytest.raises(ValueError, match="unknown"):
        flat_to_factored(name, "r0c0", BLUEPRINTS)


def test_every_flat_name_converts() -> None:
    for name in flat_action_names(BLUEPRINTS):
        assert flat_to_factored(name, "r0c0", BLUEPRINTS).op.name in name


def test_factored_action_requires_exactly_the_used_heads() -> None:
    with pytest.raises(ValueError, match="needs head 'slot'"):
        FactoredAction(Op.ADVANCE)
    with pytest.raises(ValueError, match="does not use head 'blueprint'"):
        FactoredAction(Op.ADVANCE, slot="r0c0", blueprint="norm")
    with pytest.raises(ValueError, match="alpha_target"):
        FactoredAction(
            Op.SET_ALPHA_TARGET, slot="r0c0", tempo=Tempo.FAST, alpha_target=0.6, curve=Curve.LINEAR
        )
    assert HEADS_USED[Op.GERMINATE][0] == Head.SLOT
    FactoredAction(
        Op.GERMINATE,
        slot="r0c0",
        blueprint="norm",
        blend=BlendOp.GATE,
        tempo=Tempo.SLOW,
        alpha_target=0.7,
        curve=Curve.SIGMOID,
    )
