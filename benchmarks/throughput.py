"""Env-steps per second of PPO rounds on digits, per backend, at 1, 2, 4 and 8 envs (issue 11).

One env-step is one host epoch (train + validation with counterfactuals) plus one policy
decision. For every backend other than local (process: worker processes; ray: Ray actors on a
local Ray that the pool starts, and stops at its end) and env count, a fresh Python process
holds two trainers, one on that backend and one on the local backend (envs stepped in turn in
this process), and runs --rounds PPO rounds of each, taking turns round by round; it reports

- env-steps/s per round (wall clock of the whole round, the PPO update included), median
  [min, max] over rounds, and the ratio to local at the same env count (median of the per-round
  ratios: both trainers play the same episodes, so round r of one pairs with round r of the
  other, played seconds apart; this 2-vCPU VM's speed drifts by +-20 % from minute to minute,
  which measuring one backend after the other put into the ratio). The local row pools the
  local rounds of every pair. A Ray pair keeps Ray's daemons up during its local rounds too:
  idle, they took 5 % of one core here (sampled over 20 s), which slows those local rounds by
  up to ~3 % and flatters the Ray ratio by as much;
- startup: from loading the data to the first finished epoch (Ray starts, workers start,
  import torch and load data, envs reset, one step), one round in a fresh Python process per
  backend, so each pays for its own start;
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
        self.feature_specs = pool.feature_specs

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


def training_config(backend: str, n: int, rounds: int, workers: int | None) -> TrainingConfig:
    return TrainingConfig.preset("digits").with_overrides(
        {"n_envs": n, "rounds": rounds, "backend": backend, "workers": workers}
    )


def measure_start(backend: str, n: int, workers: int | None) -> dict[str, object]:
    """Seconds to the first finished epoch (the data loaded in this process included, as a run
    loads it) and the peak tree PSS (bytes) over one whole round."""
    config = training_config(backend, n, 1, workers)
    with peak_memory() as peak:
        started = time.perf_counter()
        if backend == "process":
            warm_up(config.device)  # as `esper train ppo` does
        data = get_task("digits").load(DataOptions())
        pool = FirstEpoch(build_pool(config, data))
        try:
            VectorizedTrainer(config, pool).run_round()
            startup = pool.at - started
        finally:
            pool.close()
    return {"startup": startup, "peak": peak[0]}


def measure_pair(backend: str, n: int, rounds: int, workers: int | None) -> dict[str, list[float]]:
    """Env-steps/s per round of two trainers in this process, one on the local backend and one
    on `backend`, taking turns round by round (local first in even rounds, second in odd ones).
    Both play the same episodes (the same seeds and, backend for backend, the same actions), so
    round r of one pairs with round r of the other, measured within seconds of each other: this
    VM's speed drifts by +-20 % from minute to minute, which would otherwise land in the ratio."""
    if backend == "process":
        warm_up(training_config(backend, n, rounds, workers).device)
    data = get_task("digits").load(DataOptions())
    trainers: dict[str, VectorizedTrainer] = {}
    rates: dict[str, list[float]] = {}
    try:
        for name in dict.fromkeys(("local", backend)):
            config = training_config(name, n, rounds, workers)
            trainers[name] = VectorizedTrainer(config, build_pool(config, data))
            rates[name] = []
        steps = n * trainers["local"].config.resolved_episode_length()
        order = list(trainers)
        for r in range(rounds):
            for name in order if r % 2 == 0 else order[::-1]:
                started = time.perf_counter()
                trainers[name].run_round()
                rates[name].append(steps / (time.perf_counter() - started))
        check_same_training(trainers)
    finally:
        for trainer in trainers.values():
            trainer.pool.close()
    return rates


def check_same_training(trainers: dict[str, VectorizedTrainer]) -> None:
    """The pairing's premise: every trainer of a pair played the same episodes and so holds the
    same policy (bit for bit on CPU: docs/architecture.md section 2)."""
    local = trainers["local"].network.state_dict()
    for name, trainer in trainers.items():
        theirs = trainer.network.state_dict()
        if any(not torch.equal(local[key], theirs[key]) for key in local):
            raise SystemExit(f"the {name} trainer's policy differs from the local one's")


def apart(*args: str) -> Any:
    """This script with `args` in a fresh Python process (every backend pays its own start, the
    fork server or Ray, and nothing one leaves running slows the next); its JSON answer."""
    command = [sys.executable, __file__, *args]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    time.sleep(2)  # let the machine settle
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--envs", default="1,2,4,8")
    parser.add_argument("--backends", default="local,process,ray")
    parser.add_argument("--workers", type=int, default=None, help="default: cores, <= envs")
    parser.add_argument("--start", nargs=2, metavar=("BACKEND", "ENVS"), help=argparse.SUPPRESS)
    parser.add_argument("--pair", nargs=2, metavar=("BACKEND", "ENVS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.start is not None:
        print(json.dumps(measure_start(args.start[0], int(args.start[1]), args.workers)))
        return
    if args.pair is not None:
        backend, n = args.pair[0], int(args.pair[1])
        print(json.dumps(measure_pair(backend, n, args.rounds, args.workers)))
        return
    backends = [b for b in args.backends.split(",") if b != "local"]
    workers_arg = [] if args.workers is None else ["--workers", str(args.workers)]
    print(header(f"PPO round throughput on digits: local, {', '.join(backends)}", args.rounds))
    print(
        f"{'backend':>8} {'envs':>4} {'workers':>7} | {'env-steps/s':>27} | {'x local':>22} | "
        f"{'startup s':>9} | {'peak PSS MB':>11}"
    )
    for n in (int(e) for e in args.envs.split(",")):
        pairs = {
            b: apart("--pair", b, str(n), "--rounds", str(args.rounds), *workers_arg)
            for b in backends or ["local"]
        }
        for backend in ["local", *backends]:
            start = apart("--start", backend, str(n), *workers_arg)
            if backend == "local":  # the local rounds of every pair
                rates = [rate for pair in pairs.values() for rate in pair["local"]]
                ratio = "1.00"
            else:
                pair = pairs[backend]
                rates = pair[backend]
                ratio = spread([a / b for a, b in zip(rates, pair["local"], strict=True)])
            workers = "-" if backend == "local" else str(args.workers or default_workers(n))
            print(
                f"{backend:>8} {n:>4} {workers:>7} | {spread(rates):>27} | {ratio:>22} | "
                f"{start['startup']:>9.2f} | {start['peak'] / 2**20:>11.0f}",
                flush=True,
            )
    print(
        "(median [min, max] over rounds; x local: per-round ratios to the local trainer that took "
        "turns with it, round by round, in the same process; startup and peak PSS: one round in "
        "a fresh process of its own)"
    )


if __name__ == "__main__":
    main()
