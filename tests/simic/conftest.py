"""Shared fixtures for simic tests: the digits data, loaded once per session (the torch thread
count comes from tests/conftest.py)."""

from __future__ import annotations

import pytest

from esper.tolaria import DataOptions, get_task
from esper.tolaria.data import DataSplits


@pytest.fixture(scope="session")
def digits() -> DataSplits:
    return get_task("digits").load(DataOptions())
