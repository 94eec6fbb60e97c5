"""The zoo (prune8_eval.zoo): look-alikes of real TinyML models, written by the project's
graph writer (prune8_eval.tflite_build.Graph), judged by TensorFlow Lite Micro.

Each model must load and run in TFLM, answer differently to different inputs (its
quantization was chosen from a float calibration pass, so nothing saturates to a
constant), agree with the float model it was quantized from, read in prune8's reader
with the layers its published architecture has, and be the same bytes for the same
seed. The graph writer's own rules (shapes, legacy operator codes, refusals) follow.
"""

from __future__ import annotations

import numpy as np
import pytest

from prune8_eval import tflite_build as tb
from prune8_eval import zoo
from prune8_host.files import tflite
from prune8_host.files.model import load_model
from prune8_host.twin import tflm

FC, CONV, DW = "FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"
# person_detection's TFLM invoke is the slow one (about 10 ms): a few inputs only
N_INPUTS = {"person_detection": 4}


def _mobilenet_layers():
    layers, cin = [("conv1", CONV, (8, 3, 3, 1))], 8
    for i, c in enumerate([16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256, 256], 1):
        layers += [(f"conv_dw_{i}", DW, (1, 3, 3, cin)), (f"conv_pw_{i}", CONV, (c, 1, 1, cin))]
        cin = c
    return layers + [("conv_preds", CONV, (2, 1, 1, 256))]


# The prunable layers of each model's published architecture: (name, operator, shape)
LAYERS = {
    "hello_world": [("dense_1", FC, (16, 1)), ("dense_2", FC, (16, 16)),
                    ("dense_3", FC, (1, 16))],
    "micro_speech": [("conv", DW, (1, 10, 8, 8)), ("fc", FC, (4, 4000))],
    "person_detection": _mobilenet_layers(),
    "mnist_cnn": [("conv1", CONV, (8, 3, 3, 1)), ("conv2", CONV, (16, 3, 3, 8)),
                  ("dense", FC, (10, 784))],
    "residual_cnn": [("stem", CONV, (16, 3, 3, 3)), ("branch_a_dw", DW, (1, 3, 3, 16)),
                     ("branch_a_pw", CONV, (16, 1, 1, 16)),
                     ("branch_b_proj", CONV, (16, 1, 1, 16)), ("mix", CONV, (24, 1, 1, 32)),
                     ("logits", FC, (10, 24))],
}
OUTPUTS = {"hello_world": (1, 1), "micro_speech": (1, 4), "person_detection": (1, 2),
           "mnist_cnn": (1, 10), "residual_cnn": (1, 10)}


@pytest.fixture(scope="module")
def models():
    return {name: make() for name, make in zoo.MODELS.items()}


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_a_zoo_model_runs_in_tflm_and_its_output_follows_the_input(models, name):
    data = models[name]
    it = tflm.interpreter(data)
    assert tuple(it.get_input_details(0)["shape"]) == zoo.INPUTS[name][0]
    assert tuple(it.get_output_details(0)["shape"]) == OUTPUTS[name]
    out = tflm.outputs(data, zoo.sample_inputs(name, N_INPUTS.get(name, 16)))
    assert len({tuple(o) for o in out}) > 1, "the same output for every input"
    if OUTPUTS[name][1] > 1:  # a classifier: not one class for every input either
        assert len(set(out.argmax(axis=1))) > 1
        assert (np.abs(out.astype(int).sum(axis=1) + 128 * out.shape[1] - 256) <= 3).all()


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_tflm_agrees_with_the_float_model_the_zoo_quantized(models, name):
    """The graph means what the float reference computes (shapes, SAME padding, depth
    multiplier, tied quantizations): TFLM's int8 outputs, in real units, within a few
    steps of the output scale of the float model's."""
    inputs, want = zoo.float_reference(name)
    n = N_INPUTS.get(name, 16)
    got = tflm.real_outputs(models[name], inputs[:n])
    want = want[:n].reshape(got.shape)
    scale, _ = tflm.output_quantization(models[name])
    assert np.abs(got - want).max() < 20 * scale
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_prune8_reads_the_layers_of_the_published_architecture(models, name, tmp_path):
    tm = tflite.parse(models[name], name)
    got = [(p.tensor_name, p.op, p.shape) for p in tm.placements.values()]
    assert got == [(f"{n}/weights", op, shape) for n, op, shape in LAYERS[name]]
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(models[name])
    model = load_model(path)
    assert list(model) == [f"{n}/weights" for n, _, _ in LAYERS[name]]
    for (n, op, shape), layer in zip(LAYERS[name], model.values()):
        rows = shape[3] if op == DW else shape[0]
        assert layer.weights.shape == (rows, int(np.prod(shape)) // rows)
        # per channel for convolutions, per tensor for FULLY_CONNECTED (the converter's)
        assert np.size(layer.quant["w_scale"]) == (1 if op == FC else rows)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_weights(models):
    for name, make in zoo.MODELS.items():
        assert make(0) == models[name], name
    assert zoo.mnist_cnn(1) != models["mnist_cnn"]
    assert np.array_equal(zoo.sample_inputs("mnist_cnn", 3), zoo.sample_inputs("mnist_cnn", 3))


# -- the graph writer ------------------------------------------------------------------

def _w(shape, seed=0):
    return np.random.default_rng(seed).integers(-127, 128, shape).astype(np.int8)


def _codes(data):
    m = tflite.schema().ModelT.InitFromObj(tflite.schema().Model.GetRootAs(data, 0))
    return [(c.builtinCode, c.deprecatedBuiltinCode) for c in m.operatorCodes], m


def test_graph_shapes_follow_tflites_same_and_valid_rules():
    g = tb.Graph()
    x = g.input("x", (1, 49, 40, 1), 0.1, -128)
    d = g.depthwise(x, "dw", _w((1, 10, 8, 8)), np.full(8, 0.01), np.zeros(8, np.int32),
                    0.05, -128, stride=2, depth_multiplier=8, activation=tb.RELU)
    v = g.conv2d(d, "v", _w((4, 3, 3, 8)), 0.01, np.zeros(4, np.int32), 0.1, 0, stride=2,
                 padding=tb.VALID)
    p = g.max_pool(g.pad(v, "pad", [[0, 0], [1, 0], [0, 2], [0, 0]]), "mp", 2, 2)
    r = g.reshape(p, "flat", [1, -1])
    assert [g.shape(t) for t in (d, v, p, r)] == [(1, 25, 20, 8), (1, 12, 9, 4),
                                                   (1, 6, 5, 4), (1, 120)]
    assert g.quantization(r) == g.quantization(v)   # RESHAPE, PAD and the pools rescale nothing
    g.output(g.softmax(r, "sm"))
    out = tflm.outputs(g.finish(), _w((2, 1, 49, 40, 1)))
    assert out.shape == (2, 120)


def test_graph_legacy_opcodes_write_only_the_deprecated_field_and_run_the_same():
    def graph(legacy):
        g = tb.Graph()
        x = g.input("x", (1, 4, 4, 2), 0.05, 0)
        a = g.conv2d(x, "c", _w((2, 1, 1, 2)), [0.01, 0.02], np.zeros(2, np.int32), 0.05, 0)
        y = g.mean(g.add(a, x, "add", 0.1, 0), "mean", [1, 2], False, 0.05, 0)
        g.output(g.quantize(y, "q", 0.02, 3))
        return g.finish(legacy_opcodes=legacy)
    (new, _), (old, _) = _codes(graph(False)), _codes(graph(True))
    assert new == [(3, 3), (0, 0), (40, 40), (114, 114)]
    assert old == [(0, 3), (0, 0), (0, 40), (0, 114)]
    x = _w((3, 1, 4, 4, 2), 1)
    assert np.array_equal(tflm.outputs(graph(False), x), tflm.outputs(graph(True), x))


def test_graph_reshape_writes_its_shape_twice_as_the_converter_does():
    g = tb.Graph()
    g.output(g.reshape(g.input("x", (1, 2, 3, 1), 0.1, 0), "r", [1, 6]))
    _, m = _codes(g.finish())
    op = m.subgraphs[0].operators[0]
    shape_tensor = m.subgraphs[0].tensors[op.inputs[1]]
    assert list(op.builtinOptions.newShape) == [1, 6]
    assert np.frombuffer(bytes(m.buffers[shape_tensor.buffer].data), "<i4").tolist() == [1, 6]
    assert m.buffers[0].data is None


def test_a_refused_graph_call_adds_nothing_and_says_what_is_allowed():
    g = tb.Graph()
    x = g.input("x", (1, 4, 4, 2), 0.05, 0)
    a = g.conv2d(x, "a", _w((2, 1, 1, 2)), 0.01, np.zeros(2, np.int32), 0.05, 0)
    g.output(a)
    before = g.finish()
    with pytest.raises(ValueError, match="every input must have the output's scale"):
        g.concatenation([a, x], "cat", 3, 0.05, 1)
    with pytest.raises(ValueError, match=r"need \[out, kh, kw, 2\]"):
        g.conv2d(x, "bad", _w((2, 1, 1, 3)), 0.01, np.zeros(2, np.int32), 0.05, 0)
    with pytest.raises(ValueError, match="the scale must be finite and positive"):
        g.fully_connected(a, "fc", _w((3, 2)), 0.01, np.zeros(3, np.int32), 0.0, 0)
    with pytest.raises(ValueError, match="allowed are NONE"):
        g.add(a, a, "add", 0.1, 0, activation=2)
    assert g.finish() == before
    y = g.concatenation([a, g.quantize(x, "q", 0.05, 0)], "cat", 3, 0.05, 0)
    assert g.shape(y) == (1, 4, 4, 4)
