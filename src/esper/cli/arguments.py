"""Argument types shared by the subcommands (validated at the boundary). Settings flags are
derived from the config models in `esper.cli.settings`."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def setting(text: str) -> tuple[str, str]:
    """KEY=VALUE for `--set`; the value is validated later, with the whole config."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


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
