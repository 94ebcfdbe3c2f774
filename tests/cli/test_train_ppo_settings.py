"""`esper train ppo --set KEY=VALUE`: any config setting from the command line, validated."""

import argparse
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from esper.cli.main import build_parser, main
from esper.cli.train_ppo import resolve_config
from esper.leyline import (
    ALPHA_TARGETS,
    BlendOp,
    Curve,
    FactoredAction,
    Op,
    SlotReport,
    Stage,
    Tempo,
)
from esper.nissa import CHECKPOINTS_DIR
from esper.simic.checkpoint import LATEST, read_checkpoint
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.simic.environment import MorphogeneticEnv
from esper.simic.learned_policy import LearnedPolicy
from esper.tamiyo.features import FeatureSpec, Observation, build_features, build_masks
from esper.tamiyo.tracker import SignalTracker
from esper.tolaria import get_task

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", "ppo", *argv])


def test_set_overrides_the_preset_with_validated_types() -> None:
    config = resolve_config(_args("--set", "rent_weight=1.5", "--set", "update_epochs=2"))
    assert config.rent_weight == 1.5 and config.update_epochs == 2
    assert config.contribution_weight == 0.2  # the rest of the digits preset is kept


def test_set_and_flags_combine() -> None:
    config = resolve_config(_args("--rounds", "3", "--set", "slots=r0c1"))
    assert config.rounds == 3 and config.slots == ("r0c1",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "rent_weight=abc"], "rent_weight"),
        (["--set", "no_such_setting=1"], "no_such_setting: unknown setting"),
        (["--set", "rounds=3", "--rounds", "2"], "--set rounds=... repeats a setting"),
        (["--set", "rent_weight"], "expected KEY=VALUE, got 'rent_weight'"),
        (["--set", "=1"], "expected KEY=VALUE"),
        (["--set", "action_space=tiny"], "action_space"),
    ],
)
def test_bad_settings_are_one_error_line(cli: RunCli, argv: list[str], message: str) -> None:
    status, _, err = cli(["train", "ppo", "--no-live", *argv])
    lines = err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("esper: error:") and message in lines[0]


def test_action_space_is_a_flag_and_a_setting() -> None:
    assert resolve_config(_args()).action_space == "simple"  # the digits preset's
    assert resolve_config(_args("--action-space", "full")).action_space == "full"
    assert resolve_config(_args("--set", "action_space=full")).action_space == "full"
    assert TrainingConfig().action_space == "full"  # the class default, outside the presets


def _plant_or_retarget(spec: FeatureSpec, config: TrainingConfig) -> Observation:
    """The first slot empty (GERMINATE legal), the second holding at alpha 1 (SET_ALPHA_TARGET
    legal), any others empty."""
    first, second, *rest = spec.slot_ids
    holding = SlotReport(
        second, Stage.HOLDING, seed_age=6, alpha=1.0, alpha_target=1.0, blueprint=spec.blueprints[0]
    )
    reports = {s: SlotReport(s, Stage.DORMANT) for s in (first, *rest)} | {second: holding}
    metrics = SignalTracker().update(0, 2.3, 10.0, 2.3, 10.0)
    masks = build_masks(spec, reports, config.lifecycle_limits())
    assert masks.op[Op.GERMINATE] and masks.op[Op.SET_ALPHA_TARGET]
    features = build_features(spec, metrics, reports, config.rent_weight)
    return Observation(features, masks, metrics, reports, epochs_left=spec.episode_length)


def _sampled(policy: LearnedPolicy, observation: Observation, n: int) -> list[FactoredAction]:
    return policy.act([observation] * n, policy.initial_state(n)).actions


def test_a_simple_run_keeps_a_simple_policy(tmp_path: Path) -> None:
    train = ["train", "ppo", "--task", "digits", "--rounds", "1", "--envs", "2"]
    train += ["--episode-length", "3", "--action-space", "simple"]
    assert main([*train, "--runs-dir", str(tmp_path), "--no-live"]) == 0
    (run_dir,) = tmp_path.iterdir()
    checkpoint = run_dir / CHECKPOINTS_DIR / LATEST
    config = TrainingConfig.model_validate(read_checkpoint(checkpoint)["config"])
    assert config.action_space == "simple"
    spec = MorphogeneticEnv(get_task("digits"), config=env_config_for(config, 0)).feature_spec

    policy = LearnedPolicy.from_checkpoint(checkpoint, spec, deterministic=False)

    assert policy.action_space == "simple"
    observation = _plant_or_retarget(spec, config)
    simple = _sampled(policy, observation, 200)
    assert Counter(a.op for a in simple)[Op.GERMINATE] >= 20
    assert all(a.op != Op.SET_ALPHA_TARGET for a in simple)
    planted = {(a.blend, a.tempo, a.alpha_target, a.curve) for a in simple if a.op == Op.GERMINATE}
    assert planted == {(BlendOp.ADD, Tempo.FAST, 1.0, Curve.LINEAR)}
    # The same network over the full space does retarget and plant otherwise: the checks above
    # can tell the two apart.
    full = LearnedPolicy(policy.network, policy.normalizer, spec, deterministic=False)
    assert full.action_space == "full"
    taken = _sampled(full, observation, 200)
    assert any(a.op == Op.SET_ALPHA_TARGET for a in taken)
    germinations = [a for a in taken if a.op == Op.GERMINATE]
    assert {a.blend for a in germinations} == set(BlendOp)
    assert {a.tempo for a in germinations} == set(Tempo) - {Tempo.INSTANT}
    assert {a.alpha_target for a in germinations} == set(ALPHA_TARGETS)
    assert {a.curve for a in germinations} == set(Curve)
