import pytest
import torch
import torch.nn.functional as F

from esper.tolaria.data import cifar_augment, crop_flip, random_crop_flip


def crop_flip_reference(
    x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """One image at a time, the obvious way."""
    height, width = x.shape[-2:]
    out = []
    for image, t, lft, f in zip(x, top.tolist(), left.tolist(), flip.tolist(), strict=True):
        padded = F.pad(image, (padding, padding, padding, padding))
        crop = padded[:, t : t + height, lft : lft + width]
        out.append(crop.flip(-1) if f else crop)
    return torch.stack(out)


def test_vectorized_crop_flip_matches_the_per_image_reference() -> None:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 6, 5, generator=generator)
    top = torch.randint(0, 5, (16,), generator=generator)
    left = torch.randint(0, 5, (16,), generator=generator)
    flip = torch.rand(16, generator=generator) < 0.5
    assert torch.equal(crop_flip(x, top, left, flip, 2), crop_flip_reference(x, top, left, flip, 2))


def test_a_known_crop_shifts_in_zeros() -> None:
    x = torch.arange(1, 5, dtype=torch.float32).view(1, 1, 2, 2)  # [[1, 2], [3, 4]]
    zero = torch.zeros(1, dtype=torch.int64)
    shifted = crop_flip(x, zero, zero, torch.tensor([False]), padding=1)
    assert shifted.tolist() == [[[[0.0, 0.0], [0.0, 1.0]]]]
    flipped = crop_flip(x, zero + 1, zero + 1, torch.tensor([True]), padding=1)
    assert flipped.tolist() == [[[[2.0, 1.0], [4.0, 3.0]]]]


def test_random_crop_flip_is_deterministic_given_the_generator() -> None:
    x = torch.randn(32, 3, 8, 8)
    first = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2)
    again = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2)
    other = random_crop_flip(x, torch.Generator().manual_seed(2), padding=2)
    assert first.shape == x.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_without_padding_only_flips_happen() -> None:
    x = torch.randn(64, 1, 4, 4)
    out = random_crop_flip(x, torch.Generator().manual_seed(0), padding=0)
    is_flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert torch.all(is_flipped | (out == x).flatten(1).all(1))
    assert 10 < int(is_flipped.sum()) < 54


def test_cifar_augment_keeps_the_image_shape() -> None:
    x = torch.randn(4, 3, 32, 32)
    assert cifar_augment(x, torch.Generator().manual_seed(0)).shape == (4, 3, 32, 32)


@pytest.mark.parametrize(
    ("shape", "padding", "message"), [((3, 8, 8), 4, "B, C, H, W"), ((1, 3, 8, 8), -1, "padding")]
)
def test_bad_input_is_named(shape: tuple[int, ...], padding: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_crop_flip(torch.zeros(shape), torch.Generator(), padding=padding)
