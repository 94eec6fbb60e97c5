"""Differential tests: the firmware module (run on CPython) against the twin, bit for bit.

Random layers up to full capacity, every scorer, both tie rules, all three threshold
methods, rows and columns, min_keep / min_score, random sparsities, and random bad
arguments (the same error class and message, and nothing changed by a failed call).

Examples per test: --firmware-examples=N or $PRUNE8_FIRMWARE_EXAMPLES (default 300).
"""

import os
from array import array

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import prune8
import prune8.bp
import prune8.scores
from prune8_host import twin

EXAMPLES = int(os.environ.get("PRUNE8_FIRMWARE_EXAMPLES", "300"))
MAX_WEIGHTS, MAX_UNITS = 2048, 64
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# One pruner for the whole run, as on a board: every call reuses its buffers.
PRUNER = prune8.Pruner(MAX_WEIGHTS, MAX_UNITS)


@st.composite
def int8_values(draw, n):
    """n int8 values from an alphabet that is sometimes tiny (many ties), sometimes full."""
    kind = draw(st.sampled_from(["full", "few", "zeros", "extremes"]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "full":
        v = rng.integers(-128, 128, n)
    elif kind == "few":
        v = rng.choice(rng.integers(-128, 128, draw(st.integers(1, 4))), n)
    elif kind == "zeros":
        v = rng.choice([0, 0, 0, 1, -1], n)
    else:
        v = rng.choice([-128, 127, -127, 0], n)
    return v.astype(np.int8)


@st.composite
def layers(draw):
    """(rows, cols, w) with rows, cols <= 64 and rows * cols <= 2048; often at the limits."""
    rows = draw(st.one_of(st.just(MAX_UNITS), st.just(1), st.integers(1, MAX_UNITS)))
    top = min(MAX_UNITS, MAX_WEIGHTS // rows)
    cols = draw(st.one_of(st.just(top), st.just(1), st.integers(1, top)))
    return rows, cols, draw(int8_values(rows * cols))


def board_buffer(w, as_array):
    """The same int8 weights as a board holds them: bytearray or array('b')."""
    return array("b", w.tolist()) if as_array else bytearray(w.tobytes())


def twin_scores(kind, w, a, rows, cols):
    if kind == "magnitude":
        return twin.magnitude_scores(w)
    if kind == "gradient":
        return twin.gradient_scores(w, a, None if a.size == w.size else cols)
    if kind == "mincut":
        return twin.mincut_scores(w, rows, cols)
    if kind == "rows":
        return twin.row_scores(w, rows, cols)
    return twin.col_scores(w, rows, cols)


def firmware_scores(p, kind, wb, ab, rows, cols):
    if kind == "magnitude":
        return p.magnitude(wb)
    if kind == "gradient":
        return p.gradient(wb, ab, None if len(ab) == len(wb) else cols)
    return getattr(p, kind)(wb, rows, cols)


mask_args = st.fixed_dictionaries({
    "sparsity_bp": st.one_of(st.sampled_from([0, 1, 4999, 5000, 9999, 10000]),
                             st.integers(0, 10000)),
    "tie": st.sampled_from(["exact", "strict"]),
    "min_keep": st.one_of(st.just(1), st.just(0), st.integers(0, 70)),
    "min_score": st.one_of(st.just(0), st.integers(0, 40), st.integers(0, 2000)),
    "method": st.sampled_from(["auto", "bubble", "select"]),
})


@SETTINGS
@given(layers(), st.sampled_from(["magnitude", "gradient", "mincut", "rows", "cols"]),
       mask_args, st.booleans(), st.booleans(), st.data())
def test_scores_mask_apply_agree(layer, kind, margs, as_array, per_weight, data):
    rows, cols, w = layer
    event(f"n={'full' if w.size == MAX_WEIGHTS else '<=64' if w.size <= 64 else 'mid'}")
    p = PRUNER
    a = data.draw(int8_values(w.size if per_weight else cols))
    wb, ab = board_buffer(w, as_array), board_buffer(a, as_array)
    n = firmware_scores(p, kind, wb, ab, rows, cols)

    expected = twin_scores(kind, w, a, rows, cols).reshape(-1)
    buf = p.units if kind in ("rows", "cols") else p.scores
    assert n == expected.size == p.n
    assert list(buf[:n]) == expected.tolist()

    if margs["method"] == "bubble" and n > 300:
        margs = dict(margs, method="select")  # CPython bubble at 2048 is slow: sampled below
    margs = dict(margs, min_keep=min(margs["min_keep"], n))
    m = p.mask(**margs)
    words = twin.prune_mask(expected, **margs)
    assert m.bytes() == words.astype("<u4").tobytes()
    assert (m.n, m.pruned) == (n, twin.mask_stats(words, n)["pruned"])
    assert m.stats() == twin.mask_stats(words, n)

    if kind not in ("rows", "cols"):
        before = bytes(wb) if not as_array else bytes(np.array(wb, np.int8).tobytes())
        p.apply(wb, m)
        got = np.array(list(wb), np.int64).astype(np.int8) if as_array \
            else np.frombuffer(bytes(wb), np.int8)
        assert got.tolist() == twin.apply_mask(w, words).tolist()
        assert before == w.tobytes()


@SETTINGS
@given(layers(), st.booleans(), mask_args, st.booleans())
def test_structured_pruning_agrees(layer, by_rows, margs, as_array):
    rows, cols, w = layer
    units = rows if by_rows else cols
    margs = dict(margs, min_keep=min(margs["min_keep"], units))
    margs.pop("min_score")
    wb = board_buffer(w, as_array)
    p = PRUNER
    fw = p.prune_rows if by_rows else p.prune_cols
    tw = twin.prune_rows if by_rows else twin.prune_cols
    m = fw(wb, rows, cols, **margs)
    keep_words, pruned = tw(w, rows, cols, **margs)
    assert m.n == units
    assert m.bytes() == keep_words.astype("<u4").tobytes()
    assert np.array(list(wb) if as_array else np.frombuffer(bytes(wb), np.int8),
                    np.int64).tolist() == pruned.reshape(-1).tolist()


@settings(max_examples=max(20, EXAMPLES // 100), deadline=None)
@given(st.integers(1, MAX_WEIGHTS), st.data())
def test_bubble_equals_select_up_to_full_capacity(n, data):
    w = data.draw(int8_values(n))
    p = PRUNER
    p.magnitude(bytearray(w.tobytes()))
    pos = data.draw(st.integers(0, n - 1))
    expected = int(np.sort(np.abs(w.astype(np.int16)))[pos])
    assert p.threshold(pos, "select") == expected
    assert p.threshold(pos, "bubble") == expected


@given(st.integers(1, 1 << 20), st.integers(0, 10000), st.data())
@settings(max_examples=500, deadline=None)
def test_prune_count_is_the_spec_formula(n, bp, data):
    """The twin takes k from prune8.bp.prune_count, so the differential tests cannot see a
    bug in it: it is checked against docs/spec.md §1.4's formula here."""
    min_keep = data.draw(st.one_of(st.integers(0, min(n, 3)), st.integers(0, n)))
    assert prune8.bp.prune_count(n, bp, min_keep) == min(n * bp // 10000, n - min_keep)


def test_bubble_equals_select_at_every_position_of_short_inputs():
    """Every position of every length bubble sort serves (a pass too few shows only at the
    first positions), over values with many ties and with none."""
    rng = np.random.default_rng(5)
    p = PRUNER
    for n in range(1, 41):
        for w in (rng.integers(-128, 128, n), rng.choice([-3, 0, 2, 5], n)):
            w = w.astype(np.int8)
            p.magnitude(bytearray(w.tobytes()))
            ranked = np.sort(np.abs(w.astype(np.int16)))
            for pos in range(n):
                want = int(ranked[pos])
                assert (p.threshold(pos, "bubble"), p.threshold(pos, "select")) == \
                    (want, want), (n, pos)


@pytest.mark.parametrize("tie", ["exact", "strict"])
@pytest.mark.parametrize("min_keep", [0, 1])
@pytest.mark.parametrize("bp", [9999, 10000])
def test_pruning_all_but_min_keep_agrees(tie, min_keep, bp):
    """k == n - min_keep, where strict ties use position min(k, n - 1): rare in random
    options, so every combination is run here on tie-rich and tie-free layers."""
    rng = np.random.default_rng(bp + min_keep)
    p = PRUNER
    for n in (1, 2, 7, 64, 2048):
        for w in (rng.integers(-128, 128, n), rng.choice([0, 1, 1, 4], n)):
            w = w.astype(np.int8)
            p.magnitude(bytearray(w.tobytes()))
            m = p.mask(sparsity_bp=bp, tie=tie, min_keep=min_keep)
            words = twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=bp, tie=tie,
                                    min_keep=min_keep)
            assert m.bytes() == words.astype("<u4").tobytes(), (n, tie, min_keep, bp)


def test_mincut_tile_saturates_at_32767():
    """A stored layer's flows reach 128 * 4096; the board's tile kernel saturates as the
    spec says (a Pruner's 2048 weights never get near it)."""
    flows = [0, 1023, 1 << 16, 128 * 4096]
    w = bytearray(np.array([-128, 127, 1, -1, 0, 64], np.int8).tobytes())
    for rf in flows:
        for cf in flows:
            out = array("h", bytes(2 * len(w)))
            prune8.scores.mincut_tile(w, len(w), 0, 0, len(w), array("i", [rf]),
                                      array("i", [cf] * len(w)), out)
            want = [min(32767, (abs(v) * min(rf, cf)) >> 10)
                    for v in np.frombuffer(bytes(w), np.int8).tolist()]
            assert list(out) == want, (rf, cf)


# -- errors: random bad arguments ---------------------------------------------------

def outcome(call):
    """('ok', value) or ('error', class, message)."""
    try:
        return ("ok", call())
    except prune8.Prune8Error as e:
        return ("error", type(e), str(e))


OPS = ["magnitude", "gradient", "gradient_cols", "mincut", "rows", "cols", "mask",
       "prune_rows", "prune_cols"]
# Which arguments each operation takes (so breaking one of them means something).
FIELDS = {
    "magnitude": ["n"], "gradient": ["n", "na"], "gradient_cols": ["n", "cols", "na"],
    "mincut": ["n", "rows", "cols"], "rows": ["n", "rows", "cols"], "cols": ["n", "rows", "cols"],
    "mask": ["sparsity", "tie", "method", "min_keep", "min_score"],
    "prune_rows": ["n", "rows", "cols", "sparsity", "tie", "method", "min_keep"],
    "prune_cols": ["n", "rows", "cols", "sparsity", "tie", "method", "min_keep"],
}
BAD = {
    "n": st.sampled_from(["zero", "plus1", "minus1", "over"]),
    "rows": st.sampled_from([0, -1, 1.0, None, True, 65, 2049]),
    "cols": st.sampled_from([0, -1, 1.0, None, True, 65, 2049]),
    "na": st.sampled_from([0, 1, 5, 2100]),
    "sparsity": st.sampled_from([(1.5, None), (-0.5, None), (2, None), (float("nan"), None),
                                 (float("inf"), None), (0.12345, None), ("0.5", None),
                                 (True, None), (None, 10001), (None, -1), (None, 2.5),
                                 (None, True), (None, None), (0.5, 5000)]),
    "tie": st.sampled_from(["Exact", "", None, 1]),
    "method": st.sampled_from(["radix", "", None]),
    "min_keep": st.sampled_from([-1, "units+1", 1.0, True, None, 2100]),
    "min_score": st.sampled_from([-1, 2**30, 0.5, None]),
}


@st.composite
def call_cases(draw):
    """A valid call of one operation with 0 to 3 of its arguments broken."""
    op = draw(st.sampled_from(OPS))
    rows = draw(st.integers(1, MAX_UNITS))
    cols = draw(st.integers(1, min(MAX_UNITS, MAX_WEIGHTS // rows)))
    case = {"op": op, "rows": rows, "cols": cols, "n": rows * cols,
            "na": draw(st.sampled_from([rows * cols, cols])) if op == "gradient_cols"
            else rows * cols,
            "sparsity": draw(st.one_of(
                st.tuples(st.integers(0, 10000).map(lambda bp: bp / 10000), st.none()),
                st.tuples(st.none(), st.integers(0, 10000)))),
            "tie": draw(st.sampled_from(["exact", "strict"])),
            "method": draw(st.sampled_from(["auto", "bubble", "select"])),
            "min_keep": draw(st.integers(0, 3)), "min_score": draw(st.integers(0, 200))}
    entries = {"prune_rows": rows, "prune_cols": cols}.get(op, rows * cols)
    case["min_keep"] = min(case["min_keep"], entries)
    broken = draw(st.lists(st.sampled_from(FIELDS[op]), max_size=3, unique=True))
    for field in broken:
        bad = draw(BAD[field])
        if field == "n":
            bad = {"zero": 0, "plus1": rows * cols + 1, "minus1": rows * cols - 1,
                   "over": MAX_WEIGHTS + 1 + draw(st.integers(0, 50))}[bad]
        elif field in ("rows", "cols") and bad in (65, 2049) and "n" not in broken:
            case["n"] = bad * (cols if field == "rows" else rows)  # consistent, over capacity
            case["na"] = case["n"]
        case[field] = bad
    units = case["rows"] if op == "prune_rows" else case["cols"]
    if case["min_keep"] == "units+1":
        case["min_keep"] = units + 1 if isinstance(units, int) else 5
    return case, broken


def board_state(p, wb):
    return (bytes(wb) if isinstance(wb, bytearray) else list(wb), list(p.scores),
            list(p.units), p._mask.bytes(), p._mask.pruned, p.n)


@SETTINGS
@given(call_cases(), st.data())
def test_bad_arguments_raise_the_same_error(case_broken, data):
    case, broken = case_broken
    op, rows, cols, n = case["op"], case["rows"], case["cols"], case["n"]
    sparsity, sparsity_bp = case["sparsity"]
    w = data.draw(int8_values(n))
    a = data.draw(int8_values(case["na"]))
    wb, ab = bytearray(w.tobytes()), bytearray(a.tobytes())
    p = PRUNER
    # Start from a valid state so that "nothing changed" is checked against real data.
    p.magnitude(bytearray(b"\x05\xfb\x07\x00"))
    p.mask(sparsity_bp=5000)
    cap = (MAX_WEIGHTS, MAX_UNITS)
    kw = {"sparsity_bp": sparsity_bp, "tie": case["tie"], "method": case["method"],
          "min_keep": case["min_keep"]}

    if op == "magnitude":
        fw = lambda: p.magnitude(wb)
        tw = lambda: twin.magnitude_scores(w, profile=cap)
    elif op in ("gradient", "gradient_cols"):
        c = cols if op == "gradient_cols" else None
        fw = lambda: p.gradient(wb, ab, c)
        tw = lambda: twin.gradient_scores(w, a, c, profile=cap)
    elif op in ("mincut", "rows", "cols"):
        fw = lambda: getattr(p, op)(wb, rows, cols)
        tw = lambda: {"mincut": twin.mincut_scores, "rows": twin.row_scores,
                      "cols": twin.col_scores}[op](w, rows, cols, profile=cap)
    elif op == "mask":
        p.magnitude(wb)
        scores = twin.magnitude_scores(w)
        fw = lambda: p.mask(sparsity, min_score=case["min_score"], **kw)
        tw = lambda: twin.prune_mask(scores, sparsity, min_score=case["min_score"], profile=cap,
                                     **kw)
    else:
        fw = lambda: getattr(p, op)(wb, rows, cols, sparsity, **kw)
        tw = lambda: getattr(twin, op)(w, rows, cols, sparsity, profile=cap, **kw)

    before = board_state(p, wb)
    got_fw, got_tw = outcome(fw), outcome(tw)
    event(f"{op}: {got_fw[1].__name__ if got_fw[0] == 'error' else 'ok'}")
    assert got_fw[0] == got_tw[0], (got_fw, got_tw)
    if got_fw[0] == "error":
        assert got_fw == got_tw
        assert board_state(p, wb) == before  # a failed call changes nothing
    elif op == "mask":
        assert got_fw[1].bytes() == got_tw[1].astype("<u4").tobytes()
    elif op in ("prune_rows", "prune_cols"):
        assert got_fw[1].bytes() == got_tw[1][0].astype("<u4").tobytes()
        assert bytes(wb) == got_tw[1][1].tobytes()
    else:
        buf = p.units if op in ("rows", "cols") else p.scores
        assert list(buf[:p.n]) == got_tw[1].reshape(-1).tolist()
    if not broken:
        assert got_fw[0] == "ok"
