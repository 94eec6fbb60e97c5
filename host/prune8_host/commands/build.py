"""prune8 build: compile the firmware to .mpy for a board."""

from __future__ import annotations

from prune8_host.boards import DEFAULT_BOARD, board_names
from prune8_host.device.build import build_firmware


def register(sub) -> None:
    p = sub.add_parser(
        "build", help="compile the firmware to .mpy files for a board (mpy-cross)",
        description="Compile firmware/prune8 to DIR/BOARD/prune8/*.mpy (DIR: -o, default "
                    "build). Bytecode by default "
                    "(any MicroPython >= 1.22); --native emits machine code for the board's "
                    "arch (needs MicroPython >= 1.23 on a real board).")
    p.add_argument("--board", default=DEFAULT_BOARD, metavar="B",
                   help=f"board profile ({', '.join(board_names())}; default {DEFAULT_BOARD})")
    p.add_argument("--native", action="store_true",
                   help="emit native code for the board's arch (xtensawin or rv32imc)")
    p.add_argument("-o", "--out", dest="out_root", default="build", metavar="DIR",
                   help="output root: writes DIR/BOARD/ (default build/)")
    p.set_defaults(run=run)


def run(args) -> int:
    b = build_firmware(args.board, native=args.native, out_root=args.out_root)
    kind = "native" if b.native else "bytecode"
    print(f"built {len(b.files)} modules ({kind}) for {b.board} in {b.package_dir}")
    return 0
