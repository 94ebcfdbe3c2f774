"""Vmapped groups (`esper.tolaria.grouped`) equal separate models, step for step.

Every epoch starts the grouped copy from exactly the separate models' state (a deep copy), so
each comparison is one epoch of two SGD steps. Over many steps two runs that differ only in float
rounding part visibly: a ReLU/max-pool host is piecewise, and a 1e-7 nudge that flips one max-pool
choice moves a weight by ~1e-3 within an epoch (measured serial against serial), so long
trajectories are compared elsewhere with a tolerance, not here.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

import pytest
import torch
from lifecycle_script import LIFECYCLE, tiny_digits

from esper.kasmina import CNNHost
from esper.leyline import FactoredAction, IllegalActionError, Op, Stage, Tempo
from esper.tolaria import DataOptions, HostSession, SessionOptions, TrainStats, get_task
from esper.tolaria.data import DataSplits, load_digits
from esper.tolaria.grouped import structure_key, train_epochs, train_group
from esper.tolaria.tasks import Task

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def tiny() -> DataSplits:
    return tiny_digits()


def _sessions(
    data: DataSplits, seeds: Sequence[int], task: Task | None = None
) -> list[HostSession]:
    sessions = [HostSession(task or get_task("digits"), data) for _ in seeds]
    for session, seed in zip(sessions, seeds, strict=True):
        session.reset(seed)
    return sessions


def _act(session: HostSession, action: FactoredAction) -> None:
    with contextlib.suppress(IllegalActionError):  # a gate said no: both copies wait alike
        session.apply(action)
    session.boundary()


def _assert_same_epoch(
    separate: list[HostSession],
    grouped: list[HostSession],
    separate_stats: list[TrainStats],
    grouped_stats: list[TrainStats],
) -> None:
    for a, b, sa, sb in zip(separate, grouped, separate_stats, grouped_stats, strict=True):
        state_a, state_b = a.optimizer.optimizer.state, b.optimizer.optimizer.state
        for (name, pa), pb in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
            assert torch.allclose(pa, pb, atol=TOLERANCE, rtol=0), name
            assert (pa in state_a) == (pb in state_b), name
            if pa in state_a:
                va, vb = state_a[pa]["momentum_buffer"], state_b[pb]["momentum_buffer"]
                assert torch.allclose(va, vb, atol=TOLERANCE, rtol=0), name
        assert sb.loss == pytest.approx(sa.loss, abs=TOLERANCE)
        assert sb.accuracy == sa.accuracy and sb.samples == sa.samples
        assert sb.gradient_ratios.keys() == sa.gradient_ratios.keys()
        for sid, ratio in sa.gradient_ratios.items():
            assert sb.gradient_ratios[sid] == pytest.approx(ratio, abs=TOLERANCE)


def _compare_epoch(sessions: list[HostSession]) -> int:
    """Train a deep copy grouped and `sessions` one by one; assert they agree. Returns the
    number of groups the copy trained in."""
    copies = copy.deepcopy(sessions)
    groups = len({structure_key(s) for s in copies})
    grouped = train_epochs(copies)
    separate = [s.train() for s in sessions]
    _assert_same_epoch(sessions, copies, [s for s, _ in separate], [s for s, _ in grouped])
    for session, trained in zip(sessions, separate, strict=True):
        session.train_and_evaluate(trained)  # end of epoch: counterfactuals, the lifecycle
    return groups


def test_a_group_equals_separate_models_through_the_whole_lifecycle(tiny: DataSplits) -> None:
    sessions = _sessions(tiny, [0, 1, 2])
    seen: set[Stage] = set()
    for epoch in range(12):
        for session in sessions:
            _act(session, LIFECYCLE.get(epoch, FactoredAction.wait()))
        for slot in sessions[0].model.seed_slots():
            seen.add(slot.stage)
        assert _compare_epoch(sessions) == 1  # the same plan keeps the three in one group
    assert {
        Stage.GERMINATED,
        Stage.TRAINING,
        Stage.BLENDING,
        Stage.HOLDING,
        Stage.FOSSILIZED,
        Stage.PRUNED,
        Stage.EMBARGOED,
    } <= seen


def test_envs_that_part_are_regrouped_and_still_equal(tiny: DataSplits) -> None:
    """Envs 0 and 1 plant the same seed, env 2 another blueprint, env 3 nothing: three groups,
    and env 0 and 1's group splits once they blend at different times."""
    sessions = _sessions(tiny, [0, 1, 2, 3])
    germinate = FactoredAction.germinate("r0c0", "conv_light", tempo=Tempo.FAST)
    other = FactoredAction.germinate("r0c0", "depthwise", tempo=Tempo.FAST)
    advance = FactoredAction(Op.ADVANCE, slot="r0c0")
    wait = FactoredAction.wait()
    plans = [
        {0: germinate, 3: advance},
        {0: germinate, 5: advance},
        {0: other},
        {},
    ]
    groups = []
    for epoch in range(7):
        for session, plan in zip(sessions, plans, strict=True):
            _act(session, plan.get(epoch, wait))
        groups.append(_compare_epoch(sessions))
    assert groups[1] == 3  # {0, 1}, {2}, {3}
    assert groups[4] == 4  # env 0 blends while env 1 still trains in the shadow


def test_a_group_of_one_and_a_group_of_copies() -> None:
    """Two sessions of one seed train alike when grouped (the stacked rows are independent)."""
    data = load_digits()
    sessions = _sessions(data, [5, 5])
    for session in sessions:
        _act(session, FactoredAction.germinate("r0c1", "conv_light"))
    (a, _), (b, _) = train_epochs(sessions)
    assert a.loss == pytest.approx(b.loss, abs=TOLERANCE)
    for pa, pb in zip(sessions[0].model.parameters(), sessions[1].model.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=TOLERANCE, rtol=0)


def _batchnorm_task() -> Task:
    digits = get_task("digits")

    def host(data: DataSplits) -> CNNHost:
        return CNNHost(1, 8, widths=(4, 8), num_classes=10, pool=(False, True), norm="batch")

    return Task(**{**digits.__dict__, "name": "digits_bn", "build_host": host})


def test_what_cannot_be_vmapped_exactly_trains_alone(tiny: DataSplits) -> None:
    digits = get_task("digits")
    fp16 = HostSession(digits, tiny, SessionOptions(amp="fp16"))
    fp16.reset(0)
    (batchnorm,) = _sessions(tiny, [0], _batchnorm_task())
    assert structure_key(fp16) is None  # its scaler skips steps per env
    assert structure_key(batchnorm) is None  # running statistics updated in place
    plain = _sessions(tiny, [0, 1])
    assert structure_key(plain[0]) == structure_key(plain[1]) is not None
    with pytest.raises(ValueError, match="one structure"):
        train_group([plain[0], batchnorm])
    results = train_epochs([plain[0], batchnorm, plain[1]])  # two alone, then a pair
    assert [r[0].samples for r in results] == [128, 128, 128]


def test_bf16_groups_train_close_to_separate_models(tiny: DataSplits) -> None:
    """Under autocast both paths round to bf16 where they multiply: equal within bf16's
    precision, not fp32's."""
    options = SessionOptions(amp="bf16")
    sessions = [HostSession(get_task("digits"), tiny, options) for _ in range(2)]
    for seed, session in enumerate(sessions):
        session.reset(seed)
        _act(session, FactoredAction.germinate("r0c0", "conv_light"))
    copies = copy.deepcopy(sessions)
    grouped = train_epochs(copies)
    separate = [s.train() for s in sessions]
    for (a, _), (b, _) in zip(separate, grouped, strict=True):
        assert b.loss == pytest.approx(a.loss, abs=2e-2)
    for a, b in zip(sessions, copies, strict=True):
        for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert torch.allclose(pa, pb, atol=2e-2, rtol=0)


def _sequence_task(*extra: torch.nn.Module) -> Task:
    """A user's conv1d + dense task (`make_task`), with `extra` layers after the first conv."""
    from torch import nn

    from esper import make_task

    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 2, 12, generator=generator), torch.arange(96) % 3

    def host() -> nn.Sequential:
        return nn.Sequential(
            nn.Conv1d(2, 6, 3, padding=1), nn.ReLU(), *extra,  # a conv1d slot after module 1
            nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(6, 3),
        )  # fmt: skip

    return make_task("seq", train=(x, y), test=(x, y), host=host, cuts=[1], batch_size=32)


def test_a_user_host_of_other_families_groups_and_equals_separate_models() -> None:
    task = _sequence_task()
    data = task.load(DataOptions())
    sessions = _sessions(data, [0, 1], task)
    for session, blueprint in zip(sessions, ["conv_light", "conv_light"], strict=True):
        _act(session, FactoredAction.germinate("r0c0", blueprint, tempo=Tempo.FAST))
    assert _compare_epoch(sessions) == 1


@pytest.mark.parametrize(
    "layer",
    [
        torch.nn.Dropout1d(0.2),
        torch.nn.AlphaDropout(0.1),
        torch.nn.InstanceNorm1d(6, track_running_stats=True),
        torch.nn.RReLU(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_random_layers_and_running_statistics_of_any_kind_train_alone(
    layer: torch.nn.Module,
) -> None:
    """vmap cannot draw per-env random numbers nor update running statistics in place: a
    Dropout1d host crashed the vmap backend (only nn.Dropout was recognised)."""
    task = _sequence_task(layer)
    sessions = _sessions(task.load(DataOptions()), [0, 1], task)
    assert structure_key(sessions[0]) is None
    results = train_epochs(sessions)
    assert [r[0].samples for r in results] == [96 - 19, 96 - 19]
