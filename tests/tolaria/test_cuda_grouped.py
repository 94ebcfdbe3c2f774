"""Vmapped groups and phase timing on a GPU (issue 12, items 3 and 5): skipped without CUDA."""

from __future__ import annotations

import copy

import pytest
import torch
from lifecycle_script import tiny_digits

from esper.leyline import FactoredAction, Tempo
from esper.tolaria import HostSession, SessionOptions, get_task
from esper.tolaria.grouped import structure_key, train_epochs
from esper.tolaria.timing import PhaseClock

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_a_group_on_the_gpu_equals_separate_models_on_the_gpu() -> None:
    data, options = tiny_digits(), SessionOptions(device="cuda")
    sessions = [HostSession(get_task("digits"), data, options) for _ in range(3)]
    for seed, session in enumerate(sessions):
        session.reset(seed)
        session.apply(FactoredAction.germinate("r0c0", "conv_light", tempo=Tempo.FAST))
        session.boundary()
    assert len({structure_key(s) for s in sessions}) == 1
    copies = copy.deepcopy(sessions)
    grouped = train_epochs(copies)
    separate = [s.train() for s in sessions]
    for (a, _), (b, timing) in zip(separate, grouped, strict=True):
        assert b.loss == pytest.approx(a.loss, abs=1e-5)
        assert timing["host_training"] > 0 and timing["shadow_passes"] > 0
    for a, b in zip(sessions, copies, strict=True):
        for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
            assert pb.device.type == "cuda"
            assert torch.allclose(pa, pb, atol=1e-5, rtol=0)


def test_the_cuda_clock_times_gpu_work_without_syncing_inside() -> None:
    clock = PhaseClock("cuda")
    assert clock.is_cuda
    x = torch.randn(2048, 2048, device="cuda")
    with clock.phase("matmul"):
        for _ in range(10):
            x = x @ x / 2048
    seconds = clock.seconds()  # waits for the phase's end event
    assert 0 < seconds["matmul"] < 60
