"""The examples run as their docstrings say, from the project root, and grow what they claim
(issue 14, acceptance 3). Each takes a few seconds here; the limit is the issue's minute."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("example", "slots"),
    [
        ("tabular_mlp.py", "slots: r0c0 dense, r0c1 dense"),
        ("sequence_conv1d.py", "slots: r0c0 conv1d, r0c1 conv1d, r0c2 dense"),
    ],
)
def test_an_example_runs_as_documented(example: str, slots: str) -> None:
    done = subprocess.run(
        [sys.executable, f"examples/{example}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == slots
    episodes = [line for line in lines if re.match(r"(static|heuristic) +seed \d: test", line)]
    assert len(episodes) == 4, done.stdout  # two seeds each
    assert all("0 parameters added" in line for line in episodes if line.startswith("static"))


@pytest.mark.parametrize(
    "spec",
    ["examples/tabular_mlp.py:breast_cancer", "examples/sequence_conv1d.py:sequential_digits"],
)
def test_an_example_task_is_what_the_cli_takes(spec: str) -> None:
    from esper import get_task
    from esper.kasmina import MorphogeneticModel
    from esper.tolaria import DataOptions

    task = get_task(str(ROOT / spec))
    model = MorphogeneticModel(task.build_host(task.load(DataOptions())))
    assert model.slot_ids and model.blueprints
