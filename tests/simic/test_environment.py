"""MorphogeneticEnv as a gymnasium.Env on digits (tiny episodes; `digits` from conftest)."""

import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from esper.leyline import (
    HEAD_ORDER,
    EpisodeOutcome,
    FactoredAction,
    IllegalActionError,
    LifecycleLimits,
    Op,
    Stage,
    Tempo,
)
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool, env_config_for
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.rewards import RewardConfig
from esper.tamiyo.action_codec import encode
from esper.tamiyo.features import GLOBAL_FEATURES, Observation, flat_mask
from esper.tamiyo.policy import PlanPolicy, RandomPolicy
from esper.tolaria import SessionOptions, get_task
from esper.tolaria.data import DataSplits

TASK = get_task("digits")

GERMINATE = FactoredAction.germinate("r0c1", "conv_light", tempo=Tempo.FAST)


def make_env(data: DataSplits, **config: object) -> MorphogeneticEnv:
    return MorphogeneticEnv(TASK, data, EnvConfig(**config))  # type: ignore[arg-type]


def test_gymnasium_env_checker_passes_with_the_default_config(digits: DataSplits) -> None:
    """The checker samples unmasked random actions: by default they become WAIT."""
    env = make_env(digits, episode_length=4)
    assert env.config.illegal_action == "wait"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    # The one warning expected: an env built directly (not by gymnasium.make) has no spec.
    unexpected = [str(w.message) for w in caught if "render modes" not in str(w.message)]
    assert unexpected == []


def test_spaces_describe_the_heads_and_features(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=4)
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    sizes = env.feature_spec.head_sizes
    assert env.action_space.nvec.tolist() == [sizes[h] for h in HEAD_ORDER]
    assert isinstance(env.observation_space, gym.spaces.Box)
    assert env.observation_space.shape == (env.feature_spec.size,)
    assert env.observation_space.dtype == np.float32


def test_an_illegal_action_raises_when_asked(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=4, illegal_action="raise")
    env.reset(seed=0)
    advance_dormant = FactoredAction(Op.ADVANCE, slot="r0c0")
    with pytest.raises(IllegalActionError, match="ADVANCE"):
        env.step(advance_dormant)
    with pytest.raises(IllegalActionError, match="ADVANCE"):
        env.step(encode(env.feature_spec, advance_dormant))  # head indices, as an agent sends


def test_an_illegal_action_becomes_wait_by_default(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=4)
    env.reset(seed=0)
    _, _, _, _, info = env.step(FactoredAction(Op.ADVANCE, slot="r0c0"))
    assert info["illegal_action"] is True
    assert info["action"] == FactoredAction.wait()
    _, _, _, _, info = env.step(FactoredAction.wait())
    assert info["illegal_action"] is False


def test_the_trainers_envs_raise_on_an_illegal_action(digits: DataSplits) -> None:
    config = TrainingConfig(task="digits", n_envs=1, episode_length=4)
    assert env_config_for(config, 0).illegal_action == "raise"
    pool = build_pool(config, digits)
    pool.reset([0])
    with pytest.raises(IllegalActionError, match="ADVANCE"):
        pool.step([FactoredAction(Op.ADVANCE, slot="r0c0")])


def split_heads(env: MorphogeneticEnv, flat: np.ndarray) -> dict[str, list[bool]]:
    assert isinstance(env.action_space, gym.spaces.MultiDiscrete)
    sizes = env.action_space.nvec
    assert flat.shape == (int(sizes.sum()),) and flat.dtype == bool
    parts = np.split(flat, np.cumsum(sizes)[:-1])
    return {h.value: part.tolist() for h, part in zip(HEAD_ORDER, parts, strict=True)}


def test_action_masks_are_the_flat_union_of_the_conditional_masks(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=4)
    with pytest.raises(RuntimeError, match="reset"):
        env.action_masks()
    _, info = env.reset(seed=0)
    slot_ids = env.feature_spec.slot_ids
    heads = split_heads(env, env.action_masks())
    assert np.array_equal(env.action_masks(), flat_mask(info["observation"].masks))
    assert heads["op"] == [op in (Op.WAIT, Op.GERMINATE) for op in Op]
    assert heads["slot"] == [True] * len(slot_ids)  # every slot is DORMANT
    assert heads["tempo"] == [t != Tempo.INSTANT for t in Tempo]  # GERMINATE ramps
    env.step(GERMINATE)
    heads = split_heads(env, env.action_masks())
    assert heads["slot"] == [s != "r0c1" for s in slot_ids]  # r0c1 is GERMINATED, too young


def test_a_union_legal_but_conditionally_illegal_action_is_handled(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=4)
    env.reset(seed=0)
    env.step(GERMINATE)
    _, _, _, _, info = env.step(FactoredAction.wait())  # r0c1: GERMINATED -> TRAINING
    assert info["observation"].masks.allows(Op.ADVANCE, "r0c1")  # G2 passed after one epoch
    heads = split_heads(env, env.action_masks())
    assert heads["op"][Op.ADVANCE] and heads["slot"][env.feature_spec.slot_ids.index("r0c0")]
    advance_dormant = encode(env.feature_spec, FactoredAction(Op.ADVANCE, slot="r0c0"))
    _, _, _, _, info = env.step(advance_dormant)
    assert info["illegal_action"] is True and info["action"] == FactoredAction.wait()


def test_steps_report_masks_observation_and_reward_terms(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=4)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert set(info) >= {"action_mask", "observation"}
    assert info["observation"].epochs_left == 4

    actions = [GERMINATE, *[FactoredAction.wait()] * 3]
    for step, action in enumerate(actions, start=1):
        obs, reward, terminated, truncated, info = env.step(encode(env.feature_spec, action))
        assert env.observation_space.contains(obs)
        observation = info["observation"]
        assert isinstance(observation, Observation)
        assert np.array_equal(observation.features, obs)
        assert observation.metrics.epoch == step
        assert observation.epochs_left == len(actions) - step
        masks = info["action_mask"]
        assert set(masks) == {h.value for h in HEAD_ORDER}
        assert masks["op"][Op.WAIT]  # WAIT is always legal
        assert math.isfinite(reward)
        assert reward == pytest.approx(sum(info["reward_terms"].values()), abs=1e-12)
        assert truncated is False
        assert terminated is (step == len(actions))
        assert ("outcome" in info) is terminated
    assert env.session.model.slot("r0c1").stage == Stage.TRAINING
    # The op mask follows the slots: the germinated slot can no longer GERMINATE.
    slot_index = env.feature_spec.slot_ids.index("r0c1")
    assert not info["action_mask"]["slot"][Op.GERMINATE, slot_index]

    outcome = info["outcome"]
    assert isinstance(outcome, EpisodeOutcome)
    assert 0 <= outcome.test_accuracy <= 100
    assert outcome.val_accuracy == observation.metrics.val_accuracy
    with pytest.raises(RuntimeError, match="reset"):
        env.step(FactoredAction.wait())


def test_reset_with_the_same_seed_repeats_the_episode(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=2)
    runs = []
    for _ in range(2):
        first, _ = env.reset(seed=7)
        after, reward, *_ = env.step(FactoredAction.wait())
        runs.append((first, after, reward))
    assert np.array_equal(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][2] == runs[1][2]


def test_bad_env_config_is_refused() -> None:
    with pytest.raises(ValueError, match="episode_length"):
        EnvConfig(episode_length=0)
    with pytest.raises(ValueError, match="illegal_action"):
        EnvConfig(illegal_action="ignore")  # type: ignore[arg-type]


def test_the_episode_price_is_drawn_from_the_seed_seen_and_recorded(digits: DataSplits) -> None:
    env = make_env(digits, episode_length=1, reward=RewardConfig(rent_weights=(0.0, 3.0)))
    price_feature = GLOBAL_FEATURES.index("log_rent")
    for seed, price in ((4, 0.0), (5, 3.0)):
        obs, _ = env.reset(seed=seed)
        assert obs[price_feature] == pytest.approx(math.log1p(price))
        *_, info = env.step(GERMINATE)
        assert info["outcome"].rent_weight == price
        # the seed pays rent at its episode's price only: none at price 0
        assert (info["reward_terms"]["rent"] == 0) is (price == 0)


def test_no_controller_can_grow_past_the_parameter_budget(digits: DataSplits) -> None:
    """A random controller (every legal choice, any blueprint on any slot) and a plan whose
    second seed does not fit: at no epoch do the live seeds hold more than the budget."""
    budget = 100  # depthwise on r0c0 (64) fits; then nothing on r0c1 but norm (24)
    limits = LifecycleLimits(min_prune_age=1, embargo_epochs=1, param_budget=budget)
    env = make_env(
        digits, episode_length=12, session=SessionOptions(limits=limits), illegal_action="raise"
    )
    spec = env.feature_spec
    plan = PlanPolicy([("r0c0", "depthwise"), ("r0c1", "conv_small")])  # 64 + 88 > 100
    controllers = [RandomPolicy(spec.slot_ids, spec.blueprints, seed=s) for s in range(3)]
    for controller in [plan, *controllers]:
        _, info = env.reset(seed=7)
        obs, state, done = info["observation"], controller.initial_state(1), False
        while not done:
            step = controller.act([obs], state)
            state = step.state
            _, _, done, _, info = env.step(step.actions[0])  # illegal_action="raise"
            obs = info["observation"]
            assert env.session.model.seed_param_count() <= budget
        if controller is plan:
            assert env.outcome().grown == ("depthwise@r0c0",)


def test_the_episode_budget_is_drawn_from_the_seed_enforced_seen_and_recorded(
    digits: DataSplits,
) -> None:
    """Budgets drawn per episode: the plan's second seed fits under 400 and not under 100, the
    controller sees what its episode's budget leaves, and the outcome names the budget."""
    limits = LifecycleLimits(param_budgets=(100, 400))
    env = make_env(
        digits,
        episode_length=3,
        session=SessionOptions(limits=limits),
        illegal_action="raise",
        observe_budget=True,
    )
    spec = env.feature_spec
    assert spec.observe_budget and spec.size == make_env(digits).feature_spec.size + 1
    feature = spec.global_size - 1  # the last global feature
    plan = PlanPolicy([("r0c0", "depthwise"), ("r0c1", "conv_small")])  # 64, then 88
    for seed, budget, planted in (
        (6, 100, ["depthwise@r0c0"]),
        (7, 400, ["conv_small@r0c1", "depthwise@r0c0"]),
    ):
        obs, info = env.reset(seed=seed)
        assert obs[feature] == pytest.approx(spec.log_share(budget))
        state, done = plan.initial_state(1), False
        while not done:
            step = plan.act([info["observation"]], state)
            state = step.state
            obs, _, done, _, info = env.step(step.actions[0])
        left = budget - env.session.model.seed_param_count()
        assert obs[feature] == pytest.approx(spec.log_share(left), abs=1e-6)
        live = [f"{s.blueprint}@{s.slot_id}" for s in env.session.model.seed_slots() if s.is_live]
        assert sorted(live) == planted
        assert env.outcome().param_budget == budget


def test_without_observe_budget_the_layout_is_unchanged(digits: DataSplits) -> None:
    """A budget alone adds no feature: preset policies and their checkpoints keep their shape."""
    limits = LifecycleLimits(param_budget=100)
    env = make_env(digits, episode_length=2, session=SessionOptions(limits=limits))
    assert env.feature_spec.size == make_env(digits).feature_spec.size
    assert env.feature_spec.global_size == len(GLOBAL_FEATURES)


def test_gymnasium_makes_the_env_on_a_task_by_name() -> None:
    from esper.simic.environment import ENV_ID

    env = gym.make(ENV_ID, task="digits", config=EnvConfig(episode_length=2))
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and "action_mask" in info
    assert env.unwrapped.task.name == "digits"  # type: ignore[attr-defined]
    env.close()
