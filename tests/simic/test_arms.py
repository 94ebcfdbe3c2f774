"""A/B arms (issue 13, item 1): the spec syntax, the settings each arm may change, and the seeds."""

from __future__ import annotations

import pytest

from esper.simic.arms import arm_configs, arm_seed, parse_arm
from esper.simic.config import ConfigError, TrainingConfig


def config(ab: str) -> TrainingConfig:
    return TrainingConfig.preset("digits").with_overrides({"ab": ab, "n_envs": 2})


def test_the_three_forms_of_an_arm_and_its_name() -> None:
    assert parse_arm("simplified").settings == {"reward_mode": "simplified"}
    assert parse_arm("digits_lean").settings["rent_weight"]  # a preset's settings
    lean = parse_arm("lean:rent_weight=2.5;lr=1e-4")
    assert (lean.name, lean.settings) == ("lean", {"rent_weight": "2.5", "lr": "1e-4"})
    assert parse_arm("reward_mode=sparse").name == "reward_mode=sparse"


def test_each_arm_is_the_runs_config_with_its_own_settings() -> None:
    arms = arm_configs(config("reward_mode=shaped,fast:lr=1e-3;entropy_coef=0.02"))
    assert list(arms) == ["reward_mode=shaped", "fast"]
    assert arms["fast"].lr == 1e-3 and arms["fast"].entropy_coef == 0.02
    assert arms["fast"].n_envs == arms["reward_mode=shaped"].n_envs == 2
    assert all(a.ab is None for a in arms.values())


@pytest.mark.parametrize(
    ("ab", "named"),
    [
        ("shaped,shaped", "distinct names"),
        ("shaped", "2 or more arms"),
        ("nope,shaped", "neither a reward mode"),
        ("a b:shaped,simplified", "name 'a b'"),
        ("x:lr=1e-3;gamma,shaped", "not KEY=VALUE"),
    ],
)
def test_malformed_arms_are_refused_by_the_config(ab: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        config(ab)


@pytest.mark.parametrize(
    ("ab", "named"),
    [
        ("x:episode_length=3,shaped", "changes what episodes are played in (episode_length)"),
        ("x:slots=r0c1,shaped", "(session)"),
        ("x:n_envs=4,shaped", "sets n_envs: every arm takes the run's"),
        ("x:backend=process,shaped", "sets backend"),
        ("x:lr=abc,shaped", "arm x: invalid config: lr"),
    ],
)
def test_arms_that_would_not_compare_paired_are_refused(ab: str, named: str) -> None:
    with pytest.raises(ValueError, match=named.replace("(", r"\(").replace(")", r"\)")):
        arm_configs(config(ab))


def test_an_arms_seed_is_a_stable_hash_of_its_name() -> None:
    assert arm_seed(0, "shaped") == 1500793644  # sha256("0:shaped"), on every machine
    assert len({arm_seed(0, "a"), arm_seed(0, "b"), arm_seed(1, "a")}) == 3


@pytest.mark.parametrize(
    ("ab", "named"),
    [
        ("shaped,x:task=cifar10", "sets task"),
        ("shaped,x:train_subset=300", "sets train_subset"),
        ("shaped,x:threads=2", "sets threads"),
    ],
)
def test_an_arm_cannot_train_on_other_data(ab: str, named: str) -> None:
    """An arm that set the task or the data trained on the run's data while its checkpoint
    recorded the other (found in review)."""
    with pytest.raises(ValueError, match=named):
        arm_configs(config(ab))


def test_a_preset_arm_takes_what_the_preset_sets_beyond_the_runs_settings() -> None:
    arms = arm_configs(config("shaped,digits_lean"))
    lean = arms["digits_lean"]
    assert lean.rent_weight == 1.5 and lean.minibatch_envs == 2
    assert lean.n_envs == 2  # the run's, not the preset's 8


def test_kept_rounds_are_refused_with_arms() -> None:
    kept = TrainingConfig.preset("digits").with_overrides(
        {"ab": "shaped,simplified", "keep_every": 5}
    )
    with pytest.raises(ValueError, match="keep_every with ab"):
        arm_configs(kept)
