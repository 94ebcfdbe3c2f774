"""Does a controller transfer? Train once on some tasks, grow networks of tasks never seen
(issue 15).

Trains PPO controllers on --train-tasks (`esper train ppo --task A,B`: each env of a round plays
one of them, in turn), one per --training-seeds, and on each target task itself (the controller a
researcher would get from a PPO run of their own; --target-seeds), all from one preset (the PPO
settings; each task keeps its own host). Then, per target task, one `esper evaluate` on the same
held-out env seeds (never used in training) plays static, random, heuristic, every transfer
controller (a checkpoint that never saw the target: reported as a transfer) and every target
controller. It prints the machine, each training's wall seconds, per target the controllers'
mean test accuracy [95% BCa interval] and parameters added, and the paired differences in test
accuracy (pp, [95% CI], sign-flip p) of each transfer controller minus static, heuristic and the
controllers trained on the target; then writes everything to RUNS_DIR/transfer.json.

With --best-window W (default 5) every transfer run also keeps each round's policy, and the
last policy of its best stretch of W rounds (the highest mean training return over W consecutive
rounds: training envs only, never the targets or held-out seeds) is evaluated beside the final
one, as `ppo:RUN@ROUND`: a late collapse of one PPO run then shows as the gap between
the two. Each set (final, selected) is also pooled over the training seeds.

Usage: python benchmarks/transfer.py [--train-tasks digits,examples/tabular_mlp.py:breast_cancer]
           [--targets mnist5k,examples/sequence_conv1d.py:sequential_digits]
           [--training-seeds 0,1,2] [--target-seeds 0] [--own-targets T,...] [--rounds 40]
           [--envs 4] [--seeds 10] [--jobs 2] [--runs-dir DIR] [--reuse-runs]
           [--own TARGET=RUN_DIR ...] [--best-window 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from esper.simic.evaluation import paired_bootstrap_ci, paired_p_value
from esper.simic.evaluation.runs import read_run_events
from esper.tolaria import get_task
from machine import header, spread

# Trained on two families (digits' CNN, the breast-cancer MLP); the targets are a bigger CNN on
# other images and a 1-D conv net with a dense slot (a family never trained on).
DEFAULT_TRAIN = "digits,examples/tabular_mlp.py:breast_cancer"
DEFAULT_TARGETS = "mnist5k,examples/sequence_conv1d.py:sequential_digits"
BASELINES = ("static", "random", "heuristic")


def task_name(spec: str) -> str:
    return get_task(spec).name


def train(
    args: argparse.Namespace, name: str, tasks: str, seed: int, extra: list[str]
) -> tuple[Path, float]:
    """One `esper train ppo` in its own process: (run directory, wall seconds); with
    --reuse-runs a completed run is not trained again (the seconds its run_end event says)."""
    run = args.runs_dir / name
    if args.reuse_runs and (seconds := completed_wall_seconds(run)) is not None:
        return run, seconds
    command = [sys.executable, "-m", "esper", "train", "ppo", "--preset", args.preset]
    command += ["--task", tasks, "--rounds", str(args.rounds), "--envs", str(args.envs)]
    command += ["--seed", str(seed), "--runs-dir", str(args.runs_dir), "--name", name]
    command += ["--no-live", "--quiet", "--telemetry", "minimal", *extra]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"training {name} failed:\n{done.stderr[-2000:]}")
    return run, time.perf_counter() - started


def completed_wall_seconds(run: Path) -> float | None:
    """The wall seconds of a run that completed (its event log's run_end), None otherwise."""
    try:
        events = read_run_events(run)
    except ValueError:  # not trained yet
        return None
    ends = [e["payload"] for e in events if e.get("type") == "run_end"]
    if not ends or ends[-1].get("status") != "completed":
        return None
    return float(ends[-1]["wall_time_s"])


def best_round(run: Path, window: int) -> int:
    """The last policy of `run`'s best `window` consecutive training rounds. Round k's episodes
    are played by the policy after k updates (`ppo:RUN@k`; @0 the untrained one); a stretch is
    scored by the mean return of its episodes, on the training envs, and ties go to the later
    stretch."""
    returns = [
        float(e["payload"]["mean_return"]) for e in read_run_events(run) if e["type"] == "round"
    ]
    if len(returns) < window:
        raise SystemExit(f"{run}: {len(returns)} rounds, fewer than --best-window {window}")
    starts = range(len(returns) - window + 1)
    best = max(starts, key=lambda i: (statistics.mean(returns[i : i + window]), i))
    return best + window - 1


def evaluate(
    args: argparse.Namespace, target: str, policies: list[str], out: Path
) -> dict[str, Any]:
    """One `esper evaluate` on `target`: the baselines and the given policies (`ppo:...`)."""
    controllers = [*BASELINES, *policies]
    command = [sys.executable, "-m", "esper", "evaluate", "--task", target]
    command += ["--controllers", ",".join(controllers), "--seeds", str(args.seeds)]
    command += ["--backend", args.eval_backend, "--no-live", "--quiet", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"evaluation on {target} failed:\n{done.stderr[-2000:]}")
    results: dict[str, Any] = json.loads(out.read_text())
    if len(policies) == 1:  # esper labels the policy of a single run "ppo"
        label = f"ppo:{Path(policies[0].removeprefix('ppo:')).name}"
        for row in results["controllers"]:
            row["label"] = label if row["label"] == "ppo" else row["label"]
        for episode in results["episodes"]:
            if episode["controller"] == "ppo":
                episode["controller"] = label
    return results


def values(results: dict[str, Any], label: str, key: str = "test_accuracy") -> list[float]:
    rows = sorted(
        (e for e in results["episodes"] if e["controller"] == label), key=lambda e: e["seed"]
    )
    return [float(e["outcome"][key]) for e in rows]


def difference(results: dict[str, Any], a: str, b: str) -> str:
    x, y = values(results, a), values(results, b)
    mean, lo, hi = paired_bootstrap_ci(x, y)
    return f"{mean:+6.2f} [{lo:+6.2f}, {hi:+6.2f}] (p {paired_p_value(x, y):.3g})"


def report(
    results: dict[str, Any], target: str, groups: dict[str, list[str]], own: list[str]
) -> dict[str, Any]:
    """The controller table and the paired differences on one target; returns them as data.
    `groups` names sets of transfer controllers (final policies, selected ones), each also
    pooled."""
    transfer = [label for labels in groups.values() for label in labels]
    n = len(results["seeds"])
    print(f"\n## {target}: {n} held-out seeds")
    print("controller | test acc % [95% CI] | params added")
    for c in results["controllers"]:
        acc = c["test_accuracy"]
        kind = " (transfer)" if c["label"] in transfer else ""
        print(
            f"  {c['label'] + kind:36s} {acc['mean']:6.2f} [{acc['lo']:6.2f}, {acc['hi']:6.2f}]"
            f" | {c['params_added']['mean']:7.0f}"
        )
    print("transfer - reference | test acc, pp [95% CI] (sign-flip p)")
    table = {}
    for label in transfer:
        for reference in ("static", "heuristic", *own):
            shown = difference(results, label, reference)
            table[f"{label} - {reference}"] = shown
            print(f"  {label:28s} - {reference:28s} {shown}")
    # Each set of transfer controllers as one: each seed's mean over them, against each reference.
    for group, labels in groups.items():
        if len(labels) < 2:
            continue
        pooled = [
            statistics.mean(v) for v in zip(*(values(results, t) for t in labels), strict=True)
        ]
        for reference in ("static", "heuristic", *own):
            other = values(results, reference)
            mean, lo, hi = paired_bootstrap_ci(pooled, other)
            shown = f"{mean:+6.2f} [{lo:+6.2f}, {hi:+6.2f}] (p {paired_p_value(pooled, other):.3g})"
            table[f"mean of {group} - {reference}"] = shown
            print(f"  {'mean of ' + group:28s} - {reference:28s} {shown}")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-tasks", default=DEFAULT_TRAIN)
    parser.add_argument("--targets", default=DEFAULT_TARGETS)
    parser.add_argument("--training-seeds", default="0,1,2")
    parser.add_argument("--target-seeds", default="0", help="controllers trained on each target")
    parser.add_argument(
        "--own-targets",
        default=None,
        help="the targets that get a controller trained on them (default: every target)",
    )
    parser.add_argument(
        "--eval-backend", default="process", help="where evaluate plays (esper evaluate --backend)"
    )
    parser.add_argument("--preset", default="digits", help="the PPO settings of every training")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument(
        "--episode-length",
        type=int,
        default=25,
        help="the transfer runs' (one round plays one length: digits' 25, breast cancer's 30)",
    )
    parser.add_argument("--seeds", type=int, default=10, help="held-out evaluation seeds")
    parser.add_argument("--jobs", type=int, default=2, help="processes run at once")
    parser.add_argument("--runs-dir", type=Path, default=None)
    parser.add_argument("--reuse-runs", action="store_true")
    parser.add_argument(
        "--own",
        action="append",
        default=[],
        metavar="TARGET=RUN",
        help="a controller trained on TARGET elsewhere (e.g. benchmarks/learning.py's), "
        "instead of training one here",
    )
    parser.add_argument(
        "--best-window",
        type=int,
        default=5,
        help="also evaluate each transfer run's policy ending its best W rounds of training "
        "return (0: only the final policies)",
    )
    args = parser.parse_args()
    args.runs_dir = args.runs_dir or Path("runs/bench") / time.strftime("transfer-%Y%m%d-%H%M%S")
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    targets = args.targets.split(",")
    train_tasks = args.train_tasks.split(",")
    overlap = {task_name(t) for t in targets} & {task_name(t) for t in train_tasks}
    if overlap:
        raise SystemExit(f"targets {sorted(overlap)} are among the training tasks")
    seeds = [int(s) for s in args.training_seeds.split(",")]
    target_seeds = [int(s) for s in args.target_seeds.split(",") if s.strip()]
    given = dict(part.split("=", 1) for part in args.own)

    print(header("transfer: train on some tasks, grow networks of others", args.seeds))
    print(f"training tasks: {', '.join(task_name(t) for t in train_tasks)}")
    print(f"targets: {', '.join(task_name(t) for t in targets)}")
    print(
        f"preset {args.preset}: {args.rounds} rounds x {args.envs} envs; transfer seeds {seeds}, "
        f"target seeds {target_seeds}; {args.jobs} trainings at a time, one thread each"
    )
    length = ["--episode-length", str(args.episode_length)] if args.episode_length else []
    keep = ["--keep-every", "1"] if args.best_window > 0 else []
    jobs: list[tuple[str, str, int, list[str]]] = [
        (f"transfer-s{s}", args.train_tasks, s, length + keep) for s in seeds
    ]
    own_targets = targets if args.own_targets is None else args.own_targets.split(",")
    for target in own_targets:
        if target not in given:
            jobs += [(f"own-{task_name(target)}-s{s}", target, s, []) for s in target_seeds]
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        trained = list(pool.map(lambda job: train(args, *job), jobs))
    for (name, *_), (_, seconds) in zip(jobs, trained, strict=True):
        print(f"trained {name} in {seconds:.0f} s wall")
    transfer_s = [s for (name, *_), (_, s) in zip(jobs, trained, strict=True) if "transfer" in name]
    total = time.perf_counter() - started
    print(f"transfer training: {spread(transfer_s)} s; all trainings {total:.0f} s wall")

    runs = {name: run for (name, *_), (run, _) in zip(jobs, trained, strict=True)}
    transfer_runs = [runs[f"transfer-s{s}"] for s in seeds]
    groups = {"final": [f"ppo:{run.name}" for run in transfer_runs]}
    policies = [f"ppo:{run}" for run in transfer_runs]
    if args.best_window > 0:
        best = {run: best_round(run, args.best_window) for run in transfer_runs}
        for run, at in best.items():
            print(f"{run.name}: best {args.best_window} training rounds end at round {at}")
        groups["selected"] = [f"ppo:{run.name}@{at}" for run, at in best.items()]
        policies += [f"ppo:{run}@{at}" for run, at in best.items()]
    summary: dict[str, Any] = {"train_tasks": args.train_tasks, "targets": {}}
    for target in targets:
        name = task_name(target)
        if target in given:
            own = [Path(given[target])]
        elif target in own_targets:
            own = [runs[f"own-{name}-s{s}"] for s in target_seeds]
        else:
            own = []
        started = time.perf_counter()
        out = args.runs_dir / f"eval-{name}.json"
        results = evaluate(args, target, policies + [f"ppo:{run}" for run in own], out)
        print(f"\nevaluated on {name} in {time.perf_counter() - started:.0f} s wall")
        table = report(results, name, groups, [f"ppo:{run.name}" for run in own])
        summary["targets"][name] = {"differences": table, "controllers": results["controllers"]}
    (args.runs_dir / "transfer.json").write_text(json.dumps(summary, indent=2))
    print(f"\nresults: {args.runs_dir / 'transfer.json'}")


if __name__ == "__main__":
    main()
