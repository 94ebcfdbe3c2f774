"""`--compile` (issue 12, item 4): compiled forwards give the eager results through every
lifecycle change, recompiling when a seed's stage changes (counted). The `aot_eager` backend
traces and partitions exactly as inductor does, without generating kernels (seconds, not
minutes, on a CPU); inductor itself is measured in benchmarks/gpu.py."""

from __future__ import annotations

import contextlib

import pytest
import torch
from lifecycle_script import LIFECYCLE, tiny_digits

from esper.leyline import FactoredAction, IllegalActionError
from esper.tolaria import HostSession, SessionOptions, get_task
from esper.tolaria.compiling import COMPILES, compiled_forwards, structure
from esper.tolaria.data import DataSplits


@pytest.fixture(scope="module")
def tiny() -> DataSplits:
    return tiny_digits()


def test_compiled_sessions_track_eager_ones_through_the_lifecycle(tiny: DataSplits) -> None:
    """Regression: dynamo does not guard nn.Module attributes, so a graph compiled while a seed
    was invisible went on running after it began to blend (weights 0.1 apart one epoch on)."""
    task = get_task("digits")
    eager = HostSession(task, tiny)
    compiled = HostSession(task, tiny, SessionOptions(compile="aot_eager"))
    eager.reset(0)
    compiled.reset(0)
    stages = set()
    for epoch in range(11):
        for session in (eager, compiled):
            with contextlib.suppress(IllegalActionError):
                session.apply(LIFECYCLE.get(epoch, FactoredAction.wait()))
            session.boundary()
        a, b = eager.train_and_evaluate(), compiled.train_and_evaluate()
        stages.add(structure(compiled.model))
        assert b.train.loss == pytest.approx(a.train.loss, abs=1e-5)
        assert b.val.accuracies == pytest.approx(a.val.accuracies, abs=1e-4)
        for pa, pb in zip(eager.model.parameters(), compiled.model.parameters(), strict=True):
            assert torch.allclose(pa, pb, atol=1e-5, rtol=0)
    assert len(stages) >= 6  # germinated, training, blending, holding, fossilized, pruned...
    assert compiled.compiled_graphs >= len(stages)  # at least one graph per structure seen


def test_graphs_are_counted_and_a_seen_structure_is_not_compiled_again(tiny: DataSplits) -> None:
    session = HostSession(get_task("digits"), tiny, SessionOptions(compile="aot_eager"))
    session.reset(3)
    session.train_and_evaluate()
    first = session.compiled_graphs
    session.reset(4)  # a new model of the structure seen: its graphs are reused
    session.train_and_evaluate()
    assert session.compiled_graphs == first
    assert COMPILES.graphs >= first > 0


def test_an_unknown_backend_is_named() -> None:
    with pytest.raises(ValueError, match=r"unknown compile backend 'fast'.*inductor"):
        compiled_forwards("fast")
