"""`benchmarks/throughput.py` runs end to end at tiny settings (a smoke test: its figures are
measured by hand, never asserted). Its pairs check themselves that both trainers end with the
same policy, which is what lets their rounds pair up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "throughput.py"


def test_a_process_pair_prints_both_rows() -> None:
    command = [sys.executable, str(SCRIPT), "--envs", "1", "--backends", "process", "--rounds", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|") for line in done.stdout.splitlines() if line.count("|") == 4]
    by_backend = {row[0].split()[0]: row for row in rows[1:]}
    assert set(by_backend) == {"local", "process"}
    assert "(n=2)" in by_backend["local"][1]  # the local rounds of the one pair
    assert "(n=2)" in by_backend["process"][1] and "(n=2)" in by_backend["process"][2]
