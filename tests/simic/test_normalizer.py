"""RunningNormalizer: Chan's parallel merge equals the statistics of all samples at once."""

from __future__ import annotations

import numpy as np
import pytest

from esper.simic.normalizer import RunningNormalizer


def _batches(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # Uneven sizes (1 included), shifted and scaled differently per dimension.
    sizes = (1, 7, 30, 2, 13)
    return [rng.normal([3.0, -50.0, 0.0], [0.1, 20.0, 1.0], size=(n, 3)) for n in sizes]


def test_merged_batches_equal_numpy_over_the_concatenation() -> None:
    normalizer = RunningNormalizer((3,))
    batches = _batches()
    for batch in batches:
        normalizer.update(batch)
    everything = np.concatenate(batches)
    assert normalizer.count == len(everything)
    np.testing.assert_allclose(normalizer.mean, everything.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(
        normalizer.std, everything.std(axis=0) + normalizer.epsilon, rtol=1e-10
    )


def test_the_merge_order_does_not_matter() -> None:
    forward, backward = RunningNormalizer((3,)), RunningNormalizer((3,))
    batches = _batches(1)
    for batch in batches:
        forward.update(batch)
    for batch in reversed(batches):
        backward.update(batch)
    np.testing.assert_allclose(forward.mean, backward.mean, rtol=1e-12)
    np.testing.assert_allclose(forward.std, backward.std, rtol=1e-10)


def test_unit_scale_until_two_samples() -> None:
    normalizer = RunningNormalizer((2,))
    np.testing.assert_array_equal(normalizer.std, [1.0, 1.0])
    normalizer.update(np.array([[4.0, -2.0]]))
    np.testing.assert_array_equal(normalizer.std, [1.0, 1.0])
    np.testing.assert_array_equal(normalizer.normalize(np.array([5.0, -2.0])), [1.0, 0.0])


def test_normalize_standardizes_and_clips() -> None:
    normalizer = RunningNormalizer((3,), clip=2.0)
    batches = _batches(2)
    for batch in batches:
        normalizer.update(batch)
    everything = np.concatenate(batches)
    z = normalizer.normalize(everything)
    assert z.dtype == np.float32 and z.shape == everything.shape
    inside = np.abs((everything - everything.mean(0)) / everything.std(0)) < 1.9
    np.testing.assert_allclose(
        z[inside], ((everything - everything.mean(0)) / everything.std(0))[inside], atol=1e-5
    )
    far = normalizer.mean + np.array([100.0, -100.0, 0.0]) * normalizer.std
    np.testing.assert_array_equal(normalizer.normalize(far), np.float32([2.0, -2.0, 0.0]))


def test_state_dict_round_trip_is_exact() -> None:
    original = RunningNormalizer((3,))
    for batch in _batches(3)[:3]:
        original.update(batch)
    restored = RunningNormalizer((3,))
    restored.load_state_dict(original.state_dict())
    assert restored.count == original.count
    np.testing.assert_array_equal(restored.mean, original.mean)
    np.testing.assert_array_equal(restored.m2, original.m2)
    # And it goes on exactly as the original does.
    for batch in _batches(3)[3:]:
        original.update(batch)
        restored.update(batch)
    probe = _batches(4)[2]
    np.testing.assert_array_equal(restored.normalize(probe), original.normalize(probe))


def test_a_state_dict_of_another_shape_is_refused() -> None:
    small = RunningNormalizer((3,))
    small.update(_batches()[2])
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        RunningNormalizer((4,)).load_state_dict(small.state_dict())


def test_a_batch_of_another_shape_is_refused() -> None:
    """A (2, 6) batch for a (3,)-normalizer must not be silently read as four 3-vectors."""
    normalizer = RunningNormalizer((3,))
    with pytest.raises(ValueError, match="shape"):
        normalizer.update(np.zeros((2, 6)))
    assert normalizer.count == 0


def test_a_dimension_that_never_varied_is_centred_not_blown_up() -> None:
    normalizer = RunningNormalizer((2,))
    normalizer.update(np.array([[0.5, 0.0], [0.5, 2.0], [0.5, 4.0]]))  # first dim: one value

    np.testing.assert_array_equal(normalizer.std[:1], [1.0])
    # a value the constant dimension never took moves it by its own amount, not to the clip
    np.testing.assert_allclose(normalizer.normalize(np.array([1.5, 2.0])), [1.0, 0.0], atol=1e-6)
