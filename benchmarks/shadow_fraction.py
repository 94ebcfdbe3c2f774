"""What does a cheaper shadow pass cost the seeds? Fixed plans on digits at several fractions.

A seed in GERMINATED or TRAINING learns on a shadow pass: the seed on the detached host
activation, then every later layer again, forward and backward. At `shadow_fraction` f < 1 the
pass takes only each training batch's first ceil(f * B) samples (a random subset: batches are
shuffled), so it costs about f of what it did, and the seed's gradient is noisier but unbiased.
This script plays the same fixed plans (`esper.tamiyo.policy.PlanPolicy`, as in
`benchmarks/fixed_plans.py`) on the same env seeds (training seeds, below 2^30) at each fraction
and prints, per plan and fraction, the mean test accuracy, the paired difference to the same
plan at fraction 1 with its 95% bootstrap interval, and the seconds per episode. Every other
setting is the digits preset's.

Usage: python benchmarks/shadow_fraction.py [--fractions 1,0.25,0.125] [--seeds 10]
                                            [--plans conv_light@r0c0+conv_light@r0c1,...]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from esper.simic.config import TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.simic.environment import MorphogeneticEnv
from esper.simic.episodes import run_episodes
from esper.simic.evaluation import paired_bootstrap_ci
from esper.tamiyo.policy import PlanPolicy
from esper.tolaria import DataOptions, get_task
from machine import header

# The plans PPO and the plan search ended on in docs/results.md, first slot first: the first
# slot is where the shadow pass repeats the most of the host.
_PLANS = (
    "conv_light@r0c0+conv_light@r0c1",
    "conv_heavy@r0c0+conv_light@r0c1",
    "depthwise@r0c0+depthwise@r0c1",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fractions", default="1,0.25,0.125")
    parser.add_argument("--plans", default=",".join(_PLANS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fractions = [float(f) for f in args.fractions.split(",")]
    if fractions[0] != 1.0:
        raise SystemExit(f"--fractions must start with 1 (the reference), got {args.fractions!r}")
    config = TrainingConfig.preset("digits")
    task = get_task("digits")
    data = task.load(DataOptions())
    base = env_config_for(config, 0)
    envs = {}
    for fraction in fractions:
        session = dataclasses.replace(base.session, shadow_fraction=fraction)
        envs[fraction] = MorphogeneticEnv(task, data, dataclasses.replace(base, session=session))
    model = envs[1.0].session.model
    slots, blueprints = model.slot_ids, model.blueprints
    plans = [PlanPolicy(PlanPolicy.parse(t, slots, blueprints)) for t in args.plans.split(",")]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(header("shadow-pass fraction on digits, fixed plans", runs=len(seeds)))
    print(f"env seeds {seeds} | episode {config.resolved_episode_length()} epochs")
    print(f"{'plan':36s} {'fraction':>8s} {'test acc %':>10s} {'vs fraction 1, pp':>24s}  s/ep")
    for policy in plans:
        reference: list[float] | None = None
        for fraction, env in envs.items():
            started = time.perf_counter()
            records = run_episodes(policy, [env], seeds)
            seconds = (time.perf_counter() - started) / len(seeds)
            acc = [r.outcome.test_accuracy for r in records]
            reference = reference or acc
            mean, lo, hi = paired_bootstrap_ci(acc, reference)
            print(
                f"{policy.name:36s} {fraction:8g} {statistics.mean(acc):10.2f} "
                f"{f'{mean:+.2f} [{lo:+.2f}, {hi:+.2f}]':>24s}  {seconds:.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
