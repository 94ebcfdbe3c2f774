"""Is learning needed? The best fixed growth plan found by search with PPO's episode budget.

A PPO run of R rounds x N envs plays R*N training episodes. Successive halving (Jamieson &
Talwalkar, 2016) spends the same number of episodes on fixed plans instead (every single-seed and
two-seed plan of `fixed_plans.py`, and "none"): each rung plays every surviving plan on the same
fresh training env seeds (a paired comparison), ranks the plans by mean episode return under the
reward the PPO run optimizes (validation accuracy and rent: never the test split), and keeps the
better half, until one plan is left or the budget is spent. The winner is what a researcher
would get from the same compute without learning; `learning.py` evaluates it on the held-out
seeds beside the trained policies (`esper evaluate --controllers plan:...`).

Usage: python benchmarks/plan_search.py [--budget 160] [--seed 0] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import torch

from esper.simic.config import TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.simic.environment import MorphogeneticEnv
from esper.simic.episodes import run_episodes
from esper.tamiyo.policy import PlanPolicy
from esper.tolaria import get_task
from fixed_plans import default_plans, plan_cost
from machine import header

# Search seeds lie in a block of their own below 2^30 (PPO's training seeds are spread over
# [0, 2^30) by its seed; evaluation seeds are at 2^30 and above).
SEARCH_SEED_BASE = 900_000_000


@dataclass(frozen=True)
class SearchResult:
    plan: str
    mean_return: float
    episodes_spent: int
    rungs: list[tuple[int, int]]  # (plans alive, episodes each) per rung


def successive_halving(
    config: TrainingConfig, budget: int, seed: int, verbose: bool = True
) -> SearchResult:
    """The fixed plan with the best mean episode return, found within `budget` episodes."""
    env = MorphogeneticEnv(get_task(config.task), config=env_config_for(config, 0))
    slots = env.session.model.slot_ids
    blueprints = env.session.model.blueprints
    alive = ["none", *default_plans(env.session.model)]
    # A plan over the (largest) budget could not be carried out; under budgets drawn per
    # episode, one within the largest plays the steps that fit its episode's budget.
    largest = max(config.param_budgets) if config.param_budgets else config.param_budget
    if largest is not None:
        model = env.session.model
        alive = [
            plan
            for plan in alive
            if plan_cost(model, PlanPolicy.parse(plan, slots, blueprints)) <= largest
        ]
    if budget < len(alive):
        raise ValueError(
            f"a budget of {budget} episodes cannot play each of the {len(alive)} plans once"
        )
    returns: dict[str, list[float]] = {plan: [] for plan in alive}
    n_rungs = math.ceil(math.log2(len(alive))) + 1
    next_seed = SEARCH_SEED_BASE + seed * 100_000
    spent, rungs = 0, []
    while len(alive) > 1 and budget - spent >= len(alive):
        per_plan = max(1, (budget // n_rungs) // len(alive))
        per_plan = min(per_plan, (budget - spent) // len(alive))
        seeds = list(range(next_seed, next_seed + per_plan))  # the same seeds for every plan
        next_seed += per_plan
        for plan in alive:
            policy = PlanPolicy(PlanPolicy.parse(plan, slots, blueprints))
            records = run_episodes(policy, [env], seeds)
            returns[plan] += [r.outcome.episode_return for r in records]
        spent += per_plan * len(alive)
        rungs.append((len(alive), per_plan))
        ranked = sorted(alive, key=lambda p: statistics.mean(returns[p]), reverse=True)
        if verbose:
            best = ranked[0]
            print(
                f"  rung {len(rungs)}: {len(alive)} plans x {per_plan} episodes; best {best} "
                f"(mean return {statistics.mean(returns[best]):.2f} over {len(returns[best])})",
                flush=True,
            )
        alive = ranked[: max(1, len(alive) // 2)]
    best = max(alive, key=lambda p: statistics.mean(returns[p]))
    return SearchResult(best, statistics.mean(returns[best]), spent, rungs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=160, help="episodes (PPO: rounds x envs)")
    parser.add_argument("--seed", type=int, default=0, help="search seed (its env seeds)")
    parser.add_argument("--task", default="digits", help="the task (its preset): digits, mnist5k")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a reward/env setting"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = dict(item.split("=", 1) for item in args.set)
    config = TrainingConfig.preset(args.task).with_overrides(settings)
    print(header(f"successive halving over fixed plans, budget {args.budget}", runs=1))
    started = time.perf_counter()
    result = successive_halving(config, args.budget, args.seed)
    print(
        f"best plan: {result.plan} (mean return {result.mean_return:.2f}); "
        f"{result.episodes_spent} episodes in {time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
