"""The learned controller's network: features -> MLP -> LSTM -> autoregressive heads + V(s).

Heads are sampled in `HEAD_ORDER`: op; slot given op; then blueprint, blend, tempo, alpha
target and curve given op and slot. Each head is masked by what the earlier choices allow, and
heads the op does not use are left out of the joint log-probability and the entropy.
Shapes: T steps, B envs, F features, H hidden; actions are (..., 7) indices in `HEAD_ORDER`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.leyline import HEAD_ORDER, HEADS_USED, Head, Op
from esper.tamiyo.features import ActionMasks

_MASKED = -1e8  # exp() underflows to exactly 0; unlike -inf it keeps entropy finite
_LATE_HEADS = (Head.BLUEPRINT, Head.BLEND, Head.TEMPO, Head.ALPHA_TARGET, Head.CURVE)
_INDEX = {h: i for i, h in enumerate(HEAD_ORDER)}


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


class PolicyNetwork(nn.Module):
    def __init__(self, n_features: int, head_sizes: Mapping[Head, int], hidden: int = 128) -> None:
        super().__init__()
        self.head_sizes = {h: int(head_sizes[h]) for h in HEAD_ORDER}
        self.hidden = hidden
        n_ops, n_slots = self.head_sizes[Head.OP], self.head_sizes[Head.SLOT]
        self.encoder = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.lstm = nn.LSTM(hidden, hidden)
        self.op_head = nn.Linear(hidden, n_ops)
        self.slot_head = nn.Linear(hidden + n_ops, n_slots)
        self.late_heads = nn.ModuleDict(
            {h.value: nn.Linear(hidden + n_ops + n_slots, self.head_sizes[h]) for h in _LATE_HEADS}
        )
        self.value_head = nn.Linear(hidden, 1)
        self.used_table: Tensor
        self.register_buffer("used_table", used_heads_table(), persistent=False)
        heads = [self.op_head, self.slot_head]
        heads += [m for m in self.late_heads.values() if isinstance(m, nn.Linear)]
        for layer in heads:
            nn.init.orthogonal_(layer.weight, gain=0.01)  # near-uniform initial policy
            nn.init.zeros_(layer.bias)

    def initial_state(
        self, batch: int, device: torch.device | None = None
    ) -> tuple[Tensor, Tensor]:
        zeros = torch.zeros(1, batch, self.hidden, device=device)
        return zeros, zeros.clone()

    def core(
        self, features: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(T, B, F) features -> (T, B, H) and the final LSTM state."""
        z, new_state = self.lstm(self.encoder(features), state)
        return z, (new_state[0], new_state[1])

    # -- per-head logits, masked ---------------------------------------------------------------

    def _one_hot(self, index: Tensor, head: Head) -> Tensor:
        return F.one_hot(index, self.head_sizes[head]).to(torch.float32)

    def _masked_logits(
        self, z: Tensor, masks: Mapping[str, Tensor], op: Tensor, slot: Tensor | None
    ) -> dict[Head, Tensor]:
        """Logits of every head given z (..., H), the op and (for late heads) the slot."""
        logits = {Head.OP: self.op_head(z).masked_fill(~masks["op"], _MASKED)}
        op_1h = self._one_hot(op, Head.OP)
        slot_mask = _take(masks["slot"], op)  # (..., n_slots)
        logits[Head.SLOT] = self.slot_head(torch.cat([z, op_1h], -1)).masked_fill(
            ~_any_or_all(slot_mask), _MASKED
        )
        if slot is None:
            return logits
        cond = torch.cat([z, op_1h, self._one_hot(slot, Head.SLOT)], -1)
        late_masks = {
            Head.BLUEPRINT: _take(masks["blueprint"], slot),
            Head.BLEND: _take(masks["blend"], slot),
            Head.TEMPO: _take(masks["tempo"], op),
            Head.ALPHA_TARGET: _take(_take(masks["alpha_target"], op), slot),
            Head.CURVE: masks["curve"],
        }
        for head in _LATE_HEADS:
            mask = _any_or_all(late_masks[head])
            logits[head] = self.late_heads[head.value](cond).masked_fill(~mask, _MASKED)
        return logits

    # -- acting and evaluating -----------------------------------------------------------------

    @torch.no_grad()
    def act(
        self,
        features: Tensor,
        masks: Mapping[str, Tensor],
        state: tuple[Tensor, Tensor],
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor]]:
        """One step for B envs: (B, F) -> actions (B, 7), log-prob (B,), value (B,), state.

        Sampling draws from `generator` only, so the controller's randomness is independent of
        whatever the envs do with the global RNG (and is checkpointed with the trainer).
        """
        z, state = self.core(features.unsqueeze(0), state)
        z = z.squeeze(0)

        def choose(logits: Tensor) -> Tensor:
            if deterministic:
                return logits.argmax(-1)
            probs = F.softmax(logits, -1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

        op = choose(self.op_head(z).masked_fill(~masks["op"], _MASKED))
        slot = choose(self._masked_logits(z, masks, op, None)[Head.SLOT])
        logits = self._masked_logits(z, masks, op, slot)
        chosen = {Head.OP: op, Head.SLOT: slot}
        for head in _LATE_HEADS:
            chosen[head] = choose(logits[head])
        actions = torch.stack([chosen[h] for h in HEAD_ORDER], -1)
        log_prob = self._joint_log_prob(logits, actions, op)
        return actions, log_prob, self.value_head(z).squeeze(-1), state

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
        features: Tensor,
        masks: Mapping[str, Tensor],
        actions: Tensor,
        state: tuple[Tensor, Tensor],
    ) -> Evaluation:
        """Recompute log-probs, values and entropies of stored actions over whole sequences.

        features (T, B, F); masks (T, B, ...); actions (T, B, 7); state the initial LSTM state.
        """
        z, _ = self.core(features, state)
        op, slot = actions[..., _INDEX[Head.OP]], actions[..., _INDEX[Head.SLOT]]
        logits = self._masked_logits(z, masks, op, slot)
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
            value=self.value_head(z).squeeze(-1),
            entropy=entropy,
            used=used,
        )


def _take(table: Tensor, index: Tensor) -> Tensor:
    """table (..., K, *rest) indexed by index (...,) along the K dimension -> (..., *rest)."""
    expanded = index.reshape(*index.shape, *([1] * (table.dim() - index.dim())))
    expanded = expanded.expand(*index.shape, 1, *table.shape[index.dim() + 1 :])
    return table.gather(index.dim(), expanded).squeeze(index.dim())


def _any_or_all(mask: Tensor) -> Tensor:
    """A head with no legal choice (unused by the op) gets an all-legal mask, so sampling stays
    defined; its choice is then ignored."""
    return mask | ~mask.any(-1, keepdim=True)


__all__ = ["Evaluation", "PolicyNetwork", "stack_masks", "used_heads_table"]
