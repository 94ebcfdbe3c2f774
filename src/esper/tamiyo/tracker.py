"""The signal tracker: raw per-epoch numbers in, the controller's `EpochMetrics` out.

It derives what a controller needs from one number per epoch: deltas against the previous epoch,
the best validation accuracy so far, a plateau counter, a stabilization latch and short histories
(docs/architecture.md §6). Defaults are those of docs/architecture.md §11.

- Plateau: the number of consecutive epochs that failed to beat the best validation accuracy so
  far by at least `plateau_pp`; a new best by that margin resets it. Measured against the best
  rather than the previous epoch because validation accuracy is noisy: a recovery from a dip is
  not progress (on digits an epoch-over-epoch rule almost never saw three flat epochs in a row
  while the best accuracy stood still for five). The first epoch never counts.
- Stabilization: latched once `stabilize_epochs` consecutive epochs improve the validation loss by
  less than `stabilize_rel_improvement` of its previous value; it is never unset within an
  episode (a later spike of the loss does not make an early host "unsettled" again, and the
  heuristic must not flip between germinating and not). An epoch whose loss rose counts as
  settled: its improvement is below the bar. The first epoch never counts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from esper.leyline import EpochMetrics


@dataclass(frozen=True)
class TrackerConfig:
    plateau_pp: float = 0.5  # a val-accuracy gain below this (percentage points) is a flat epoch
    stabilize_epochs: int = 3  # consecutive settled epochs that latch "stabilized"
    stabilize_rel_improvement: float = 0.03  # settled: val loss improved by less than 3%
    history: int = 10  # how many recent epochs the histories keep

    def __post_init__(self) -> None:
        if not (math.isfinite(self.plateau_pp) and self.plateau_pp >= 0):
            raise ValueError(f"plateau_pp must be finite and >= 0, got {self.plateau_pp}")
        if self.stabilize_epochs < 1:
            raise ValueError(f"stabilize_epochs must be >= 1, got {self.stabilize_epochs}")
        if not (
            math.isfinite(self.stabilize_rel_improvement) and self.stabilize_rel_improvement >= 0
        ):
            raise ValueError(
                "stabilize_rel_improvement must be finite and >= 0, "
                f"got {self.stabilize_rel_improvement}"
            )
        if self.history < 1:
            raise ValueError(f"history must be >= 1, got {self.history}")


_STATE_KEYS = frozenset(
    {
        "last_epoch",
        "best_val_accuracy",
        "plateau_epochs",
        "settled_epochs",
        "is_stabilized",
        "accuracy_history",
        "loss_history",
    }
)


class SignalTracker:
    """Turns one epoch's losses and accuracies into `EpochMetrics`; one tracker per episode.

    Accuracies are in percent (0-100), losses per-sample means, both on the validation split for
    the val_* arguments (decisions never see the test split).
    """

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next `update` is an episode's first epoch."""
        self._last_epoch: int | None = None
        self._best_val_accuracy = 0.0
        self._plateau_epochs = 0
        self._settled_epochs = 0  # consecutive epochs below the relative-improvement bar
        self._is_stabilized = False
        # The last entries are the previous epoch's values: deltas are derived from them.
        self._accuracy_history: deque[float] = deque(maxlen=self.config.history)
        self._loss_history: deque[float] = deque(maxlen=self.config.history)

    @property
    def accuracy_history(self) -> tuple[float, ...]:
        """Validation accuracies of the last `history` epochs, oldest first."""
        return tuple(self._accuracy_history)

    @property
    def loss_history(self) -> tuple[float, ...]:
        """Validation losses of the last `history` epochs, oldest first."""
        return tuple(self._loss_history)

    def update(
        self,
        epoch: int,
        train_loss: float,
        train_accuracy: float,
        val_loss: float,
        val_accuracy: float,
    ) -> EpochMetrics:
        """Record one finished epoch and return the metrics the controller sees.

        Raises:
            ValueError: if `epoch` does not increase, a loss is negative or not finite, or an
                accuracy is outside [0, 100] (e.g. a fraction passed where percent is expected
                would slip through only below 1%; NaN never does).
        """
        self._check_inputs(epoch, train_loss, train_accuracy, val_loss, val_accuracy)
        is_first = self._last_epoch is None
        loss_delta = 0.0 if is_first else val_loss - self._loss_history[-1]
        accuracy_delta = 0.0 if is_first else val_accuracy - self._accuracy_history[-1]
        if not is_first:
            is_flat = val_accuracy < self._best_val_accuracy + self.config.plateau_pp
            self._plateau_epochs = self._plateau_epochs + 1 if is_flat else 0
            previous_loss = self._loss_history[-1]
            # A loss already at 0 cannot improve: that epoch counts as settled.
            relative_improvement = -loss_delta / previous_loss if previous_loss > 0 else 0.0
            is_settled = relative_improvement < self.config.stabilize_rel_improvement
            self._settled_epochs = self._settled_epochs + 1 if is_settled else 0
            if self._settled_epochs >= self.config.stabilize_epochs:
                self._is_stabilized = True
        self._last_epoch = epoch
        self._best_val_accuracy = max(self._best_val_accuracy, val_accuracy)
        self._accuracy_history.append(val_accuracy)
        self._loss_history.append(val_loss)
        return EpochMetrics(
            epoch=epoch,
            train_loss=train_loss,
            train_accuracy=train_accuracy,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            val_loss_delta=loss_delta,
            val_accuracy_delta=accuracy_delta,
            best_val_accuracy=self._best_val_accuracy,
            plateau_epochs=self._plateau_epochs,
            is_stabilized=self._is_stabilized,
        )

    def _check_inputs(
        self,
        epoch: int,
        train_loss: float,
        train_accuracy: float,
        val_loss: float,
        val_accuracy: float,
    ) -> None:
        if self._last_epoch is not None and epoch <= self._last_epoch:
            raise ValueError(
                f"epoch must increase: got {epoch} after {self._last_epoch} "
                "(call reset() to start a new episode)"
            )
        for name, loss in (("train_loss", train_loss), ("val_loss", val_loss)):
            if not (math.isfinite(loss) and loss >= 0):
                raise ValueError(f"{name} must be finite and >= 0, got {loss}")
        for name, accuracy in (("train_accuracy", train_accuracy), ("val_accuracy", val_accuracy)):
            if not (math.isfinite(accuracy) and 0 <= accuracy <= 100):
                raise ValueError(f"{name} must be a percentage in [0, 100], got {accuracy}")

    def state_dict(self) -> dict[str, Any]:
        """Plain Python values (safe for `torch.load(weights_only=True)`)."""
        return {
            "last_epoch": self._last_epoch,
            "best_val_accuracy": self._best_val_accuracy,
            "plateau_epochs": self._plateau_epochs,
            "settled_epochs": self._settled_epochs,
            "is_stabilized": self._is_stabilized,
            "accuracy_history": list(self._accuracy_history),
            "loss_history": list(self._loss_history),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a `state_dict()`; later updates then match the uninterrupted tracker exactly.

        Raises:
            ValueError: on missing or unexpected keys, or histories longer than `history`.
        """
        if set(state) != _STATE_KEYS:
            raise ValueError(
                f"tracker state keys mismatch: missing {sorted(_STATE_KEYS - set(state))}, "
                f"unexpected {sorted(set(state) - _STATE_KEYS)}"
            )
        accuracies = [float(a) for a in state["accuracy_history"]]
        losses = [float(v) for v in state["loss_history"]]
        if len(accuracies) != len(losses) or len(accuracies) > self.config.history:
            raise ValueError(
                f"tracker histories of lengths {len(accuracies)} and {len(losses)} do not fit "
                f"history={self.config.history}"
            )
        last_epoch = state["last_epoch"]
        self._last_epoch = None if last_epoch is None else int(last_epoch)
        self._best_val_accuracy = float(state["best_val_accuracy"])
        self._plateau_epochs = int(state["plateau_epochs"])
        self._settled_epochs = int(state["settled_epochs"])
        self._is_stabilized = bool(state["is_stabilized"])
        self._accuracy_history = deque(accuracies, maxlen=self.config.history)
        self._loss_history = deque(losses, maxlen=self.config.history)
