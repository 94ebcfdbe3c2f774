from collections.abc import Sequence

import pytest
import torch

from esper.tolaria.data import CropFlip, PixelNormalization, Split, TensorLoader, random_crop_flip


def make_split(n: int = 10) -> Split:
    inputs = torch.arange(n, dtype=torch.float32).view(n, 1).repeat(1, 3)  # row i is all i
    return Split(inputs, torch.arange(n))


def targets_of(loader: TensorLoader) -> list[int]:
    return [int(t) for _, y in loader for t in y]


def test_batches_cover_every_sample_once_with_inputs_matching_targets() -> None:
    loader = TensorLoader(make_split(10), batch_size=4, shuffle=True, seed=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(targets_of(loader)) == list(range(10))
    for x, y in batches:
        assert torch.equal(x[:, 0].long(), y)


def test_without_shuffle_the_order_is_the_split_order() -> None:
    loader = TensorLoader(make_split(7), batch_size=3, shuffle=False, seed=0)
    assert targets_of(loader) == list(range(7))
    assert loader.num_samples == 7


def test_drop_last_skips_the_partial_batch() -> None:
    loader = TensorLoader(make_split(10), batch_size=4, shuffle=True, seed=0, drop_last=True)
    assert len(loader) == 2
    assert [len(y) for _, y in loader] == [4, 4]


def test_same_seed_same_order_and_independent_of_global_rng() -> None:
    torch.manual_seed(1)
    first = targets_of(TensorLoader(make_split(50), batch_size=8, shuffle=True, seed=3))
    torch.manual_seed(2)
    torch.rand(5)
    second = targets_of(TensorLoader(make_split(50), batch_size=8, shuffle=True, seed=3))
    other_seed = targets_of(TensorLoader(make_split(50), batch_size=8, shuffle=True, seed=4))
    assert first == second
    assert first != other_seed


def test_each_pass_draws_a_new_order() -> None:
    loader = TensorLoader(make_split(50), batch_size=8, shuffle=True, seed=0)
    assert targets_of(loader) != targets_of(loader)


def test_state_dict_round_trip_reproduces_the_next_pass_including_augment() -> None:
    def jitter(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x + torch.rand(x.shape, generator=generator)

    def make() -> TensorLoader:
        return TensorLoader(make_split(20), batch_size=6, shuffle=True, seed=5, augment=jitter)

    original = make()
    list(original)
    state = original.state_dict()
    expected = list(original)

    resumed = make()
    resumed.load_state_dict(state)
    for (x, y), (x_expected, y_expected) in zip(resumed, expected, strict=True):
        assert torch.equal(x, x_expected)
        assert torch.equal(y, y_expected)


def test_augment_receives_each_batch() -> None:
    loader = TensorLoader(
        make_split(5), batch_size=2, shuffle=False, seed=0, augment=lambda x, g: x * 0 - 1
    )
    assert all(torch.all(x == -1) for x, _ in loader)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"seed": -1}, "seed"),
        ({"augment": "flip"}, "augment"),
        ({"batch_size": 11, "drop_last": True}, "drop_last"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"batch_size": 4, "shuffle": True, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        TensorLoader(make_split(10), **arguments)  # type: ignore[arg-type]


def test_load_state_dict_rejects_unknown_keys() -> None:
    loader = TensorLoader(make_split(10), batch_size=4, shuffle=True, seed=0)
    with pytest.raises(ValueError, match="generator_state"):
        loader.load_state_dict({"rng": torch.zeros(1)})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_to_device_preloads_and_batches_stay_there() -> None:
    loader = TensorLoader(make_split(10), batch_size=4, shuffle=True, seed=0).to("cuda")
    assert loader.device.type == "cuda"
    cpu_order = targets_of(TensorLoader(make_split(10), batch_size=4, shuffle=True, seed=0))
    for x, y in loader:
        assert x.device.type == y.device.type == "cuda"
    assert targets_of(TensorLoader(make_split(10), 4, True, 0).to("cuda")) == cpu_order


NORM = PixelNormalization(mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))


def image_split(n: int = 13) -> Split:
    """uint8 images (n, 3, 6, 6) with a normalization; target i is image i."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 6, 6), dtype=torch.uint8, generator=generator)
    return Split(images, torch.arange(n), NORM)


def float_split_normalized_up_front(split: Split) -> Split:
    """The float32 split a loader read before images stayed uint8 (the reference)."""
    mean = torch.tensor(NORM.mean).view(1, 3, 1, 1)
    std = torch.tensor(NORM.std).view(1, 3, 1, 1)
    return Split((split.inputs.float() / 255.0 - mean) / std, split.targets)


def crop_flip_per_batch(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return random_crop_flip(x, generator, padding=2)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("is_augmented", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_uint8_images_with_planned_augmentation_load_as_the_float_split_did(
    shuffle: bool, is_augmented: bool, drop_last: bool, memory_format: torch.memory_format
) -> None:
    """Bitwise, over two passes (13 images in batches of 4: a last batch of 1, or dropped): the
    uint8 split normalized per batch and augmented from a pass's plan, against the float split
    normalized up front and augmented batch by batch (the loader as it was)."""
    options = {"shuffle": shuffle, "seed": 3, "drop_last": drop_last}
    planned = TensorLoader(
        image_split(),
        4,
        augment=CropFlip(padding=2) if is_augmented else None,
        memory_format=memory_format,
        **options,
    )
    reference = TensorLoader(
        float_split_normalized_up_front(image_split()),
        4,
        augment=crop_flip_per_batch if is_augmented else None,
        memory_format=memory_format,
        **options,
    )
    for _ in range(2):
        batches = list(planned)
        expected = list(reference)
        assert len(batches) == len(expected) == (3 if drop_last else 4)
        for (x, y), (x_expected, y_expected) in zip(batches, expected, strict=True):
            assert x.dtype == torch.float32
            assert x.is_contiguous(memory_format=memory_format)
            assert torch.equal(x, x_expected)
            assert torch.equal(y, y_expected)
        assert torch.equal(
            planned.state_dict()["generator_state"], reference.state_dict()["generator_state"]
        )


class RecordingCropFlip:
    """A planned CropFlip that records the batch sizes of each draw and where each batch's
    draws are when applied."""

    def __init__(self) -> None:
        self.crop_flip = CropFlip(padding=1)
        self.drawn: list[list[int]] = []
        self.applied_on: list[torch.device] = []

    def draw(self, batch_sizes: Sequence[int], generator: torch.Generator) -> torch.Tensor:
        self.drawn.append(list(batch_sizes))
        return self.crop_flip.draw(batch_sizes, generator)

    def apply(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        self.applied_on.append(draws.device)
        return self.crop_flip.apply(x, draws)


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [4, 4, 2]), (True, [4, 4])])
def test_a_planned_augmentation_draws_once_per_pass(drop_last: bool, sizes: list[int]) -> None:
    augment = RecordingCropFlip()
    loader = TensorLoader(
        image_split(10), 4, shuffle=True, seed=0, augment=augment, drop_last=drop_last
    )
    for passes in (1, 2):
        assert [len(y) for _, y in loader] == sizes
        assert augment.drawn == [sizes] * passes
    assert augment.applied_on == [torch.device("cpu")] * 2 * len(sizes)


def test_a_planned_pass_resumes_exactly_from_the_state_between_passes() -> None:
    def make() -> TensorLoader:
        return TensorLoader(image_split(), 4, shuffle=True, seed=5, augment=CropFlip(padding=2))

    original = make()
    list(original)
    state = original.state_dict()
    expected = list(original)
    resumed = make()
    resumed.load_state_dict(state)
    for (x, y), (x_expected, y_expected) in zip(resumed, expected, strict=True):
        assert torch.equal(x, x_expected)
        assert torch.equal(y, y_expected)
