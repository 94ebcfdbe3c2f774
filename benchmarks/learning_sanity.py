"""Does PPO learn anything on digits? (issue 4, acceptance 9)

Trains PPO from the digits preset for --rounds rounds and reports, for the first and last
--window rounds: mean episode return (median [min, max] over rounds), test accuracy, the op mix
(frequencies, and its normalized entropy: 1.0 = uniform over the 6 ops), and each head's policy
entropy where it was used (median over the rounds' updates; 1.0 = uniform over legal choices).

Usage: python benchmarks/learning_sanity.py [--rounds 30] [--envs 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections import Counter

import torch

from esper.leyline import Op
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import build_pool
from esper.simic.trainer import RoundSummary, VectorizedTrainer
from esper.tolaria import DataOptions, get_task
from machine import header, spread


def op_mix(rounds: list[RoundSummary]) -> tuple[dict[str, float], float]:
    counts: Counter[str] = Counter()
    for r in rounds:
        counts.update(r.op_counts)
    total = sum(counts.values())
    freq = {op.name: counts.get(op.name, 0) / total for op in Op}
    entropy = -sum(p * math.log(p) for p in freq.values() if p > 0) / math.log(len(Op))
    return freq, entropy


def describe(label: str, rounds: list[RoundSummary]) -> None:
    returns = [r.mean_return for r in rounds]
    test = [sum(o.test_accuracy for o in r.outcomes) / len(r.outcomes) for r in rounds]
    added = [sum(o.params_added for o in r.outcomes) / len(r.outcomes) for r in rounds]
    freq, entropy = op_mix(rounds)
    mix = " ".join(f"{k}={v:.2f}" for k, v in freq.items())
    print(f"{label}: return {spread(returns)} | test acc {spread(test)}")
    print(f"{'':{len(label)}}  params added {spread(added)}")
    print(f"{'':{len(label)}}  op mix {mix} | normalized op entropy {entropy:.3f}")
    heads = " ".join(
        f"{h}={statistics.median(r.update.entropy[h] for r in rounds):.2f}"
        for h in rounds[0].update.entropy
    )
    print(f"{'':{len(label)}}  head entropy where used {heads}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lr", type=float, default=None, help="override the preset's lr")
    parser.add_argument("--minibatch-envs", type=int, default=None)
    parser.add_argument("--update-epochs", type=int, default=None)
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="any config setting"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainingConfig.preset("digits").with_overrides(
        {
            "rounds": args.rounds,
            "n_envs": args.envs,
            "seed": args.seed,
            "lr": args.lr,
            "minibatch_envs": args.minibatch_envs,
            "update_epochs": args.update_epochs,
            **dict(item.split("=", 1) for item in args.set),
        }
    )
    print(header("PPO learning sanity on digits", runs=1))
    print(
        f"config: {args.rounds} rounds x {args.envs} envs x {config.resolved_episode_length()} "
        f"epochs, lr {config.lr}, update epochs {config.update_epochs}, minibatch envs "
        f"{config.minibatch_envs or config.n_envs}, seed {args.seed}"
    )
    data = get_task("digits").load(DataOptions())
    trainer = VectorizedTrainer(config, build_pool(config, data))
    history = []
    started = time.perf_counter()
    for _ in range(args.rounds):
        summary = trainer.run_round()
        history.append(summary)
        u = summary.update
        outcomes = summary.outcomes
        test = sum(o.test_accuracy for o in outcomes) / len(outcomes)
        added = sum(o.params_added for o in outcomes) / len(outcomes)
        grown = Counter(g for o in outcomes for g in o.grown)
        print(
            f"round {summary.round:3d} return {summary.mean_return:8.2f} test {test:5.2f} "
            f"params {added:6.0f} ops {dict(sorted(summary.op_counts.items()))} "
            f"H(op) {u.entropy['op']:.3f} kl {u.approx_kl:.2e} EV {u.explained_variance:.2f} "
            f"grown {dict(grown.most_common())}",
            flush=True,
        )
    w = min(args.window, len(history) // 2)
    describe(f"first {w} rounds", history[:w])
    describe(f"last {w} rounds ", history[-w:])
    grown = Counter(g for r in history[-w:] for o in r.outcomes for g in o.grown)
    print(f"grown in the last {w} rounds: {dict(grown.most_common())}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
