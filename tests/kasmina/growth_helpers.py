"""Shared builders for kasmina tests: small hosts and a way to walk a seed through its stages."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from esper.kasmina import CNNHost, MorphogeneticModel, SequentialHost, TransformerHost, blending
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


def separate_forward(
    model: MorphogeneticModel, x: torch.Tensor, config: dict[str, float]
) -> torch.Tensor:
    """Reference: one configuration at a time, each live slot blended by hand at its (forced)
    alpha; at alpha 0 the host's activation itself."""
    for i, spec in enumerate(model.specs):
        x = model.host.forward_segment(i, x)
        slot = model.slot(spec.slot_id)
        alpha = config.get(spec.slot_id, slot.alpha)
        if slot.is_live and alpha != 0:
            assert slot.seed is not None and slot.blend_op is not None
            inner = x.detach() if slot.is_isolated else x
            gate = slot.gate(inner) if slot.gate is not None else None
            x = blending.blend(slot.blend_op, x, slot.seed(inner) - inner, alpha, gate)
    return model.host.head(x)


def alpha_configs(model: MorphogeneticModel) -> list[dict[str, float]]:
    live = [s for s in model.slot_ids if model.slot(s).is_live]
    return [{}, *({s: 0.0} for s in live), {s: 1.0 for s in live}, {live[0]: 0.3}]


def _trained(seq: nn.Sequential, x: torch.Tensor, classes: int, steps: int) -> None:
    torch.manual_seed(1)
    opt = torch.optim.SGD(seq.parameters(), lr=0.05, momentum=0.9)
    y = torch.randint(0, classes, (x.shape[0],))
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(seq(x), y).backward()
        opt.step()


def mlp_host(steps: int = 10) -> SequentialHost:
    """Three dense slots (B, 16), (B, 12), (B, 8) in a BatchNorm MLP on 5 features, trained a
    few steps (running statistics not at init)."""
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Linear(5, 16), nn.BatchNorm1d(16), nn.ReLU(),  # cut 2: dense 16
        nn.Linear(16, 12), nn.ReLU(),  # cut 4: dense 12
        nn.Linear(12, 8), nn.ReLU(),  # cut 6: dense 8
        nn.Linear(8, 3),
    )  # fmt: skip
    _trained(seq, torch.randn(64, 5), 3, steps)
    return SequentialHost(seq, cuts=[2, 4, 6], example_input=torch.randn(2, 5))


def conv1d_host(steps: int = 10) -> SequentialHost:
    """Two conv1d slots (B, 8, 12), (B, 12, 6) and a dense one (B, 12) after pooling: a host of
    two families, on (B, 2, 12) sequences."""
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv1d(2, 8, 3, padding=1), nn.BatchNorm1d(8), nn.ReLU(),  # cut 2: conv1d 8
        nn.Conv1d(8, 12, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2),  # cut 5: conv1d 12
        nn.AdaptiveAvgPool1d(1), nn.Flatten(),  # cut 7: dense 12
        nn.Linear(12, 4),
    )  # fmt: skip
    _trained(seq, torch.randn(64, 2, 12), 4, steps)
    return SequentialHost(seq, cuts=[2, 5, 7], example_input=torch.randn(2, 2, 12))
