import importlib.util
from pathlib import Path

import pytest
import torch

from esper.tolaria.data import DataError, language_splits, load_tinystories

STORIES = [
    f"Story {i}: Once upon a time, a cat named Tim found a ball. Tim was happy." for i in range(40)
]


@pytest.fixture
def story_file(tmp_path: Path) -> Path:
    path = tmp_path / "TinyStories-valid.txt"
    path.write_text("\n<|endoftext|>\n".join(STORIES) + "\n<|endoftext|>\n", encoding="utf-8")
    return path


def test_reads_stories_from_a_local_file_with_the_shared_windowing(story_file: Path) -> None:
    data = load_tinystories(story_file, block_size=16, seed=0)
    expected = language_splits(STORIES, block_size=16, seed=0)
    assert data.kind == "language"
    assert data.num_classes == 256
    assert data.input_shape == (16,)
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(data, name).inputs, getattr(expected, name).inputs)
        assert torch.equal(getattr(data, name).targets, getattr(expected, name).targets)


def test_max_chars_reads_only_the_start_of_the_file(story_file: Path) -> None:
    full = load_tinystories(story_file, block_size=16)
    head = load_tinystories(story_file, block_size=16, max_chars=len(STORIES[0]) * 20)
    assert len(head.train) < 0.6 * len(full.train)


def test_a_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_tinystories(tmp_path / "missing.txt")
    assert str(tmp_path / "missing.txt") in str(error.value)
    assert "huggingface.co/datasets/roneneldan/TinyStories" in str(error.value)


def test_a_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "binary.txt"
    path.write_bytes(b"\xff\xfe\x00 not text")
    with pytest.raises(DataError, match=r"binary\.txt"):
        load_tinystories(path)


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed")
def test_no_path_without_datasets_says_what_to_install() -> None:
    with pytest.raises(DataError, match=r"esper\[text\]"):
        load_tinystories(None)
