"""Bad input at the command line, thousands of times: the only outcomes allowed are success, or
exit 2 with one line `esper: error: ...` and nothing left behind (issue 9, acceptance 3).

Three kinds of case, drawn from one seeded generator (a run is reproducible):
- config files: random mappings of real and unknown setting names to random values (numbers at
  and beyond their bounds, inf/nan, huge integers, wrong types, nested containers, garbage
  strings), written as YAML or JSON, sometimes not a mapping or not parseable at all;
- flag sets: random flags of `train ppo`, `train heuristic` and `evaluate` with random values;
- damaged checkpoints: a real checkpoint truncated, bit-flipped, overwritten, or re-saved with
  a missing key, a tensor of the wrong shape, a NaN parameter or a config that does not validate,
  then resumed (`train ppo --resume`) and evaluated (`evaluate --controllers ppo:...`).
Runs that validate are kept tiny (1 round, 1 env, 1-2 epochs) by flags that override the case.
Each case runs in this process through `esper.cli.main.main`; an exception escaping it, an exit
status other than 0 or 2, more than one stderr line, or a new file left after a refusal is a
failure, printed with its case.

Usage: python benchmarks/fuzz_cli.py [--cases 5000] [--seed 0]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from esper.cli.main import main
from esper.cli.settings import flag_of
from esper.nissa import CHECKPOINTS_DIR
from esper.simic.checkpoint import LATEST, read_checkpoint, save_checkpoint
from esper.simic.config import HeuristicRunConfig, TrainingConfig
from machine import header

TINY_PPO = ["--rounds", "1", "--envs", "1", "--episode-length", "1", "--no-live"]
TINY_HEURISTIC = ["--episodes", "1", "--envs", "1", "--episode-length", "1", "--no-live"]
EVALUATE_TAIL = ["--seeds", "1", "--episode-length", "1"]


@dataclass(frozen=True)
class Outcome:
    code: int | None
    err: str
    crash: str | None  # the traceback of an exception that escaped main()


def run_cli(argv: list[str]) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    code: int | None
    crash = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException:
            code, crash = None, traceback.format_exc()
    return Outcome(code, err.getvalue(), crash)


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its content (what "nothing left behind" compares)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- random values ------------------------------------------------------------------------------

STRINGS = [
    "",
    "abc",
    "none",
    "true",
    "r0c0",
    "r0c0,r0c1",
    "r9c9",
    "shaped",
    "cuda",
    "cuda:7",
    "cpu",
    "../x",
    "a" * 300,
    "\u2603",
    "1e400",
    "-0",
    "0x10",
    " 3 ",
    "inf",
    "nan",
    "local",
    "ray",
    "strict",
    "digits",
    "cifar10",
    "stories",
    "a,b,,c",
    "%s%d",
]
NUMBERS = [
    0,
    -1,
    1,
    2,
    3,
    7,
    10**6,
    10**30,
    -(10**30),
    0.5,
    1e-12,
    1e308,
    -1e-3,
    float("inf"),
    float("-inf"),
    float("nan"),
    2**30,
    2**31,
]


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if kind < 0.35:
        return rng.choice(NUMBERS)
    if kind < 0.65:
        return rng.choice(STRINGS)
    if kind < 0.75:
        return rng.choice([True, False, None])
    if depth < 2 and kind < 0.85:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and kind < 0.92:
        return {rng.choice(STRINGS): random_value(rng, depth + 1) for _ in range(2)}
    return rng.uniform(-5, 5)


def random_text(rng: random.Random) -> str:
    return rng.choice(STRINGS) if rng.random() < 0.7 else str(rng.choice(NUMBERS))


def setting_names(rng: random.Random, model: type) -> list[str]:
    names = [*model.model_fields, "preset", "gama", "reward_gamma", "n_env", "lrr", ""]
    return rng.sample(names, rng.randint(1, 6))


# -- the three kinds of case --------------------------------------------------------------------


def config_file_case(rng: random.Random, work: Path) -> list[str]:
    ppo = rng.random() < 0.6
    model = TrainingConfig if ppo else HeuristicRunConfig
    settings = {name: random_value(rng) for name in setting_names(rng, model)}
    if rng.random() < 0.3:  # mostly valid: a sane base with one odd value
        settings = {
            "rent_weight": 1.0,
            "slots": "r0c1",
            rng.choice(list(model.model_fields)): random_value(rng),
        }
    suffix = rng.choice([".yaml", ".json", ".yml", ".toml"])
    path = work / f"case{suffix}"
    shape = rng.random()
    if shape < 0.05:
        text = rng.choice(["- 1\n- 2\n", "{bad yaml: [", "\x00\xff", "[[[[[[[[", "3"])
    elif suffix == ".json":
        text = json.dumps(settings, allow_nan=True, default=str)
    else:
        text = yaml.safe_dump(settings, allow_unicode=True)
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    command = ["train", "ppo", *TINY_PPO] if ppo else ["train", "heuristic", *TINY_HEURISTIC]
    return [*command[:2], "--config", str(path), *command[2:]]


def flag_case(rng: random.Random, work: Path) -> list[str]:
    command = rng.choice(["ppo", "heuristic", "evaluate"])
    if command == "evaluate":
        controllers = rng.choice(
            [
                "static",
                "random,heuristic",
                "heuristic,heuristic",
                "ppo",
                "ppo:/nonexistent",
                "nope",
                "",
                "static,ppo:" + str(work),
            ]
        )
        argv = ["evaluate", "--controllers", controllers]
        flags = [
            "--seeds",
            "--episode-length",
            "--device",
            "--task",
            "--data-dir",
            "--threads",
            "--out",
        ]
        for flag in rng.sample(flags, rng.randint(0, 3)):
            argv += [flag, random_text(rng) if flag != "--out" else str(work / random_text(rng))]
        return [*argv, *EVALUATE_TAIL]  # last, so a drawn --seeds 10**6 cannot run for days
    model = TrainingConfig if command == "ppo" else HeuristicRunConfig
    argv = ["train", command]
    for name in setting_names(rng, model):
        if name in model.model_fields:
            argv += [flag_of(name), random_text(rng)]
        else:
            argv += ["--set", f"{name}={random_text(rng)}"]
    if rng.random() < 0.2:
        argv += ["--name", random_text(rng)]
    if rng.random() < 0.1:
        argv += ["--preset", rng.choice(["digits", "digits_lean", "cifar10", "nope"])]
    tiny = TINY_PPO if command == "ppo" else TINY_HEURISTIC
    return [*argv, *tiny]


Damage = Callable[[bytes, random.Random], bytes]


def _flip(data: bytes, rng: random.Random) -> bytes:
    raw = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return bytes(raw)


def _zero_range(data: bytes, rng: random.Random) -> bytes:
    start = rng.randrange(len(data))
    return data[:start] + bytes(min(256, len(data) - start)) + data[start + 256 :]


BYTE_DAMAGE: list[Damage] = [
    lambda d, rng: d[: rng.randrange(len(d))],
    _flip,
    _zero_range,
    lambda d, rng: rng.randbytes(rng.randint(0, 4096)),
    lambda d, rng: b"",
]


def damage_payload(payload: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    trainer, config = dict(payload["trainer"]), dict(payload["config"])
    kind = rng.randrange(5)
    if kind == 0:
        trainer.pop(rng.choice(sorted(trainer)))
    elif kind == 1:
        network = dict(trainer["network"])
        name = rng.choice(sorted(network))
        network[name] = torch.zeros(rng.randint(1, 5), rng.randint(1, 5))
        trainer["network"] = network
    elif kind == 2:
        config[rng.choice(sorted(config))] = random_value(rng)
    elif kind == 3:
        config.pop(rng.choice(sorted(config)))
    else:
        trainer["round"] = random_value(rng)
    return {"trainer": trainer, "config": config}


def checkpoint_case(rng: random.Random, work: Path, template: Path) -> tuple[list[str], bool]:
    """The command, and whether it must be refused (damaged bytes must never load)."""
    run_dir = work / "run"
    shutil.copytree(template, run_dir)
    path = run_dir / CHECKPOINTS_DIR / LATEST
    is_damaged = rng.random() < 0.5
    if is_damaged:
        original = path.read_bytes()
        damaged = rng.choice(BYTE_DAMAGE)(original, rng)
        is_damaged = damaged != original
        path.write_bytes(damaged)
    else:
        damaged = damage_payload(read_checkpoint(path), rng)
        with contextlib.suppress(Exception):  # a NaN or odd value may be refused at save
            save_checkpoint(path, damaged["trainer"], damaged["config"])
    if rng.random() < 0.5:
        return ["train", "ppo", "--resume", str(run_dir), "--rounds", "2", "--no-live"], is_damaged
    return ["evaluate", "--controllers", f"static,ppo:{run_dir}", *EVALUATE_TAIL], is_damaged


# -- the driver ---------------------------------------------------------------------------------


def judge(outcome: Outcome, before: dict[str, bytes], after: dict[str, bytes]) -> str | None:
    """Why this outcome breaks the rule, or None."""
    if outcome.crash is not None:
        return "exception escaped main():\n" + outcome.crash
    if outcome.code == 0:
        return None
    if outcome.code != 2:
        return f"exit status {outcome.code}"
    lines = outcome.err.strip().splitlines()
    if len(lines) != 1 or not lines[0].startswith("esper: error:"):
        return f"stderr is not one error line: {outcome.err!r}"
    if after != before:
        changed = sorted(set(after) ^ set(before)) or sorted(
            k for k in after if after[k] != before.get(k)
        )
        return f"a refused command changed files: {changed[:5]}"
    return None


def make_template(root: Path) -> Path:
    outcome = run_cli(["train", "ppo", *TINY_PPO, "--name", "t", "--runs-dir", str(root)])
    assert outcome.code == 0, outcome
    return root / "t"


def main_fuzz() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, default=None, help="run only case N, show its stderr")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(header(f"fuzz_cli: {args.cases} cases, seed {args.seed}", runs=args.cases))
    rng = random.Random(args.seed)
    kinds: Counter[str] = Counter()
    results: Counter[str] = Counter()
    failures: list[tuple[str, list[str], str]] = []
    slowest: list[tuple[float, list[str]]] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        template = make_template(Path(scratch) / "template")
        for index in range(args.cases):
            work = Path(scratch) / f"case{index}"
            work.mkdir()
            runs = work / "runs"
            kind = rng.choice(["config file", "flags", "checkpoint"])
            must_refuse = False
            if kind == "config file":
                argv = config_file_case(rng, work)
            elif kind == "flags":
                argv = flag_case(rng, work)
            else:
                argv, must_refuse = checkpoint_case(rng, work, template)
            if argv[0] == "train" and "--resume" not in argv:
                argv += ["--runs-dir", str(runs)]
            if args.only is not None and index != args.only:
                shutil.rmtree(work, ignore_errors=True)
                continue
            before = tree(work)
            case_started = time.perf_counter()
            outcome = run_cli(argv)
            slowest.append((time.perf_counter() - case_started, argv))
            problem = judge(outcome, before, tree(work))
            if problem is None and must_refuse and outcome.code != 2:
                problem = "a checkpoint with damaged bytes was accepted"
            kinds[kind] += 1
            results[f"{kind}: exit {outcome.code}"] += 1
            if problem is not None:
                failures.append((kind, argv, problem))
            if args.only is not None:
                print(f"esper {' '.join(argv)}\nexit {outcome.code}\n{outcome.err}")
            shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    print(f"cases by kind: {dict(kinds)}")
    for key in sorted(results):
        print(f"  {key}: {results[key]}")
    for seconds, argv in sorted(slowest, reverse=True)[:3]:
        print(f"  slow case ({seconds:.1f} s): esper {' '.join(argv)}")
    print(f"{len(failures)} failures in {args.cases} cases ({elapsed:.0f} s)")
    for kind, argv, problem in failures[:20]:
        print(f"--- {kind}: esper {' '.join(argv)}\n{problem}")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main_fuzz()
