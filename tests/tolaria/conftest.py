"""Shared fixtures for tolaria tests: a tiny fake CIFAR-10 folder in the released format."""

import pickle
from pathlib import Path

import numpy as np
import pytest

PER_BATCH = 20
BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def write_batch(path: Path, first_index: int, n: int = PER_BATCH) -> None:
    """A batch in the released format; image i has its global index in its first two bytes."""
    data = np.random.default_rng(first_index).integers(0, 256, (n, 3072), dtype=np.uint8)
    index = np.arange(first_index, first_index + n)
    data[:, 0], data[:, 1] = index // 256, index % 256
    labels = [int(i) % 10 for i in index]
    with path.open("wb") as file:
        pickle.dump({b"data": data, b"labels": labels, b"batch_label": b"fake"}, file, protocol=2)


@pytest.fixture
def cifar_root(tmp_path: Path) -> Path:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i, name in enumerate(BATCH_FILES):
        write_batch(folder / name, i * PER_BATCH)
    write_batch(folder / "test_batch", 1000)
    return tmp_path
