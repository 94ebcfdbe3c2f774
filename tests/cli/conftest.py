"""Shared fixtures for CLI tests."""

from collections.abc import Callable

import pytest

from esper.cli.main import main

RunCli = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> RunCli:
    """Run `esper argv` in-process: (exit status, stdout, stderr); argparse errors exit through
    SystemExit and are returned as their status."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
