import pytest
import torch
import torch.nn.functional as F

from esper.tolaria.data import CropFlip, PlannedAugment, cifar_augment, crop_flip, random_crop_flip


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
    assert isinstance(cifar_augment, PlannedAugment)
    assert cifar_augment == CropFlip(padding=4)


def test_a_pass_drawn_up_front_equals_drawing_batch_by_batch() -> None:
    """The plan's draws, sliced per batch, give `random_crop_flip`'s images bitwise and leave
    the generator where it left it (so the next pass is the same too)."""
    x = torch.randn(13, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    sizes = [5, 5, 3]
    planned_generator, per_batch_generator = (torch.Generator().manual_seed(7) for _ in "ab")
    plan = CropFlip(padding=2)
    draws = plan.draw(sizes, planned_generator)
    assert draws.shape == (13, 3)
    assert draws.dtype == torch.int64
    start = 0
    for size in sizes:
        batch = x[start : start + size]
        expected = random_crop_flip(batch, per_batch_generator, padding=2)
        assert torch.equal(plan.apply(batch, draws[start : start + size]), expected)
        start += size
    assert torch.equal(planned_generator.get_state(), per_batch_generator.get_state())


def test_the_draws_are_offsets_in_range_and_flips() -> None:
    draws = CropFlip(padding=3).draw([400], torch.Generator().manual_seed(0))
    assert draws[:, :2].min() == 0 and draws[:, :2].max() == 6
    assert set(draws[:, 2].tolist()) == {0, 1}


@pytest.mark.parametrize(
    ("shape", "padding", "message"), [((3, 8, 8), 4, "B, C, H, W"), ((1, 3, 8, 8), -1, "padding")]
)
def test_bad_input_is_named(shape: tuple[int, ...], padding: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        random_crop_flip(torch.zeros(shape), torch.Generator(), padding=padding)


def test_planned_augmentation_names_bad_input() -> None:
    with pytest.raises(ValueError, match="padding"):
        CropFlip(padding=True)
    with pytest.raises(ValueError, match="B, C, H, W"):
        CropFlip().apply(torch.zeros(3, 8, 8), torch.zeros(3, 3, dtype=torch.int64))
