"""Does the right plan vary from episode to episode? The per-episode best plan vs one plan.

For a set of fixed plans (default: the plans plan_search.py kept in its last rungs on digits,
and the cheap end of the frontier) this plays every plan on the same training env seeds and
compares, under the reward a PPO run optimizes (the episode return), the single best plan with
an oracle that picks, for each seed after the fact, the best plan for that seed. The oracle's
margin bounds what any controller that adapts per episode can gain over the best fixed plan
among these plans (it is biased upwards: picking a maximum after the fact also picks noise).
A margin near zero means every episode wants about the same network, where a fixed plan found by
search is hard to beat. It also prints how much of a return the env seed decides: each plan's
spread over seeds, and the spread of its difference to the best plan on the same seed against
the spread of that difference between two seeds (what one episode against another shows PPO).
--set changes a reward setting (e.g. rent_weight=4.5).

Usage: python benchmarks/plan_oracle.py [--seeds 10] [--first-seed 300] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from esper.simic.config import TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.simic.environment import MorphogeneticEnv
from esper.simic.episodes import run_episodes
from esper.simic.evaluation import paired_bootstrap_ci
from esper.tamiyo.policy import PlanPolicy
from esper.tolaria import get_task
from machine import header

DEFAULT_PLANS = (
    "none",
    "conv_small@r0c0+norm@r0c1",
    "conv_small@r0c0+conv_small@r0c1",
    "depthwise@r0c0+depthwise@r0c1",
    "conv_light@r0c0+conv_small@r0c1",
    "conv_heavy@r0c0+conv_small@r0c1",
    "conv_heavy@r0c0+depthwise@r0c1",
    "conv_heavy@r0c0+conv_heavy@r0c1",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", default=",".join(DEFAULT_PLANS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=300, help="training seeds (< 2^30)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TrainingConfig.preset("digits").with_overrides(
        dict(item.split("=", 1) for item in args.set)
    )
    env = MorphogeneticEnv(get_task("digits"), config=env_config_for(config, 0))
    slots, blueprints = env.session.model.slot_ids, env.session.model.blueprints
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(header("per-episode best plan vs the best fixed plan, digits", runs=len(seeds)))
    print(f"reward settings: {', '.join(args.set) or 'the digits preset'}; env seeds {seeds}")
    returns: dict[str, list[float]] = {}
    for plan in args.plans.split(","):
        policy = PlanPolicy(PlanPolicy.parse(plan, slots, blueprints))
        returns[plan] = [r.outcome.episode_return for r in run_episodes(policy, [env], seeds)]
        print(f"  {plan:40s} mean return {statistics.mean(returns[plan]):7.2f}", flush=True)
    best = max(returns, key=lambda plan: statistics.mean(returns[plan]))
    oracle = [max(values) for values in zip(*returns.values(), strict=True)]
    winners = [max(returns, key=lambda plan: returns[plan][i]) for i in range(len(seeds))]
    mean, lo, hi = paired_bootstrap_ci(oracle, returns[best])
    print(f"best fixed plan: {best} ({statistics.mean(returns[best]):.2f})")
    margin = f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}]"
    print(f"per-seed oracle: {statistics.mean(oracle):.2f}; margin over the best plan {margin}")
    print(
        f"the best plan was {best} on {winners.count(best)}/{len(seeds)} seeds; others: "
        + ", ".join(sorted({w for w in winners if w != best}))
    )
    # How loud is the seed? What PPO compares is one episode against another: on two seeds,
    # the difference of two plans carries both seeds' spread; on one seed, only what the plans
    # do differently (envs_per_seed, advantage=group).
    print("plan - best plan | mean | sd over seeds of: the plan's return, the paired difference")
    for plan, values in returns.items():
        if plan == best:
            continue
        differences = [a - b for a, b in zip(values, returns[best], strict=True)]
        spread_two_seeds = (statistics.variance(values) + statistics.variance(returns[best])) ** 0.5
        print(
            f"  {plan:40s} {statistics.mean(differences):+7.2f} | "
            f"{statistics.stdev(values):5.2f} | paired {statistics.stdev(differences):5.2f} "
            f"(on two seeds: {spread_two_seeds:5.2f})"
        )


if __name__ == "__main__":
    main()
