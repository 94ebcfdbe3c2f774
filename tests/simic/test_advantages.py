"""GAE: the vectorized solver against the plain backward loop, and hand-computed values; the
group-relative advantages of envs that share a seed."""

from __future__ import annotations

import pytest
import torch

from esper.simic.advantages import gae, gae_reference, group_relative

GAMMA, LAM = 0.99, 0.95


def _random_rollout(
    T: int, N: int, seed: int, terminal_prob: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(T, N, generator=g, dtype=torch.float64)
    values = torch.randn(T, N, generator=g, dtype=torch.float64)
    dones = (torch.rand(T, N, generator=g, dtype=torch.float64) < terminal_prob).double()
    return rewards, values, dones


def _assert_same(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]):
    torch.testing.assert_close(a[0], b[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(a[1], b[1], atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("T", [1, 2, 7, 25])
def test_vectorized_equals_loop_with_the_last_step_terminal(seed: int, T: int) -> None:
    rewards, values, dones = _random_rollout(T, 4, seed, terminal_prob=0.0)
    dones[-1] = 1.0  # the final epoch is a true terminal
    # Whatever last_values holds must not leak in: nothing is bootstrapped past a terminal.
    last_values = torch.full((4,), 123.0, dtype=torch.float64)
    fast = gae(rewards, values, dones, last_values, GAMMA, LAM)
    _assert_same(fast, gae_reference(rewards, values, dones, last_values, GAMMA, LAM))
    _assert_same(fast, gae(rewards, values, dones, torch.zeros(4, dtype=torch.float64), GAMMA, LAM))


@pytest.mark.parametrize("seed", range(5))
def test_vectorized_equals_loop_with_terminals_in_the_middle(seed: int) -> None:
    rewards, values, dones = _random_rollout(12, 5, seed, terminal_prob=0.3)
    dones[-1] = 1.0
    assert dones[:-1].sum() > 0  # the case under test really occurs
    last_values = torch.randn(5, dtype=torch.float64)
    _assert_same(
        gae(rewards, values, dones, last_values, GAMMA, LAM),
        gae_reference(rewards, values, dones, last_values, GAMMA, LAM),
    )


@pytest.mark.parametrize("seed", range(5))
def test_vectorized_equals_loop_on_a_truncation_bootstrapped_through_last_values(
    seed: int,
) -> None:
    rewards, values, dones = _random_rollout(10, 3, seed, terminal_prob=0.2)
    dones[-1] = 0.0  # cut off, not terminal
    last_values = torch.randn(3, dtype=torch.float64) * 5
    fast = gae(rewards, values, dones, last_values, GAMMA, LAM)
    _assert_same(fast, gae_reference(rewards, values, dones, last_values, GAMMA, LAM))
    # The bootstrap matters: another last value changes the last advantage by gamma * delta V.
    shifted = gae(rewards, values, dones, last_values + 1.0, GAMMA, LAM)
    torch.testing.assert_close(shifted[0][-1] - fast[0][-1], torch.full((3,), GAMMA).double())


def test_float32_inputs_match_the_loop() -> None:
    rewards, values, dones = (x.float() for x in _random_rollout(25, 4, 0, terminal_prob=0.1))
    dones[-1] = 1.0
    last_values = torch.zeros(4)
    _assert_same(
        gae(rewards, values, dones, last_values, 0.995, 0.98),
        gae_reference(rewards, values, dones, last_values, 0.995, 0.98),
    )


# Hand-computed, gamma = 0.9, lambda = 0.8 (gamma * lambda = 0.72), one env:
# rewards (1, 0, 2), values (0.5, 1.0, 0.0).
REWARDS = torch.tensor([[1.0], [0.0], [2.0]], dtype=torch.float64)
VALUES = torch.tensor([[0.5], [1.0], [0.0]], dtype=torch.float64)


def test_hand_computed_three_steps_ending_in_a_terminal() -> None:
    # delta_2 = 2 - 0 = 2                   A_2 = 2
    # delta_1 = 0 + 0.9 * 0.0 - 1.0 = -1    A_1 = -1 + 0.72 * 2 = 0.44
    # delta_0 = 1 + 0.9 * 1.0 - 0.5 = 1.4   A_0 = 1.4 + 0.72 * 0.44 = 1.7168
    dones = torch.tensor([[0.0], [0.0], [1.0]], dtype=torch.float64)
    last = torch.tensor([99.0], dtype=torch.float64)  # ignored: the last step is terminal
    for estimator in (gae, gae_reference):
        advantages, returns = estimator(REWARDS, VALUES, dones, last, 0.9, 0.8)
        expected = torch.tensor([[1.7168], [0.44], [2.0]], dtype=torch.float64)
        torch.testing.assert_close(advantages, expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(returns, expected + VALUES, atol=1e-12, rtol=0)


def test_hand_computed_three_steps_truncated() -> None:
    # delta_2 = 2 + 0.9 * 3 - 0 = 4.7       A_2 = 4.7
    # delta_1 = -1                          A_1 = -1 + 0.72 * 4.7 = 2.384
    # delta_0 = 1.4                         A_0 = 1.4 + 0.72 * 2.384 = 3.11648
    dones = torch.zeros(3, 1, dtype=torch.float64)
    last = torch.tensor([3.0], dtype=torch.float64)
    for estimator in (gae, gae_reference):
        advantages, returns = estimator(REWARDS, VALUES, dones, last, 0.9, 0.8)
        expected = torch.tensor([[3.11648], [2.384], [4.7]], dtype=torch.float64)
        torch.testing.assert_close(advantages, expected, atol=1e-12, rtol=0)
        torch.testing.assert_close(returns, advantages + VALUES, atol=1e-12, rtol=0)


def test_hand_computed_terminal_in_the_middle_cuts_the_trace() -> None:
    # A terminal after step 0: A_0 = r_0 - V_0 = 0.5, whatever follows;
    # steps 1 and 2 are as in the terminal case: A_1 = 0.44, A_2 = 2.
    dones = torch.tensor([[1.0], [0.0], [1.0]], dtype=torch.float64)
    last = torch.zeros(1, dtype=torch.float64)
    for estimator in (gae, gae_reference):
        advantages, _ = estimator(REWARDS, VALUES, dones, last, 0.9, 0.8)
        expected = torch.tensor([[0.5], [0.44], [2.0]], dtype=torch.float64)
        torch.testing.assert_close(advantages, expected, atol=1e-12, rtol=0)


def test_lambda_one_gives_discounted_returns_minus_values() -> None:
    """With lambda = 1 and a terminal last step, returns are the plain discounted sums."""
    rewards, values, dones = _random_rollout(6, 2, 7, terminal_prob=0.0)
    dones[-1] = 1.0
    _, returns = gae(rewards, values, dones, torch.zeros(2, dtype=torch.float64), 0.9, 1.0)
    expected = torch.zeros_like(rewards)
    running = torch.zeros(2, dtype=torch.float64)
    for t in reversed(range(6)):
        running = rewards[t] + 0.9 * running
        expected[t] = running
    torch.testing.assert_close(returns, expected, atol=1e-10, rtol=0)


def test_group_relative_is_return_to_go_minus_the_others_of_the_group() -> None:
    # 2 steps, 4 envs in groups of 2; every episode ends at step 1.
    rewards = torch.tensor([[1.0, 0.0, 2.0, 2.0], [10.0, 4.0, 0.0, 3.0]])
    dones = torch.tensor([[0.0] * 4, [1.0] * 4])
    g = 0.5
    to_go = torch.tensor([[1 + g * 10, 0 + g * 4, 2 + 0.0, 2 + g * 3], [10.0, 4.0, 0.0, 3.0]])
    expected = torch.stack(
        [
            to_go[:, 0] - to_go[:, 1],
            to_go[:, 1] - to_go[:, 0],
            to_go[:, 2] - to_go[:, 3],
            to_go[:, 3] - to_go[:, 2],
        ],
        1,
    )
    torch.testing.assert_close(group_relative(rewards, dones, g, 2), expected)


def test_group_relative_with_three_envs_uses_the_mean_of_the_other_two() -> None:
    rewards = torch.tensor([[3.0, 6.0, 9.0]])
    advantages = group_relative(rewards, torch.ones(1, 3), 0.9, 3)
    torch.testing.assert_close(advantages, torch.tensor([[3 - 7.5, 6 - 6.0, 9 - 4.5]]))


def test_group_relative_is_zero_where_a_group_did_the_same() -> None:
    rewards = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    rewards = torch.cat([rewards, rewards], 1)[:, [0, 2, 1, 3]]  # envs 0 = 1 and 2 = 3
    dones = torch.zeros(5, 4)
    dones[-1] = 1.0
    assert torch.equal(group_relative(rewards, dones, 0.99, 2), torch.zeros(5, 4))


@pytest.mark.parametrize(("n", "group"), [(4, 1), (4, 3), (3, 2)])
def test_group_relative_refuses_groups_that_do_not_fit(n: int, group: int) -> None:
    with pytest.raises(ValueError, match="does not divide"):
        group_relative(torch.zeros(2, n), torch.ones(2, n), 0.9, group)
