"""The governor: keeps a healthy snapshot and rolls the host back after a training catastrophe.

Catastrophes, all judged on the epoch's training loss relative to the task's chance-level loss
(ln(classes)), never on one absolute number:
- a non-finite loss;
- a collapse to chance: loss >= `collapse_fraction` x chance after the host had reached
  <= `learned_fraction` x chance (so an untrained host at chance is not a "collapse");
- a sustained explosion: `explosion_epochs` consecutive epochs above both mean + 6 sigma and
  3x the mean of the last `window` healthy losses.
A rollback returns to the snapshot of the last healthy epoch: its host and its fossils, with
their weights then. Every other live seed is pruned (initiator `governor`): the probationary ones,
and a fossil the snapshot does not hold (fossilized since). That seed was on probation at the
snapshot; restored as a fossil it would run de-isolated at alpha 1, a configuration that never
trained healthily, and if fossilizing broke the epoch, every epoch after would roll back again.
(Left alone, a NaN in such a fossil was neither restored nor pruned and rolled the host back
every epoch to the episode's end.) The caller then clears optimizer momentum and drops the
pruned seeds' parameter groups (`SeedOptimizer.reset_state`, `sync`).
"""

from __future__ import annotations

import copy
import math
import statistics
from collections import deque
from dataclasses import dataclass

import torch
from torch import Tensor

from esper.kasmina import MorphogeneticModel
from esper.kasmina.lifecycle import force_prune, remove_fossil
from esper.leyline import Initiator, LifecycleEvent, Stage


@dataclass(frozen=True)
class Snapshot:
    """The last healthy state, in memory: the host's and each fossil's state dict."""

    host: dict[str, Tensor]
    fossils: dict[str, dict[str, Tensor]]  # by slot id


@dataclass(frozen=True)
class GovernorConfig:
    collapse_fraction: float = 0.95
    learned_fraction: float = 0.7
    explosion_sigmas: float = 6.0
    explosion_ratio: float = 3.0
    explosion_epochs: int = 3
    window: int = 20
    min_history: int = 5  # healthy epochs needed before explosions are judged


class Governor:
    def __init__(self, chance_loss: float, config: GovernorConfig = GovernorConfig()) -> None:
        if chance_loss <= 0:
            raise ValueError(f"chance_loss must be > 0, got {chance_loss}")
        self.chance_loss, self.config = chance_loss, config
        self.history: deque[float] = deque(maxlen=config.window)
        self.best_loss = math.inf
        self.explosive_epochs = 0
        self._snapshot: Snapshot | None = None

    def diagnose(self, loss: float) -> str | None:
        """The reason to roll back after an epoch with this training loss, or None if healthy."""
        c = self.config
        if not math.isfinite(loss):
            return f"non-finite training loss ({loss})"
        if self.best_loss <= c.learned_fraction * self.chance_loss and (
            loss >= c.collapse_fraction * self.chance_loss
        ):
            return (
                f"collapse to chance-level loss ({loss:.4f} >= {c.collapse_fraction} x "
                f"{self.chance_loss:.4f} after reaching {self.best_loss:.4f})"
            )
        if len(self.history) >= c.min_history:
            mean = statistics.fmean(self.history)
            sigma = statistics.pstdev(self.history)
            if loss > mean + c.explosion_sigmas * sigma and loss > c.explosion_ratio * mean:
                self.explosive_epochs += 1
                if self.explosive_epochs >= c.explosion_epochs:
                    bar = max(mean + c.explosion_sigmas * sigma, c.explosion_ratio * mean)
                    return (
                        f"loss explosion ({self.explosive_epochs} epochs above {bar:.4f}; "
                        f"last {loss:.4f})"
                    )
                return None
        self.explosive_epochs = 0
        return None

    def record_healthy(self, model: MorphogeneticModel, loss: float) -> None:
        """Remember a healthy epoch and snapshot host + fossilized seeds (in memory).

        An epoch already counted as explosive is not healthy: it must neither raise the
        explosion bar nor become the state a rollback returns to.
        """
        if self.explosive_epochs > 0:
            return
        self.history.append(loss)
        self.best_loss = min(self.best_loss, loss)
        self.snapshot(model)

    def snapshot(self, model: MorphogeneticModel) -> None:
        """Keep a copy of host + fossilized seeds to return to (also taken at episode start)."""
        self._snapshot = Snapshot(
            host=copy.deepcopy(model.host.state_dict()),
            fossils={
                s.slot_id: copy.deepcopy(s.state_dict())
                for s in model.seed_slots()
                if s.stage == Stage.FOSSILIZED
            },
        )

    def rollback(self, model: MorphogeneticModel, reason: str) -> list[LifecycleEvent]:
        """Restore the snapshot's host and fossils; prune every other live seed.

        Raises:
            RuntimeError: before any snapshot (take one at episode start).
        """
        if self._snapshot is None:
            raise RuntimeError("rollback before any snapshot: call snapshot(model) first")
        why = f"governor rollback: {reason}"
        fossils = self._snapshot.fossils
        events: list[LifecycleEvent] = []
        for slot in model.seed_slots():
            if slot.stage == Stage.FOSSILIZED and slot.slot_id not in fossils:
                events += remove_fossil(slot, why)
            else:
                events += force_prune(slot, why, Initiator.GOVERNOR)
        with torch.no_grad():
            model.host.load_state_dict(self._snapshot.host)
            for slot_id, state in fossils.items():
                slot = model.slot(slot_id)
                # Fossils are permanent, and only a rollback removes one it does not hold.
                assert slot.stage == Stage.FOSSILIZED, f"fossil {slot_id} is {slot.stage.name}"
                slot.load_state_dict(state)
        # The restored host may have co-adapted to seeds that are now pruned, so its first
        # epochs back can average a loss near chance while it recovers. Judged against the old
        # baselines, every such epoch "collapsed" again and was rolled back to the same
        # snapshot, forever (seen in PPO runs on digits: rollbacks every epoch to the episode's
        # end). The baselines restart: collapse re-arms once the host learns again, and the
        # explosion history refills. Non-finite losses are still caught at once.
        self.explosive_epochs = 0
        self.best_loss = math.inf
        self.history.clear()
        return events
