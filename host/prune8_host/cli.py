"""The `prune8` command: a thin argparse front over prune8_host.commands.

Each module in prune8_host.commands registers one subcommand (or a small group)
and does its work in a `run(args)` function; this file only wires them up and is the
error boundary: what a user can cause (prune8_host.errors.HostError, the firmware's
Prune8Error, an OSError from a file or a port) becomes one line on stderr, status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from prune8.errors import Prune8Error
from prune8_host import __version__
from prune8_host.errors import HostError
from prune8_host.files.output import check_output

# One module per subcommand group, in the order `prune8 --help` lists them.
COMMAND_MODULES = [
    "boards",
    "score",
    "report",
    "pack",
    "shrink",
    "model",
    "demo",
    "build",
    "flash",
    "workflow",
    "infer",
    "testboard",
    "vboard",
]


# The arguments that name a command's input files: its output must not be one of them.
INPUTS = ("weights", "model", "masks", "packed", "file", "activations", "images", "test")


class Parser(argparse.ArgumentParser):
    """argparse's parser whose errors are one line, like every other prune8 error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="prune8",
        description="int8 pruning for ESP32 boards running MicroPython: a bit-exact NumPy "
                    "twin on the host, and the tools to prune on the board and verify.",
        epilog="Run 'prune8 COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"prune8 {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"prune8_host.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()  # imports every command: an interrupt here is no traceback
        args = parser.parse_args(argv)
    except KeyboardInterrupt:
        print("prune8: interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # --help, --version, or a usage error (already printed)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "out", None):  # every command's output is args.out
            check_output(args.out, *(getattr(args, name, None) for name in INPUTS))
        return int(args.run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and friends: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (HostError, Prune8Error, OSError) as e:  # what the user can fix: one line
        print(f"prune8 {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prune8 {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
