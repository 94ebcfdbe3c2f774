"""The shared setting: env config and data options from the ppo checkpoints, and overrides."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from esper.simic.config import TrainingConfig
from esper.simic.evaluation import (
    evaluation_data_options,
    evaluation_env_config,
    for_task,
    is_transfer,
    with_reward_of,
)
from esper.simic.rewards import RewardMode
from esper.tolaria import DataOptions, get_task

# -- the env ----------------------------------------------------------------------------------


def test_without_ppo_the_env_is_a_default_training_env_for_the_task() -> None:
    config = evaluation_env_config("digits", {})

    assert config.episode_length == get_task("digits").episode_length
    assert evaluation_env_config("digits", {}, episode_length=4).episode_length == 4


def test_a_ppo_checkpoint_sets_the_episode_length_and_rewards_it_was_trained_with() -> None:
    trained = TrainingConfig(episode_length=7, reward_mode=RewardMode.SPARSE, device="cuda")

    config = evaluation_env_config("digits", {"ppo": trained}, device="cpu")

    assert config.episode_length == 7
    assert config.reward.mode == RewardMode.SPARSE
    assert config.session.device == "cpu"  # where we evaluate, not where it trained


def test_a_checkpoint_from_another_task_is_a_transfer_on_the_targets_own_host() -> None:
    """Trained on stories (a 7-epoch episode, one slot, its own batch size): on digits it keeps
    its controller's settings (rewards, lifecycle) and plays digits' own host and episode."""
    trained = TrainingConfig(
        task="stories",
        episode_length=7,
        slots="r0c0",
        batch_size=8,
        reward_mode=RewardMode.SPARSE,
        min_prune_age=4,
    )
    assert is_transfer(trained, "digits") and not is_transfer(trained, "stories")
    config = evaluation_env_config("digits", {"ppo": trained})
    assert config.episode_length == get_task("digits").episode_length
    assert config.session.slots is None and config.session.batch_size is None
    assert config.reward.mode == RewardMode.SPARSE
    assert config.session.limits.min_prune_age == 4
    assert for_task(trained, "stories") is trained  # on its own task: as it trained


def test_a_run_over_several_tasks_plays_one_of_them_with_its_own_settings() -> None:
    trained = TrainingConfig(task="digits,stories", episode_length=6)
    on_digits = for_task(trained, "digits")
    assert on_digits.tasks == ("digits",) and on_digits.episode_length == 6
    assert not is_transfer(trained, "digits")
    assert evaluation_env_config("stories", {"ppo": trained}).episode_length == 6


def test_ppo_checkpoints_trained_in_different_settings_cannot_share_an_env() -> None:
    configs = {"ppo:a": TrainingConfig(episode_length=5), "ppo:b": TrainingConfig()}

    with pytest.raises(ValueError, match=r"ppo:a and ppo:b .*episode_length"):
        evaluation_env_config("digits", configs)


def test_a_budget_trained_policy_is_evaluated_under_its_budget_and_alone() -> None:
    frugal = TrainingConfig(param_budget=78)
    assert evaluation_env_config("digits", {"ppo": frugal}).session.limits.param_budget == 78
    with pytest.raises(ValueError, match=r"ppo:a and ppo:frugal .*session"):
        evaluation_env_config("digits", {"ppo:a": TrainingConfig(), "ppo:frugal": frugal})


def test_checkpoints_trained_with_different_rewards_share_an_env_but_keep_their_rewards() -> None:
    lean = TrainingConfig(rent_weight=1.5, host_param_floor=300)
    configs = {"ppo:a": TrainingConfig(), "ppo:lean": lean}

    shared = evaluation_env_config("digits", configs)

    assert shared.reward.rent_weight == TrainingConfig().rent_weight
    assert with_reward_of(shared, None) == shared  # baselines
    own = with_reward_of(shared, lean)
    assert (own.reward.rent_weight, own.reward.host_param_floor) == (1.5, 300)
    assert replace(own, reward=shared.reward) == shared  # nothing else changes


# -- the data ---------------------------------------------------------------------------------


def trained_on(data_dir: str | None = None, train_subset: int | None = None) -> TrainingConfig:
    folder = None if data_dir is None else Path(data_dir)
    return TrainingConfig(data_dir=folder, train_subset=train_subset, download=True)


def test_without_ppo_the_data_options_are_the_arguments() -> None:
    assert evaluation_data_options({}) == DataOptions()
    assert evaluation_data_options({}, Path("data"), 500, True) == DataOptions(
        Path("data"), 500, True
    )


def test_the_checkpoints_data_options_are_the_evaluations() -> None:
    configs = {"ppo:a": trained_on("data", 500), "ppo:b": trained_on("data", 500)}

    assert evaluation_data_options(configs) == DataOptions(Path("data"), 500, True)


def test_arguments_override_the_checkpoints_data_options() -> None:
    configs = {"ppo": trained_on("old/place", 500)}

    moved = evaluation_data_options(configs, data_dir=Path("new/place"))
    assert moved == DataOptions(Path("new/place"), 500, True)
    assert evaluation_data_options(configs, train_subset=50, download=False) == DataOptions(
        Path("old/place"), 50, False
    )


def test_checkpoints_trained_on_different_data_are_refused_naming_both() -> None:
    configs = {"ppo:a": trained_on("data", 500), "ppo:b": trained_on("data", 800)}

    with pytest.raises(ValueError, match=r"ppo:a and ppo:b .*train_subset 500 vs 800") as error:
        evaluation_data_options(configs)
    assert "--train-subset" in str(error.value)
    # An argument that sets the option for both settles it.
    assert evaluation_data_options(configs, train_subset=500).train_subset == 500


def test_a_moved_data_folder_settles_checkpoints_that_read_it_from_different_places() -> None:
    configs = {"ppo:a": trained_on("here"), "ppo:b": trained_on("there")}

    with pytest.raises(ValueError, match="data_dir 'here' vs 'there'"):
        evaluation_data_options(configs)
    assert evaluation_data_options(configs, Path("now")).data_dir == Path("now")
