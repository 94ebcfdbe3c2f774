"""A short run of benchmarks/fuzz_cli.py: random configs, flags and damaged checkpoints end in
success or one error line with nothing left behind (the full run: 5,000 cases, see its doc)."""

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "fuzz_cli.py"


def test_a_short_fuzz_run_finds_no_failure() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cases", "80", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=SCRIPT.parent,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "0 failures in 80 cases" in done.stdout
