"""The live console: a run's progress over episodes, one table row per env, and a final summary.

`ConsoleSink` is a nissa sink. It reads each event as the plain dict that `events.jsonl` holds
(`Event.to_dict()`), so it needs nothing but `leyline` and `rich` (no torch). On a terminal it
draws a live display (progress bar + env table) and prints rollbacks, fossilizations and prunes
as log lines above it; elsewhere (CI, pipes, tests) it prints one plain line per finished episode.
Either way the run ends with `summary_table`, which the `evaluate` command reuses.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from esper.leyline.events import (
    EpisodeEvent,
    EpochEvent,
    Event,
    LifecycleEvent,
    RollbackEvent,
    RunEndEvent,
    RunStartEvent,
)
from esper.leyline.stages import Stage

# One letter per live stage, in lifecycle order, for the compact "T1 B1 F2" seed column.
# DORMANT slots hold no seed and are not counted.
STAGE_ABBREVIATIONS: dict[Stage, str] = {
    Stage.GERMINATED: "G",
    Stage.TRAINING: "T",
    Stage.BLENDING: "B",
    Stage.HOLDING: "H",
    Stage.FOSSILIZED: "F",
    Stage.PRUNED: "P",
    Stage.EMBARGOED: "E",
}

# Lifecycle events worth a log line: the two ends of a seed's life. The rest show up in the table.
_LOGGED_STAGES = {Stage.FOSSILIZED.name: "fossilized", Stage.PRUNED.name: "pruned"}

# Live redraws per second; events only change the table, the refresh thread draws it.
_REFRESH_PER_SECOND = 4


def seeds_by_stage(stages: dict[str, str]) -> str:
    """Compact count of seeds per stage, e.g. "T1 B1 F2" (lifecycle order); "-" when none.

    Args:
        stages: slot id -> stage name, as in an `epoch` event's payload.

    Raises:
        KeyError: a stage name that is not a `Stage`.
    """
    counts = {stage: 0 for stage in STAGE_ABBREVIATIONS}
    for name in stages.values():
        stage = Stage[name]
        if stage in counts:
            counts[stage] += 1
    text = " ".join(f"{STAGE_ABBREVIATIONS[s]}{n}" for s, n in counts.items() if n)
    return text or "-"


def summary_table(episode_payloads: list[dict[str, Any]]) -> Table:
    """One row per finished episode, then per controller a mean row (and a std row if n > 1).

    Rows keep the given order. Means and standard deviations are taken per controller, because
    averaging a heuristic with a learned policy (an `evaluate` table) would describe neither.
    The standard deviation is the sample one (n - 1), of test accuracy only.

    Args:
        episode_payloads: `episode` event payloads (`EpisodeEvent` as a dict: episode, seed,
            controller, outcome{test_accuracy, host_params, params_added, seeds_fossilized,
            seeds_pruned, episode_return, ...}, growth_ratio, wall_time_s).

    Raises:
        KeyError: a payload missing one of those fields.
    """
    # Short headers: the table must fit an 80-column terminal or CI log.
    table = Table(
        title="Episodes (F/P: seeds fossilized / pruned)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
    )
    table.add_column("ep", justify="right")
    table.add_column("seed", justify="right")
    table.add_column("ctrl")
    table.add_column("test %", justify="right")
    table.add_column("host", justify="right")
    table.add_column("+params", justify="right")
    table.add_column("growth", justify="right")
    table.add_column("F/P", justify="right")
    table.add_column("return", justify="right")
    table.add_column("time", justify="right")

    by_controller: dict[str, list[dict[str, Any]]] = {}
    for payload in episode_payloads:
        outcome = payload["outcome"]
        table.add_row(
            str(payload["episode"]),
            str(payload["seed"]),
            payload["controller"],
            f"{outcome['test_accuracy']:.2f}",
            f"{outcome['host_params']:,}",
            f"{outcome['params_added']:,}",
            f"{payload['growth_ratio']:.3f}x",
            f"{outcome['seeds_fossilized']} / {outcome['seeds_pruned']}",
            f"{outcome['episode_return']:.3f}",
            f"{payload['wall_time_s']:.1f} s",
        )
        by_controller.setdefault(payload["controller"], []).append(payload)

    if by_controller:
        table.add_section()
    for controller, payloads in by_controller.items():
        _add_mean_rows(table, controller, payloads)
    return table


def _add_mean_rows(table: Table, controller: str, payloads: list[dict[str, Any]]) -> None:
    def mean(key: str) -> float:
        return statistics.fmean(p["outcome"][key] for p in payloads)

    accuracies = [p["outcome"]["test_accuracy"] for p in payloads]
    table.add_row(
        "mean",
        "",
        controller,
        f"{statistics.fmean(accuracies):.2f}",
        f"{mean('host_params'):,.0f}",
        f"{mean('params_added'):,.0f}",
        f"{statistics.fmean(p['growth_ratio'] for p in payloads):.3f}x",
        f"{mean('seeds_fossilized'):.1f} / {mean('seeds_pruned'):.1f}",
        f"{mean('episode_return'):.3f}",
        f"{statistics.fmean(p['wall_time_s'] for p in payloads):.1f} s",
        style="bold",
    )
    if len(payloads) > 1:
        table.add_row("std", "", controller, f"{statistics.stdev(accuracies):.2f}")


@dataclass
class _EnvRow:
    """What the live table shows for one env, from the latest events of that env."""

    env: int
    episode: int = 0  # episodes this env has finished: the 0-based index of the one in progress
    epoch: int | None = None
    val_accuracy: float | None = None
    stages: dict[str, str] = field(default_factory=dict)
    action: str = ""
    reward: float | None = None
    episode_reward: float = 0.0  # sum of this episode's step rewards so far


def default_console() -> Console:
    """stdout; logs and CI (not a terminal) get 120 columns instead of rich's 80, so the
    summary tables are not cut."""
    return Console(width=None if sys.stdout.isatty() else 120)


class ConsoleSink:
    """Renders a run on a `rich` console; implements the nissa `Sink` protocol.

    Args:
        console: where to draw; a fresh `Console()` (stdout) by default.
        live: draw the live display (progress bars for the run, with its ETA, and for a PPO
            round's env-steps, and the env table). `False` prints one plain line per finished
            episode (a PPO run: per round) instead, for logs and CI. `None` picks live exactly
            when the console is an interactive terminal.
        log_lifecycle: print a line for every fossilized or pruned seed.
        quiet: no live display and no line per episode, round or seed: the run's header and
            its end (the summary) only (`--quiet`, for logs).
    """

    def __init__(
        self,
        console: Console | None = None,
        live: bool | None = None,
        log_lifecycle: bool = True,
        quiet: bool = False,
    ) -> None:
        self.console = console if console is not None else default_console()
        self.is_quiet = quiet
        self.is_live = False if quiet else (self.console.is_terminal if live is None else live)
        self.log_lifecycle = log_lifecycle  # PPO runs have too many seeds to log each one
        self._rows: dict[int, _EnvRow] = {}
        self._episodes: list[dict[str, Any]] = []  # `episode` payloads, in arrival order
        self._rounds: list[dict[str, Any]] = []  # `round` payloads (PPO runs)
        self._rounds_planned = 0  # a PPO run's rounds (run_start); 0: a run of episodes
        self._is_ab = False  # an A/B run: several arms' round lines each round
        self._last_update: dict[str, Any] | None = None  # the latest `ppo_update` payload
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self._task = self._progress.add_task("episodes", total=None)
        self._steps = self._progress.add_task("env-steps", total=None, visible=False)
        self._live: Live | None = None
        self._is_finished = False  # the summary has been printed
        self._is_closed = False

    def write(self, event: Event) -> None:
        if self._is_closed:
            raise RuntimeError(f"ConsoleSink.write({event.type!r}) called after close()")
        record = event.to_dict()
        handler = _HANDLERS.get(record["type"])
        if handler is None:  # reward terms, PPO updates, ...: not part of this view
            return
        if self.is_live and self._live is None and not self._is_finished:
            self._live = Live(
                self._display(),
                console=self.console,
                refresh_per_second=_REFRESH_PER_SECOND,
                transient=True,  # the summary table replaces the live display
            )
            self._live.start()
        handler(self, record)
        if self._live is not None:
            # A fresh table built here, in the writer's thread: the refresh thread only ever
            # draws finished renderables, never state that is being changed.
            self._live.update(self._display())

    def close(self) -> None:
        """Stop the live display and print the summary (if `run_end` has not). Safe to repeat."""
        if self._is_closed:
            return
        self._finish(None)
        self._is_closed = True

    def _on_run_start(self, record: dict[str, Any]) -> None:
        payload = record["payload"]
        rounds, episodes, envs = payload.get("rounds", 0), payload["episodes"], payload["envs"]
        self._rounds_planned = rounds
        self._is_ab = bool(payload.get("config", {}).get("ab"))  # round lines name their arm
        # A PPO run advances its progress once per round, a heuristic run once per episode.
        arms = len(payload.get("config", {}).get("ab") or ()) or 1  # an A/B run: per arm
        done = int(payload.get("first_round", 0)) * arms  # a resumed run's rounds already done
        self._progress.reset(self._task, total=rounds * arms or episodes, completed=done)
        self._progress.update(self._task, description="rounds" if rounds else "episodes")
        length = int(payload.get("episode_length", 0))
        if rounds and length:  # a round's env-steps: envs x epochs
            self._progress.update(
                self._steps, total=envs * length, description="round env-steps", visible=True
            )
        for env in range(envs):
            self._rows.setdefault(env, _EnvRow(env))
        plan = (
            f"{rounds} rounds x {envs} envs ({episodes} episodes)"
            if rounds
            else f"{episodes} episodes in {envs} env{'s' if envs != 1 else ''}"
        )
        self.console.print(
            Text(f"run {record['run']}: {payload['command']} on {payload['task']}, {plan}")
        )

    def _on_epoch(self, record: dict[str, Any]) -> None:
        if self._rounds_planned:
            self._progress.advance(self._steps)
        payload = record["payload"]
        row = self._row(record["env"])
        row.epoch = record["epoch"]
        row.val_accuracy = payload["metrics"]["val_accuracy"]
        row.stages = payload["stages"]
        row.action = payload["action"]
        row.reward = payload["reward"]
        row.episode_reward += payload["reward"]

    def _on_episode(self, record: dict[str, Any]) -> None:
        if self._rounds_planned:  # a PPO round's episodes: its round line sums them up
            return
        payload = record["payload"]
        self._episodes.append(payload)
        self._progress.advance(self._task)
        row = self._row(record["env"])
        row.episode += 1
        row.episode_reward = 0.0
        if not self.is_live and not self.is_quiet:
            self.console.print(_episode_line(record))

    def _on_rollback(self, record: dict[str, Any]) -> None:
        payload = record["payload"]
        pruned = ", ".join(payload["pruned_slots"]) or "none"
        self._log(
            record,
            f"governor rollback: {payload['reason']} (loss {payload['loss']:.4g}); pruned {pruned}",
            "bold red",
        )

    def _on_lifecycle(self, record: dict[str, Any]) -> None:
        payload = record["payload"]
        verb = _LOGGED_STAGES.get(payload["to_stage"])
        if verb is None or not self.log_lifecycle:
            return
        blueprint = f" {payload['blueprint']}" if payload["blueprint"] else ""
        self._log(
            record,
            f"{verb} {payload['slot_id']}{blueprint} by {payload['initiator']}: "
            f"{payload['reason']}",
            "green" if payload["to_stage"] == Stage.FOSSILIZED.name else "yellow",
        )

    def _on_ppo_update(self, record: dict[str, Any]) -> None:
        self._last_update = record["payload"]

    def _on_round(self, record: dict[str, Any]) -> None:
        """One line per PPO round (the round-by-round table of `esper train ppo`)."""
        self._rounds.append(record["payload"])
        self._progress.advance(self._task)
        self._progress.reset(self._steps)
        if self.is_quiet:
            return
        if len(self._rounds) == 1:
            self.console.print(Text(ROUND_LINE_LEGEND, style="dim"))
        self.console.print(_round_line(record, self._last_update, self._is_ab))

    def _on_run_end(self, record: dict[str, Any]) -> None:
        self._finish(record["payload"])

    def _finish(self, run_end: dict[str, Any] | None) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        if self._is_finished:
            return
        self._is_finished = True
        if self._rounds:
            if run_end is not None:
                self.console.print(
                    Text(f"run {run_end['status']} in {run_end['wall_time_s']:.1f} s")
                )
            return
        if not self._episodes:
            self.console.print(Text("no episode finished"))
            return
        table = summary_table(self._episodes)
        if run_end is not None:
            table.caption = f"run {run_end['status']} in {run_end['wall_time_s']:.1f} s"
        self.console.print(table)

    def _row(self, env: int) -> _EnvRow:
        return self._rows.setdefault(env, _EnvRow(env))

    def _log(self, record: dict[str, Any], message: str, style: str) -> None:
        if self.is_quiet:
            return
        prefix = f"env {record['env']} epoch {record['epoch']}  "
        # Text, not markup: reasons and slot ids may contain brackets.
        self.console.print(Text(prefix + message, style=style))

    def _display(self) -> RenderableType:
        return Group(self._progress, self._env_table())

    def _env_table(self) -> Table:
        table = Table()
        table.add_column("env", justify="right")
        table.add_column("episode", justify="right")
        table.add_column("epoch", justify="right")
        table.add_column("val acc %", justify="right")
        table.add_column("seeds")
        table.add_column("last action")
        table.add_column("reward", justify="right")
        table.add_column("episode reward", justify="right")
        for env in sorted(self._rows):
            row = self._rows[env]
            table.add_row(
                str(row.env),
                str(row.episode),
                "-" if row.epoch is None else str(row.epoch),
                "-" if row.val_accuracy is None else f"{row.val_accuracy:.2f}",
                seeds_by_stage(row.stages),
                row.action or "-",
                "-" if row.reward is None else f"{row.reward:+.3f}",
                f"{row.episode_reward:+.3f}",
            )
        return table


def _episode_line(record: dict[str, Any]) -> Text:
    payload = record["payload"]
    outcome = payload["outcome"]
    return Text(
        f"episode {payload['episode']} env {record['env']} seed {payload['seed']} "
        f"{payload['controller']}: test {outcome['test_accuracy']:.2f}%, "
        f"+{outcome['params_added']:,} params ({payload['growth_ratio']:.3f}x), "
        f"fossilized {outcome['seeds_fossilized']}, pruned {outcome['seeds_pruned']}, "
        f"return {outcome['episode_return']:.3f}, {payload['wall_time_s']:.1f} s"
    )


_OP_LETTERS = {
    "WAIT": "W",
    "GERMINATE": "G",
    "ADVANCE": "A",
    "SET_ALPHA_TARGET": "S",
    "FOSSILIZE": "F",
    "PRUNE": "P",
}


ROUND_LINE_LEGEND = (
    "round lines: ret = mean episode return; val/test = mean final accuracy (%) of the round's "
    "episodes; +N p = mean parameters added; W G A S F P = how often each op was chosen (WAIT, "
    "GERMINATE, ADVANCE, SET_ALPHA_TARGET, FOSSILIZE, PRUNE); then the round's time summed over "
    "its phases. Below it: H = normalized entropy of the op head (1 = uniform); kl = approximate "
    "KL of the update (the one early stopping reads); clip = fraction of clipped ratios; EV = "
    "explained variance of the critic; the share (%) of the time in host training (tr), the "
    "invisible seeds' shadow passes (sh), validation with counterfactuals (ev), the policy's "
    "forwards (pol) and the PPO update (ppo) (env phases summed over envs; on a GPU timed with "
    "CUDA events); graphs compiled with --compile"
)
ROUND_LINE_WIDTH = 100  # each of a round's two lines fits in this many columns

# The phases of a round's `timing_s` the line shows, and their short names.
_PHASES = {
    "host_training": "tr",
    "shadow_passes": "sh",
    "evaluation": "ev",
    "policy_forward": "pol",
    "ppo_update": "ppo",
}


def _round_line(record: dict[str, Any], update: dict[str, Any] | None, named: bool = False) -> Text:
    """A PPO round in two lines of at most `ROUND_LINE_WIDTH` columns: what the episodes did,
    then the update's health and where the time went."""
    p = record["payload"]
    ops = " ".join(f"{_OP_LETTERS.get(k, k)}{v}" for k, v in p["op_counts"].items())
    total = sum(p["timing_s"].values()) or 1.0
    shares = " ".join(
        f"{short}{100 * p['timing_s'].get(phase, 0.0) / total:.0f}"
        for phase, short in _PHASES.items()
    )
    health = "no update"
    if update is not None:
        health = (
            f"H {update['entropy'].get('op', float('nan')):.2f} kl {update['approx_kl']:.3f} "
            f"clip {update['clip_fraction']:.2f} EV {update['explained_variance']:.2f}"
        )
    first = (
        f"round {record['round']:4d} | ret {p['mean_return']:+7.2f} | "
        f"val {p['mean_val_accuracy']:4.1f} test {p['mean_test_accuracy']:4.1f} | "
        f"+{p['mean_params_added']:.0f} p | {ops} | {total:.1f}s"
    )
    second = f"{'':6}{health} | {shares}%"
    if named:  # an A/B run: its arm heads the line, in place of the indent (16 columns at most)
        arm = str(record["group"])
        second = f"{arm if len(arm) <= 16 else arm[:15] + '~'}: {health} | {shares}%"
    if p.get("compiled_graphs"):
        second += f" | {p['compiled_graphs']} compiled"
    return Text(f"{first}\n{second}")


_HANDLERS: dict[str, Callable[[ConsoleSink, dict[str, Any]], None]] = {
    "ppo_update": ConsoleSink._on_ppo_update,
    "round": ConsoleSink._on_round,
    RunStartEvent.TYPE: ConsoleSink._on_run_start,
    EpochEvent.TYPE: ConsoleSink._on_epoch,
    EpisodeEvent.TYPE: ConsoleSink._on_episode,
    RollbackEvent.TYPE: ConsoleSink._on_rollback,
    LifecycleEvent.TYPE: ConsoleSink._on_lifecycle,
    RunEndEvent.TYPE: ConsoleSink._on_run_end,
}
