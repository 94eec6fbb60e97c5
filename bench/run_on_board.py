"""Deploy the firmware and run a MicroPython script on a board, printing its output.

    python bench/run_on_board.py bench/bench_board.py [--port P]

Without --port, on a fresh virtual board (the MicroPython WebAssembly VM): its figures
give ratios and allocation behaviour, not ESP32 speed. `mpremote run SCRIPT` does the
same on a board that already has the firmware.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prune8_host.device.connect import port_or_fresh_vboard
from prune8_host.device.deploy import deploy_build
from prune8_host.device.session import BoardSession


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("script", type=Path)
    ap.add_argument("--port", metavar="P")
    ap.add_argument("--board", default="esp32")
    args = ap.parse_args(argv)
    with port_or_fresh_vboard(args.port, args.board) as port:
        deploy_build(port, args.board)
        with BoardSession(port, timeout=600) as s:
            print(s.exec(args.script.read_text(), timeout=600), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
