"""Your own task: `make_task` builds a `Task` from your tensors and network, and `load_task`
finds one named `package.module:function` or `path/to/file.py:function` (the function returns a
task), which is what `--task` takes.

Everything is checked here, where the user's values come in: split shapes, label ranges, the
network's output, so a task that does not fit fails before any training with one line naming the
problem (`TaskError`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import importlib.util
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from esper.kasmina import Host, SequentialHost, SlotSpec
from esper.kasmina.families import FAMILIES
from esper.tolaria.data import DataError, DataSplits, Split, stratified_order
from esper.tolaria.tasks import Task

Loss = Literal["classification", "next_token"]
LOSSES: tuple[Loss, ...] = ("classification", "next_token")
_KIND = {"classification": "classification", "next_token": "language"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# (inputs, targets) as tensors, numpy arrays or nested lists, or a map-style Dataset of pairs
SplitData = tuple[Any, Any] | Dataset[Any]
HostFactory = Callable[[], nn.Module] | nn.Module


class TaskError(DataError):
    """A task whose data, network or settings do not fit; the message names what is wrong."""


def make_task(
    name: str,
    *,
    train: SplitData,
    test: SplitData,
    host: HostFactory,
    val: SplitData | None = None,
    cuts: Sequence[int] | None = None,
    families: Mapping[int, str] | None = None,
    loss: Loss = "classification",
    num_classes: int | None = None,
    val_fraction: float = 0.2,
    split_seed: int = 0,
    batch_size: int = 64,
    eval_batch_size: int = 512,
    host_lr: float = 0.05,
    seed_lr: float | None = None,
    episode_length: int = 20,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    description: str = "",
) -> Task:
    """A task from your own data and network.

    Args:
        name: a short name for runs and reports (letters, digits, `_`, `-`, `.`).
        train, test: `(inputs, targets)` (tensors, numpy arrays or lists) or a map-style
            `Dataset` whose items are `(input, target)` pairs. Classification targets are
            integer labels 0..K-1 (N,); next-token targets are token ids (N, T), like the inputs.
        host: a function returning a fresh network (called once per episode, after the
            episode's seed is set, so each episode starts from its own initialisation), or a
            network, copied and re-initialised (`reset_parameters`) per episode. Either a host
            (`segments()`, `forward_segment()`, `head()`: see `esper.kasmina.Host`) or an
            `nn.Sequential` with `cuts`.
        val: the validation split (what controllers and rewards see); None carves
            `val_fraction` of `train` off, seeded by `split_seed` (stratified by class).
        cuts: for an `nn.Sequential`, the indices of the modules after which slots sit.
        families: for an `nn.Sequential`, a slot's layer family where its activation does not
            tell (`SequentialHost`).
        loss: "classification" (cross-entropy on (B, K) logits) or "next_token" (on (B, T, V)).
        num_classes: the number of classes (vocabulary size); None: the largest label + 1.
        batch_size, eval_batch_size: training and evaluation batch sizes.
        host_lr, seed_lr: SGD learning rates of the host and of the seeds (None: host_lr).
        episode_length: host epochs per episode.
        momentum, weight_decay: SGD's.

    Raises:
        TaskError: naming what does not fit.
    """
    _check_settings(name, loss, val_fraction, batch_size, eval_batch_size, host_lr, seed_lr)
    _check_training(episode_length, momentum, weight_decay)
    data = _data_splits(train, val, test, loss, num_classes, val_fraction, split_seed)
    build_host = _host_builder(host, cuts, families)
    _check_host(build_host, data, loss)
    return Task(
        name=name,
        description=description or f"your task {name}",
        load=lambda options: data,
        build_host=build_host,
        batch_size=batch_size,
        eval_batch_size=eval_batch_size,
        host_lr=host_lr,
        seed_lr=host_lr if seed_lr is None else seed_lr,
        episode_length=episode_length,
        momentum=momentum,
        weight_decay=weight_decay,
    )


def _check_settings(
    name: str,
    loss: Loss,
    val_fraction: float,
    batch_size: int,
    eval_batch_size: int,
    host_lr: float,
    seed_lr: float | None,
) -> None:
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise TaskError(
            f"task name {name!r} must be letters, digits, '_', '-' or '.' (it names run folders)"
        )
    if loss not in LOSSES:
        raise TaskError(f"unknown loss {loss!r}; known: {', '.join(LOSSES)}")
    if not 0 < val_fraction < 1:
        raise TaskError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    for label, size in (("batch_size", batch_size), ("eval_batch_size", eval_batch_size)):
        if not isinstance(size, int) or size < 1:
            raise TaskError(f"{label} must be a positive int, got {size!r}")
    for label, lr in (("host_lr", host_lr), ("seed_lr", seed_lr)):
        if lr is not None and not (isinstance(lr, int | float) and 0 < lr < float("inf")):
            raise TaskError(f"{label} must be a positive number, got {lr!r}")


def _check_training(episode_length: int, momentum: float, weight_decay: float) -> None:
    if not isinstance(episode_length, int) or episode_length < 1:
        raise TaskError(f"episode_length must be a positive int, got {episode_length!r}")
    for label, value, high in (("momentum", momentum, 1.0), ("weight_decay", weight_decay, 1.0)):
        if not isinstance(value, int | float) or not 0 <= value < high:
            raise TaskError(f"{label} must be a number in [0, {high:g}), got {value!r}")


def _data_splits(
    train: SplitData,
    val: SplitData | None,
    test: SplitData,
    loss: Loss,
    num_classes: int | None,
    val_fraction: float,
    split_seed: int,
) -> DataSplits:
    """The user's splits as `DataSplits`: targets and token ids checked, validation carved off
    `train` when not given, and every split's samples of one shape."""
    splits = {"train": _as_split("train", train), "test": _as_split("test", test)}
    if val is not None:
        splits["val"] = _as_split("val", val)
    for split_name, split in splits.items():
        _check_targets(split_name, split, loss)
    if val is None:
        splits["train"], splits["val"] = _carve(splits["train"], val_fraction, split_seed, loss)
    if loss == "next_token":
        for split_name, split in splits.items():
            _check_token_dtype(split_name, split.inputs)
    classes = _num_classes(splits, loss, num_classes)
    if loss == "next_token":
        for split_name, split in splits.items():
            _check_token_range(split_name, split.inputs, classes)
    shapes = {n: tuple(s.inputs.shape[1:]) for n, s in splits.items()}
    if len(set(shapes.values())) != 1:
        raise TaskError(f"the splits' samples differ in shape: {_listed(shapes)}")
    return DataSplits(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        kind=_KIND[loss],
        num_classes=classes,
        input_shape=shapes["train"],
    )


def _check_token_dtype(split_name: str, inputs: Tensor) -> None:
    if inputs.dtype.is_floating_point or inputs.dtype == torch.bool:
        raise TaskError(
            f"{split_name} inputs are {_dtype(inputs)}; next_token inputs are integer token ids"
        )


def _check_token_range(split_name: str, inputs: Tensor, classes: int) -> None:
    low, high = int(inputs.min()), int(inputs.max())
    if low < 0 or high >= classes:
        raise TaskError(
            f"{split_name} inputs hold token id {low if low < 0 else high}, outside "
            f"0..{classes - 1} of a vocabulary of {classes}"
        )


def _tensor(value: Any, what: str, one_sample: bool = False) -> Tensor:
    try:
        tensor = value if isinstance(value, Tensor) else torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError) as error:
        raise TaskError(f"{what} are not a tensor or array: {error}") from None
    tensor = tensor.detach().cpu()
    if tensor.dtype == torch.float64 and "inputs" in what:
        tensor = tensor.float()  # hosts train in float32
    elif tensor.dtype in (torch.int8, torch.int16, torch.int32, torch.uint8):
        tensor = tensor.long()
    if tensor.dim() == 0 and not one_sample:
        raise TaskError(f"{what} are a single value, not one per sample")
    return tensor.contiguous()


def _as_split(name: str, data: SplitData) -> Split:
    if isinstance(data, Dataset):
        try:
            n = len(data)  # type: ignore[arg-type]
        except TypeError:
            raise TaskError(f"the {name} dataset has no len(): give a map-style Dataset") from None
        if n == 0:
            raise TaskError(f"the {name} split is empty")
        items = [data[i] for i in range(n)]
        if not all(isinstance(item, tuple | list) and len(item) == 2 for item in items):
            raise TaskError(f"the {name} dataset's items must be (input, target) pairs")
        try:
            inputs = torch.stack([_tensor(x, f"{name} inputs", True) for x, _ in items])
            targets = torch.stack([_tensor(y, f"{name} targets", True) for _, y in items])
        except RuntimeError as error:
            raise TaskError(f"the {name} dataset's items differ in shape: {error}") from None
    elif isinstance(data, tuple | list) and len(data) == 2:
        inputs, targets = _tensor(data[0], f"{name} inputs"), _tensor(data[1], f"{name} targets")
    else:
        raise TaskError(
            f"the {name} split must be (inputs, targets) or a Dataset, got {type(data).__name__}"
        )
    if len(inputs) == 0:
        raise TaskError(f"the {name} split is empty")
    if inputs.shape[0] != targets.shape[0]:
        raise TaskError(
            f"the {name} split has {inputs.shape[0]} inputs but {targets.shape[0]} targets"
        )
    return Split(inputs, targets)


def _check_targets(name: str, split: Split, loss: Loss) -> None:
    targets = split.targets
    if targets.dtype.is_floating_point or targets.dtype == torch.bool or targets.is_complex():
        raise TaskError(
            f"{name} targets are {str(targets.dtype).removeprefix('torch.')}; "
            + ("class labels" if loss == "classification" else "token ids")
            + " must be integers"
        )
    if loss == "classification" and targets.dim() != 1:
        raise TaskError(
            f"{name} targets have shape {tuple(targets.shape)}; classification wants one label "
            "per sample, (N,)"
        )
    if loss == "next_token" and tuple(targets.shape) != tuple(split.inputs.shape):
        raise TaskError(
            f"{name} targets have shape {tuple(targets.shape)} but its inputs "
            f"{tuple(split.inputs.shape)}; next_token wants a target token per input token"
        )
    if int(targets.min()) < 0:
        raise TaskError(f"{name} targets hold {int(targets.min())}; labels start at 0")


def _carve(train: Split, fraction: float, seed: int, loss: Loss) -> tuple[Split, Split]:
    n = len(train)
    n_val = round(fraction * n)
    if not 1 <= n_val < n:
        raise TaskError(
            f"val_fraction {fraction} of {n} training samples leaves no validation or no "
            "training split; give more samples or val="
        )
    if loss == "classification":
        order = stratified_order(train.targets, seed)  # each class in proportion in both
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_index, train_index = order[:n_val], order[n_val:]
    return (
        Split(train.inputs[train_index], train.targets[train_index]),
        Split(train.inputs[val_index], train.targets[val_index]),
    )


def _num_classes(splits: Mapping[str, Split], loss: Loss, given: int | None) -> int:
    largest = {n: int(s.targets.max()) for n, s in splits.items()}
    if given is None:
        classes = max(largest.values()) + 1
        if loss == "next_token":  # the inputs are token ids as well
            classes = max(classes, *(int(s.inputs.max()) + 1 for s in splits.values()))
        if classes < 2:
            raise TaskError("the targets hold a single class; a task needs at least two")
        return classes
    if not isinstance(given, int) or given < 2:
        raise TaskError(f"num_classes must be an int >= 2, got {given!r}")
    for split_name, top in largest.items():
        if top >= given:
            raise TaskError(
                f"{split_name} targets hold label {top}, outside 0..{given - 1} of num_classes "
                f"{given}"
            )
    return given


def _dtype(tensor: Tensor) -> str:
    return str(tensor.dtype).removeprefix("torch.")


def _listed(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} {value}" for name, value in values.items())


def _fresh_copy(network: nn.Module) -> nn.Module:
    """A copy of `network` with every layer re-initialised from torch's RNG (an episode's)."""
    fresh = copy.deepcopy(network)
    for module in fresh.modules():
        # nn.MultiheadAttention names its own `_reset_parameters`
        reset = getattr(module, "reset_parameters", None) or getattr(
            module, "_reset_parameters", None
        )
        if callable(reset):
            reset()
    return fresh


def _host_builder(
    host: HostFactory, cuts: Sequence[int] | None, families: Mapping[int, str] | None
) -> Callable[[DataSplits], Host]:
    if isinstance(host, nn.Module):
        network = host

        def factory() -> nn.Module:
            return _fresh_copy(network)
    elif callable(host):
        factory = host
    else:
        raise TaskError(
            f"host must be a network or a function returning one, got {type(host).__name__}"
        )

    def build(data: DataSplits) -> Host:
        made = factory()
        if isinstance(made, Host) and isinstance(made, nn.Module):
            if cuts is not None or families is not None:
                raise TaskError(
                    f"the host {type(made).__name__} has its own segments(); cuts= and "
                    "families= are for an nn.Sequential"
                )
            return made
        if isinstance(made, nn.Sequential):
            if cuts is None:
                raise TaskError(
                    "the host is an nn.Sequential: give cuts=[...], the indices of the modules "
                    f"after which slots sit (0..{len(made) - 2})"
                )
            example = data.train.inputs[:2]
            try:
                return SequentialHost(made, cuts, example, families)
            except ValueError as error:
                raise TaskError(f"the host's cuts: {error}") from None
            except _FAILURES as error:
                raise TaskError(_failed_on(example, error)) from None
        raise TaskError(
            f"the host must be an nn.Sequential (with cuts=) or follow the host protocol "
            f"(segments, forward_segment, head), got {type(made).__name__}"
        )

    return build


# What a network raises for an input it cannot take (a shape, dtype or index mismatch).
_FAILURES = (RuntimeError, TypeError, IndexError, AttributeError, AssertionError)


def _failed_on(example: Tensor, error: BaseException) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return (
        f"the host failed on a batch of training inputs {tuple(example.shape)} "
        f"{str(example.dtype).removeprefix('torch.')}: {first_line}"
    )


def _check_host(build: Callable[[DataSplits], Host], data: DataSplits, loss: Loss) -> None:
    """Build the host once and run two training samples through it the way the growing model
    does (segment by segment, then the head): each activation must be what its slot says (the
    family's rank, the slot's width) and the output the logits the loss wants. A factory must
    build a new network each call (every env and episode trains its own)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        host, again = build(data), build(data)
    assert isinstance(host, nn.Module) and isinstance(again, nn.Module)
    if {id(p) for p in host.parameters()} & {id(p) for p in again.parameters()}:
        raise TaskError(
            "the host function returned the same network twice; it must build a new one each "
            "call (or pass the network itself, which is copied per episode)"
        )
    specs = host.segments()
    if not specs:
        raise TaskError("the host offers no slots (segments() is empty)")
    example = data.train.inputs[:2]
    host.eval()
    try:
        with torch.no_grad():
            x = example
            for i, spec in enumerate(specs):
                x = host.forward_segment(i, x)
                _check_activation(spec, x)
            out = host.head(x)
    except _FAILURES as error:
        raise TaskError(_failed_on(example, error)) from None
    want = (
        (len(example), data.num_classes)
        if loss == "classification"
        else (*example.shape, data.num_classes)
    )
    if not isinstance(out, Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        what = "classes" if loss == "classification" else "tokens in the vocabulary"
        raise TaskError(
            f"the host's output for a batch {tuple(example.shape)} is {got}; {loss} with "
            f"{data.num_classes} {what} wants {want}"
        )


def _check_activation(spec: SlotSpec, x: Tensor) -> None:
    family = FAMILIES.get(spec.family)
    if family is None:
        raise TaskError(
            f"slot {spec.slot_id} names layer family {spec.family!r}; known: {', '.join(FAMILIES)}"
        )
    if not isinstance(x, Tensor) or x.dim() != family.rank:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise TaskError(
            f"slot {spec.slot_id} is {spec.family} ({family.description.split(':')[0]}) but its "
            f"activation is {shape}"
        )
    if x.shape[family.channel_dim] != spec.width:
        raise TaskError(
            f"slot {spec.slot_id} says width {spec.width} but its activation {tuple(x.shape)} "
            f"has {x.shape[family.channel_dim]} there"
        )


# --- finding a task by name ------------------------------------------------------------------


def is_task_spec(spec: str) -> bool:
    """Whether `spec` names a user's task (`module:function` or `file.py:function`)."""
    return ":" in spec


def canonical_spec(spec: str) -> str:
    """`spec` with a file path made absolute (a run resumed from elsewhere finds it again)."""
    where, _, function = spec.rpartition(":")
    if _is_file(where):
        return f"{Path(where).expanduser().resolve()}:{function}"
    return spec


def _is_file(where: str) -> bool:
    return where.endswith(".py") or "/" in where or "\\" in where


@functools.lru_cache(maxsize=16)
def load_task(spec: str) -> Task:
    """The task `spec` names: `package.module:function` or `path/to/file.py:function`, the
    function taking no arguments and returning a `Task` (`make_task`). Loaded once per process.

    Raises:
        TaskError: a malformed spec, a missing file, module or function, or a function that
            does not return a task.
    """
    where, _, function = spec.rpartition(":")
    if not where or not function.isidentifier():
        raise TaskError(
            f"task {spec!r} must be package.module:function or path/to/file.py:function"
        )
    module = _import_file(where) if _is_file(where) else _import_module(where)
    found = getattr(module, function, None)
    if found is None or not callable(found):
        defined = sorted(
            n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
        )
        raise TaskError(
            f"{where} has no function {function!r}; it defines: {', '.join(defined) or 'none'}"
        )
    task = found()
    if not isinstance(task, Task):
        raise TaskError(
            f"{spec} returned {type(task).__name__}, not a task (build one with esper.make_task)"
        )
    return task


def _import_file(where: str) -> Any:
    path = Path(where).expanduser().resolve()
    if not path.is_file():
        raise TaskError(f"task file {where!r} does not exist")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = re.sub(r"\W", "_", path.stem)
    name = f"esper_task_{stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise TaskError(f"task file {where!r} cannot be imported as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # classes defined there pickle by this name
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _import_module(where: str) -> Any:
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as error:
        raise TaskError(
            f"no module {where!r} for the task ({error}); is its package installed or on "
            "PYTHONPATH?"
        ) from None
