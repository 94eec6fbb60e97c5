"""The example model: what `prune8 demo` prunes when given no model, and what
examples/make_example.py writes as examples/example_model.npz (byte for byte).

A small two-layer int8 model: fc1 is 32 x 64 = 2048 weights, exactly the default ESP32
capacity; fc2 is 10 x 32. Weights follow a Laplace distribution (as trained weights
roughly do), quantized symmetrically per tensor; activations are post-ReLU int8 values,
one per input column, and 16 calibration samples per layer (the same kind of values)
feed Wanda. Made from a fixed seed, so it needs no file: an installed prune8 has it.
"""

from __future__ import annotations

import numpy as np

from prune8_host.twin.layer import Layer

from .model import Model

SEED = 20261122


def _quantize(x: np.ndarray) -> np.ndarray:
    scale = np.abs(x).max() / 127
    return np.clip(np.round(x / scale), -128, 127).astype(np.int8)


def example_model() -> Model:
    rng = np.random.default_rng(SEED)
    layers = {}
    for name, rows, cols in (("fc1", 32, 64), ("fc2", 10, 32)):
        w = _quantize(rng.laplace(0.0, 0.05, size=(rows, cols)))
        act = np.clip(np.round(rng.gamma(1.5, 18.0, size=cols)), 0, 127).astype(np.int8)
        calib = np.clip(np.round(rng.gamma(1.5, 18.0, size=(16, cols))), 0, 127)
        layers[name] = Layer(name, w, act, calib=calib.astype(np.int8))
    return Model(layers)
