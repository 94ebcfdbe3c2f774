"""Entry point of the `esper` command (also `python -m esper`).

Bad input (unknown task, out-of-range settings, unreadable data, a damaged checkpoint, a runs
folder that cannot be written, a full disk) exits with status 2 and one line on stderr,
`esper: error: ...`, never a traceback. A traceback means a bug in esper.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from esper import __version__
from esper.cli.compare import add_compare_parser
from esper.cli.evaluate import add_evaluate_parser
from esper.cli.report import add_report_parser
from esper.cli.tasks import add_tasks_parser
from esper.cli.train_heuristic import add_heuristic_parser
from esper.cli.train_ppo import add_ppo_parser
from esper.tolaria.data import DataError


class OneLineParser(argparse.ArgumentParser):
    """Reports a usage mistake in one line (no usage dump), exit status 2. Flags must be given
    in full: with abbreviations, `evaluate --seed 3` silently meant `--seeds 3`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"esper: error: {one_line(message)} (see {self.prog} --help)\n")


def one_line(message: object, limit: int = 1000) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="esper",
        description="Grow neural networks while they train: plant, blend, keep or prune seeds.",
    )
    parser.add_argument("--version", action="version", version=f"esper {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="run or train a controller",
        description="Run the rule-based controller or train the learned one.",
    )
    controllers = train.add_subparsers(dest="controller", required=True, metavar="CONTROLLER")
    add_heuristic_parser(controllers)
    add_ppo_parser(controllers)
    add_evaluate_parser(commands)
    add_compare_parser(commands)
    add_report_parser(commands)
    add_tasks_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, DataError, OSError) as error:
        # ValueError covers config, checkpoint and data errors (ConfigError, CheckpointError,
        # pydantic's ValidationError); OSError a runs folder or disk that fails us.
        print(f"esper: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("esper: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
