"""Env-steps per second of PPO rounds on digits, per backend, at 1, 2, 4 and 8 envs (issue 11).

One env-step is one host epoch (train + validation with counterfactuals) plus one policy
decision. For every backend (local: envs stepped in turn in this process; process: worker
processes; ray: Ray actors on a local Ray that the pool starts, and stops at its end) and env
count, one trainer runs --rounds PPO rounds; it reports

- env-steps/s per round (wall clock of the whole round, the PPO update included), median
  [min, max] over rounds, and the ratio to local at the same env count (median of the per-round
  ratios: rounds are the same episodes in every backend, so they pair up);
- startup: from building the pool to the first finished epoch (Ray starts, workers start,
  import torch and load data, envs reset, one step);
- peak memory of the whole process tree (PSS of this process and all its descendants, sampled
  every 0.5 s; PSS shares pages fairly, so forked workers are not counted twice). Reading PSS
  walks each process's page tables: sampled every 50 ms it took a good part of a core here and
  slowed the backends with many processes (Ray) by a third.

Usage: python benchmarks/throughput.py [--rounds 3] [--envs 1,2,4,8] [--backends local,process,ray]
                                       [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from esper.simic.config import TrainingConfig
from esper.simic.env_pool import EnvPool, build_pool
from esper.simic.trainer import VectorizedTrainer
from esper.simic.workers import default_workers
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
    """Wraps a pool to note when its first step returns."""

    def __init__(self, pool: EnvPool) -> None:
        self.pool, self.at = pool, 0.0
        self.n_envs, self.feature_spec = pool.n_envs, pool.feature_spec

    def reset(self, seeds: Sequence[int]) -> list:  # type: ignore[type-arg]
        return self.pool.reset(seeds)

    def step(self, actions: Sequence) -> list:  # type: ignore[type-arg]
        results = self.pool.step(actions)
        if not self.at:
            self.at = time.perf_counter()
        return results

    def take_events(self) -> list:  # type: ignore[type-arg]
        return self.pool.take_events()

    def close(self) -> None:
        self.pool.close()


def measure(
    backend: str, n: int, rounds: int, workers: int | None, data: object
) -> tuple[list[float], float, int]:
    """Per-round env-steps/s, seconds to the first finished epoch, peak tree PSS (bytes)."""
    config = TrainingConfig.preset("digits").with_overrides(
        {"n_envs": n, "rounds": rounds, "backend": backend, "workers": workers}
    )
    with peak_memory() as peak:
        started = time.perf_counter()
        pool = FirstEpoch(build_pool(config, data))  # type: ignore[arg-type]
        try:
            trainer = VectorizedTrainer(config, pool)  # type: ignore[arg-type]
            rates = []
            for _ in range(rounds):
                round_started = time.perf_counter()
                trainer.run_round()
                rates.append(
                    n * config.resolved_episode_length() / (time.perf_counter() - round_started)
                )
            startup = pool.at - started
        finally:
            pool.close()
    return rates, startup, peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", default="1,2,4,8")
    parser.add_argument("--backends", default="local,process,ray")
    parser.add_argument("--workers", type=int, default=None, help="default: cores, <= envs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    backends = args.backends.split(",")
    print(header(f"PPO round throughput on digits: {', '.join(backends)}", runs=args.rounds))
    data = get_task("digits").load(DataOptions())
    print(
        f"{'backend':>8} {'envs':>4} {'workers':>7} | {'env-steps/s':>27} | {'x local':>22} | "
        f"{'startup s':>9} | {'peak PSS MB':>11}"
    )
    local: dict[int, list[float]] = {}
    for n in (int(e) for e in args.envs.split(",")):
        for backend in backends:
            rates, startup, peak = measure(backend, n, args.rounds, args.workers, data)
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
                f"{startup:>9.2f} | {peak / 2**20:>11.0f}",
                flush=True,
            )
    print("(median [min, max] over rounds; x local: per-round ratios to local at the same envs)")


if __name__ == "__main__":
    main()
