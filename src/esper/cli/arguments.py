"""Argument types shared by the subcommands (validated at the boundary). Settings flags are
derived from the config models in `esper.cli.settings`."""

from __future__ import annotations

import argparse

import torch


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def apply_threads(threads: int) -> None:
    """Small hosts are dominated by per-op overhead: on 2 cores a digits PPO round took 0.9 s
    on one thread and 9-27 s on two while another process was busy (thread oversubscription)."""
    torch.set_num_threads(threads)
