"""SparseGPT-style one-shot pruning of a float layer, with OBS weight updates
(docs/spec.md §11.2).

Written from the description in Frantar & Alistarh, "SparseGPT: Massive Language Models
Can Be Accurately Pruned in One-Shot" (ICML 2023), section 3 and Algorithm 1.

For a layer y = W x (W: rows x cols, rows = output neurons, as in prune8 model files)
and calibration inputs X (samples x cols), pruning minimizes ||W X^T - W' X^T||^2 row
by row; every row shares the Hessian H = 2 X^T X. Dampening adds
`damp * mean(diag H)` to the diagonal so that H is invertible even when an input never
fires (the digits' corner pixels are 0 on every calibration image).

Columns are processed left to right. Once column j is decided, the weights of columns
< j are frozen, so the Optimal Brain Surgeon update for pruning w[r, j] uses the inverse
Hessian of the columns j..cols-1 only, H_j^-1. With U the upper Cholesky factor of
H^-1 (H^-1 = U^T U), row j of H_j^-1 restricted to columns j.. is U[j, j] * U[j, j:], so

    err = w[:, j] / U[j, j]            (for the pruned entries of column j, else 0)
    W[:, j:] -= err (outer) U[j, j:]   (zeroes the pruned entries, corrects the rest)

and the OBS saliency of w[r, j] is w^2 / [H_j^-1]_jj = w^2 / U[j, j]^2. The mask is
chosen per block of `block` columns, when the block is reached (so it sees the updates
from the blocks before it): the entries of the block with the lowest saliency, across
all rows, ties by the lower row-major index. The paper's lazy batching of updates only
changes memory traffic, not the result, and is left out.

A layer of n weights loses exactly k = min(n * bp // 10000, n - 1) (docs/spec.md §1.4's
k with min_keep = 1), spread over the blocks in proportion to their columns.

The compensation is greedy: pruning column j moves its error onto columns j+1.., and
weights there that a later block prunes take it with them. On the digits model, with
magnitude's mask held fixed, 85-95% of the update energy lands on such weights at
80-95% sparsity; at 95% on fc2 (16 of 320 weights kept) the updates then make the
calibration error larger than no updates at all, and SparseGPT's own result is also
above plain magnitude pruning's (a one-off measurement; make eval reports the error
ratios). Up to 90% the error is lower (tests/eval/test_sparsegpt.py).

Like prune8_host.mlp, every sum runs in a fixed order and the square roots are IEEE
ones, not LAPACK / BLAS calls (whose blocking and SIMD differ between CPUs), so a mask
is the same on every machine.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from prune8_host import twin

from .mlp import MLP

__all__ = ["DAMP", "BLOCK", "hessian", "inverse_hessian_factor", "prune_count", "prune_layer",
           "prune_mlp", "reconstruction_error"]

DAMP = 0.01     # the paper's default: 1% of the mean diagonal
BLOCK = 8       # columns per mask block; the digits layers have 64 and 32 columns


def prune_count(n: int, bp: int) -> int:
    """docs/spec.md §1.4's k with min_keep = 1: what every prune8 method prunes from n
    weights."""
    return min(n * bp // 10000, n - 1)


def _gram(x: np.ndarray) -> np.ndarray:
    """x^T x for x (samples, cols), summed over samples in order."""
    out = x[0][:, None] * x[0][None, :]
    for i in range(1, x.shape[0]):
        out += x[i][:, None] * x[i][None, :]
    return out


def hessian(x: np.ndarray) -> np.ndarray:
    """H = 2 X^T X of the layer's calibration inputs x (samples, cols), float64."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"calibration inputs must be (samples, cols); got shape {x.shape}")
    return 2.0 * _gram(x)


def _cholesky(a: np.ndarray) -> np.ndarray:
    """Lower L with a = L L^T, column by column, every sum in index order."""
    n = a.shape[0]
    low = np.zeros_like(a)
    for j in range(n):
        s = a[j:, j].copy()
        for k in range(j):
            s -= low[j:, k] * low[j, k]
        if not s[0] > 0.0:
            raise ValueError("the dampened Hessian is not positive definite")
        d = np.sqrt(s[0])
        low[j, j] = d
        low[j + 1:, j] = s[1:] / d
    return low


def _lower_inverse(low: np.ndarray) -> np.ndarray:
    """L^-1 of a lower triangular L by forward substitution, sums in index order."""
    n = low.shape[0]
    inv = np.zeros_like(low)
    for i in range(n):
        row = np.zeros(n)
        row[i] = 1.0
        for k in range(i):
            row -= low[i, k] * inv[k]
        inv[i] = row / low[i, i]
    return inv


def inverse_hessian_factor(h: np.ndarray, damp: float = DAMP) -> np.ndarray:
    """U, upper triangular, with U^T U = (H + damp * mean(diag H) * I)^-1."""
    h = np.array(h, np.float64)
    mean_diag = float(np.sum(np.diag(h))) / h.shape[0]
    if not mean_diag > 0.0:
        raise ValueError("the calibration inputs of this layer are all zero: no Hessian")
    h[np.diag_indices_from(h)] += damp * mean_diag
    linv = _lower_inverse(_cholesky(h))          # H^-1 = linv^T linv
    n = h.shape[0]
    hinv = np.zeros_like(h)
    for k in range(n):                           # linv^T linv, summed over k in order
        hinv += linv[k][:, None] * linv[k][None, :]
    return _cholesky(hinv).T                     # H^-1 = C C^T, so U = C^T


def _block_counts(k: int, cols: int, block: int) -> list[tuple[int, int, int]]:
    """(first column, end column, entries to prune) per block: the cumulative count after
    column e is floor(k * e / cols), so the blocks share k in proportion to their width."""
    out = []
    for start in range(0, cols, block):
        end = min(start + block, cols)
        out.append((start, end, k * end // cols - k * start // cols))
    return out


def prune_layer(w: np.ndarray, x: np.ndarray, sparsity_bp: int, *, block: int = BLOCK,
                damp: float = DAMP) -> tuple[np.ndarray, np.ndarray]:
    """(pruned and updated float weights, keep flags) of a layer w (rows, cols) given its
    calibration inputs x (samples, cols); prunes exactly prune_count(rows * cols, bp)."""
    w = np.array(w, np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights must be a non-empty (rows, cols) array; got {w.shape}")
    rows, cols = w.shape
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != cols:
        raise ValueError(f"calibration inputs have shape {x.shape}: need (samples, {cols})")
    if not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive integer; got {block!r}")
    bp = twin.resolve_bp(None, sparsity_bp)
    u = inverse_hessian_factor(hessian(x), damp)
    keep = np.ones((rows, cols), bool)
    for start, end, k in _block_counts(prune_count(w.size, bp), cols, block):
        if k:
            d = np.diag(u)[start:end]
            saliency = (w[:, start:end] ** 2 / (d * d)[None, :]).reshape(-1)
            drop = np.argsort(saliency, kind="stable")[:k]   # lowest first, ties by index
            flat = keep[:, start:end].reshape(-1)
            flat[drop] = False
            keep[:, start:end] = flat.reshape(rows, end - start)
        for j in range(start, end):
            err = np.where(keep[:, j], 0.0, w[:, j] / u[j, j])
            w[:, j:] -= err[:, None] * u[j, j:][None, :]
    w[~keep] = 0.0          # the update leaves them at 0 up to rounding: make it exact
    return w, keep


def prune_mlp(m: MLP, x: np.ndarray, sparsity_bp: int, *, block: int = BLOCK,
              damp: float = DAMP) -> tuple[MLP, dict[str, np.ndarray]]:
    """SparseGPT on both layers of an MLP, each at sparsity_bp, one after the other:
    w1's Hessian comes from the calibration inputs x, w2's from the hidden activations
    of the already pruned first layer (as the paper feeds each layer the outputs of the
    compressed layers before it). Biases are kept. Returns (pruned MLP, keep flags
    {"fc1": ..., "fc2": ...})."""
    from . import mlp
    w1, keep1 = prune_layer(m.w1, x, sparsity_bp, block=block, damp=damp)
    pruned = replace(m, w1=w1)
    _, hidden, _ = mlp.forward(pruned, np.asarray(x, np.float64))
    w2, keep2 = prune_layer(m.w2, hidden, sparsity_bp, block=block, damp=damp)
    return replace(pruned, w2=w2), {"fc1": keep1, "fc2": keep2}


def reconstruction_error(w: np.ndarray, w_new: np.ndarray, x: np.ndarray) -> float:
    """||W X^T - W' X^T||_F over the calibration inputs x (samples, cols)."""
    d = np.asarray(x, np.float64) @ (np.asarray(w, np.float64) - w_new).T
    return float(np.sqrt(np.sum(d * d)))
