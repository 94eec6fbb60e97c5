"""The digits example: data, split, float training and int8 model, in one recipe.

scikit-learn's bundled 8x8 digits (1797 images, pixels 0..16; no download) scaled to
[0, 1]; a fixed random split into 1437 training and 360 test images; a float MLP
64 -> 32 (ReLU) -> 10 trained with `prune8_host.mlp` (reproducible bit for bit); and
its int8 model (`prune8_host.ptq`), calibrated on the first 256 training images, which
also give the gradient proxy's activation statistic (`dense.activation_stats`).

examples/make_digits.py writes the results; prune8_eval.evaluate retrains from the same
recipe to fine-tune pruned models and checks it still makes the shipped files.
scikit-learn is imported only by `load()`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from prune8_host.twin import dense
from prune8_host.twin.layer import Layer

from . import mlp, ptq

__all__ = ["SEED", "TRAIN_SEED", "N_TEST", "N_CALIB", "Digits", "load", "init_float",
           "train_float", "quantize", "quantize_images"]

SEED = 20261122
TRAIN_SEED = SEED + 1     # the training's data order
N_TEST = 360
N_CALIB = 256
HIDDEN = 32
EPOCHS = 60
LR = 0.05
BATCH = 32


@dataclass(frozen=True)
class Digits:
    x_train: np.ndarray   # float64 (1437, 64) in [0, 1]
    y_train: np.ndarray   # int64 (1437,)
    x_test: np.ndarray    # float64 (360, 64)
    y_test: np.ndarray    # int64 (360,)

    @property
    def x_calib(self) -> np.ndarray:
        return self.x_train[:N_CALIB]

    @property
    def y_calib(self) -> np.ndarray:
        return self.y_train[:N_CALIB]


def load() -> Digits:
    from sklearn.datasets import load_digits  # the eval / test extra; only needed here
    d = load_digits()
    x = np.asarray(d.data, np.float64) / 16.0
    y = np.asarray(d.target, np.int64)
    order = np.random.default_rng(SEED).permutation(y.size)
    test, train = order[:N_TEST], order[N_TEST:]
    return Digits(x[train], y[train], x[test], y[test])


def init_float(data: Digits) -> mlp.MLP:
    """The initial weights train_float starts from (iterative pruning rewinds to them)."""
    return mlp.init(data.x_train.shape[1], HIDDEN, 10, SEED)


def train_float(data: Digits) -> mlp.MLP:
    return mlp.train(init_float(data), data.x_train, data.y_train, epochs=EPOCHS, lr=LR,
                     batch=BATCH, seed=TRAIN_SEED)


def quantize_images(model: dict[str, Layer], x: np.ndarray) -> np.ndarray:
    """Real images (n, 64) in [0, 1] -> the int8 input of the model's first layer."""
    first = next(iter(model.values())).quant
    return ptq.quantize_activations(x, first["in_scale"], int(first["in_zp"]))


def quantize(m: mlp.MLP, data: Digits) -> dict[str, Layer]:
    """The int8 model of m, with the gradient proxy's activations (NAME.act) computed on
    the calibration images."""
    model = ptq.quantize_mlp(m, data.x_calib)
    stats = dense.activation_stats(model, quantize_images(model, data.x_calib))
    return {name: replace(layer, activations=stats[name]) for name, layer in model.items()}
