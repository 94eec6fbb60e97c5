"""prune8 boards: list the board profiles."""

from __future__ import annotations

import json

from prune8_host.boards import all_boards


def register(sub) -> None:
    p = sub.add_parser("boards", help="list board profiles (chip, flash offset, capacity)",
                       description="List the board profiles shipped under boards/.")
    p.add_argument("--json", action="store_true", help="print the profiles as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    boards = all_boards()
    if args.json:
        print(json.dumps([{k: v for k, v in vars(b).items() if k != "path"} for b in boards],
                         indent=2))
        return 0
    print(f"{'board':<9} {'chip':<8} {'offset':>7} {'baud':>7} {'arch':<10} "
          f"{'heap':>7} {'weights':>7} {'units':>5}  image")
    for b in boards:
        print(f"{b.name:<9} {b.chip:<8} {b.flash_offset:#7x} {b.baud:>7} {b.mpy_arch:<10} "
              f"{b.heap_bytes:>7} {b.max_weights:>7} {b.max_units:>5}  {b.firmware_image}")
    return 0
