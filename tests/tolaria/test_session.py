"""HostSession: an episode depends only on its seed and actions, not on other sessions."""

import torch

from esper.leyline import FactoredAction
from esper.tolaria import HostSession, get_task
from esper.tolaria.data import load_digits


def _episode(session: HostSession, seed: int, epochs: int) -> list[float]:
    """Germinate a conv seed at once, then train `epochs` epochs: the validation losses."""
    session.reset(seed)
    session.apply(FactoredAction.germinate("r0c0", "conv_light"))
    losses = []
    for _ in range(epochs):
        session.boundary()
        losses.append(session.train_and_evaluate().val.loss)
    return losses


def test_interleaved_sessions_match_sessions_run_alone() -> None:
    task, data = get_task("digits"), load_digits()
    a, b = HostSession(task, data), HostSession(task, data)
    alone = _episode(a, seed=3, epochs=2)
    a.reset(3)
    a.apply(FactoredAction.germinate("r0c0", "conv_light"))
    seed_weights = [p.detach().clone() for p in a.model.slot("r0c0").seed.parameters()]

    # Interleave: b's reset and plant between a's reset and a's plant.
    a.reset(3)
    b.reset(4)
    b.apply(FactoredAction.germinate("r0c0", "conv_light"))
    a.apply(FactoredAction.germinate("r0c0", "conv_light"))
    interleaved = [p.detach().clone() for p in a.model.slot("r0c0").seed.parameters()]
    assert all(torch.equal(x, y) for x, y in zip(seed_weights, interleaved, strict=True))
    assert _episode(a, seed=3, epochs=2) == alone


def test_a_session_leaves_the_global_rng_alone() -> None:
    session = HostSession(get_task("digits"), load_digits())
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _episode(session, seed=0, epochs=3)  # covers G1, which probes the seed with random input
    assert torch.equal(torch.rand(3), expected)
