"""`esper report`: one self-contained HTML file from runs' event logs or an evaluation's results.

Every plot is a PNG embedded as a data URI and the page loads nothing from anywhere, so the file
opens offline and can be mailed. It reads the events as the plain dicts `events.jsonl` holds,
so a run still training or one that crashed reports what it has logged. Runs are drawn per
policy group (an A/B run's arms apart), several runs overlaid:
- PPO: return, validation and test accuracy and parameters added per round (mean over the
  round's episodes, with their range), PPO health (KL, clip fraction, explained variance,
  gradient norm, entropy per head), the op mix, the reward terms per episode, the time per
  phase, and seed-lifecycle swimlanes (each slot's stage per epoch) of the first, a middle and
  the last round's episodes;
- a run of episodes (the heuristic): its episodes' outcomes and their swimlanes;
- an evaluation results file: the controllers' table with intervals and a per-seed paired plot.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import defaultdict
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.colors import ListedColormap
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

STAGES = (
    "DORMANT",
    "GERMINATED",
    "TRAINING",
    "BLENDING",
    "HOLDING",
    "FOSSILIZED",
    "PRUNED",
    "EMBARGOED",
)
_STAGE_COLORS = (
    "#f0f0f0",
    "#c6dbef",
    "#6baed6",
    "#fdae6b",
    "#fd8d3c",
    "#31a354",
    "#de2d26",
    "#bdbdbd",
)


def _png(figure: Any) -> str:
    for ax in figure.axes:  # rounds, epochs and episodes are whole numbers
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _groups(events: list[dict[str, Any]], label: str) -> dict[str, list[dict[str, Any]]]:
    """A run's events per policy group, labelled `label` (and its arm, when it has several)."""
    by: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by[str(e.get("group", ""))].append(e)
    process = ("run_start", "run_end")  # a process's own records, in no group's stream
    named = {g: es for g, es in by.items() if g and any(x["type"] not in process for x in es)}
    if len(named) <= 1:
        return {label: events}
    return {f"{label}/{group}": es for group, es in named.items()}


def run_sections(runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """HTML sections for runs (label -> its events)."""
    series: dict[str, list[dict[str, Any]]] = {}
    for label, events in runs.items():
        series.update(_groups(events, label))
    ppo = {k: v for k, v in series.items() if any(e["type"] == "round" for e in v)}
    episodic = {k: v for k, v in series.items() if k not in ppo}
    sections = []
    if ppo:
        sections.append(_ppo_section(ppo))
    for label, events in episodic.items():
        sections.append(_episodes_section(label, events))
    return sections


def _by_round(events: list[dict[str, Any]], key: str) -> tuple[list[int], list[list[float]]]:
    rounds: dict[int, list[float]] = defaultdict(list)
    for e in events:
        if e["type"] == "episode":
            rounds[int(e["round"])].append(float(e["payload"]["outcome"][key]))
    ordered = sorted(rounds)
    return ordered, [rounds[r] for r in ordered]


def _ppo_section(series: dict[str, list[dict[str, Any]]]) -> str:
    parts = ["<h2>PPO training</h2>"]
    metrics = [
        ("episode_return", "return"),
        ("val_accuracy", "validation accuracy %"),
        ("test_accuracy", "test accuracy %"),
        ("params_added", "parameters added"),
    ]
    figure, axes = plt.subplots(1, 4, figsize=(16, 3.2))
    for ax, (key, title) in zip(axes, metrics, strict=True):
        for label, events in series.items():
            rounds, values = _by_round(events, key)
            if not rounds:
                continue
            means = [sum(v) / len(v) for v in values]
            (line,) = ax.plot(rounds, means, marker="o", markersize=3, label=label)
            low, high = [min(v) for v in values], [max(v) for v in values]
            ax.fill_between(rounds, low, high, alpha=0.2, color=line.get_color())
        ax.set_title(title)
        ax.set_xlabel("round")
    axes[0].legend(fontsize=7)
    parts += [
        "<h3>Per round (mean over the round's episodes; band: their range)</h3>",
        _png(figure),
    ]

    health = ["approx_kl", "clip_fraction", "explained_variance", "grad_norm"]
    figure, axes = plt.subplots(1, 5, figsize=(20, 3.2))
    for ax, key in zip(axes, health, strict=False):
        for label, events in series.items():
            updates = [e for e in events if e["type"] == "ppo_update"]
            ax.plot(
                [e["round"] for e in updates], [e["payload"][key] for e in updates], label=label
            )
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("round")
    for label, events in series.items():
        updates = [e for e in events if e["type"] == "ppo_update"]
        heads = sorted({h for e in updates for h in e["payload"]["entropy"]})
        for head in heads:
            values = [e["payload"]["entropy"].get(head, math.nan) for e in updates]
            axes[4].plot(
                [e["round"] for e in updates],
                values,
                marker="o",
                markersize=2,
                label=f"{label}: {head}",
            )
    axes[4].set_title("entropy per head (normalized)")
    axes[4].legend(fontsize=6)
    parts += ["<h3>PPO health</h3>", _png(figure)]

    for label, events in series.items():
        parts.append(f"<h3>{html.escape(label)}</h3>")
        parts.append(_png(_mix_and_time(events)))
        parts.append(_png(_reward_terms(events)))
        rounds = sorted({int(e["round"]) for e in events if e["type"] == "round"})
        if rounds:
            picked = sorted({rounds[0], rounds[len(rounds) // 2], rounds[-1]})
            for r in picked:
                parts.append(_png(_swimlanes(events, r, f"{label}: round {r}")))
    return "\n".join(parts)


def _mix_and_time(events: list[dict[str, Any]]) -> Any:
    rounds = [e for e in events if e["type"] == "round"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 3.2))
    ops = sorted({op for e in rounds for op in e["payload"]["op_counts"]})
    x = [e["round"] for e in rounds]
    left.stackplot(x, [[e["payload"]["op_counts"].get(op, 0) for e in rounds] for op in ops])
    left.legend(ops, fontsize=6, loc="upper left")
    left.set_title("op mix per round")
    phases = sorted({p for e in rounds for p in e["payload"]["timing_s"]})
    bottom = [0.0] * len(rounds)
    for phase in phases:
        values = [e["payload"]["timing_s"].get(phase, 0.0) for e in rounds]
        right.bar(x, values, bottom=bottom, label=phase)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    right.legend(fontsize=6)
    right.set_title("seconds per phase (env phases summed over envs)")
    return figure


def _reward_terms(events: list[dict[str, Any]]) -> Any:
    per_round: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    episodes: dict[int, set[int]] = defaultdict(set)
    for e in events:
        if e["type"] == "reward":
            for term, value in e["payload"]["terms"].items():
                per_round[int(e["round"])][term] += float(value)
            episodes[int(e["round"])].add(int(e["env"]))
    figure, ax = plt.subplots(figsize=(12, 3.0))
    rounds = sorted(per_round)
    terms = sorted({t for r in per_round.values() for t in r})
    for term in terms:
        values = [per_round[r][term] / max(1, len(episodes[r])) for r in rounds]
        ax.plot(rounds, values, marker="o", markersize=3, label=term)
    ax.set_title("reward terms per episode (mean over the round's episodes)")
    ax.set_xlabel("round")
    ax.legend(fontsize=6)
    return figure


def _swimlanes(events: list[dict[str, Any]], round_index: int | None, title: str) -> Any:
    """Each (env, slot)'s stage per epoch: one row per env and slot."""
    rows: dict[tuple[int, str], dict[int, str]] = defaultdict(dict)
    for e in events:
        if e["type"] == "epoch" and (round_index is None or int(e["round"]) == round_index):
            for slot, stage in e["payload"]["stages"].items():
                rows[(int(e["env"]), slot)][int(e["epoch"])] = stage
    keys = sorted(rows)
    epochs = max((max(r) for r in rows.values()), default=0)
    grid = [[STAGES.index(rows[k].get(t, "DORMANT")) for t in range(1, epochs + 1)] for k in keys]
    figure, ax = plt.subplots(figsize=(12, 0.3 * max(1, len(keys)) + 1.0))
    if grid and epochs:  # column t is epoch t + 1
        extent = (0.5, epochs + 0.5, len(keys) - 0.5, -0.5)
        colors = ListedColormap(_STAGE_COLORS)
        ax.imshow(grid, aspect="auto", cmap=colors, vmin=0, vmax=7, extent=extent)
    ax.set_yticks(range(len(keys)), [f"env {env} {slot}" for env, slot in keys], fontsize=6)
    ax.set_xlabel("epoch")
    ax.set_title(f"seed lifecycle swimlanes, {title}")
    handles = [Rectangle((0, 0), 1, 1, color=c) for c in _STAGE_COLORS]
    ax.legend(handles, STAGES, fontsize=6, ncol=8, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    return figure


def _episodes_section(label: str, events: list[dict[str, Any]]) -> str:
    episodes = [e for e in events if e["type"] == "episode"]
    parts = [f"<h2>{html.escape(label)}: {len(episodes)} episodes</h2>"]
    figure, ax = plt.subplots(figsize=(12, 3.0))
    for key in ("test_accuracy", "val_accuracy"):
        ax.plot([e["payload"]["outcome"][key] for e in episodes], marker="o", label=key)
    ax.set_xlabel("episode")
    ax.set_title("outcomes per episode")
    ax.legend(fontsize=7)
    parts.append(_png(figure))
    runs = _episode_epochs(events)  # each episode's epoch events, in order
    if runs:
        for index in sorted({0, len(runs) // 2, len(runs) - 1}):
            env, own = runs[index]
            title = f"{label}: episode {index} (env {env})"
            parts.append(f"<h3>swimlanes, {html.escape(title)}</h3>")
            parts.append(_png(_swimlanes(own, None, title)))
    return "\n".join(parts)


def _episode_epochs(events: list[dict[str, Any]]) -> list[tuple[int, list[dict[str, Any]]]]:
    """A run of episodes' epoch events split into episodes: an env's epoch numbers start again
    at 1 with each of its episodes. In the order the episodes began."""
    current: dict[int, list[dict[str, Any]]] = {}
    episodes: list[tuple[int, list[dict[str, Any]]]] = []
    for e in events:
        if e["type"] != "epoch":
            continue
        env = int(e["env"])
        if env not in current or int(e["epoch"]) <= int(current[env][-1]["epoch"]):
            current[env] = []
            episodes.append((env, current[env]))
        current[env].append(e)
    return episodes


def comparison_section(title: str, rows: list[tuple[str, str, str, str, str]], verdict: str) -> str:
    """A comparison table (run, metric, difference [CI], design, p) and its verdict."""
    cells = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    head = "<tr><th>run</th><th>metric</th><th>difference [95% CI]</th><th>design</th><th>p</th>"
    table = f"<table>{head}</tr>{cells}</table>"
    return f"<h2>{html.escape(title)}</h2>{table}<p>{html.escape(verdict)}</p>"


def evaluation_section(label: str, results: dict[str, Any]) -> str:
    """An evaluation results file: its controllers' table and a per-seed paired plot."""
    rows = []
    for c in results["controllers"]:
        acc = c["test_accuracy"]
        rows.append(
            f"<tr><td>{html.escape(c['label'])}</td><td>{acc['mean']:.2f} "
            f"[{acc['lo']:.2f}, {acc['hi']:.2f}]</td><td>{c['params_added']['mean']:,.0f}</td>"
            f"<td>{c['episodes']}</td></tr>"
        )
    table = (
        "<table><tr><th>controller</th><th>test acc % [95% CI]</th><th>params added</th>"
        f"<th>episodes</th></tr>{''.join(rows)}</table>"
    )
    by: dict[str, dict[int, float]] = defaultdict(dict)
    for e in results["episodes"]:
        by[e["controller"]][int(e["seed"])] = float(e["outcome"]["test_accuracy"])
    seeds = sorted({s for v in by.values() for s in v})
    figure, ax = plt.subplots(figsize=(10, 3.5))
    for i, seed in enumerate(seeds):
        ys = [by[c].get(seed, math.nan) for c in by]
        ax.plot(range(len(by)), ys, color="grey", alpha=0.4)
        if i == 0:
            ax.set_xticks(range(len(by)), list(by))
    for j, controller in enumerate(by):
        ax.scatter([j] * len(by[controller]), list(by[controller].values()), zorder=3)
    ax.set_ylabel("test accuracy %")
    ax.set_title("per seed, paired (a line joins one seed's episodes)")
    return (
        f"<h2>Evaluation: {html.escape(label)} ({html.escape(str(results['task']))}, "
        f"{len(seeds)} seeds)</h2>" + table + _png(figure)
    )


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1400px}"
    "img{max-width:100%;display:block;margin:0.5em 0}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
)
# Marks the page when every plot image has decoded: how a headless browser checks it rendered.
_CHECK = """<script>window.addEventListener("load",function(){var i=document.images,n=0;
for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0){n++;}}
document.body.setAttribute("data-plots","loaded "+n+" of "+i.length);});</script>"""


def page(title: str, sections: list[str]) -> str:
    body = "\n".join(sections)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style>{_CHECK}</head><body><h1>{html.escape(title)}</h1>{body}"
        "</body></html>\n"
    )
