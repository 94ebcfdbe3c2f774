"""The GPU path (issue 12): a plain PyTorch epoch against Esper's env-steps for many envs.

On a generated folder in the CIFAR-10 release format (random images; no download exists where
this runs), read by the cifar10 task's own loader, with the cifar10 host:

- plain loop: one epoch of SGD over the training images and one validation pass, written as a
  careful researcher would (data on the device, metrics summed there, one read at the end), at
  each precision asked for;
- Esper: one env-step of N envs (an epoch of host training per env, its validation with
  counterfactuals, the decision's bookkeeping), every env with a `conv_light` seed at `r0c1`
  planted at the first step, so the timed steps train the host and the seed's shadow pass (the
  common case of an episode). Envs stepped in turn in one process (`local`), vmapped in one
  process (`vmap`: one forward/backward per group of envs of one structure; `--plan mixed`
  plants three blueprints, so three groups) and in worker processes sharing the device
  (`process`), for N in `--sizes`; with AMP off and bf16; and `local` with torch.compile on
(inductor, and aot_eager: traced graphs run on aten's kernels).

Every case warms up first (two steps: the seed is planted, then passes G1 into TRAINING; with
compile, the graphs compile then) and times `--steps` further steps. Reported: the median
[min, max] seconds of a step (all N envs), env-steps/s = N / step, that rate over the same
backend's at N = 1 and over `local`'s at the same N, and the ratio of one env's step to the
plain epoch at the same precision. A case whose estimate (its backend's last
measured step, scaled by N) would exceed what is left of `--budget-s` is skipped and says so;
the budget keeps a run under 8 minutes.

Usage: python benchmarks/gpu.py [--device cuda] [--images 6000] [--sizes 1,4,16,64]
           [--backends local,vmap,process] [--amp off,bf16] [--compile-sizes 1] [--steps 3]
           [--compile-backends inductor,aot_eager]
           [--plan same|mixed] [--budget-s 420] [--workers N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from esper.leyline import FactoredAction
from esper.simic.config import TrainingConfig
from esper.simic.env_pool import EnvPool, build_pool
from esper.tolaria import SessionOptions, get_task
from esper.tolaria.data import DataSplits, TensorLoader
from esper.tolaria.data.cifar10 import load_cifar10
from esper.tolaria.engine import autocast_dtype, autocast_to
from esper.tolaria.session import memory_format
from machine import header, spread
from overhead import write_cifar_folder

BLUEPRINTS = ("conv_light", "depthwise", "conv_heavy")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """One epoch and one validation pass of the cifar10 host, per `step()`."""

    def __init__(self, data: DataSplits, device: torch.device, amp: str, seed: int = 0) -> None:
        task = get_task("cifar10")
        torch.manual_seed(seed)
        self.device, self.amp = device, autocast_dtype(amp, device)
        # in the memory format Esper's sessions use on this device (channels_last on the CPU)
        self.form = memory_format(task, data, SessionOptions(device=str(device)))
        self.net = task.build_host(data).to(device, memory_format=self.form)
        self.opt = torch.optim.SGD(
            self.net.parameters(),
            lr=task.host_lr,
            momentum=task.momentum,
            weight_decay=task.weight_decay,
        )
        self.train = TensorLoader(
            data.train,
            task.batch_size,
            shuffle=True,
            seed=seed,
            augment=task.augment,
            memory_format=self.form,
        ).to(device)
        self.val = TensorLoader(
            data.val, task.eval_batch_size, shuffle=False, seed=0, memory_format=self.form
        ).to(device)

    def step(self) -> float:
        net, device = self.net, self.device
        synchronize(device)
        started = time.perf_counter()
        net.train()
        loss_sum = torch.zeros((), device=device)
        for x, y in self.train:
            with autocast_to(device, self.amp):
                logits = net(x)
            loss = F.cross_entropy(logits.float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            loss_sum += loss.detach()
        net.eval()
        correct = torch.zeros((), device=device, dtype=torch.int64)
        with torch.no_grad():
            for x, y in self.val:
                with autocast_to(device, self.amp):
                    correct += (net(x).argmax(-1) == y).sum()
        assert float(loss_sum) >= 0 and int(correct) >= 0  # the one read: it syncs
        return time.perf_counter() - started


class EnvSteps:
    """N envs of one backend; `step()` is one lockstep step of all of them."""

    def __init__(
        self, config: TrainingConfig, data: DataSplits, plan: str, device: torch.device
    ) -> None:
        self.pool: EnvPool = build_pool(config, data)
        self.n, self.device = config.n_envs, device
        self.pool.reset([1000 + i for i in range(self.n)])
        blueprints = BLUEPRINTS if plan == "mixed" else BLUEPRINTS[:1]
        first = [
            FactoredAction.germinate("r0c1", blueprints[i % len(blueprints)]) for i in range(self.n)
        ]
        started = time.perf_counter()
        self.pool.step(first)  # warm-up: plants the seeds (and compiles, with compile)
        self.pool.step([FactoredAction.wait()] * self.n)  # G1 passed: the seeds are TRAINING
        self.warm_up_s = time.perf_counter() - started
        self.compiled = 0

    def step(self) -> float:
        synchronize(self.device)
        started = time.perf_counter()
        results = self.pool.step([FactoredAction.wait()] * self.n)
        seconds = time.perf_counter() - started
        self.compiled += sum(r.compiled_graphs for r in results)
        return seconds

    def close(self) -> None:
        self.pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=6000, help="training + validation images")
    parser.add_argument("--sizes", default="1,4,16,64", help="env counts N")
    parser.add_argument("--backends", default="local,vmap,process")
    parser.add_argument("--amp", default="off,bf16", help="precisions, comma-separated")
    parser.add_argument("--compile-sizes", default="1", help="N to time local+compile at")
    parser.add_argument(
        "--compile-backends", default="inductor,aot_eager", help="torch.compile backends to time"
    )
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    parser.add_argument("--plan", choices=("same", "mixed"), default="same")
    parser.add_argument("--budget-s", type=float, default=420.0)
    parser.add_argument("--workers", type=int, default=None, help="process: workers (min(N, CPUs))")
    args = parser.parse_args()
    started = time.perf_counter()
    device = torch.device(args.device)
    sizes = [int(n) for n in args.sizes.split(",")]
    backends = args.backends.split(",")
    precisions = args.amp.split(",")
    compile_sizes = [int(n) for n in args.compile_sizes.split(",") if n]

    print(
        header("Esper's GPU path: plain epoch vs env-steps (cifar10 host, generated)", args.steps)
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_folder(Path(tmp), args.images)
        data = load_cifar10(tmp)
        print(
            f"device {device} | images: {len(data.train)} train, {len(data.val)} validation | "
            f"plan {args.plan} | budget {args.budget_s:.0f} s | sizes {sizes}",
            flush=True,
        )

        def left() -> float:
            return args.budget_s - (time.perf_counter() - started)

        plain: dict[str, float] = {}
        for amp in precisions:
            loop = PlainLoop(data, device, amp)
            loop.step()  # warm-up
            times = [loop.step() for _ in range(args.steps)]
            plain[amp] = statistics.median(times)
            print(f"plain loop, amp {amp:<4} | epoch {spread(times)} s", flush=True)

        compilers = [c for c in args.compile_backends.split(",") if c]
        # Breadth first, cheapest N first, so a budget that runs out leaves the largest N out,
        # not a whole precision or backend.
        cases: list[tuple[str, int, str, str | None]] = []
        for n in sizes:
            cases += [(b, n, amp, None) for amp in precisions for b in backends]
            cases += [("local", n, "off", c) for c in compilers if n in compile_sizes]
        per_env: dict[tuple[str, str, str | None], float] = {}  # last step / N, per backend setting
        rates: dict[tuple[str, int, str, str | None], float] = {}  # env-steps/s per case
        print(
            f"{'backend':<8} {'N':>3} {'amp':<4} {'compile':<9} | step s (median [min, max]) "
            f"| env-steps/s | x its N=1 | x local | 1 env's step / plain epoch"
        )
        for backend, n, amp, compiled in cases:
            key = (backend, amp, compiled)
            estimate = per_env.get(key, per_env.get(("local", amp, None), 0.0)) * n
            label = f"{backend:<8} {n:>3} {amp:<4} {compiled or 'off':<9}"
            if estimate * (args.steps + 1) > left():
                print(
                    f"{label} | skipped: ~{estimate * (args.steps + 1):.0f} s, {left():.0f} s left"
                )
                continue
            config = TrainingConfig.preset("cifar10").with_overrides(
                {
                    "data_dir": tmp,
                    "device": str(device),
                    "n_envs": n,
                    "backend": backend,
                    "workers": args.workers if args.workers else None,
                    "amp": amp,
                    "compile": compiled is not None,
                    "compile_backend": compiled or "inductor",
                    "episode_length": args.steps + 3,
                }
            )
            case = EnvSteps(config, data, args.plan, device)
            try:
                times = [case.step() for _ in range(args.steps)]
            finally:
                case.close()
            step = statistics.median(times)
            per_env[key] = step / n
            rate = rates[(backend, n, amp, compiled)] = n / step
            one = rates.get((backend, 1, amp, compiled))
            local = rates.get(("local", n, amp, None))
            scaling = f"{rate / one:9.2f}" if one else f"{'-':>9}"
            versus = f"{rate / local:7.2f}" if local else f"{'-':>7}"
            ratio = f"{step / plain[amp]:.2f}x" if n == 1 and amp in plain else "-"
            extra = f" | warm-up {case.warm_up_s:.1f} s" if compiled else ""
            if compiled:
                extra += f", {case.compiled} graphs compiled while timed"
            print(
                f"{label} | {spread(times)} | {rate:11.2f} | {scaling} | {versus} | {ratio}{extra}",
                flush=True,
            )
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
