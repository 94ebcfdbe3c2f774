"""`esper train ppo --ab` (issue 13, item 1, acceptance 1): arms in lockstep on the same env
seeds, each with its own policy, events, round lines and checkpoint, and a comparison at the
end. Kill and resume: tests/cli/test_crash_resume.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from esper.cli.main import main
from esper.nissa import CHECKPOINTS_DIR, EVENTS_FILE, read_events
from esper.simic.checkpoint import ARMS_DIR, LATEST, read_checkpoint

ACCEPTANCE = [
    "train", "ppo", "--task", "digits", "--ab", "reward_mode=shaped,reward_mode=simplified",
    "--rounds", "3", "--envs", "2", "--episode-length", "8", "--no-live",
]  # fmt: skip
ARMS = ("reward_mode=shaped", "reward_mode=simplified")


def test_the_acceptance_command_trains_both_arms_and_compares_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*ACCEPTANCE, "--runs-dir", str(tmp_path), "--name", "ab"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "ab"
    assert "Against reward_mode=shaped" in out and "paired (6 seeds)" in out
    assert " on return" in out  # the verdict: a winner, or none
    for arm in ("reward_mode=sha~: H ", "reward_mode=sim~: H "):
        assert arm in out  # its round lines name it
    events = read_events(run / EVENTS_FILE)
    rounds = [(e["group"], e["round"]) for e in events if e["type"] == "round"]
    assert sorted(rounds) == sorted((arm, r) for arm in ARMS for r in range(3))
    seeds = {
        arm: [e["payload"]["seed"] for e in events if e["type"] == "episode" and e["group"] == arm]
        for arm in ARMS
    }
    assert seeds[ARMS[0]] == seeds[ARMS[1]] and len(seeds[ARMS[0]]) == 6  # paired design
    assert {e["group"] for e in events if e["type"] == "epoch"} == set(ARMS)

    combined = read_checkpoint(run / CHECKPOINTS_DIR / LATEST)
    assert list(combined["trainer"]["arms"]) == list(ARMS)
    assert combined["config"]["ab"] == list(ARMS)
    networks = []
    for arm in ARMS:
        own = read_checkpoint(run / CHECKPOINTS_DIR / ARMS_DIR / f"{arm}.pt")
        assert own["config"]["ab"] is None and own["config"]["reward_mode"] == arm.split("=")[1]
        assert own["trainer"]["round"] == 3
        networks.append(own["trainer"]["network"])
    first = next(iter(networks[0]))
    assert not torch.equal(networks[0][first], networks[1][first])  # seeded by their names


def test_compare_on_an_ab_run_compares_its_arms(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*ACCEPTANCE[:6], "--rounds", "1", "--envs", "2", "--episode-length", "3"]
    assert main([*argv, "--no-live", "--quiet", "--runs-dir", str(tmp_path), "--name", "ab"]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "ab")]) == 0
    assert "ab/reward_mode=simplified - ab/reward_mode=shaped" in capsys.readouterr().out
    # evaluate takes an arm, and says how to name one
    assert main(["evaluate", "--controllers", f"static,ppo:{tmp_path / 'ab'}"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "A/B run of 2 arms" in line and "arms/ARM.pt" in line and "reward_mode=shaped" in line
    arms = tmp_path / "ab" / "checkpoints" / "arms"
    both = f"ppo:{arms / 'reward_mode=shaped.pt'},ppo:{arms / 'reward_mode=simplified.pt'}"
    argv = ["evaluate", "--controllers", f"static,{both}", "--seeds", "2", "--quiet"]
    assert main(argv) == 0  # two arms of one run: labelled RUN/ARM, not both "shaped.pt"
    assert "ppo:ab/reward_mode=simplified" in capsys.readouterr().out


def test_an_ab_run_without_events_says_why_it_shows_no_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --telemetry off the run trained, then failed (exit 2) reading its empty log."""
    argv = [*ACCEPTANCE[:6], "--rounds", "1", "--envs", "2", "--episode-length", "3", "--no-live"]
    assert main([*argv, "--telemetry", "off", "--runs-dir", str(tmp_path), "--name", "q"]) == 0
    assert "no comparison of the arms" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("ab", "named"),
    [
        ("shaped,x:episode_length=3", "arm x changes what episodes are played in"),
        ("shaped,x:n_envs=4", "arm x sets n_envs"),
        ("shaped,shaped", "distinct names"),
    ],
)
def test_arms_that_cannot_compare_are_refused_before_a_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ab: str, named: str
) -> None:
    argv = ["train", "ppo", "--task", "digits", "--ab", ab, "--runs-dir", str(tmp_path / "r")]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("esper: error:") and named in line, line
    assert not (tmp_path / "r").exists()
