"""Does the learned controller learn? Held-out learning curves on digits or mnist5k (`--task`;
issues 5, 10 and 14).

Trains PPO controllers from the task's preset (`esper train ppo`), one per --train entry and
training seed, keeping every round's policy (`--keep-every 1`), then evaluates static, random,
heuristic and each run's policies at the --curve rounds (0 = the untrained network, acting
greedily) on the same held-out env seeds in one `esper evaluate` (seeds never used in
training). It prints the controller and paired-comparison tables (95% BCa intervals, sign-flip
p-values; every policy is also compared with its own run's round 0), one line per --train entry
and round over its training seeds, and draws the curves (test accuracy and parameters added vs
round, one line per training seed, baselines as bands) into --figure. Beside the baselines it
evaluates, for every training run, the best fixed growth plan that successive halving finds with
the same number of training episodes and the same reward (`plan_search.py`): "is learning
needed?"

By default two controllers are trained, the two ends of the accuracy/parameter trade-off that the
rent weight sets (docs/results.md): `digits` (the preset, rent 0.5: accuracy first) and `lean`
(rent 1.5: parameters cost three times as much; 8 envs a round, as the `digits_lean` preset).
Trainings run --jobs at a time, each in its own process on one thread.

Usage: python benchmarks/learning.py [--task digits] [--rounds 40] [--seeds 10]
                                     [--training-seeds 0,1,2] [--train NAME[:KEY=VALUE;...]]
                                     [--jobs 2] [--curve 0,1,2,5,10,20,40] [--figure FILE.png]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import torch

from esper.simic.config import TrainingConfig
from esper.simic.env_pool import env_config_for
from esper.simic.evaluation import paired_bootstrap_ci, paired_p_value
from machine import header, spread

DEFAULT_TRAINING = ("digits", "lean:rent_weight=1.5;n_envs=8;minibatch_envs=2")
# The preset every training, plan search and evaluation starts from (`--preset`).
PRESET = "digits"
SHIPPED_BASELINES = ("static", "random", "heuristic")
SEED_COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:cyan", "tab:olive")


def parse_training(text: str) -> tuple[str, list[str]]:
    """NAME[:KEY=VALUE;KEY=VALUE] -> (name, ["KEY=VALUE", ...])."""
    name, _, settings = text.partition(":")
    return name, [s for s in settings.split(";") if s]


def baseline_tag(name: str, settings: list[str]) -> str:
    """What this variant's baselines are labelled with: "" where they play the preset's
    episodes, else " (NAME)". The rule is `esper evaluate`'s for sharing one env: episodes are
    the same where the env configs differ at most in their rewards, which no baseline reads (a
    parameter budget or other slots change them; a price, lr or telemetry does not)."""
    preset = env_config_for(TrainingConfig.resolve(PRESET), 0)
    overrides = dict(setting.split("=", 1) for setting in settings)
    variant = env_config_for(TrainingConfig.resolve(PRESET, overrides=overrides), 0)
    return "" if replace(variant, reward=preset.reward) == preset else f" ({name})"


def envs_of(args: argparse.Namespace, settings: list[str]) -> int:
    """Envs per round of one --train entry: its own `n_envs=` setting, else --envs (the plan
    search's budget follows it: rounds x envs episodes)."""
    own = [s.split("=", 1)[1] for s in settings if _key(s) == "n_envs"]
    return int(own[-1]) if own else args.envs


def _key(setting: str) -> str:
    return setting.split("=", 1)[0].strip()


def _set_flags(settings: list[str]) -> list[str]:
    """`--set` flags for the settings other than n_envs (which goes as `--envs`, or, for a plan
    search, into its episode budget)."""
    return [arg for s in settings if _key(s) != "n_envs" for arg in ("--set", s)]


def check_reused(run: Path, args: argparse.Namespace, settings: list[str], seed: int) -> None:
    """Refuse to reuse a run trained with other rounds, envs, seed or settings than asked."""
    recorded = json.loads((run / "config.json").read_text())
    asked = TrainingConfig.resolve(
        PRESET,
        overrides={
            "rounds": str(args.rounds),
            "seed": str(seed),
            **dict(s.split("=", 1) for s in settings),
            "n_envs": str(envs_of(args, settings)),
        },
    ).to_json_dict()
    keys = ["rounds", "n_envs", "seed", *(_key(s) for s in settings)]
    differ = [k for k in keys if recorded.get(k) != asked[k]]
    if differ:
        shown = ", ".join(f"{k} {recorded.get(k)!r} (asked {asked[k]!r})" for k in differ)
        raise SystemExit(f"--reuse-runs: {run} was trained with {shown}")


def train(
    args: argparse.Namespace, name: str, settings: list[str], seed: int
) -> tuple[Path, float]:
    """One `esper train ppo` in its own process: (run directory, wall seconds). With
    --reuse-runs a run whose last round is already kept is not trained again (0 seconds)."""
    run_name = f"{name}-s{seed}"
    run = args.runs_dir / run_name
    if args.reuse_runs and (run / "checkpoints" / f"round-{args.rounds:06d}.pt").exists():
        check_reused(run, args, settings, seed)
        return run, 0.0
    command = [sys.executable, "-m", "esper", "train", "ppo", "--preset", PRESET]
    envs = envs_of(args, settings)
    command += ["--rounds", str(args.rounds), "--envs", str(envs), "--seed", str(seed)]
    command += ["--runs-dir", str(args.runs_dir), "--name", run_name, "--keep-every", "1"]
    command += ["--no-live", "--telemetry", "minimal"]
    command += _set_flags(settings)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"training {run_name} failed:\n{done.stderr[-2000:]}")
    return args.runs_dir / run_name, time.perf_counter() - started


def search_plan(args: argparse.Namespace, settings: list[str], seed: int) -> str:
    """`plan_search.py` with this run's budget (rounds x envs episodes) and reward, in its own
    process: the best fixed plan, as `plan:` text."""
    command = [sys.executable, str(Path(__file__).with_name("plan_search.py"))]
    command += ["--budget", str(args.rounds * envs_of(args, settings)), "--seed", str(seed)]
    command += ["--task", PRESET]
    command += _set_flags(settings)
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = [line for line in done.stdout.splitlines() if line.startswith("best plan: ")]
    if done.returncode != 0 or not found:
        raise SystemExit(f"plan search (seed {seed}) failed:\n{done.stderr[-2000:]}")
    return found[-1].removeprefix("best plan: ").split(" ")[0]


def add_run_arguments(parser: argparse.ArgumentParser, curve: str, kind: str) -> None:
    """The flags of a benchmark that trains PPO runs and evaluates their kept policies."""
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10, help="held-out evaluation seeds")
    parser.add_argument("--training-seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="processes run at once")
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs/bench") / time.strftime(f"{kind}%Y%m%d-%H%M%S"),
        help=f"where the trainings and results go (default: a fresh runs/bench/{kind}<time>)",
    )
    parser.add_argument(
        "--skip-seeds",
        type=int,
        default=0,
        metavar="K",
        help="evaluate on the held-out block 2^30 + K (`esper evaluate --skip-seeds`): compare "
        "training variants on a block of their own, and report on the default block once",
    )
    parser.add_argument(
        "--reuse-runs",
        action="store_true",
        help="do not train again a run in --runs-dir that has kept its last round (the "
        "trainings are deterministic: evaluate an earlier run's policies again)",
    )
    parser.add_argument(
        "--curve",
        default=curve,
        help="rounds whose policies are evaluated (those above --rounds are dropped; the last "
        "round is always included)",
    )


def seeds_and_curve(args: argparse.Namespace) -> tuple[list[int], list[int]]:
    """The training seeds and the rounds to evaluate, from `add_run_arguments`' flags."""
    rounds = {int(r) for r in args.curve.split(",") if int(r) <= args.rounds}
    return [int(s) for s in args.training_seeds.split(",")], sorted(rounds | {args.rounds})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_run_arguments(parser, "0,1,2,5,10,20,40", "")
    parser.add_argument(
        "--figure",
        type=Path,
        default=None,
        help="where the curves go (default: docs/learning_curve.png, on another task "
        "docs/learning_curve_TASK.png)",
    )
    parser.add_argument(
        "--no-plan-search",
        action="store_true",
        help="skip the budget-matched search over fixed plans (plan_search.py)",
    )
    parser.add_argument(
        "--plans",
        default=None,
        metavar="PLAN,...",
        help="evaluate these fixed plans (BLUEPRINT@SLOT+...) instead of searching: the plan "
        "search does not depend on PPO, so an earlier search's winners can be reused (every "
        "variant plays all of them: under a parameter budget give plans that fit it, or a seed "
        "that does not is skipped)",
    )
    parser.add_argument(
        "--from-results",
        type=Path,
        default=None,
        metavar="EVALUATION_JSON",
        help="train and evaluate nothing: summarize and draw an earlier run's evaluation.json "
        "(give the same --train, --training-seeds, --rounds and --curve)",
    )
    parser.add_argument(
        "--train",
        action="append",
        default=None,
        metavar="NAME[:KEY=VALUE;...]",
        help=f"a controller to train (repeatable; default: {' and '.join(DEFAULT_TRAINING)})",
    )
    parser.add_argument(
        "--task",
        default="digits",
        help="the task, each run starting from its preset: digits or mnist5k (default: digits)",
    )
    args = parser.parse_args()
    global PRESET
    PRESET = args.task
    if args.figure is None:
        suffix = "" if PRESET == "digits" else f"_{PRESET}"
        args.figure = Path(f"docs/learning_curve{suffix}.png")
    torch.set_num_threads(1)  # as every esper command here (each training process too)
    training_seeds, curve = seeds_and_curve(args)
    variants = [parse_training(t) for t in args.train or DEFAULT_TRAINING]
    jobs = [(name, settings, seed) for name, settings in variants for seed in training_seeds]
    print(header(f"held-out learning curves on {PRESET}", runs=args.seeds))
    envs = "/".join(dict.fromkeys(str(envs_of(args, settings)) for _, settings in variants))
    print(
        f"training: {len(jobs)} runs ({', '.join(n for n, _ in variants)} x seeds "
        f"{training_seeds}), {args.rounds} rounds x {envs} envs each, {args.jobs} at a time; "
        f"policies evaluated at rounds {curve}",
        flush=True,
    )
    if args.from_results is not None:
        report(json.loads(args.from_results.read_text()), args, variants, training_seeds, curve)
        return
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        trained = list(pool.map(lambda job: train(args, *job), jobs))
    wall = time.perf_counter() - started
    runs = [run for run, _ in trained]
    plans: list[str] = []
    own_plans: dict[str, set[str]] = {}  # per variant, the plans its searches found
    if args.plans:
        plans = [f"plan:{plan.strip()}" for plan in args.plans.split(",")]
    elif not args.no_plan_search:
        started = time.perf_counter()
        with ThreadPoolExecutor(args.jobs) as pool:
            found = list(pool.map(lambda job: search_plan(args, job[1], job[2]), jobs))
        for (name, settings, seed), plan in zip(jobs, found, strict=True):
            episodes = args.rounds * envs_of(args, settings)
            print(f"plan search for {name} seed {seed} ({episodes} episodes): {plan}")
        print(f"plan search: {len(jobs)} searches in {time.perf_counter() - started:.0f} s wall")
        plans = sorted({f"plan:{plan}" for plan in found})
        for (name, _, _), plan in zip(jobs, found, strict=True):
            own_plans.setdefault(name, set()).add(f"plan:{plan}")
    # One `esper evaluate` per variant (--jobs at a time), each with the baselines and plans, so
    # that each run's policies meet its own round 0 and the baselines in one summary; the
    # baselines' episodes are deterministic, so their repeats agree and are merged. A variant
    # with baselines of its own (`baseline_tag`) plays only the plans its own searches found:
    # another variant's may not fit its setting (a parameter budget).
    tags = {name: baseline_tag(name, settings) for name, settings in variants}

    def baselines(name: str) -> list[str]:
        if not own_plans:  # --plans: the same for every variant
            return [*SHIPPED_BASELINES, *plans]
        if tags[name]:
            return [*SHIPPED_BASELINES, *sorted(own_plans.get(name, ()))]
        shared = {p for n, found in own_plans.items() if not tags[n] for p in found}
        return [*SHIPPED_BASELINES, *sorted(shared)]

    groups = [
        (
            name,
            [
                f"ppo:{run}@{r}"
                for run, (n, _, _) in zip(runs, jobs, strict=True)
                if n == name
                for r in curve
            ],
        )
        for name, _ in variants
    ]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        parts = list(
            pool.map(
                lambda group: evaluate(
                    [*baselines(group[0]), *group[1]],
                    args.seeds,
                    args.runs_dir / f"evaluation-{group[0]}.json",
                    "--skip-seeds",
                    str(args.skip_seeds),
                    tag=tags[group[0]],
                ),
                groups,
            )
        )
        if all(tags.values()):  # every variant has its own baselines: the preset's as well
            parts.append(
                evaluate(
                    list(SHIPPED_BASELINES),
                    args.seeds,
                    args.runs_dir / "evaluation-preset-baselines.json",
                    "--preset",
                    PRESET,
                    "--skip-seeds",
                    str(args.skip_seeds),
                )
            )
    evaluation_wall = time.perf_counter() - started
    results = merge_results(parts)
    out = args.runs_dir / "evaluation.json"
    out.write_text(json.dumps(results))
    print(f"PPO training: {len(jobs)} runs in {wall:.0f} s wall ({args.jobs} at a time)")
    for (name, settings, seed), (run, seconds) in zip(jobs, trained, strict=True):
        print(f"  {name} seed {seed} ({', '.join(settings) or 'preset'}): {seconds:.0f} s, {run}")
    print(f"evaluation: {len(results['controllers'])} controllers in {evaluation_wall:.0f} s")
    report(results, args, variants, training_seeds, curve)
    print(f"full results (per-episode records too): {out}")


def report(
    results: dict[str, Any],
    args: argparse.Namespace,
    variants: list[tuple[str, list[str]]],
    training_seeds: list[int],
    curve: list[int],
) -> None:
    """The headline table, the per-round curves and the figure."""
    print_headline(results, variants, training_seeds, args.rounds)
    summarize_curves(results, variants, training_seeds, curve)
    draw_curves(results, variants, training_seeds, curve, args.figure)
    print(f"figure: {args.figure}")


def print_headline(
    results: dict[str, Any],
    variants: list[tuple[str, list[str]]],
    training_seeds: list[int],
    rounds: int,
) -> None:
    """Baselines, plans and every final policy: mean test accuracy [95% CI], parameters added
    and the network grown most often; then each final policy minus the heuristic, static, its
    own round 0 and each plan (test accuracy, pp, with the interval and the sign-flip p-value)."""
    by_label = {c["label"]: c for c in results["controllers"]}
    finals = [label_of(name, seed, rounds) for name, _ in variants for seed in training_seeds]
    rows = [c for c in results["controllers"] if not c["label"].startswith("ppo:")]
    rows += [by_label[label] for label in finals]
    grown: dict[str, Counter[str]] = {}
    for e in results["episodes"]:
        network = " + ".join(e["outcome"]["grown"]) or "nothing"
        grown.setdefault(e["controller"], Counter())[network] += 1
    n = len(results["seeds"])
    print(f"controller | test acc % [95% CI] | params added | grown most often ({n} seeds)")
    for c in rows:
        acc = c["test_accuracy"]
        shown = f"{acc['mean']:6.2f} [{acc['lo']:6.2f}, {acc['hi']:6.2f}]"
        network, count = grown[c["label"]].most_common(1)[0]
        added = c["params_added"]["mean"]
        print(f"  {c['label']:44s} {shown} | {added:7.0f} | {network} ({count}/{n})")
    comparisons = {
        (c["minuend"], c["subtrahend"]): c
        for c in results["comparisons"]
        if c["metric"] == "test_accuracy"
    }
    print("final policy - reference | test acc, pp [95% CI] (p)")
    for name, settings in variants:
        tag = baseline_tag(name, settings)
        plans = [
            c["label"]
            for c in results["controllers"]
            if c["label"].startswith("plan:")
            and (c["label"].endswith(tag) if tag else "(" not in c["label"])
        ]
        # A variant with baselines of its own meets the preset's too (same seeds, paired).
        shipped = ["heuristic", "static"] if tag else []
        for seed in training_seeds:
            label = label_of(name, seed, rounds)
            untrained = label.rsplit("@", 1)[0] + "@0"
            for reference in (f"heuristic{tag}", f"static{tag}", *shipped, untrained, *plans):
                c = comparisons.get((label, reference))
                if c is not None:
                    d, p = c["difference"], c["p_value"]
                    mean, lo, hi = d["mean"], d["lo"], d["hi"]
                else:
                    a = episode_values(results, label, "test_accuracy")
                    b = episode_values(results, reference, "test_accuracy")
                    if not a or len(a) != len(b):
                        continue
                    (mean, lo, hi), p = paired_bootstrap_ci(a, b), paired_p_value(a, b)
                shown = f"{mean:+6.2f} [{lo:+6.2f}, {hi:+6.2f}] (p {p:.3g})"
                print(f"  {label:24s} - {reference:34s} {shown}")
    # The objective itself: a policy and its own round 0 play under the same reward (its run's),
    # so their returns compare; a baseline's are scored under the baselines' reward.
    print("final policy - its round 0 | episode return, its run's reward [95% CI] (p)")
    for label in finals:
        untrained = label.rsplit("@", 1)[0] + "@0"
        a, b = episode_values(results, label), episode_values(results, untrained)
        if not a or len(a) != len(b):
            continue
        mean, lo, hi = paired_bootstrap_ci(a, b)
        p = paired_p_value(a, b)
        print(f"  {label:24s} - {untrained:34s} {mean:+6.2f} [{lo:+6.2f}, {hi:+6.2f}] (p {p:.3g})")


def episode_values(results: dict[str, Any], label: str, key: str = "episode_return") -> list[float]:
    """One value per held-out seed (in seed order) of the outcome field `key` for `label`."""
    rows = sorted(
        (e for e in results["episodes"] if e["controller"] == label), key=lambda e: e["seed"]
    )
    return [float(e["outcome"][key]) for e in rows]


def evaluate(
    controllers: list[str], seeds: int, out: Path, *options: str, tag: str = ""
) -> dict[str, Any]:
    """One `esper evaluate` of the preset in its own process (`options`: more of its flags): its
    results JSON, written to `out`, with every ppo policy labelled ppo:RUN_NAME@ROUND (esper
    labels the policies of a single run ppo@ROUND) and every other controller's label followed
    by `tag` (`baseline_tag`)."""
    task = TrainingConfig.preset(PRESET).task  # its baselines play the preset named after it
    command = [sys.executable, "-m", "esper", "evaluate", "--task", task]
    command += ["--controllers", ",".join(controllers), "--seeds", str(seeds)]
    command += [*options, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"evaluation {out.name} failed:\n{done.stderr[-2000:]}")
    results: dict[str, Any] = json.loads(out.read_text())
    runs = {Path(c[len("ppo:") :].rsplit("@", 1)[0]) for c in controllers if c.startswith("ppo:")}
    single = next(iter(runs)).name if len(runs) == 1 else None
    return relabeled(results, single, tag)


def evaluate_each(
    args: argparse.Namespace, controllers: list[str], flag: str, values: list[Any], what: str
) -> dict[Any, dict[str, Any]]:
    """`evaluate` once per value of one `esper evaluate` flag (`--rent-weight`, `--param-budget`),
    --jobs at a time, on the --skip-seeds block: value -> its results."""
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        evaluated = list(
            pool.map(
                lambda v: evaluate(
                    controllers,
                    args.seeds,
                    args.runs_dir / f"eval-{v}.json",
                    flag,
                    str(v),
                    "--skip-seeds",
                    str(args.skip_seeds),
                ),
                values,
            )
        )
    print(
        f"evaluation: {len(controllers)} controllers x {len(values)} {what}s x {args.seeds} "
        f"seeds in {time.perf_counter() - started:.0f} s wall"
    )
    return dict(zip(values, evaluated, strict=True))


def print_means(results: dict[Any, dict[str, Any]], labels: list[str], what: str) -> None:
    """Per value of `what` and controller: mean return, test accuracy and parameters added."""
    for value, result in results.items():
        print(f"\n{what} {value}: controller | return | test acc % | params added")
        for label in labels:
            means = [
                statistics.mean(episode_values(result, label, key))
                for key in ("episode_return", "test_accuracy", "params_added")
            ]
            print(f"  {label:60s} {means[0]:7.2f} {means[1]:6.2f} {means[2]:7.0f}")


def shown(difference: tuple[float, float, float]) -> str:
    mean, lo, hi = difference
    return f"{mean:+6.2f} [{lo:+6.2f}, {hi:+6.2f}]"


def differences_by_value(
    results: dict[Any, dict[str, Any]], final: str, reference: dict[Any, str], key: str
) -> str:
    """`final` - `reference[value]` on the outcome field `key`, paired over the held-out seeds
    (`evaluate_each`'s results): pooled over every value, then at each."""
    pooled_final: list[float] = []
    pooled_reference: list[float] = []
    parts = []
    for value, result in results.items():
        a = episode_values(result, final, key)
        b = episode_values(result, reference[value], key)
        pooled_final += a
        pooled_reference += b
        parts.append(f"{value}: {shown(paired_bootstrap_ci(a, b))}")
    pooled = shown(paired_bootstrap_ci(pooled_final, pooled_reference))
    return f"all {pooled} | " + " | ".join(parts)


def relabeled(results: dict[str, Any], run: str | None, tag: str) -> dict[str, Any]:
    """`results` with ppo@ROUND labelled ppo:RUN@ROUND (where one run was evaluated) and every
    label that is not a ppo policy's followed by `tag`."""

    def relabel(label: str) -> str:
        if label.startswith("ppo"):
            return re.sub(r"^ppo@", f"ppo:{run}@", label) if run is not None else label
        return label + tag

    for c in results["controllers"]:
        c["label"] = relabel(c["label"])
    for c in results["comparisons"]:
        c["minuend"], c["subtrahend"] = relabel(c["minuend"]), relabel(c["subtrahend"])
    for e in results["episodes"]:
        e["controller"] = relabel(e["controller"])
    return results


def merge_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Several evaluations on the same seeds as one: controllers, comparisons and episodes,
    each once (a baseline evaluated in every part played the same episodes in each)."""
    merged = {**parts[0], "controllers": [], "comparisons": [], "episodes": []}
    seen: set[tuple[str, ...]] = set()
    for part in parts:
        if part["seeds"] != merged["seeds"]:
            raise SystemExit("evaluations on different seeds cannot be merged")
        for key, identity in (
            ("controllers", ("label",)),
            ("comparisons", ("minuend", "subtrahend", "metric")),
            ("episodes", ("controller", "seed")),
        ):
            for entry in part[key]:
                name = (key, *(str(entry[field]) for field in identity))
                if name not in seen:
                    seen.add(name)
                    merged[key].append(entry)
    return merged


def label_of(name: str, seed: int, round_index: int) -> str:
    return f"ppo:{name}-s{seed}@{round_index}"


def summarize_curves(
    results: dict[str, Any],
    variants: list[tuple[str, list[str]]],
    training_seeds: list[int],
    curve: list[int],
) -> None:
    """Per variant and round: the mean test accuracy and parameters over training seeds, and how
    many training seeds' policies beat their own round 0 (paired interval above zero)."""
    by_label = {c["label"]: c for c in results["controllers"]}
    versus_untrained = {
        c["minuend"]: c
        for c in results["comparisons"]
        if c["metric"] == "test_accuracy" and c["subtrahend"].endswith("@0")
    }
    for name, _ in variants:
        print(f"{name}: round | test acc % per training seed | params added | beats its round 0")
        for r in curve:
            labels = [label_of(name, seed, r) for seed in training_seeds]
            acc = [by_label[label]["test_accuracy"]["mean"] for label in labels]
            added = [by_label[label]["params_added"]["mean"] for label in labels]
            wins = [
                versus_untrained[label]["difference"]["lo"] > 0
                for label in labels
                if label in versus_untrained
            ]
            shown = " ".join(f"{a:6.2f}" for a in acc)
            beats = f"{sum(wins)}/{len(wins)}" if wins else "-"
            print(f"  {r:4d} | {shown} | {spread(added)} | {beats}")


def draw_curves(
    results: dict[str, Any],
    variants: list[tuple[str, list[str]]],
    training_seeds: list[int],
    curve: list[int],
    figure: Path,
) -> None:
    """Test accuracy and parameters added vs round: one line per training seed (with its
    interval), the baselines as bands over the whole x range."""
    plt.switch_backend("Agg")  # no display: write the file only
    by_label = {c["label"]: c for c in results["controllers"]}
    fig, axes = plt.subplots(2, len(variants), figsize=(5.5 * len(variants), 7), squeeze=False)
    for column, (name, settings) in enumerate(variants):
        for row, metric in enumerate(("test_accuracy", "params_added")):
            ax = axes[row][column]
            tag = baseline_tag(name, settings)
            for baseline, colour in (("static", "grey"), ("heuristic", "tab:red")):
                e = by_label[baseline + tag][metric]
                ax.axhspan(e["lo"], e["hi"], color=colour, alpha=0.2, label=baseline)
                ax.axhline(e["mean"], color=colour, lw=1)
            for seed, colour in zip(training_seeds, SEED_COLOURS, strict=False):
                points = [by_label[label_of(name, seed, r)][metric] for r in curve]
                means = [p["mean"] for p in points]
                ax.plot(curve, means, marker="o", color=colour, label=f"training seed {seed}")
                lows, highs = [p["lo"] for p in points], [p["hi"] for p in points]
                ax.fill_between(curve, lows, highs, color=colour, alpha=0.15)
            ax.set_title(f"{name}: {'test accuracy %' if row == 0 else 'parameters added'}")
            ax.set_xlabel("PPO round (0: untrained, greedy)")
            ax.set_xscale("symlog", linthresh=1)  # rounds 0, 1, 2, 5, ... evenly apart
            ax.set_xticks(curve, [str(r) for r in curve])
            ax.legend(fontsize=7)
    fig.suptitle(f"held-out {PRESET}, {len(results['seeds'])} evaluation seeds, 95% BCa intervals")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
