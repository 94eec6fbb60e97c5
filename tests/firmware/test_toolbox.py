"""The rest of the toolbox (docs/spec.md §2.5-§2.10, §3.7, §7):
squared magnitude, seeded random, Wanda, block L1, N:M, the cubic schedule and score
statistics. The firmware (on CPython) against the twin, plus the rules' own properties."""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prune8
from prune8_host import twin
from prune8_host.twin import scores as twin_scores

EXAMPLES = max(200, int(os.environ.get("PRUNE8_FIRMWARE_EXAMPLES", "300")) // 4)
SETTINGS = settings(max_examples=EXAMPLES, deadline=None)
PRUNER = prune8.Pruner()


@st.composite
def layers(draw, max_units=64, max_weights=2048):
    rows = draw(st.integers(1, max_units))
    cols = draw(st.integers(1, min(max_units, max_weights // rows)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    alphabet = rng.integers(-128, 128, draw(st.sampled_from([2, 5, 256])))
    return rows, cols, rng.choice(alphabet, rows * cols).astype(np.int8)


def scores_of(p):
    return list((p.units if p._kind == 2 else p.scores)[:p.n])


# -- squared magnitude and random ------------------------------------------------------

@SETTINGS
@given(layers())
def test_l2_matches(layer):
    rows, cols, w = layer
    PRUNER.l2(bytearray(w.tobytes()))
    assert scores_of(PRUNER) == twin.l2_scores(w).tolist()
    assert max(scores_of(PRUNER)) <= 16384


@pytest.mark.parametrize("seed", [0, 1, 2, 42, 12345, 99999, 2**20 + 7, 2**29, 2**30 - 2,
                                  2**30 - 1])
def test_random_scores_identical_for_ten_seeds(seed):
    PRUNER.random(2048, seed)
    expected = twin.random_scores(2048, seed)
    assert scores_of(PRUNER) == expected.tolist()
    assert expected.min() >= 0 and expected.max() <= 32767
    # the sequence depends on the seed and is not degenerate
    assert len(set(expected.tolist())) > 1900


def test_random_scores_continue_across_jump_blocks():
    # the twin jumps ahead in blocks of 4096; the board steps one by one
    big = prune8.Pruner(10000, 64)
    big.random(10000, 777)
    assert scores_of(big) == twin.random_scores(10000, 777).tolist()


# -- Wanda -------------------------------------------------------------------------------

@SETTINGS
@given(layers(), st.integers(1, 20), st.data())
def test_wanda_accumulated_on_board_equals_twin(layer, samples, data):
    rows, cols, w = layer
    seed = data.draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).integers(-128, 128, (samples, cols)).astype(np.int8)
    p = PRUNER
    p.wanda_reset()
    for row in x:
        p.wanda_add(bytearray(row.tobytes()))
    sumsq = twin.wanda_sumsq(x)
    assert list(p._sumsq[:cols]) == sumsq.tolist()
    p.wanda(bytearray(w.tobytes()), rows, cols)
    assert scores_of(p) == twin.wanda_scores(w, sumsq, rows, cols).reshape(-1).tolist()


@SETTINGS
@given(layers(), st.data())
def test_wanda_with_given_sums_including_extremes(layer, data):
    rows, cols, w = layer
    sums = data.draw(st.lists(st.one_of(st.integers(0, 2**30 - 1),
                                        st.sampled_from([0, 1, 2**30 - 1, 4 * 10**8])),
                              min_size=cols, max_size=cols))
    PRUNER.wanda(bytearray(w.tobytes()), rows, cols, sums)
    expected = twin.wanda_scores(w, np.array(sums), rows, cols).reshape(-1)
    assert scores_of(PRUNER) == expected.tolist()


def test_isqrt_is_exact_near_squares():
    import math

    from prune8.scores import isqrt
    for r in [0, 1, 2, 3, 1000, 32767]:
        for v in (r * r - 1, r * r, r * r + 1):
            if 0 <= v < 2**30:
                assert isqrt(v) == math.isqrt(v)
    vals = np.array([0, 1, 2, 3, 4, 15, 16, 17, 2**30 - 1, 32767**2, 32767**2 - 1], np.int64)
    assert twin_scores.isqrt(vals).tolist() == [isqrt(int(v)) for v in vals]


def test_wanda_sums_saturate_instead_of_growing_big_ints():
    p = prune8.Pruner(64, 4)
    x = bytearray([128, 128, 1, 0])  # -128: 16384 per sample
    for _ in range(70000):
        p.wanda_add(x)
    assert list(p._sumsq[:4]) == [2**30 - 1, 2**30 - 1, 70000, 0]
    many = np.tile(np.frombuffer(bytes(x), np.int8), (70000, 1))
    assert twin.wanda_sumsq(many).tolist() == [2**30 - 1, 2**30 - 1, 70000, 0]


# -- blocks ------------------------------------------------------------------------------

@st.composite
def blocked(draw):
    br, bc = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    gr = draw(st.integers(1, max(1, 64 // br)))
    gc = draw(st.integers(1, max(1, min(64 // bc, 2048 // (br * bc * gr)))))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.choice(rng.integers(-128, 128, 4), (br * gr) * (bc * gc)).astype(np.int8)
    return br * gr, bc * gc, br, bc, w


@SETTINGS
@given(blocked(), st.integers(0, 10000), st.sampled_from(["exact", "strict"]))
def test_blocks_scores_and_block_masks_match(case, bp, tie):
    rows, cols, br, bc, w = case
    nb = (rows // br) * (cols // bc)
    p = PRUNER
    try:
        p.blocks(bytearray(w.tobytes()), rows, cols, br, bc)
    except prune8.CapacityError:
        with pytest.raises(prune8.CapacityError):
            twin.block_scores(w, rows, cols, br, bc, profile=(2048, 64))
        return
    s = twin.block_scores(w, rows, cols, br, bc)
    assert p.n == nb and scores_of(p) == s.tolist()
    m = p.mask(sparsity_bp=bp, tie=tie)
    words = twin.prune_mask(s, sparsity_bp=bp, tie=tie)
    assert m.bytes() == words.astype("<u4").tobytes()
    if tie == "exact":  # exactly k blocks pruned
        assert m.pruned == max(0, min(nb * bp // 10000, nb - 1))


def test_block_l1_by_hand():
    w = np.array([[1, -2, 3, 4], [5, 6, -7, 8]], np.int8)
    assert twin.block_scores(w, 2, 4, 2, 2).tolist() == [1 + 2 + 5 + 6, 3 + 4 + 7 + 8]
    assert twin.block_scores(w, 2, 4, 1, 4).tolist() == [10, 26]


# -- N:M ---------------------------------------------------------------------------------

@SETTINGS
@given(st.sampled_from([(2, 4), (1, 4), (1, 2), (3, 8), (4, 4)]), st.integers(1, 16),
       st.integers(1, 8), st.data())
def test_nm_keeps_exactly_n_per_group_and_matches(nm, rows, groups, data):
    n, m = nm
    cols = m * groups
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    w = rng.choice(rng.integers(-128, 128, 3), rows * cols).astype(np.int8)  # many ties
    p = PRUNER
    p.magnitude(bytearray(w.tobytes()))
    mask = p.nm_mask(n, m, rows, cols)
    words = twin.nm_mask(twin.magnitude_scores(w), rows, cols, n, m)
    assert mask.bytes() == words.astype("<u4").tobytes()
    keep = twin.mask_to_keep(words, rows * cols).reshape(-1, m)
    assert (keep.sum(axis=1) == n).all()            # exactly n kept in every group
    s = np.abs(w.astype(np.int16)).reshape(-1, m)
    for g in range(s.shape[0]):                     # kept: the n best, lower index on ties
        order = sorted(range(m), key=lambda j: (-s[g, j], j))
        assert set(np.flatnonzero(keep[g])) == set(order[:n])


def test_two_four_by_hand():
    s = np.array([1, 5, 3, 7, 9, 9, 0, 9])
    keep = twin.mask_to_keep(twin.nm_mask(s, 2, 4, 2, 4), 8)
    assert keep.tolist() == [False, True, False, True, True, True, False, False]


# -- schedule ----------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000), st.integers(0, 10000), st.integers(0, 10000))
def test_schedule_endpoints_monotone_and_identical(steps, final, initial):
    values = [twin.sparsity_at(t, steps, final, initial) for t in range(steps + 1)]
    assert values[0] == initial and values[-1] == final
    pairs = list(zip(values, values[1:]))
    if final >= initial:
        assert all(a <= b for a, b in pairs)
    else:
        assert all(a >= b for a, b in pairs)
    probe = sorted({0, steps // 3, steps // 2, steps - 1, steps})
    assert [prune8.sparsity_at(t, steps, final, initial) for t in probe] == \
        [values[t] for t in probe]


def test_schedule_is_cubic():
    # TF Model Optimization PolynomialDecay(power=3): 9000 * (1 - (1 - t/10)^3)
    got = [twin.sparsity_at(t, 10, 9000) for t in range(11)]
    assert got == [0, 2439, 4392, 5913, 7056, 7875, 8424, 8757, 8928, 8991, 9000]


# -- statistics ----------------------------------------------------------------------------

def test_score_stats_and_top_k():
    s = np.array([4, 1, 9, 9, 0], np.int16)
    st_ = twin.score_stats(s)
    assert (st_["min"], st_["max"], st_["mean"], st_["median"]) == (0, 9, 4.6, 4.0)
    assert st_["std"] == pytest.approx(np.std([4, 1, 9, 9, 0]))
    assert twin.top_k(s, 3).tolist() == [2, 3, 0]   # ties by lower index


# -- errors: same class and message on both sides -----------------------------------------

def both(fw, tw):
    with pytest.raises(prune8.Prune8Error) as a:
        fw()
    with pytest.raises(prune8.Prune8Error) as b:
        tw()
    assert (type(a.value), str(a.value)) == (type(b.value), str(b.value))
    return type(a.value)


W8 = np.arange(8, dtype=np.int8)


@pytest.mark.parametrize("fw, tw, cls", [
    (lambda p: p.random(10, -1), lambda: twin.random_scores(10, -1), prune8.SeedError),
    (lambda p: p.random(10, 2**30), lambda: twin.random_scores(10, 2**30), prune8.SeedError),
    (lambda p: p.random(0, 1), lambda: twin.random_scores(0, 1), prune8.EmptyInputError),
    (lambda p: p.random(2049, 1), lambda: twin.random_scores(2049, 1, profile=(2048, 64)),
     prune8.CapacityError),
    (lambda p: p.blocks(bytearray(W8.tobytes()), 2, 4, 3, 2),
     lambda: twin.block_scores(W8, 2, 4, 3, 2), prune8.LengthMismatchError),
    (lambda p: p.blocks(bytearray(W8.tobytes()), 2, 4, 0, 2),
     lambda: twin.block_scores(W8, 2, 4, 0, 2), prune8.PatternError),
    (lambda p: p.blocks(bytearray(2048), 32, 64, 1, 2),
     lambda: twin.block_scores(np.zeros(2048, np.int8), 32, 64, 1, 2, profile=(2048, 64)),
     prune8.CapacityError),
    (lambda p: p.wanda(bytearray(W8.tobytes()), 2, 4, [1, 2, 3]),
     lambda: twin.wanda_scores(W8, [1, 2, 3], 2, 4), prune8.LengthMismatchError),
    (lambda p: p.wanda(bytearray(W8.tobytes()), 2, 4, [1, 2, -3, 4]),
     lambda: twin.wanda_scores(W8, [1, 2, -3, 4], 2, 4), prune8.DtypeError),
    (lambda p: (p.magnitude(bytearray(W8.tobytes())), p.nm_mask(3, 2, 2, 4)),
     lambda: twin.nm_mask(W8, 2, 4, 3, 2), prune8.PatternError),
    (lambda p: (p.magnitude(bytearray(W8.tobytes())), p.nm_mask(1, 3, 2, 4)),
     lambda: twin.nm_mask(W8, 2, 4, 1, 3), prune8.LengthMismatchError),
    (lambda p: prune8.sparsity_at(3, 2, 5000), lambda: twin.sparsity_at(3, 2, 5000),
     prune8.ScheduleError),
    (lambda p: prune8.sparsity_at(0, 0, 5000), lambda: twin.sparsity_at(0, 0, 5000),
     prune8.ScheduleError),
    (lambda p: prune8.sparsity_at(1, 2, 10001), lambda: twin.sparsity_at(1, 2, 10001),
     prune8.SparsityError),
])
def test_new_errors_match(fw, tw, cls):
    assert both(lambda: fw(prune8.Pruner()), tw) is cls


def test_nm_needs_weight_scores():
    p = prune8.Pruner()
    p.rows(bytearray(8), 2, 4)
    with pytest.raises(prune8.EmptyInputError, match="one score per weight"):
        p.nm_mask(2, 4, 2, 4)
