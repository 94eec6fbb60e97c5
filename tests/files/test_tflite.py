""".tflite models in and out (files.tflite), judged by TensorFlow Lite Micro itself.

The models are the project's own (examples/make_tflite.py): an FC-only model per tensor,
the same per channel, the same with legacy operator codes, and a CNN (CONV_2D,
DEPTHWISE_CONV_2D, FULLY_CONNECTED). Variants that must be refused are made here by
editing a model with TFLM's schema object API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flatbuffers
import numpy as np
import pytest

from prune8.errors import DtypeError
from prune8.protocol import MAX_NAME
from prune8_eval import tflite_build
from prune8_host.cli import main
from prune8_host.errors import FileFormatError, ModelError
from prune8_host.files import tflite
from prune8_host.files.masks import load_masks
from prune8_host.twin import dense, tflm
from prune8_host.twin.layer import Layer
from prune8_host.twin.reference import apply_layer_mask, layer_mask
from prune8_host.twin.scores import scale_multipliers
from support import ROOT

EX = ROOT / "examples"
FC, FC_CHANNEL, FC_LEGACY, CNN = (EX / f"{n}.tflite" for n in
                                  ("digits_fc", "digits_fc_channel", "digits_fc_legacy",
                                   "digits_cnn"))
TEST = np.load(EX / "digits_test.npz")


def model_object(path):
    return tflite.schema().ModelT.InitFromObj(tflite.schema().Model.GetRootAs(
        Path(path).read_bytes(), 0))


def packed(model) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=tflite.IDENTIFIER)
    return bytes(b.Output())


def edited(tmp_path, change, source=FC) -> Path:
    m = model_object(source)
    change(m)
    path = tmp_path / "edited.tflite"
    path.write_bytes(packed(m))
    return path


def test_the_example_models_are_the_scripts_output():
    sys.path.insert(0, str(EX))
    try:
        import make_tflite
    finally:
        sys.path.pop(0)
    for name, data in make_tflite.build().items():
        assert make_tflite.FILES[name].read_bytes() == data, name


# -- reading -----------------------------------------------------------------------

def test_fc_layers_views_and_inference_parameters():
    layers = tflite.read(FC).layers
    assert list(layers) == ["fc1/weights", "fc2/weights"]
    assert [layer.weights.shape for layer in layers.values()] == [(32, 64), (10, 32)]
    fc1 = layers["fc1/weights"].quant
    assert np.size(fc1["w_scale"]) == 1 and int(fc1["relu"]) == 1
    assert int(fc1["in_zp"]) == -128 and fc1["bias"].shape == (32,)
    ch = tflite.read(FC_CHANNEL).layers["fc1/weights"].quant
    assert ch["w_scale"].shape == ch["mult"].shape == ch["shift"].shape == (32,)


def test_legacy_operator_codes_read_as_tflm_reads_them():
    # the codes only in the deprecated 8-bit field: the larger of the two fields counts
    m = model_object(FC_LEGACY)
    assert [c.builtinCode for c in m.operatorCodes] == [0]
    assert [c.deprecatedBuiltinCode for c in m.operatorCodes] == [9]
    legacy, modern = tflite.read(FC_LEGACY).layers, tflite.read(FC).layers
    assert list(legacy) == list(modern)
    for name in legacy:
        assert np.array_equal(legacy[name].weights, modern[name].weights)


def test_cnn_layers_are_2d_views_of_the_tensors():
    tm = tflite.read(CNN)
    assert {n: p.op for n, p in tm.placements.items()} == {
        "conv1/weights": "CONV_2D", "dw/weights": "DEPTHWISE_CONV_2D",
        "pw/weights": "CONV_2D", "fc/weights": "FULLY_CONNECTED"}
    raw = np.frombuffer(tm.data, np.int8)
    for name, p in tm.placements.items():
        tensor = raw[p.start:p.start + p.n].reshape(p.shape)
        view = tm.layers[name].weights
        if p.op == "CONV_2D":          # [out, kh, kw, in] -> [out, kh*kw*in]
            assert np.array_equal(view, tensor.reshape(p.shape[0], -1))
        elif p.op == "DEPTHWISE_CONV_2D":  # [1, kh, kw, ch] -> [ch, kh*kw]
            assert view.shape == (8, 9)
            assert np.array_equal(view[5], tensor[0, :, :, 5].reshape(-1))
        assert np.array_equal(p.unview(view), tensor.reshape(-1))
    conv = tm.layers["conv1/weights"].quant
    assert conv["w_scale"].shape == (8,) and "mult" not in conv  # conv: no board kernel


def test_a_buffer_shared_by_two_operators_is_one_layer(tmp_path):
    # three FC layers of one shape; the third reuses the second's weight buffer
    rng = np.random.default_rng(1)
    layers = {f"fc{i}": Layer(f"fc{i}", rng.integers(-127, 128, (16, 16)).astype(np.int8),
                              quant={"bias": np.zeros(16, np.int32), "mult": np.int32(1 << 30),
                                     "shift": np.int32(-8), "relu": np.int8(1),
                                     "in_zp": np.int32(-128), "out_zp": np.int32(-128),
                                     "in_scale": np.float32(0.01), "w_scale": np.float32(0.02),
                                     "out_scale": np.float32(0.03)})
              for i in range(3)}
    path = tmp_path / "shared.tflite"
    path.write_bytes(tflite_build.fc_chain(layers))

    def share(m):
        t = m.subgraphs[0].tensors
        by_name = {x.name.decode(): x for x in t}
        by_name["fc2/weights"].buffer = by_name["fc1/weights"].buffer
    shared = edited(tmp_path, share, path)
    tm = tflite.read(shared)
    assert list(tm.layers) == ["fc0/weights", "fc1/weights"]
    assert len(tm.placements["fc1/weights"].operators) == 2


def test_names_are_made_valid_and_unique(tmp_path):
    def rename(m):
        t = m.subgraphs[0].tensors
        for x in t:
            if x.name.decode().endswith("/weights"):
                x.name = ("model/dense.kernel\n" + "x" * 300).encode()
    names = list(tflite.read(edited(tmp_path, rename)).layers)
    assert len(set(names)) == 2 and all(len(n.encode()) <= MAX_NAME for n in names)
    assert all("." not in n and "\n" not in n for n in names)


@pytest.mark.parametrize("change, message", [
    (lambda t, m: setattr(t, "type", 0), "weights are float32, not int8: quantize"),
    (lambda t, m: setattr(t, "type", 7), "weights are int16, not int8"),
    (lambda t, m: setattr(t, "type", 17), "int4 packed weights are not supported"),
    (lambda t, m: setattr(t, "sparsity", tflite.schema().SparsityParametersT()),
     r"a sparse \(already compressed\) tensor"),
    (lambda t, m: setattr(t.quantization, "zeroPoint", [3]), "non-zero zero point"),
    (lambda t, m: setattr(t, "quantization", None), "without quantization scales"),
])
def test_weights_prune8_cannot_prune_are_refused_naming_the_tensor(tmp_path, change, message):
    def edit(m):
        t = next(x for x in m.subgraphs[0].tensors if x.name == b"fc2/weights")
        change(t, m)
    path = edited(tmp_path, edit)
    with pytest.raises(ModelError, match=message) as e:
        tflite.read(path)
    assert "tensor 'fc2/weights'" in str(e.value) and str(path) in str(e.value)


def test_files_that_are_not_tflite_flatbuffers_are_refused(tmp_path):
    text = tmp_path / "m.tflite"
    text.write_text("not a model")
    with pytest.raises(FileFormatError, match="not a TFLite flatbuffer"):
        tflite.read(text)
    damaged = tmp_path / "d.tflite"
    damaged.write_bytes(FC.read_bytes()[:40])
    with pytest.raises((FileFormatError, ModelError)):
        tflite.read(damaged)


# -- writing -----------------------------------------------------------------------

def _fields(obj, path=""):
    """Every field of a schema object tree, flattened to (path, value) pairs."""
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _fields(v, f"{path}[{i}]")
    elif isinstance(obj, np.ndarray):
        yield path, obj.tolist()
    elif hasattr(obj, "__dict__"):
        for k, v in sorted(vars(obj).items()):
            yield from _fields(v, f"{path}.{k}")
    else:
        yield path, obj


@pytest.mark.parametrize("source", [FC, FC_CHANNEL, CNN], ids=lambda p: p.stem)
def test_a_pruned_tflite_differs_only_in_the_pruned_weights(tmp_path, capsys, source):
    masks, out = tmp_path / "m.npz", tmp_path / "pruned.tflite"
    assert main(["mask", str(source), "--method", "scaled", "--sparsity", "0.6",
                 "-o", str(masks)]) == 0
    assert main(["apply", str(source), str(masks), "-o", str(out)]) == 0
    before, after = model_object(source), model_object(out)
    tm = tflite.read(source)
    pruned_buffers = {p.buffer for p in tm.placements.values()}
    a = dict(_fields(before))
    b = dict(_fields(after))
    assert a.keys() == b.keys()
    changed = {k for k in a if a[k] != b[k]}
    assert changed and all(k.startswith(".buffers[") for k in changed)
    assert {int(k.split("[")[1].split("]")[0]) for k in changed} <= pruned_buffers
    # byte for byte: only bytes inside the pruned buffers moved, kept weights kept
    old, new = np.frombuffer(source.read_bytes(), np.int8), np.frombuffer(out.read_bytes(),
                                                                           np.int8)
    assert old.size == new.size
    inside = np.zeros(old.size, bool)
    for p in tm.placements.values():
        inside[p.start:p.start + p.n] = True
    assert np.array_equal(old[~inside], new[~inside])
    for m in load_masks(masks):
        p = tm.placements[m.name]
        keep = p.unview(m.keep().reshape(m.rows, m.cols))
        seg_old, seg_new = old[p.start:p.start + p.n], new[p.start:p.start + p.n]
        assert np.array_equal(seg_new[keep], seg_old[keep]) and not seg_new[~keep].any()
    # and TFLM runs it
    correct, n = tflm.accuracy(out.read_bytes(), TEST["images"], TEST["labels"])
    assert n == 360 and correct > 36


# -- inference: TFLM is the judge -------------------------------------------------

def _inputs():
    rng = np.random.default_rng(5)
    return np.concatenate([TEST["images"], rng.integers(-128, 128, (200, 64)).astype(np.int8),
                           np.full((2, 64), 127, np.int8), np.full((2, 64), -128, np.int8)])


@pytest.mark.parametrize("source", [FC, FC_CHANNEL, FC_LEGACY], ids=lambda p: p.stem)
@pytest.mark.parametrize("sparsity_bp", [0, 5000, 9000])
def test_tflm_and_prune8_give_the_same_int8_outputs(source, sparsity_bp):
    tm = tflite.read(source)
    x = _inputs()
    pruned = {n: apply_layer_mask(layer.weights, layer_mask(layer, "scaled",
                                                            sparsity_bp=sparsity_bp))
              for n, layer in tm.layers.items()}
    ours = dense.logits({n: Layer(n, pruned[n], quant=layer.quant)
                         for n, layer in tm.layers.items()}, x)
    theirs = tflm.outputs(tflite.pruned_bytes(tm, pruned), x)
    assert np.array_equal(ours, theirs)


def test_eval_on_the_host_by_tflm(tmp_path, capsys):
    masks = tmp_path / "m.npz"
    assert main(["mask", str(CNN), "--method", "magnitude", "--sparsity", "0.3",
                 "-o", str(masks)]) == 0
    capsys.readouterr()
    assert main(["eval", str(CNN), "--data", str(EX / "digits_test.npz"), "--masks",
                 str(masks), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    dense_run, pruned_run = report["runs"]
    assert report["evaluated_by"] == "TFLM" and dense_run["correct"] == 355
    expected = tflm.accuracy(tflite.pruned_bytes(
        tflite.read(CNN), {m.name: apply_layer_mask(tflite.read(CNN).layers[m.name].weights,
                                                    m) for m in load_masks(masks)}),
        TEST["images"], TEST["labels"])[0]
    assert pruned_run["correct"] == expected


# -- per-channel scales ------------------------------------------------------------

@pytest.mark.parametrize("bad", [0.0, -0.5, float("nan"), float("inf")])
def test_a_bad_weight_scale_is_named_with_its_row(bad):
    scales = np.full(6, 0.02, np.float32)
    scales[4] = bad
    with pytest.raises(DtypeError, match=r"got (0\.0|-0\.5|nan|inf) at row 4$"):
        scale_multipliers(scales, 6)


def test_the_scale_aware_mask_ranks_the_real_magnitudes():
    # weights and per-row scales whose real magnitudes |w| * scale_r are equal within a
    # row or at least the rounding step apart across rows: then the integer score ranks
    # exactly as the floats do (ties by index, as the exact rule of docs/spec.md §3.2)
    rng = np.random.default_rng(11)
    rows, cols = 16, 32
    scales = rng.uniform(0.002, 0.05, rows).astype(np.float32)
    step = 2 * float(scales.max()) / 256     # two score units, in real terms
    w = np.zeros((rows, cols), np.int8)
    taken = []
    for r in range(rows):
        for c in range(cols):
            for _ in range(1000):
                v = int(rng.integers(-127, 128))
                real = abs(v) * float(scales[r])
                if all(abs(real - t) > step or (abs(real - t) == 0 and rr == r)
                       for t, rr in taken):
                    break
            w[r, c] = v
            taken.append((abs(v) * float(scales[r]), r))
    layer = Layer("fc", w, quant={"w_scale": scales})
    real = np.abs(w.astype(np.float64)) * scales[:, None].astype(np.float64)
    for bp in (1000, 2500, 5000, 7500, 9000):
        k = min(w.size * bp // 10000, w.size - 1)
        order = np.lexsort((np.arange(w.size), real.reshape(-1)))  # ascending, ties by index
        want = np.ones(w.size, bool)
        want[order[:k]] = False
        got = layer_mask(layer, "scaled", sparsity_bp=bp).keep()
        assert np.array_equal(got, want), bp
        raw = layer_mask(layer, "magnitude", sparsity_bp=bp).keep()
        assert not np.array_equal(raw, want)  # raw int8 magnitudes rank otherwise


def test_per_channel_scope_prunes_the_same_count_in_every_row():
    layer = tflite.read(FC_CHANNEL).layers["fc1/weights"]
    for method in ("magnitude", "scaled", "mincut"):
        keep = layer_mask(layer, method, sparsity_bp=2500, scope="channel").keep()
        assert (keep.reshape(32, 64).sum(axis=1) == 64 - 16).all(), method
    # per row, raw and scale-aware rank alike (one scale per row)
    a = layer_mask(layer, "magnitude", sparsity_bp=2500, scope="channel").keep()
    b = layer_mask(layer, "scaled", sparsity_bp=2500, scope="channel").keep()
    assert (a != b).sum() <= 32 * 2   # only where rounding makes two values equal


# -- the command line --------------------------------------------------------------

def test_model_info_and_import(tmp_path, capsys):
    assert main(["model", "info", str(CNN), "--json"]) == 0
    rows = {r["layer"]: r for r in json.loads(capsys.readouterr().out)["layers"]}
    assert rows["dw/weights"]["operator"] == "DEPTHWISE_CONV_2D"
    assert rows["dw/weights"]["shape"] == [8, 9]
    assert rows["dw/weights"]["quantization"] == "per channel"
    assert rows["fc/weights"]["fits"] == "from flash"  # 128 cols > max_units = 64
    assert rows["dw/weights"]["fits"] == "in RAM"
    out = tmp_path / "fc.npz"
    assert main(["model", "import", str(FC_CHANNEL), "-o", str(out)]) == 0
    capsys.readouterr()
    from prune8_host.files.model import load_model
    imported = load_model(out)
    original = tflite.read(FC_CHANNEL).layers
    assert list(imported) == list(original)
    x = TEST["images"]
    assert np.array_equal(dense.logits(imported, x), tflm.outputs(FC_CHANNEL.read_bytes(), x))


def test_pack_reports_the_models_size(tmp_path, capsys):
    masks = tmp_path / "m.npz"
    assert main(["mask", str(CNN), "--method", "scaled", "--sparsity", "0.8", "-o",
                 str(masks)]) == 0
    capsys.readouterr()
    assert main(["pack", str(CNN), str(masks), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model_file_bytes"] == CNN.stat().st_size
    assert r["model_packed_bytes"] == r["model_file_bytes"] - r["dense_bytes"] + \
        r["packed_bytes"] < r["model_file_bytes"]


def test_tflite_refusals_are_one_line(tmp_path):
    bad = edited(tmp_path, lambda m: setattr(next(
        t for t in m.subgraphs[0].tensors if t.name == b"fc1/weights"), "type", 0))
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", "mask", str(bad),
                           "--method", "magnitude", "--sparsity", "0.5"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "tensor 'fc1/weights': weights are float32, not int8" in proc.stderr

