import math

import pytest
import torch

from esper.tolaria.data import load_digits


def test_digits_splits_shapes_and_sizes() -> None:
    data = load_digits()
    assert (len(data.train), len(data.val), len(data.test)) == (1079, 359, 359)
    for split in (data.train, data.val, data.test):
        assert split.inputs.shape[1:] == (1, 8, 8)
        assert split.inputs.dtype == torch.float32
        assert split.targets.dtype == torch.int64
    assert data.kind == "classification"
    assert data.num_classes == 10
    assert data.input_shape == (1, 8, 8)
    assert data.chance_loss == pytest.approx(math.log(10))


def test_digits_are_standardized_with_train_statistics() -> None:
    data = load_digits()
    assert data.train.inputs.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert data.train.inputs.std().item() == pytest.approx(1.0, abs=1e-5)
    assert abs(data.val.inputs.mean().item()) < 0.1


def test_digits_splits_are_stratified_and_keep_every_sample() -> None:
    data = load_digits()
    per_split = [torch.bincount(s.targets, minlength=10) for s in (data.train, data.val, data.test)]
    total = sum(per_split)
    assert int(total.sum()) == 1797
    for counts, fraction in zip(per_split, (0.6, 0.2, 0.2), strict=True):
        assert torch.all((counts - fraction * total).abs() <= 1.5)


def test_the_split_is_fixed_by_the_seed() -> None:
    first, again, other = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert torch.equal(first.val.inputs, again.val.inputs)
    assert torch.equal(first.test.targets, again.test.targets)
    assert not torch.equal(first.val.targets, other.val.targets)
