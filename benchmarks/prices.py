"""Where must a controller beat any fixed plan? One controller over several parameter prices.

On digits every episode wants about the same network at a given rent weight (docs/results.md,
"Held-out learning curves"): a fixed plan found by search is hard to beat there. The best plan
does change with the price of parameters: at rent 0.5 it is conv_heavy + conv_small (~400
parameters), at 4.5 conv_small + norm (~50). This script trains PPO with the price drawn per
episode (`--rent-weights`, the price is in the observation), gives successive halving the same
episode budget and the same mixed reward (`plan_search.py`: one fixed plan for every price), and
evaluates both, with static, the heuristic and each run's untrained policy, at every price on
the same held-out seeds (`esper evaluate --rent-weight P`). A controller that reads the price
can play a different plan at each; a fixed plan cannot.

It prints, per price and controller, the mean episode return (the objective both optimize),
test accuracy and parameters added, then per training seed the paired return difference
PPO - plan search and PPO - its round 0 at each price and over all prices (95% BCa intervals
over the held-out seeds). Trainings, searches and evaluations run --jobs at a time, each in its
own process on one thread.

Usage: python benchmarks/prices.py [--prices 0.5,1.5,4.5] [--rounds 40] [--training-seeds 0,1,2]
                                   [--seeds 10] [--curve 0,20,40] [--jobs 2]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import torch

from learning import (
    add_run_arguments,
    differences_by_value,
    evaluate_each,
    print_means,
    search_plan,
    seeds_and_curve,
    train,
)
from machine import header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prices", default="0.5,1.5,4.5", help="rent weights, comma-separated")
    add_run_arguments(parser, "0,20,40", "prices-")
    parser.add_argument(
        "--no-plan-search", action="store_true", help="skip the budget-matched plan search"
    )
    parser.add_argument(
        "--plan",
        default=None,
        help="evaluate this fixed plan for every training seed instead of searching (the search "
        "does not depend on PPO settings such as --set action_space=simple)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another training setting (e.g. action_space=simple)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every process it starts (the header reports it)
    prices = [float(p) for p in args.prices.split(",")]
    training_seeds, curve = seeds_and_curve(args)
    settings = [f"rent_weights={','.join(str(p) for p in prices)}", *args.set]
    print(header("one controller over several parameter prices, digits", runs=args.seeds))
    print(
        f"prices {prices} (drawn per episode: seed mod {len(prices)}); training seeds "
        f"{training_seeds}, {args.rounds} rounds x {args.envs} envs; policies at rounds {curve}",
        flush=True,
    )

    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        trained = list(pool.map(lambda s: train(args, "prices", settings, s), training_seeds))
        # The search gets the same settings: the reward's matter to it, PPO's (action_space)
        # do not (it plays fixed plans).
        if args.plan or args.no_plan_search:
            found = [args.plan or "none"] * len(training_seeds)  # "plan:none": the host alone
        else:
            found = list(pool.map(lambda s: search_plan(args, settings, s), training_seeds))
    print(f"training + plan search: {time.perf_counter() - started:.0f} s wall")
    for seed, (run, seconds), plan in zip(training_seeds, trained, found, strict=True):
        print(f"  seed {seed}: PPO {seconds:.0f} s ({run}); plan search: {plan}")
    plans = sorted({f"plan:{plan}" for plan in found})
    policies = [f"ppo:{run}@{r}" for run, _ in trained for r in curve]
    controllers = ["static", "heuristic", *plans, *policies]
    names = [f"ppo:{run.name}@{r}" for run, _ in trained for r in curve]  # as evaluate labels them
    labels = ["static", "heuristic", *plans, *names]

    results = evaluate_each(args, controllers, "--rent-weight", prices, "price")
    print_means(results, labels, "price")

    print("\npaired return differences (per training seed; mean [95% BCa] over held-out seeds)")
    for seed, (run, _), plan in zip(training_seeds, trained, found, strict=True):
        final, untrained = f"ppo:{run.name}@{args.rounds}", f"ppo:{run.name}@0"
        for reference, name in ((f"plan:{plan}", "plan search"), (untrained, "its round 0")):
            by_price = dict.fromkeys(prices, reference)
            shown = differences_by_value(results, final, by_price, "episode_return")
            print(f"  seed {seed}, PPO - {name}: {shown}")
    print(f"results: {args.runs_dir}/eval-<price>.json")


if __name__ == "__main__":
    main()
