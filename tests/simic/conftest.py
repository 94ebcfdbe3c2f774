"""Shared fixtures for simic tests: one torch thread (small hosts run fastest on one; two
threads on two busy cores oversubscribe) and the digits data, loaded once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from esper.tolaria import DataOptions, get_task
from esper.tolaria.data import DataSplits


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    return get_task("digits").load(DataOptions())
