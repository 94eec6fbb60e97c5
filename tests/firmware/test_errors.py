"""Every error of docs/spec.md §6: same class and same message on the firmware and the
twin (§6.1, in the order of §6.2), and a failed call changes nothing (weights, scores,
last mask; §6.3)."""

from array import array

import numpy as np
import pytest

import prune8
from prune8 import errors
from prune8_host import twin

CAP = (16, 4)  # a small pruner so capacity errors are cheap to reach


def raised(call):
    with pytest.raises(prune8.Prune8Error) as info:
        call()
    return type(info.value), str(info.value)


def same_error(fw_call, twin_call, cls):
    fw, tw = raised(fw_call), raised(twin_call)
    assert fw == tw, f"firmware {fw} != twin {tw}"
    assert fw[0] is cls
    assert issubclass(cls, ValueError)
    return fw[1]


def layer(n, seed=0):
    w = np.random.default_rng(seed).integers(-128, 128, n).astype(np.int8)
    return w, bytearray(w.tobytes())


@pytest.fixture
def pruner():
    return prune8.Pruner(*CAP)


def test_empty_weights(pruner):
    msg = same_error(lambda: pruner.magnitude(bytearray()),
                     lambda: twin.magnitude_scores(np.zeros(0, np.int8)), prune8.EmptyInputError)
    assert "empty" in msg
    same_error(lambda: pruner.mincut(bytearray(), 0, 0),
               lambda: twin.mincut_scores(np.zeros(0, np.int8), 0, 0), prune8.EmptyInputError)


def test_empty_scores_and_no_scores(pruner):
    with pytest.raises(prune8.EmptyInputError, match="no scores yet"):
        pruner.mask(0.5)
    with pytest.raises(prune8.EmptyInputError, match="scores is empty"):
        twin.prune_mask(np.zeros(0, np.int16), 0.5)


def test_length_mismatch_weights_vs_rows_cols(pruner):
    w, wb = layer(12)
    msg = same_error(lambda: pruner.mincut(wb, 3, 3), lambda: twin.mincut_scores(w, 3, 3),
                     prune8.LengthMismatchError)
    assert msg == "12 weights do not fill a 3 x 3 layer (rows*cols = 9)"
    same_error(lambda: pruner.rows(wb, 0, 12), lambda: twin.row_scores(w, 0, 12),
               prune8.LengthMismatchError)
    same_error(lambda: pruner.cols(wb, 3.0, 4), lambda: twin.col_scores(w, 3.0, 4),
               prune8.LengthMismatchError)


def test_length_mismatch_activations(pruner):
    w, wb = layer(12)
    a, ab = layer(5, seed=1)
    msg = same_error(lambda: pruner.gradient(wb, ab), lambda: twin.gradient_scores(w, a),
                     prune8.LengthMismatchError)
    assert "5 activations for 12 weights" in msg and "cols=" in msg
    msg = same_error(lambda: pruner.gradient(wb, ab, 4), lambda: twin.gradient_scores(w, a, 4),
                     prune8.LengthMismatchError)
    assert "need 12 (one per weight) or 4 (one per column)" in msg
    same_error(lambda: pruner.gradient(wb, ab, 5), lambda: twin.gradient_scores(w, a, 5),
               prune8.LengthMismatchError)


def test_capacity_exceeded_names_the_limit(pruner):
    w, wb = layer(17)
    msg = same_error(lambda: pruner.magnitude(wb),
                     lambda: twin.magnitude_scores(w, profile=CAP), prune8.CapacityError)
    assert msg == "17 weights exceed capacity: max_weights=16"
    w, wb = layer(10)
    msg = same_error(lambda: pruner.mincut(wb, 5, 2),
                     lambda: twin.mincut_scores(w, 5, 2, profile=CAP), prune8.CapacityError)
    assert "max_units=4" in msg and "rows" in msg
    same_error(lambda: pruner.prune_cols(wb, 2, 5, 0.5),
               lambda: twin.prune_cols(w, 2, 5, 0.5, profile=CAP), prune8.CapacityError)


def test_capacity_from_board_profile_matches_default_pruner():
    w, wb = layer(2049)
    same_error(lambda: prune8.Pruner().magnitude(wb),
               lambda: twin.magnitude_scores(w, profile="esp32"), prune8.CapacityError)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"sparsity": 1.5}, "must be in [0, 1]"),
    ({"sparsity": -0.01}, "must be in [0, 1]"),
    ({"sparsity": float("nan")}, "nan"),
    ({"sparsity": 0.12345}, "not a whole basis point"),
    ({"sparsity": "0.5"}, "must be a number"),
    ({"sparsity": True}, "must be a number"),
    ({"sparsity_bp": 10001}, "0..10000"),
    ({"sparsity_bp": 2.5}, "0..10000"),
    ({}, "no sparsity given"),
    ({"sparsity": 0.5, "sparsity_bp": 5000}, "not both"),
])
def test_bad_sparsity(pruner, kwargs, fragment):
    w, wb = layer(8)
    pruner.magnitude(wb)
    msg = same_error(lambda: pruner.mask(**kwargs),
                     lambda: twin.prune_mask(twin.magnitude_scores(w), **kwargs),
                     prune8.SparsityError)
    assert fragment in msg


@pytest.mark.parametrize("min_keep", [-1, 9, 1.0, None])
def test_bad_min_keep(pruner, min_keep):
    w, wb = layer(8)
    pruner.magnitude(wb)
    msg = same_error(lambda: pruner.mask(0.5, min_keep=min_keep),
                     lambda: twin.prune_mask(twin.magnitude_scores(w), 0.5, min_keep=min_keep),
                     prune8.MinKeepError)
    assert "0..8" in msg
    same_error(lambda: pruner.prune_rows(wb, 2, 4, 0.5, min_keep=3),
               lambda: twin.prune_rows(w, 2, 4, 0.5, min_keep=3), prune8.MinKeepError)


@pytest.mark.parametrize("min_score", [-1, 2**30, 0.5])
def test_bad_min_score(pruner, min_score):
    w, wb = layer(8)
    pruner.magnitude(wb)
    same_error(lambda: pruner.mask(0.5, min_score=min_score),
               lambda: twin.prune_mask(twin.magnitude_scores(w), 0.5, min_score=min_score),
               prune8.MinScoreError)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"tie": "loose"}, "tie must be one of 'exact', 'strict'; got 'loose'"),
    ({"method": "quick"}, "method must be one of 'auto', 'bubble', 'select'; got 'quick'"),
    ({"tie": None}, "got None"),
])
def test_bad_tie_or_method_name(pruner, kwargs, fragment):
    w, wb = layer(8)
    pruner.magnitude(wb)
    msg = same_error(lambda: pruner.mask(0.5, **kwargs),
                     lambda: twin.prune_mask(twin.magnitude_scores(w), 0.5, **kwargs),
                     prune8.OptionError)
    assert msg == fragment or fragment in msg
    same_error(lambda: pruner.prune_rows(wb, 2, 4, 0.5, **kwargs),
               lambda: twin.prune_rows(w, 2, 4, 0.5, **kwargs), prune8.OptionError)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_float_weights_are_told_to_quantize(dtype):
    with pytest.raises(prune8.DtypeError, match="quantize to int8 first"):
        twin.magnitude_scores(np.zeros(4, dtype))
    with pytest.raises(prune8.DtypeError, match="quantize"):
        twin.gradient_scores(np.zeros(4, np.int8), np.zeros(4, dtype))


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int64])
def test_other_dtypes_are_refused(dtype):
    with pytest.raises(prune8.DtypeError, match="must be int8; got"):
        twin.mincut_scores(np.zeros(4, dtype), 2, 2)


def test_board_refuses_non_int8_buffers(pruner):
    with pytest.raises(prune8.DtypeError, match="bytearray, an array"):
        pruner.magnitude([1, 2, 3])
    with pytest.raises(prune8.DtypeError, match="got 300 at index 1"):
        pruner.magnitude(array("h", [1, 300]))
    with pytest.raises(prune8.DtypeError, match="read-only"):
        pruner.prune_rows(bytes(4), 2, 2, 0.5)
    with pytest.raises(prune8.DtypeError, match="got 300 at index 0"):
        pruner.magnitude(memoryview(array("h", [300, 1])))


def test_memoryview_of_a_preallocated_buffer_scores_in_place(pruner):
    buf = bytearray(16)
    buf[:4] = bytes([1, 0xFE, 0x80, 5])      # 1, -2, -128, 5
    assert pruner.magnitude(memoryview(buf)[:4]) == 4
    assert list(pruner.scores[:4]) == [1, 2, 128, 5]
    signed = array("b", [-3, 4])
    pruner.magnitude(memoryview(signed))
    assert list(pruner.scores[:2]) == [3, 4]


def test_order_of_checks_is_the_same(pruner):
    # Several things wrong at once: the option name is reported first, then sparsity,
    # then the inputs, then min_keep (docs/spec.md §6.2).
    w, wb = layer(10)
    same_error(lambda: pruner.prune_rows(wb, 3, 3, 2.0, tie="x", min_keep=-1),
               lambda: twin.prune_rows(w, 3, 3, 2.0, tie="x", min_keep=-1), prune8.OptionError)
    same_error(lambda: pruner.prune_rows(wb, 3, 3, 2.0, min_keep=-1),
               lambda: twin.prune_rows(w, 3, 3, 2.0, min_keep=-1), prune8.SparsityError)
    same_error(lambda: pruner.prune_rows(wb, 3, 3, 0.5, min_keep=-1),
               lambda: twin.prune_rows(w, 3, 3, 0.5, min_keep=-1), prune8.LengthMismatchError)


def test_failed_calls_change_nothing(pruner):
    w, wb = layer(16)
    pruner.magnitude(wb)
    m = pruner.mask(0.25)
    before = (bytes(wb), list(pruner.scores), m.bytes(), m.pruned, pruner.n)
    bad_calls = [
        lambda: pruner.magnitude(bytearray(17)),
        lambda: pruner.mincut(wb, 3, 3),
        lambda: pruner.gradient(wb, bytearray(3)),
        lambda: pruner.mask(1.5),
        lambda: pruner.mask(0.5, min_keep=17),
        lambda: pruner.prune_rows(wb, 4, 4, 0.5, tie="?"),
        lambda: pruner.prune_cols(wb, 4, 4, 0.5, min_keep=5),
        lambda: pruner.apply(wb, prune8.Mask(15)),
        lambda: pruner.apply(bytes(16), m),
    ]
    for call in bad_calls:
        with pytest.raises(prune8.Prune8Error):
            call()
        assert (bytes(wb), list(pruner.scores), m.bytes(), m.pruned, pruner.n) == before


def test_apply_checks_mask_length():
    w, wb = layer(40)
    words = np.zeros(1, np.uint32)
    m = prune8.Mask(32)
    msg = same_error(lambda: prune8.Pruner().apply(wb, m), lambda: twin.apply_mask(w, words),
                     prune8.LengthMismatchError)
    assert msg == "1 mask words for n=40: need ceil(n / 32) = 2"
    # Same word count, different n: only the board's Mask knows its n.
    with pytest.raises(prune8.LengthMismatchError, match="mask covers 33 entries"):
        prune8.Pruner().apply(wb, prune8.Mask(33))


def test_stray_bits_past_n_are_refused():
    with pytest.raises(prune8.LengthMismatchError, match="bits set past n=5"):
        twin.mask_stats(np.array([0b100000], np.uint32), 5)
    m = prune8.Mask(0, 32)
    with pytest.raises(prune8.LengthMismatchError, match="bits set past n=5"):
        m.load(bytes([0b100000, 0, 0, 0]), 5)


def test_bad_capacity_for_pruner():
    with pytest.raises(prune8.CapacityError, match="max_weights"):
        prune8.Pruner(0, 64)
    with pytest.raises(prune8.CapacityError, match="max_units"):
        prune8.Pruner(2048, errors.MAX_UNITS_LIMIT + 1)


def test_bad_max_sort_for_pruner():
    for bad in (-1, 17, 2.0, True, "24"):
        with pytest.raises(prune8.CapacityError, match=r"max_sort must be None .* "
                           r"0 <= max_sort <= max_weights \(16\); got"):
            prune8.Pruner(16, 4, bad)


def test_bubble_past_max_sort_is_refused_and_changes_nothing():
    """A Pruner built to sort few scores (prune8.prune_model's: what "auto" hands bubble
    sort) refuses method="bubble" over more, in one line naming the limit and the way
    out, before anything is written; "auto" and "select" give the full Pruner's masks."""
    w = bytearray((i * 37 + 11) & 255 for i in range(16))
    full, small = prune8.Pruner(16, 4), prune8.Pruner(16, 4, 3)
    assert len(small._scratch) == 3
    for p in (full, small):
        p.magnitude(w)
    before = (bytes(w), list(small.scores), small.n, small.mask(sparsity_bp=2500).bytes())
    calls = [(lambda: small.mask(sparsity_bp=5000, method="bubble"), 16),
             (lambda: small.threshold(5, method="bubble"), 16),
             (lambda: small.channel_mask(4, 4, sparsity_bp=5000, method="bubble"), 4),
             (lambda: small.prune_rows(w, 4, 4, sparsity_bp=5000, method="bubble"), 4)]
    for call, n in calls:
        assert raised(call) == (prune8.CapacityError,
                                "method='bubble' sorts at most 3 scores on this Pruner "
                                f"(max_sort=3); got {n}: use method='select' or 'auto'")
        assert (bytes(w), list(small.scores), small.n, small._mask.bytes()) == before
    for method in ("auto", "select"):
        assert small.mask(sparsity_bp=5000, method=method).bytes() == \
            full.mask(sparsity_bp=5000, method=method).bytes()
        assert small.channel_mask(4, 4, sparsity_bp=5000, method=method).bytes() == \
            full.channel_mask(4, 4, sparsity_bp=5000, method=method).bytes()
    # within max_sort, bubble sorts: the 3 scores of a row of a 3-column layer
    for p in (full, small):
        p.magnitude(w[:12])
    assert small.channel_mask(4, 3, sparsity_bp=5000, method="bubble").bytes() == \
        full.channel_mask(4, 3, sparsity_bp=5000).bytes()
