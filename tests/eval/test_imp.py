"""Iterative magnitude pruning with rewinding (prune8_host.imp): the per-round rate, a
mask that only grows, the final sparsity, what each rewind restores, the history."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prune8_eval import digits, mlp
from prune8_eval import iterative as imp
from prune8_eval.mlp import MLP

ROUNDS, BP = 3, 8000
DENSE_EPOCHS, REWIND_EPOCH = 3, 1


@pytest.fixture(scope="module")
def data():
    d = digits.load()
    return d.x_train[:400], d.y_train[:400], digits.init_float(d)


@pytest.fixture(scope="module")
def dense(data):
    x, y, init = data
    return imp.train_dense(init, x, y, epochs=DENSE_EPOCHS, rewind_epoch=REWIND_EPOCH,
                           lr=0.05, seed=7)


@pytest.fixture(scope="module")
def runs(data, dense):
    x, y, _ = data
    return {rw: imp.iterative_magnitude_pruning(dense, x, y, rounds=ROUNDS,
                                                final_sparsity=BP / 10000, rewind=rw,
                                                lr=0.05, seed=7, retrain_epochs=2)
            for rw in imp.REWINDS}


@pytest.mark.parametrize("s", [0.0, 0.2, 0.5, 0.8, 0.95, 1.0])
@pytest.mark.parametrize("rounds", [1, 2, 5, 13])
def test_round_rate_is_the_geometric_rate(s, rounds):
    p = imp.round_rate(s, rounds)
    assert p == pytest.approx(1 - (1 - s) ** (1 / rounds), abs=0)
    assert (1 - p) ** rounds == pytest.approx(1 - s, abs=1e-12)
    if rounds == 1:
        assert p == pytest.approx(s, abs=1e-15)


@settings(max_examples=500, deadline=None)
@given(st.integers(1, 5000), st.integers(0, 10000), st.integers(1, 20))
def test_round_counts_follow_the_rate_and_end_at_specs_k(n, bp, rounds):
    counts = imp.round_counts(n, bp, rounds)
    p = imp.round_rate(bp / 10000, rounds)
    assert len(counts) == rounds
    assert counts[-1] == min(n * bp // 10000, n - 1)           # docs/spec.md §1.4's k
    assert abs(counts[-1] - n * bp / 10000) <= 1                 # within one weight
    assert all(0 <= a <= b for a, b in zip([0] + counts, counts))  # only ever grows
    for r, k in enumerate(counts, 1):
        # what remains is n (1 - p)^r rounded to a whole weight; a round that reaches
        # the last round's k stops there (k is a floor: less than a weight below n s)
        off = abs((n - k) - n * (1 - p) ** r)
        assert off <= 0.5 + 1e-9 * n or (k == counts[-1] and off <= 1 + 1e-9 * n)


def test_history_has_one_round_each_with_the_counts_and_rate(runs):
    for rewind, (model, history) in runs.items():
        assert [h.round for h in history] == [1, 2, 3]
        assert history[-1].model is model
        for h in history:
            assert h.rate == imp.round_rate(BP / 10000, ROUNDS) and h.epochs == 2
            for layer, n in (("fc1", 2048), ("fc2", 320)):
                assert h.total[layer] == n
                assert h.pruned[layer] == imp.round_counts(n, BP, ROUNDS)[h.round - 1]
                assert h.pruned[layer] == np.count_nonzero(~h.keep[layer])
            assert h.sparsity == h.pruned_total / 2368
            assert h.sparsity_bp == h.pruned_total * 10000 // 2368


def test_final_sparsity_matches_within_one_weight_per_layer(runs):
    for model, history in runs.values():
        for layer, field, n in (("fc1", "w1", 2048), ("fc2", "w2", 320)):
            pruned = history[-1].pruned[layer]
            assert pruned == min(n * BP // 10000, n - 1) and abs(pruned - n * BP / 10000) < 1
            w = getattr(model, field)
            assert not np.any(w[~history[-1].keep[layer]])          # pruned: exactly 0
            assert np.count_nonzero(w) == n - pruned                # kept: trained, not 0


def test_the_mask_only_grows_and_prunes_the_smallest_kept_weights(runs, dense):
    for model, history in runs.values():
        before = dense.trained
        keep = {layer: np.ones(getattr(before, f).shape, bool) for layer, f in imp.LAYERS.items()}
        for h in history:
            for layer, f in imp.LAYERS.items():
                now = h.keep[layer]
                assert not np.any(now & ~keep[layer])        # nothing pruned comes back
                gone = keep[layer] & ~now                     # pruned this round
                mags = np.abs(getattr(before, f))
                assert gone.any() and mags[gone].max() <= mags[now].min()
                keep[layer] = now
            before = h.model


def test_rewinds_restore_the_saved_weights_at_unpruned_positions(runs, dense, data):
    x, y, init = data
    # theta_k is the dense run's state after k epochs: training k epochs with the same
    # arguments, since mlp.train's first epochs do not depend on how many follow
    assert all(np.array_equal(getattr(dense.early, f), getattr(
        mlp.train(init, x, y, epochs=REWIND_EPOCH, lr=0.05, seed=7), f)) for f in
        ("w1", "b1", "w2", "b2"))
    assert dense.init is init
    for rewind, (model, history) in runs.items():
        previous = dense.trained
        for h in history:
            source = {"init": dense.init, "early": dense.early, "none": previous}[rewind]
            for layer, f in imp.LAYERS.items():
                keep = h.keep[layer]
                start = getattr(h.start, f)
                assert np.array_equal(start[keep], getattr(source, f)[keep]), (rewind, h.round)
                assert not np.any(start[~keep])
            for b in ("b1", "b2"):
                assert np.array_equal(getattr(h.start, b), getattr(source, b))
            assert not np.array_equal(h.model.w1, h.start.w1)   # and the round trained
            previous = h.model
    # the three rewinds differ from the second round's start on
    starts = {rw: runs[rw][1][1].start.w1 for rw in imp.REWINDS}
    assert not np.array_equal(starts["init"], starts["early"])
    assert not np.array_equal(starts["init"], starts["none"])


def test_deterministic(data, runs):
    x, y, init = data
    model, history = imp.iterative_magnitude_pruning(
        init, x, y, rounds=ROUNDS, final_sparsity=BP / 10000, rewind="early",
        epochs=DENSE_EPOCHS, rewind_epoch=REWIND_EPOCH, lr=0.05, seed=7, retrain_epochs=2)
    again, h0 = runs["early"]
    for f in ("w1", "b1", "w2", "b2"):
        assert getattr(model, f).tobytes() == getattr(again, f).tobytes()
    assert all(np.array_equal(a.keep["fc1"], b.keep["fc1"]) for a, b in zip(history, h0))


def test_the_dense_run_of_the_digits_recipe_is_the_shipped_models_float_model():
    d = digits.load()
    run = imp.train_dense(digits.init_float(d), d.x_train, d.y_train, epochs=digits.EPOCHS,
                          rewind_epoch=2, lr=digits.LR, seed=digits.TRAIN_SEED,
                          batch=digits.BATCH)
    ref = digits.train_float(d)
    assert all(getattr(run.trained, f).tobytes() == getattr(ref, f).tobytes()
               for f in ("w1", "b1", "w2", "b2"))


def test_magnitude_keep_ties_go_in_index_order():
    w = np.array([[3.0, -1.0, 1.0], [0.5, -3.0, 1.0]])
    keep = np.array([[True, True, True], [False, True, True]])
    out = imp.magnitude_keep(w, keep, 2)
    assert out.tolist() == [[True, False, False], [False, True, True]]
    assert keep.tolist() == [[True, True, True], [False, True, True]]   # not modified
    with pytest.raises(ValueError, match="only 5 are kept"):
        imp.magnitude_keep(w, keep, 6)


def test_bad_arguments_are_refused(data, dense):
    x, y, init = data
    common = dict(rounds=2, final_sparsity=0.5, lr=0.05, seed=1)
    with pytest.raises(ValueError, match="rewind must be one of init, early, none"):
        imp.iterative_magnitude_pruning(dense, x, y, rewind="late", **common)
    with pytest.raises(ValueError, match="rounds must be an integer >= 1"):
        imp.iterative_magnitude_pruning(dense, x, y, **dict(common, rounds=0))
    with pytest.raises(ValueError, match="sparsity"):
        imp.iterative_magnitude_pruning(dense, x, y, **dict(common, final_sparsity=1.5))
    with pytest.raises(ValueError, match="epochs .* is needed"):
        imp.iterative_magnitude_pruning(init, x, y, **common)
    with pytest.raises(ValueError, match="the dense run trained 3"):
        imp.iterative_magnitude_pruning(dense, x, y, epochs=5, **common)
    with pytest.raises(ValueError, match="rewind_epoch 4 is past the 3 training epochs"):
        imp.train_dense(init, x, y, epochs=3, rewind_epoch=4, lr=0.05, seed=1)
    assert isinstance(init, MLP)
