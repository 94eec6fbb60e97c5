# A layer bigger than RAM on the board (docs/streaming.md): 256 x 256 weights made by an
# LCG, pushed through the real receiver into a store of its own (ARGS["scratch"], so the
# board's own /prune8/ files are not touched), pruned from flash tile by tile with
# magnitude and min-cut; each mask's CRC-32 must equal the twin's (ARGS["stream_masks"],
# computed by the runner from the same LCG). The peak heap it reports counts from boot
# and holds this script's own push and test data; the budget of a streamed prune from a
# fresh boot is checked by tests/board/test_board_stream.py (docs/heap.md).
import gc
import os
import struct
import sys

import prune8.protocol as P
from prune8 import prune_model, push, store  # every module the prune uses
from prune8.link import crc32_halves

SCRATCH = ARGS["scratch"]  # noqa: F821 - the runner's
BOARD_ROOT = P.ROOT
ROWS = COLS = 256


def move_store(old, new):
    # Modules bind the store paths when imported: move them in every loaded prune8
    # module. None is imported twice, so the heap is laid out as for a prune on the
    # board (dropping the modules and importing them again fragments it).
    for name, m in list(sys.modules.items()):
        if name == "prune8" or name.startswith("prune8."):
            for k in dir(m):
                if k == "ROOT" or k.endswith("_PATH"):
                    setattr(m, k, new + getattr(m, k)[len(old):])


move_store(BOARD_ROOT, SCRATCH)


class NoLink:  # the receiver's handlers are called directly: no frames
    pass


def push_layer():
    r = push.ModelReceiver(NoLink())
    r.begin(struct.pack(P.BEGIN_FMT, 1))
    name = b"conv"
    r.layer(bytes([len(name)]) + name + struct.pack(P.LAYER_FMT, ROWS, COLS, 0, 0, 0, 0, 0,
                                                    0, 0, 0, 0))
    chunk = bytearray(P.MAX_PAYLOAD)
    seed = 12345
    for _ in range(ROWS * COLS // P.MAX_PAYLOAD):
        for j in range(P.MAX_PAYLOAD):
            seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
            chunk[j] = seed >> 22
        r.data(chunk)
    r.end(b"")


def mask_crc():
    """CRC-32 of the mask words, read a piece at a time (the heap is the budget)."""
    _, masks = store.read_masks_index()
    lo = hi = 0
    buf = bytearray(256)
    with open(P.MASKS_PATH, "rb") as f:
        f.seek(masks[0].offset)
        left = masks[0].nbytes
        while left:
            k = f.readinto(buf)
            k = k if k < left else left
            lo, hi = crc32_halves(buf, k, lo, hi)
            left -= k
    return lo | (hi << 16)


def run():
    try:
        os.mkdir(SCRATCH)
    except OSError:
        pass
    push_layer()
    for method, want in ARGS["stream_masks"]:  # noqa: F821
        gc.collect()
        result = prune_model.prune_result(method, 5000)
        if not result["ok"]:
            print("CASE stream-%s FAIL %s" % (method, result["error"]))
            continue
        got = mask_crc()
        peak = result["heap_peak"]
        if got != want:
            print("CASE stream-%s FAIL mask CRC %08x, the twin's %08x" % (method, got, want))
        elif not result["layers"][0]["streamed"]:
            print("CASE stream-%s FAIL the layer was not streamed" % method)
        else:
            print("CASE stream-%s PASS us=0 alloc=%d" % (method, peak))


try:
    run()
finally:
    for name in os.listdir(SCRATCH):
        os.remove(SCRATCH + "/" + name)
    os.rmdir(SCRATCH)
    move_store(SCRATCH, BOARD_ROOT)
