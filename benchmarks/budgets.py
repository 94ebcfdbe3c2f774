"""Where must a controller beat any fixed plan? One controller over several parameter budgets.

On digits every episode wants about the same network at a given price and budget
(docs/results.md): a fixed plan found by search is hard to beat there. Under a parameter budget
the best plan changes with the budget: at 78 parameters it is one depthwise seed, at 400 a
conv_heavy and a conv_small. This script trains PPO with the budget drawn per episode
(`--param-budgets`: the masks hold every controller to its episode's budget, the policy sees what
the budget leaves), and compares it, at every budget on the same held-out seeds
(`esper evaluate --param-budget B`), with:
- the plan successive halving finds with PPO's episode budget under the same drawn budgets
  (`plan_search.py`: one fixed plan for every episode; a step over an episode's budget is
  skipped, so a plan cannot be right at both ends);
- per budget, the plan that search finds when every one of its episodes has that budget (an
  oracle that knows the budget, and spends PPO's episode budget on each budget);
- static, the heuristic (it plants what fits) and each run's untrained policy (round 0).

It prints, per budget and controller, the mean episode return (the objective PPO and the search
optimize), test accuracy and parameters added, then per training seed the paired differences of
return and of test accuracy, PPO minus each reference, at each budget and over all budgets (95%
BCa intervals over the held-out seeds). Trainings, searches and evaluations run --jobs at a time,
each in its own process on one thread.

Usage: python benchmarks/budgets.py [--budgets 78,400] [--rounds 40] [--envs 8]
                                    [--training-seeds 0,1,2] [--seeds 10] [--jobs 3]
"""

from __future__ import annotations

import argparse
import json
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

# The digits preset's reward (rent 0.5) with 8 envs a round, as the lean runs (docs/results.md).
SETTINGS = ("n_envs=8", "minibatch_envs=2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="78,400", help="parameter budgets, comma-separated")
    add_run_arguments(parser, "0,20,40", "budgets-")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another training setting (default: n_envs=8, minibatch_envs=2)",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every process it starts (the header reports it)
    budgets = [int(b) for b in args.budgets.split(",")]
    training_seeds, curve = seeds_and_curve(args)
    extra = args.set or list(SETTINGS)
    drawn = [f"param_budgets={','.join(str(b) for b in budgets)}", *extra]
    print(header("one controller over several parameter budgets, digits", runs=args.seeds))
    print(
        f"budgets {budgets} (drawn per episode: seed mod {len(budgets)}); settings {extra}; "
        f"training seeds {training_seeds}, {args.rounds} rounds; policies at rounds {curve}",
        flush=True,
    )

    # With --reuse-runs the searches are read back from the runs directory (they are
    # deterministic: the same settings and seed find the same plan).
    cache = args.runs_dir / "searches.json"
    known: dict[str, str] = (
        json.loads(cache.read_text()) if args.reuse_runs and cache.exists() else {}
    )

    def searched(settings: list[str], seed: int) -> str:
        key = f"{';'.join(settings)} seed {seed} rounds {args.rounds}"
        if key not in known:
            known[key] = search_plan(args, settings, seed)
        return known[key]

    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        trainings = [pool.submit(train, args, "budgets", drawn, s) for s in training_seeds]
        searches = [pool.submit(searched, drawn, s) for s in training_seeds]
        # The oracle: one search per budget, every episode at that budget (search seed 0).
        oracles = [
            pool.submit(searched, [f"param_budget={b}", *extra], training_seeds[0]) for b in budgets
        ]
        trained = [t.result() for t in trainings]
        found = [s.result() for s in searches]
        oracle = dict(zip(budgets, (o.result() for o in oracles), strict=True))
    cache.write_text(json.dumps(known, indent=1))
    print(f"training + plan searches: {time.perf_counter() - started:.0f} s wall")
    for seed, (run, seconds), plan in zip(training_seeds, trained, found, strict=True):
        print(f"  seed {seed}: PPO {seconds:.0f} s ({run}); plan search: {plan}")
    for budget, plan in oracle.items():
        print(f"  search at budget {budget} only: {plan}")
    plans = sorted({f"plan:{plan}" for plan in [*found, *oracle.values()]})
    policies = [f"ppo:{run}@{r}" for run, _ in trained for r in curve]
    controllers = ["static", "heuristic", *plans, *policies]
    labels = [
        "static",
        "heuristic",
        *plans,
        *(f"ppo:{run.name}@{r}" for run, _ in trained for r in curve),
    ]

    results = evaluate_each(args, controllers, "--param-budget", budgets, "budget")
    print_means(results, labels, "budget")

    print("\npaired differences, PPO (last round) - reference; mean [95% BCa] over held-out seeds")
    for seed, (run, _), plan in zip(training_seeds, trained, found, strict=True):
        final = f"ppo:{run.name}@{args.rounds}"
        references: list[tuple[str, dict[int, str]]] = [
            ("plan search", {b: f"plan:{plan}" for b in budgets}),
            ("search per budget", {b: f"plan:{oracle[b]}" for b in budgets}),
            ("heuristic", dict.fromkeys(budgets, "heuristic")),
            ("its round 0", dict.fromkeys(budgets, f"ppo:{run.name}@0")),
        ]
        for name, reference in references:
            for key, unit in (("episode_return", "return"), ("test_accuracy", "test acc pp")):
                shown = differences_by_value(results, final, reference, key)
                print(f"  seed {seed}, PPO - {name}, {unit}: {shown}")
    print(f"results: {args.runs_dir}/eval-<budget>.json")


if __name__ == "__main__":
    main()
