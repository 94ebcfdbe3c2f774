"""Does the learned controller win on digits? (issue 5)

Trains PPO from the digits preset (`esper train ppo`), then evaluates static, random, heuristic
and the trained policy on the same held-out env seeds (`esper evaluate`, seeds never used in
training), and prints the controller and paired-comparison tables with 95% bootstrap intervals.

Usage: python benchmarks/learning.py [--rounds 40] [--seeds 10] [--runs-dir runs/bench]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from esper.cli.main import main as esper
from machine import header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--envs", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    print(header("learned vs heuristic vs static on digits", runs=args.seeds))
    started = time.perf_counter()
    train = ["train", "ppo", "--preset", "digits", "--rounds", str(args.rounds)]
    train += ["--envs", str(args.envs), "--seed", str(args.seed), "--runs-dir", str(args.runs_dir)]
    train += ["--name", f"learning-{args.seed}", "--no-live", "--telemetry", "minimal"]
    if esper(train) != 0:
        raise SystemExit("training failed")
    trained_s = time.perf_counter() - started
    run = max(args.runs_dir.glob(f"*-learning-{args.seed}"), key=lambda p: p.stat().st_mtime)
    out = run / "evaluation.json"
    controllers = f"static,random,heuristic,ppo:{run}"
    evaluate = ["evaluate", "--task", "digits", "--controllers", controllers]
    evaluate += ["--seeds", str(args.seeds), "--out", str(out)]
    if esper(evaluate) != 0:
        raise SystemExit("evaluation failed")
    print(f"PPO training: {args.rounds} rounds x {args.envs} envs in {trained_s:.0f} s; run {run}")
    print(f"full results (per-episode records too): {out}")


if __name__ == "__main__":
    main()
