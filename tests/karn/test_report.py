"""`esper report` (issue 13, item 2): one self-contained HTML file per kind of source, opened
in headless Chromium, every plot loaded, no console error."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from esper.cli.main import main

TINY = ["--task", "digits", "--episode-length", "3", "--no-live", "--quiet"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    ppo = ["train", "ppo", *TINY, "--rounds", "3", "--envs", "2", "--runs-dir", str(root)]
    assert main([*ppo, "--name", "ppo"]) == 0
    assert main([*ppo, "--name", "ab", "--ab", "shaped,simplified"]) == 0
    heuristic = ["train", "heuristic", *TINY, "--episodes", "2", "--runs-dir", str(root)]
    assert main([*heuristic, "--name", "heuristic"]) == 0
    results = root / "evaluation.json"
    evaluate = ["evaluate", "--controllers", "static,heuristic", "--seeds", "3"]
    assert main([*evaluate, "--episode-length", "3", "--quiet", "--out", str(results)]) == 0
    return {"ppo": root / "ppo", "ab": root / "ab", "heuristic": root / "heuristic"} | {
        "evaluation": results
    }


def _report(source: Path, out: Path) -> str:
    assert main(["report", str(source), "-o", str(out)]) == 0
    return out.read_text()


@pytest.mark.parametrize("kind", ["ppo", "ab", "heuristic", "evaluation"])
def test_each_kind_of_source_makes_one_self_contained_file(
    sources: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    text = _report(sources[kind], tmp_path / f"{kind}.html")
    images = re.findall(r'<img alt="plot" src="data:image/png;base64,[A-Za-z0-9+/=]+">', text)
    assert len(images) >= {"ppo": 6, "ab": 10, "heuristic": 2, "evaluation": 1}[kind]
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from anywhere
    assert "<script src" not in text


def test_an_ab_report_holds_the_arms_comparison_and_a_heuristic_its_episodes_apart(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    text = _report(sources["ab"], tmp_path / "ab.html")
    assert "Against ab/shaped" in text and "paired (6 seeds)" in text and " on return" in text
    text = _report(sources["heuristic"], tmp_path / "h.html")
    assert "episode 0 (env 0)" in text and "episode 1 (env 0)" in text  # each its own swimlane


def test_a_crashed_run_reports_what_it_logged(sources: dict[str, Path], tmp_path: Path) -> None:
    """A crash mid-write leaves a last line cut short: the report reads up to it."""
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    log = (sources["ppo"] / "events.jsonl").read_bytes()
    (crashed / "events.jsonl").write_bytes(log[: len(log) * 2 // 3])  # the middle of a line
    text = _report(crashed, tmp_path / "crashed.html")
    assert text.count('<img alt="plot"') >= 4


def test_a_single_run_reports_into_its_folder_and_bad_input_is_one_line(
    sources: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(sources["heuristic"])]) == 0
    assert (sources["heuristic"] / "report.html").is_file()
    capsys.readouterr()
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.json").write_text("{}")
    for argv, named in [
        ([str(tmp_path / "nope")], "no such run directory"),
        ([str(tmp_path / "empty")], "not a run directory"),
        ([str(tmp_path / "x.json")], "not an esper evaluate results file"),
        ([str(sources["ppo"]), "-o", str(tmp_path / "r.txt")], ".html"),
    ]:
        assert main(["report", *argv]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith("esper: error:") and named in line, line


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)",
)
@pytest.mark.parametrize("kind", ["ppo", "ab", "heuristic", "evaluation"])
def test_headless_chromium_renders_every_plot_without_a_console_error(
    sources: dict[str, Path], tmp_path: Path, kind: str
) -> None:
    html = tmp_path / f"{kind}.html"
    text = _report(sources[kind], html)
    plots = text.count('<img alt="plot"')
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert f'data-plots="loaded {plots} of {plots}"' in dom.stdout  # the page's own check
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    png = tmp_path / f"{kind}.png"
    subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={png}", "--window-size=1300,2000", html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_two_runs_of_one_name_are_both_drawn(sources: dict[str, Path], tmp_path: Path) -> None:
    """`esper report p2 other/p2` drew only the second (found in review)."""
    other = tmp_path / "other" / "ppo"
    shutil.copytree(sources["ppo"], other)
    out = tmp_path / "both.html"
    assert main(["report", str(sources["ppo"]), str(other), "-o", str(out)]) == 0
    text = out.read_text()
    assert "other/ppo - ppo" in text  # the comparison names them apart
