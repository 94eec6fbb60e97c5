# Gradual pruning of a streamed layer (docs/spec.md §7.2): prune_model._layer_mask's
# steps, with what does not fit RAM in scratch files beside the model. Step t of
# gradual(s, out) prunes the weights as pruned so far to the schedule's bp at t
# (mask_writer.one_shot, into step.tmp); running.tmp becomes that mask (t = 1) or is
# AND-ed with it; before the next step, work.tmp becomes the weights with the running
# mask applied, and the layer stream s reads its weights from there. The last running
# mask goes to out; returns its pruned entries.

from . import mask as _mask
from . import store
from .formats import MASK_STEP_PATH, RUNNING_PATH, WORK_PATH
from .mask_writer import one_shot
from .schedule import sparsity_at
from .tiles import TiledMask, read_into, write_from


def gradual(s, out):
    opts = s.opts
    steps = opts["steps"]
    count = s.count
    nbytes = ((count + 31) >> 5) << 2
    info = s.info
    tiled = TiledMask(s.unit, info.rows, info.cols, s.br, s.bc, s.tile)
    kept = count
    for t in range(1, steps + 1):
        bp = sparsity_at(t, steps, opts["bp"])
        with open(MASK_STEP_PATH, "wb") as m:
            s.bits.reset()
            one_shot(s, bp, m)
        if t == 1:
            store.commit(MASK_STEP_PATH, RUNNING_PATH)
            kept = count - s.bits.pruned
        else:
            kept = _and_masks(s.bits, nbytes)
        if t < steps:
            _zero_work(s, tiled)
    with open(RUNNING_PATH, "rb") as src:
        _copy(src, out, nbytes, s.bits.view)
    return count - kept


def _and_masks(bits, nbytes):
    # running &= this step's mask (both files), through the halves of the bit writer's
    # buffer; returns the kept entries.
    tmp = store.tmp_path(RUNNING_PATH)
    buf = bits.window._bits
    half = len(buf) >> 1
    kept = 0
    with open(RUNNING_PATH, "rb") as a, open(MASK_STEP_PATH, "rb") as b, \
            open(tmp, "wb") as o:
        left = nbytes
        va = bits.view[:half]
        vb = bits.view[half:2 * half]
        while left:
            k = left if left < half else half
            read_into(a, va, k, "running mask")
            read_into(b, vb, k, "mask")
            for j in range(k):
                buf[j] &= buf[half + j]
            kept += _mask.popcount(buf, k)
            write_from(o, va, k)
            left -= k
    store.commit(tmp, RUNNING_PATH)
    return kept


def _zero_work(s, tiled):
    # The weights as pruned so far: the current ones with the running mask applied.
    n = s.info.n
    tmp = store.tmp_path(WORK_PATH)
    with open(RUNNING_PATH, "rb") as mf, open(tmp, "wb") as o:
        tiled.attach(mf, 0)
        s.start()
        i0 = 0
        while i0 < n:
            m = n - i0 if n - i0 < s.tile else s.tile
            s.read(i0, m)
            tiled.zero(s.w, 0, m, i0)
            write_from(o, s.wv, m)
            i0 += m
    s.use_work(tmp)
    s.sample_heap()


def _copy(src, dst, nbytes, view):
    left = nbytes
    size = len(view)
    while left:
        k = left if left < size else size
        read_into(src, view, k, "mask")
        write_from(dst, view, k)
        left -= k
