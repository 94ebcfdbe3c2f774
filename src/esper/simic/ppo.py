"""The recurrent PPO update (Schulman et al., 2017), over minibatches of whole env sequences.

Read top to bottom it is the paper's algorithm with the usual details (see "The 37
Implementation Details of PPO", Huang et al., 2022): advantage normalization per minibatch,
clipped surrogate on the JOINT probability ratio over the heads the op used, value loss on
normalized returns with clipping, an entropy bonus per used head (normalized entropy), global
gradient clipping, Adam, and early stopping when the approximate KL exceeds 1.5 x target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esper.leyline import HEAD_ORDER
from esper.simic.normalizer import RunningNormalizer
from esper.simic.rollout_buffer import RolloutBuffer
from esper.tamiyo.policy_network import PolicyNetwork


@dataclass(frozen=True)
class PPOSettings:
    clip: float = 0.2
    value_clip: float = 10.0
    value_coef: float = 0.5
    entropy_coef: float = 0.05
    max_grad_norm: float = 1.0
    target_kl: float | None = 0.015
    update_epochs: int = 4
    minibatch_envs: int | None = None  # None: all envs in one minibatch


@dataclass(frozen=True)
class UpdateMetrics:
    policy_loss: float
    value_loss: float
    entropy: dict[str, float]  # per head, mean normalized entropy where the head was used
    approx_kl: float
    clip_fraction: float
    explained_variance: float
    grad_norm: float
    epochs_run: int
    initial_log_prob_error: float  # max |recomputed - stored| log-prob before any step


def explained_variance(predicted: Tensor, target: Tensor) -> float:
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - predicted).var() / var)


def ppo_update(
    network: PolicyNetwork,
    optimizer: torch.optim.Optimizer,
    buffer: RolloutBuffer,
    advantages: Tensor,
    returns: Tensor,
    return_normalizer: RunningNormalizer,
    settings: PPOSettings,
    generator: torch.Generator,
) -> UpdateMetrics:
    """Update `network` in place from one rollout. advantages / returns are (T, N)."""
    n_envs = buffer.actions.shape[1]
    per_batch = settings.minibatch_envs or n_envs
    mean, std = float(return_normalizer.mean[0]), float(return_normalizer.std[0])
    target = (returns - mean) / std  # (T, N) normalized returns
    old_value = (buffer.values - mean) / std

    with torch.no_grad():
        first = network.evaluate(
            buffer.features, buffer.masks, buffer.actions, buffer.initial_state
        )
        initial_error = float((first.log_prob - buffer.log_probs).abs().max())

    stats: dict[str, list[float]] = {k: [] for k in ("pg", "v", "kl", "clip", "grad")}
    entropy_sums: dict[str, list[float]] = {h.value: [] for h in HEAD_ORDER}
    epochs_run = 0
    for _ in range(settings.update_epochs):
        epochs_run += 1
        order = torch.randperm(n_envs, generator=generator)
        stop = False
        for start in range(0, n_envs, per_batch):
            envs = order[start : start + per_batch]
            mb = buffer.select_envs(envs)
            ev = network.evaluate(mb.features, mb.masks, mb.actions, mb.initial_state)
            adv = advantages[:, envs]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8) if adv.numel() > 1 else adv
            log_ratio = ev.log_prob - mb.log_probs
            ratio = log_ratio.exp()
            surrogate = torch.min(
                ratio * adv, ratio.clamp(1 - settings.clip, 1 + settings.clip) * adv
            )
            policy_loss = -surrogate.mean()
            v_old, v_target = old_value[:, envs], target[:, envs]
            v_clipped = v_old + (ev.value - v_old).clamp(-settings.value_clip, settings.value_clip)
            value_loss = (
                0.5 * torch.max((ev.value - v_target) ** 2, (v_clipped - v_target) ** 2).mean()
            )
            head_entropy = {
                h: _masked_mean(ev.entropy[h], ev.used[..., i]) for i, h in enumerate(HEAD_ORDER)
            }
            entropy = sum(head_entropy.values())
            loss = policy_loss + settings.value_coef * value_loss - settings.entropy_coef * entropy
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), settings.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                approx_kl = float(((ratio - 1) - log_ratio).mean())  # Schulman's k3 estimator
                stats["clip"].append(float(((ratio - 1).abs() > settings.clip).float().mean()))
            stats["pg"].append(policy_loss.item())
            stats["v"].append(value_loss.item())
            stats["kl"].append(approx_kl)
            stats["grad"].append(float(grad_norm))
            for h, value in head_entropy.items():
                entropy_sums[h.value].append(value.item())
            if settings.target_kl is not None and approx_kl > 1.5 * settings.target_kl:
                stop = True
                break
        if stop:
            break

    with torch.no_grad():
        final = network.evaluate(
            buffer.features, buffer.masks, buffer.actions, buffer.initial_state
        )
    return UpdateMetrics(
        policy_loss=_mean(stats["pg"]),
        value_loss=_mean(stats["v"]),
        entropy={h: _mean(v) for h, v in entropy_sums.items()},
        approx_kl=_mean(stats["kl"]),
        clip_fraction=_mean(stats["clip"]),
        explained_variance=explained_variance(final.value.flatten(), target.flatten()),
        grad_norm=_mean(stats["grad"]),
        epochs_run=epochs_run,
        initial_log_prob_error=initial_error,
    )


def _masked_mean(values: Tensor, used: Tensor) -> Tensor:
    count = used.sum()
    return (values * used).sum() / count.clamp(min=1)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
