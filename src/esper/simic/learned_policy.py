"""The trained PPO controller behind the shared `Policy` protocol (for evaluation and reuse)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.leyline import Head
from esper.simic.checkpoint import CheckpointError, load_checkpoint
from esper.simic.config import TrainingConfig
from esper.simic.normalizer import RunningNormalizer
from esper.tamiyo.action_codec import decode
from esper.tamiyo.features import (
    ActionMasks,
    ActionSpace,
    FeatureSpec,
    Observation,
    restrict_masks,
)
from esper.tamiyo.policy import PolicyStep
from esper.tamiyo.policy_network import PolicyNetwork
from esper.tamiyo.slot_view import (
    BLUEPRINT_DESCRIPTOR,
    GLOBAL_INPUT,
    SLOT_CORE,
    SLOT_DESCRIPTOR,
    SLOT_INPUT,
    Padding,
    SlotView,
)


class ObservationNormalizer:
    """Running statistics of what the network reads, frozen while a rollout is collected: one
    over the global block, and one over the slot block shared by every real slot of every host
    (a slot is a slot, whichever host it is in). Descriptors are not normalized: they are O(1)
    by construction and fixed per host (`esper.tamiyo.slot_view`)."""

    def __init__(self) -> None:
        self.globals = RunningNormalizer((GLOBAL_INPUT,))
        self.slots = RunningNormalizer((SLOT_CORE,))

    def update(self, raw: Mapping[str, np.ndarray]) -> None:
        """Fold in raw inputs (..., G), (..., S, C) with their slot_valid (..., S)."""
        self.globals.update(raw["globals"].reshape(-1, GLOBAL_INPUT))
        valid = raw["slot_valid"].reshape(-1)
        self.slots.update(raw["slots"].reshape(-1, SLOT_CORE)[valid])

    def state_dict(self) -> dict[str, Any]:
        return {"globals": self.globals.state_dict(), "slots": self.slots.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if set(state) != {"globals", "slots"}:
            raise ValueError(f"observation normalizer state has {sorted(state)}")
        self.globals.load_state_dict(state["globals"])
        self.slots.load_state_dict(state["slots"])


def input_shapes(padding: Padding) -> tuple[dict[str, tuple[int, ...]], dict[str, tuple[int, ...]]]:
    """Per env and step, the shapes of the network's inputs and of the raw inputs behind them."""
    s, k = padding.slots, padding.blueprints
    inputs = {
        "globals": (GLOBAL_INPUT,),
        "slots": (s, SLOT_INPUT),
        "slot_valid": (s,),
        "blueprints": (s, k, len(BLUEPRINT_DESCRIPTOR)),
    }
    raw = {"globals": (GLOBAL_INPUT,), "slots": (s, SLOT_CORE), "slot_valid": (s,)}
    return inputs, raw


def network_input(
    observations: Sequence[Observation],
    views: Sequence[SlotView],
    normalizer: ObservationNormalizer,
    padding: Padding,
    action_space: ActionSpace = "full",
) -> tuple[dict[str, np.ndarray], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """What the policy network sees for a batch of envs, each observation read through its own
    host's view, padded to `padding`: the raw inputs (to update the normalizer), the inputs
    (normalized where they are statistics) and the stacked masks of `action_space`, each
    keyed by name with a leading (N,)."""
    n, s, k = len(observations), padding.slots, padding.blueprints
    d, e = len(BLUEPRINT_DESCRIPTOR), len(SLOT_DESCRIPTOR)
    globals_ = np.zeros((n, GLOBAL_INPUT), dtype=np.float32)
    core = np.zeros((n, s, SLOT_CORE), dtype=np.float32)
    planted = np.zeros((n, s, d), dtype=np.float32)
    slot_desc = np.zeros((n, s, e), dtype=np.float32)
    blueprints = np.zeros((n, s, k, d), dtype=np.float32)
    valid = np.zeros((n, s), dtype=bool)
    masks: dict[str, list[np.ndarray]] = {h.value: [] for h in Head}
    for i, (obs, view) in enumerate(zip(observations, views, strict=True)):
        n_slots, n_bp = len(view.spec.slot_ids), len(view.spec.blueprints)
        g, c, p = view.split(obs.features[None])
        globals_[i], core[i, :n_slots], planted[i, :n_slots] = g[0], c[0], p[0]
        slot_desc[i, :n_slots] = view.slot_descriptors
        blueprints[i, :n_slots, :n_bp] = view.blueprint_descriptors
        valid[i, :n_slots] = True
        for head, mask in _padded_masks(restrict_masks(obs.masks, action_space), padding).items():
            masks[head].append(mask)
    normalized_core = normalizer.slots.normalize(core.reshape(-1, SLOT_CORE)).reshape(core.shape)
    normalized_core *= valid[..., None]  # padded slots read as zeros
    slots = np.concatenate([normalized_core, planted, slot_desc], -1)
    raw = {"globals": globals_, "slots": core, "slot_valid": valid}
    inputs = {
        "globals": torch.from_numpy(normalizer.globals.normalize(globals_)),
        "slots": torch.from_numpy(slots),
        "slot_valid": torch.from_numpy(valid),
        "blueprints": torch.from_numpy(blueprints),
    }
    stacked = {head: torch.from_numpy(np.stack(rows)) for head, rows in masks.items()}
    return raw, inputs, stacked


def _padded_masks(masks: ActionMasks, padding: Padding) -> dict[str, np.ndarray]:
    """One env's masks with the slot and blueprint axes padded (padding is never legal)."""
    ds = padding.slots - len(masks.slot_ids)
    dk = padding.blueprints - len(masks.blueprints)
    if ds < 0 or dk < 0:
        raise ValueError(
            f"a host of {len(masks.slot_ids)} slots and {len(masks.blueprints)} blueprints does "
            f"not fit the network input's {padding.slots} and {padding.blueprints}"
        )
    return {
        "op": masks.op,
        "slot": np.pad(masks.slot, ((0, 0), (0, ds))),
        "blueprint": np.pad(masks.blueprint, ((0, ds), (0, dk))),
        "blend": np.pad(masks.blend, ((0, ds), (0, 0))),
        "tempo": masks.tempo,
        "alpha_target": np.pad(masks.alpha_target, ((0, 0), (0, ds), (0, 0))),
        "curve": masks.curve,
    }


class LearnedPolicy:
    """A policy network with the feature normalizer it was trained with (frozen), acting for
    envs of one host (`spec`); the network itself fits any host.

    Args:
        deterministic: take the most likely choice of every head instead of sampling.
    """

    name = "ppo"

    def __init__(
        self,
        network: PolicyNetwork,
        normalizer: ObservationNormalizer,
        spec: FeatureSpec,
        deterministic: bool = True,
        seed: int = 0,
        action_space: ActionSpace = "full",
    ) -> None:
        self.network, self.normalizer, self.spec = network.eval(), normalizer, spec
        self.view, self.padding = SlotView(spec), Padding.of([spec])
        self.action_space = action_space
        self.deterministic = deterministic
        self.generator = torch.Generator().manual_seed(seed)

    @classmethod
    def from_checkpoint(
        cls, path: Path, spec: FeatureSpec, deterministic: bool = True, seed: int = 0
    ) -> LearnedPolicy:
        """Load a `train ppo` checkpoint for envs described by `spec`: any host, whichever
        task and host it was trained on.

        Raises:
            CheckpointError: unreadable checkpoint, or one whose network does not load.
        """
        payload = load_checkpoint(path)
        config = TrainingConfig.model_validate(payload["config"])
        state = payload["trainer"]
        network = PolicyNetwork(config.hidden)
        normalizer = ObservationNormalizer()
        try:
            network.load_state_dict(state["network"])
            normalizer.load_state_dict(state["obs_normalizer"])
        except (RuntimeError, ValueError) as error:
            first = str(error).splitlines()[0][:200]
            raise CheckpointError(
                f"checkpoint {path}: its policy does not load ({first})"
            ) from None
        return cls(network, normalizer, spec, deterministic, seed, config.action_space)

    def initial_state(self, n_envs: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.network.initial_state(n_envs)

    def act(self, observations: Sequence[Observation], state: Any) -> PolicyStep:
        views = [self.view] * len(observations)
        _, inputs, masks = network_input(
            observations, views, self.normalizer, self.padding, self.action_space
        )
        actions, log_probs, values, state = self.network.act(
            inputs, masks, state, generator=self.generator, deterministic=self.deterministic
        )
        chosen = [decode(self.spec, a) for a in actions.numpy()]
        return PolicyStep(chosen, state, log_probs.numpy(), values.numpy())
