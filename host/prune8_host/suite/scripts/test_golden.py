# Golden vectors from the twin (prune8_host.suite.golden), checked on the board: scores, mask,
# pruned weights, or the exact error class and message, for every case. ticks_us and
# ticks_diff are measure.py's (the runner puts it before this script). The script runs in
# the board's heap budget, counted from boot: a case's blobs are read into buffers of
# their own and checked in place, never copied.
import gc
import json
import struct
from array import array

import prune8
from prune8.formats import GOLDEN_CASE, GOLDEN_HEAD, GOLDEN_MAGIC

PRUNERS = {}
# gc.mem_alloc is MicroPython's: a port without it measures no allocation.
MEASURE = hasattr(gc, "mem_alloc")


def pruner(cap):
    key = (cap[0], cap[1])
    if key not in PRUNERS:
        PRUNERS.clear()
        gc.collect()
        PRUNERS[key] = prune8.Pruner(cap[0], cap[1])
    return PRUNERS[key]


def read_case(f):
    size = struct.unpack(GOLDEN_CASE, f.read(struct.calcsize(GOLDEN_CASE)))[0]
    head = json.loads(f.read(size))
    blobs = {}
    for name, n in head["blobs"]:
        blobs[name] = buf = bytearray(n)  # f.read(n) and a copy would hold it twice
        f.readinto(buf)
    return head, blobs


def weights(raw, kind):
    return array("b", raw) if kind == "array" else raw


def differs(values, blob, size):
    """The first index where values differs from blob's little-endian integers of
    `size` bytes (compared byte by byte: signed or not, and no big ints), or -1."""
    for i in range(len(blob) // size):
        v = values[i]
        for k in range(size):
            if (v >> (8 * k)) & 255 != blob[i * size + k]:
                return i
    return -1


def run_case(h, b):
    """None if the case passes, else what differed."""
    p = pruner(h["cap"])
    w = weights(b["w"], h["buffer"])
    a = b.get("a")
    op, rows, cols, margs, x = h["op"], h["rows"], h["cols"], h["mask"], h["extra"]
    expect = h["expect"]
    stage = "score"
    try:
        if op == "schedule":
            got = [prune8.sparsity_at(t, x["steps"], x["final"], x["initial"])
                   for t in x["at"]]
            if expect != "ok":
                return "no error, expected %r" % (expect,)
            return None if got == x["values"] else "schedule %r, expected %r" % (
                got, x["values"])
        if op in ("prune_rows", "prune_cols"):
            stage = "mask"
            m = getattr(p, op)(w, rows, cols, **margs)
        else:
            if op in ("magnitude", "l2"):
                getattr(p, op)(w)
            elif op == "random":
                p.random(x["n"], x["seed"])
            elif op == "gradient":
                p.gradient(w, a, h["grad_cols"])
            elif op == "wanda":
                p.wanda(w, rows, cols, x["sumsq"])
            elif op == "scaled":
                p.scaled(w, rows, cols, x["mults"])
            elif op == "blocks":
                p.blocks(w, rows, cols, x["block"][0], x["block"][1])
            else:
                getattr(p, op)(w, rows, cols)
            stage = "mask"
            if "nm" in x:
                m = p.nm_mask(x["nm"][0], x["nm"][1], rows, cols)
            elif "channel" in x:
                m = p.channel_mask(rows, cols, **margs)
            else:
                m = p.mask(**margs) if margs is not None else None
    except prune8.Prune8Error as e:
        got = [type(e).__name__, str(e), stage]
        return None if got == expect else "raised %r, expected %r" % (got, expect)
    if expect != "ok":
        return "no error, expected %r" % (expect,)
    if "scores" in b:
        size = 4 if op in ("rows", "cols", "blocks") else 2
        buf = p.units if size == 4 else p.scores
        if p.n != len(b["scores"]) // size:
            return "%d scores, expected %d" % (p.n, len(b["scores"]) // size)
        i = differs(buf, b["scores"], size)
        if i >= 0:
            return "score %d is %d, not the twin's" % (i, buf[i])
    if "mask" in b and m.bytes() != b["mask"]:
        return "mask differs: %s vs %s" % (m.words()[:4], b["mask"][:16])
    if "applied" in b:
        if op not in ("prune_rows", "prune_cols"):
            p.apply(w, m)
        if differs(w, b["applied"], 1) >= 0:
            return "pruned weights differ"
    return None


def main(path):
    with open(path, "rb") as f:
        if f.read(len(GOLDEN_MAGIC)) != GOLDEN_MAGIC:
            print("CASE golden-file FAIL %s is not a golden file" % path)
            return
        count = struct.unpack(GOLDEN_HEAD, f.read(struct.calcsize(GOLDEN_HEAD)))[0]
        for _ in range(count):
            h, b = read_case(f)
            gc.collect()
            a0 = gc.mem_alloc() if MEASURE else 0
            t0 = ticks_us()
            why = run_case(h, b)
            dt = ticks_diff(ticks_us(), t0)
            alloc = " alloc=%d" % (gc.mem_alloc() - a0) if MEASURE else ""
            if why is None:
                print("CASE %s PASS us=%d%s" % (h["name"], dt, alloc))
            else:
                print("CASE %s FAIL %s" % (h["name"], why))


main(ARGS["golden"])
