import math

import pytest
import torch

from esper.tolaria.data import DataError, DataSplits, PixelNormalization, Split, stratified_order


def test_stratified_order_is_a_seeded_permutation() -> None:
    labels = torch.randint(0, 4, (101,), generator=torch.Generator().manual_seed(0))
    order = stratified_order(labels, seed=3)
    assert sorted(order.tolist()) == list(range(101))
    assert torch.equal(order, stratified_order(labels, seed=3))
    assert not torch.equal(order, stratified_order(labels, seed=4))


def test_every_prefix_of_the_stratified_order_is_class_balanced() -> None:
    labels = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    ordered = labels[stratified_order(labels, seed=0)]
    for k in range(1, 101):
        counts = torch.bincount(ordered[:k], minlength=3).double()
        expected = k * torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
        assert torch.all((counts - expected).abs() <= 1), (k, counts.tolist())


def make_splits(**overrides: object) -> DataSplits:
    split = Split(torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.int64))
    arguments: dict[str, object] = {
        "train": split,
        "val": split,
        "test": split,
        "kind": "classification",
        "num_classes": 10,
        "input_shape": (1, 2, 2),
        **overrides,
    }
    return DataSplits(**arguments)  # type: ignore[arg-type]


def test_chance_loss_is_the_log_of_the_number_of_classes() -> None:
    assert make_splits().chance_loss == pytest.approx(math.log(10))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "regression"}, "regression"),
        ({"num_classes": 1}, "num_classes"),
        ({"input_shape": (3, 2, 2)}, "input_shape"),
    ],
)
def test_inconsistent_splits_are_rejected(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(DataError, match=message):
        make_splits(**overrides)


def test_split_needs_one_target_per_input() -> None:
    with pytest.raises(DataError, match="same number of samples"):
        Split(torch.zeros(4, 3), torch.zeros(5))


NORM = PixelNormalization(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.25))


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (torch.zeros(4, 3, 2, 2), "uint8 images"),
        (torch.zeros(4, 3, dtype=torch.uint8), "uint8 images"),
        (torch.zeros(4, 1, 2, 2, dtype=torch.uint8), "1 channels, the normalization 3"),
    ],
)
def test_a_normalization_needs_uint8_images_with_its_channels(
    inputs: torch.Tensor, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        Split(inputs, torch.zeros(4, dtype=torch.int64), NORM)


def test_a_normalized_split_gives_its_float_inputs_and_keeps_its_normalization_when_moved() -> None:
    images = torch.randint(0, 256, (4, 3, 2, 2), dtype=torch.uint8)
    split = Split(images, torch.arange(4), NORM)
    assert torch.equal(split.normalized().inputs, NORM(images))
    assert split.normalized().normalization is None
    assert split.to("cpu").normalization == NORM
    plain = Split(torch.zeros(4, 1), torch.arange(4))
    assert plain.normalized() is plain
