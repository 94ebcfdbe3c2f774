"""The trained PPO controller behind the shared `Policy` protocol (for evaluation and reuse)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.simic.checkpoint import load_checkpoint
from esper.simic.config import TrainingConfig
from esper.simic.normalizer import RunningNormalizer
from esper.tamiyo.action_codec import decode
from esper.tamiyo.features import ActionSpace, FeatureSpec, Observation, restrict_masks
from esper.tamiyo.policy import PolicyStep
from esper.tamiyo.policy_network import PolicyNetwork, stack_masks


def network_input(
    observations: Sequence[Observation],
    normalizer: RunningNormalizer,
    action_space: ActionSpace = "full",
) -> tuple[np.ndarray, torch.Tensor, dict[str, torch.Tensor]]:
    """What the policy network sees for a batch of envs: raw features (N, F), the normalized
    features (N, F) and the stacked masks (head -> (N, ...)) of `action_space`."""
    raw = np.stack([o.features for o in observations])  # (N, F)
    features = torch.from_numpy(normalizer.normalize(raw))
    restricted = [restrict_masks(o.masks, action_space) for o in observations]
    masks = {k: torch.from_numpy(v) for k, v in stack_masks(restricted).items()}
    return raw, features, masks


class LearnedPolicy:
    """A policy network with the feature normalizer it was trained with (frozen).

    Args:
        deterministic: take the most likely choice of every head instead of sampling.
    """

    name = "ppo"

    def __init__(
        self,
        network: PolicyNetwork,
        normalizer: RunningNormalizer,
        spec: FeatureSpec,
        deterministic: bool = True,
        seed: int = 0,
        action_space: ActionSpace = "full",
    ) -> None:
        self.network, self.normalizer, self.spec = network.eval(), normalizer, spec
        self.action_space = action_space
        self.deterministic = deterministic
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_checkpoint(
        cls, path: Path, spec: FeatureSpec, deterministic: bool = True, seed: int = 0
    ) -> LearnedPolicy:
        """Load a `train ppo` checkpoint for envs described by `spec`.

        Raises:
            CheckpointError: unreadable checkpoint; ValueError: trained for other envs.
        """
        payload = load_checkpoint(path)
        config = TrainingConfig.model_validate(payload["config"])
        state = payload["trainer"]
        network = PolicyNetwork(spec.size, spec.head_sizes, config.hidden)
        try:
            network.load_state_dict(state["network"])
        except RuntimeError:
            raise ValueError(
                f"checkpoint {path} was trained for task {config.task!r} with other slots or "
                f"features than these envs ({spec.size} features, slots {spec.slot_ids})"
            ) from None
        normalizer = RunningNormalizer((spec.size,))
        normalizer.load_state_dict(state["obs_normalizer"])
        return cls(network, normalizer, spec, deterministic, seed, config.action_space)

    def initial_state(self, n_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.initial_state(n_envs)

    def act(self, observations: Sequence[Observation], state: Any) -> PolicyStep:
        _, features, masks = network_input(observations, self.normalizer, self.action_space)
        actions, log_probs, values, state = self.network.act(
            features, masks, state, generator=self.generator, deterministic=self.deterministic
        )
        chosen = [decode(self.spec, a) for a in actions.numpy()]
        return PolicyStep(chosen, state, log_probs.numpy(), values.numpy())
