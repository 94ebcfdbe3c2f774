"""The governor: keeps a healthy snapshot and rolls the host back after a training catastrophe.

Catastrophes, all judged on the epoch's training loss relative to the task's chance-level loss
(ln(classes)), never on one absolute number:
- a non-finite loss;
- a collapse to chance: loss >= `collapse_fraction` x chance after the host had reached
  <= `learned_fraction` x chance (so an untrained host at chance is not a "collapse");
- a sustained explosion: `explosion_epochs` consecutive epochs above both mean + 6 sigma and
  3x the mean of the last `window` healthy losses.
A rollback restores host and fossilized seeds, prunes every probationary seed (initiator
`governor`) and clears optimizer momentum.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch

from esper.kasmina import MorphogeneticModel
from esper.kasmina.lifecycle import force_prune
from esper.leyline import Initiator, LifecycleEvent, Stage


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
        self._snapshot: dict[str, Any] | None = None

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
        self._snapshot = {
            "host": copy.deepcopy(model.host.state_dict()),
            "fossils": {
                s.slot_id: copy.deepcopy(s.state_dict())
                for s in model.seed_slots()
                if s.stage == Stage.FOSSILIZED
            },
        }

    def rollback(self, model: MorphogeneticModel, reason: str) -> list[LifecycleEvent]:
        """Restore the snapshot and prune every probationary seed."""
        events = [
            e
            for slot in model.seed_slots()
            for e in force_prune(slot, f"governor rollback: {reason}", Initiator.GOVERNOR)
        ]
        if self._snapshot is not None:
            with torch.no_grad():
                model.host.load_state_dict(self._snapshot["host"])
                for slot_id, state in self._snapshot["fossils"].items():
                    model.slot(slot_id).load_state_dict(state)
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
