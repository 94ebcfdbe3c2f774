"""Summaries: per-controller estimates, the paired comparisons with their p-values."""

from __future__ import annotations

from dataclasses import replace

import pytest

from esper.simic.evaluation import (
    EvaluationResult,
    most_common_growth,
    sign_flip_p_value,
    summarize,
)


def test_summary_compares_ppo_with_both_baselines_and_the_heuristic_with_static(
    synthetic_result: EvaluationResult,
) -> None:
    summary = summarize(synthetic_result)

    assert [c.label for c in summary.controllers] == ["static", "heuristic", "ppo"]
    ppo = summary.controllers[2]
    assert ppo.test_accuracy.mean == pytest.approx(78.1)
    assert ppo.growth_ratio.mean == pytest.approx(1.05)
    assert ppo.seeds_fossilized.mean == 1.0
    pairs = [(c.minuend, c.subtrahend, c.metric) for c in summary.comparisons]
    assert pairs == [
        ("ppo", "heuristic", "test_accuracy"),
        ("ppo", "heuristic", "params_added"),
        ("ppo", "static", "test_accuracy"),
        ("ppo", "static", "params_added"),
        ("heuristic", "static", "test_accuracy"),
        ("heuristic", "static", "params_added"),
    ]
    ppo_vs_heuristic = summary.comparisons[0].difference
    assert ppo_vs_heuristic.mean == pytest.approx(2.0)
    assert ppo_vs_heuristic.excludes_zero  # +2 on every seed
    assert summary.comparisons[1].difference.mean == -50


def test_every_comparison_carries_the_sign_flip_p_value_of_its_differences(
    synthetic_result: EvaluationResult,
) -> None:
    summary = summarize(synthetic_result)

    # Every difference has one sign on all 3 seeds: the smallest p-value 3 seeds allow, 2/8.
    assert [c.p_value for c in summary.comparisons] == [sign_flip_p_value([1, 1, 1])] * 6
    assert summary.comparisons[0].p_value == 0.25


def test_a_figure_that_never_varies_is_its_own_zero_width_interval(
    synthetic_result: EvaluationResult,
) -> None:
    """Static adds 0 parameters on every seed; heuristic adds exactly 100 more than static."""
    summary = summarize(synthetic_result)

    static = summary.controllers[0].params_added
    assert (static.mean, static.lo, static.hi) == (0.0, 0.0, 0.0)
    heuristic_vs_static = summary.comparisons[5]
    assert heuristic_vs_static.metric == "params_added"
    difference = heuristic_vs_static.difference
    assert (difference.mean, difference.lo, difference.hi) == (100.0, 100.0, 100.0)


def test_the_most_common_growth_is_named_with_its_count(
    synthetic_result: EvaluationResult,
) -> None:
    grown = [("conv_small@r0c0", "norm@r0c1"), ("conv_small@r0c0", "norm@r0c1"), ()]
    ppo = tuple(
        replace(r, outcome=replace(r.outcome, grown=g))
        for r, g in zip(synthetic_result.records["ppo"], grown, strict=True)
    )
    summary = summarize(replace(synthetic_result, records={**synthetic_result.records, "ppo": ppo}))

    assert most_common_growth(summary, "ppo") == ("conv_small@r0c0+norm@r0c1", 2)
    assert most_common_growth(summary, "static") == ("none", 3)


def test_summary_refuses_records_that_do_not_pair_up(synthetic_result: EvaluationResult) -> None:
    shuffled = dict(synthetic_result.records, ppo=synthetic_result.records["ppo"][::-1])

    with pytest.raises(ValueError, match="ppo"):
        summarize(EvaluationResult("digits", 3, synthetic_result.seeds, shuffled))
