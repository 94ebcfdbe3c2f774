"""`esper train ppo --set KEY=VALUE`: any config setting from the command line, validated."""

import argparse
from collections.abc import Callable

import pytest

from esper.cli.main import build_parser
from esper.cli.train_ppo import resolve_config

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", "ppo", *argv])


def test_set_overrides_the_preset_with_validated_types() -> None:
    config = resolve_config(_args("--set", "rent_weight=1.5", "--set", "update_epochs=2"))
    assert config.rent_weight == 1.5 and config.update_epochs == 2
    assert config.contribution_weight == 0.2  # the rest of the digits preset is kept


def test_set_and_flags_combine() -> None:
    config = resolve_config(_args("--rounds", "3", "--set", "slots=r0c1"))
    assert config.rounds == 3 and config.slots == ("r0c1",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "rent_weight=abc"], "rent_weight"),
        (["--set", "no_such_setting=1"], "no_such_setting: unknown setting"),
        (["--set", "rounds=3", "--rounds", "2"], "--set rounds=... repeats a setting"),
        (["--set", "rent_weight"], "expected KEY=VALUE, got 'rent_weight'"),
        (["--set", "=1"], "expected KEY=VALUE"),
    ],
)
def test_bad_settings_are_one_error_line(cli: RunCli, argv: list[str], message: str) -> None:
    status, _, err = cli(["train", "ppo", "--no-live", *argv])
    lines = err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("esper: error:") and message in lines[0]
