"""Entry point of the `esper` command.

Bad input (unknown task, negative counts, unreadable data) exits with status 2 and one clear
line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from esper.cli.arguments import apply_threads
from esper.cli.evaluate import add_evaluate_parser
from esper.cli.train_heuristic import add_heuristic_parser
from esper.cli.train_ppo import add_ppo_parser
from esper.tolaria.data import DataError


class OneLineParser(argparse.ArgumentParser):
    """Reports a usage mistake in one line (no usage dump), exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"esper: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="esper",
        description="Grow neural networks while they train: plant, blend, keep or prune seeds.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser("train", help="run or train a controller")
    controllers = train.add_subparsers(dest="controller", required=True, metavar="CONTROLLER")
    add_heuristic_parser(controllers)
    add_ppo_parser(controllers)
    add_evaluate_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_threads(args.threads)
    try:
        return int(args.run(args))
    except (ValueError, DataError, FileNotFoundError, PermissionError) as error:
        print(f"esper: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("esper: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
