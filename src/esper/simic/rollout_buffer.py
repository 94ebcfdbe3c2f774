"""Rollout storage shaped (T, n_envs, ...): exactly what the policy saw and did.

Features are stored already normalized (the network input), never re-derived at update time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from esper.leyline import HEAD_ORDER


@dataclass
class RolloutBuffer:
    features: Tensor  # (T, N, F) normalized network input
    masks: dict[str, Tensor]  # head -> (T, N, ...) bool
    actions: Tensor  # (T, N, n_heads) int64
    log_probs: Tensor  # (T, N) joint log-prob at sampling time
    values: Tensor  # (T, N) value estimates (return units)
    rewards: Tensor  # (T, N)
    dones: Tensor  # (T, N) 1.0 where the step ended its episode in a true terminal
    initial_state: tuple[Tensor, Tensor]  # each (1, N, H): LSTM state before step 0
    raw_features: np.ndarray  # (T, N, F) before normalization (to update the normalizer)

    @staticmethod
    def allocate(
        steps: int,
        n_envs: int,
        n_features: int,
        mask_shapes: Mapping[str, tuple[int, ...]],
        initial_state: tuple[Tensor, Tensor],
    ) -> RolloutBuffer:
        return RolloutBuffer(
            features=torch.zeros(steps, n_envs, n_features),
            masks={
                k: torch.zeros(steps, n_envs, *s, dtype=torch.bool) for k, s in mask_shapes.items()
            },
            actions=torch.zeros(steps, n_envs, len(HEAD_ORDER), dtype=torch.int64),
            log_probs=torch.zeros(steps, n_envs),
            values=torch.zeros(steps, n_envs),
            rewards=torch.zeros(steps, n_envs),
            dones=torch.zeros(steps, n_envs),
            initial_state=(initial_state[0].clone(), initial_state[1].clone()),
            raw_features=np.zeros((steps, n_envs, n_features), dtype=np.float32),
        )

    def store(
        self,
        t: int,
        *,
        env: slice = slice(None),
        features: Tensor,
        raw_features: np.ndarray,
        masks: Mapping[str, Tensor],
        actions: Tensor,
        log_probs: Tensor,
        values: Tensor,
    ) -> None:
        """Step t of the envs `env` (all of them by default; tensors lead with those envs)."""
        self.features[t, env] = features
        self.raw_features[t, env] = raw_features
        for key, mask in masks.items():
            self.masks[key][t, env] = mask
        self.actions[t, env] = actions
        self.log_probs[t, env] = log_probs
        self.values[t, env] = values

    def record_outcome(
        self, t: int, rewards: Tensor | float, dones: Tensor | float, env: int | slice = slice(None)
    ) -> None:
        self.rewards[t, env] = rewards
        self.dones[t, env] = dones

    @property
    def steps(self) -> int:
        return self.features.shape[0]

    def select_envs(self, envs: Tensor) -> RolloutBuffer:
        """The sub-buffer of some envs (whole sequences), for a minibatch."""
        return RolloutBuffer(
            features=self.features[:, envs],
            masks={k: v[:, envs] for k, v in self.masks.items()},
            actions=self.actions[:, envs],
            log_probs=self.log_probs[:, envs],
            values=self.values[:, envs],
            rewards=self.rewards[:, envs],
            dones=self.dones[:, envs],
            initial_state=(self.initial_state[0][:, envs], self.initial_state[1][:, envs]),
            raw_features=self.raw_features[:, envs.numpy()],
        )
