"""The `duplex` command line.

Each subcommand lives in its own module, which exposes
`add_parser(subparsers)` and sets `func` on its parser; this file only lists
them. Exceptions raised by the project's own error classes (any exception
class defined in duplex, audio, models, clock or training) are user errors:
they are printed as one line and the exit status is 1. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# MKL picks how many threads a matrix product uses by the machine's load unless told not to, and a product
# split another way rounds otherwise: on a busy machine the same seeded simulation then said other things
# from the first near-tie on (docs/benchmarks.md, session 16). Set before torch first calls MKL.
os.environ.setdefault("MKL_DYNAMIC", "FALSE")

COMMAND_MODULES = [
    "duplex.respond",
    "duplex.metrics",
    "duplex.simulate_cli",
    "duplex.server.command",
    "duplex.chat",
    "training.train_cli",
    "training.data_cli",
    "training.eval_cli",
    "training.release_cli",
]

OUR_PACKAGES = {"duplex", "audio", "models", "clock", "training"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="duplex",
        description="A full-duplex spoken dialogue agent runtime: an agent that listens while it speaks.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("duplex: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if type(exc).__module__.split(".")[0] not in OUR_PACKAGES:
            raise
        print(f"duplex: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
