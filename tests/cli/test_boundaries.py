"""Bad input at the command line: one line `esper: error: ...`, exit 2, no traceback, and
nothing left behind (issue 9: each case here printed a traceback or left a run folder)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from esper.cli.main import main
from esper.nissa import CHECKPOINTS_DIR, CONFIG_FILE
from esper.simic import checkpoint as checkpoint_module
from esper.simic.trainer import VectorizedTrainer

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)
TINY = ["--envs", "1", "--episode-length", "2", "--rounds", "1", "--no-live"]


def one_error_line(err: str, *named: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("esper: error:"), lines[0]
    assert "Traceback" not in err
    for text in named:
        assert text in lines[0], (text, lines[0])
    return lines[0]


def refused(cli: RunCli, argv: list[str], runs: Path, *named: str) -> str:
    code, _, err = cli([*argv, "--runs-dir", str(runs)])
    assert code == 2, err
    line = one_error_line(err, *named)
    assert not runs.exists() or list(runs.iterdir()) == [], "a refused command left a run folder"
    return line


@pytest.mark.parametrize("command", [["train", "ppo"], ["train", "heuristic"]])
@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--name", "n" * 300], "too long"),
        (["--name", "../escape"], "invalid run name"),
        (["--task", "digitz"], "unknown task 'digitz'"),
        (["--seed", str(10**30)], "seed"),
        (["--threads", "0"], "threads"),
        (["--episode-length", "0"], "episode_length"),
        (["--set", "rent_weight=Infinity"], "rent_weight: Input should be a finite number"),
        (["--task", "cifar10"], "--data-dir"),
        (["--slots", "r9c9"], "r9c9"),
        (["--data-dir", "/nonexistent/folder"], "/nonexistent/folder"),
    ],
)
def test_bad_settings_leave_nothing_behind(
    cli: RunCli, tmp_path: Path, command: list[str], flags: list[str], named: str
) -> None:
    refused(cli, [*command, *flags, "--no-live"], tmp_path / "runs", named)


@pytest.mark.parametrize(
    "command", [["train", "ppo"], ["train", "heuristic"], ["evaluate", "--controllers", "static"]]
)
@pytest.mark.parametrize(
    ("device", "cuda_devices", "named"),
    [
        ("cuda", 0, "device 'cuda' requested but CUDA is not available here"),
        ("cuda:3", 1, "device 'cuda:3': this machine has 1 CUDA device(s)"),
    ],
)
def test_a_cuda_device_this_machine_lacks_is_one_clear_error(
    cli: RunCli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    device: str,
    cuda_devices: int,
    named: str,
) -> None:
    """The machine's CUDA is faked (none, or one device), so this runs with or without a GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda_devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda_devices)
    runs = ["--runs-dir", str(tmp_path / "runs"), "--no-live"] if command[0] == "train" else []
    code, _, err = cli([*command, "--device", device, *runs])
    assert code == 2, err
    one_error_line(err, named)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--lr", "inf"], "lr: Input should be a finite number"), (["--rounds", str(10**30)], "")],
)
def test_absurd_ppo_settings_are_refused(
    cli: RunCli, tmp_path: Path, flags: list[str], named: str
) -> None:
    refused(cli, ["train", "ppo", *flags, "--no-live"], tmp_path / "runs", named)


def test_a_runs_folder_that_is_a_file(cli: RunCli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.write_text("not a folder")
    code, _, err = cli(["train", "heuristic", "--episodes", "1", "--runs-dir", str(runs)])
    assert code == 2
    one_error_line(err, "is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_runs_folder(cli: RunCli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(0o500)
    try:
        code, _, err = cli(["train", "heuristic", "--episodes", "1", "--runs-dir", str(runs)])
    finally:
        runs.chmod(0o700)
    assert code == 2
    one_error_line(err, "cannot write")


def test_a_read_only_runs_folder_even_as_root(
    cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write probe's refusal, as the OS reports it to a non-root user."""

    def no_permission(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    runs = tmp_path / "runs"
    runs.mkdir()
    monkeypatch.setattr(Path, "mkdir", no_permission)
    code, _, err = cli(["train", "heuristic", "--episodes", "1", "--runs-dir", str(runs)])
    assert code == 2
    one_error_line(err, "cannot write", "Permission denied")


def test_an_exact_run_name_gives_that_folder_and_is_not_reused(cli: RunCli, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    argv = ["train", "heuristic", "--episodes", "1", "--episode-length", "2", "--no-live"]
    code, _, err = cli([*argv, "--name", "pricier", "--runs-dir", str(runs)])
    assert code == 0, err
    assert [p.name for p in runs.iterdir()] == ["pricier"]
    code, _, err = cli([*argv, "--name", "pricier", "--runs-dir", str(runs)])
    assert code == 2
    one_error_line(err, "exists", "--resume")


def test_a_full_disk_during_a_checkpoint_write(
    cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(path: object, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint_module, "atomic_write_bytes", full_disk)
    code, _, err = cli(["train", "ppo", *TINY, "--runs-dir", str(tmp_path / "runs")])
    assert code == 2
    one_error_line(err, "No space left on device", "latest.pt")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs = tmp_path_factory.mktemp("trained")
    assert main(["train", "ppo", *TINY, "--name", "r", "--runs-dir", str(runs)]) == 0
    return runs / "r"


def test_a_checkpoint_with_a_wrong_tensor_shape_is_refused_on_resume(
    cli: RunCli, trained: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "r"
    shutil.copytree(trained, run_dir)
    path = run_dir / CHECKPOINTS_DIR / "latest.pt"
    payload = checkpoint_module.read_checkpoint(path)
    name = next(iter(payload["trainer"]["network"]))
    payload["trainer"]["network"][name] = torch.zeros(3, 3)
    checkpoint_module.save_checkpoint(path, payload["trainer"], payload["config"])
    code, _, err = cli(["train", "ppo", "--resume", str(run_dir), "--rounds", "2", "--no-live"])
    assert code == 2
    one_error_line(err, str(path), "does not fit")


def test_a_resume_with_other_threads_is_refused(cli: RunCli, trained: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    shutil.copytree(trained, run_dir)
    code, _, err = cli(["train", "ppo", "--resume", str(run_dir), "--threads", "2", "--no-live"])
    assert code == 2
    one_error_line(err, "threads=2", "run has 1")


def test_a_resume_after_a_crash_between_config_and_checkpoint(
    cli: RunCli, trained: Path, tmp_path: Path
) -> None:
    """A resume with more rounds writes config.json first; if it dies before its first
    checkpoint, the run must still resume (it was refused for good)."""
    run_dir = tmp_path / "r"
    shutil.copytree(trained, run_dir)
    config = json.loads((run_dir / CONFIG_FILE).read_text())
    (run_dir / CONFIG_FILE).write_text(json.dumps({**config, "rounds": 7}))
    code, _, err = cli(["train", "ppo", "--resume", str(run_dir), "--rounds", "2", "--no-live"])
    assert code == 0, err


def test_python_dash_m_esper_and_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "esper", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0 and done.stdout.startswith("esper "), done.stderr


def test_a_diverged_policy_stops_the_run_before_it_is_checkpointed(
    cli: RunCli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rent_weight: Infinity` once trained and saved an all-NaN policy without a word."""
    real_round = VectorizedTrainer.run_round

    def diverging_round(self: VectorizedTrainer) -> object:
        summary = real_round(self)
        with torch.no_grad():
            next(self.network.parameters()).fill_(float("nan"))
        return summary

    monkeypatch.setattr(VectorizedTrainer, "run_round", diverging_round)
    runs = tmp_path / "runs"
    code, _, err = cli(["train", "ppo", *TINY, "--name", "d", "--runs-dir", str(runs)])
    assert code == 2
    one_error_line(err, "round 0: the policy diverged", "global_encoder.0.0.weight")
    # The checkpoint left is the untrained round-0 one, which the run wrote before training.
    kept = checkpoint_module.read_checkpoint(runs / "d" / CHECKPOINTS_DIR / "latest.pt")
    assert kept["trainer"]["round"] == 0
    assert (runs / "d" / "events.jsonl").exists()  # the run had started: its events are kept


# -- found by reviewing this change (each failed before its fix) --------------------------------


def test_none_clears_a_setting_from_flags_and_set(tmp_path: Path) -> None:
    """`--target-kl none` was dropped: the preset's 0.015 stayed, so early stopping could not be
    turned off from the command line."""
    from esper.cli.main import build_parser
    from esper.cli.train_ppo import resolve_config

    def config(*argv: str) -> object:
        return resolve_config(build_parser().parse_args(["train", "ppo", *argv]))

    assert config("--target-kl", "none").target_kl is None  # type: ignore[attr-defined]
    assert config("--set", "target_kl=none").target_kl is None  # type: ignore[attr-defined]
    assert config("--minibatch-envs", "none").minibatch_envs is None  # type: ignore[attr-defined]


def test_flags_must_be_given_in_full(cli: RunCli) -> None:
    """`evaluate --seed 3` silently meant `--seeds 3`."""
    code, _, err = cli(["evaluate", "--controllers", "static", "--seed", "3"])
    assert code == 2
    one_error_line(err, "unrecognized arguments: --seed")


def test_an_embedded_task_refuses_data_options_it_would_ignore(cli: RunCli, tmp_path: Path) -> None:
    """`--train-subset 100` on digits trained on all 1,079 samples and recorded 100."""
    refused(
        cli,
        ["train", "ppo", "--train-subset", "100", "--no-live"],
        tmp_path / "runs",
        "task digits does not use train_subset",
    )
    config = tmp_path / "baseline.yaml"
    config.write_text("train_subset: 100\n")
    code, _, err = cli(["evaluate", "--controllers", "static", "--config", str(config)])
    assert code == 2  # a baseline evaluation reads the file's data options too
    one_error_line(err, "task digits does not use train_subset")


def test_a_setting_of_another_command_is_named_as_such(cli: RunCli, tmp_path: Path) -> None:
    line = refused(cli, ["train", "heuristic", "--set", "rounds=5"], tmp_path / "runs")
    assert "rounds: unknown setting (a `train ppo` setting; this command does not use it)" in line


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("rounds: " + "9" * 5000 + "\n", "invalid YAML"),
        (
            "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
            "rounds: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
            "rounds: Input should be a valid integer",
        ),
    ],
)
def test_hostile_config_files_end_in_one_line_quickly(
    cli: RunCli, tmp_path: Path, text: str, named: str
) -> None:
    config = tmp_path / "hostile.yaml"
    config.write_text(text)
    line = refused(cli, ["train", "ppo", "--config", str(config)], tmp_path / "runs", named)
    assert len(line) < 2000


def test_counts_have_upper_bounds(cli: RunCli, tmp_path: Path) -> None:
    refused(cli, ["train", "heuristic", "--episodes", str(10**9)], tmp_path / "runs", "episodes")
    code, _, err = cli(["evaluate", "--controllers", "static", "--seeds", str(10**6)])
    assert code == 2
    one_error_line(err, "--seeds 1000000 is more than 100,000")


def test_a_resume_below_the_rounds_done_is_refused(
    cli: RunCli, trained: Path, tmp_path: Path
) -> None:
    """It rewrote config.json to the lower count, trained nothing and exited 0."""
    run_dir = tmp_path / "r"
    shutil.copytree(trained, run_dir)
    resume = ["train", "ppo", "--resume", str(run_dir), "--no-live"]
    assert cli([*resume, "--rounds", "2"])[0] == 0
    before = (run_dir / CONFIG_FILE).read_bytes()
    code, _, err = cli([*resume, "--rounds", "1"])
    assert code == 2
    one_error_line(err, "--rounds 1 is below the 2 rounds done")
    code, _, err = cli([*resume, "--name", "x"])
    assert code == 2
    one_error_line(err, "--name")
    assert (run_dir / CONFIG_FILE).read_bytes() == before
