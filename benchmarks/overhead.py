"""Esper's overhead against a plain PyTorch loop, in two cases.

`--case digits` (issue 5): a heuristic episode vs a plain PyTorch loop training the same final
network (host + the same fossilized seeds) on the same data for the same epochs.

`--case cifar` (issue 11): on a generated folder in the CIFAR-10 release format (random images,
`--train` training and `--val` validation images, read by the cifar10 task's own loader), one
env-step (one host epoch: training, validation with counterfactuals, the decision's bookkeeping)
of the cifar10 host alone, and with one seed in TRAINING, against a plain loop of one epoch of
the same host on the same images (the same augmentation, SGD settings and batch sizes, plus a
validation pass), in the default (NCHW) memory format and in channels_last. Every case is
built first and then timed in turns, run by run, so the machine's drift does not fall between
cases; ratios are per run, to the same run's faster plain loop (the one with the lower median).

Both sides train with SGD over the same in-memory batches and evaluate on the validation split
once per epoch. Reported with and without Esper's counterfactual evaluation. The heuristic needs
counterfactuals to decide (its prunes and G3's fossilize gate read them), so the run without them
replays the heuristic's own decisions from the run with them, with FOSSILIZE replaced by WAIT:
the seed then stays blended at alpha 1 in HOLDING, which is the same network and the same compute
as its fossil. Both runs therefore grow, and the plain loop trains, the same final network.

Usage: python benchmarks/overhead.py [--case digits|cifar] [--runs 5] [--seed 3]
                                     [--train 4096] [--val 1000] [--threads 1]
                                     [--shadow-fractions 1,0.25] [--formats nchw,channels_last]
"""

from __future__ import annotations

import argparse
import copy
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from esper.kasmina import blueprint_names
from esper.leyline import BlendOp, FactoredAction, Op, Stage
from esper.simic.environment import EnvConfig, MorphogeneticEnv
from esper.simic.episodes import run_episodes
from esper.tamiyo.features import Observation
from esper.tamiyo.policy import HeuristicPolicy, PolicyStep
from esper.tolaria import SessionOptions, get_task
from esper.tolaria.data import DataSplits, TensorLoader
from esper.tolaria.data.cifar10 import load_cifar10
from machine import header, spread


class Recorder:
    """Wraps a single-env policy and keeps the actions it took."""

    def __init__(self, policy: HeuristicPolicy) -> None:
        self.policy, self.name, self.actions = policy, policy.name, list[FactoredAction]()

    def initial_state(self, n_envs: int) -> object:
        self.actions.clear()
        return self.policy.initial_state(n_envs)

    def act(self, observations: list[Observation], state: object) -> PolicyStep:
        step = self.policy.act(observations, state)  # type: ignore[arg-type]
        self.actions += step.actions
        return step


class Replay:
    """Plays back recorded actions, holding seeds at alpha 1 instead of fossilizing them."""

    name = "replay"

    def __init__(self, actions: list[FactoredAction]) -> None:
        self.actions = [FactoredAction.wait() if a.op == Op.FOSSILIZE else a for a in actions]

    def initial_state(self, n_envs: int) -> int:
        return 0

    def act(self, observations: list[Observation], state: int) -> PolicyStep:
        return PolicyStep([self.actions[state]], state + 1)


class PlainNet(nn.Module):
    """The final grown network as ordinary modules: segment, then x + (seed(x) - x) for every
    ADD seed at alpha 1 (fossilized, or held at alpha 1)."""

    def __init__(self, env: MorphogeneticEnv) -> None:
        super().__init__()
        model = env.session.model
        self.host = copy.deepcopy(model.host)
        seeds = {}
        for slot in model.seed_slots():
            if slot.stage in (Stage.FOSSILIZED, Stage.HOLDING) and slot.alpha > 0:
                if slot.blend_op != BlendOp.ADD or slot.alpha != 1.0:
                    raise ValueError("this benchmark rebuilds ADD-blended seeds at alpha 1 only")
                seeds[slot.slot_id] = copy.deepcopy(slot.seed)
        self.seeds = nn.ModuleDict(seeds)
        self.slot_ids = [spec.slot_id for spec in model.specs]
        for p in self.parameters():  # fresh weights: training starts from scratch
            if p.dim() > 1:
                nn.init.kaiming_uniform_(p)

    def forward(self, x: Tensor) -> Tensor:
        for i, slot_id in enumerate(self.slot_ids):
            x = self.host.forward_segment(i, x)
            if slot_id in self.seeds:
                x = self.seeds[slot_id](x)  # ADD at alpha 1: h + (seed(h) - h) = seed(h)
        return self.host.head(x)


def plain_training(net: nn.Module, env: MorphogeneticEnv, epochs: int, seed: int) -> float:
    task, data = env.task, env.data
    train = TensorLoader(data.train, task.batch_size, shuffle=True, seed=seed)
    val = TensorLoader(data.val, task.eval_batch_size, shuffle=False, seed=0)
    opt = torch.optim.SGD(
        net.parameters(), lr=task.host_lr, momentum=task.momentum, weight_decay=task.weight_decay
    )
    started = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for x, y in train:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x), y).backward()
            opt.step()
        net.eval()
        with torch.no_grad():
            correct = sum(int((net(x).argmax(-1) == y).sum()) for x, y in val)
        assert correct >= 0
    return time.perf_counter() - started


def write_cifar_folder(root: Path, images: int, seed: int = 0) -> Path:
    """A `cifar-10-batches-py` folder in the release format: five training batches of
    `images / 5` random images (balanced labels) and a test batch of 1,000."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(seed)
    per_batch = -(-images // 5)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = 1000 if name == "test_batch" else per_batch
        batch = {
            b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
            b"labels": [int(k) % 10 for k in rng.permutation(n)],
            b"batch_label": name.encode(),
        }
        with (folder / name).open("wb") as file:
            pickle.dump(batch, file, protocol=2)
    return folder


class PlainCase:
    """One epoch of SGD over the training images and a validation pass, per `step()`."""

    def __init__(self, data: DataSplits, seed: int, channels_last: bool) -> None:
        task = get_task("cifar10")
        self.form = torch.channels_last if channels_last else torch.contiguous_format
        torch.manual_seed(seed)
        self.net = task.build_host(data).to(memory_format=self.form)
        self.opt = torch.optim.SGD(
            self.net.parameters(),
            lr=task.host_lr,
            momentum=task.momentum,
            weight_decay=task.weight_decay,
        )
        self.train = TensorLoader(
            data.train, task.batch_size, shuffle=True, seed=seed, augment=task.augment
        )
        self.val = TensorLoader(data.val, task.eval_batch_size, shuffle=False, seed=0)
        self.step()  # warm-up

    def step(self) -> float:
        """Seconds of one epoch and one validation pass."""
        net, form = self.net, self.form
        started = time.perf_counter()
        net.train()
        for x, y in self.train:
            self.opt.zero_grad(set_to_none=True)
            F.cross_entropy(net(x.contiguous(memory_format=form)), y).backward()
            self.opt.step()
        net.eval()
        with torch.no_grad():
            correct = sum(
                int((net(x.contiguous(memory_format=form)).argmax(-1) == y).sum())
                for x, y in self.val
            )
        assert correct >= 0
        return time.perf_counter() - started


class EsperCase:
    """Env-steps of the cifar10 host alone (`blueprint` None) or with a `blueprint` seed
    germinated in `slot`, timed once it is in TRAINING (the lifecycle moves it there on its
    own), per `step()`. One untimed step first."""

    def __init__(
        self,
        data: DataSplits,
        seed: int,
        runs: int,
        blueprint: str | None,
        slot: str,
        channels_last: bool,
        shadow_fraction: float | None = None,
    ) -> None:
        task = get_task("cifar10")
        session = SessionOptions(channels_last=channels_last, shadow_fraction=shadow_fraction)
        config = EnvConfig(episode_length=runs + 8, session=session, illegal_action="raise")
        env = MorphogeneticEnv(task, data, config)
        self.env, self.blueprint, self.slot = env, blueprint, slot
        env.reset(seed=seed)
        if blueprint is None:
            env.step(FactoredAction.wait())
        else:
            env.step(FactoredAction.germinate(slot, blueprint))
            while env.session.model.slot(slot).stage != Stage.TRAINING:
                env.step(FactoredAction.wait())

    def step(self) -> float:
        started = time.perf_counter()
        self.env.step(FactoredAction.wait())
        seconds = time.perf_counter() - started
        if self.blueprint is not None:
            stage = self.env.session.model.slot(self.slot).stage
            if stage != Stage.TRAINING:
                raise RuntimeError(f"the {self.blueprint} seed left TRAINING while timed")
        return seconds


def cifar_case(args: argparse.Namespace) -> None:
    """Every case is built first, then timed in turns, run by run (plain NCHW, plain
    channels_last, each Esper case, then again): this VM's speed drifts by +-20 % from minute
    to minute, and timing one case after another put that drift between the cases."""
    print(header("Esper env-step vs a plain PyTorch epoch (cifar10-shaped, generated)", args.runs))
    task = get_task("cifar10")
    formats = args.formats.split(",")
    if not set(formats) <= {"nchw", "channels_last"} or not formats:
        raise SystemExit(f"--formats: nchw and/or channels_last, got {args.formats!r}")
    fractions: list[float | None] = [None]  # the task's own
    if args.shadow_fractions:
        fractions = [float(f) for f in args.shadow_fractions.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        write_cifar_folder(Path(tmp), args.train + args.val)
        data = load_cifar10(tmp, train_subset=args.train, val_size=args.val)
    print(
        f"images: {len(data.train)} train, {len(data.val)} validation | batch "
        f"{task.batch_size} / {task.eval_batch_size} | host params "
        f"{sum(p.numel() for p in task.build_host(data).parameters())} | cases timed in turns"
    )
    cases: dict[str, PlainCase | EsperCase] = {}
    for channels_last in (False, True):
        label = f"plain loop, {'channels_last' if channels_last else 'NCHW'}"
        cases[label] = PlainCase(data, args.seed, channels_last)
    slots = [spec.slot_id for spec in task.build_host(data).segments()]
    seeded = [(b, s, f) for b in args.blueprints.split(",") for s in slots for f in fractions]
    for channels_last in [f == "channels_last" for f in formats]:
        form = "channels_last" if channels_last else "NCHW"
        for blueprint, slot, fraction in [(None, "-", None), *seeded]:
            what = f"{blueprint}@{slot} in TRAINING" if blueprint else "host alone"
            if fraction is not None:
                what += f", shadow {fraction:g}"
            case = EsperCase(data, args.seed, args.runs, blueprint, slot, channels_last, fraction)
            cases[f"esper {form}, {what}"] = case
    seconds: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(args.runs):
        for label, case in cases.items():
            seconds[label].append(case.step())
    plain = [label for label in cases if label.startswith("plain")]
    fastest = seconds[min(plain, key=lambda label: float(np.median(seconds[label])))]
    for label, times in seconds.items():
        ratios = [t / f for t, f in zip(times, fastest, strict=True)]  # run by run
        print(f"{label:<42} | {spread(times)} s | x fastest plain {spread(ratios)}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=3, help="env seed of the heuristic episode")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--case", choices=("digits", "cifar"), default="digits")
    parser.add_argument("--train", type=int, default=4096, help="cifar: training images")
    parser.add_argument("--val", type=int, default=1000, help="cifar: validation images")
    parser.add_argument(
        "--blueprints", default="depthwise,conv_light", help="cifar: seeds to time in TRAINING"
    )
    parser.add_argument(
        "--shadow-fractions",
        default="",
        help="cifar: shadow fractions to time each seed at, comma-separated (default: the task's)",
    )
    parser.add_argument(
        "--formats", default="nchw,channels_last", help="cifar: memory formats of Esper's cases"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case == "cifar":
        cifar_case(args)
        return
    print(header("Esper overhead vs a plain PyTorch loop (digits, heuristic episode)", args.runs))
    task = get_task("digits")
    epochs = task.episode_length
    recorder = Recorder(HeuristicPolicy(blueprint_names("cnn")))
    for measure in (True, False):
        config = EnvConfig(
            episode_length=epochs,
            session=SessionOptions(measure_counterfactual=measure),
            illegal_action="raise",
        )
        env = MorphogeneticEnv(task, config=config)
        policy = recorder if measure else Replay(recorder.actions)
        esper_s, plain_s = [], []
        for _ in range(args.runs):
            (record,) = run_episodes(policy, [env], [args.seed])
            esper_s.append(record.wall_time_s)
            plain_s.append(plain_training(PlainNet(env), env, epochs, args.seed))
        ratios = [e / p for e, p in zip(esper_s, plain_s, strict=True)]
        label = "with counterfactuals   " if measure else "without counterfactuals"
        print(
            f"{label} | esper {spread(esper_s)} s | plain {spread(plain_s)} s | "
            f"ratio {spread(ratios)} | final network: host + {list(record.outcome.grown)}"
        )


if __name__ == "__main__":
    main()
