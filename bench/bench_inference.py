"""Microseconds per inference on the board: the dense kernel on the masked model against
the sparse kernel on its packed form in every format (and the smallest, which
`prune8 pack` picks), in the same run, at 50 / 75 / 90 % magnitude pruning of the
digits model. All give the same logits (tests/board/test_board_infer.py).

Runs on a virtual board (the MicroPython WebAssembly VM) unless --port names a real
one; VM figures show the ratio, not ESP32 speed.

    python bench/bench_inference.py [--port P]      (make bench runs it)
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from prune8.packed_format import PACKED_PATH
from prune8_host.device.connect import port_or_fresh_vboard
from prune8_host.device.deploy import deploy_build
from prune8_host.device.session import BoardSession
from prune8_host.device.transfer import put_file
from prune8_host.device.workflow import prune, pull, push
from prune8_host.files import packed as sparse
from prune8_host.files.model import load_model
from prune8_host.files.records import quant_params
from prune8_host.twin.layer import PruneOptions
from prune8_host.twin.reference import masked_model

MODEL = "examples/digits_mlp.npz"
BLOCK = {"block": (2, 2), "native": (0, 0), "csr": (0, 0), "coo": (0, 0)}
# Runs on the board: best of three loops of at least 300 ms each (the VM's tick counter
# moves in whole milliseconds).
TIMING = """
import json, time
from prune8 import infer
_, dense_net, _ = infer.network(True)
_, packed_net, _ = infer.packed_network()
del infer
x = bytearray(range(0, 256, 4))
def per_call(net):
    best = None
    for _ in range(3):
        n = 0
        t0 = time.ticks_us()
        while True:
            net.forward(x)
            n += 1
            dt = time.ticks_diff(time.ticks_us(), t0)
            if dt >= 300000:
                break
        us = dt / n
        best = us if best is None or us < best else best
    return best
print(json.dumps({"dense_us": per_call(dense_net), "packed_us": per_call(packed_net)}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", metavar="P")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    model = load_model(MODEL)
    rows = []
    with port_or_fresh_vboard(args.port) as port:
        deploy_build(port, "esp32")
        with BoardSession(port, timeout=60) as s:
            push(s, model, quiet=True)
            for bp in (5000, 7500, 9000):
                prune(s, PruneOptions("magnitude", sparsity_bp=bp))
                _, masks = pull(s, quiet=True)
                masked = masked_model(model, masks)
                for fmt in ("smallest", "native", "csr", "coo", "block"):
                    packed = {n: replace(sparse.pack_layer(l.weights) if fmt == "smallest"
                                         else sparse.encode(fmt, l.weights, *BLOCK[fmt]),
                                         quant=quant_params(l)) for n, l in masked.items()}
                    put_file(s, PACKED_PATH, sparse.packed_bytes(packed))
                    r = s.call_json(TIMING, timeout=120)
                    r.update(sparsity_bp=bp, kind=fmt,
                             formats={n: p.format for n, p in packed.items()},
                             flash_dense=sum(l.n for l in model.values()),
                             flash_packed=sum(p.size for p in packed.values()))
                    rows.append(r)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    where = args.port or "the virtual board (MicroPython VM)"
    print(f"digits MLP inference on {where}, magnitude pruning, same run")
    print(f"{'sparsity':>8} {'packed as':<16} {'dense us':>9} {'packed us':>10} "
          f"{'vs dense':>9} {'weight bytes':>13}")
    for r in rows:
        kind = r["kind"] if r["kind"] != "smallest" else \
            "smallest (" + "/".join(sorted(set(r["formats"].values()))) + ")"
        print(f"{r['sparsity_bp'] / 100:>7.0f}% {kind:<16} {r['dense_us']:>9.0f} "
              f"{r['packed_us']:>10.0f} {r['dense_us'] / r['packed_us']:>8.2f}x "
              f"{r['flash_packed']:>6}/{r['flash_dense']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
