# A layer bigger than RAM on the board (docs/streaming.md): 256 x 256 weights made by an
# LCG, pushed through the real receiver into a store of its own (ARGS["scratch"], so the
# board's own /prune8/ files are not touched), then, each from a soft reset as `prune8
# run` prunes, pruned from flash tile by tile with magnitude and with min-cut; each
# mask's CRC-32 must equal the twin's (ARGS["stream_masks"], computed by the runner from
# the same LCG). The peak heap each prune reports counts from boot, as the tools' report
# does (docs/heap.md). The checks run from a boot of their own, after both prunes, so
# that what a board holds while it prunes is the prune and not the checks' code.
import os
import sys

import prune8.formats as F

SCRATCH = ARGS["scratch"]  # noqa: F821 - the runner's
BOARD_ROOT = F.ROOT
ROWS = COLS = 256


def move_store(old, new):
    # Modules bind the store paths when imported: move them in every loaded prune8
    # module. None is imported twice, so the heap is laid out as for a prune on the
    # board (dropping the modules and importing them again fragments it). Names come
    # from each module's dict: dir() would probe every interned name, and
    # prune8.errors answers a name it lacks by loading its message modules (16 KB).
    for name, m in list(sys.modules.items()):
        if name == "prune8" or name.startswith("prune8."):
            for k in list(m.__dict__):
                if k == "ROOT" or k.endswith("_PATH"):
                    setattr(m, k, new + getattr(m, k)[len(old):])


def report(i, result):
    # The i-th prune's case: it ran, streamed the layer and stayed in the budget; its
    # masks are kept for the check of their bits, which runs after both prunes
    method = ARGS["stream_masks"][i][0]  # noqa: F821
    if not result["ok"]:
        print("CASE stream-%s-prune FAIL %s" % (method, result["error"]))
        return
    os.rename(F.MASKS_PATH, "%s.%d" % (F.MASKS_PATH, i))
    peak = result["heap_peak"]
    budget = ARGS["heap_bytes"]  # noqa: F821
    if not result["layers"][0]["streamed"]:
        print("CASE stream-%s-prune FAIL the layer was not streamed" % method)
    elif peak > budget:
        print("CASE stream-%s-prune FAIL %d bytes from boot, over the budget of %d"
              % (method, peak, budget))
    else:
        print("CASE stream-%s-prune PASS heap=%d" % (method, peak))


# -- soft reset --
# The push, through the receiver's handlers called directly (no frames).
import struct  # noqa: E402

import prune8.protocol as P  # noqa: E402
from prune8 import push  # noqa: E402


class NoLink:
    pass


def push_layer():
    r = push.ModelReceiver(NoLink())
    r.begin(struct.pack(P.BEGIN_FMT, 1, 0))
    name = b"conv"
    # CRC 0, not announced: the receiver fills the record's CRC in at the layer's end
    r.layer(bytes([len(name)]) + name + struct.pack(P.LAYER_FMT, ROWS, COLS, 0, 0, 0, 0, 0,
                                                    0, 0, 0, 0, 0))
    chunk = bytearray(P.MAX_PAYLOAD)
    seed = 12345
    for _ in range(ROWS * COLS // P.MAX_PAYLOAD):
        for j in range(P.MAX_PAYLOAD):
            seed = (seed * 1103515245 + 12345) & 0x3FFFFFFF
            chunk[j] = seed >> 22
        r.data(chunk)
    r.end(b"")


move_store(BOARD_ROOT, SCRATCH)
try:
    os.mkdir(SCRATCH)
except OSError:  # left by a run that stopped midway: its masks and reports go
    for name in os.listdir(SCRATCH):
        os.remove(SCRATCH + "/" + name)
push_layer()
print("CASE stream-push PASS")
# -- soft reset --
# Each prune from a fresh boot, as `prune8 run` gives it, in commands of its own with as
# little of the suite's on the heap as can be (no measure.py: the script uses none of its
# helpers), so the peak it reports, from boot, is the prune's: the import and the
# store's move come first, then a collection in a command of its own (the virtual board
# collects only between commands).
import gc  # noqa: E402

from prune8 import prune_model  # noqa: E402

# -- next command --
move_store(BOARD_ROOT, SCRATCH)
# -- next command --
gc.collect()
# -- next command --
report(0, prune_model.prune_result(ARGS["stream_masks"][0][0], 5000))  # noqa: F821
# -- soft reset --
import gc  # noqa: E402

from prune8 import prune_model  # noqa: E402

# -- next command --
move_store(BOARD_ROOT, SCRATCH)
# -- next command --
gc.collect()
# -- next command --
report(1, prune_model.prune_result(ARGS["stream_masks"][1][0], 5000))  # noqa: F821
# -- soft reset --
# Each mask's bits checked (from a boot of their own: the check's code is not on the heap
# while a prune runs), then the scratch store removed, in a command of its own, so a
# failed check still leaves nothing behind.
from binascii import crc32  # noqa: E402 - in C on every port the suite runs on


def mask_crc(path):
    """CRC-32 of the mask words in `path`, read a piece at a time (the heap is the
    budget)."""
    from prune8 import store
    _, masks = store.read_masks_index(path)
    crc = 0
    buf = bytearray(256)
    with open(path, "rb") as f:
        f.seek(masks[0].offset)
        left = masks[0].nbytes
        while left:
            k = f.readinto(buf)
            k = k if k < left else left
            crc = crc32(memoryview(buf)[:k], crc)
            left -= k
    return crc


def check_case(i):
    method, want = ARGS["stream_masks"][i]  # noqa: F821
    try:
        got = mask_crc("%s.%d" % (F.MASKS_PATH, i))
    except OSError:
        print("CASE stream-%s FAIL no masks: the prune failed" % method)
        return
    if got != want:
        print("CASE stream-%s FAIL mask CRC %08x, the twin's %08x" % (method, got, want))
    else:
        print("CASE stream-%s PASS" % method)


move_store(BOARD_ROOT, SCRATCH)
check_case(0)
check_case(1)
# -- next command --
for name in os.listdir(SCRATCH):
    os.remove(SCRATCH + "/" + name)
os.rmdir(SCRATCH)
move_store(SCRATCH, BOARD_ROOT)
