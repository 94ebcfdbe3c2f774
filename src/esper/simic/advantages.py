"""Generalized advantage estimation (Schulman et al., 2016), a plain loop and a vectorized form.

Inputs are (T, N): T steps of N envs. `dones[t]` marks a true terminal after step t (nothing to
bootstrap); `last_values` (N,) bootstraps a trajectory cut off after step T-1 without a terminal
(a truncation). The loop is the reference; the vectorized form solves the same recurrence
A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1} as one triangular system per env.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _deltas(
    rewards: Tensor, values: Tensor, dones: Tensor, last_values: Tensor, gamma: float
) -> Tensor:
    next_values = torch.cat([values[1:], last_values.unsqueeze(0)], 0)  # (T, N)
    return rewards + gamma * next_values * (1.0 - dones) - values


def gae_reference(
    rewards: Tensor, values: Tensor, dones: Tensor, last_values: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Advantages and returns (both (T, N)), step by step backwards."""
    T = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_values)
    next_value = last_values
    for t in reversed(range(T)):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_advantage = delta + gamma * lam * not_done * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def gae(
    rewards: Tensor, values: Tensor, dones: Tensor, last_values: Tensor, gamma: float, lam: float
) -> tuple[Tensor, Tensor]:
    """Same as `gae_reference`, without a Python loop over time."""
    T, N = rewards.shape
    deltas = _deltas(rewards, values, dones, last_values, gamma)  # (T, N)
    decay = gamma * lam * (1.0 - dones[:-1])  # (T-1, N): A_t depends on A_{t+1} through this
    # (I - S) A = delta with S[t, t+1] = decay[t]: an upper bidiagonal system per env.
    system = torch.eye(T, dtype=rewards.dtype, device=rewards.device).repeat(N, 1, 1)  # (N, T, T)
    if T > 1:
        idx = torch.arange(T - 1, device=rewards.device)
        system[:, idx, idx + 1] = -decay.T
    advantages = torch.linalg.solve_triangular(system, deltas.T.unsqueeze(-1), upper=True)
    advantages = advantages.squeeze(-1).T  # (T, N)
    return advantages, advantages + values


def group_relative(rewards: Tensor, dones: Tensor, gamma: float, group: int) -> Tensor:
    """Advantages (T, N) against the other envs of one's seed group: an env's discounted
    return-to-go minus the mean return-to-go of the other envs of its group at the same step.

    Groups are consecutive envs (`group` of them; N a multiple). The others' returns do not
    depend on this env's actions, so the baseline leaves the policy gradient unbiased. Where
    the envs of a group share a seed, envs that act alike get advantages of zero instead of
    the seed's luck; envs that act differently keep what the seed does to each of them."""
    T, N = rewards.shape
    if group < 2 or N % group != 0:
        raise ValueError(f"a group of {group} does not divide {N} envs into groups of 2 or more")
    zeros = torch.zeros_like(rewards)
    to_go, _ = gae(rewards, zeros, dones, zeros[0], gamma, 1.0)  # (T, N) returns-to-go
    grouped = to_go.reshape(T, N // group, group)
    others = (grouped.sum(-1, keepdim=True) - grouped) / (group - 1)
    return (grouped - others).reshape(T, N)
