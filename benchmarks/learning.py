"""Does the learned controller win on digits? (issue 5)

Trains PPO controllers from the digits preset (`esper train ppo`), one per --train entry and
training seed, then evaluates static, random, heuristic and every trained policy on the same
held-out env seeds (`esper evaluate`, seeds never used in training), and prints the controller and
paired-comparison tables with 95% bootstrap intervals, then one line per --train entry over its
training seeds (a PPO result is one draw from a distribution of training runs).

By default two controllers are trained, the two ends of the accuracy/parameter trade-off that the
rent weight sets (docs/results.md): `digits` (the preset, rent 0.5: accuracy first) and `lean`
(rent 1.5: parameters cost three times as much). Trainings run --jobs at a time, each in its own
process on one thread.

Usage: python benchmarks/learning.py [--rounds 40] [--seeds 10] [--training-seeds 0,1,2]
                                     [--train NAME[:KEY=VALUE;...]] [--jobs 2]
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

import torch

from esper.cli.main import main as esper
from machine import header, spread

DEFAULT_TRAINING = ("digits", "lean:rent_weight=1.5")


def parse_training(text: str) -> tuple[str, list[str]]:
    """NAME[:KEY=VALUE;KEY=VALUE] -> (name, ["KEY=VALUE", ...])."""
    name, _, settings = text.partition(":")
    return name, [s for s in settings.split(";") if s]


def train(
    args: argparse.Namespace, name: str, settings: list[str], seed: int
) -> tuple[Path, float]:
    """One `esper train ppo` in its own process: (run directory, wall seconds)."""
    run_name = f"{name}-s{seed}"
    command = [sys.executable, "-m", "esper.cli.main", "train", "ppo", "--preset", "digits"]
    command += ["--rounds", str(args.rounds), "--envs", str(args.envs), "--seed", str(seed)]
    command += ["--runs-dir", str(args.runs_dir), "--name", run_name]
    command += ["--no-live", "--telemetry", "minimal"]
    command += [arg for setting in settings for arg in ("--set", setting)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"training {run_name} failed:\n{done.stderr[-2000:]}")
    run = max(args.runs_dir.glob(f"*-{run_name}"), key=lambda p: p.stat().st_mtime)
    return run, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10, help="held-out evaluation seeds")
    parser.add_argument("--training-seeds", default="0,1,2", help="comma-separated")
    parser.add_argument("--jobs", type=int, default=2, help="trainings run at once")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    parser.add_argument(
        "--train",
        action="append",
        default=None,
        metavar="NAME[:KEY=VALUE;...]",
        help=f"a controller to train (repeatable; default: {' and '.join(DEFAULT_TRAINING)})",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)  # as every esper command here (each training process too)
    training_seeds = [int(s) for s in args.training_seeds.split(",")]
    variants = [parse_training(t) for t in args.train or DEFAULT_TRAINING]
    jobs = [(name, settings, seed) for name, settings in variants for seed in training_seeds]
    print(header("learned vs heuristic vs static on digits", runs=args.seeds))
    print(
        f"training: {len(jobs)} runs ({', '.join(n for n, _ in variants)} x seeds "
        f"{training_seeds}), {args.rounds} rounds x {args.envs} envs each, {args.jobs} at a time",
        flush=True,
    )
    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        trained = list(pool.map(lambda job: train(args, *job), jobs))
    wall = time.perf_counter() - started
    runs = [run for run, _ in trained]
    out = args.runs_dir / f"evaluation-{time.strftime('%Y%m%d-%H%M%S')}.json"
    controllers = ",".join(["static", "random", "heuristic", *(f"ppo:{run}" for run in runs)])
    evaluate = ["evaluate", "--task", "digits", "--controllers", controllers]
    evaluate += ["--seeds", str(args.seeds), "--out", str(out)]
    if esper(evaluate) != 0:
        raise SystemExit("evaluation failed")

    results = json.loads(out.read_text())
    by_label = {c["label"]: c for c in results["controllers"]}
    print(f"PPO training: {len(jobs)} runs in {wall:.0f} s wall ({args.jobs} at a time)")
    for (name, settings, seed), (run, seconds) in zip(jobs, trained, strict=True):
        print(f"  {name} seed {seed} ({', '.join(settings) or 'preset'}): {seconds:.0f} s, {run}")
    for name, _ in variants:
        labels = [f"ppo:{name}-s{seed}" for seed in training_seeds]
        acc = [by_label[label]["test_accuracy"]["mean"] for label in labels]
        added = [by_label[label]["params_added"]["mean"] for label in labels]
        print(
            f"{name} over {len(labels)} training seeds: mean test acc % {spread(acc)}, "
            f"params added {spread(added)}; mean of means {statistics.mean(acc):.2f}"
        )
    print(f"full results (per-episode records too): {out}")


if __name__ == "__main__":
    main()
