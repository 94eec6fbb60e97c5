"""prune8 test-board: run the on-board test suite (prune8_host.suite) on a board."""

from __future__ import annotations

import json
import sys

from prune8_host.boards import load_board
from prune8_host.device.connect import port_or_fresh_vboard
from prune8_host.device.deploy import deploy_build
from prune8_host.device.session import BoardSession
from prune8_host.errors import UsageError
from prune8_host.suite.runner import run_board_tests

from .options import add_board_args


def register(sub) -> None:
    p = sub.add_parser(
        "test-board", help="deploy and run the on-board test suite, one line per case",
        description="Deploy the firmware, push golden vectors made by the twin, and run the "
                    "on-board suite's scripts on the board: scores, masks and errors against "
                    "the twin, zero allocation on every hot path, and peak heap within the "
                    "profile's budget. Without --port, on a fresh virtual board. Exit 1 on any "
                    "failure.")
    add_board_args(p)
    p.add_argument("--native", action="store_true",
                   help="test the native-code build (real boards only)")
    p.add_argument("--only", action="append", metavar="SUITE",
                   help="run only this suite, e.g. test_alloc (repeatable)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    profile = load_board(args.board)
    if args.native and not args.port:
        raise UsageError("the virtual board runs bytecode only: --native needs a real board "
                         "on --port")
    baud = args.baud or profile.baud
    with port_or_fresh_vboard(args.port, profile.name) as port:
        deploy_build(port, profile, native=args.native, baud=baud, quiet=args.quiet)
        with BoardSession(port, baud=baud) as s:
            results = run_board_tests(s, profile, args.only)
    failed = [r for r in results if not r.passed]
    # Without --port the suite ran on a virtual board that is not paced: its times are
    # the host's, not a board's, and every one printed says so.
    unpaced = "" if args.port else " (unpaced virtual board)"
    if args.json:
        print(json.dumps([dict(vars(r), paced=bool(args.port)) for r in results]))
    else:
        for r in results:
            if r.passed and args.quiet:
                continue
            extra = ", ".join(
                ([f"{r.us} us{unpaced}"] if r.us is not None else [])
                + ([f"{r.alloc:,} B allocated"] if r.alloc is not None else [])
                + ([f"{r.heap:,} B held from boot"] if r.heap is not None else []))
            extra = f" {extra}" if extra else ""
            print(f"{'PASS' if r.passed else 'FAIL'} {r.suite}::{r.name}{extra}"
                  + (f"  {r.detail}" if r.detail else ""))
        print(f"{len(results) - len(failed)} passed, {len(failed)} failed on {profile.name} "
              f"({'native' if args.native else 'bytecode'})", file=sys.stderr)
    return 1 if failed else 0
