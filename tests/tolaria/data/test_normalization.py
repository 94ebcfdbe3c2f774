import pytest
import torch

from esper.tolaria.data import PixelNormalization, normalize_pixels

NORM = PixelNormalization(mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616))


def normalized_up_front(images: torch.Tensor, norm: PixelNormalization) -> torch.Tensor:
    """How a float split was normalized before images stayed uint8 (the reference)."""
    mean = torch.tensor(norm.mean).view(1, -1, 1, 1)
    std = torch.tensor(norm.std).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


def test_the_table_holds_every_pixel_value_normalized_per_channel() -> None:
    every_value = torch.arange(256, dtype=torch.uint8).view(1, 1, 1, 256).expand(1, 3, 1, 256)
    table = NORM.table()
    assert table.shape == (3, 256)
    assert table.dtype == torch.float32
    assert torch.equal(table, normalized_up_front(every_value, NORM)[0, :, 0, :])


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_lookup_is_bitwise_the_arithmetic_on_images(memory_format: torch.memory_format) -> None:
    images = torch.randint(0, 256, (5, 3, 6, 7), dtype=torch.uint8)
    images = images.contiguous(memory_format=memory_format)
    looked_up = normalize_pixels(images, NORM.table())
    assert looked_up.shape == images.shape
    assert torch.equal(looked_up, normalized_up_front(images, NORM))
    assert torch.equal(NORM(images), looked_up)


@pytest.mark.parametrize(
    ("mean", "std", "message"),
    [
        ((), (), "one value per channel"),
        ((0.5, 0.5), (0.2,), "one value per channel"),
        ((float("nan"),), (0.2,), "mean must be finite"),
        ((0.5,), (0.0,), "std must be finite and > 0"),
    ],
)
def test_bad_statistics_are_named(
    mean: tuple[float, ...], std: tuple[float, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PixelNormalization(mean, std)
