"""Shared builders for kasmina tests: small hosts and a way to walk a seed through its stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from esper.kasmina import CNNHost, MorphogeneticModel, TransformerHost
from esper.leyline import BlendOp, FactoredAction, Op, Stage, Tempo


def trained_cnn_host(widths: tuple[int, ...] = (4, 8, 16), steps: int = 20) -> CNNHost:
    """A BatchNorm CNN host after a few SGD steps, so its running statistics and weights are not
    at init: the harder case for the fused pass (statistics must not mix configurations) and
    for the shadow pass (which must leave them alone)."""
    torch.manual_seed(0)
    host = CNNHost(in_channels=1, image_size=8, widths=widths, norm="batch")
    opt = torch.optim.SGD(host.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(host(x), y).backward()
        opt.step()
    return host


def transformer_host(n_embd: int = 32) -> TransformerHost:
    torch.manual_seed(0)
    return TransformerHost(
        vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=n_embd, n_segments=2
    )


def germinate(
    model: MorphogeneticModel,
    slot: str,
    blueprint: str,
    blend: BlendOp = BlendOp.ADD,
    target: float = 1.0,
    tempo: Tempo = Tempo.FAST,
) -> None:
    action = FactoredAction.germinate(
        slot, blueprint, blend=blend, tempo=tempo, alpha_target=target
    )
    model.execute(action)


def epoch(model: MorphogeneticModel) -> None:
    model.end_epoch()
    model.advance_boundary()


def walk_to(model: MorphogeneticModel, slot: str, stage: Stage) -> None:
    """From GERMINATED, pass epochs and ADVANCE until the slot reaches `stage`."""
    while model.slot(slot).stage != stage:
        current = model.slot(slot).stage
        if current == Stage.TRAINING and model.slot(slot).report().passes_advance_gate:
            model.execute(FactoredAction(Op.ADVANCE, slot=slot))
            model.advance_boundary()
        else:
            epoch(model)
        assert model.slot(slot).stage != Stage.PRUNED


def perturb_seeds(model: MorphogeneticModel, scale: float = 0.3) -> None:
    """Move every seed away from its identity initialisation."""
    with torch.no_grad():
        for slot in model.seed_slots():
            for p in slot.seed_parameters():
                p.add_(scale * torch.randn_like(p))
