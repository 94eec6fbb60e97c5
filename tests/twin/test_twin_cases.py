"""The unit cases of the pruning libraries prune8 learned from, on the twin and the firmware.

Expected values are written out by hand from docs/spec.md, not computed by the code under
test.
"""

from array import array

import numpy as np
import pytest

import prune8
from prune8_host import twin


def i8(values):
    return np.array(values, dtype=np.int8)


def test_fresh_mask_over_50_then_prune_two():
    keep = np.ones(50, bool)
    words = twin.mask_from_keep(keep)
    assert twin.mask_stats(words, 50) == {"n": 50, "pruned": 0, "kept": 50, "sparsity_bp": 0}
    keep[[10, 20]] = False
    words = twin.mask_from_keep(keep)
    back = twin.mask_to_keep(words, 50)
    assert not back[10] and not back[20] and back[15]
    assert twin.mask_stats(words, 50)["pruned"] == 2

    m = prune8.Mask(50)
    assert (m.n, m.pruned, m.sparsity_bp) == (50, 0, 0)
    m.prune(10)
    m.prune(20)
    assert not m.is_kept(10) and not m.is_kept(20) and m.is_kept(15)
    assert m.pruned == 2
    assert m.bytes() == words.astype("<u4").tobytes()


def test_magnitude_half_of_eight():
    w = i8([1, -2, 50, -60, 3, -4, 70, 5])
    words = twin.prune_mask(twin.magnitude_scores(w), 0.5)
    assert twin.mask_stats(words, 8)["pruned"] == 4
    keep = twin.mask_to_keep(words, 8)
    assert keep[[2, 3, 6]].all()  # 50, -60 and 70 survive
    # |w| sorted: 1 2 3 4 5 50 60 70 -> the four smallest (1, -2, 3, -4) go
    assert keep.tolist() == [False, False, True, True, False, False, True, True]

    p = prune8.Pruner()
    wb = bytearray(w.tobytes())
    p.magnitude(wb)
    m = p.mask(0.5)
    assert m.pruned == 4 and m.bytes() == words.astype("<u4").tobytes()


def test_row_pruning_keeps_rows_0_and_2():
    w = i8([[10] * 4, [1] * 4, [20] * 4, [2] * 4])
    keep_words, pruned = twin.prune_rows(w, 4, 4, 0.5)
    assert twin.mask_to_keep(keep_words, 4).tolist() == [True, False, True, False]
    assert pruned.tolist() == [[10] * 4, [0] * 4, [20] * 4, [0] * 4]

    wa = array("b", w.reshape(-1).tolist())
    m = prune8.Pruner().prune_rows(wa, 4, 4, 0.5)
    assert [m.is_kept(r) for r in range(4)] == [True, False, True, False]
    assert list(wa) == pruned.reshape(-1).tolist()


def test_mincut_3x3_by_hand():
    # row flows: 10+20+30 = 60, 5+10+15 = 30, 1+2+3 = 6
    # col flows: 10+5+1 = 16, 20+10+2 = 32, 30+15+3 = 48
    # score = (|w| * min(col_flow, row_flow)) >> 10:
    #   row 0: 10*16=160 -> 0, 20*32=640 -> 0, 30*48=1440 -> 1
    #   row 1: 5*16=80 -> 0, 10*30=300 -> 0, 15*30=450 -> 0
    #   row 2: 1*6=6 -> 0, 2*6=12 -> 0, 3*6=18 -> 0
    w = i8([10, 20, 30, 5, 10, 15, 1, 2, 3])
    expected = [0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert twin.mincut_scores(w, 3, 3).tolist() == expected
    p = prune8.Pruner()
    p.mincut(bytearray(w.tobytes()), 3, 3)
    assert list(p.scores[:9]) == expected


def test_mincut_larger_flows_by_hand():
    # 2x2 of 100s: every flow is 200; 100 * 200 = 20000 >> 10 = 19
    w = i8([100, -100, -100, 100])
    assert twin.mincut_scores(w, 2, 2).tolist() == [19, 19, 19, 19]


def test_one_to_ten_at_030_zeroes_1_2_3():
    w = np.arange(1, 11, dtype=np.int8)
    out = twin.apply_mask(w, twin.prune_mask(twin.magnitude_scores(w), 0.3))
    assert out.tolist() == [0, 0, 0, 4, 5, 6, 7, 8, 9, 10]

    wb = bytearray(w.tobytes())
    p = prune8.Pruner()
    p.magnitude(wb)
    p.apply(wb, p.mask(0.3))
    assert list(wb) == [0, 0, 0, 4, 5, 6, 7, 8, 9, 10]


def test_gradient_proxy_by_hand():
    # |w * a| >> 4: |(-100) * 50| = 5000 >> 4 = 312; |127 * -128| = 16256 >> 4 = 1016
    w = i8([-100, 127, 3, 0])
    a = i8([50, -128, 5, 99])
    assert twin.gradient_scores(w, a).tolist() == [312, 1016, 0, 0]


def test_exact_ties_pruned_in_index_order():
    # all scores equal: exact prunes the first k by index, strict prunes none
    s = np.full(10, 7, np.int16)
    keep = twin.mask_to_keep(twin.prune_mask(s, 0.3), 10)
    assert keep.tolist() == [False] * 3 + [True] * 7
    keep = twin.mask_to_keep(twin.prune_mask(s, 0.3, tie="strict"), 10)
    assert keep.all()


def test_min_keep_and_min_score():
    s = np.array([5, 1, 4, 2, 3], np.int16)
    # 100% with min_keep=1 prunes 4 of 5: only the highest (5) survives
    assert twin.mask_to_keep(twin.prune_mask(s, 1.0), 5).tolist() == [True] + [False] * 4
    # min_keep=0 lets everything go
    assert not twin.mask_to_keep(twin.prune_mask(s, 1.0, min_keep=0), 5).any()
    # 0% sparsity but min_score=3 prunes the scores below 3 (1 and 2)
    keep = twin.mask_to_keep(twin.prune_mask(s, 0.0, min_score=3), 5)
    assert keep.tolist() == [True, False, True, False, True]


def test_mask_word_layout_bit_i_of_word_i_div_32():
    keep = np.zeros(70, bool)
    keep[[0, 31, 32, 69]] = True
    words = twin.mask_from_keep(keep)
    assert words.dtype == np.uint32
    assert words.tolist() == [(1 << 0) | (1 << 31), 1 << 0, 1 << (69 - 64)]


def test_prune_cols_by_l1():
    w = i8([[1, 50, 2], [1, 50, 2]])  # column L1: 2, 100, 4
    keep_words, pruned = twin.prune_cols(w, 2, 3, sparsity_bp=6667)  # k = 3*6667//10000 = 2
    assert twin.mask_to_keep(keep_words, 3).tolist() == [False, True, False]
    assert pruned.tolist() == [[0, 50, 0], [0, 50, 0]]


@pytest.mark.parametrize("s, bp", [(0, 0), (1, 10000), (0.5, 5000), (0.3, 3000),
                                   (0.12345678, None), (0.0001, 1), (0.99995, None)])
def test_to_bp(s, bp):
    if bp is None:
        with pytest.raises(prune8.SparsityError):
            twin.to_bp(s)
        with pytest.raises(prune8.SparsityError):
            prune8.to_bp(s)
    else:
        assert twin.to_bp(s) == bp == prune8.to_bp(s)


def test_to_bp_float32_gives_the_same_bp_as_float64():
    # The ESP32's floats are 32-bit: every whole basis point must survive the trip.
    bps = np.arange(0, 10001)
    s64 = bps / 10000
    s32 = s64.astype(np.float32)
    assert [twin.to_bp(x) for x in s32] == bps.tolist()
    assert [twin.to_bp(float(x)) for x in s64] == bps.tolist()
