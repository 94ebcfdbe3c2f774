"""The embedded `stories` task: a deterministic story grammar, byte-level tokens.

The grammar keeps a story's hero, friend and object consistent from sentence to sentence, so a
model can gain by looking back further than the previous few bytes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from esper.tolaria.data.splits import DataError, DataSplits, Split

VOCAB_SIZE = 256  # byte-level tokens
STORY_SEPARATOR = "\n\n"
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test, by story

_NAMES = ("Pip", "Lily", "Tom", "Mia", "Ben", "Sue", "Max", "Zoe", "Sam", "Ada", "Leo", "Ivy")
_ANIMALS = ("fox", "cat", "dog", "bunny", "bird", "bear", "duck", "mouse", "frog", "owl")
_TRAITS = ("little", "brave", "shy", "happy", "curious", "sleepy", "kind", "silly", "quiet")
_PLACES = (
    "in the woods",
    "by the river",
    "on a big hill",
    "near the sea",
    "in a small town",
    "under an old tree",
    "in the garden",
    "at the farm",
)
_OBJECTS = ("ball", "kite", "box", "hat", "boat", "drum", "key", "book", "shell", "cup")
_COLORS = ("red", "blue", "green", "yellow", "shiny", "tiny", "striped", "golden")
_FOUND_AT = ("behind a rock", "in the grass", "under the bed", "in the mud", "next to a log")
_PLAYS = ("played with", "looked at", "carried", "shared", "took good care of")
_PROBLEMS = (
    ("was stuck in a tree", "climbed up and got it down"),
    ("fell into the water", "used a long stick to pull it out"),
    ("was broken", "fixed it with some string"),
    ("was lost", "looked everywhere and found it"),
    ("was too heavy to lift", "helped carry it home"),
)
_FEELINGS = ("sad", "worried", "upset", "scared")
_JOYS = ("happy", "proud", "glad", "excited")
_SAYINGS = (
    "Don't worry, I will help you!",
    "We can do it together.",
    "Let's try one more time.",
    "I know what to do!",
)
_ENDINGS = (
    "From that day on, {hero} and {friend} were best friends.",
    "That night, {hero} went to sleep with a big smile.",
    "{hero} learned that friends make everything better.",
    "And {hero} kept the {object} safe forever.",
)


def generate_stories(n_stories: int, seed: int) -> str:
    """`n_stories` stories from the grammar, separated by blank lines; same seed, same text."""
    return STORY_SEPARATOR.join(_story_list(n_stories, seed))


def load_stories(block_size: int = 64, n_stories: int = 2000, seed: int = 0) -> DataSplits:
    """Generated stories as byte-level language modelling windows, split 80/10/10 by story.

    Inputs (N, block_size) int64 and targets (N, block_size) int64, the next byte of each input.
    """
    return language_splits(_story_list(n_stories, seed), block_size, seed)


def language_splits(stories: Sequence[str], block_size: int, seed: int) -> DataSplits:
    """Shuffle `stories` (seeded), split them 80/10/10 and cut each split into byte windows.

    Raises DataError when a split is too short for one window of `block_size + 1` bytes.
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise DataError(f"block_size must be an integer >= 1, got {block_size!r}")
    order = list(range(len(stories)))
    random.Random(seed).shuffle(order)
    n_val = round(SPLIT_FRACTIONS[1] * len(stories))
    n_test = round(SPLIT_FRACTIONS[2] * len(stories))
    n_train = len(stories) - n_val - n_test
    bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val)}
    bounds["test"] = (n_train + n_val, len(stories))
    splits = {}
    for name, (start, stop) in bounds.items():
        text = STORY_SEPARATOR.join(stories[i] for i in order[start:stop])
        try:
            splits[name] = byte_windows(text, block_size)
        except DataError as error:
            raise DataError(
                f"{name} split ({stop - start} of {len(stories)} stories): {error}"
            ) from error
    return DataSplits(
        **splits,
        kind="language",
        num_classes=VOCAB_SIZE,
        input_shape=(block_size,),
    )


def byte_windows(text: str, block_size: int) -> Split:
    """UTF-8 bytes of `text` cut into non-overlapping windows of block_size + 1 tokens.

    Returns inputs (N, block_size) int64 and targets (N, block_size) int64 shifted by one token;
    the bytes after the last whole window are dropped.
    """
    data = text.encode("utf-8")
    n_windows = len(data) // (block_size + 1)
    if n_windows == 0:
        raise DataError(
            f"{len(data)} bytes of text is too short for one window of block_size + 1 = "
            f"{block_size + 1} bytes; use more text or a smaller block_size"
        )
    tokens = torch.frombuffer(bytearray(data[: n_windows * (block_size + 1)]), dtype=torch.uint8)
    windows = tokens.long().view(n_windows, block_size + 1)  # (N, block_size + 1)
    return Split(windows[:, :-1].contiguous(), windows[:, 1:].contiguous())


def _story_list(n_stories: int, seed: int) -> list[str]:
    if isinstance(n_stories, bool) or not isinstance(n_stories, int) or n_stories < 1:
        raise DataError(f"n_stories must be an integer >= 1, got {n_stories!r}")
    rng = random.Random(seed)
    return [_story(rng) for _ in range(n_stories)]


def _story(rng: random.Random) -> str:
    hero, friend = rng.sample(_NAMES, 2)
    animal, friend_animal = rng.choice(_ANIMALS), rng.choice(_ANIMALS)
    obj = f"{rng.choice(_COLORS)} {rng.choice(_OBJECTS)}"
    problem, fix = rng.choice(_PROBLEMS)
    sentences = [
        rng.choice(
            (
                f"Once upon a time, there was a {rng.choice(_TRAITS)} {animal} named {hero}.",
                f"{hero} was a {rng.choice(_TRAITS)} {animal} who lived {rng.choice(_PLACES)}.",
            )
        ),
        f"One day, {hero} found a {obj} {rng.choice(_FOUND_AT)}.",
    ]
    if rng.random() < 0.7:
        sentences.append(f"{hero} {rng.choice(_PLAYS)} the {obj} all day.")
    sentences += [
        f"But then the {obj} {problem}.",
        f"{hero} felt {rng.choice(_FEELINGS)}.",
        f'{friend} the {friend_animal} came by and said, "{rng.choice(_SAYINGS)}"',
        f"{friend} {fix}.",
        f'{hero} was {rng.choice(_JOYS)} and said, "Thank you, {friend}!"',
    ]
    if rng.random() < 0.5:
        sentences.append(
            rng.choice(_ENDINGS).format(hero=hero, friend=friend, object=obj.split()[-1])
        )
    return " ".join(sentences)
