# A layer bigger than RAM on the board (docs/streaming.md): 256 x 256 weights made by an
# LCG, pushed through the real receiver into a store of its own (ARGS["scratch"], so the
# board's own /prune8/ files are not touched), then, from a soft reset as `prune8 run`
# prunes, pruned from flash tile by tile with magnitude and min-cut; each mask's CRC-32
# must equal the twin's (ARGS["stream_masks"], computed by the runner from the same
# LCG). The peak heap each prune reports counts from boot, as the tools' report does
# (docs/heap.md).
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
except OSError:
    pass
push_layer()
print("CASE stream-push PASS")
# -- soft reset --
# The prunes, from a fresh boot as `prune8 run` gives them, each in a command of its own
# with as little of the suite's on the heap as can be (no measure.py: the script uses
# none of its helpers; the mask checks defined after both prunes), so the peak each
# reports, from boot, is the prune's: the import and the store's move come first, then
# a collection in a command of its own (the virtual board collects only between
# commands). The first prune's masks are kept aside for the check. Then the scratch
# store is removed, in a command of its own, so a failed prune still leaves nothing
# behind.
import gc  # noqa: E402

from prune8 import prune_model  # noqa: E402

# -- next command --
move_store(BOARD_ROOT, SCRATCH)
# -- next command --
gc.collect()
# -- next command --
R0 = prune_model.prune_result(ARGS["stream_masks"][0][0], 5000)  # noqa: F821
# -- next command --
if R0["ok"]:
    os.rename(F.MASKS_PATH, F.MASKS_PATH + ".0")
# -- next command --
R1 = prune_model.prune_result(ARGS["stream_masks"][1][0], 5000)  # noqa: F821
# -- next command --
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


def check_case(i, result, path):
    method, want = ARGS["stream_masks"][i]  # noqa: F821
    if not result["ok"]:
        print("CASE stream-%s FAIL %s" % (method, result["error"]))
        return
    got = mask_crc(path)
    peak = result["heap_peak"]
    budget = ARGS["heap_bytes"]  # noqa: F821
    if got != want:
        print("CASE stream-%s FAIL mask CRC %08x, the twin's %08x" % (method, got, want))
    elif not result["layers"][0]["streamed"]:
        print("CASE stream-%s FAIL the layer was not streamed" % method)
    elif peak > budget:
        print("CASE stream-%s FAIL %d bytes from boot, over the budget of %d:"
              % (method, peak, budget))
    else:
        print("CASE stream-%s PASS heap=%d" % (method, peak))


check_case(0, R0, F.MASKS_PATH + ".0")
check_case(1, R1, F.MASKS_PATH)
# -- next command --
for name in os.listdir(SCRATCH):
    os.remove(SCRATCH + "/" + name)
os.rmdir(SCRATCH)
move_store(SCRATCH, BOARD_ROOT)
