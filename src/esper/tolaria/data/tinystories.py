"""The `tinystories` task: the real TinyStories text (Eldan & Li, 2023), byte-level tokens.

Reads a local text file in the released format (stories separated by `<|endoftext|>` lines), or
the `roneneldan/TinyStories` dataset through the `datasets` library when asked (the `text` extra).
"""

from __future__ import annotations

from pathlib import Path

from esper.tolaria.data.splits import DataError, DataSplits
from esper.tolaria.data.stories import language_splits

END_OF_TEXT = "<|endoftext|>"
HF_DATASET = "roneneldan/TinyStories"


def load_tinystories(
    path: str | Path | None,
    block_size: int = 128,
    max_chars: int | None = None,
    seed: int = 0,
) -> DataSplits:
    """TinyStories as byte windows, split 80/10/10 by story like `load_stories`.

    Args:
        path: a TinyStories text file (e.g. TinyStories-valid.txt); None loads `HF_DATASET`
            through the `datasets` library, which downloads it.
        block_size: tokens per input window.
        max_chars: read at most this many characters (the full train file is about 1.9 GB).
        seed: fixes which stories go to which split.

    Returns:
        Inputs and targets (N, block_size) int64, vocabulary 256.
    """
    if max_chars is not None and (isinstance(max_chars, bool) or max_chars < 1):
        raise DataError(f"max_chars must be an integer >= 1 or None, got {max_chars!r}")
    stories = _read_file(Path(path), max_chars) if path is not None else _read_hub(max_chars)
    if not stories:
        raise DataError(f"no stories found in {path or HF_DATASET}")
    return language_splits(stories, block_size, seed)


def _read_file(path: Path, max_chars: int | None) -> list[str]:
    if not path.is_file():
        raise DataError(
            f"TinyStories text file not found: {path}. Download TinyStories-valid.txt or "
            f"TinyStories-train.txt from https://huggingface.co/datasets/{HF_DATASET} and pass its "
            "path, or install the `text` extra (pip install 'esper[text]') and pass no path."
        )
    try:
        with path.open(encoding="utf-8") as file:
            text = file.read(-1 if max_chars is None else max_chars)
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text: {error}") from error
    return [story.strip() for story in text.split(END_OF_TEXT) if story.strip()]


def _read_hub(max_chars: int | None) -> list[str]:
    try:
        import datasets  # optional: the `text` extra
    except ImportError as error:
        raise DataError(
            "no TinyStories path given and the `datasets` library is not installed: pass the path "
            f"of a TinyStories text file (https://huggingface.co/datasets/{HF_DATASET}) or "
            "install the `text` extra (pip install 'esper[text]')"
        ) from error
    stories: list[str] = []
    n_chars = 0
    try:
        for record in datasets.load_dataset(HF_DATASET, split="train", streaming=True):
            story = record["text"].strip()
            if max_chars is not None and n_chars + len(story) > max_chars:
                break
            stories.append(story)
            n_chars += len(story)
    except Exception as error:  # network, cache or schema trouble from the hub
        raise DataError(f"loading {HF_DATASET} through `datasets` failed: {error}") from error
    return stories
