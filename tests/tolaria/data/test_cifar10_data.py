import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from esper.tolaria.data import (
    CIFAR10_MEAN,
    CIFAR10_NORMALIZATION,
    CIFAR10_STD,
    DataError,
    load_cifar10,
)


def image_ids(inputs: torch.Tensor) -> list[int]:
    """Each image's index, which the fake folder writes into its first two bytes."""
    raw = inputs[:, 0, 0, :2].long()
    return (raw[:, 0] * 256 + raw[:, 1]).tolist()


def test_reads_the_standard_folder_from_its_parent_or_itself(cifar_root: Path) -> None:
    from_parent = load_cifar10(cifar_root, val_size=10)
    from_folder = load_cifar10(cifar_root / "cifar-10-batches-py", val_size=10)
    assert torch.equal(from_parent.train.inputs, from_folder.train.inputs)
    assert (len(from_parent.train), len(from_parent.val), len(from_parent.test)) == (90, 10, 20)
    assert from_parent.input_shape == (3, 32, 32)
    assert from_parent.num_classes == 10
    assert from_parent.train.targets.dtype == torch.int64


def test_images_stay_uint8_and_normalize_bitwise_as_the_float_split_did(cifar_root: Path) -> None:
    data = load_cifar10(cifar_root, val_size=10)
    with (cifar_root / "cifar-10-batches-py" / "test_batch").open("rb") as file:
        raw = pickle.load(file, encoding="bytes")[b"data"].reshape(-1, 3, 32, 32)
    assert data.test.inputs.dtype == torch.uint8
    assert torch.equal(data.test.inputs, torch.from_numpy(raw))
    assert data.test.normalization == CIFAR10_NORMALIZATION
    # the float32 split the loader built before images stayed uint8, in its op order
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
    expected = (torch.from_numpy(raw).float() / 255.0 - mean) / std
    normalized = data.test.normalized()
    assert normalized.inputs.dtype == torch.float32
    assert torch.equal(normalized.inputs, expected)
    assert torch.equal(normalized.targets, data.test.targets)
    assert data.test.targets.tolist() == [i % 10 for i in range(1000, 1020)]


def test_validation_is_held_out_of_training_and_class_balanced(cifar_root: Path) -> None:
    data = load_cifar10(cifar_root, val_size=10)
    train_ids, val_ids = image_ids(data.train.inputs), image_ids(data.val.inputs)
    assert sorted(train_ids + val_ids) == list(range(100))
    assert data.val.targets.sort().values.tolist() == list(range(10))
    assert [i % 10 for i in train_ids] == data.train.targets.tolist()


def test_train_subset_is_seeded_and_balanced(cifar_root: Path) -> None:
    data = load_cifar10(cifar_root, val_size=10, train_subset=30, seed=1)
    again = load_cifar10(cifar_root, val_size=10, train_subset=30, seed=1)
    other = load_cifar10(cifar_root, val_size=10, train_subset=30, seed=2)
    assert len(data.train) == 30
    assert torch.bincount(data.train.targets, minlength=10).tolist() == [3] * 10
    assert image_ids(data.train.inputs) == image_ids(again.train.inputs)
    assert image_ids(data.train.inputs) != image_ids(other.train.inputs)
    assert not set(image_ids(data.train.inputs)) & set(image_ids(data.val.inputs))


def test_a_missing_directory_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_cifar10(tmp_path / "nowhere")
    message = str(error.value)
    assert "data_batch_1" in message
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "--download" in message


def test_a_missing_file_is_named(cifar_root: Path) -> None:
    (cifar_root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DataError, match="expected data_batch_3 in"):
        load_cifar10(cifar_root)


def test_a_file_that_is_not_a_pickle_is_named(cifar_root: Path) -> None:
    (cifar_root / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="data_batch_2"):
        load_cifar10(cifar_root)


def test_a_batch_of_the_wrong_shape_is_named(cifar_root: Path) -> None:
    path = cifar_root / "cifar-10-batches-py" / "test_batch"
    with path.open("wb") as file:
        pickle.dump({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4}, file)
    with pytest.raises(DataError, match=r"test_batch.*\(N, 3072\)"):
        load_cifar10(cifar_root)


class _RunsCode:
    # exec, not print: a process that has imported ray has its builtins.print replaced by ray's
    # (the pickle then named ray.experimental.tqdm_ray.safe_print, and the match failed when
    # xdist ran this after a ray test in the same worker).
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (exec, ("print('this must not run')",))


def test_a_pickle_that_would_run_code_is_refused(
    cifar_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = cifar_root / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _RunsCode(), b"labels": []}))
    with pytest.raises(DataError, match=r"data_batch_1.*builtins\.exec"):
        load_cifar10(cifar_root)
    assert "must not run" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"val_size": 0}, "val_size"), ({"val_size": 10, "train_subset": 91}, "train_subset")],
)
def test_bad_sizes_are_named(cifar_root: Path, kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_cifar10(cifar_root, **kwargs)


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed"
)
def test_download_without_torchvision_says_which_extra(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"esper\[vision\]"):
        load_cifar10(tmp_path, download=True)
