"""Env-steps per second of PPO rounds on digits, per backend, at 1, 2, 4 and 8 envs (issue 11).

One env-step is one host epoch (train + validation with counterfactuals) plus one policy
decision. For every backend (local: envs stepped in turn in this process; process: worker
processes; ray: Ray actors on a local Ray that the pool starts, and stops at its end) and env
count, one trainer runs --rounds PPO rounds; it reports

- env-steps/s per round (wall clock of the whole round, the PPO update included), median
  [min, max] over rounds, and the ratio to local at the same env count (median of the per-round
  ratios: rounds are the same episodes in every backend, so they pair up);
- startup: from loading the data to the first finished epoch (Ray starts, workers start,
  import torch and load data, envs reset, one step); each measurement runs in a fresh Python
  process, so each backend pays for its own start;
- peak memory of the whole process tree (PSS of this process and all its descendants, sampled
  every 0.5 s; PSS shares pages fairly, so forked workers are not counted twice). Reading PSS
  walks each process's page tables: sampled every 50 ms it took a good part of a core here and
  slowed the backends with many processes (Ray) by a third.

Usage: python benchmarks/throughput.py [--rounds 3] [--envs 1,2,4,8] [--backends local,process,ray]
                                       [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from esper.simic.config import TrainingConfig
from esper.simic.env_pool import EnvPool, build_pool, lockstep
from esper.simic.trainer import VectorizedTrainer
from esper.simic.workers import default_workers, warm_up
from esper.tolaria import DataOptions, get_task
from machine import header, spread


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def tree_pss_bytes(root: int) -> int:
    """PSS of `root` and every descendant (Linux /proc; 0 where it cannot be read)."""
    tree, total, todo = _children(), 0, [root]
    while todo:
        pid = todo.pop()
        todo += tree.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
                    break
        except OSError:
            continue
    return total


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Samples the process tree's PSS every 0.5 s while the body runs; yields [peak]."""
    peak = [tree_pss_bytes(os.getpid())]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            peak[0] = max(peak[0], tree_pss_bytes(os.getpid()))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], tree_pss_bytes(os.getpid()))


class FirstEpoch:
    """Wraps a pool to note when its first step comes back."""

    def __init__(self, pool: EnvPool) -> None:
        self.pool, self.at = pool, 0.0
        self.n_envs, self.feature_spec = pool.n_envs, pool.feature_spec

    def reset(self, seeds: Sequence[int]) -> list:  # type: ignore[type-arg]
        return self.pool.reset(seeds)

    def submit(self, env: int, action: Any) -> None:
        self.pool.submit(env, action)

    def next_result(self) -> tuple[int, Any]:
        result = self.pool.next_result()
        if not self.at:
            self.at = time.perf_counter()
        return result

    def step(self, actions: Sequence) -> list:  # type: ignore[type-arg]
        return lockstep(self, actions)

    def take_events(self) -> list:  # type: ignore[type-arg]
        return self.pool.take_events()

    def close(self) -> None:
        self.pool.close()


def measure(backend: str, n: int, rounds: int, workers: int | None) -> dict[str, object]:
    """Per-round env-steps/s, seconds to the first finished epoch (the data loaded in this
    process included, as a run loads it), peak tree PSS (bytes)."""
    config = TrainingConfig.preset("digits").with_overrides(
        {"n_envs": n, "rounds": rounds, "backend": backend, "workers": workers}
    )
    with peak_memory() as peak:
        started = time.perf_counter()
        if backend == "process":
            warm_up(config.device)  # as `esper train ppo` does
        data = get_task("digits").load(DataOptions())
        pool = FirstEpoch(build_pool(config, data))
        try:
            trainer = VectorizedTrainer(config, pool)
            rates = []
            for _ in range(rounds):
                round_started = time.perf_counter()
                trainer.run_round()
                elapsed = time.perf_counter() - round_started
                rates.append(n * config.resolved_episode_length() / elapsed)
            startup = pool.at - started
        finally:
            pool.close()
    return {"rates": rates, "startup": startup, "peak": peak[0]}


def measure_apart(backend: str, n: int, rounds: int, workers: int | None) -> dict[str, Any]:
    """`measure` in a fresh Python process: every backend pays its own start (the forkserver,
    Ray) and nothing one leaves running (Ray's daemons shutting down) slows the next."""
    command = [sys.executable, __file__, "--one", backend, str(n), "--rounds", str(rounds)]
    if workers is not None:
        command += ["--workers", str(workers)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{backend} at {n} envs failed:\n{done.stderr[-3000:]}")
    time.sleep(2)  # let the machine settle
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", default="1,2,4,8")
    parser.add_argument("--backends", default="local,process,ray")
    parser.add_argument("--workers", type=int, default=None, help="default: cores, <= envs")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "ENVS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.one is not None:
        print(json.dumps(measure(args.one[0], int(args.one[1]), args.rounds, args.workers)))
        return
    backends = args.backends.split(",")
    print(header(f"PPO round throughput on digits: {', '.join(backends)}", runs=args.rounds))
    print(
        f"{'backend':>8} {'envs':>4} {'workers':>7} | {'env-steps/s':>27} | {'x local':>22} | "
        f"{'startup s':>9} | {'peak PSS MB':>11}"
    )
    local: dict[int, list[float]] = {}
    for n in (int(e) for e in args.envs.split(",")):
        for backend in backends:
            result = measure_apart(backend, n, args.rounds, args.workers)
            rates = result["rates"]
            if backend == "local":
                local[n] = rates
            ratio = (
                spread([a / b for a, b in zip(rates, local[n], strict=True)])
                if n in local
                else "n/a"
            )
            workers = "-" if backend == "local" else str(args.workers or default_workers(n))
            print(
                f"{backend:>8} {n:>4} {workers:>7} | {spread(rates):>27} | {ratio:>22} | "
                f"{result['startup']:>9.2f} | {result['peak'] / 2**20:>11.0f}",
                flush=True,
            )
    print("(median [min, max] over rounds; x local: per-round ratios to local at the same envs)")


if __name__ == "__main__":
    main()
