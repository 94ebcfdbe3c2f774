"""Running mean / standard deviation (Welford), frozen while a rollout is collected."""

from __future__ import annotations

from typing import Any

import numpy as np

# Below this standard deviation a dimension counts as constant (features are O(1) by design).
_CONSTANT = 1e-6


class RunningNormalizer:
    """Per-dimension running statistics with Chan et al.'s parallel update.

    `normalize` uses the statistics as they are; `update` folds in a batch. The trainer updates
    only between rollouts, so every observation within a rollout is scaled the same way, and
    the buffer stores the normalized values the policy actually saw.

    A dimension that has never varied (the parameter price of a run trained at one price) keeps
    unit scale: it is centred, not divided by ~0, so a later different value (that policy
    evaluated at another price) moves it by its own analytic amount instead of to the clip.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, epsilon: float = 1e-8) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.m2 = np.zeros(shape, dtype=np.float64)
        self.count = 0
        self.clip, self.epsilon = clip, epsilon

    @property
    def std(self) -> np.ndarray:
        if self.count < 2:
            return np.ones_like(self.mean)
        raw = np.sqrt(self.m2 / self.count)
        return np.where(raw < _CONSTANT, 1.0, raw + self.epsilon)

    def update(self, batch: np.ndarray) -> None:
        """Fold in samples of shape (N, *shape)."""
        batch = np.asarray(batch, dtype=np.float64)
        if batch.shape[1:] != self.mean.shape:
            raise ValueError(
                f"batch of shape {batch.shape} does not hold samples of shape {self.mean.shape}"
            )
        n = batch.shape[0]
        if n == 0:
            return
        batch_mean = batch.mean(axis=0)
        batch_m2 = ((batch - batch_mean) ** 2).sum(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * n / total
        self.m2 = self.m2 + batch_m2 + delta**2 * self.count * n / total
        self.count = total

    def normalize(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.clip(z, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "m2": self.m2.tolist(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        mean = np.asarray(state["mean"], dtype=np.float64)
        m2 = np.asarray(state["m2"], dtype=np.float64)
        if mean.shape != self.mean.shape or m2.shape != self.mean.shape:
            raise ValueError(
                f"normalizer state of shapes {mean.shape}/{m2.shape} does not match "
                f"{self.mean.shape}"
            )
        self.mean, self.m2 = mean, m2
        self.count = int(state["count"])
