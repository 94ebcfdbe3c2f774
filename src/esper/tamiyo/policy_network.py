"""The learned controller's network, whose shapes do not depend on the host (issue 15).

Per step it reads the inputs `esper.tamiyo.slot_view` describes: a global block, one block per
slot (padded to the run's most slots, `slot_valid` marking the real ones) and a descriptor of
each blueprint at each slot. A shared encoder embeds every slot; the slot embeddings, pooled
(masked mean and max, so any number of slots), join the global embedding in an MLP -> LSTM
trunk. Heads are sampled in `HEAD_ORDER`, each masked by what the earlier choices allow: op
from the trunk; slot by scoring each slot's embedding with the trunk and the op (so permuting
the slots permutes the choice); blueprint by scoring each blueprint's descriptor at the chosen
slot; blend, tempo, alpha target and curve from the trunk, the op and the chosen slot's
embedding. Heads the op does not use are left out of the joint log-probability and the entropy.
Shapes: T steps, B envs, S slots, K blueprints, H hidden; actions are (..., 7) indices in
`HEAD_ORDER`, slot and blueprint indices into each env's own slots and blueprints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.leyline import ALPHA_TARGETS, HEAD_ORDER, HEADS_USED, BlendOp, Curve, Head, Op, Tempo
from esper.tamiyo.features import ActionMasks
from esper.tamiyo.slot_view import BLUEPRINT_DESCRIPTOR, GLOBAL_INPUT, SLOT_INPUT

_MASKED = -1e8  # exp() underflows to exactly 0; unlike -inf it keeps entropy finite
_FIXED_HEADS = {  # the late heads whose choices are the same for every host
    Head.BLEND: len(BlendOp),
    Head.TEMPO: len(Tempo),
    Head.ALPHA_TARGET: len(ALPHA_TARGETS),
    Head.CURVE: len(Curve),
}
_INDEX = {h: i for i, h in enumerate(HEAD_ORDER)}
N_OPS = len(Op)


def used_heads_table() -> Tensor:
    """(n_ops, n_heads) bool: which heads each op uses (op itself always)."""
    table = torch.zeros(len(Op), len(HEAD_ORDER), dtype=torch.bool)
    for op in Op:
        table[op, _INDEX[Head.OP]] = True
        for head in HEADS_USED[op]:
            table[op, _INDEX[head]] = True
    return table


def stack_masks(masks: list[ActionMasks]) -> dict[str, np.ndarray]:
    """Per-env masks -> one dict of (B, ...) arrays keyed by head name."""
    return {h.value: np.stack([getattr(m, h.value) for m in masks]) for h in Head}


@dataclass(frozen=True)
class Evaluation:
    log_prob: Tensor  # (T, B) joint over the heads the op used
    value: Tensor  # (T, B) normalized value prediction
    entropy: dict[Head, Tensor]  # per head: (T, B) entropy / log(legal choices), 0 where unused
    used: Tensor  # (T, B, n_heads) bool


@dataclass(frozen=True)
class _Trunk:
    z: Tensor  # (..., H) the recurrent summary of the step
    slots: Tensor  # (..., S, H) each slot's embedding
    blueprints: Tensor  # (..., S, K, D) descriptors, as given


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class PolicyNetwork(nn.Module):
    """Inputs (`slot_view`) are a dict: globals (..., G), slots (..., S, SLOT_INPUT),
    slot_valid (..., S) bool, blueprints (..., S, K, D). Its parameters' shapes depend only on
    `hidden`, so one checkpoint drives any host."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.hidden = hidden
        h = hidden
        self.global_encoder = nn.Sequential(_mlp(GLOBAL_INPUT, h, h), nn.ReLU())
        self.slot_encoder = nn.Sequential(_mlp(SLOT_INPUT, h, h), nn.ReLU())
        self.trunk = nn.Sequential(nn.Linear(3 * h, h), nn.ReLU())
        self.lstm = nn.LSTM(h, h)
        self.op_head = nn.Linear(h, N_OPS)
        self.slot_head = _mlp(h + N_OPS + h, h, 1)
        self.blueprint_encoder = nn.Sequential(nn.Linear(len(BLUEPRINT_DESCRIPTOR), h), nn.ReLU())
        self.blueprint_head = _mlp(h + N_OPS + h + h, h, 1)
        self.late_heads = nn.ModuleDict(
            {head.value: nn.Linear(h + N_OPS + h, n) for head, n in _FIXED_HEADS.items()}
        )
        self.value_head = nn.Linear(h, 1)
        self.used_table: Tensor
        self.register_buffer("used_table", used_heads_table(), persistent=False)
        last = [self.op_head, self.slot_head[-1], self.blueprint_head[-1]]
        last += [m for m in self.late_heads.values() if isinstance(m, nn.Linear)]
        for layer in last:
            assert isinstance(layer, nn.Linear)
            nn.init.orthogonal_(layer.weight, gain=0.01)  # near-uniform initial policy
            nn.init.zeros_(layer.bias)

    def initial_state(
        self, batch: int, device: torch.device | None = None
    ) -> tuple[Tensor, Tensor]:
        zeros = torch.zeros(1, batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def core(
        self, inputs: Mapping[str, Tensor], state: tuple[Tensor, Tensor]
    ) -> tuple[_Trunk, tuple[Tensor, Tensor]]:
        """(T, B, ...) inputs -> the trunk's outputs (T, B, ...) and the final LSTM state."""
        valid = inputs["slot_valid"].unsqueeze(-1)  # (T, B, S, 1)
        slots = self.slot_encoder(inputs["slots"]) * valid  # padded slots embed as 0
        count = valid.sum(-2).clamp(min=1)
        mean = slots.sum(-2) / count
        peak = slots.masked_fill(~valid, float("-inf")).amax(-2)
        peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
        x = self.trunk(torch.cat([self.global_encoder(inputs["globals"]), mean, peak], -1))
        z, new_state = self.lstm(x, state)
        return _Trunk(z, slots, inputs["blueprints"]), (new_state[0], new_state[1])

    # -- per-head logits, masked ---------------------------------------------------------------

    def _masked_logits(
        self, trunk: _Trunk, masks: Mapping[str, Tensor], op: Tensor, slot: Tensor | None
    ) -> dict[Head, Tensor]:
        """Logits of every head given the trunk, the op and (for late heads) the slot."""
        z = trunk.z
        logits = {Head.OP: self.op_head(z).masked_fill(~masks["op"], _MASKED)}
        cond = torch.cat([z, F.one_hot(op, N_OPS).to(z.dtype)], -1)  # (..., H + n_ops)
        n_slots = trunk.slots.shape[-2]
        per_slot = torch.cat([_repeat(cond, n_slots), trunk.slots], -1)
        slot_mask = _take(masks["slot"], op)  # (..., S)
        logits[Head.SLOT] = (
            self.slot_head(per_slot).squeeze(-1).masked_fill(~_any_or_first(slot_mask), _MASKED)
        )
        if slot is None:
            return logits
        chosen = torch.cat([cond, _take(trunk.slots, slot)], -1)  # (..., H + n_ops + H)
        descriptors = self.blueprint_encoder(_take(trunk.blueprints, slot))  # (..., K, H)
        n_bp = descriptors.shape[-2]
        scores = self.blueprint_head(torch.cat([_repeat(chosen, n_bp), descriptors], -1))
        late_masks = {
            Head.BLUEPRINT: _take(masks["blueprint"], slot),
            Head.BLEND: _take(masks["blend"], slot),
            Head.TEMPO: _take(masks["tempo"], op),
            Head.ALPHA_TARGET: _take(_take(masks["alpha_target"], op), slot),
            Head.CURVE: masks["curve"],
        }
        raw = {Head.BLUEPRINT: scores.squeeze(-1)}
        raw |= {head: self.late_heads[head.value](chosen) for head in _FIXED_HEADS}
        for head, mask in late_masks.items():
            logits[head] = raw[head].masked_fill(~_any_or_first(mask), _MASKED)
        return logits

    # -- acting and evaluating -----------------------------------------------------------------

    @torch.no_grad()
    def act(
        self,
        inputs: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        state: tuple[Tensor, Tensor],
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        """One step for B envs: (B, ...) inputs -> actions (B, 7), log-prob (B,), value (B,),
        state.

        Sampling draws from `generator` only, so the controller's randomness is independent of
        whatever the envs do with the global RNG (and is checkpointed with the trainer).
        """
        trunk, state = self.core({k: v.unsqueeze(0) for k, v in inputs.items()}, state)
        trunk = _Trunk(trunk.z.squeeze(0), trunk.slots.squeeze(0), trunk.blueprints.squeeze(0))

        def choose(logits: Tensor) -> Tensor:
            if deterministic:
                return logits.argmax(-1)
            probs = F.softmax(logits, -1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

        op = choose(self.op_head(trunk.z).masked_fill(~masks["op"], _MASKED))
        slot = choose(self._masked_logits(trunk, masks, op, None)[Head.SLOT])
        logits = self._masked_logits(trunk, masks, op, slot)
        chosen = {Head.OP: op, Head.SLOT: slot}
        for head in HEAD_ORDER[2:]:
            chosen[head] = choose(logits[head])
        actions = torch.stack([chosen[h] for h in HEAD_ORDER], -1)
        log_prob = self._joint_log_prob(logits, actions, op)
        return actions, log_prob, self.value_head(trunk.z).squeeze(-1), state

    def _joint_log_prob(self, logits: Mapping[Head, Tensor], actions: Tensor, op: Tensor) -> Tensor:
        used = self.used_table[op]  # (..., n_heads)
        total = torch.zeros_like(op, dtype=torch.float32)
        for head in HEAD_ORDER:
            i = _INDEX[head]
            logp = F.log_softmax(logits[head], -1).gather(-1, actions[..., i : i + 1]).squeeze(-1)
            total = total + torch.where(used[..., i], logp, torch.zeros_like(logp))
        return total

    def evaluate(
        self,
        inputs: Mapping[str, Tensor],
        masks: Mapping[str, Tensor],
        actions: Tensor,
        state: tuple[Tensor, Tensor],
    ) -> Evaluation:
        """Recompute log-probs, values and entropies of stored actions over whole sequences.

        inputs and masks (T, B, ...); actions (T, B, 7); state the initial LSTM state.
        """
        trunk, _ = self.core(inputs, state)
        op, slot = actions[..., _INDEX[Head.OP]], actions[..., _INDEX[Head.SLOT]]
        logits = self._masked_logits(trunk, masks, op, slot)
        used = self.used_table[op]
        entropy = {}
        for head in HEAD_ORDER:
            logp = F.log_softmax(logits[head], -1)
            h = -(logp.exp() * logp).sum(-1)
            legal = (logits[head] > _MASKED / 2).sum(-1).clamp(min=1)
            scale = torch.log(legal.to(torch.float32)).clamp(min=1e-8)
            normalized = torch.where(legal > 1, h / scale, torch.zeros_like(h))
            entropy[head] = torch.where(used[..., _INDEX[head]], normalized, torch.zeros_like(h))
        return Evaluation(
            log_prob=self._joint_log_prob(logits, actions, op),
            value=self.value_head(trunk.z).squeeze(-1),
            entropy=entropy,
            used=used,
        )


def _repeat(x: Tensor, n: int) -> Tensor:
    """(..., F) -> (..., n, F), the same row n times (a view)."""
    return x.unsqueeze(-2).expand(*x.shape[:-1], n, x.shape[-1])


def _take(table: Tensor, index: Tensor) -> Tensor:
    """table (..., K, *rest) indexed by index (...,) along the K dimension -> (..., *rest)."""
    expanded = index.reshape(*index.shape, *([1] * (table.dim() - index.dim())))
    expanded = expanded.expand(*index.shape, 1, *table.shape[index.dim() + 1 :])
    return table.gather(index.dim(), expanded).squeeze(index.dim())


def _any_or_first(mask: Tensor) -> Tensor:
    """A head with no legal choice (unused by the op) gets its first choice as the only legal
    one, so sampling stays defined and the index exists in every host (padded slots and
    blueprints are never legal); its choice is then ignored."""
    first = torch.zeros_like(mask)
    first[..., 0] = True
    return mask | (first & ~mask.any(-1, keepdim=True))


__all__ = ["Evaluation", "PolicyNetwork", "stack_masks", "used_heads_table"]
