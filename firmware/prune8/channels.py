# prune_groups(): the channel groups of the stored model scored and masked on the board
# (docs/channels.md), exactly as prune8_host.twin.channels.group_masks computes them,
# the row masks saved in /prune8/masks.bin (scope "group"). Prints one JSON line.
#
# The groups come from the host in /prune8/groups.bin (groups_format.GROUP_RECORD: per
# member, which group channel each row or column of a layer makes or reads, as a table
# of P entries that repeats). A group channel's score is the sum of a per-weight
# scorer's scores over every weight the channel owns (its rows) or is read by (its
# columns), capped at MAX_SMALL; each group then prunes its k lowest channels, k =
# prune_count(channels, bp, min(min_keep, channels)), ties by the tie rule.
#
# Every stored layer is read a tile of weights at a time, whatever its size: nothing
# is held whole but a group's scores (one int32 per channel) and a member's table. The
# sums saturate at MAX_SMALL as they go: the scores are not negative, so that is the
# capped sum, and no value passes a small int. calib.bin is not read: activations are
# the stored layer's own (a .tflite has none).

import gc
import json
import struct
from array import array

from . import bp as _bp
from . import check, errors, kernels, scorers, scores, store
from . import select as _select
from .formats import MASKS_MAGIC, MASKS_PATH, MODEL_PATH, SCORERS, STORE_HEAD
from .groups_format import (
    GROUP_RECORD,
    GROUPS_MAGIC,
    GROUPS_PATH,
    MEMBER_RECORD,
    ROLES,
    TABLE_ENTRY,
)
from .profile import MAX_WEIGHTS
from .tiles import WEIGHT, read_into

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_CAP = const(0x3FFFFFFF)     # errors.MAX_SMALL
_ROWS = const(0)             # ROLES.index("rows")
_GROUP_SIZE = struct.calcsize(GROUP_RECORD)
_MEMBER_SIZE = struct.calcsize(MEMBER_RECORD)
_HEAD_SIZE = struct.calcsize(STORE_HEAD)
_ENTRY = struct.calcsize(TABLE_ENTRY)
_CHUNK = const(64)           # table entries checked per read


class _Member:
    def __init__(self, info, role, period, offset):
        self.info = info        # the stored layer (store.LayerInfo)
        self.role = role        # index in ROLES
        self.period = period    # P: unit u makes or reads group channel table[u % P]
        self.offset = offset    # file offset of the table in groups.bin


def check_options(method, sparsity_bp, tie, min_keep, seed):
    """The group prune's options, in the twin's order (twin.channels.group_options);
    returns whether the tie rule is strict."""
    if method not in SCORERS or scorers.TABLE[method][0] != WEIGHT:
        raise errors.option("method", method,
                            tuple(n for n in SCORERS if scorers.TABLE[n][0] == WEIGHT))
    strict = check.tie(tie)
    _bp.resolve(None, sparsity_bp)
    check.min_keep(min_keep, errors.MAX_SMALL)
    check.seed(seed)
    return strict


def read_groups(model_id, index):
    """[(channels, [_Member])] of groups.bin, every value checked against the stored
    model (`index`: its layers) before any is used."""
    if not store.exists(GROUPS_PATH):
        raise errors.no_groups()
    by_name = {}
    for info in index:
        by_name[info.name] = info
    groups = []
    makers = []
    entries = array("h", bytes(_ENTRY * _CHUNK))
    view = memoryview(entries)
    with open(GROUPS_PATH, "rb") as f:
        if store.read_exact(f, 4) != GROUPS_MAGIC:
            raise errors.not_store_file(GROUPS_PATH, "channel groups")
        ident, count = struct.unpack(STORE_HEAD, store.read_exact(f, _HEAD_SIZE))
        if ident != model_id:
            raise errors.groups_stale()
        for _ in range(count):
            channels, nmembers = struct.unpack(GROUP_RECORD, store.read_exact(f, _GROUP_SIZE))
            if channels < 1 or channels > 32767:
                raise errors.groups_bad("a group of %d channels" % channels)
            members = []
            for _ in range(nmembers):
                name = store.read_exact(f, store.read_exact(f, 1)[0]).decode()
                role, period = struct.unpack(MEMBER_RECORD, store.read_exact(f, _MEMBER_SIZE))
                info = by_name.get(name)
                if info is None:
                    raise errors.no_layer(name, [i.name for i in index])
                if role >= len(ROLES):
                    raise errors.groups_bad("role %d of layer %r" % (role, name))
                units = info.rows if role == _ROWS else info.cols
                if period < 1 or units % period:
                    raise errors.groups_bad("a table of %d entries for the %d %s of layer %r"
                                            % (period, units, ROLES[role], name))
                if role == _ROWS:
                    if name in makers:
                        raise errors.groups_bad("layer %r makes the channels of two groups"
                                                % name)
                    makers.append(name)
                members.append(_Member(info, role, period, f.tell()))
                left = period
                while left:
                    k = left if left < _CHUNK else _CHUNK
                    read_into(f, view, k, "channel groups", _ENTRY)
                    for j in range(k):
                        if entries[j] < -1 or entries[j] >= channels:
                            raise errors.groups_bad("channel %d in a group of %d"
                                                    % (entries[j], channels))
                    left -= k
            groups.append((channels, members))
    return groups, len(makers)


class GroupPrune:
    """The buffers of a group prune, allocated once: a tile of weights and its scores
    (the attributes prune8.scorers' streamed entries read: s.p.scores, s.w, s.a, s.x,
    s.info and the per-layer arrays scorers.load makes), a group's channel scores and
    keep flags, a member's table, the radix select's counts."""

    def __init__(self, method, seed, channels, period, rows, tile=MAX_WEIGHTS):
        self.tile = tile
        self.unit, self.needs, _, self.streamed = scorers.TABLE[method]
        self.seed = seed
        self.p = self           # the tile's scores are self.scores, as a Pruner's
        # every array built from one zeroed bytes object, as the Pruner's (docs/heap.md)
        z = memoryview(bytes(max(tile, channels, period, rows, 256)))
        self.scores = array("h", z[:tile])
        if self.needs & scorers.SCALES:  # the scale multipliers of the longest layer
            self.own_mults = array("i", z[:rows])
        self.totals = array("i", z[:channels])
        self.table = array("h", z[:period])
        self.hist = array("i", z[:256])
        self.keep = bytearray(channels)
        self.w = bytearray(tile)
        self.wv = memoryview(self.w)
        self.a = bytearray(tile) if self.needs & scorers.ACT else None  # per weight
        self.av = memoryview(self.a) if self.a is not None else None
        self.a_cols = None
        self.bits = bytearray(_CHUNK)
        self.info = None
        self.x = 0
        self.peak = 0

    def sample_heap(self):
        if hasattr(gc, "mem_alloc"):  # MicroPython
            gc.collect()
            a = gc.mem_alloc()
            if a > self.peak:
                self.peak = a

    def load_table(self, g, m):
        """A member's table into self.table[0:period], from the open groups file g."""
        g.seek(m.offset)
        read_into(g, memoryview(self.table), m.period, "channel groups", _ENTRY)

    def score(self, m, totals, f):
        """Add the member's scores to the group's channel scores (totals); f: the open
        model file (one for the whole prune: a file object is not small on a board)."""
        info = m.info
        needs = self.needs
        scorers.missing(info, needs, None)
        if needs & scorers.SEED:
            check.count(info.n, "random scores")
        n, cols, tile = info.n, info.cols, self.tile
        what = "layer " + info.name
        self.a_cols = None
        scorers.load(self, f, info, needs, None)
        self.info = info
        if needs & scorers.FLOWS:  # the row and column L1 sums of the whole layer
            f.seek(info.offset)
            i0 = 0
            while i0 < n:
                k = n - i0 if n - i0 < tile else tile
                read_into(f, self.wv, k, what)
                scores.add_l1(self.w, k, i0 // cols, i0 % cols, cols, self.row_acc,
                              self.col_acc)
                i0 += k
        per_weight = needs & scorers.ACT and self.a_cols is None
        self.x = self.seed
        f.seek(info.offset)
        i0 = 0
        while i0 < n:
            k = n - i0 if n - i0 < tile else tile
            read_into(f, self.wv, k, what)
            if per_weight:
                pos = f.tell()
                f.seek(info.offset + n + i0)
                read_into(f, self.av, k, "activations of " + info.name)
                f.seek(pos)
            self.streamed(self, i0, k)
            if m.role == _ROWS:
                add_rows(self.scores, k, i0 // cols, i0 % cols, cols, self.table,
                         m.period, totals)
            else:
                add_cols(self.scores, k, i0 % cols, self.table, m.period, totals)
            i0 += k
        self.info = None
        self.row_acc = self.col_acc = self.norms = self.a_cols = None  # own_mults stays
        self.sample_heap()

    def select(self, channels, bp, min_keep, strict):
        """Keep flags of a group's channels (self.keep) from its scores; returns how many
        are kept. The rule of Pruner._cut: prune those below t and the first `ties`
        equal to it."""
        totals = self.totals
        k = _bp.prune_count(channels, bp, min_keep if min_keep < channels else channels)
        t = 0
        ties = 0
        if k > 0:
            pos = k - 1 if not strict else (k if k < channels - 1 else channels - 1)
            t = _select.radix(totals, channels, pos, self.hist, 24, 0)
            if not strict:
                ties = k - _select.count_below(totals, 0, channels, t, True)
        kept = 0
        for ch in range(channels):
            v = totals[ch]
            if v < t:
                self.keep[ch] = 0
            elif v == t and ties > 0:
                self.keep[ch] = 0
                ties -= 1
            else:
                self.keep[ch] = 1
                kept += 1
        return kept

    def write_mask(self, m, out):
        """A rows member's row mask (self.table loaded): a row is kept unless it makes
        a pruned channel. Returns the rows pruned."""
        bits, table, keep, period = self.bits, self.table, self.keep, m.period
        rows = m.info.rows
        nbytes = ((rows + 31) >> 5) << 2
        pruned = 0
        j = 0          # byte in self.bits
        r = 0
        for b in range(nbytes):
            v = 0
            for i in range(8):
                if r < rows:
                    ch = table[r % period]
                    if ch < 0 or keep[ch]:
                        v |= 1 << i
                    else:
                        pruned += 1
                r += 1
            bits[j] = v
            j += 1
            if j == _CHUNK:
                out.write(bits)
                j = 0
        if j:
            out.write(memoryview(bits)[:j])
        return pruned


def add_rows(sc, m, r, c, cols, table, period, totals):
    """totals[table[row % period]] += the scores sc[0:m] of weights from (r, c) on, by
    row, saturating at MAX_SMALL."""
    i = 0
    while i < m:
        k = cols - c if cols - c < m - i else m - i
        ch = table[r % period]
        if ch >= 0:
            t = totals[ch]
            for j in range(i, i + k):
                s = sc[j]
                t = _CAP if s > _CAP - t else t + s
            totals[ch] = t
        i += k
        c = 0
        r += 1


def add_cols(sc, m, c, table, period, totals):
    """totals[table[col % period]] += each score of sc[0:m], the first at column c (the
    layer's columns are a multiple of period), saturating at MAX_SMALL."""
    j = c % period
    for i in range(m):
        ch = table[j]
        if ch >= 0:
            t = totals[ch]
            s = sc[i]
            totals[ch] = _CAP if s > _CAP - t else t + s
        j += 1
        if j == period:
            j = 0


def prune_groups(method="scaled", sparsity_bp=0, tie="exact", min_keep=1, seed=0,
                 tile=None):
    """Mask the stored model's channel groups; write /prune8/masks.bin. Prints
    prune_groups_result()'s report as one JSON line."""
    print(json.dumps(prune_groups_result(method, sparsity_bp, tie, min_keep, seed, tile)))


def prune_groups_result(method="scaled", sparsity_bp=0, tie="exact", min_keep=1, seed=0,
                        tile=None):
    """prune_groups(), returning its report: {"ok": True, "model_id", "groups": [channels
    kept per group], "layers": [each row mask's counts], "heap_peak": counted from boot,
    after a collection at the end of each pass (docs/heap.md)}; or {"ok": False,
    "error", "type"}. A failed call leaves masks.bin as it was. tile: weights read at
    a time (default: the Pruner's capacity)."""
    gc.collect()
    top = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0
    try:
        strict = check_options(method, sparsity_bp, tie, min_keep, seed)
        if tile is not None and (not check.is_int(tile) or not 1 <= tile <= MAX_WEIGHTS):
            raise errors.tile_size(MAX_WEIGHTS, tile)
        kernels.chosen()  # viper where this port runs it, as a Pruner() would
        mid, index = store.read_model_index()
        groups, count = read_groups(mid, index)
        widest = period = rows = 1
        for channels, members in groups:
            widest = channels if channels > widest else widest
            for m in members:
                period = m.period if m.period > period else period
                rows = m.info.rows if m.info.rows > rows else rows
        gp = GroupPrune(method, seed, widest, period, rows, tile or MAX_WEIGHTS)
        kept_per_group = []
        report = []
        with store.Replacing(MASKS_PATH) as out, open(GROUPS_PATH, "rb") as g, \
                open(MODEL_PATH, "rb") as f:
            store.write_header(out, MASKS_MAGIC, mid, count)
            for channels, members in groups:
                totals = gp.totals
                for ch in range(channels):
                    totals[ch] = 0
                for m in members:
                    gp.load_table(g, m)
                    gp.score(m, totals, f)
                kept_per_group.append(gp.select(channels, sparsity_bp, min_keep, strict))
                for m in members:
                    if m.role != _ROWS:
                        continue
                    info = m.info
                    gp.load_table(g, m)
                    store.write_mask_header(out, info.name, method, tie, sparsity_bp,
                                            min_keep, 0, info.rows, info.rows, info.cols, seed,
                                            scope="group")
                    pruned = gp.write_mask(m, out)
                    report.append({"layer": info.name, "n": info.rows, "pruned": pruned,
                                   "streamed": info.n > MAX_WEIGHTS})
        if gp.peak > top:
            top = gp.peak
        return {"ok": True, "model_id": mid, "groups": kept_per_group, "layers": report,
                "heap_peak": top}
    except OSError as e:
        return {"ok": False, "error": store.oserror_text(e, "saving the masks")}
    except Exception as e:
        return {"ok": False, "error": str(e), "type": type(e).__name__}
