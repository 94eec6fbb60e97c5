"""Keep masks: the twin of prune8.mask and of Pruner.mask(), masks as np.uint32 words,
bit i % 32 of word i // 32, 1 = keep (docs/spec.md §4). The rules: k (§1.4), the
threshold and ties (§3.1-§3.4), per-channel scope (§3.6), reading, apply, stats
(§4.2-§4.5)."""

from __future__ import annotations

import numpy as np

from prune8 import errors
from prune8.bp import prune_count

from . import check
from .bp import resolve_bp
from .select import Cuts, Magnitudes, Scores, check_range, rank


def rule_words(src: Scores, k: int, tie: str, min_score: int) -> np.ndarray:
    """Mask words that prune the k lowest scores (tie rule), then those < min_score.

    With tie 'exact' the k-th value t prunes its equals only up to the tie cut: the
    words are the bits of `score >= t + 1` before it and of `score >= t` from it on.
    """
    n = src.n
    if k <= 0:  # nothing pruned by rank; only min_score can prune
        return words(Cuts(src).add([min_score]).mask_bytes(min_score))
    t, cuts = rank(src, k - 1 if tie == "exact" else min(k, n - 1))
    if min_score > t:  # every entry below min_score goes, ties at t included
        return words(cuts.add([min_score]).mask_bytes(min_score))
    ties = k - cuts.below(t)  # exact: the equals of t that are pruned (>= 1 as pos = k - 1)
    if tie != "exact" or ties <= 0:
        return words(cuts.mask_bytes(t))
    return words(cuts.mask_bytes(t, before=t + 1, cut=cuts.tie_cut(t, ties)))


def words(mask_bytes: np.ndarray) -> np.ndarray:
    """Mask bytes (docs/spec.md §4.1 bit order, whole words) -> np.uint32 mask words."""
    return mask_bytes.view("<u4").astype(np.uint32, copy=False)


def kept(s: np.ndarray, k: int, tie: str, min_score: int) -> np.ndarray:
    """Boolean keep flags: the k lowest scores pruned (tie rule), then those < min_score."""
    s = s.reshape(-1)
    bits = rule_words(Scores(s), k, tie, min_score).view(np.uint8)
    return np.unpackbits(bits, bitorder="little")[:s.size].astype(bool)


def mask_from_keep(keep) -> np.ndarray:
    """Boolean keep flags -> mask words (uint32, docs/spec.md §4.1, bits past n = 0)."""
    keep = np.asarray(keep, dtype=bool).reshape(-1)
    packed = np.packbits(keep, bitorder="little")
    buf = np.zeros(4 * ((keep.size + 31) // 32), np.uint8)
    buf[:packed.size] = packed
    return buf.view("<u4").astype(np.uint32)


def mask_to_keep(words, n: int) -> np.ndarray:
    """Mask words -> boolean keep flags of length n (checks the word count and stray bits)."""
    if not check.is_int(n) or n < 1:
        raise errors.empty("mask")
    words = np.asarray(words)
    if not np.issubdtype(words.dtype, np.integer):
        raise errors.dtype_words(words.dtype.name)
    if words.ndim != 1 or words.size != (n + 31) // 32:
        raise errors.words_mismatch(words.size, n)
    if words.size and (int(words.min()) < 0 or int(words.max()) > 0xFFFFFFFF):
        raise errors.dtype_words(words.dtype.name)
    bits = np.unpackbits(words.astype("<u4").view(np.uint8), bitorder="little")
    if bits[n:].any():
        raise errors.stray_bits(n)
    return bits[:n].astype(bool)


def prune_mask(scores, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1,
               min_score=0, method="auto", profile=None) -> np.ndarray:
    """Mask words that prune the k lowest scores, k = min(n * bp // 10000, n - min_keep).

    `method` is checked like the board's; every method gives the same threshold.
    """
    check.options(tie, method)
    bp = resolve_bp(sparsity, sparsity_bp)
    s = np.asarray(scores).reshape(-1)
    if not np.issubdtype(s.dtype, np.integer):
        raise errors.dtype_scores(s.dtype.name)
    if s.size == 0:
        raise errors.empty("scores")
    try:  # the range is checked during the first pass over the scores, which saves one
        check.capacity(check.limits(profile), s.size)
        min_keep = check.min_keep(min_keep, s.size)
        min_score = check.min_score(min_score)
    except errors.Prune8Error:
        check_range(s)  # but a bad range is reported before these, as on the board
        raise
    return rule_words(Scores(s, check_range=True), prune_count(s.size, bp, min_keep), tie,
                      min_score)


def magnitude_mask(w, sparsity=None, *, sparsity_bp=None, tie="exact", min_keep=1,
                   min_score=0, method="auto", profile=None) -> np.ndarray:
    """prune_mask(magnitude_scores(w), ...) in one step, without the int16 scores:
    |w| is taken block by block as uint8. Same mask words, same errors."""
    w = check.int8(w, "weights")  # checks in the order of the two calls it replaces
    if w.size == 0:
        raise errors.empty("weights")
    check.capacity(check.limits(profile), w.size)
    check.options(tie, method)
    bp = resolve_bp(sparsity, sparsity_bp)
    min_keep = check.min_keep(min_keep, w.size)
    min_score = check.min_score(min_score)
    return rule_words(Magnitudes(w), prune_count(w.size, bp, min_keep), tie, min_score)


def prune_mask_channels(scores, rows, cols, sparsity=None, *, sparsity_bp=None, tie="exact",
                        min_keep=1, min_score=0, method="auto", profile=None) -> np.ndarray:
    """Per-channel mask words of rows x cols weight scores: every row prunes its own
    k = min(cols * bp // 10000, cols - min_keep) lowest, by prune_mask's rules within
    the row (Pruner.channel_mask)."""
    check.options(tie, method)
    bp = resolve_bp(sparsity, sparsity_bp)
    s = np.asarray(scores).reshape(-1)
    if not np.issubdtype(s.dtype, np.integer) or s.dtype.itemsize > 2:
        raise errors.scope_weights()  # weight scores are int16; unit scores int32
    if s.size == 0:
        raise errors.empty("scores")
    rows, cols = check.shape(s.size, rows, cols)
    check.capacity(check.limits(profile), s.size, rows)
    min_keep = check.min_keep(min_keep, cols)
    min_score = check.min_score(min_score)
    if int(s.min()) < 0:
        raise errors.score_range(int(s.min()), int(s.max()))
    k = prune_count(cols, bp, min_keep)
    s2 = s.reshape(rows, cols)
    if k <= 0:
        return mask_from_keep(s2 >= min_score)
    pos = k - 1 if tie == "exact" else min(k, cols - 1)
    t = np.partition(s2, pos, axis=1)[:, pos].astype(np.int64)
    keep = s2 >= t[:, None]
    if tie == "exact":
        ties = k - (cols - np.count_nonzero(keep, axis=1))   # per row: k minus those < t
        eq = s2 == t[:, None]
        keep &= ~(eq & (np.cumsum(eq, axis=1) <= ties[:, None]))
    floor = np.maximum(t, min_score)[:, None]
    keep = np.where(min_score > t[:, None], s2 >= floor, keep)
    return mask_from_keep(keep)


def apply_mask(w, words, *, profile=None) -> np.ndarray:
    """A copy of w with every weight whose mask bit is 0 set to 0."""
    w = check.int8(w, "weights")
    if w.size == 0:
        raise errors.empty("weights")
    check.capacity(check.limits(profile), w.size)
    keep = mask_to_keep(words, w.size)
    out = w.copy()
    out.reshape(-1)[~keep] = 0
    return out


def mask_stats(words, n) -> dict:
    """{'n', 'pruned', 'kept', 'sparsity_bp'} of a mask over n entries."""
    keep = mask_to_keep(words, n)
    kept = int(np.count_nonzero(keep))
    pruned = int(n) - kept
    return {"n": int(n), "pruned": pruned, "kept": kept,
            "sparsity_bp": pruned * errors.MAX_BP // int(n)}
