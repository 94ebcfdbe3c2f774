"""Rollout storage shaped (T, n_envs, ...): exactly what the policy saw and did.

Inputs are stored as the network read them (normalized), never re-derived at update time; the
raw inputs beside them update the normalizer after the round.
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
    inputs: dict[str, Tensor]  # name -> (T, N, ...) the network's input (`network_input`)
    masks: dict[str, Tensor]  # head -> (T, N, ...) bool
    actions: Tensor  # (T, N, n_heads) int64
    log_probs: Tensor  # (T, N) joint log-prob at sampling time
    values: Tensor  # (T, N) value estimates (return units)
    rewards: Tensor  # (T, N)
    dones: Tensor  # (T, N) 1.0 where the step ended its episode in a true terminal
    initial_state: tuple[Tensor, Tensor]  # each (1, N, H): LSTM state before step 0
    raw: dict[str, np.ndarray]  # name -> (T, N, ...) before normalization (for the normalizer)

    @staticmethod
    def allocate(
        steps: int,
        n_envs: int,
        inputs: Mapping[str, Tensor],
        raw: Mapping[str, np.ndarray],
        mask_shapes: Mapping[str, tuple[int, ...]],
        initial_state: tuple[Tensor, Tensor],
    ) -> RolloutBuffer:
        """Room for `steps` x `n_envs` steps of inputs, raw inputs and masks shaped and typed
        like one step's `inputs` / `raw` (each (1, ...)) and `mask_shapes`."""
        return RolloutBuffer(
            inputs={
                k: torch.zeros(steps, n_envs, *v.shape[1:], dtype=v.dtype)
                for k, v in inputs.items()
            },
            masks={
                k: torch.zeros(steps, n_envs, *s, dtype=torch.bool) for k, s in mask_shapes.items()
            },
            actions=torch.zeros(steps, n_envs, len(HEAD_ORDER), dtype=torch.int64),
            log_probs=torch.zeros(steps, n_envs),
            values=torch.zeros(steps, n_envs),
            rewards=torch.zeros(steps, n_envs),
            dones=torch.zeros(steps, n_envs),
            initial_state=(initial_state[0].clone(), initial_state[1].clone()),
            raw={k: np.zeros((steps, n_envs, *v.shape[1:]), dtype=v.dtype) for k, v in raw.items()},
        )

    def store(
        self,
        t: int,
        *,
        env: slice = slice(None),
        inputs: Mapping[str, Tensor],
        raw: Mapping[str, np.ndarray],
        masks: Mapping[str, Tensor],
        actions: Tensor,
        log_probs: Tensor,
        values: Tensor,
    ) -> None:
        """Step t of the envs `env` (all of them by default; tensors lead with those envs)."""
        for key, value in inputs.items():
            self.inputs[key][t, env] = value
        for key, array in raw.items():
            self.raw[key][t, env] = array
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
        return self.actions.shape[0]

    def select_envs(self, envs: Tensor) -> RolloutBuffer:
        """The sub-buffer of some envs (whole sequences), for a minibatch."""
        return RolloutBuffer(
            inputs={k: v[:, envs] for k, v in self.inputs.items()},
            masks={k: v[:, envs] for k, v in self.masks.items()},
            actions=self.actions[:, envs],
            log_probs=self.log_probs[:, envs],
            values=self.values[:, envs],
            rewards=self.rewards[:, envs],
            dones=self.dones[:, envs],
            initial_state=(self.initial_state[0][:, envs], self.initial_state[1][:, envs]),
            raw={k: v[:, envs.numpy()] for k, v in self.raw.items()},
        )
