import pytest
import torch

from esper.tolaria.data import (
    DataError,
    byte_windows,
    generate_stories,
    language_splits,
    load_stories,
)


def decode(tokens: torch.Tensor) -> str:
    return bytes(tokens.flatten().tolist()).decode("utf-8", errors="replace")


def test_generated_stories_are_deterministic_and_separated_by_blank_lines() -> None:
    text = generate_stories(20, seed=0)
    assert text == generate_stories(20, seed=0)
    assert text != generate_stories(20, seed=1)
    stories = text.split("\n\n")
    assert len(stories) == 20
    assert all(story.endswith((".", '"')) for story in stories)
    assert len(set(stories)) == 20


def test_byte_windows_known_value() -> None:
    split = byte_windows("abcdefg", block_size=2)  # windows "abc", "def"; "g" is dropped
    assert split.inputs.tolist() == [[97, 98], [100, 101]]
    assert split.targets.tolist() == [[98, 99], [101, 102]]
    assert split.inputs.dtype == split.targets.dtype == torch.int64


def test_byte_windows_rejects_text_shorter_than_one_window() -> None:
    with pytest.raises(DataError, match="block_size"):
        byte_windows("abc", block_size=3)


def test_load_stories_shapes_and_next_token_targets() -> None:
    data = load_stories(block_size=32, n_stories=200, seed=0)
    assert data.kind == "language"
    assert data.num_classes == 256
    assert data.input_shape == (32,)
    for split in (data.train, data.val, data.test):
        assert split.inputs.shape == split.targets.shape == (len(split), 32)
        assert torch.equal(split.inputs[:, 1:], split.targets[:, :-1])
    assert "One day, " in decode(data.train.inputs)


def test_load_stories_is_identical_across_calls_with_the_same_seed() -> None:
    first, again, other = load_stories(seed=0), load_stories(seed=0), load_stories(seed=1)
    assert torch.equal(first.train.inputs, again.train.inputs)
    assert torch.equal(first.test.targets, again.test.targets)
    assert not torch.equal(first.val.inputs[:10], other.val.inputs[:10])


def test_stories_are_split_80_10_10_without_sharing_a_story() -> None:
    stories = [f"<story {i:03d}>" + "x" * 50 for i in range(100)]
    data = language_splits(stories, block_size=15, seed=0)
    ids = {}
    for name in ("train", "val", "test"):
        text = decode(
            torch.cat([getattr(data, name).inputs, getattr(data, name).targets[:, -1:]], 1)
        )
        ids[name] = {int(part[:3]) for part in text.split("<story ")[1:] if part[:3].isdigit()}
    assert len(ids["train"] | ids["val"] | ids["test"]) >= 98  # a tail may miss the last window
    assert not ids["train"] & ids["val"]
    assert not ids["train"] & ids["test"]
    assert not ids["val"] & ids["test"]
    assert len(data.train) == pytest.approx(8 * len(data.val), rel=0.05)
    assert len(data.val) == pytest.approx(len(data.test), rel=0.05)


def test_a_split_too_short_for_a_window_is_named() -> None:
    with pytest.raises(DataError, match="val split"):
        load_stories(block_size=4096, n_stories=20)


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"block_size": 0}, "block_size"), ({"n_stories": 0}, "n_stories")]
)
def test_bad_arguments_are_named(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(DataError, match=message):
        load_stories(**kwargs)
