"""What can growth buy on a task (digits, mnist5k), at what parameter cost? Fixed plans.

Each plan names seeds as BLUEPRINT@SLOT joined by "+", e.g. "conv_small@r0c0+norm@r0c1", played
by `esper.tamiyo.policy.PlanPolicy`: it germinates its seeds one per epoch from the first epoch on
(ADD blend, FAST tempo, alpha 1, linear curve), advances each as soon as its gate allows and
fossilizes it as soon as G3 allows: the earliest, simplest schedule. Plans run on the same env
seeds (training seeds, below 2^30; the evaluation seeds are never used here) with the task
preset's env settings (`--task`). For every plan the script prints the mean test accuracy, the
mean paired difference to the host alone ("none", always run first) with its 95% bootstrap
interval, and the parameters added. It maps the accuracy/parameter frontier that bounds what any
controller can reach with these blueprints on this host (a controller that adapts per episode
could do somewhat better than the best fixed plan, but not by much on a task this uniform).

Usage: python benchmarks/fixed_plans.py [--plans none,conv_light@r0c0,...] [--seeds 6]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch

from esper.kasmina import MorphogeneticModel, blueprint_names
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.simic.environment import MorphogeneticEnv
from esper.simic.episodes import run_episodes
from esper.simic.evaluation import paired_bootstrap_ci
from esper.tamiyo.policy import PlanPolicy
from esper.tolaria import get_task
from machine import header


def default_plans(model: MorphogeneticModel) -> list[str]:
    """Every single seed, then every pair on the first two slots (each slot's own family's
    blueprints)."""
    slots = model.slot_ids
    names = {slot: blueprint_names(model.slot(slot).family) for slot in slots}
    singles = [f"{bp}@{slot}" for slot in slots for bp in names[slot]]
    if len(slots) < 2:
        return singles
    first, second = slots[:2]
    return singles + [f"{a}@{first}+{b}@{second}" for a in names[first] for b in names[second]]


def plan_cost(model: MorphogeneticModel, plan: Sequence[tuple[str, str]]) -> int:
    """The parameters a parsed plan's seeds add to `model` (ADD blend, as plans plant)."""
    return sum(model.slot(slot).cost_of(blueprint) for slot, blueprint in plan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plans", default=None, help="comma-separated plans (default: all)")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--max-params", type=int, default=None, help="skip bigger plans")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--task", default="digits", help="a preset's task (digits, mnist5k)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainingConfig.preset(args.task)
    env = MorphogeneticEnv(get_task(config.task), config=env_config_for(config, 0))
    slots = env.session.model.slot_ids
    blueprints = env.session.model.blueprints
    texts = args.plans.split(",") if args.plans else default_plans(env.session.model)
    parsed = [PlanPolicy.parse(t, slots, blueprints) for t in dict.fromkeys(["none", *texts]) if t]
    limit = args.max_params
    model = env.session.model
    plans = [PlanPolicy(p) for p in parsed if limit is None or plan_cost(model, p) <= limit]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(header(f"fixed growth plans on {config.task}", runs=len(seeds)))
    print(f"env seeds {seeds} | episode {config.resolved_episode_length()} epochs")
    print(f"{'plan':40s} {'test acc %':>10s} {'vs none, pp [95% CI]':>24s} {'params':>7s}  s/ep")
    baseline: list[float] | None = None
    for policy in plans:
        started = time.perf_counter()
        records = run_episodes(policy, [env], seeds)
        acc = [r.outcome.test_accuracy for r in records]
        baseline = baseline or acc
        mean, lo, hi = paired_bootstrap_ci(acc, baseline)
        added = statistics.mean(r.outcome.params_added for r in records)
        seconds = (time.perf_counter() - started) / len(seeds)
        vs_none = f"{mean:+.2f} [{lo:+.2f}, {hi:+.2f}]"
        print(
            f"{policy.name:40s} {statistics.mean(acc):10.2f} {vs_none:>24s} {added:7.0f}"
            f"  {seconds:.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
