"""Intervals and p-values: degenerate samples, reference values, coverage at 10 seeds."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import scipy.stats

from esper.simic.evaluation import (
    EXACT_SIGN_FLIP_LIMIT,
    bootstrap_ci,
    paired_bootstrap_ci,
    paired_p_value,
    sign_flip_p_value,
)

# -- the interval -----------------------------------------------------------------------------


def test_a_constant_sample_has_a_zero_width_interval_at_the_constant() -> None:
    mean, lo, hi = bootstrap_ci([0.1] * 7)  # BCa itself is undefined here (0/0)

    assert (mean, lo, hi) == (0.1, 0.1, 0.1)


@pytest.mark.parametrize(
    ("values", "mean"),
    [([3.0], 3.0), ([1.0, math.nan, 2.0], math.nan), ([1.0, math.inf], math.inf)],
    ids=["one value", "nan", "inf"],
)
def test_no_interval_is_read_from_one_value_or_a_non_finite_one(
    values: list[float], mean: float
) -> None:
    got_mean, lo, hi = bootstrap_ci(values)

    assert got_mean == mean or (math.isnan(got_mean) and math.isnan(mean))
    assert math.isnan(lo) and math.isnan(hi)


def test_the_interval_matches_the_normal_approximation_on_a_large_sample() -> None:
    """For n = 400 the bootstrap distribution of the mean is close to normal: the 95% interval
    is mean +- 1.96 s / sqrt(n) (with the plug-in, biased, standard deviation)."""
    sample = np.random.default_rng(1).normal(10.0, 2.0, size=400)

    mean, lo, hi = bootstrap_ci(sample)

    half_width = 1.96 * sample.std(ddof=0) / np.sqrt(sample.size)
    assert mean == pytest.approx(sample.mean())
    assert lo == pytest.approx(mean - half_width, abs=0.1 * half_width)
    assert hi == pytest.approx(mean + half_width, abs=0.1 * half_width)


def test_the_interval_is_scipys_bca_interval() -> None:
    sample = np.random.default_rng(5).exponential(size=12)

    reference = scipy.stats.bootstrap(
        (sample,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(7)
    ).confidence_interval

    assert bootstrap_ci(sample, 2000, seed=7)[1:] == (reference.low, reference.high)


def test_on_a_right_skewed_sample_bca_moves_the_interval_toward_the_long_tail() -> None:
    """The percentile interval of a right-skewed sample sits too far left (it misses mostly
    below the true mean); BCa's bias and acceleration corrections move both ends right."""
    sample = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 6.0, 10.0, 30.0])
    means = sample[np.random.default_rng(0).integers(0, 10, size=(10_000, 10))].mean(axis=1)
    percentile_lo, percentile_hi = np.quantile(means, [0.025, 0.975])

    _, lo, hi = bootstrap_ci(sample)

    assert lo > percentile_lo and hi > percentile_hi


def test_the_bootstrap_is_deterministic_given_its_seed() -> None:
    sample = np.random.default_rng(2).uniform(60, 80, size=30)

    assert bootstrap_ci(sample, seed=3) == bootstrap_ci(sample, seed=3)
    # Resampled means of 30 distinct values almost never tie, so the quantiles move.
    assert bootstrap_ci(sample, seed=3) != bootstrap_ci(sample, seed=4)


def test_pairing_finds_a_shift_that_the_spread_between_seeds_hides() -> None:
    """Seeds differ by up to 20 points; the controller adds 1.5 +- 0.2 on every one of them."""
    rng = np.random.default_rng(0)
    baseline = rng.uniform(60, 80, size=10)
    better = baseline + 1.5 + rng.normal(0, 0.2, size=10)

    mean, lo, hi = paired_bootstrap_ci(better, baseline)

    assert 0 < lo < 1.5 < hi
    assert mean == pytest.approx(float(np.mean(better - baseline)))
    _, lo_better, _ = bootstrap_ci(better)
    _, _, hi_baseline = bootstrap_ci(baseline)
    assert lo_better < hi_baseline  # the unpaired intervals overlap


def test_the_paired_interval_is_scipys_paired_bootstrap_of_the_difference_of_means() -> None:
    """Why the differences are bootstrapped as one sample: the same resampled seeds and the same
    jackknife as `paired=True` with a statistic of both samples, so the same interval."""
    rng = np.random.default_rng(3)
    a = rng.uniform(60, 80, size=10)
    b = a - 1.0 + rng.normal(0, 1.0, size=10)

    def difference_of_means(x: np.ndarray, y: np.ndarray, axis: int) -> np.ndarray:
        return np.asarray(np.mean(x, axis=axis) - np.mean(y, axis=axis))

    reference = scipy.stats.bootstrap(
        (a, b), difference_of_means, paired=True, method="BCa", rng=np.random.default_rng(0)
    ).confidence_interval

    _, lo, hi = paired_bootstrap_ci(a, b, n_resamples=9999)
    assert (lo, hi) == pytest.approx((reference.low, reference.high), rel=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"values": []}, "non-empty"),
        ({"values": [1.0], "confidence": 1.0}, "confidence"),
        ({"values": [1.0], "n_resamples": 0}, "n_resamples"),
    ],
)
def test_bootstrap_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        bootstrap_ci(**kwargs)


def test_paired_samples_must_pair_up() -> None:
    with pytest.raises(ValueError, match="same shape"):
        paired_bootstrap_ci([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same shape"):
        paired_p_value([1.0, 2.0], [1.0])


# -- coverage at n = 10 -----------------------------------------------------------------------

SIMULATIONS = 1000  # samples of 10 per distribution: about a second each
# P(|t_9| <= z_0.975 sqrt(9/10)): for a symmetric sample BCa's corrections vanish and the
# interval is mean +- z * (plug-in sd) / sqrt(n), whose coverage of a normal mean this is.
NORMAL_COVERAGE = 2 * scipy.stats.t.cdf(1.959964 * math.sqrt(0.9), df=9) - 1  # 0.904
# Lognormal(0, 1) has no such formula: measured with 20,000 samples x 999 resamples (SE 0.0027).
LOGNORMAL_COVERAGE, LOGNORMAL_REFERENCE_SE = 0.826, 0.0027


@pytest.mark.parametrize(
    ("draw", "true_mean", "expected", "reference_se"),
    [
        (lambda rng: rng.normal(0.0, 1.0, size=10), 0.0, NORMAL_COVERAGE, 0.0),
        (
            lambda rng: rng.lognormal(0.0, 1.0, size=10),
            math.exp(0.5),
            LOGNORMAL_COVERAGE,
            LOGNORMAL_REFERENCE_SE,
        ),
    ],
    ids=["normal", "lognormal"],
)
def test_the_95_percent_interval_covers_the_mean_at_n_10_as_bca_does(
    draw: Callable[[np.random.Generator], np.ndarray],
    true_mean: float,
    expected: float,
    reference_se: float,
) -> None:
    """At 10 seeds a 95% bootstrap interval covers less than 95% (see statistics.py): about 90%
    of normal samples and 83% of lognormal ones (the percentile interval: 80%). The
    tolerance is 5 standard errors of the simulated rate (binomial) and of the reference: a
    correct interval leaves the band with probability < 1e-6."""
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(SIMULATIONS):
        _, lo, hi = bootstrap_ci(draw(rng), n_resamples=999)
        covered += lo <= true_mean <= hi

    rate = covered / SIMULATIONS
    binomial_se = math.sqrt(expected * (1 - expected) / SIMULATIONS)
    tolerance = 5 * math.hypot(binomial_se, reference_se)
    assert abs(rate - expected) <= tolerance, (rate, expected, tolerance)


# -- the p-value ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("differences", "p"),
    [
        # sums over the 8 sign assignments: +-6, +-4, +-2, 0, 0; |sum| >= 6 for 2 of them
        ([1.0, 2.0, 3.0], 2 / 8),
        # 16 assignments, the sum is 10 - 2 * (sum of the flipped values): |sum| >= 10 only for
        # none or all flipped
        ([1.0, 2.0, 3.0, 4.0], 2 / 16),
        # observed sum 6; |10 - 2 s| >= 6 for flipped sums s <= 2 ({}, {1}, {2}) or s >= 8
        # ({1, 3, 4}, {2, 3, 4}, {1, 2, 3, 4})
        ([1.0, -2.0, 3.0, 4.0], 6 / 16),
        # observed sum 0: every assignment is at least as extreme
        ([1.0, -1.0, 2.0, -2.0], 1.0),
        ([0.0, 0.0, 0.0, 0.0], 1.0),  # no difference on any seed
        ([5.0], 1.0),  # one seed: +5 and -5 are equally extreme
    ],
)
def test_the_sign_flip_p_value_matches_hand_computed_values(
    differences: list[float], p: float
) -> None:
    assert sign_flip_p_value(differences) == pytest.approx(p, abs=1e-15)


def test_ties_that_differ_only_by_rounding_count_as_ties() -> None:
    """0.1 + 0.2 != 0.3 in floating point; the assignment flipping 0.3 still ties with none."""
    assert sign_flip_p_value([0.1, 0.2, -0.3]) == 1.0


def test_a_paired_p_value_tests_the_per_seed_differences() -> None:
    a, b = [71.0, 82.0, 76.0, 90.0], [70.0, 80.0, 73.0, 86.0]

    assert paired_p_value(a, b) == sign_flip_p_value([1.0, 2.0, 3.0, 4.0]) == 2 / 16
    assert math.isnan(paired_p_value([1.0, math.nan], [1.0, 2.0]))


def exact_reference(differences: np.ndarray) -> float:
    """Every sign assignment, one at a time (the slow obvious version)."""
    observed = abs(differences.sum())
    n = differences.size
    extreme = sum(
        abs(sum(d if (k >> i) & 1 == 0 else -d for i, d in enumerate(differences)))
        >= observed - 1e-9
        for k in range(2**n)
    )
    return extreme / 2**n


def test_the_exact_test_enumerates_every_assignment() -> None:
    differences = np.random.default_rng(4).normal(0.4, 1.0, size=10)

    assert sign_flip_p_value(differences) == pytest.approx(exact_reference(differences))


def test_beyond_the_exact_limit_the_p_value_is_a_monte_carlo_estimate_of_the_exact_one() -> None:
    n = EXACT_SIGN_FLIP_LIMIT + 1  # 131,072 assignments, enumerated here with numpy
    differences = np.random.default_rng(6).normal(0.4, 1.0, size=n)
    bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
    sums = (1 - 2 * bits) @ differences
    exact = float(np.mean(np.abs(sums) >= abs(differences.sum()) - 1e-9))

    estimate = sign_flip_p_value(differences, n_resamples=20_000)

    # 5 binomial standard errors of an estimate from 20,000 assignments.
    assert estimate == pytest.approx(exact, abs=5 * math.sqrt(exact * (1 - exact) / 20_000))
    assert estimate == sign_flip_p_value(differences, n_resamples=20_000)  # seeded
