"""The whole in-RAM prune of a stored layer on the MicroPython unix port, portable
against viper kernels, and where its time goes.

    python bench/bench_prune.py [--json]

Runs bench/board_prune.py on the unix port (x86-64, the only MicroPython here with the
native emitter): prune_model.prune_result() of one stored 2,048-weight layer (32 x 64,
magnitude and min-cut at 50 %; each set starts from the same masks.bin, which holds that
layer's mask alone), best of 31, with each kernel set; then each of its steps
timed apart (the model index, the Pruner and buffers, loading the layer, scoring, the
mask, a gc.collect(), writing and committing masks.bin); and the streamed prune of a
stored 65,536-weight layer. Goals (issue 21): viper >= 3x faster than portable for the
whole in-RAM prune, >= 8x streamed. Absolute figures are this machine's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

from prune8_host.boards import load_board
from prune8_host.device.build import build_firmware

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support
from support.unix_port import UnixPort  # noqa: E402

SCRIPT = Path(__file__).with_name("board_prune.py")
# An ESP32's MicroPython heap is some 110-160 KB; a collection's cost grows with the
# heap, so this run gets a heap of that order (the kernels' benchmark uses 8 MB).
HEAP_BYTES = 300_000
# The store on a RAM filesystem where there is one: a rename over a file on a host disk
# (ext4) waits for the new file's data to be written back, milliseconds that say
# nothing about a board's flash, and swamped the prune's own time.
STEPS = ("index", "buffers", "load", "score", "check of a view", "mask", "gc.collect",
         "masks file")
RAM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="prune8-bench-", dir=RAM_DIR) as d:
        d = Path(d)
        profile = load_board("esp32")
        build = build_firmware(profile, out_root=d / "build")
        port = UnixPort(build.package_dir.parent, HEAP_BYTES, d)
        (d / "store").mkdir()
        code = f"ARGS = {{'store': {port.rel(d / 'store')!r}}}\n" + SCRIPT.read_text()
        report = json.loads(port.run(code, timeout=600).strip().splitlines()[-1])
    report["host"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"whole in-RAM prune of a stored 2,048-weight layer, MicroPython "
          f"{'.'.join(map(str, report['micropython']))} unix port ({report['host']}), us")
    sets = report["sets"]
    for method in ("magnitude", "mincut"):
        whole = {s: report["whole"][s][method] for s in sets}
        ratio = (f"  viper {whole['python'] / whole['viper']:.1f}x faster (goal >= 3x)"
                 if "viper" in whole else "")
        print(f"  {method:<9} " + "  ".join(f"{s} {us:>6}" for s, us in whole.items()) + ratio)
        for step in STEPS:
            print(f"    {step:<15} " + "  ".join(
                f"{s} {report['steps'][s][method][step]:>6}" for s in sets))
    print("streamed prune of a stored 65,536-weight layer (256 x 256, tiles of 2,048), us")
    for method in ("magnitude", "mincut"):
        st = {s: report["streamed"][s][method] for s in sets}
        ratio = (f"  viper {st['python'] / st['viper']:.1f}x faster (goal >= 8x)"
                 if "viper" in st else "")
        print(f"  {method:<9} " + "  ".join(f"{s} {us:>8}" for s, us in st.items()) + ratio)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
