"""`--backend vmap` (issue 12, item 3) end to end: PPO and the heuristic train through it, and the
run records it with its phase timing."""

from __future__ import annotations

import json
from pathlib import Path

from esper.cli.main import main
from esper.nissa import CONFIG_FILE, read_events

TINY = ["--task", "digits", "--episode-length", "3", "--no-live"]


def test_ppo_and_the_heuristic_train_on_the_vmap_backend(tmp_path: Path) -> None:
    ppo = ["train", "ppo", *TINY, "--rounds", "1", "--envs", "3", "--backend", "vmap"]
    assert main([*ppo, "--runs-dir", str(tmp_path / "ppo")]) == 0
    (run,) = (tmp_path / "ppo").iterdir()
    assert json.loads((run / CONFIG_FILE).read_text())["backend"] == "vmap"
    events = read_events(run / "events.jsonl")
    (round_event,) = [e for e in events if e["type"] == "round"]
    timing = round_event["payload"]["timing_s"]
    assert timing["host_training"] > 0 and "shadow_passes" in timing
    assert sum(e["type"] == "epoch" for e in events) == 3 * 3

    heuristic = ["train", "heuristic", *TINY, "--episodes", "2", "--envs", "2"]
    assert main([*heuristic, "--backend", "vmap", "--runs-dir", str(tmp_path / "h")]) == 0
    (run,) = (tmp_path / "h").iterdir()
    assert sum(e["type"] == "episode" for e in read_events(run / "events.jsonl")) == 2
