"""The whole in-RAM prune of a stored layer on the MicroPython unix port, portable
against viper kernels, and where its time goes.

    python bench/bench_prune.py [--json]

Runs bench/board_prune.py on the unix port (x86-64, the only MicroPython here with the
native emitter), each job in a process of its own with a heap of the esp32 profile's
budget (100,000 bytes), as a board runs one prune from boot, and the viper kernels
compiled for the port as a native build ships them: prune_model.prune_result() of one
stored 2,048-weight layer (32 x 64, magnitude and min-cut at 50 %; each timing starts
from the same masks.bin, which holds that layer's mask alone), best of 31 in each of 5
processes, with each kernel set; then each of its steps timed apart (the model index,
the Pruner and buffers, loading the layer, scoring, the mask, a gc.collect(), writing
and committing masks.bin); and the streamed prune of a stored 65,536-weight layer, once
per process, best of 15. The two kernel sets' processes take turns. Goals (issue 21):
viper >= 3x faster than portable for the whole in-RAM prune, >= 8x streamed. Absolute
figures are this machine's.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tests/support
from support.unix_port import UnixPort, unix_build  # noqa: E402

SCRIPT = Path(__file__).with_name("board_prune.py")
STREAMED_RUNS = 15  # a streamed prune per process (board_prune.py), best of these
WHOLE_RUNS = 5      # processes per kernel set for the in-RAM prune (ROUNDS each), best of
STEPS = ("index", "buffers", "load", "score", "check of a view", "mask", "gc.collect",
         "masks file")
# The store on a RAM filesystem where there is one: a rename over a file on a host disk
# (ext4) waits for the new file's data to be written back, milliseconds that say
# nothing about a board's flash, and swamped the prune's own time.
RAM_DIR = "/dev/shm" if os.path.isdir("/dev/shm") else None


def script_sections() -> dict[str, str]:
    """board_prune.py's sections by name (`#= NAME` lines start them), comment lines
    left out: a job's source is on the heap while it compiles."""
    sections: dict[str, list[str]] = {}
    lines = None
    for line in SCRIPT.read_text().splitlines():
        if line.startswith("#= "):
            lines = sections.setdefault(line[3:].strip(), [])
        elif lines is not None and not line.lstrip().startswith("#"):
            lines.append(line)
    return {name: "\n".join(body) + "\n" for name, body in sections.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="prune8-bench-", dir=RAM_DIR) as d:
        d = Path(d)
        profile = load_board("esp32")
        # The budget is the heap: a collection's cost grows with the heap, and a prune
        # near the budget collects more often (the kernels' benchmark uses 8 MB)
        port = UnixPort(unix_build(profile, d / "build"), profile.heap_bytes, d)
        (d / "store").mkdir()
        store = port.rel(d / "store")

        sections = script_sections()

        def job(name, **more):
            parts = ("prelude", "prune", name) if name in ("whole", "streamed") else \
                ("prelude", name)
            code = (f"ARGS = {dict(store=store, job=name, **more)!r}\n"
                    + "".join(sections[part] for part in parts))
            return json.loads(port.run(code, timeout=600).strip().splitlines()[-1])

        first = job("store")
        report = {"micropython": first["micropython"], "sets": first["sets"],
                  "heap_bytes": profile.heap_bytes, "whole": {}, "steps": {},
                  "streamed": {}, "streamed_loaded": {}, "heap_peak": {}}
        sets = report["sets"]
        # The kernel sets' processes take turns, so that a busy moment of this shared
        # machine falls on both alike, and each figure is the best of its set's turns.
        for _ in range(WHOLE_RUNS):
            for s in sets:
                whole = job("whole", set=s)
                if whole["set"] != s:
                    raise SystemExit(f"asked for the {s} kernels, the port ran {whole['set']}")
                for m, (us, peak) in whole["out"].items():
                    best = report["whole"].setdefault(s, {})
                    best[m] = min(us, best.get(m, us))
                    top = report["heap_peak"].setdefault(s, {})
                    top[m] = max(peak, top.get(m, peak))
        for s in sets:
            report["steps"][s] = job("steps", set=s)["out"]
        for m in ("magnitude", "mincut"):
            runs = {s: [] for s in sets}
            for _ in range(STREAMED_RUNS):
                for s in sets:
                    runs[s].append(job("streamed", set=s, method=m)["out"])
            for s in sets:
                # from boot: the prune and the loading of its kernels
                report["streamed"].setdefault(s, {})[m] = min(us + ld for us, ld, _ in runs[s])
                report["streamed_loaded"].setdefault(s, {})[m] = min(us for us, _, _ in runs[s])
                report["heap_peak"][s]["streamed " + m] = max(peak for _, _, peak in runs[s])
    report["host"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"whole in-RAM prune of a stored 2,048-weight layer, MicroPython "
          f"{'.'.join(map(str, report['micropython']))} unix port ({report['host']}), "
          f"heap {report['heap_bytes']:,} bytes, us")
    for method in ("magnitude", "mincut"):
        whole = {s: report["whole"][s][method] for s in sets}
        ratio = (f"  viper {whole['python'] / whole['viper']:.1f}x faster (goal >= 3x)"
                 if "viper" in whole else "")
        print(f"  {method:<9} " + "  ".join(f"{s} {us:>6}" for s, us in whole.items()) + ratio)
        for step in STEPS:
            print(f"    {step:<15} " + "  ".join(
                f"{s} {report['steps'][s][method][step]:>6}" for s in sets))
    print("streamed prune of a stored 65,536-weight layer (256 x 256, tiles of 2,048), us, "
          "from boot (its kernels loaded in the time) and once they are loaded")
    for method in ("magnitude", "mincut"):
        st = {s: report["streamed"][s][method] for s in sets}
        loaded = {s: report["streamed_loaded"][s][method] for s in sets}
        ratio = (f"  viper {st['python'] / st['viper']:.1f}x faster from boot, "
                 f"{loaded['python'] / loaded['viper']:.1f}x loaded (goal >= 8x)"
                 if "viper" in st else "")
        print(f"  {method:<9} " + "  ".join(f"{s} {st[s]:>6} / {loaded[s]:>6}" for s in sets)
              + ratio)
    print("heap peak from boot (prune_result's report), bytes: " + "; ".join(
        f"{s} " + ", ".join(f"{k} {v:,}" for k, v in peaks.items())
        for s, peaks in report["heap_peak"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
