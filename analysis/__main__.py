"""``python -m analysis <command> [options]``: the information-theoretic tools, one command each.

Run ``python -m analysis --help`` for the list and ``python -m analysis <command> --help``
for a command's options.  A user error (a missing file, a bad option) prints one line,
``error: ...``, and exits with status 2; ``--debug`` also shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional

from analysis.cli import emit
from core.errors import ArgumentParser, call_cli

# Each module defines add_command(subparsers); the order is the order of --help.
COMMAND_MODULES = [
    "analysis.commands.float_entropy",
    "analysis.commands.codec_rate",
    "analysis.commands.noise_dim",
    "analysis.commands.intrinsic_dim",
    "analysis.commands.i2i_noise",
    "analysis.commands.divergence_entropy",
]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m analysis",
        description="Information-theoretic tools behind the experiments: tables, JSON/CSV and plots.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_command(subparsers)
    return parser


def _run(argv: Optional[list[str]]) -> int:
    args = build_parser().parse_args(argv)
    report = args.handler(args)
    emit(report, out=getattr(args, "out", None), plot=getattr(args, "plot", None))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    """The exit status: 0, or 2 after a user error (printed as ``error: ...`` on stderr)."""
    return call_cli(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
