"""What the tests of the GPU-path mechanisms (vmapped groups, compile) share: a tiny digits task
(two batches an epoch, so float rounding cannot grow far) and a script of actions that walks
two seeds through every stage."""

from __future__ import annotations

from esper.leyline import BlendOp, Curve, FactoredAction, Op, Tempo
from esper.tolaria.data import DataSplits, Split, load_digits

# epoch -> action: germinate (ADD and GATE), blend, fossilize and prune
LIFECYCLE = {
    0: FactoredAction.germinate("r0c0", "conv_light", tempo=Tempo.FAST),
    1: FactoredAction.germinate("r0c1", "conv_light", blend=BlendOp.GATE, tempo=Tempo.FAST),
    3: FactoredAction(Op.ADVANCE, slot="r0c0"),
    4: FactoredAction(Op.ADVANCE, slot="r0c1"),
    7: FactoredAction(Op.FOSSILIZE, slot="r0c0"),
    8: FactoredAction(Op.PRUNE, slot="r0c1", tempo=Tempo.FAST, curve=Curve.LINEAR),
}


def tiny_digits(train: int = 128) -> DataSplits:
    """digits with only its first `train` training images (128: two batches of 64)."""
    data = load_digits()
    split = Split(data.train.inputs[:train], data.train.targets[:train])
    return DataSplits(split, data.val, data.test, data.kind, data.num_classes, data.input_shape)
