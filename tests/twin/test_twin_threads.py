"""Large twin passes run on several threads (twin/threads.py): the answer must not
depend on it. Each large-layer result is checked against the formula written
directly in NumPy (int64, no blocks, no threads), on one thread and on four."""

import numpy as np
import pytest

from prune8_host import twin
from prune8_host.twin import threads


@pytest.fixture(params=[1, 4], ids=["1 thread", "4 threads"])
def thread_count(request):
    saved = threads.MAX_THREADS
    threads.MAX_THREADS = request.param
    yield request.param
    threads.MAX_THREADS = saved


def layer(rows, cols, seed):
    w = np.random.default_rng(seed).integers(-128, 128, (rows, cols)).astype(np.int8)
    w[:, :5] = -128  # the largest flows, through every row
    w[7, :] = -128   # and one full row
    return w


def mincut_formula(w):
    a = np.abs(w.astype(np.int64))
    m = np.minimum(a.sum(axis=1)[:, None], a.sum(axis=0)[None, :])
    return np.minimum((a * m) >> 10, 32767).astype(np.int16)


@pytest.mark.parametrize("rows, cols", [(1024, 1024), (2049, 777), (4096, 4096)])
def test_mincut_on_large_layers_is_the_formula(thread_count, rows, cols):
    w = layer(rows, cols, rows)
    assert rows * cols >= threads.THREAD_MIN
    got = twin.mincut_scores(w, rows, cols)
    assert got.dtype == np.int16 and np.array_equal(got, mincut_formula(w))


def test_magnitude_scores_and_masks_on_a_large_layer(thread_count):
    w = layer(1500, 1100, 3).reshape(-1)
    scores = twin.magnitude_scores(w)
    assert scores.dtype == np.int16 and np.array_equal(scores, np.abs(w.astype(np.int16)))
    order = np.argsort(scores, kind="stable")
    k = w.size * 3 // 10
    keep = np.ones(w.size, bool)
    keep[order[:k]] = False
    expected = twin.mask_from_keep(keep)
    assert np.array_equal(twin.prune_mask(scores, sparsity_bp=3000), expected)
    assert np.array_equal(twin.magnitude_mask(w, sparsity_bp=3000), expected)
