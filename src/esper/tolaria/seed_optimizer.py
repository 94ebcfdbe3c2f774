"""One SGD optimizer for host and seeds, with a parameter group per seed.

A pruned seed's group is removed (with its momentum state); a fossilized seed's group switches to
the host's hyperparameters, so it trains with the host from then on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from esper.kasmina import MorphogeneticModel
from esper.leyline import Stage

HOST_GROUP = "host"


@dataclass(frozen=True)
class OptimizerSettings:
    host_lr: float
    seed_lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        for name in ("host_lr", "seed_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")


class SeedOptimizer:
    """Keeps the optimizer's parameter groups in step with the model's seeds.

    Call `sync()` after every lifecycle change; it adds groups for new seeds, removes the groups
    of seeds that are gone, and moves fossilized seeds to host hyperparameters.
    """

    def __init__(self, model: MorphogeneticModel, settings: OptimizerSettings) -> None:
        self.model, self.settings = model, settings
        self.optimizer = torch.optim.SGD(
            [{"params": list(model.host.parameters()), "name": HOST_GROUP}],
            lr=settings.host_lr,
            momentum=settings.momentum,
            weight_decay=settings.weight_decay,
        )
        self.sync()

    def _group_lr(self, stage: Stage) -> float:
        return self.settings.host_lr if stage == Stage.FOSSILIZED else self.settings.seed_lr

    def sync(self) -> None:
        wanted = {slot.slot_id: slot for slot in self.model.seed_slots() if slot.is_live}
        kept = []
        for group in self.optimizer.param_groups:
            name = group["name"]
            slot = wanted.get(name)
            same_params = slot is not None and [id(p) for p in group["params"]] == [
                id(p) for p in slot.seed_parameters()
            ]
            if name == HOST_GROUP or same_params:
                kept.append(group)
                if slot is not None:
                    group["lr"] = self._group_lr(slot.stage)
            else:
                for p in group["params"]:
                    self.optimizer.state.pop(p, None)
        self.optimizer.param_groups = kept
        present = {g["name"] for g in kept}
        for slot_id, slot in wanted.items():
            if slot_id not in present:
                self.optimizer.add_param_group(
                    {
                        "params": slot.seed_parameters(),
                        "name": slot_id,
                        "lr": self._group_lr(slot.stage),
                    }
                )

    def group_names(self) -> list[str]:
        return [g["name"] for g in self.optimizer.param_groups]

    def reset_state(self) -> None:
        """Forget momentum (after a governor rollback the old velocities point the wrong way)."""
        self.optimizer.state.clear()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """One SGD step; through `scaler` (fp16), which skips it when gradients overflowed."""
        if scaler is None:
            self.optimizer.step()
            return
        scaler.step(self.optimizer)
        scaler.update()
