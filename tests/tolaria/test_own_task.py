"""Your own task: `make_task` from tensors, arrays and Datasets, its one-line errors, and finding
a task by `module:function` or `file.py:function`."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from esper import MorphogeneticEnv, Task, TaskError, get_task, load_task, make_task
from esper.kasmina import MorphogeneticModel, SlotSpec
from esper.tolaria import DataOptions
from esper.tolaria.own_task import canonical_spec

rng = np.random.default_rng(0)
X, Y = rng.normal(size=(100, 5)), np.arange(100) % 3  # 3 balanced classes
X_TEST, Y_TEST = rng.normal(size=(30, 5)), np.arange(30) % 3


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3))


def task(**overrides: Any) -> Task:
    settings: dict[str, Any] = {
        "train": (X, Y),
        "test": (X_TEST, Y_TEST),
        "host": mlp,
        "cuts": [1, 3],
    }
    return make_task("toy", **{**settings, **overrides})


def test_a_task_from_arrays_carves_a_stratified_validation_split() -> None:
    made = task(val_fraction=0.3, split_seed=4)
    data = made.load(DataOptions())
    assert (len(data.train), len(data.val), len(data.test)) == (70, 30, 30)
    assert data.train.inputs.dtype == torch.float32 and data.train.targets.dtype == torch.int64
    assert torch.bincount(data.val.targets).tolist() == [10, 10, 10]  # each class in proportion
    assert (data.kind, data.num_classes, data.input_shape) == ("classification", 3, (5,))
    everything = torch.cat([data.train.inputs, data.val.inputs])
    assert sorted(map(tuple, everything.tolist())) == sorted(
        map(tuple, torch.as_tensor(X).float().tolist())
    )  # every training sample in exactly one of the two
    again = task(val_fraction=0.3, split_seed=4).load(DataOptions())
    assert torch.equal(again.val.inputs, data.val.inputs)  # seeded
    other = task(val_fraction=0.3, split_seed=5).load(DataOptions())
    assert not torch.equal(other.val.inputs, data.val.inputs)
    assert (made.batch_size, made.host_lr, made.seed_lr, made.episode_length) == (
        64,
        0.05,
        0.05,
        20,
    )


def test_a_given_validation_split_and_a_dataset_are_taken_as_they_are() -> None:
    val = TensorDataset(torch.randn(12, 5), torch.arange(12) % 3)
    data = task(val=val, train=TensorDataset(torch.randn(40, 5), torch.arange(40) % 3))
    splits = data.load(DataOptions())
    assert (len(splits.train), len(splits.val)) == (40, 12)
    assert torch.equal(splits.val.inputs, val.tensors[0])


def test_the_host_is_fresh_for_every_episode_seed() -> None:
    data = task().load(DataOptions())
    for factory in (mlp, mlp()):  # a function, or a network copied and re-initialised
        made = task(host=factory)

        def weights(seed: int, made: Task = made) -> torch.Tensor:
            torch.manual_seed(seed)
            return next(iter(made.build_host(data).parameters())).detach().clone()  # type: ignore[attr-defined]

        assert torch.equal(weights(0), weights(0)) and not torch.equal(weights(0), weights(1))


def test_a_host_of_its_own_segments_is_taken_as_it_is() -> None:
    from esper.kasmina import CNNHost

    images = (torch.randn(20, 1, 8, 8), torch.arange(20) % 10)
    made = make_task(
        "imgs", train=images, test=images, val=images, host=lambda: CNNHost(1, 8, (4, 8))
    )
    model = MorphogeneticModel(made.build_host(made.load(DataOptions())))
    assert model.slot_ids == ["r0c0", "r0c1"]
    with pytest.raises(TaskError, match="has its own segments"):
        make_task(
            "imgs", train=images, test=images, val=images, host=lambda: CNNHost(1, 8), cuts=[0]
        )


def test_a_next_token_task_wants_logits_per_position() -> None:
    tokens = torch.randint(0, 11, (30, 6))
    data = (tokens, torch.roll(tokens, -1, dims=1))

    def host() -> nn.Sequential:
        return nn.Sequential(nn.Embedding(11, 8), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 11))

    made = make_task("tok", train=data, test=data, host=host, cuts=[1], loss="next_token")
    splits = made.load(DataOptions())
    assert (splits.kind, splits.num_classes) == ("language", 11)
    model = MorphogeneticModel(made.build_host(splits))
    assert model.slot("r0c0").family == "transformer"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"test": (np.zeros((30, 4)), Y_TEST)}, r"differ in shape: train \(5,\), test \(4,\)"),
        ({"test": (X_TEST, Y_TEST[:20])}, "the test split has 30 inputs but 20 targets"),
        ({"train": (X, Y.astype(float))}, "train targets are float64; class labels must be"),
        ({"train": (X, Y - 1)}, "train targets hold -1; labels start at 0"),
        ({"num_classes": 2}, r"targets hold label 2, outside 0..1 of num_classes 2"),
        ({"train": (X, np.zeros((100, 2), int))}, r"shape \(100, 2\); classification wants"),
        (
            {"num_classes": 4},
            r"output .* is \(2, 3\); classification with 4 classes wants \(2, 4\)",
        ),
        ({"cuts": None}, r"nn.Sequential: give cuts=\[...\].*\(0..3\)"),
        ({"cuts": [4]}, r"the host's cuts: cuts must lie in \[0, 3\]"),
        (
            {
                "host": lambda: nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 3)),
                "cuts": [1],
            },
            r"failed on a batch .*\(2, 5\) float32: mat1 and mat2",
        ),
        ({"host": lambda: nn.Linear(5, 3)}, "must be an nn.Sequential .* got Linear"),
        ({"host": 3}, "host must be a network or a function returning one, got int"),
        ({"train": [1, 2, 3]}, r"must be \(inputs, targets\) or a Dataset, got list"),
        ({"train": (X[:0], Y[:0])}, "the train split is empty"),
        ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\), got 1.0"),
        ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
        ({"host_lr": float("nan")}, "host_lr must be a positive number, got nan"),
        ({"loss": "mse"}, "unknown loss 'mse'; known: classification, next_token"),
    ],
)
def test_a_task_that_does_not_fit_says_what_is_wrong(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(TaskError, match=message) as error:
        task(**overrides)
    assert "\n" not in str(error.value)


def test_a_task_name_must_name_a_folder() -> None:
    with pytest.raises(TaskError, match="task name 'a/b' must be letters"):
        make_task("a/b", train=(X, Y), test=(X_TEST, Y_TEST), host=mlp, cuts=[1])


TASK_FILE = """
import numpy as np
from torch import nn

import esper

rng = np.random.default_rng(0)


def tiny():
    x, y = rng.normal(size=(60, 4)), np.arange(60) % 2
    return esper.make_task(
        "tiny", train=(x, y), test=(x[:20], y[:20]), episode_length=3,
        host=lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2)), cuts=[1],
    )


def not_a_task():
    return 42
"""


@pytest.fixture
def task_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_tasks.py"
    path.write_text(textwrap.dedent(TASK_FILE))
    return path


def test_a_task_is_found_by_file_path_and_by_module_path(
    task_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    by_file = get_task(f"{task_file}:tiny")
    assert isinstance(by_file, Task) and by_file.name == "tiny"
    assert get_task(f"{task_file}:tiny") is by_file  # loaded once per process
    monkeypatch.syspath_prepend(str(task_file.parent))
    by_module = load_task("my_tasks:tiny")
    assert by_module.name == "tiny" and by_module.episode_length == 3
    env = MorphogeneticEnv(f"{task_file}:tiny")  # the Gymnasium env takes the name too
    assert env.episode_length == 3 and env.session.model.slot_ids == ["r0c0"]


def test_a_relative_task_file_is_made_absolute(
    task_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(task_file.parent)
    assert canonical_spec("my_tasks.py:tiny") == f"{task_file.resolve()}:tiny"
    assert canonical_spec("my_tasks:tiny") == "my_tasks:tiny"  # a module path stays


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{file}:nope", r"my_tasks.py has no function 'nope'; it defines: not_a_task, tiny"),
        ("{file}:not_a_task", "returned int, not a task"),
        ("{dir}/missing.py:tiny", "task file .*missing.py' does not exist"),
        ("no_such_package.tasks:tiny", "no module 'no_such_package.tasks' for the task"),
        ("{file}:", "must be package.module:function or path/to/file.py:function"),
        ("digitz", "unknown task 'digitz'; built in: digits, .*; or your own as"),
    ],
)
def test_a_task_that_cannot_be_found_says_why(task_file: Path, spec: str, message: str) -> None:
    spec = spec.format(file=task_file, dir=task_file.parent)
    with pytest.raises(ValueError, match=message):
        get_task(spec)


class _NoForwardHost(nn.Module):
    """A host of the protocol only: segments, forward_segment and head, no forward()."""

    def __init__(self, width: int = 8, family: str = "dense") -> None:
        super().__init__()
        self.body, self.out = nn.Linear(5, 8), nn.Linear(8, 3)
        self.spec = SlotSpec("r0c0", width, 0, family)

    def segments(self) -> list[SlotSpec]:
        return [self.spec]

    def forward_segment(self, index: int, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x))

    def head(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(x)
        return out


def test_a_host_is_checked_the_way_the_growing_model_runs_it() -> None:
    """A host without forward() was refused (the check called host(x)); a host whose slots
    say the wrong width or family was accepted and failed at the first germination."""
    made = task(host=_NoForwardHost, cuts=None)
    assert MorphogeneticModel(made.build_host(made.load(DataOptions()))).slot_ids == ["r0c0"]
    with pytest.raises(TaskError, match=r"slot r0c0 says width 6 but its activation \(2, 8\)"):
        task(host=lambda: _NoForwardHost(width=6), cuts=None)
    with pytest.raises(TaskError, match=r"slot r0c0 is cnn \(\(B, C, H, W\)\) but its activation"):
        task(host=lambda: _NoForwardHost(family="cnn"), cuts=None)


def test_a_host_function_must_build_a_new_network_each_call() -> None:
    shared = mlp()
    with pytest.raises(TaskError, match="returned the same network twice"):
        task(host=lambda: shared)


def test_next_token_inputs_are_token_ids_of_the_vocabulary() -> None:
    tokens = torch.randint(0, 11, (30, 6))
    shifted = torch.roll(tokens, -1, dims=1)

    def host() -> nn.Sequential:
        return nn.Sequential(nn.Embedding(11, 8), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 11))

    def tok(**overrides: Any) -> Task:
        settings: dict[str, Any] = {"train": (tokens, shifted), "test": (tokens, shifted)}
        settings |= {"host": host, "cuts": [1], "loss": "next_token"}
        return make_task("tok", **{**settings, **overrides})

    with pytest.raises(TaskError, match=r"inputs hold token id 10, outside 0..9 of a vocabulary"):
        tok(train=(tokens, shifted % 10), test=(tokens % 10, shifted % 10), num_classes=10)
    with pytest.raises(TaskError, match="train inputs are float32; next_token inputs are integer"):
        tok(train=(tokens.float(), shifted))
    small = tok(test=(tokens % 5, shifted % 5))  # a vocabulary of 11 all the same

    def narrow() -> nn.Sequential:
        return nn.Sequential(nn.Embedding(5, 8), nn.Linear(8, 8), nn.GELU(), nn.Linear(8, 11))

    with pytest.raises(TaskError, match=r"failed on a batch .* int64: index out of range"):
        tok(host=narrow)  # an IndexError of the network's own, in one line
    assert small.load(DataOptions()).num_classes == 11


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"momentum": "a"}, "momentum must be a number in [0, 1), got 'a'"),
        ({"weight_decay": -1.0}, "weight_decay must be a number in [0, 1), got -1.0"),
    ],
)
def test_sgd_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(TaskError, match=re.escape(message)):
        task(**overrides)
