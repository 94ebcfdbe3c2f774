"""Settings the config accepts but this version cannot honour are refused, never ignored."""

from pathlib import Path

import pytest

from esper.cli.main import main


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--task", "digits", "--ab", "shaped,simplified"], "ab"),
    ],
)
def test_unbuilt_settings_are_refused_before_a_run_directory_exists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    status = main(["train", "ppo", *flags, "--runs-dir", str(tmp_path), "--no-live"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and err[0].startswith("esper: error: not available yet:")
    assert named in err[0]
    assert list(tmp_path.iterdir()) == []
