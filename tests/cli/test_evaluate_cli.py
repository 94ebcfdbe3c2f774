"""`esper evaluate`: controllers on the same held-out seeds, results file, one-line errors."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from esper.cli.evaluate import add_evaluate_parser
from esper.cli.main import main
from esper.simic.environment import MorphogeneticEnv
from esper.simic.trainer import TRAINING_SEED_LIMIT
from esper.tolaria import TASKS, DataOptions
from esper.tolaria.data import DataSplits, Split

RunCli = Callable[[list[str]], tuple[int, str, str]]  # the `cli` fixture (tests/cli/conftest.py)

TRAIN_SUBSET = 200  # of digits' training samples, in the checkpoint's config
ALL_DATA_OPTIONS = frozenset({"data_dir", "train_subset", "download"})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short PPO run on digits with train_subset=TRAIN_SUBSET, shared by the tests that
    evaluate a checkpoint (digits is embedded and refuses data options: here it accepts them,
    and its loader still ignores them, so training is unaffected)."""
    runs = tmp_path_factory.mktemp("runs")
    train = ["train", "ppo", "--task", "digits", "--rounds", "1", "--envs", "2"]
    train += ["--episode-length", "3", "--train-subset", str(TRAIN_SUBSET)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(TASKS, "digits", replace(TASKS["digits"], reads=ALL_DATA_OPTIONS))
        assert main([*train, "--runs-dir", str(runs), "--no-live"]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_evaluate_writes_paired_results(tmp_path: Path, cli: RunCli) -> None:
    out = tmp_path / "results.json"
    argv = ["evaluate", "--task", "digits", "--controllers", "static,heuristic", "--seeds", "2"]

    code, stdout, err = cli([*argv, "--episode-length", "3", "--out", str(out)])

    assert code == 0, err
    data = json.loads(out.read_text())
    assert (data["task"], data["episode_length"]) == ("digits", 3)
    assert [c["label"] for c in data["controllers"]] == ["static", "heuristic"]
    assert len(data["seeds"]) == 2 and min(data["seeds"]) >= TRAINING_SEED_LIMIT
    episode_seeds = [(e["controller"], e["seed"]) for e in data["episodes"]]
    assert episode_seeds == [(c, s) for c in ("static", "heuristic") for s in data["seeds"]]
    assert "heuristic - static" in stdout
    assert "excludes 0" in stdout


def test_evaluate_on_worker_processes_writes_the_same_results(tmp_path: Path, cli: RunCli) -> None:
    argv = ["evaluate", "--controllers", "static,random,heuristic", "--seeds", "2"]
    results = []
    for backend in ("local", "process"):
        out = tmp_path / f"{backend}.json"
        code, _, err = cli(
            [*argv, "--episode-length", "3", "--backend", backend, "--out", str(out)]
        )
        assert code == 0, err
        data = json.loads(out.read_text())
        for entry in (*data["controllers"], *data["episodes"]):
            entry.pop("wall_time_s")
        results.append(data)
    assert results[0] == results[1]


def test_a_trained_ppo_checkpoint_is_evaluated_in_its_own_setting(
    trained_run: Path, tmp_path: Path, cli: RunCli
) -> None:
    out = tmp_path / "results.json"

    argv = ["evaluate", "--controllers", f"static,ppo:{trained_run}", "--seeds", "2"]
    code, stdout, err = cli([*argv, "--out", str(out)])

    assert code == 0, err
    data = json.loads(out.read_text())
    assert data["episode_length"] == 3  # the checkpoint's, not the task's 25
    assert [c["label"] for c in data["controllers"]] == ["static", "ppo"]
    assert [(c["minuend"], c["subtrahend"]) for c in data["comparisons"]] == [("ppo", "static")] * 2
    assert "ppo - static" in stdout

    # On another task (a transformer host) the checkpoint is a transfer, played on that task's
    # own host (issue 15); one short episode shows it.
    argv = ["evaluate", "--task", "stories", "--controllers", f"ppo:{trained_run}"]
    code, stdout, err = cli([*argv, "--seeds", "1", "--episode-length", "1"])
    assert code == 0, err
    assert "a transfer: trained on digits, never on this task" in " ".join(stdout.split())


@pytest.fixture
def data_seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """What the digits task is asked to load and the training split every env then holds.

    Digits is embedded and ignores the data options; here its loader honours train_subset, as
    cifar10's does, so that the options' way to each env can be seen."""
    seen: dict[str, list[Any]] = {"options": [], "train_sizes": []}
    digits = TASKS["digits"]

    def load(options: DataOptions) -> DataSplits:
        seen["options"].append(options)
        data = digits.load(options)
        n = options.train_subset or len(data.train)
        return replace(data, train=Split(data.train.inputs[:n], data.train.targets[:n]))

    monkeypatch.setitem(TASKS, "digits", replace(digits, load=load, reads=ALL_DATA_OPTIONS))
    build_env = MorphogeneticEnv.__init__

    def recording_init(env: MorphogeneticEnv, *args: Any, **kwargs: Any) -> None:
        build_env(env, *args, **kwargs)
        seen["train_sizes"].append(len(env.data.train))

    monkeypatch.setattr(MorphogeneticEnv, "__init__", recording_init)
    return seen


def test_the_checkpoints_data_options_reach_every_env(
    trained_run: Path, cli: RunCli, data_seen: dict[str, list[Any]]
) -> None:
    argv = ["evaluate", "--controllers", f"static,ppo:{trained_run}", "--seeds", "1"]

    code, _, err = cli(argv)

    assert code == 0, err
    assert data_seen["options"] == [DataOptions(train_subset=TRAIN_SUBSET)]
    assert data_seen["train_sizes"] == [TRAIN_SUBSET, TRAIN_SUBSET]  # static's env, ppo's env


def test_data_flags_override_the_checkpoints_data_options(
    trained_run: Path, tmp_path: Path, cli: RunCli, data_seen: dict[str, list[Any]]
) -> None:
    argv = ["evaluate", "--controllers", f"ppo:{trained_run}", "--seeds", "1"]

    code, _, err = cli([*argv, "--data-dir", str(tmp_path), "--train-subset", "150"])

    assert code == 0, err
    assert data_seen["options"] == [DataOptions(tmp_path, 150)]  # the folder moved
    assert data_seen["train_sizes"] == [150]


def evaluate_parser() -> argparse.ArgumentParser:
    commands = argparse.ArgumentParser().add_subparsers()
    add_evaluate_parser(commands)
    parser: argparse.ArgumentParser = commands.choices["evaluate"]
    return parser


def test_help_prints_percent_signs_once() -> None:
    text = evaluate_parser().format_help()

    assert "95% " in text and "%%" not in text


def test_every_flag_says_what_it_means_and_its_default() -> None:
    actions = [a for a in evaluate_parser()._actions if not isinstance(a, argparse._HelpAction)]

    assert {"--controllers", "--data-dir", "--train-subset", "--download"} <= {
        flag for action in actions for flag in action.option_strings
    }
    for action in actions:
        assert action.help, action.option_strings
        assert action.required or "default" in action.help, action.option_strings


BAD_INPUT = {  # case: (arguments, what the error line must name)
    "unknown controller": (["--controllers", "bogus"], "bogus"),
    "missing checkpoint": (["--controllers", "ppo:/nonexistent"], "/nonexistent"),
    "results format": (["--controllers", "static", "--out", "results.txt"], "results.txt"),
}


@pytest.mark.parametrize(("argv", "named"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_exits_with_one_clear_line(argv: list[str], named: str, cli: RunCli) -> None:
    code, stdout, err = cli(["evaluate", *argv, "--seeds", "2"])

    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("esper: error:")
    assert named in line
    assert stdout == ""  # refused before any episode ran


def test_a_price_beside_ppo_checkpoints_holds_for_every_controller(
    trained_run: Path, tmp_path: Path, cli: RunCli
) -> None:
    out = tmp_path / "results.json"
    argv = ["evaluate", "--controllers", f"static,heuristic,ppo:{trained_run}", "--seeds", "2"]

    code, _, err = cli([*argv, "--rent-weight", "4.5", "--out", str(out)])

    assert code == 0, err
    prices = {
        (e["controller"], e["outcome"]["rent_weight"])
        for e in json.loads(out.read_text())["episodes"]
    }
    assert prices == {("static", 4.5), ("heuristic", 4.5), ("ppo", 4.5)}
    # the checkpoint's other rewards stay its own: the price is the only reward setting allowed
    code, _, err = cli([*argv, "--shock-weight", "2"])
    assert code == 2
    assert "drop shock_weight" in err


def test_skip_seeds_starts_later_in_the_held_out_block(tmp_path: Path, cli: RunCli) -> None:
    out = tmp_path / "results.json"
    argv = ["evaluate", "--task", "digits", "--controllers", "static", "--seeds", "2"]

    code, _, err = cli([*argv, "--episode-length", "1", "--skip-seeds", "10", "--out", str(out)])

    assert code == 0, err
    assert json.loads(out.read_text())["seeds"] == [
        TRAINING_SEED_LIMIT + 10,
        TRAINING_SEED_LIMIT + 11,
    ]
    code, _, err = cli([*argv, "--skip-seeds", "-1"])
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith("esper: error: --skip-seeds -1 is outside 0..")


def test_a_budget_beside_ppo_checkpoints_holds_for_every_controller(
    tmp_path: Path, cli: RunCli
) -> None:
    """A policy trained over budgets drawn per episode plays each held-out episode under its
    seed's budget, or every episode under the one budget asked for (and so do the baselines)."""
    runs = tmp_path / "runs"
    train = ["train", "ppo", "--task", "digits", "--rounds", "1", "--envs", "2", "--no-live"]
    train += ["--episode-length", "3", "--param-budgets", "64,400", "--runs-dir", str(runs)]
    code, _, err = cli(train)
    assert code == 0, err
    (run,) = runs.iterdir()
    out = tmp_path / "results.json"
    argv = ["evaluate", "--controllers", f"heuristic,ppo:{run}", "--seeds", "2", "--out", str(out)]

    def budgets() -> set[tuple[str, int, bool]]:
        episodes = json.loads(out.read_text())["episodes"]
        return {
            (e["controller"], e["outcome"]["param_budget"], e["outcome"]["params_added"] <= 64)
            for e in episodes
        }

    code, _, err = cli(argv)
    assert code == 0, err
    drawn = budgets()
    assert {b for _, b, _ in drawn} == {64, 400}  # consecutive held-out seeds cycle
    code, _, err = cli([*argv, "--param-budget", "64"])
    assert code == 0, err
    assert budgets() == {("heuristic", 64, True), ("ppo", 64, True)}
