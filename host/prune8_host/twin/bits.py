"""Counting the set bits of packed bits (mask words, mask bytes): the host's one popcount.

np.bitwise_count over 64-bit words where the bytes allow: 8x fewer elements than over
bytes, and no unpacked array of one byte per bit (np.unpackbits).
"""

from __future__ import annotations

import numpy as np


def word_counts(packed: np.ndarray) -> np.ndarray:
    """The set bits of each 64-bit word of a contiguous array whose size in bytes is a
    multiple of 8 (word i: bytes 8i..8i+7)."""
    return np.bitwise_count(packed.reshape(-1).view(np.uint8).view(np.uint64))


def popcount(packed: np.ndarray) -> int:
    """The set bits of a contiguous array of unsigned integers (any width)."""
    if packed.nbytes % 8:
        return int(np.bitwise_count(packed.reshape(-1).view(np.uint8)).sum(dtype=np.int64))
    return int(word_counts(packed).sum(dtype=np.int64))
