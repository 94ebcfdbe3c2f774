"""Does the learned controller win on digits? (issue 5)

Trains PPO controllers from the digits preset (`esper train ppo`), one per --train entry, then
evaluates static, random, heuristic and every trained policy on the same held-out env seeds
(`esper evaluate`, seeds never used in training), and prints the controller and paired-comparison
tables with 95% bootstrap intervals.

By default two controllers are trained, the two ends of the accuracy/parameter trade-off that the
rent weight sets (docs/results.md): `digits` (the preset, rent 0.5: accuracy first) and `lean`
(rent 1.5: parameters cost three times as much).

Usage: python benchmarks/learning.py [--rounds 40] [--seeds 10] [--train NAME[:KEY=VALUE;...]]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from esper.cli.main import main as esper
from machine import header

DEFAULT_TRAINING = ("digits", "lean:rent_weight=1.5")


def parse_training(text: str) -> tuple[str, list[str]]:
    """NAME[:KEY=VALUE;KEY=VALUE] -> (name, ["KEY=VALUE", ...])."""
    name, _, settings = text.partition(":")
    return name, [s for s in settings.split(";") if s]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    parser.add_argument(
        "--train",
        action="append",
        default=None,
        metavar="NAME[:KEY=VALUE;...]",
        help=f"a controller to train (repeatable; default: {' and '.join(DEFAULT_TRAINING)})",
    )
    args = parser.parse_args()
    print(header("learned vs heuristic vs static on digits", runs=args.seeds))
    runs, timings = [], []
    for name, settings in map(parse_training, args.train or DEFAULT_TRAINING):
        started = time.perf_counter()
        train = ["train", "ppo", "--preset", "digits", "--rounds", str(args.rounds)]
        train += ["--envs", str(args.envs), "--seed", str(args.seed)]
        train += ["--runs-dir", str(args.runs_dir), "--name", name]
        train += ["--no-live", "--telemetry", "minimal"]
        train += [arg for setting in settings for arg in ("--set", setting)]
        if esper(train) != 0:
            raise SystemExit(f"training {name} failed")
        seconds = time.perf_counter() - started
        timings.append(f"{name} ({', '.join(settings) or 'preset'}) {seconds:.0f} s")
        runs.append(max(args.runs_dir.glob(f"*-{name}"), key=lambda p: p.stat().st_mtime))
    out = runs[-1] / "evaluation.json"
    controllers = ",".join(["static", "random", "heuristic", *(f"ppo:{run}" for run in runs)])
    evaluate = ["evaluate", "--task", "digits", "--controllers", controllers]
    evaluate += ["--seeds", str(args.seeds), "--out", str(out)]
    if esper(evaluate) != 0:
        raise SystemExit("evaluation failed")
    print(f"PPO training, {args.rounds} rounds x {args.envs} envs each: {'; '.join(timings)}")
    print(f"full results (per-episode records too): {out}")


if __name__ == "__main__":
    main()
