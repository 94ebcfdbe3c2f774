"""`benchmarks/overhead.py --case cifar` runs end to end at tiny settings (a smoke test: its
figures are measured by hand, never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"


def _rows(*extra: str) -> tuple[list[str], str]:
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--case",
            "cifar",
            "--runs",
            "1",
            "--train",
            "100",
            "--val",
            "50",
            "--blueprints",
            "conv_light",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split(" | ")[0].strip() for line in done.stdout.splitlines() if " s | x " in line]
    return rows, done.stdout


def test_the_cifar_case_prints_every_row() -> None:
    rows, stdout = _rows()
    assert rows == [
        "plain loop, NCHW",
        "plain loop, channels_last",
        *(
            f"esper {form}, {what}"
            for form in ("NCHW", "channels_last")
            for what in ["host alone"] + [f"conv_light@r0c{i} in TRAINING" for i in range(3)]
        ),
    ]
    assert "images: 100 train, 50 validation" in stdout


def test_the_cifar_case_times_each_seed_at_each_shadow_fraction_asked() -> None:
    rows, _ = _rows("--formats", "channels_last", "--shadow-fractions", "1,0.25")
    assert rows == [
        "plain loop, NCHW",
        "plain loop, channels_last",
        "esper channels_last, host alone",
        *(
            f"esper channels_last, conv_light@r0c{i} in TRAINING, shadow {f}"
            for i in range(3)
            for f in ("1", "0.25")
        ),
    ]
