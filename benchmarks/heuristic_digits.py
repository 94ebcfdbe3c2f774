"""Host alone vs the heuristic on digits, on the same env seeds (issue 3, acceptance 2).

Usage: python benchmarks/heuristic_digits.py [--seeds 5] [--first-seed 1000]
Prints test accuracy and parameters added per controller (median [min, max]), and the paired
difference heuristic - static per seed.
"""

from __future__ import annotations

import argparse
import time

import torch

from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.episodes import run_episodes
from esper.tamiyo.policy import HeuristicPolicy, StaticPolicy
from esper.tolaria import get_task
from machine import header, spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    task = get_task("digits")
    config = EnvConfig(episode_length=task.episode_length, illegal_action="raise")
    env = MorphogeneticEnv(task, config=config)
    print(header("heuristic vs host alone on digits", runs=len(seeds)))
    print(f"task digits | episode {task.episode_length} epochs | env seeds {seeds}")
    results = {}
    for policy in (StaticPolicy(), HeuristicPolicy(env.session.model.blueprints)):
        started = time.perf_counter()
        records = run_episodes(policy, [env], seeds)
        results[policy.name] = records
        acc = [r.outcome.test_accuracy for r in records]
        added = [float(r.outcome.params_added) for r in records]
        fossils = [r.outcome.seeds_fossilized for r in records]
        print(
            f"{policy.name:9s} test acc % {spread(acc)} | params added {spread(added)} | "
            f"host params {records[0].outcome.host_params} | fossilized {fossils} | "
            f"{(time.perf_counter() - started) / len(seeds):.1f} s/episode"
        )
    diff = [
        h.outcome.test_accuracy - s.outcome.test_accuracy
        for h, s in zip(results["heuristic"], results["static"], strict=True)
    ]
    print(f"heuristic - static, paired by seed (pp): {spread(diff)} {[round(d, 2) for d in diff]}")


if __name__ == "__main__":
    main()
