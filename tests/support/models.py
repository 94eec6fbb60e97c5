"""Models several test modules use."""

import numpy as np

from prune8_host.twin.layer import Layer


def big_layers(seed=14):
    """2049 (3 x 683, per-weight activations and per-row scales), 16,000 (4 x 4000, the
    keyword-spotting model's FC: per-column activations and calibration samples) and
    65,536 weights (256 x 256, a 1x1 convolution of the person-detection model)."""
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-128, 128, (3, 683)).astype(np.int8)
    w1[:, 100:140] = 7                                    # long runs of ties
    odd = Layer("odd", w1, rng.integers(0, 128, w1.size).astype(np.int8),
                quant={"w_scale": rng.uniform(0.001, 0.02, 3).astype(np.float32)})
    w2 = rng.integers(-128, 128, (4, 4000)).astype(np.int8)
    kws = Layer("kws", w2, rng.integers(0, 128, 4000).astype(np.int8),
                calib=rng.integers(-128, 128, (9, 4000)).astype(np.int8))
    w3 = (rng.normal(0, 30, (256, 256))).clip(-128, 127).astype(np.int8)
    quant = {"bias": rng.integers(-20000, 20000, 256).astype(np.int32),
             "mult": np.int32(1 << 30), "shift": np.int8(-8), "relu": np.uint8(0),
             "in_zp": np.int8(-3), "out_zp": np.int8(5)}
    return [odd, kws, Layer("conv", w3, quant=quant)]


def quantized_arrays():
    rng = np.random.default_rng(3)
    return {
        "fc1": rng.integers(-127, 128, (4, 6)).astype(np.int8),
        "fc1.act": np.arange(6, dtype=np.int8),
        "fc1.bias": np.arange(4, dtype=np.int32) * 1000,
        "fc1.mult": np.int32(1 << 30), "fc1.shift": np.int32(-7), "fc1.relu": np.int8(1),
        "fc1.in_zp": np.int32(-128), "fc1.out_zp": np.int32(-128),
        "fc1.in_scale": np.float32(1 / 255), "fc1.w_scale": np.float32(0.01),
        "fc1.out_scale": np.float32(0.02),
        "fc2": rng.integers(-127, 128, (3, 4)).astype(np.int8),
        "fc2.bias": np.zeros(3, np.int32),
    }
