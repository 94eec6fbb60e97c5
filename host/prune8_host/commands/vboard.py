"""prune8 vboard: run a virtual ESP32 (MicroPython VM) on a pseudo-terminal, in the foreground."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from prune8_host.boards import DEFAULT_BOARD, board_names
from prune8_host.files.output import write_output


def register(sub) -> None:
    p = sub.add_parser(
        "vboard", help="run a virtual board that mpremote can talk to (no hardware needed)",
        description="Run MicroPython (the WebAssembly VM, in Node.js) behind a pseudo-terminal "
                    "that behaves like an ESP32's serial port: 'mpremote connect PORT ...' works "
                    "unchanged. Prints the port on stdout; runs until Ctrl-C or SIGTERM.")
    p.add_argument("--board", default=DEFAULT_BOARD,
                   help=f"board profile: {', '.join(board_names())} or a .toml path "
                        f"(default {DEFAULT_BOARD})")
    p.add_argument("--baud", type=int, default=None,
                   help="UART speed for pacing both directions, 0 = unpaced "
                        "(default: the profile's baud)")
    p.add_argument("--flash", metavar="DIR", default=None,
                   help="host directory that is the board's filesystem, kept across runs "
                        "(default: a fresh temporary directory, removed on exit)")
    p.add_argument("--port-file", metavar="FILE", default=None,
                   help="also write the port's path to FILE (removed on exit)")
    p.set_defaults(run=run)


def run(args) -> int:
    from prune8_host.vboard import VirtualBoard

    stop = threading.Event()

    def on_stop(signum, frame):
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_stop)
    previous_int = None
    port_file = Path(args.port_file) if args.port_file else None
    try:
        with VirtualBoard(board=args.board, baud=args.baud, flash_dir=args.flash) as vb:
            if port_file:
                write_output(port_file, (vb.port + "\n").encode())  # never half a path
            print(vb.port, flush=True)
            baud = f"{vb.baud} baud" if vb.baud else "unpaced"
            if vb.timed:
                baud += ", as slow as the profile's flash and CPU"
            print(f"prune8 vboard: {vb.profile.name} on {vb.port} ({baud}), flash {vb.flash_dir}; "
                  "Ctrl-C to stop", file=sys.stderr, flush=True)
            # Once the board is up, Ctrl-C stops it as SIGTERM does: by the event, not by
            # a KeyboardInterrupt raised wherever the main thread happens to be
            previous_int = signal.signal(signal.SIGINT, on_stop)
            try:
                while not stop.wait(0.5):
                    pass
            finally:
                if port_file:
                    port_file.unlink(missing_ok=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is not None:
            signal.signal(signal.SIGINT, previous_int)
    return 0
