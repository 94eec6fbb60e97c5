# prune(): score and mask the model stored on the board (/prune8/model.bin) layer by
# layer, exactly as prune8_host.twin.reference.layer_mask computes each mask, and save
# the masks in /prune8/masks.bin. Prints one JSON line for the host. The rules:
# docs/spec.md §2-§4, §7.2 (steps), §5.3 (layers bigger than RAM), §6.2 (checks).
#
# A layer that fits the Pruner's buffers is read whole and pruned in RAM; a bigger one
# is pruned from flash tile by tile (prune8.stream), with the same result bit for bit.

import gc
import json
from array import array

from . import check, errors, scorers, store
from . import mask as _mask
from .formats import LAYER_SCOPES, MASKS_MAGIC, MASKS_PATH, MODEL_PATH, SCORERS
from .profile import MAX_UNITS, MAX_WEIGHTS
from .pruner import Pruner
from .select import BUBBLE_MAX
from .stream import LayerStream
from .tiles import BLOCK, WEIGHT, TiledMask


def _score(p, entry, info, w, a, sumsq, scale, opts):
    # Score the first n bytes of the preallocated buffers in place: a memoryview slice
    # is a view, not a second copy of the layer. A layer that fills the buffer gets the
    # bytearray itself: the Pruner's check of a view reads every value in Python (a view
    # might be of a wide array), which took longer than viper's scoring kernels.
    entry[2](p, w if info.n == len(w) else memoryview(w)[:info.n], info, a, sumsq, scale,
             opts)


def heap_now():
    """The heap held, after a collection (0 where gc cannot say: CPython)."""
    gc.collect()
    return gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0


def zero_pruned(w, mask, method, info, block):
    """Zero, in w, the weights a mask prunes (whole rows, columns or blocks for those)."""
    unit = scorers.unit(method)
    if unit == WEIGHT:
        mask.apply(w, info.n)
        return
    br, bc = block or (1, 1)
    tiled = TiledMask(unit, info.rows, info.cols, br, bc, 0)
    tiled.use(mask._bits)
    tiled.zero(w, 0, info.n, 0)


def fits(info, max_weights, max_units):
    """Whether a layer's weights, rows and columns fit buffers of this capacity."""
    return info.n <= max_weights and info.rows <= max_units and info.cols <= max_units


def in_ram(p, info, method, block):
    """Whether the Pruner's buffers hold the layer (and its blocks) whole."""
    if not fits(info, p.max_weights, p.max_units):
        return False
    if scorers.unit(method) != BLOCK or not block or block[0] < 1 or block[1] < 1 \
            or info.rows % block[0] or info.cols % block[1]:
        return True  # no blocks, or bad ones: the Pruner's checks report them
    return scorers.unit_count(BLOCK, info.rows, info.cols, block[0], block[1]) <= p.max_blocks


def _scoped_mask(p, info, bp, opts, margs):
    if opts["scope"] == "channel":
        return p.channel_mask(info.rows, info.cols, sparsity_bp=bp, **margs)
    return p.mask(sparsity_bp=bp, **margs)


def _layer_mask(p, method, info, w, a, sumsq, scale, opts):
    """The layer's mask, exactly as prune8_host.twin.reference.layer_mask computes it."""
    block, nm, steps = opts["block"], opts["nm"], opts["steps"]
    entry = scorers.TABLE[method]
    scorers.missing(info, entry[1], block)
    margs = {"tie": opts["tie"], "min_keep": opts["min_keep"], "min_score": opts["min_score"]}
    if nm:
        _score(p, entry, info, w, a, sumsq, scale, opts)
        return p.nm_mask(nm[0], nm[1], info.rows, info.cols)
    if not steps:
        _score(p, entry, info, w, a, sumsq, scale, opts)
        return _scoped_mask(p, info, opts["bp"], opts, margs)
    from .schedule import sparsity_at  # a gradual prune's alone: loaded when asked for
    running = None
    for t in range(1, steps + 1):
        _score(p, entry, info, w, a, sumsq, scale, opts)
        m = _scoped_mask(p, info, sparsity_at(t, steps, opts["bp"]), opts, margs)
        if running is None:
            running = m.copy()
        else:
            rb, mb = running._bits, m._bits
            nbytes = ((m.n + 31) >> 5) << 2
            for j in range(nbytes):
                rb[j] &= mb[j]
            running.pruned = m.n - _mask.popcount(rb, nbytes)
        zero_pruned(w, running, method, info, block)
    return running


def _write_mask_header(f, info, n, opts, method, bp):
    br, bc = opts["block"] or (0, 0)
    nm_n, nm_m = opts["nm"] or (0, 0)
    store.write_mask_header(f, info.name, method, opts["tie"], bp, opts["min_keep"],
                            opts["min_score"], n, info.rows, info.cols, opts["seed"], br, bc,
                            nm_n, nm_m, opts["steps"], opts["scope"])


def prune(method, sparsity_bp, tie="exact", min_keep=1, min_score=0, layers=None, seed=0,
          block=None, nm=None, steps=0, scope="layer", tile=None):
    """Mask the stored model's layers; write /prune8/masks.bin. Prints prune_result()'s
    report as one JSON line (what the host reads)."""
    print(json.dumps(prune_result(method, sparsity_bp, tie, min_keep, min_score, layers,
                                  seed, block, nm, steps, scope, tile)))


def prune_result(method, sparsity_bp, tie="exact", min_keep=1, min_score=0, layers=None,
                 seed=0, block=None, nm=None, steps=0, scope="layer", tile=None):
    """prune(), returning its report: {"ok": True, "model_id", "layers": [each layer's
    mask counts and whether it was streamed from flash], "heap_peak": the most allocated
    after a collection at the end of each pass, counted from boot (docs/heap.md)}; or
    {"ok": False, "error", "type"}.

    tile: stream every layer in tiles of this many weights (default: only the layers
    too big for the Pruner, in tiles of its capacity)."""
    # A prune in RAM collects once, at the end of each layer's pass (its peak, which
    # holds all that is held then): a collection costs as much as viper's whole mask.
    top = 0
    try:
        if method not in SCORERS:
            raise errors.option("method", method, SCORERS)
        if not check.is_int(steps) or steps < 0 or steps > errors.MAX_STEPS:
            raise errors.steps_value(steps, errors.MAX_STEPS)
        if scope not in LAYER_SCOPES:  # "group" is prune8.channels' scope
            raise errors.option("scope", scope, LAYER_SCOPES)
        needs = scorers.TABLE[method][1]
        mid, index = store.read_model_index()
        names = [i.name for i in index]
        for name in layers or ():
            if name not in names:
                raise errors.no_layer(name, names)
        chosen = [i for i in index if not layers or i.name in layers]
        kept = []  # masks of other layers that stay valid for this model
        if layers and store.exists(MASKS_PATH):
            old_id, old = store.read_masks_index()
            if old_id == mid:
                kept = [m for m in old if m.name not in layers]
        # A layer streamed from flash allocates its arrays, tile buffers and files while
        # the prune runs: with the garbage of the imports and the index collected first,
        # before the buffers and again before the layers, a board's heap still has room
        # in one piece then (docs/heap.md: on the unix port ~1 KB less heap for
        # digits_wide's prunes). A prune in RAM skips both: the Pruner is all it needs.
        streams = tile is not None or not all(fits(i, MAX_WEIGHTS, MAX_UNITS)
                                              for i in chosen)
        if streams:
            gc.collect()
        # The Pruner sorts no more than method="auto" hands bubble sort: its copy of the
        # scores would be 2 bytes a weight held for nothing (docs/heap.md).
        p = Pruner(MAX_WEIGHTS, MAX_UNITS, BUBBLE_MAX)
        w = bytearray(MAX_WEIGHTS)
        a = bytearray(MAX_WEIGHTS) if needs & scorers.ACT else None  # only if read
        streamer = None
        if streams:
            streamer = LayerStream(p, tile, w, a)
            gc.collect()
        # w is still zeros: no bytes(k) left as garbage; each only for a scorer that reads it
        sumsq = array("i", memoryview(w)[:MAX_UNITS]) if needs & scorers.CALIB else None
        scale = array("i", memoryview(w)[:MAX_UNITS]) if needs & scorers.SCALES else None
        opts = {"bp": sparsity_bp, "tie": tie, "min_keep": min_keep, "min_score": min_score,
                "seed": seed, "block": block, "nm": nm, "steps": steps, "scope": scope}
        report = []
        # the model file opened once for every layer held in RAM (a file object per
        # layer was garbage a board must collect, and the VM holds to the end)
        with store.Replacing(MASKS_PATH) as f, open(MODEL_PATH, "rb") as model:
            store.write_header(f, MASKS_MAGIC, mid, len(kept) + len(chosen))
            if kept:  # one file object for all of them
                with open(MASKS_PATH, "rb") as src:
                    for m in kept:
                        m.write_header(f)
                        src.seek(m.offset)
                        # a mask of 65,536 weights is 8 KB: through w, not read at once
                        store.copy_bytes(src, f, m.nbytes, w, "masks file")
            calibrated = {}
            if needs & scorers.ACT:  # the gradient proxy's alone: loaded when asked for
                from .calib import read_calib
                calibrated = read_calib(mid)
            for info in chosen:
                streamed = tile is not None or not in_ram(p, info, method, block)
                if streamed:
                    if streamer is None:
                        streamer = LayerStream(p, tile, w, a)
                    streamer.prepare(info, method, opts, calibrated.get(info.name))
                    n = streamer.count
                    _write_mask_header(f, info, n, opts, method, sparsity_bp)
                    pruned = streamer.write_mask(f)
                    peak = streamer.peak
                else:
                    if scale is not None:
                        for r in range(info.rows):
                            scale[r] = errors.MAX_SCALE  # one scale for the layer, unless stored
                    store.load_layer(info, w, a, sumsq, scale=scale, f=model)
                    if info.name in calibrated:  # the board's own statistic wins
                        info.act_len = len(calibrated[info.name])
                        a[:info.act_len] = calibrated[info.name]
                    mask = _layer_mask(p, method, info, w, a, sumsq, scale, opts)
                    n = mask.n
                    _write_mask_header(f, info, n, opts, method, sparsity_bp)
                    f.write(memoryview(mask._bits)[:((mask.n + 31) >> 5) << 2])  # no copy
                    pruned = mask.pruned
                    peak = heap_now()
                if peak > top:
                    top = peak
                report.append({"layer": info.name, "n": n, "pruned": pruned,
                               "streamed": streamed})
        if not chosen:  # no pass measured the heap: what is held now
            top = heap_now()
        return {"ok": True, "model_id": mid, "layers": report, "heap_peak": top}
    except OSError as e:
        return {"ok": False, "error": store.oserror_text(e, "saving the masks")}
    except Exception as e:
        return {"ok": False, "error": str(e), "type": type(e).__name__}

gc.collect()  # the loading's garbage, before a prune's buffers look for room (prune8/__init__)
