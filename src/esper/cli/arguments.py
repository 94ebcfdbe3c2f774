"""Argument types and options shared by the subcommands (validated at the boundary)."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from esper.nissa import TelemetryLevel, parse_level
from esper.tolaria import TASKS


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def setting(text: str) -> tuple[str, str]:
    """KEY=VALUE for `--set`; the value is validated later, with the whole config."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def telemetry_level(text: str) -> TelemetryLevel:
    try:
        return parse_level(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def readable_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"data directory {text!r} does not exist or is not a folder"
        )
    return path


def device(text: str) -> str:
    try:
        parsed = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r}; expected cpu, cuda or cuda:N"
        ) from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"device {text!r} requested but CUDA is not available")
    return text


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        help="CPU threads for torch (default: 1; small hosts run fastest on one thread)",
    )


def apply_threads(threads: int) -> None:
    """Small hosts are dominated by per-op overhead: on 2 cores a digits PPO round took 0.9 s
    on one thread and 9-27 s on two while another process was busy (thread oversubscription)."""
    torch.set_num_threads(threads)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    add_threads_option(parser)
    parser.add_argument("--task", default="digits", choices=sorted(TASKS), help="(default: digits)")
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="base env seed (default: 0)"
    )
    parser.add_argument("--device", type=device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument(
        "--episode-length", type=positive_int, default=None, help="host epochs per episode"
    )
    parser.add_argument("--data-dir", type=readable_dir, default=None, help="real datasets' folder")
    parser.add_argument(
        "--train-subset", type=positive_int, default=None, help="use N train samples"
    )
    parser.add_argument("--download", action="store_true", help="download the dataset if missing")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="(default: runs)")
    parser.add_argument("--name", default=None, help="run name (default: the command)")
    parser.add_argument(
        "--telemetry",
        type=telemetry_level,
        default=TelemetryLevel.NORMAL,
        help="off, minimal, normal or debug (default: normal)",
    )
    parser.add_argument("--no-live", action="store_true", help="plain lines instead of a live view")
