"""Bytes on the wire per weight byte pushed, and wall time, against `mpremote cp`.

Both transfers run in the same run on one virtual board paced like a UART at 115200
baud (10 bits per byte). Bytes are counted where the board receives them (the virtual
board's receive hook), so the count includes every frame, header, retry and command
each side sends to move the data, after the session is open (entering the raw REPL is
the same for both and counted apart).

    goal: <= 1.10 wire bytes per weight byte (1.0 is the physical minimum), and at
          least 3x fewer wire bytes than mpremote cp

    python bench/bench_transfer.py [MODEL] [--baud 115200]    (make bench runs it)
    python bench/bench_transfer.py --weights-kb 208            (a person-detection-sized
                                                                model: 13 layers of 128 x 128)

Also reported: the push's wall time against the time its int8 weight bytes alone need
on the line at the baud (10 bits per byte), the issue's measure (goal <= 0.4x with a
faster baud for the bulk; 1.0x is what 115,200 baud allows). The board is as slow as
the profile says (flash erase and program times, CPU factor: docs/vboard.md).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from prune8_host.boards import load_board
from prune8_host.device import link
from prune8_host.device.build import build_firmware
from prune8_host.device.deploy import deploy
from prune8_host.device.session import BoardSession
from prune8_host.device.workflow import push
from prune8_host.files.model import load_model
from prune8_host.vboard import VirtualBoard


class WireCounter:
    """Counts the bytes a virtual board receives (installed as its rx_hook)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0

    def __call__(self, data: bytes) -> bytes:
        with self.lock:
            self.count += len(data)
        return data

    def take(self) -> int:
        with self.lock:
            n, self.count = self.count, 0
        return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", default="examples/digits_mlp.npz")
    ap.add_argument("--baud", type=int, default=115200)
    ap.add_argument("--weights-kb", type=int, default=None,
                    help="push a model of this many KB of random int8 weights instead")
    ap.add_argument("--window", type=int, default=None,
                    help="frames in flight (default: the link's, 2; 1 is stop-and-wait)")
    ap.add_argument("--untimed", action="store_true",
                    help="a board without the profile's flash and CPU timing")
    ap.add_argument("--no-mpremote", action="store_true", help="skip the mpremote cp run")
    ap.add_argument("--baud-switch", default=str(load_board("esp32").baud_switch),
                    metavar="RATE|off",
                    help="also push with a baud switch to RATE for the bulk (default: the "
                         "esp32 profile's); off: only at --baud")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.window:
        link.WINDOW = args.window

    if args.weights_kb:
        rng = np.random.default_rng(0)
        layers = {f"conv{i}": rng.integers(-128, 128, (128, 128), dtype=np.int8)
                  for i in range(max(1, args.weights_kb * 1024 // (128 * 128)))}
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.npz")
            np.savez(path, **layers)
            model = load_model(path)
        args.model = f"{len(layers)} random layers of 128 x 128"
    else:
        model = load_model(args.model)
    payload = sum(len(model.record(name).data) for name in model)
    raw = b"".join(model.record(name).data for name in model)
    with tempfile.TemporaryDirectory() as tmp, \
            VirtualBoard(board="esp32", baud=args.baud, timing=not args.untimed) as vb:
        with BoardSession(vb.port, baud=args.baud, check_firmware=False, timeout=60) as s:
            deploy(s, build_firmware("esp32", out_root=Path(tmp) / "build"), quiet=True)
        wire = WireCounter()
        vb.rx_hook = wire
        with BoardSession(vb.port, baud=args.baud, timeout=60) as s:
            setup = wire.take()
            t0 = time.perf_counter()
            pushed = push(s, model, quiet=True)
            ours_s = time.perf_counter() - t0
            ours = wire.take()

            # mpremote's own file copy (what `mpremote cp` runs) of the same bytes
            mp_s, mp = float("nan"), 0
            if not args.no_mpremote:
                t0 = time.perf_counter()
                s.transport.fs_writefile("/raw.bin", raw)
                mp_s = time.perf_counter() - t0
                mp = wire.take()
                s.transport.fs_rmfile("/raw.bin")
        switched_s = float("nan")
        switch = 0 if args.baud_switch == "off" else int(args.baud_switch)
        if switch:
            # the same push again, its bulk at the switched rate (same board, same run)
            with BoardSession(vb.port, baud=args.baud, timeout=60, baud_switch=switch) as s:
                wire.take()
                t0 = time.perf_counter()
                switched = push(s, model, quiet=True)
                switched_s = time.perf_counter() - t0
            switched_wire = wire.take()
    result = {
        "model": args.model, "baud": args.baud, "weight_bytes": payload,
        "session_setup_bytes": setup,
        "prune8_push": {"wire_bytes": ours, "per_weight_byte": ours / payload,
                        "seconds": ours_s, "retries": pushed["retries"]},
        "mpremote_cp": {"wire_bytes": mp, "per_weight_byte": mp / payload, "seconds": mp_s},
        "window": link.WINDOW, "timed": not args.untimed,
        "fewer_wire_bytes": mp / ours, "faster": mp_s / ours_s,
        "push_over_weight_line_time": ours_s / (payload * 10 / args.baud) if args.baud else None,
        "baud_switch": switch,
    }
    if switch:
        result["switched_push"] = {
            "seconds": switched_s, "wire_bytes": switched_wire, "retries": switched["retries"],
            "over_weight_line_time": switched_s / (payload * 10 / args.baud) if args.baud
            else None}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"transfer of {payload} weight bytes ({args.model}) to a virtual board paced at "
          f"{args.baud} baud, {'untimed' if args.untimed else 'timed'}, window {link.WINDOW}")
    print(f"  prune8 push   {ours:>7} wire bytes  {ours / payload:5.3f} per weight byte "
          f"(goal <= 1.10)  {ours_s:6.2f} s")
    if not args.no_mpremote:
        print(f"  mpremote cp   {mp:>7} wire bytes  {mp / payload:5.3f} per weight byte      "
              f"           {mp_s:6.2f} s")
        print(f"  prune8 sends {mp / ours:.1f}x fewer bytes (goal >= 3x) and takes "
              f"{mp_s / ours_s:.1f}x less time; opening a session costs {setup} bytes either "
              f"way")
    if args.baud:
        line = payload * 10 / args.baud
        print(f"  push wall time {ours_s:.2f} s = {ours_s / line:.2f}x the {line:.2f} s its "
              f"weight bytes need at {args.baud} baud")
        if switch:
            print(f"  push with a baud switch to {switch} for the bulk: {switched_s:.2f} s = "
                  f"{switched_s / line:.2f}x that line time (goal <= 0.40x), "
                  f"{switched['retries']} retries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
