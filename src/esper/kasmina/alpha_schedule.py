"""The one alpha of a slot: how far its seed is blended into the host, ramped epoch by epoch."""

from __future__ import annotations

import math
from typing import Any

from esper.leyline import SIGMOID_STEEPNESS, Curve


def curve_fraction(curve: Curve, t: float, steepness: float = SIGMOID_STEEPNESS) -> float:
    """Progress in [0, 1] after a fraction t in [0, 1] of the ramp; 0 at t=0, exactly 1 at t=1."""
    if t <= 0.0:
        return 0.0
    if t >= 1.0:
        return 1.0
    if curve == Curve.LINEAR:
        return t
    if curve == Curve.COSINE:
        return (1.0 - math.cos(math.pi * t)) / 2.0
    if curve == Curve.SIGMOID:
        # Logistic rescaled so the ends land exactly on 0 and 1.
        lo = 1.0 / (1.0 + math.exp(steepness / 2.0))
        hi = 1.0 - lo
        return (1.0 / (1.0 + math.exp(-steepness * (t - 0.5))) - lo) / (hi - lo)
    raise ValueError(f"unknown curve {curve!r}; known: {[c.name for c in Curve]}")


class AlphaSchedule:
    """A ramp of alpha from `start` to `target` over `steps` epoch-boundary ticks.

    `steps=0` jumps straight to the target. A new target may only be set once the current
    ramp has finished (`retarget` raises while ramping).
    """

    def __init__(
        self, start: float = 0.0, target: float = 0.0, steps: int = 0, curve: Curve = Curve.LINEAR
    ) -> None:
        self._set(start, target, steps, curve)

    def _set(self, start: float, target: float, steps: int, curve: Curve) -> None:
        for name, value in (("start", start), ("target", target)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"alpha {name} must be in [0, 1], got {value}")
        if steps < 0:
            raise ValueError(f"alpha ramp steps must be >= 0, got {steps}")
        self.start, self.target, self.steps, self.curve = float(start), float(target), steps, curve
        self.step = 0

    @property
    def value(self) -> float:
        if self.steps == 0 or self.step >= self.steps:
            return self.target
        fraction = curve_fraction(self.curve, self.step / self.steps)
        return self.start + (self.target - self.start) * fraction

    @property
    def steps_left(self) -> int:
        return max(0, self.steps - self.step)

    @property
    def is_ramping(self) -> bool:
        return self.steps_left > 0

    def tick(self) -> float:
        """Advance one epoch boundary; returns the new alpha."""
        if self.step < self.steps:
            self.step += 1
        return self.value

    def retarget(self, target: float, steps: int, curve: Curve) -> None:
        """Start a new ramp from the current alpha. Raises while a ramp is still running."""
        if self.is_ramping:
            raise RuntimeError(
                f"cannot retarget alpha to {target} while ramping to {self.target} "
                f"({self.steps_left} steps left)"
            )
        self._set(self.value, target, steps, curve)

    def state_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "target": self.target,
            "steps": self.steps,
            "curve": int(self.curve),
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._set(state["start"], state["target"], state["steps"], Curve(state["curve"]))
        self.step = int(state["step"])
