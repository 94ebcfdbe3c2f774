"""channels_last on the CPU (issue 11): image hosts train in it, new seeds follow, and the
GroupNorm backward that crashed PyTorch's CPU kernel (SIGSEGV, torch 2.13.0+cpu: a
channels_last input whose gradient is not asked for, as in a seed's shadow pass) no longer
does. The crashing cases run in a subprocess, so a regression fails one test, not the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from esper.kasmina.blueprints.cnn import group_norm
from esper.leyline import FactoredAction, Stage
from esper.tolaria import SessionOptions, get_task
from esper.tolaria.data.cifar10 import load_cifar10
from esper.tolaria.session import HostSession


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_group_norm_backward_on_a_detached_channels_last_input_matches_nchw() -> None:
    done = run_python(
        """
        import torch
        from esper.kasmina.blueprints.cnn import group_norm
        torch.manual_seed(0)
        norm = group_norm(16)
        x = torch.randn(4, 16, 8, 8)
        grads = []
        for form in (torch.contiguous_format, torch.channels_last):
            out = norm(x.contiguous(memory_format=form))
            grads.append(torch.autograd.grad(out.square().mean(), list(norm.parameters())))
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*grads))
        print("same")
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "same"


def test_a_seed_trains_on_its_shadow_pass_in_channels_last(cifar_root: Path) -> None:
    """A conv_light seed (its first layer a GroupNorm on the detached host activation) in
    TRAINING on a channels_last host: the step that crashed, in a subprocess."""
    done = run_python(
        f"""
        import torch
        from esper.leyline import FactoredAction, Stage
        from esper.tolaria import SessionOptions, get_task
        from esper.tolaria.data.cifar10 import load_cifar10
        from esper.tolaria.session import HostSession
        data = load_cifar10({str(cifar_root)!r})
        session = HostSession(get_task("cifar10"), data, SessionOptions(channels_last=True))
        session.reset(seed=1)
        session.apply(FactoredAction.germinate("r0c0", "conv_light"))
        slot = session.model.slot("r0c0")
        for _ in range(4):
            session.boundary()
            session.train_and_evaluate()
        assert slot.stage == Stage.TRAINING, slot.stage
        conv = slot.seed.body[2].weight
        assert conv.is_contiguous(memory_format=torch.channels_last)
        print("trained")
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "trained"


def test_the_cifar_host_trains_in_channels_last_on_cpu_and_digits_does_not(
    cifar_root: Path,
) -> None:
    session = HostSession(get_task("cifar10"), load_cifar10(cifar_root))
    session.reset(seed=0)
    assert session.memory_format == torch.channels_last
    weights = [p for p in session.model.parameters() if p.dim() == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    x, _ = next(iter(session.train_loader))
    assert x.is_contiguous(memory_format=torch.channels_last)
    nchw = HostSession(
        get_task("cifar10"), load_cifar10(cifar_root), SessionOptions(channels_last=False)
    )
    assert nchw.memory_format == torch.contiguous_format


def test_channels_last_trains_the_same_host_as_nchw_up_to_rounding(cifar_root: Path) -> None:
    data = load_cifar10(cifar_root)
    losses = []
    for channels_last in (False, True):
        session = HostSession(
            get_task("cifar10"), data, SessionOptions(channels_last=channels_last)
        )
        session.reset(seed=2)
        session.apply(FactoredAction.germinate("r0c1", "depthwise"))
        results = [session.train_and_evaluate() for _ in range(2)]
        losses.append([r.train.loss for r in results] + [r.val.loss for r in results])
        assert session.model.slot("r0c1").stage in (Stage.GERMINATED, Stage.TRAINING)
    assert all(abs(a - b) <= 1e-4 * max(1.0, abs(a)) for a, b in zip(*losses, strict=True))


def test_the_workaround_leaves_inputs_that_need_gradients_alone() -> None:
    norm = group_norm(8)
    x = torch.randn(2, 8, 4, 4).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = norm(x)
    out.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
