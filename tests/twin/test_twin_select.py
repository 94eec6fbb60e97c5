"""The twin's exact-k selection without a sort (twin/select.py) against the rule it
implements, written the slow, obvious way: prune the first k of a stable argsort.

The engine has three ways to the answer (np.partition on small inputs; a band of
few values counted one by one; a wide band whose entries are kept) and a fallback
when the sample misleads. Shrinking its block, sample and direct sizes sends small
hypothesis inputs down every one of them.
"""

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prune8 import errors
from prune8.bp import prune_count
from prune8_host import twin
from prune8_host.twin import bits, select


def reference_keep(s, k, tie, min_score):
    s = np.asarray(s).reshape(-1).astype(np.int64)
    keep = np.ones(s.size, bool)
    if k > 0:
        if tie == "exact":
            keep[np.argsort(s, kind="stable")[:k]] = False
        else:
            keep = s >= np.sort(s)[min(k, s.size - 1)]
    return keep & (s >= min_score)


@contextlib.contextmanager
def small_engine(block, sample, direct):
    saved = select.BLOCK, select.SAMPLE, select.DIRECT
    select.BLOCK, select.SAMPLE, select.DIRECT = block, sample, direct
    try:
        yield
    finally:
        select.BLOCK, select.SAMPLE, select.DIRECT = saved


engines = st.tuples(st.sampled_from([8, 16, 64, 1 << 18]), st.sampled_from([4, 16, 1 << 16]),
                    st.sampled_from([0, 8, 1 << 17]))
values = st.one_of(st.integers(-1, 1), st.integers(-128, 127), st.sampled_from([-128, 127, 0]))
bps = st.one_of(st.sampled_from([0, 1, 5000, 9999, 10000]), st.integers(0, 10000))
ties = st.sampled_from(["exact", "strict"])


@settings(max_examples=400, deadline=None)
@given(st.lists(values, min_size=1, max_size=400), bps, ties, st.integers(0, 3),
       st.sampled_from([0, 0, 1, 60, 129, 10**6]), engines, st.booleans())
def test_magnitude_masks_equal_the_stable_sort_rule(w, bp, tie, min_keep, min_score, engine,
                                                    order):
    w = np.array(sorted(w) if order else w, np.int8)
    min_keep = min(min_keep, w.size)
    k = prune_count(w.size, bp, min_keep)
    expected = twin.mask_from_keep(reference_keep(np.abs(w.astype(np.int16)), k, tie, min_score))
    with small_engine(*engine):
        scores = twin.magnitude_scores(w)
        opts = dict(sparsity_bp=bp, tie=tie, min_keep=min_keep, min_score=min_score)
        assert np.array_equal(twin.prune_mask(scores, **opts), expected)
        assert np.array_equal(twin.magnitude_mask(w, **opts), expected)


wide = st.one_of(st.integers(0, 3), st.integers(0, 1024), st.integers(0, 32767))


@settings(max_examples=300, deadline=None)
@given(st.lists(wide, min_size=1, max_size=400), bps, ties, engines, st.booleans())
def test_wide_score_masks_equal_the_stable_sort_rule(s, bp, tie, engine, int32):
    s = np.array(s, np.int32 if int32 else np.int16)
    k = prune_count(s.size, bp, 1)
    with small_engine(*engine):
        got = twin.prune_mask(s, sparsity_bp=bp, tie=tie)
        assert twin.threshold(s, s.size // 2) == int(np.sort(s)[s.size // 2])
    assert np.array_equal(got, twin.mask_from_keep(reference_keep(s, k, tie, 0)))


def adversarial(n):
    rng = np.random.default_rng(n)
    yield "all equal", np.full(n, 5, np.int8)
    yield "all -128", np.full(n, -128, np.int8)
    # every tie at the threshold: half the weights share the k-th magnitude
    w = np.where(rng.random(n) < 0.5, 9, rng.integers(-128, 128, n)).astype(np.int8)
    yield "ties at the threshold", w
    yield "sorted", np.sort(rng.integers(-128, 128, n).astype(np.int8))
    # a period equal to the sample's stride: the sample sees only the zeros, so the
    # band it guesses misses the k-th and the exact fallback must answer
    stride = max(1, n // select.SAMPLE)
    yield "aliased", np.where(np.arange(n) % stride == 0, 0, 100).astype(np.int8)


@pytest.mark.parametrize("n", [1, 2, 3, 255, (1 << 17) + 1, 1 << 20])
def test_adversarial_magnitudes(n):
    for name, w in adversarial(n):
        for bp, tie in ((5000, "exact"), (9999, "exact"), (1, "exact"), (5000, "strict")):
            k = prune_count(n, bp, 1)
            expected = twin.mask_from_keep(reference_keep(np.abs(w.astype(np.int16)), k, tie, 0))
            assert np.array_equal(twin.magnitude_mask(w, sparsity_bp=bp, tie=tie), expected), name
            assert np.array_equal(
                twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=bp, tie=tie), expected), name


def test_sixteen_million_weights_prune_exactly_k_and_the_first_ties():
    n = 1 << 24
    w = np.random.default_rng(24).integers(-128, 128, n).astype(np.int8)
    words = twin.magnitude_mask(w, sparsity_bp=5000)
    assert np.array_equal(words, twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=5000))
    keep = twin.mask_to_keep(words, n)
    a = np.abs(w.astype(np.int16))
    assert np.count_nonzero(~keep) == n // 2
    t = int(a[~keep].max())
    assert t <= int(a[keep].min())
    # the pruned equals of t are exactly the first ones in index order
    eq = np.flatnonzero(a == t)
    pruned_eq = ~keep[eq]
    assert pruned_eq.any() and not (np.diff(pruned_eq.astype(np.int8)) > 0).any()


def test_magnitude_mask_raises_what_the_two_calls_raise():
    w = np.zeros(10, np.int8)
    cases = [
        (dict(w=w.astype(np.int16)), errors.DtypeError),
        (dict(w=np.zeros(0, np.int8)), errors.EmptyInputError),
        (dict(w=w, profile=(5, 5)), errors.CapacityError),
        (dict(w=w, tie="ties"), errors.OptionError),
        (dict(w=w, sparsity_bp=10001), errors.SparsityError),
        (dict(w=w, min_keep=11), errors.MinKeepError),
        (dict(w=w, min_score=-1), errors.MinScoreError),
    ]
    for kw, kind in cases:
        w_ = kw.pop("w")
        kw.setdefault("sparsity_bp", 5000)
        with pytest.raises(kind) as fused:
            twin.magnitude_mask(w_, **kw)
        with pytest.raises(kind) as composed:
            twin.prune_mask(twin.magnitude_scores(w_, profile=kw.get("profile")), **kw)
        assert str(fused.value) == str(composed.value)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=100), st.sampled_from([np.uint8, np.uint32, np.uint64]))
def test_popcount_counts_every_set_bit_of_any_width(raw, dtype):
    # every width the host counts: mask bytes, mask words, the selection's 64-bit words
    raw = raw[:len(raw) - len(raw) % np.dtype(dtype).itemsize]
    a = np.frombuffer(raw, dtype)
    assert bits.popcount(a) == sum(bin(b).count("1") for b in raw)
    if len(raw) % 8 == 0:
        words = bits.word_counts(a).tolist()
        assert words == [sum(bin(b).count("1") for b in raw[i:i + 8])
                         for i in range(0, len(raw), 8)]
