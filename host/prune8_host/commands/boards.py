"""prune8 boards: list the board profiles, with what the firmware takes of each heap."""

from __future__ import annotations

import json

from prune8_host.boards import all_boards
from prune8_host.heap_law import figures, load_data


def register(sub) -> None:
    p = sub.add_parser("boards", help="list board profiles (chip, flash offset, capacity, heap)",
                       description="List the board profiles shipped under boards/, with the "
                                   "heap the firmware takes at rest (import prune8 and a "
                                   "Pruner of the board's capacity, counted from boot, "
                                   "measured on the 32-bit VM: docs/heap.md) and the "
                                   "profile's heap budget.")
    p.add_argument("--json", action="store_true", help="print the profiles as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    boards = all_boards()
    data = load_data()
    rest = {}
    for b in boards:
        fig = figures(b, data)
        rest[b.name] = fig.at_rest if fig else None
    if args.json:
        print(json.dumps([dict({k: v for k, v in vars(b).items() if k != "path"},
                               heap_at_rest=rest[b.name]) for b in boards], indent=2))
        return 0
    print(f"{'board':<9} {'chip':<8} {'offset':>7} {'baud':>7} {'arch':<10} "
          f"{'at rest':>7} {'budget':>7} {'weights':>7} {'units':>5}  image")
    for b in boards:
        at_rest = "-" if rest[b.name] is None else f"{rest[b.name]}"
        print(f"{b.name:<9} {b.chip:<8} {b.flash_offset:#7x} {b.baud:>7} {b.mpy_arch:<10} "
              f"{at_rest:>7} {b.heap_bytes:>7} {b.max_weights:>7} {b.max_units:>5}  "
              f"{b.firmware_image}")
    print("at rest: the heap import prune8 and a Pruner take, counted from boot; budget: "
          "what the profile allows the whole prune (docs/heap.md)")
    return 0
