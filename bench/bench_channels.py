"""Channel groups removed for real (docs/channels.md): dense vs shrunk .tflite, measured
by TFLM's interpreter on this host in the same run — weight bytes, MACs, arena, invoke
time (median of interleaved invokes) — for the zoo's look-alikes of real models at 30 %
of channels and the project's MobileNet-style CNN (examples/digits_mobilenet.tflite) at
30 % and 50 %; scale-aware L1 (`scaled`) scores.

    python bench/bench_channels.py [--json]        (make bench runs it)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "eval"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_twin import machine  # noqa: E402

from prune8_eval import zoo  # noqa: E402
from prune8_host.files import footprint  # noqa: E402
from prune8_host.files.graph import groups_of  # noqa: E402
from prune8_host.files.tflite import parse  # noqa: E402
from prune8_host.files.tflite_shrink import shrink  # noqa: E402
from prune8_host.twin import tflm  # noqa: E402
from prune8_host.twin.channels import group_masks  # noqa: E402
from prune8_host.twin.layer import PruneOptions  # noqa: E402

MOBILENET = ROOT / "examples" / "digits_mobilenet.tflite"


def models() -> list[tuple[str, bytes, int]]:
    out = [(name, make(), 3000) for name, make in zoo.MODELS.items()]
    return out + [("digits_mobilenet (examples/)", MOBILENET.read_bytes(), bp)
                  for bp in (3000, 5000)]


def measure(name: str, data: bytes, bp: int) -> dict:
    tm = parse(data, name)
    groups = [g for g in groups_of(tm) if g.prunable]
    _, keeps = group_masks(tm.layers, [(g.channels, g.members) for g in groups],
                           PruneOptions("scaled", sparsity_bp=bp))
    small = shrink(tm, {g.number: k for g, k in zip(groups, keeps)})
    images = tflm.drawn_inputs(data, 32)
    c = footprint.compare(data, small.data, images, "32 drawn inputs")
    exact = tflm.drift(small.zeroed, small.data, images)["max_int8"]
    return {"model": name, "channels_bp": bp, "groups": len(groups), **c["ratio"],
            "dense_invoke_us": c["dense"]["invoke_us"], "small_invoke_us": c["small"]["invoke_us"],
            "vs_zeroed_max_int8": exact}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = [measure(*m) for m in models()]
    if args.json:
        print(json.dumps({"machine": machine(), "rows": rows}))
        return 0
    print(f"bench_channels: TFLM on this host ({machine()}); ratios small/dense, same run")
    print("| model | channels removed | groups | weight bytes | MACs | TFLM arena | file | "
          "invoke dense -> small | speed-up | small vs channel-zeroed |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['channels_bp'] // 100} % | {r['groups']} | "
              f"{r['weight_bytes']:.2f}x | {r['macs']:.2f}x | {r['arena_bytes']:.2f}x | "
              f"{r['file_bytes']:.2f}x | {r['dense_invoke_us']:.1f} -> "
              f"{r['small_invoke_us']:.1f} us | {r['speedup']:.2f}x | "
              + ("exact" if r["vs_zeroed_max_int8"] == 0 else
                 f"up to {r['vs_zeroed_max_int8']} int8 steps") + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
