"""A synthetic evaluation result (no episodes played) for the summary and results-file tests."""

from __future__ import annotations

import pytest

from esper.leyline import EpisodeOutcome
from esper.simic.episodes import EpisodeRecord
from esper.simic.evaluation import EvaluationResult
from esper.simic.trainer import TRAINING_SEED_LIMIT


def record(controller: str, seed: int, accuracy: float, params_added: int = 0) -> EpisodeRecord:
    outcome = EpisodeOutcome(accuracy, accuracy, 1000, params_added, int(params_added > 0), 0)
    return EpisodeRecord(0, seed, controller, outcome, wall_time_s=1.0)


@pytest.fixture
def synthetic_result() -> EvaluationResult:
    """Three seeds; heuristic is static + 1 point for 100 parameters, ppo static + 3 for 50."""
    seeds = (TRAINING_SEED_LIMIT, TRAINING_SEED_LIMIT + 1, TRAINING_SEED_LIMIT + 2)
    base = {seeds[0]: 70.0, seeds[1]: 80.0, seeds[2]: 75.0}
    shifts = {"static": (0.0, 0), "heuristic": (1.0, 100), "ppo": (3.0, 50)}
    records = {
        label: tuple(
            record(label, s, base[s] + shift + 0.1 * i, added) for i, s in enumerate(seeds)
        )
        for label, (shift, added) in shifts.items()
    }
    return EvaluationResult("digits", 3, seeds, records)
