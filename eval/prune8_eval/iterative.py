"""Iterative magnitude pruning (IMP) with rewinding, on a float MLP (`prune8_host.mlp`;
docs/spec.md §11.1).

The lottery-ticket procedure (Frankle & Carbin 2019; rewinding to an early step:
Frankle et al. 2020), with the project's own trainer:

0. train the dense network from its initial weights theta_0 for `epochs` epochs
   (`train_dense`), keeping theta_k, the weights after `rewind_epoch` epochs;
1. each round r = 1..R: among the weights still kept, prune the ones with the lowest
   |w| of the current weights, layer by layer, so that layer's kept fraction becomes
   (1 - s)^(r/R), i.e. every round prunes the rate p = 1 - (1 - s)^(1/R) of the
   weights that remain (`round_rate`, `round_counts`); the mask only ever loses weights;
2. rewind the kept weights, and the biases, to theta_0 (`rewind="init"`), to theta_k
   (`"early"`), or leave them where training left them (`"none"`: plain iterative
   prune-and-retrain); pruned weights are 0;
3. train that masked network for `retrain_epochs` epochs (pruned weights held at
   exactly 0 by `mlp.train`'s masks), and go to the next round.

Only weights are pruned (fc1 = w1 and fc2 = w2, each at the same sparsity, as `make
eval` prunes every layer alike); biases are not. Every round trains as many epochs
whichever the rewind, so the three differ only in where a round starts. Ties in |w| go
in index order (row-major), as the exact tie rule of docs/spec.md §3.2 does. Training is
`mlp.train` (deterministic bit for bit); round r uses seed `seed + r`.

The round after which layer L has pruned k_r of its n weights:
k_r = min(k_R, floor(n * (1 - (1 - s)^(r/R)) + 1/2)) for r < R, and k_R = the k of
docs/spec.md §1.4, min(n * bp // 10000, n - 1): the remaining count is n (1 - p)^r
rounded to a whole weight (within one weight where a round already reaches k_R, which is
a floor), the mask only grows, and the last round prunes exactly what every other prune8
method prunes at that sparsity.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from prune8_host import twin

from . import mlp
from .mlp import MLP

__all__ = ["REWINDS", "LAYERS", "DenseRun", "Round", "round_rate", "round_counts",
           "train_dense", "magnitude_keep", "rewind_point", "iterative_magnitude_pruning"]

REWINDS = ("init", "early", "none")
LAYERS = {"fc1": "w1", "fc2": "w2"}   # prune8 layer name -> MLP field


@dataclass(frozen=True)
class DenseRun:
    """Round 0: the dense training IMP starts from and rewinds to."""
    init: MLP            # theta_0
    early: MLP           # theta_k, after rewind_epoch epochs of the same run
    trained: MLP         # after all `epochs`
    epochs: int
    rewind_epoch: int


@dataclass(frozen=True)
class Round:
    """What round r did: its cumulative mask, where its training started, its result."""
    round: int
    rate: float                      # p, the fraction of remaining weights each round prunes
    pruned: dict[str, int]           # per layer, cumulative
    total: dict[str, int]            # per layer, all weights
    keep: dict[str, np.ndarray]      # per layer, bool (rows, cols): the cumulative mask
    start: MLP                       # the rewound, masked weights the round trained from
    model: MLP                       # after the round's masked training
    epochs: int                      # masked-training epochs of this round

    @property
    def weights(self) -> int:
        return sum(self.total.values())

    @property
    def pruned_total(self) -> int:
        return sum(self.pruned.values())

    @property
    def sparsity(self) -> float:
        return self.pruned_total / self.weights

    @property
    def sparsity_bp(self) -> int:
        return self.pruned_total * 10000 // self.weights


def _check_int(name: str, value, lo: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, (bool, np.bool_)) \
            or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def round_rate(final_sparsity: float, rounds: int) -> float:
    """p = 1 - (1 - s)^(1/R): pruning p of the remaining weights R times leaves 1 - s."""
    rounds = _check_int("rounds", rounds, 1)
    s = twin.to_bp(final_sparsity) / 10000
    return 1.0 - (1.0 - s) ** (1.0 / rounds)


def round_counts(n: int, sparsity_bp: int, rounds: int) -> list[int]:
    """Cumulative pruned count of an n-weight layer after rounds 1..R (module docstring)."""
    n = _check_int("n", n, 1)
    rounds = _check_int("rounds", rounds, 1)
    bp = twin.resolve_bp(None, sparsity_bp)
    last = min(n * bp // 10000, n - 1)
    keep_fraction = 1.0 - bp / 10000
    counts = [min(last, int(np.floor(n * (1.0 - keep_fraction ** (r / rounds)) + 0.5)))
              for r in range(1, rounds)]
    return counts + [last]


def train_dense(init: MLP, x: np.ndarray, y: np.ndarray, *, epochs: int, rewind_epoch: int,
                lr: float, seed: int, batch: int = 32) -> DenseRun:
    """Round 0: train init densely for `epochs` epochs, and keep its state after
    `rewind_epoch` epochs. mlp.train's first k epochs do not depend on how many follow
    (one generator seeded once, momentum from zero), so training k epochs with the same
    arguments is exactly the full run's state at epoch k."""
    epochs = _check_int("epochs", epochs, 1)
    rewind_epoch = _check_int("rewind_epoch", rewind_epoch, 1)
    if rewind_epoch > epochs:
        raise ValueError(f"rewind_epoch {rewind_epoch} is past the {epochs} training epochs")
    early = mlp.train(init, x, y, epochs=rewind_epoch, lr=lr, seed=seed, batch=batch)
    trained = mlp.train(init, x, y, epochs=epochs, lr=lr, seed=seed, batch=batch)
    return DenseRun(init, early, trained, epochs, rewind_epoch)


def magnitude_keep(w: np.ndarray, keep: np.ndarray, count: int) -> np.ndarray:
    """A copy of keep with `count` more weights pruned: those of the kept ones with the
    lowest |w|, ties by lower row-major index (docs/spec.md §3.2's exact tie rule)."""
    flat_keep = np.asarray(keep, bool).reshape(-1).copy()
    kept = np.flatnonzero(flat_keep)
    count = _check_int("count", count, 0)
    if count > kept.size:
        raise ValueError(f"cannot prune {count} more weights: only {kept.size} are kept")
    mags = np.abs(np.asarray(w, np.float64).reshape(-1)[kept])
    flat_keep[kept[np.argsort(mags, kind="stable")[:count]]] = False
    return flat_keep.reshape(np.shape(keep))


def rewind_point(rewind: str, dense: DenseRun, current: MLP,
                 keep: dict[str, np.ndarray]) -> MLP:
    """Where a round starts: theta_0 ("init"), theta_k ("early") or the current weights
    ("none"), with the pruned weights set to 0. Biases come from the same point."""
    if rewind not in REWINDS:
        raise ValueError(f"rewind must be one of {', '.join(REWINDS)}; got {rewind!r}")
    source = {"init": dense.init, "early": dense.early, "none": current}[rewind]
    out = {f.name: getattr(source, f.name).copy() for f in fields(MLP)}
    for layer, name in LAYERS.items():
        out[name] = np.where(keep[layer], out[name], 0.0)
    return MLP(**out)


def iterative_magnitude_pruning(start: MLP | DenseRun, x: np.ndarray, y: np.ndarray, *,
                                rounds: int, final_sparsity: float, rewind: str = "init",
                                epochs: int | None = None, lr: float, seed: int, batch: int = 32,
                                rewind_epoch: int = 1, retrain_epochs: int | None = None
                                ) -> tuple[MLP, list[Round]]:
    """IMP to `final_sparsity` (per layer) in `rounds` rounds; returns the final trained
    sparse model and one Round per round (history[-1].model is the model returned).

    `start` is theta_0, trained here first (`train_dense` with epochs, rewind_epoch, lr,
    seed, batch), or a DenseRun already made on the same x, y with the same lr, seed and
    batch (make eval shares one between the three rewinds; `epochs` may then be left
    out). `retrain_epochs` (default: the dense run's epochs) is each round's training;
    round r trains with seed `seed + r`.
    """
    if rewind not in REWINDS:
        raise ValueError(f"rewind must be one of {', '.join(REWINDS)}; got {rewind!r}")
    rounds = _check_int("rounds", rounds, 1)
    bp = twin.to_bp(final_sparsity)
    if isinstance(start, DenseRun):
        if epochs is not None and epochs != start.epochs:
            raise ValueError(f"epochs={epochs}, but the dense run trained {start.epochs}")
        dense = start
    else:
        if epochs is None:
            raise ValueError("epochs (the dense training) is needed to start from theta_0")
        dense = train_dense(start, x, y, epochs=epochs, rewind_epoch=rewind_epoch, lr=lr,
                            seed=seed, batch=batch)
    retrain_epochs = _check_int("retrain_epochs", dense.epochs if retrain_epochs is None
                                else retrain_epochs, 0)
    rate = round_rate(bp / 10000, rounds)
    weights = {layer: getattr(dense.trained, name) for layer, name in LAYERS.items()}
    counts = {layer: round_counts(w.size, bp, rounds) for layer, w in weights.items()}
    keep = {layer: np.ones(w.shape, bool) for layer, w in weights.items()}
    current = dense.trained
    history: list[Round] = []
    for r in range(1, rounds + 1):
        done = {layer: 0 if r == 1 else counts[layer][r - 2] for layer in keep}
        keep = {layer: magnitude_keep(getattr(current, LAYERS[layer]), keep[layer],
                                      counts[layer][r - 1] - done[layer]) for layer in keep}
        begin = rewind_point(rewind, dense, current, keep)
        masks = {LAYERS[layer]: k.astype(np.float64) for layer, k in keep.items()}
        current = mlp.train(begin, x, y, epochs=retrain_epochs, lr=lr, seed=seed + r,
                            batch=batch, masks=masks)
        history.append(Round(
            round=r, rate=rate,
            pruned={layer: int(k.size - np.count_nonzero(k)) for layer, k in keep.items()},
            total={layer: int(k.size) for layer, k in keep.items()},
            keep=keep, start=begin, model=current, epochs=retrain_epochs))
    return current, history
