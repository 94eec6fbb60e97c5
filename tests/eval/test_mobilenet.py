"""The MobileNet-style digits model (prune8_eval.mobilenet, examples/make_mobilenet.py):
its gradients are the loss's, and the committed .tflite is what the project promises —
the operators of a MobileNet, per-channel scales, TFLM's accuracy, prune8's reader."""

import sys

import numpy as np
import pytest

from prune8_eval import digits, mobilenet, tflite_build
from prune8_host.files import tflite
from prune8_host.files.model import load_model
from prune8_host.twin import tflm
from support import ROOT

EX = ROOT / "examples"
MODEL = EX / "digits_mobilenet.tflite"


def _graph(data: bytes):
    """The model's (operator code, options) list and its tensors (schema object API)."""
    fb = tflite.schema()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes]
    sub = m.subgraphs[0]
    return [(codes[o.opcodeIndex], o) for o in sub.operators], sub.tensors


def test_gradients_are_the_losses_by_finite_differences():
    data = digits.load()
    x, y = mobilenet.upsample(data.x_train[:4]), data.y_train[:4]
    rng = np.random.default_rng(7)
    p = mobilenet.init()
    # random biases and classifier: no pre-activation sits exactly on a ReLU6 kink (zero
    # biases on the images' blank background would), and every gradient is non-zero
    p = {k: (v + rng.normal(0.0, 0.1, v.shape)) if k.endswith("/b") or k == "fc/w" else v
         for k, v in p.items()}
    logits, cache = mobilenet.forward(p, x)
    g = mobilenet.backward(p, y, logits, cache)
    assert set(g) == set(p)
    eps = 1e-6
    for k in sorted(p):
        assert g[k].shape == p[k].shape, k
        for _ in range(3):
            i = tuple(int(rng.integers(0, s)) for s in p[k].shape)
            up = {n: v.copy() for n, v in p.items()}
            down = {n: v.copy() for n, v in p.items()}
            up[k][i] += eps
            down[k][i] -= eps
            numeric = (mobilenet.loss(up, x, y) - mobilenet.loss(down, x, y)) / (2 * eps)
            assert g[k][i] == pytest.approx(numeric, rel=1e-4, abs=1e-8), (k, i)


def test_the_model_has_a_mobilenets_operators_with_per_channel_scales():
    ops, tensors = _graph(MODEL.read_bytes())
    kinds = [code for code, _ in ops]
    assert kinds.count(tflite_build.CONV) == 5           # the stem and four 1x1 convs
    assert kinds.count(tflite_build.DEPTHWISE) == 4
    assert kinds.count(tflite_build.ADD) == 2
    assert kinds.count(tflite_build.MEAN) == 1
    assert kinds.count(tflite_build.FC) == 1 and kinds[-1] == tflite_build.FC
    strides = [o.builtinOptions.strideH for code, o in ops if code == tflite_build.DEPTHWISE]
    assert strides == [2, 1, 1, 1]
    for code, o in ops:
        if code in (tflite_build.CONV, tflite_build.DEPTHWISE):
            w = tensors[o.inputs[1]]
            channels = w.shape[3] if code == tflite_build.DEPTHWISE else w.shape[0]
            assert o.builtinOptions.padding == tflite_build.SAME
            assert len(w.quantization.scale) == channels > 1, w.name
            assert w.quantization.quantizedDimension == \
                (3 if code == tflite_build.DEPTHWISE else 0)
    # the convolutions' MACs dominate an invoke: most of them in the 1x1 convolutions
    macs = mobilenet.macs()
    assert sum(v for k, v in macs.items() if k.endswith("_pw")) > 0.6 * sum(macs.values())
    assert sum(macs.values()) > 500_000


def test_tflm_runs_the_model_at_over_90_percent_on_the_held_out_digits():
    test = np.load(EX / "digits_wide_test.npz")
    correct, n = tflm.accuracy(MODEL.read_bytes(), test["images"], test["labels"])
    assert n == digits.N_TEST and correct / n >= 0.90


def test_its_test_images_are_the_digits_test_images_upsampled():
    small, wide = np.load(EX / "digits_test.npz"), np.load(EX / "digits_wide_test.npz")
    assert np.array_equal(mobilenet.images(small["images"]).reshape(len(wide["images"]), -1),
                          wide["images"])
    assert np.array_equal(small["labels"], wide["labels"])


def test_prune8_reads_its_ten_weighted_layers():
    model = load_model(MODEL)
    assert model.kind == "tflite"
    assert list(model) == [f"{name}/weights" for name in mobilenet.LAYERS]
    assert [layer.weights.shape for layer in model.values()] == [
        (16, 9), (16, 9), (32, 16), (32, 9), (32, 32), (32, 9), (64, 32), (64, 9), (64, 64),
        (10, 64)]


@pytest.mark.slow
def test_the_committed_model_is_the_scripts_output():
    sys.path.insert(0, str(EX))
    try:
        import make_mobilenet
    finally:
        sys.path.remove(str(EX))
    assert make_mobilenet.build()["tflite"] == MODEL.read_bytes()
