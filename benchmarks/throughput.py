"""Env-steps per second for 1, 2, 4 and 8 envs, and the PPO update's share of a round (issue 5).

One env-step is one host epoch (train + validation with counterfactuals) plus one policy
decision. Backend: local (envs stepped in turn in this process).

Usage: python benchmarks/throughput.py [--rounds 3] [--envs 1,2,4,8]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.trainer import VectorizedTrainer
from esper.tolaria import DataOptions, get_task
from machine import header, spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", default="1,2,4,8")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(header("PPO round throughput on digits (local backend)", runs=args.rounds))
    data = get_task("digits").load(DataOptions())
    print(f"{'envs':>4} | {'env-steps/s':>28} | {'PPO update share of round %':>30}")
    for n in (int(e) for e in args.envs.split(",")):
        config = TrainingConfig.preset("digits").with_overrides(
            {"n_envs": n, "rounds": args.rounds, "minibatch_envs": 1}
        )
        trainer = VectorizedTrainer(config, build_pool(config, data))
        rates, shares = [], []
        for _ in range(args.rounds):
            summary = trainer.run_round()
            total = sum(summary.timing_s.values())
            steps = n * config.resolved_episode_length()
            rates.append(steps / total)
            shares.append(100 * summary.timing_s["ppo_update"] / total)
        print(f"{n:>4} | {spread(rates):>28} | {spread(shares):>30}")
        del trainer
    print(
        f"(median [min, max] over rounds; mean share {statistics.fmean(shares):.1f}% at the last n)"
    )


if __name__ == "__main__":
    main()
