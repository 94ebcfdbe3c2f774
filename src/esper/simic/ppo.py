"""The recurrent PPO update (Schulman et al., 2017), over minibatches of whole env sequences.

Read top to bottom it is the paper's algorithm with the usual details (see "The 37
Implementation Details of PPO", Huang et al., 2022): advantages normalized once over the whole
rollout, clipped surrogate on the JOINT probability ratio over the heads the op used, value loss
on normalized returns with clipping, an entropy bonus over the heads each step used (normalized
entropy), global gradient clipping, Adam, and early stopping when the approximate KL over the
rollout exceeds 1.5 x target.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from esper.leyline import HEAD_ORDER, Head
from esper.simic.normalizer import RunningNormalizer
from esper.simic.rollout_buffer import RolloutBuffer
from esper.tamiyo.policy_network import Evaluation, PolicyNetwork


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
    # Per head, a diagnostic: the mean normalized entropy over the steps where the head was used
    # (how undecided it is when it decides). The bonus weighs each head by how often it is used.
    entropy: dict[str, float]
    approx_kl: float  # over the rollout, after the last epoch run: what the early stop compared
    clip_fraction: float
    explained_variance: float  # of the rollout's values (the critic behind the advantages)
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
    # Once over the whole rollout (T x N), not per minibatch: with one env per minibatch (the
    # digits preset) each episode's advantages would sum to zero, erasing "this whole plan did
    # better than the critic expected".
    adv = _normalized(advantages)
    initial_error = _log_prob_error(network, buffer)

    steps: list[dict[str, float]] = []
    epochs_run, kl = 0, float("nan")
    for _ in range(settings.update_epochs):
        epochs_run += 1
        order = torch.randperm(n_envs, generator=generator)
        for start in range(0, n_envs, per_batch):
            envs = order[start : start + per_batch]
            batch = _Minibatch(
                buffer.select_envs(envs), adv[:, envs], old_value[:, envs], target[:, envs]
            )
            steps.append(_step(network, optimizer, batch, settings))
        # The KL of the policy as updated, over the whole rollout, is both the one reported and
        # the one that stops the update: a check inside the minibatch loop sees the ratio before
        # its own step, so with one minibatch per epoch it would read 0 and never stop anything.
        kl = _rollout_kl(network, buffer)
        if settings.target_kl is not None and kl > 1.5 * settings.target_kl:
            break

    return UpdateMetrics(
        policy_loss=_mean(steps, "pg"),
        value_loss=_mean(steps, "v"),
        entropy={h.value: _entropy_where_used(steps, h) for h in HEAD_ORDER},
        approx_kl=kl,
        clip_fraction=_mean(steps, "clip"),
        # The critic that produced the advantages (values at collection), in return units; the
        # updated critic would be judged on returns built from its predecessor's values.
        explained_variance=explained_variance(buffer.values.flatten(), returns.flatten()),
        grad_norm=_mean(steps, "grad"),
        epochs_run=epochs_run,
        initial_log_prob_error=initial_error,
    )


def _normalized(advantages: Tensor) -> Tensor:
    if advantages.numel() == 1:
        return advantages  # a single value has no spread to divide by
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


@dataclass(frozen=True)
class _Minibatch:
    rollout: RolloutBuffer  # a few envs' whole sequences
    advantages: Tensor  # (T, n)
    old_value: Tensor  # (T, n) normalized value at collection time
    target: Tensor  # (T, n) normalized return


def _rollout_kl(network: PolicyNetwork, buffer: RolloutBuffer) -> float:
    """Approximate KL(old || new) over the rollout (Schulman's k3 estimator)."""
    with torch.no_grad():
        ev = network.evaluate(buffer.inputs, buffer.masks, buffer.actions, buffer.initial_state)
        log_ratio = ev.log_prob - buffer.log_probs
        return float(((log_ratio.exp() - 1) - log_ratio).mean())


def _log_prob_error(network: PolicyNetwork, buffer: RolloutBuffer) -> float:
    """Max |recomputed - stored| log-prob: the stored inputs must reproduce what was sampled."""
    with torch.no_grad():
        ev = network.evaluate(buffer.inputs, buffer.masks, buffer.actions, buffer.initial_state)
    return float((ev.log_prob - buffer.log_probs).abs().max())


def _step(
    network: PolicyNetwork,
    optimizer: torch.optim.Optimizer,
    batch: _Minibatch,
    settings: PPOSettings,
) -> dict[str, float]:
    """One gradient step on one minibatch; returns its statistics."""
    mb, adv = batch.rollout, batch.advantages  # adv (T, n), already normalized over the rollout
    ev = network.evaluate(mb.inputs, mb.masks, mb.actions, mb.initial_state)
    log_ratio = ev.log_prob - mb.log_probs  # joint over the heads each op used
    ratio = log_ratio.exp()
    surrogate = torch.min(ratio * adv, ratio.clamp(1 - settings.clip, 1 + settings.clip) * adv)
    policy_loss = -surrogate.mean()
    v_old, v_target = batch.old_value, batch.target
    v_clipped = v_old + (ev.value - v_old).clamp(-settings.value_clip, settings.value_clip)
    value_loss = 0.5 * torch.max((ev.value - v_target) ** 2, (v_clipped - v_target) ** 2).mean()
    entropy = entropy_bonus(ev)
    loss = policy_loss + settings.value_coef * value_loss - settings.entropy_coef * entropy
    optimizer.zero_grad()
    loss.backward()  # type: ignore[no-untyped-call]
    grad_norm = torch.nn.utils.clip_grad_norm_(network.parameters(), settings.max_grad_norm)
    optimizer.step()
    with torch.no_grad():
        stats = {
            "pg": policy_loss.item(),
            "v": value_loss.item(),
            "clip": float(((ratio - 1).abs() > settings.clip).float().mean()),
            "grad": float(grad_norm),
        }
        for i, head in enumerate(HEAD_ORDER):
            stats["entropy_sum_" + head.value] = float(ev.entropy[head].sum())  # 0 where unused
            stats["used_" + head.value] = float(ev.used[..., i].sum())
    return stats


def entropy_bonus(evaluation: Evaluation) -> Tensor:
    """The entropy the loss rewards: per step, the sum of the normalized entropies of the heads
    that step's op used, averaged over all steps.

    Each head so counts as often as the policy decides with it (the entropy of the decisions it
    actually makes). A mean over only the steps where a head was used would instead give a head
    used on 1 step in 20 (blueprint, on GERMINATE) 20 times the weight per use of the op head.
    """
    per_step = torch.stack([evaluation.entropy[h] for h in HEAD_ORDER]).sum(0)  # (T, B)
    return per_step.mean()  # entropy[h] is 0 where h was unused


def _entropy_where_used(steps: list[dict[str, float]], head: Head) -> float:
    """Over all minibatch steps, so a minibatch where the head was never used counts for
    nothing (rather than as 0); 0 if it was used nowhere."""
    used = sum(s["used_" + head.value] for s in steps)
    return sum(s["entropy_sum_" + head.value] for s in steps) / max(used, 1.0)


def _mean(steps: list[dict[str, float]], key: str) -> float:
    return sum(s[key] for s in steps) / len(steps) if steps else float("nan")
