"""CIFAR-10 from a local `cifar-10-batches-py` directory (the standard python-pickle release).

Validation is held out of the five training batches; the official test batch is the test split.
Images stay uint8 in memory (a quarter of float32: 150 MB for all 50,000 training images, so they
fit on the device); the loader normalizes each batch with `CIFAR10_NORMALIZATION` there.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from esper.tolaria.data.augment import CropFlip
from esper.tolaria.data.normalization import PixelNormalization
from esper.tolaria.data.splits import DataError, DataSplits, Split, stratified_order

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
# Per-channel mean and std of the training images, the values used across the literature.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_NORMALIZATION = PixelNormalization(CIFAR10_MEAN, CIFAR10_STD)

_IMAGE_SHAPE = (3, 32, 32)
_PIXELS = 3 * 32 * 32
# The batches are pickles; only these globals (numpy arrays, bytes) may be built while reading
# them, so a stray file in the data directory cannot run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return super().find_class(module, name)


# The standard CIFAR-10 train augmentation: random 32x32 crop of a 4-padded image + flip.
cifar_augment = CropFlip(padding=4)


def load_cifar10(
    data_dir: str | Path,
    train_subset: int | None = None,
    val_size: int | None = None,
    download: bool = False,
    seed: int = 0,
) -> DataSplits:
    """Read CIFAR-10 from `data_dir` (the `cifar-10-batches-py` folder itself or its parent).

    Args:
        data_dir: where the data lives, or where to download it.
        train_subset: keep only this many training images (seeded, class-balanced), e.g. for CPU.
        val_size: images held out of the training batches for validation (class-balanced);
            None: 5,000 (a tenth of the training images when there are fewer than 50,000).
        download: fetch through torchvision (the `vision` extra) when the files are missing.
        seed: fixes the validation hold-out and the subset.

    Returns:
        Inputs (N, 3, 32, 32) uint8 with `CIFAR10_NORMALIZATION` (`Split.normalized()` gives
        the float32 inputs the model sees), targets (N,) int64, 10 classes.

    Raises:
        DataError: files missing (saying where they were expected and how to get them) or
            malformed (naming the file); a bad `train_subset` or `val_size`.
    """
    folder = _find_folder(Path(data_dir), download)
    train_parts = [_read_batch(folder / name) for name in TRAIN_FILES]
    train_pixels = np.concatenate([pixels for pixels, _ in train_parts])
    train_labels = torch.cat([labels for _, labels in train_parts])
    test_pixels, test_labels = _read_batch(folder / TEST_FILE)

    n_train = len(train_labels)
    if val_size is None:  # the standard 5,000, or a tenth of a smaller (test-sized) folder
        val_size = min(5000, max(1, n_train // 10))
    if not 1 <= val_size < n_train:
        raise DataError(f"val_size must be in [1, {n_train - 1}], got {val_size}")
    if train_subset is not None and not 1 <= train_subset <= n_train - val_size:
        raise DataError(
            f"train_subset must be in [1, {n_train - val_size}] (training images left after "
            f"val_size={val_size}) or None, got {train_subset}"
        )
    order = stratified_order(train_labels, seed)
    val_index, train_index = order[:val_size], order[val_size:]
    if train_subset is not None:
        # Any run of the stratified order is class-balanced, so its head is a balanced subset.
        train_index = train_index[:train_subset]

    def split(pixels: np.ndarray, labels: Tensor, index: Tensor | None = None) -> Split:
        if index is not None:
            pixels, labels = pixels[index.numpy()], labels[index]
        return Split(_images(pixels), labels, CIFAR10_NORMALIZATION)

    return DataSplits(
        train=split(train_pixels, train_labels, train_index),
        val=split(train_pixels, train_labels, val_index),
        test=split(test_pixels, test_labels),
        kind="classification",
        num_classes=10,
        input_shape=_IMAGE_SHAPE,
    )


def _images(pixels: np.ndarray) -> Tensor:
    """uint8 (N, 3072) -> uint8 (N, 3, 32, 32), the release's channel-major rows."""
    return torch.from_numpy(pixels).reshape(-1, *_IMAGE_SHAPE)


def _find_folder(data_dir: Path, download: bool) -> Path:
    """The `cifar-10-batches-py` folder holding every batch file, downloading it if asked."""
    if data_dir.name == CIFAR10_FOLDER or (data_dir / TRAIN_FILES[0]).exists():
        folder = data_dir
    else:
        folder = data_dir / CIFAR10_FOLDER
    missing = _missing_files(folder)
    if missing and download:
        _download(folder.parent)
        missing = _missing_files(folder)
    if missing:
        raise DataError(
            f"CIFAR-10 not found: expected {', '.join(missing)} in {folder}. Download "
            f"{CIFAR10_URL} and extract it into {folder.parent} (so that "
            f"{folder / TRAIN_FILES[0]} exists), or install the `vision` extra "
            "(pip install 'esper[vision]') and pass --download."
        )
    return folder


def _missing_files(folder: Path) -> list[str]:
    return [name for name in (*TRAIN_FILES, TEST_FILE) if not (folder / name).is_file()]


def _download(root: Path) -> None:
    try:
        import torchvision  # optional: the `vision` extra
    except ImportError as error:
        raise DataError(
            f"--download needs torchvision (pip install 'esper[vision]'); or download "
            f"{CIFAR10_URL} yourself and extract it into {root}"
        ) from error
    try:
        torchvision.datasets.CIFAR10(root=str(root), train=True, download=True)
    except Exception as error:  # network or disk trouble; torchvision raises many kinds
        raise DataError(
            f"downloading CIFAR-10 into {root} failed ({error}); download {CIFAR10_URL} and "
            f"extract it into {root} by hand"
        ) from error


def _read_batch(path: Path) -> tuple[np.ndarray, Tensor]:
    """One batch file -> pixels uint8 (N, 3072) and labels (N,) int64; DataError if malformed."""
    try:
        with path.open("rb") as file:
            batch = _BatchUnpickler(file, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DataError(f"{path} is not a CIFAR-10 python batch file: {error}") from error
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataError(f"{path} is not a CIFAR-10 batch: expected a dict with b'data', b'labels'")
    pixels, labels = batch[b"data"], batch[b"labels"]
    if not (isinstance(pixels, np.ndarray) and pixels.dtype == np.uint8 and pixels.ndim == 2):
        raise DataError(f"{path}: b'data' must be a uint8 array (N, {_PIXELS})")
    if pixels.shape[1] != _PIXELS:
        raise DataError(f"{path}: b'data' has shape {pixels.shape}, expected (N, {_PIXELS})")
    try:
        label_tensor = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: b'labels' must be a list of integers") from error
    if label_tensor.shape != (pixels.shape[0],):
        raise DataError(
            f"{path}: {pixels.shape[0]} images but b'labels' has shape {tuple(label_tensor.shape)}"
        )
    if len(label_tensor) and not 0 <= int(label_tensor.min()) <= int(label_tensor.max()) <= 9:
        raise DataError(f"{path}: labels must be in 0..9")
    return pixels, label_tensor
