"""A small float MLP (dense -> ReLU -> dense) trained with SGD, reproducible bit for bit.

The example model (examples/make_digits.py) must regenerate byte for byte on any x86
or ARM machine, so training uses only operations whose float64 results IEEE 754 fixes:
elementwise +, -, *, / in a fixed order. Matrix products are sums of outer products
accumulated one term at a time (BLAS picks its summation order by CPU), reductions are
explicit loops (NumPy's pairwise sums are vectorized per CPU), and softmax uses an exp
built from + and * (libm and NumPy's SIMD exp differ in the last bit between CPUs).
Initial weights come from NumPy's PCG64 `uniform`, whose stream is fixed.

Masked training (fine-tuning a pruned model) multiplies the gradient and the weights by
0/1 masks every step, so a pruned weight stays exactly zero.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = ["MLP", "init", "forward", "predict", "accuracy", "train"]


@dataclass(frozen=True)
class MLP:
    w1: np.ndarray   # (hidden, inputs), rows = output neurons, as in prune8 model files
    b1: np.ndarray   # (hidden,)
    w2: np.ndarray   # (classes, hidden)
    b2: np.ndarray   # (classes,)


def init(inputs: int, hidden: int, classes: int, seed: int) -> MLP:
    """He-uniform weights (ReLU network), zero biases."""
    rng = np.random.default_rng(seed)
    lim1 = np.sqrt(6.0 / inputs)
    lim2 = np.sqrt(6.0 / hidden)
    return MLP(rng.uniform(-lim1, lim1, (hidden, inputs)), np.zeros(hidden),
               rng.uniform(-lim2, lim2, (classes, hidden)), np.zeros(classes))


def _dot_t(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """a @ w.T for a (n, k), w (m, k), summed over k in order 0, 1, ..., k-1."""
    out = a[:, 0:1] * w[:, 0][None, :]
    for j in range(1, a.shape[1]):
        out += a[:, j:j + 1] * w[:, j][None, :]
    return out


def _outer_sum(d: np.ndarray, a: np.ndarray) -> np.ndarray:
    """d.T @ a for d (n, m), a (n, k): the weight gradient, summed over rows in order."""
    out = d[0][:, None] * a[0][None, :]
    for i in range(1, d.shape[0]):
        out += d[i][:, None] * a[i][None, :]
    return out


def _row_sum(d: np.ndarray) -> np.ndarray:
    """d.sum(axis=0), in row order."""
    out = d[0].copy()
    for i in range(1, d.shape[0]):
        out += d[i]
    return out


_LN2 = 0.6931471805599453
# 1/k! for k = 0..13: exp(r) on [0, ln 2) to ~1e-16 relative by Horner's rule
_TAYLOR = [1.0]
for _k in range(1, 14):
    _TAYLOR.append(_TAYLOR[-1] / _k)


def _exp_nonpos(z: np.ndarray) -> np.ndarray:
    """exp(z) for z <= 0 (clamped at -700) from +, *, floor and ldexp, so every CPU
    agrees; within 1e-13 relative of libm's exp, plenty for a softmax."""
    z = np.maximum(z, -700.0)
    n = np.floor(z / _LN2)
    r = z - n * _LN2                  # in [0, ln 2]
    p = np.full_like(r, _TAYLOR[-1])
    for c in reversed(_TAYLOR[:-1]):
        p = p * r + c
    return np.ldexp(p, n.astype(np.int64))


def forward(m: MLP, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pre-activation, hidden, logits) for x (n, inputs)."""
    pre = _dot_t(x, m.w1) + m.b1
    h = np.maximum(pre, 0.0)
    return pre, h, _dot_t(h, m.w2) + m.b2


def predict(m: MLP, x: np.ndarray) -> np.ndarray:
    return np.argmax(forward(m, x)[2], axis=1)


def accuracy(m: MLP, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.count_nonzero(predict(m, x) == y)) / y.size


def _softmax(z: np.ndarray) -> np.ndarray:
    top = z[:, 0].copy()
    for j in range(1, z.shape[1]):
        top = np.maximum(top, z[:, j])
    e = _exp_nonpos(z - top[:, None])
    total = e[:, 0].copy()
    for j in range(1, z.shape[1]):
        total += e[:, j]
    return e / total[:, None]


def train(m: MLP, x: np.ndarray, y: np.ndarray, *, epochs: int, lr: float, seed: int,
          batch: int = 32, momentum: float = 0.9, weight_decay: float = 1e-4,
          masks: dict[str, np.ndarray] | None = None) -> MLP:
    """Mini-batch SGD with momentum on softmax cross-entropy; returns the trained copy.

    `masks` (0/1 float arrays for "w1", "b1", "w2", "b2", any subset) pins the entries
    they zero at exactly zero: gradients and weights are multiplied by them every step.
    """
    names = ("w1", "b1", "w2", "b2")
    p = {k: getattr(m, k).copy() for k in names}
    masks = masks or {}
    for k, mk in masks.items():
        p[k] *= mk
    v = {k: np.zeros_like(p[k]) for k in names}
    onehot = np.zeros((y.size, p["b2"].size))
    onehot[np.arange(y.size), y] = 1.0
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(y.size)
        for start in range(0, y.size, batch):
            idx = order[start:start + batch]
            xb = x[idx]
            pre = _dot_t(xb, p["w1"]) + p["b1"]
            h = np.maximum(pre, 0.0)
            prob = _softmax(_dot_t(h, p["w2"]) + p["b2"])
            dz = (prob - onehot[idx]) / idx.size
            dh = _dot_t(dz, p["w2"].T.copy()) * (pre > 0.0)
            g = {"w2": _outer_sum(dz, h), "b2": _row_sum(dz),
                 "w1": _outer_sum(dh, xb), "b1": _row_sum(dh)}
            for k in names:
                gk = g[k]
                if k[0] == "w":
                    gk = gk + weight_decay * p[k]
                if k in masks:
                    gk = gk * masks[k]
                v[k] = momentum * v[k] - lr * gk
                p[k] = p[k] + v[k]
                if k in masks:
                    p[k] = p[k] * masks[k]
    return replace(m, **p)
