"""Rewards (docs/architecture.md §7 "Rewards", §10; issue 4 acceptance 6).

Every mode's reward is the sum of its named terms, on synthetic states and over real digits
episodes. The potential-based shaping telescopes. Convention: the shaping paid on step t (the
transition s_t -> s_{t+1}, t = 0 .. T-1) is

    pbrs_t = w * (gamma * Phi(s_{t+1}) - Phi(s_t)),

so the discounted sum over an episode of T steps is

    sum_t gamma^t * pbrs_t = w * (gamma^T * Phi(s_T) - Phi(s_0)),

with Phi = `esper.simic.rewards.potential` on non-terminal states, Phi(s_T) = 0 for the terminal
state (Ng, Harada & Russell, 1999: the shaping then cannot change which policy is optimal), and
the same gamma as GAE.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import pytest

from esper.leyline import (
    BlendOp,
    Curve,
    FactoredAction,
    LifecycleLimits,
    Op,
    SlotReport,
    Stage,
    Tempo,
    legal_ops,
)
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.rewards import (
    RewardConfig,
    RewardMode,
    StepState,
    compute_reward,
    potential,
    rent,
)
from esper.tamiyo.features import Observation
from esper.tolaria import SessionOptions, get_task
from esper.tolaria.data import DataSplits

EPISODE_LENGTH = 6
GAMMA = 0.9  # far from 1, so a wrong discounting convention shows
LIMITS = LifecycleLimits(min_prune_age=2, embargo_epochs=2)  # lets the script prune in 6 epochs

EXPECTED_TERMS = {
    RewardMode.SHAPED: {"attribution", "pbrs", "shock", "rent", "rollback", "terminal"},
    RewardMode.SIMPLIFIED: {"pbrs", "action_cost", "rollback", "terminal"},
    RewardMode.SPARSE: {"rollback", "terminal"},  # + rent on the last step
    RewardMode.MINIMAL: {"young_prune", "rollback", "terminal"},  # + rent on the last step
    RewardMode.BASIC: {"attribution", "rent", "rollback", "terminal"},
}
TERMINAL_ONLY_RENT = {RewardMode.SPARSE, RewardMode.MINIMAL}


# -- synthetic states ---------------------------------------------------------------------------


def state(
    *reports: SlotReport,
    host_params: int = 1000,
    val_accuracy: float = 80.0,
    episode_length: int = 10,
) -> StepState:
    return StepState(
        epoch=3,
        episode_length=episode_length,
        val_accuracy=val_accuracy,
        host_params=host_params,
        reports={r.slot_id: r for r in reports},
    )


def seed(
    slot_id: str, stage: Stage, params: int = 300, alpha: float = 0.5, **fields: Any
) -> SlotReport:
    return SlotReport(
        slot_id,
        stage,
        seed_age=12,
        alpha=alpha,
        seed_params=params,
        blueprint="conv_light",
        blend=BlendOp.ADD,
        contribution=1.5,
        **fields,
    )


BEFORE = state(seed("a", Stage.BLENDING, alpha=0.3), SlotReport("b", Stage.DORMANT))
AFTER = state(
    seed("a", Stage.BLENDING, alpha=0.6), seed("b", Stage.GERMINATED, params=50, alpha=0.0)
)
PRUNE_A = FactoredAction(Op.PRUNE, slot="a", tempo=Tempo.FAST, curve=Curve.LINEAR)


@pytest.mark.parametrize("mode", list(RewardMode))
@pytest.mark.parametrize("is_terminal", [False, True])
def test_each_mode_has_its_terms_and_they_sum_to_the_reward(
    mode: RewardMode, is_terminal: bool
) -> None:
    config = RewardConfig(mode=mode, gamma=GAMMA)
    reward = compute_reward(
        BEFORE, PRUNE_A, AFTER, config, is_terminal=is_terminal, rolled_back=True
    )
    expected = set(EXPECTED_TERMS[mode])
    if is_terminal and mode in TERMINAL_ONLY_RENT:
        expected.add("rent")
    assert set(reward.terms) == expected
    assert reward.total == pytest.approx(math.fsum(reward.terms.values()), abs=1e-12)
    assert reward.terms["rollback"] == -config.rollback_penalty
    expected_terminal = config.terminal_weight * AFTER.val_accuracy if is_terminal else 0.0
    assert reward.terms["terminal"] == expected_terminal
    assert all(math.isfinite(value) for value in reward.terms.values()), reward.terms


def test_pbrs_is_gamma_phi_after_minus_phi_before() -> None:
    config = RewardConfig(mode=RewardMode.SHAPED, gamma=GAMMA, pbrs_weight=0.3)
    reward = compute_reward(BEFORE, FactoredAction.wait(), AFTER, config, is_terminal=False)
    phi_before = config.potentials[Stage.BLENDING] + config.potentials[Stage.DORMANT]
    phi_after = config.potentials[Stage.BLENDING] + config.potentials[Stage.GERMINATED]
    assert reward.terms["pbrs"] == pytest.approx(0.3 * (GAMMA * phi_after - phi_before))


def test_pbrs_on_the_terminal_step_takes_back_the_potential() -> None:
    config = RewardConfig(mode=RewardMode.SIMPLIFIED, gamma=GAMMA, pbrs_weight=0.3)
    reward = compute_reward(BEFORE, FactoredAction.wait(), AFTER, config, is_terminal=True)
    assert reward.terms["pbrs"] == pytest.approx(-0.3 * potential(BEFORE, config))


def test_rent_is_negative_and_grows_with_seed_params() -> None:
    config = RewardConfig()
    assert rent(state(SlotReport("a", Stage.DORMANT)), config) == 0.0
    rents = [rent(state(seed("a", Stage.TRAINING, params=p)), config) for p in (10, 100, 1000)]
    assert all(r < 0 for r in rents)
    assert rents[0] > rents[1] > rents[2]
    # Two seeds pay for their sum.
    both = state(seed("a", Stage.TRAINING, params=400), seed("b", Stage.HOLDING, params=600))
    assert rent(both, config) == pytest.approx(rents[2])


def test_rent_is_relative_to_the_host_with_a_floor() -> None:
    config = RewardConfig(host_param_floor=200)
    report = seed("a", Stage.TRAINING, params=500)
    small, big = state(report, host_params=1000), state(report, host_params=100_000)
    assert rent(small, config) < rent(big, config) < 0
    # Hosts below the floor are charged as if they had the floor's size.
    tiny = rent(state(report, host_params=10), config)
    assert tiny == rent(state(report, host_params=200), config)


def test_each_episode_draws_its_price_from_the_seed() -> None:
    config = RewardConfig(rent_weight=9.0, rent_weights=(0.5, 1.5, 4.5))
    drawn = [config.for_episode(seed) for seed in range(6)]
    assert [c.rent_weight for c in drawn] == [0.5, 1.5, 4.5, 0.5, 1.5, 4.5]
    assert all(c.rent_weights == () for c in drawn)  # an episode has one price
    assert RewardConfig(rent_weight=2.0).for_episode(7).rent_weight == 2.0  # no list: as given
    report = seed("a", Stage.TRAINING, params=500)
    assert rent(state(report), drawn[2]) == pytest.approx(9 * rent(state(report), drawn[0]))


@pytest.mark.parametrize("prices", [(1.0, -0.5), (math.inf,), (math.nan, 1.0)])
def test_a_negative_or_non_finite_price_is_refused(prices: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="rent weights must be finite and >= 0"):
        RewardConfig(rent_weights=prices)


# -- real digits episodes -----------------------------------------------------------------------


def germinate(slot: str) -> FactoredAction:
    return FactoredAction.germinate(slot, "conv_light", tempo=Tempo.FAST)


def scripted_action(step: int, observation: Observation) -> FactoredAction:
    """Germinate r0c1 then r0c0; carry r0c1 on (ADVANCE, FOSSILIZE) and prune r0c0 when legal."""
    if step == 0:
        return germinate("r0c1")
    if step == 1:
        return germinate("r0c0")
    kept = legal_ops(observation.reports["r0c1"], LIMITS)
    if Op.ADVANCE in kept:
        return FactoredAction(Op.ADVANCE, slot="r0c1")
    if Op.FOSSILIZE in kept:
        return FactoredAction(Op.FOSSILIZE, slot="r0c1")
    if Op.PRUNE in legal_ops(observation.reports["r0c0"], LIMITS):
        return FactoredAction(Op.PRUNE, slot="r0c0", tempo=Tempo.INSTANT, curve=Curve.LINEAR)
    return FactoredAction.wait()


@dataclass(frozen=True)
class Episode:
    config: RewardConfig
    host_params: int
    observations: list[Observation]  # s_0 .. s_T
    actions: list[FactoredAction]
    rewards: list[float]
    terms: list[dict[str, float]]

    def potentials(self) -> list[float]:
        """Phi(s_0) .. Phi(s_T); the terminal state s_T has potential 0."""
        states = [state(*o.reports.values()) for o in self.observations[:-1]]
        return [potential(s, self.config) for s in states] + [0.0]


def play(data: DataSplits, mode: RewardMode) -> Episode:
    config = RewardConfig(mode=mode, gamma=GAMMA)
    env = MorphogeneticEnv(
        get_task("digits"),
        data,
        EnvConfig(
            episode_length=EPISODE_LENGTH,
            reward=config,
            session=SessionOptions(limits=LIMITS),
            illegal_action="raise",
        ),
    )
    _, info = env.reset(seed=0)
    observations, actions, rewards, terms = [info["observation"]], [], [], []
    for step in range(EPISODE_LENGTH):
        action = scripted_action(step, observations[-1])
        _, reward, terminated, _, info = env.step(action)
        assert terminated is (step == EPISODE_LENGTH - 1)
        observations.append(info["observation"])
        actions.append(action)
        rewards.append(reward)
        terms.append(info["reward_terms"])
    host_params = env.session.model.host_param_count()
    return Episode(config, host_params, observations, actions, rewards, terms)


@pytest.fixture(scope="module")
def episodes(digits: DataSplits) -> dict[RewardMode, Episode]:
    return {mode: play(digits, mode) for mode in RewardMode}


def test_the_script_visits_growth_and_removal(episodes: dict[RewardMode, Episode]) -> None:
    """The telescoping test below is only as good as the stage changes it sees."""
    episode = episodes[RewardMode.SHAPED]
    ops = [a.op for a in episode.actions]
    assert {Op.GERMINATE, Op.ADVANCE, Op.PRUNE, Op.FOSSILIZE} <= set(ops)
    phis = episode.potentials()[:-1]
    assert len(set(phis)) >= 4
    assert any(b < a for a, b in itertools.pairwise(phis))  # a removal costs potential


@pytest.mark.parametrize("mode", list(RewardMode))
def test_env_reward_is_the_sum_of_its_logged_terms(
    episodes: dict[RewardMode, Episode], mode: RewardMode
) -> None:
    episode = episodes[mode]
    for t, (reward, terms) in enumerate(zip(episode.rewards, episode.terms, strict=True)):
        expected = set(EXPECTED_TERMS[mode])
        if t == EPISODE_LENGTH - 1 and mode in TERMINAL_ONLY_RENT:
            expected.add("rent")
        assert set(terms) == expected
        assert reward == pytest.approx(math.fsum(terms.values()), abs=1e-9)


@pytest.mark.parametrize("mode", list(RewardMode))
def test_terminal_term_only_on_the_last_step(
    episodes: dict[RewardMode, Episode], mode: RewardMode
) -> None:
    episode = episodes[mode]
    assert [t["terminal"] for t in episode.terms[:-1]] == [0.0] * (EPISODE_LENGTH - 1)
    final_accuracy = episode.observations[-1].metrics.val_accuracy
    assert episode.terms[-1]["terminal"] == pytest.approx(
        episode.config.terminal_weight * final_accuracy
    )
    assert episode.terms[-1]["terminal"] > 0


@pytest.mark.parametrize("mode", [RewardMode.SHAPED, RewardMode.SIMPLIFIED])
def test_shaping_telescopes_over_an_episode(
    episodes: dict[RewardMode, Episode], mode: RewardMode
) -> None:
    episode = episodes[mode]
    phi = episode.potentials()  # Phi(s_0) .. Phi(s_T)
    T, w = EPISODE_LENGTH, episode.config.pbrs_weight
    discounted = math.fsum(GAMMA**t * terms["pbrs"] for t, terms in enumerate(episode.terms))
    assert discounted == pytest.approx(w * (GAMMA**T * phi[T] - phi[0]), abs=1e-9)
    # Step by step too: each term is the one transition's shaping.
    for t, terms in enumerate(episode.terms):
        assert terms["pbrs"] == pytest.approx(w * (GAMMA * phi[t + 1] - phi[t]), abs=1e-12)


@pytest.mark.parametrize("mode", [RewardMode.SPARSE, RewardMode.MINIMAL])
def test_sparse_modes_pay_nothing_before_the_end_but_what_the_actions_earn(
    episodes: dict[RewardMode, Episode], mode: RewardMode
) -> None:
    episode = episodes[mode]
    for t, terms in enumerate(episode.terms[:-1]):
        young_prune = terms.get("young_prune", 0.0)
        assert {k: v for k, v in terms.items() if k != "young_prune"} == {
            "rollback": 0.0,
            "terminal": 0.0,
        }, t
        assert episode.rewards[t] == young_prune
    last = episode.terms[-1]
    assert last["rent"] < 0  # the fossilized seed is paid for, once, for the whole episode
    final = state(
        *episode.observations[-1].reports.values(),
        host_params=episode.host_params,
        episode_length=1,  # the per-step rent of an episode of one step: the whole episode's
    )
    assert last["rent"] == pytest.approx(rent(final, episode.config))


def test_minimal_mode_charges_pruning_a_young_seed(episodes: dict[RewardMode, Episode]) -> None:
    episode = episodes[RewardMode.MINIMAL]
    charged = [t["young_prune"] for t in episode.terms]
    pruned = [a.op == Op.PRUNE for a in episode.actions]
    assert charged == [-episode.config.young_prune_penalty if p else 0.0 for p in pruned]


def test_simplified_mode_charges_every_op_but_wait(episodes: dict[RewardMode, Episode]) -> None:
    episode = episodes[RewardMode.SIMPLIFIED]
    costs = [t["action_cost"] for t in episode.terms]
    expected = [0.0 if a.op == Op.WAIT else -episode.config.action_cost for a in episode.actions]
    assert costs == expected


def test_rent_in_an_episode_follows_the_seeds(episodes: dict[RewardMode, Episode]) -> None:
    episode = episodes[RewardMode.SHAPED]
    rents = [t["rent"] for t in episode.terms]
    assert all(r < 0 for r in rents)  # a seed exists after every step of the script
    # The second germination adds parameters, so the rent grows.
    assert rents[1] < rents[0]
