"""Tasks: what a host trains on, how it is built, and the host-training hyperparameters."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from esper.kasmina import CNNHost, Host, TransformerHost
from esper.tolaria.data import (
    DataSplits,
    cifar_augment,
    load_cifar10,
    load_digits,
    load_stories,
    load_tinystories,
)
from esper.tolaria.data.tensor_loader import Augment, PlannedAugment


@dataclass(frozen=True)
class DataOptions:
    """Where and how much real data to read (ignored by the embedded tasks)."""

    data_dir: Path | None = None
    train_subset: int | None = None
    download: bool = False

    def __post_init__(self) -> None:
        if self.train_subset is not None and self.train_subset < 1:
            raise ValueError(f"train_subset must be >= 1, got {self.train_subset}")


@dataclass(frozen=True)
class Task:
    """A host-training problem.

    `build_host(data)` makes a fresh host for the task's data (its widths are deliberately small
    where seeds should have room to help). Learning rates are for SGD with momentum.
    """

    name: str
    description: str
    load: Callable[[DataOptions], DataSplits]
    build_host: Callable[[DataSplits], Host]
    batch_size: int
    eval_batch_size: int
    host_lr: float
    seed_lr: float
    episode_length: int  # host epochs per episode
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: Augment | PlannedAugment | None = None
    reads: frozenset[str] = frozenset()  # the DataOptions fields `load` honours
    channels_last: bool = False  # image host trained in channels_last on the CPU (faster there)
    shadow_fraction: float = 1.0  # of each training batch, the share a shadow pass takes

    def check_options(self, options: DataOptions) -> None:
        """Raises ValueError for a data option this task would ignore (an embedded task has no
        folder to read and no subset to take: a run must not record a setting it never used)."""
        given = {
            "data_dir": options.data_dir is not None,
            "train_subset": options.train_subset is not None,
            "download": options.download,
        }
        ignored = sorted(
            name for name, is_set in given.items() if is_set and name not in self.reads
        )
        if ignored:
            reads = ", ".join(sorted(self.reads)) or "none"
            raise ValueError(
                f"task {self.name} does not use {', '.join(ignored)} (data options it reads: "
                f"{reads}); remove {'it' if len(ignored) == 1 else 'them'}"
            )


def _digits_host(data: DataSplits) -> Host:
    # 438 parameters, two blocks: ~87% test accuracy alone in 25 epochs. Its limit is depth
    # (receptive field), which residual seeds can add; width they cannot (a seed keeps its slot's
    # width). Measured over 4 env seeds: conv_light seeds planted early in both slots reach ~97%;
    # on a (2, 4, 8) host seeds gained only ~2 points (its 2-channel first block loses
    # information no later seed can recover). GroupNorm, not BatchNorm: with BatchNorm a seed's
    # counterfactual is confounded by running statistics gathered with the seed in place
    # (removing a blended seed "cost" 5-10 points while the host was no better for it, and a
    # seed about to blend measured -60 to -70 points).
    return CNNHost(1, 8, widths=(4, 8), num_classes=10, pool=(False, True), norm="group")


def _cifar_host(data: DataSplits) -> Host:
    # GroupNorm, as on digits: with BatchNorm, removing a seed in the counterfactual left the host
    # on running statistics gathered with the seed in place (see `_digits_host`).
    return CNNHost(
        in_channels=3, image_size=32, widths=(16, 32, 64), num_classes=10, pool=True, norm="group"
    )


def _story_host(data: DataSplits) -> Host:
    block = data.input_shape[0]
    return TransformerHost(
        vocab_size=data.num_classes, block_size=block, n_layer=2, n_head=2, n_embd=64, n_segments=2
    )


def _tinystories_host(data: DataSplits) -> Host:
    block = data.input_shape[0]
    return TransformerHost(
        vocab_size=data.num_classes, block_size=block, n_layer=4, n_head=4, n_embd=128, n_segments=2
    )


def _load_cifar(options: DataOptions) -> DataSplits:
    if options.data_dir is None:
        raise ValueError("the cifar10 task needs --data-dir (a folder holding cifar-10-batches-py)")
    return load_cifar10(
        options.data_dir, train_subset=options.train_subset, download=options.download
    )


def _load_tinystories(options: DataOptions) -> DataSplits:
    return load_tinystories(options.data_dir, block_size=128, max_chars=20_000_000)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task(
            name="digits",
            description="scikit-learn's 8x8 handwritten digits (embedded), tiny CNN host",
            load=lambda options: load_digits(),
            build_host=_digits_host,
            batch_size=64,
            eval_batch_size=512,
            host_lr=0.1,
            seed_lr=0.1,
            episode_length=25,
        ),
        Task(
            name="cifar10",
            description="CIFAR-10 from a local cifar-10-batches-py folder, CNN host",
            load=_load_cifar,
            build_host=_cifar_host,
            batch_size=128,
            eval_batch_size=1000,
            host_lr=0.01,
            seed_lr=0.01,
            episode_length=25,
            augment=cifar_augment,
            reads=frozenset({"data_dir", "train_subset", "download"}),
            channels_last=True,  # benchmarks/overhead.py --case cifar: 1.4x faster on CPU
            # a seed at the first slot repeats nearly the whole host in its shadow pass; at 1/8
            # of the batch it costs ~1/8 of that, and on digits fixed plans lost nothing
            # measurable at 1/8 (benchmarks/shadow_fraction.py, docs/results.md)
            shadow_fraction=0.125,
        ),
        Task(
            name="stories",
            description="an embedded story-grammar corpus, byte tokens, small GPT host",
            load=lambda options: load_stories(block_size=64),
            build_host=_story_host,
            batch_size=32,
            eval_batch_size=128,
            host_lr=0.1,
            seed_lr=0.1,
            episode_length=15,
        ),
        Task(
            name="tinystories",
            description="TinyStories text from a local file (--data-dir), byte tokens, GPT host",
            load=_load_tinystories,
            build_host=_tinystories_host,
            batch_size=32,
            eval_batch_size=128,
            host_lr=0.1,
            seed_lr=0.1,
            episode_length=25,
            reads=frozenset({"data_dir"}),
        ),
    )
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
