import math

import pytest
import torch

from esper.tolaria.data import DataError, DataSplits, Split, stratified_order


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
