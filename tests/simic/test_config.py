from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import ValidationError

from esper.kasmina.gates import PROFILES
from esper.leyline import DEFAULT_LIMITS, LifecycleLimits
from esper.simic.config import (
    PRESETS,
    ConfigError,
    HeuristicRunConfig,
    TrainingConfig,
    _own_preset,
    format_validation_error,
)
from esper.simic.env_pool import env_config_for
from esper.simic.rewards import RewardConfig, RewardMode
from esper.tolaria import TASKS


def error_fields(error: ValidationError) -> set[str]:
    return {".".join(str(part) for part in e["loc"]) for e in error.errors()}


def invalid(**settings: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        TrainingConfig(**settings)
    return caught.value


def test_defaults_mirror_design_section_11() -> None:
    config = TrainingConfig()
    ppo = (config.gamma, config.gae_lambda, config.clip, config.value_clip)
    assert ppo == (0.995, 0.98, 0.2, 10.0)
    optim = (config.lr, config.adam_eps, config.max_grad_norm, config.target_kl)
    assert optim == (3e-4, 1e-5, 1.0, 0.015)
    assert (config.entropy_coef, config.entropy_coef_final) == (0.05, 0.01)
    assert (config.value_coef, config.hidden) == (0.5, 128)
    assert (config.resolved_episode_length(), config.n_envs) == (25, 4)
    assert (config.pbrs_weight, config.contribution_weight, config.rent_weight) == (0.3, 1.0, 0.5)
    assert config.host_param_floor == 200
    assert config.lifecycle_limits() == DEFAULT_LIMITS
    assert (config.task, config.reward_mode, config.gates) == ("digits", "shaped", "permissive")


def test_defaults_match_the_reward_module() -> None:
    assert TrainingConfig().reward_config() == RewardConfig()


def test_gate_choices_are_the_gate_profiles() -> None:
    choices = get_args(TrainingConfig.model_fields["gates"].annotation)
    assert set(choices) == set(PROFILES)


def test_unknown_key_is_refused_naming_it() -> None:
    error = invalid(n_env=4)
    assert error_fields(error) == {"n_env"}
    assert "did you mean n_envs?" in format_validation_error(error)


def test_wrong_type_names_the_field() -> None:
    assert error_fields(invalid(rounds="many", amp=[1])) == {"rounds", "amp"}


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"n_envs": 0}, "n_envs"),
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.01}, "gamma"),
        ({"gae_lambda": 1.5}, "gae_lambda"),
        ({"clip": 0}, "clip"),
        ({"target_kl": -0.1}, "target_kl"),
        ({"seed": -1}, "seed"),
        ({"device": "gpu"}, "device"),
        ({"device": "cuda:x"}, "device"),
        ({"telemetry": "loud"}, "telemetry"),
        ({"backend": "slurm"}, "backend"),
        ({"gates": "lenient"}, "gates"),
        ({"reward_mode": "dense"}, "reward_mode"),
        ({"rent_weight": -0.5}, "rent_weight"),
        ({"host_param_floor": 0}, "host_param_floor"),
        ({"action_space": "tiny"}, "action_space"),
    ],
)
def test_bad_value_names_the_field(settings: dict[str, Any], field: str) -> None:
    assert error_fields(invalid(**settings)) == {field}


def test_action_space_is_full_unless_simple_is_asked_for() -> None:
    assert TrainingConfig().action_space == "full"
    simple = TrainingConfig(action_space="simple")
    assert simple.action_space == "simple"
    assert TrainingConfig.model_validate(simple.to_json_dict()) == simple  # as checkpoints do
    assert "'full' or 'simple'" in str(invalid(action_space="tiny"))


def test_env_reward_modes_must_match_n_envs() -> None:
    error = invalid(n_envs=4, env_reward_modes=["shaped", "sparse"])
    assert error_fields(error) == {"env_reward_modes"}
    assert "has 2 modes but n_envs is 4" in str(error)
    config = TrainingConfig(n_envs=2, env_reward_modes="shaped,sparse")
    assert config.env_reward_modes == (RewardMode.SHAPED, RewardMode.SPARSE)


def test_entropy_coefficient_anneals_down() -> None:
    error = invalid(entropy_coef=0.01, entropy_coef_final=0.05)
    assert error_fields(error) == {"entropy_coef_final"}
    assert "entropy_coef_final (0.05) must be <= entropy_coef (0.01)" in str(error)
    TrainingConfig(entropy_coef=0.02, entropy_coef_final=0.02)


def test_amp_names_a_precision_and_reads_the_old_booleans() -> None:
    assert TrainingConfig().amp == "off"
    assert TrainingConfig(amp=True).amp == "auto" and TrainingConfig(amp=False).amp == "off"
    assert TrainingConfig(amp="bf16").amp == "bf16"
    assert error_fields(invalid(amp="fp8")) == {"amp"}


def test_learning_rate_anneals_down_or_stays() -> None:
    error = invalid(lr=1e-4, lr_final=3e-4)
    assert error_fields(error) == {"lr_final"}
    assert "lr_final (0.0003) must be <= lr (0.0001)" in str(error)
    assert TrainingConfig().lr_final is None
    TrainingConfig(lr=1e-4, lr_final=1e-4)


def test_seed_groups_divide_the_envs_and_group_advantages_need_a_group() -> None:
    error = invalid(n_envs=4, envs_per_seed=3)
    assert error_fields(error) == {"envs_per_seed"}
    assert "n_envs (4) must be a multiple of envs_per_seed (3)" in str(error)
    error = invalid(n_envs=4, advantage="group")
    assert error_fields(error) == {"advantage"}
    assert "needs envs_per_seed >= 2 (got 1)" in str(error)
    config = TrainingConfig(n_envs=6, envs_per_seed=3, advantage="group")
    assert (config.envs_per_seed, config.advantage) == (3, "group")


def test_minibatch_envs_fits_in_n_envs() -> None:
    error = invalid(n_envs=4, minibatch_envs=5)
    assert error_fields(error) == {"minibatch_envs"}
    assert "minibatch_envs (5) must be <= n_envs (4)" in str(error)
    assert TrainingConfig(n_envs=4, minibatch_envs=4).minibatch_envs == 4


def test_bad_slot_id_is_named() -> None:
    error = invalid(slots=["r0c0", "r0c01"])
    assert error_fields(error) == {"slots"}
    assert "'r0c01'" in str(error)
    assert "duplicate slot ids: ['r0c1']" in str(invalid(slots="r0c1,r0c1"))


def test_slots_are_kept_in_canonical_order() -> None:
    assert TrainingConfig(slots="r1c0,r0c10,r0c2").slots == ("r0c2", "r0c10", "r1c0")


def test_unknown_task_lists_the_known_ones() -> None:
    error = invalid(task="mnist")
    assert error_fields(error) == {"task"}
    assert all(name in str(error) for name in TASKS)


def test_episode_length_defaults_to_the_task() -> None:
    assert (
        TrainingConfig(task="stories").resolved_episode_length() == TASKS["stories"].episode_length
    )
    assert TrainingConfig(task="stories", episode_length=8).resolved_episode_length() == 8


def test_ab_accepts_the_command_line_form_and_needs_distinct_modes() -> None:
    config = TrainingConfig(ab="shaped,simplified")
    assert config.ab == (RewardMode.SHAPED, RewardMode.SIMPLIFIED)
    assert error_fields(invalid(ab="shaped")) == {"ab"}
    assert error_fields(invalid(ab="shaped,shaped")) == {"ab"}
    assert error_fields(
        invalid(n_envs=2, env_reward_modes="shaped,sparse", ab="shaped,sparse")
    ) == {"ab"}


def test_telemetry_is_normalized() -> None:
    assert TrainingConfig(telemetry="DEBUG").telemetry == "debug"


def test_presets_load_and_differ() -> None:
    configs = {name: TrainingConfig.preset(name) for name in PRESETS}
    assert set(configs) == {
        "digits",
        "digits_lean",
        "mnist5k",
        "cifar10",
        "cifar10_gpu",
        "stories",
        "tinystories",
    }
    assert len({c.to_json_dict()["task"] + c.device for c in configs.values()}) == 6
    assert configs["mnist5k"].with_overrides({"task": "digits"}) == configs["digits"]
    lean = configs["digits_lean"]
    assert lean.rent_weight == 1.5 > configs["digits"].rent_weight
    back = {"rent_weight": configs["digits"].rent_weight, "n_envs": 4, "minibatch_envs": 1}
    assert lean.with_overrides(back) == configs["digits"]
    gpu = configs["cifar10_gpu"]
    assert (gpu.device, gpu.amp) == ("cuda", "auto")
    assert gpu.rounds > configs["cifar10"].rounds and gpu.n_envs > configs["cifar10"].n_envs
    assert configs["digits"].task == "digits" and configs["digits"].lr == 1e-3


def test_unknown_preset_lists_the_known_ones() -> None:
    known = "unknown preset 'imagenet'; known: digits, digits_lean, mnist5k, cifar10"
    with pytest.raises(ValueError, match=known):
        TrainingConfig.preset("imagenet")


def a_full_config(tmp_path: Path) -> TrainingConfig:
    """Every kind of field set away from its default."""
    return TrainingConfig(
        task="stories",
        n_envs=2,
        episode_length=8,
        slots=("r0c0", "r0c1"),
        data_dir=tmp_path / "data",
        telemetry="minimal",
        env_reward_modes=("shaped", "minimal"),
        target_kl=None,
        lr=1e-5,
        gates="strict",
    )


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    original = a_full_config(tmp_path)
    path = tmp_path / f"config{suffix}"
    data = original.to_json_dict()
    path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
    assert TrainingConfig.from_file(path) == original


def test_to_json_dict_is_plain_json(tmp_path: Path) -> None:
    data = a_full_config(tmp_path).to_json_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["data_dir"] == str(tmp_path / "data")
    assert data["env_reward_modes"] == ["shaped", "minimal"]


def test_file_may_start_from_a_preset(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("preset: cifar10_gpu\nrounds: 7\n")
    assert TrainingConfig.from_file(path) == TrainingConfig.preset("cifar10_gpu").with_overrides(
        {"rounds": 7}
    )


def test_file_with_an_unknown_preset_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text('{"preset": "mnist"}')
    with pytest.raises(ValueError, match=r"run\.json: unknown preset 'mnist'"):
        TrainingConfig.from_file(path)


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("run.toml", "rounds = 3", "unknown format '.toml'"),
        ("run.json", "{rounds: 3", "invalid JSON"),
        ("run.yaml", "rounds: [3", "invalid YAML"),
        ("run.yaml", "- 3\n- 4\n", "expected a mapping of settings, got list"),
    ],
)
def test_bad_files_name_the_path_and_problem(
    tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as caught:
        TrainingConfig.from_file(path)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ValueError, match="cannot be read") as caught:
        TrainingConfig.from_file(path)
    assert str(path) in str(caught.value)


def test_bad_setting_in_a_file_names_field_and_path(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("n_envs: 0\n")
    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_file(path)
    assert f"invalid config ({path}): n_envs: Input should be greater" in str(caught.value)


@pytest.mark.parametrize("key", ["reward_gamma", "pbrs_gamma"])
def test_gamma_is_shared_with_the_rewards(tmp_path: Path, key: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"gamma: 0.9\n{key}: 0.99\n")
    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_file(path)
    assert f"{key}: unknown setting" in str(caught.value)
    assert "one `gamma`" in str(caught.value)

    config = TrainingConfig(gamma=0.9)
    assert config.reward_config().gamma == config.gamma == 0.9
    assert config.reward_config(RewardMode.SPARSE).gamma == 0.9


def test_reward_config_carries_mode_and_weights() -> None:
    config = TrainingConfig(reward_mode="basic", rent_weight=0.25, host_param_floor=50)
    rewards = config.reward_config()
    assert (rewards.mode, rewards.rent_weight, rewards.host_param_floor) == ("basic", 0.25, 50)
    assert config.reward_config(RewardMode.MINIMAL).mode == RewardMode.MINIMAL


def test_overrides_are_validated_and_none_is_ignored() -> None:
    base = TrainingConfig.preset("stories")
    config = base.with_overrides({"rounds": 3, "n_envs": 2, "episode_length": None, "seed": None})
    assert (config.task, config.rounds, config.n_envs) == ("stories", 3, 2)
    assert base.rounds == 30  # a copy; the original is unchanged
    with pytest.raises(ConfigError, match="rouds: unknown setting"):
        base.with_overrides({"rouds": 3})
    with pytest.raises(ConfigError, match=r"minibatch_envs: minibatch_envs \(2\) must be <="):
        base.with_overrides({"minibatch_envs": 2, "n_envs": 1})


def test_config_is_frozen() -> None:
    config = TrainingConfig()
    with pytest.raises(ValidationError):
        config.rounds = 3


def test_format_validation_error_is_one_line_naming_every_field() -> None:
    error = invalid(n_envs=0, gamma=2, slots="r0c0,bad", reward_gamma=0.9)
    line = format_validation_error(error)
    assert "\n" not in line
    assert line.startswith("invalid config: ")
    assert "n_envs: Input should be greater than or equal to 1" in line
    assert "(got 0)" in line and "gamma: Input should be less than or equal to 1 (got 2)" in line
    assert "slots: invalid slot id 'bad'" in line
    assert "reward_gamma: unknown setting" in line


# -- issue 9: presets, files and flags compose; absurd values are refused ----------------------


def test_a_file_without_a_preset_starts_from_the_tasks_preset(tmp_path: Path) -> None:
    """A file setting only rent_weight used to start from class defaults (lr 3e-4, which the
    digits preset's comment says does not learn there)."""
    path = tmp_path / "run.yaml"
    path.write_text("rent_weight: 2.0\n")
    assert TrainingConfig.from_file(path) == TrainingConfig.preset("digits").with_overrides(
        {"rent_weight": 2.0}
    )
    path.write_text("task: stories\n")
    assert TrainingConfig.from_file(path) == TrainingConfig.preset("stories")


def test_several_tasks_start_from_the_first_tasks_preset() -> None:
    """`--task digits,stories` without --preset trains with the digits preset's settings (lr,
    action space...) on both, not with class defaults; a first task without a preset gives
    none, whatever the others."""
    both = TrainingConfig.resolve(overrides={"task": "digits,stories", "episode_length": 5})
    assert both.tasks == ("digits", "stories")
    digits = TrainingConfig.preset("digits")
    assert both.model_copy(update={"task": "digits", "episode_length": None}) == digits
    assert _own_preset(("stories", "digits")) == "stories"
    assert _own_preset("examples/tabular_mlp.py:breast_cancer,digits") is None
    assert _own_preset("digits, examples/tabular_mlp.py:breast_cancer") == "digits"


def test_preset_then_file_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("rounds: 7\nlr: 0.002\n")
    config = TrainingConfig.resolve("digits_lean", path, {"lr": "0.003"})
    assert (config.rent_weight, config.rounds, config.lr) == (1.5, 7, 0.003)


def test_a_preset_flag_that_contradicts_the_files_preset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text("preset: stories\n")
    with pytest.raises(ConfigError, match="--preset digits contradicts"):
        TrainingConfig.resolve("digits", path)
    assert TrainingConfig.resolve("stories", path) == TrainingConfig.preset("stories")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lr": float("inf")}, "lr: Input should be a finite number"),
        ({"rent_weight": float("inf")}, "rent_weight: Input should be a finite number"),
        ({"gamma": float("nan")}, "gamma: Input should be a finite number"),
        ({"rounds": 10**30}, "rounds: Input should be less than or equal to 1000000"),
        ({"seed": 10**30}, "seed: Input should be less than 1073741824"),
        ({"n_envs": 10**6}, "n_envs: Input should be less than or equal to 1024"),
        ({"lr": 5.0}, "lr: Input should be less than or equal to 1"),
        ({"slots": "r0c0,r0c0"}, "duplicate slot ids"),
        ({"data_dir": 5}, "data_dir: Input is not a valid path"),
    ],
)
def test_absurd_values_are_refused_with_the_allowed_range(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        TrainingConfig.validated(settings)
    assert message in str(caught.value)


def test_data_dir_of_the_wrong_type_in_a_file_is_one_line(tmp_path: Path) -> None:
    """It crashed the error formatter (pydantic's path_type could not be re-raised)."""
    path = tmp_path / "run.yaml"
    path.write_text("data_dir: 5\n")
    with pytest.raises(ConfigError) as caught:
        TrainingConfig.from_file(path)
    assert str(caught.value).startswith(f"invalid config ({path}): data_dir:")


def test_threads_are_part_of_the_recorded_config() -> None:
    assert TrainingConfig(threads=2).to_json_dict()["threads"] == 2
    assert TrainingConfig(threads=2) != TrainingConfig()


def test_a_heuristic_run_reads_the_same_settings_and_presets() -> None:
    lean = HeuristicRunConfig.preset("digits_lean")
    assert (lean.task, lean.rent_weight, lean.contribution_weight) == ("digits", 1.5, 0.2)
    assert "lr" not in lean.to_json_dict()  # a preset gives each config the settings it has
    config = HeuristicRunConfig.resolve(overrides={"min_prune_age": "8", "slots": "r0c1"})
    assert config.lifecycle_limits().min_prune_age == 8 and config.slots == ("r0c1",)
    with pytest.raises(ConfigError, match="lr: unknown setting"):
        HeuristicRunConfig.validated({"lr": 0.1})
    with pytest.raises(ConfigError, match="must stay <="):
        HeuristicRunConfig.validated({"seed": 2**30 - 1, "episodes": 2})


def test_the_readme_config_file_example_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    block = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "my_settings.yaml"
    path.write_text(block)
    config = TrainingConfig.from_file(path)
    assert (config.rent_weight, config.rounds, config.target_kl) == (1.5, 60, None)
    assert config.slots == ("r0c0", "r0c1") and config.lr == TrainingConfig.preset("digits").lr


def test_prices_are_comma_separated_bounded_and_reach_the_rewards() -> None:
    config = TrainingConfig.preset("digits").with_overrides({"rent_weights": "0.5, 1.5,4.5"})
    assert config.rent_weights == (0.5, 1.5, 4.5)
    assert config.reward_config().rent_weights == (0.5, 1.5, 4.5)
    assert TrainingConfig().reward_config().rent_weights == ()  # none: rent_weight always
    assert error_fields(invalid(rent_weights=(0.5, -1.0))) == {"rent_weights.1"}
    assert error_fields(invalid(rent_weights=tuple(range(17)))) == {"rent_weights"}
    assert error_fields(invalid(rent_weights=())) == {"rent_weights"}


def test_a_parameter_budget_reaches_the_lifecycle_limits() -> None:
    assert TrainingConfig().lifecycle_limits().param_budget is None
    config = TrainingConfig.resolve(overrides={"param_budget": "78"})
    assert config.lifecycle_limits().param_budget == 78
    with pytest.raises(ConfigError, match="param_budget"):
        TrainingConfig.resolve(overrides={"param_budget": "-1"})


def test_budgets_per_episode_are_comma_separated_bounded_and_exclude_one_budget() -> None:
    config = TrainingConfig.preset("digits").with_overrides({"param_budgets": "78, 400"})
    limits = config.lifecycle_limits()
    assert config.param_budgets == limits.param_budgets == (78, 400)
    assert env_config_for(config, 0).observe_budget  # the controller sees what is left
    assert not env_config_for(TrainingConfig(param_budget=78), 0).observe_budget
    assert [limits.for_episode(s).param_budget for s in (10, 11, 12)] == [78, 400, 78]
    assert limits.for_episode(11).param_budgets == ()  # an episode has one budget
    assert error_fields(invalid(param_budgets=(78, -1))) == {"param_budgets.1"}
    assert error_fields(invalid(param_budgets=tuple(range(17)))) == {"param_budgets"}
    assert error_fields(invalid(param_budgets=())) == {"param_budgets"}
    both = str(invalid(param_budget=78, param_budgets=(78, 400)))
    assert "param_budget=78 is set too" in both


def test_lifecycle_limits_refuse_a_negative_or_a_doubled_budget() -> None:
    with pytest.raises(ValueError, match="param_budgets must all be >= 0"):
        LifecycleLimits(param_budgets=(10, -1))
    with pytest.raises(ValueError, match="not both"):
        LifecycleLimits(param_budget=5, param_budgets=(10,))
    plain = LifecycleLimits(param_budget=5)
    assert plain.for_episode(3) is plain


def test_vmap_refuses_what_it_would_run_one_by_one() -> None:
    """fp16 envs never group (each scaler skips its own steps): `vmap` with fp16 was accepted
    and quietly ran as `local`; with compile it would run eager."""
    with pytest.raises(ConfigError, match="amp fp16 and backend vmap"):
        TrainingConfig.validated({"backend": "vmap", "amp": "fp16"})
    with pytest.raises(ConfigError, match="compile and backend vmap"):
        TrainingConfig.validated({"backend": "vmap", "compile": True})
    assert TrainingConfig.validated({"backend": "vmap", "amp": "bf16"}).backend == "vmap"
