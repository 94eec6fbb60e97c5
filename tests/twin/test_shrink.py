"""prune8 shrink: removing pruned neurons gives a smaller dense model whose int8 outputs
equal the masked model's (rows and their biases zeroed) on every input, and refuses
masks it cannot honour with one line on stderr and status 2."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prune8_eval import evaluate
from prune8_host.cli import main
from prune8_host.errors import ModelError
from prune8_host.files.masks import load_masks, save_masks
from prune8_host.files.model import load_model, save_model
from prune8_host.twin import dense as qnn
from prune8_host.twin import mask_from_keep
from prune8_host.twin.layer import Layer, LayerMask, PruneOptions
from prune8_host.twin.reference import apply_layer_mask, layer_mask
from prune8_host.twin.shrink import row_keeps, shrink, zero_rows

DIGITS = evaluate.MODEL
TEST = evaluate.TEST


@pytest.fixture(scope="module")
def digits():
    test = np.load(TEST)
    return load_model(DIGITS), test["images"], test["labels"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def row_mask(name: str, keep, cols: int) -> LayerMask:
    keep = np.asarray(keep, bool)
    return LayerMask(name=name, words=mask_from_keep(keep), n=keep.size, rows=keep.size,
                     cols=cols, options=PruneOptions("rows"))


@pytest.mark.parametrize("bp", range(0, 10000, 500))
def test_shrunk_logits_equal_the_masked_models_on_all_test_images(digits, bp):
    model, images, labels = digits
    masks = [layer_mask(model["fc1"], "rows", sparsity_bp=bp)]
    small, masked = shrink(model, masks), zero_rows(model, masks)
    k = evaluate.prune_count(32, bp)
    assert small["fc1"].weights.shape == (32 - k, 64)
    assert small["fc2"].weights.shape == (10, 32 - k)
    assert small["fc1"].quant["bias"].shape == (32 - k,)
    assert small["fc2"].activations.shape == (32 - k,)
    assert images.shape[0] == 360
    assert np.array_equal(qnn.logits(small, images), qnn.logits(masked, images))
    # the eval's "rows" numbers are the shrunk models' numbers
    keep, bias_keep = evaluate.keep_masks(model, "rows", bp)
    by_eval = evaluate.apply_keep(model, keep, bias_keep)
    for name in model:
        assert np.array_equal(by_eval[name].weights, masked[name].weights)
        for f, a in masked[name].quant.items():
            assert np.array_equal(by_eval[name].quant[f], a), (name, f)
    assert qnn.accuracy(small, images, labels) == qnn.accuracy(by_eval, images, labels)


def test_kept_rows_and_columns_are_copied_unchanged(digits):
    model, _, _ = digits
    keep = np.ones(32, bool)
    keep[[0, 5, 31]] = False
    small = shrink(model, {"fc1": row_mask("fc1", keep, 64)})
    assert np.array_equal(small["fc1"].weights, model["fc1"].weights[keep])
    assert np.array_equal(small["fc2"].weights, model["fc2"].weights[:, keep])
    assert np.array_equal(small["fc1"].quant["bias"], model["fc1"].quant["bias"][keep])
    assert np.array_equal(small["fc2"].quant["bias"], model["fc2"].quant["bias"])
    assert np.array_equal(small["fc2"].activations, model["fc2"].activations[keep])
    assert np.array_equal(small["fc1"].activations, model["fc1"].activations)
    for f in ("mult", "shift", "relu", "in_zp", "out_zp", "in_scale", "w_scale", "out_scale"):
        for name in model:
            assert small[name].quant[f] == model[name].quant[f]
    assert model["fc1"].weights.shape == (32, 64)      # the input model is untouched


def test_a_kept_bias_is_another_model(digits):
    # prune8 apply zeroes a pruned row's weights only: the neuron then outputs
    # clamp(requantize(bias) + zp), a constant that fc2 still reads
    model, images, _ = digits
    masks = [layer_mask(model["fc1"], "rows", sparsity_bp=5000)]
    gone = ~row_keeps(model, masks)["fc1"]
    weights_only = dict(model, fc1=Layer("fc1", apply_layer_mask(model["fc1"].weights, masks[0]),
                                         model["fc1"].activations, quant=model["fc1"].quant))
    assert np.any(model["fc1"].quant["bias"][gone] > 0)
    hidden = qnn.forward(weights_only, images)[0]
    assert np.any(hidden[:, gone] != model["fc1"].quant["out_zp"])
    assert not np.array_equal(qnn.logits(weights_only, images),
                              qnn.logits(shrink(model, masks), images))


@st.composite
def quantized_chain(draw):
    """A random 3-layer int8 chain (any zero points, ReLU or not), row masks on the two
    hidden layers, and inputs."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    sizes = [int(rng.integers(1, 9)) for _ in range(3)] + [int(rng.integers(1, 5))]
    zps = [int(rng.integers(-128, 128)) for _ in range(4)]
    model = {}
    for i in range(3):
        relu = bool(rng.integers(0, 2)) and i < 2
        if relu:
            zps[i + 1] = -128 if rng.integers(0, 2) else zps[i + 1]
        model[f"l{i}"] = Layer(f"l{i}", rng.integers(-127, 128, (sizes[i + 1], sizes[i]))
                               .astype(np.int8), quant={
            "bias": rng.integers(-40000, 40000, sizes[i + 1]).astype(np.int32),
            "mult": np.int32(rng.integers(1 << 30, 1 << 31)),
            "shift": np.int32(rng.integers(-14, -4)), "relu": np.int8(relu),
            "in_zp": np.int32(zps[i]), "out_zp": np.int32(zps[i + 1])})
    masks = {}
    for i in range(2):
        if rng.integers(0, 4):
            keep = rng.integers(0, 2, sizes[i + 1]).astype(bool)
            keep[rng.integers(0, sizes[i + 1])] = True
            masks[f"l{i}"] = row_mask(f"l{i}", keep, sizes[i])
    x = rng.integers(-128, 128, (16, sizes[0])).astype(np.int8)
    return model, masks, x


@settings(max_examples=300, deadline=None)
@given(quantized_chain())
def test_shrinking_is_exact_on_random_quantized_chains(case):
    model, masks, x = case
    if not masks:
        with pytest.raises(ModelError, match="no masks"):
            shrink(model, masks)
        return
    small = shrink(model, masks)
    want = qnn.logits(zero_rows(model, masks), x)
    assert np.array_equal(qnn.logits(small, x), want)
    # either half of zero_rows suffices: rows with their biases zeroed (the neuron outputs
    # the zero point), or rows zeroed and the next layer's columns zeroed (whatever the
    # neuron outputs is multiplied by 0)
    keeps = row_keeps(model, masks)
    names = list(model)
    rows_and_biases, rows_and_next_cols = dict(model), dict(model)
    for name, keep in keeps.items():
        layer = model[name]
        w = layer.weights.copy()
        w[~keep] = 0
        bias = np.where(keep, layer.quant["bias"], 0).astype(np.int32)
        rows_and_biases[name] = Layer(name, w, quant=dict(layer.quant, bias=bias))
        rows_and_next_cols[name] = Layer(name, w, quant=layer.quant)
    for i, name in enumerate(names[1:], 1):
        if names[i - 1] in keeps:
            base = rows_and_next_cols[name]
            w = base.weights.copy()
            w[:, ~keeps[names[i - 1]]] = 0
            rows_and_next_cols[name] = Layer(name, w, quant=base.quant)
    assert np.array_equal(qnn.logits(rows_and_biases, x), want)
    assert np.array_equal(qnn.logits(rows_and_next_cols, x), want)


def test_calibration_and_per_weight_activations_lose_their_columns():
    rng = np.random.default_rng(5)
    model = {"a": Layer("a", rng.integers(-9, 9, (4, 3)).astype(np.int8),
                        activations=rng.integers(0, 9, (4, 3)).astype(np.int8),
                        calib=rng.integers(-9, 9, (7, 3)).astype(np.int8)),
             "b": Layer("b", rng.integers(-9, 9, (2, 4)).astype(np.int8),
                        activations=rng.integers(0, 9, (2, 4)).astype(np.int8),
                        calib=rng.integers(-9, 9, (7, 4)).astype(np.int8))}
    keep = np.array([True, False, True, False])
    small = shrink(model, [row_mask("a", keep, 3)])
    assert np.array_equal(small["a"].activations, model["a"].activations[keep])
    assert np.array_equal(small["a"].calib, model["a"].calib)
    assert np.array_equal(small["b"].activations, model["b"].activations[:, keep])
    assert np.array_equal(small["b"].calib, model["b"].calib[:, keep])


def test_cli_round_trip(tmp_path, capsys, digits):
    model, images, _ = digits
    masks, out = tmp_path / "m.npz", tmp_path / "small.npz"
    assert run(capsys, "mask", DIGITS, "--method", "rows", "--layer", "fc1",
               "--sparsity", "0.25", "-o", masks)[0] == 0
    code, stdout, err = run(capsys, "shrink", DIGITS, masks, "-o", out)
    assert code == 0 and err == "" and stdout.count("\n") == 1
    assert "fc1 32x64 -> 24x64" in stdout and "fc2 10x32 -> 10x24" in stdout
    small = load_model(out)
    assert set(small["fc1"].quant) == set(model["fc1"].quant)
    assert np.array_equal(qnn.logits(small, images),
                          qnn.logits(zero_rows(model, load_masks(masks)), images))
    code, stdout, _ = run(capsys, "shrink", DIGITS, masks, "-o", out, "--json")
    report = json.loads(stdout)
    assert code == 0 and (report["weights"], report["new_weights"]) == (2368, 24 * 64 + 240)
    assert [r["new_shape"] for r in report["layers"]] == [[24, 64], [10, 24]]


def _bad_files(tmp_path, capsys):
    files = {}
    for tag, args in {"WEIGHTMASKS": ("--method", "magnitude", "--sparsity", "0.5"),
                      "LASTLAYER": ("--method", "rows", "--sparsity", "0.5"),
                      "ALLROWS": ("--method", "rows", "--layer", "fc1", "--sparsity", "1",
                                  "--min-keep", "0"),
                      "COLMASKS": ("--method", "cols", "--layer", "fc1", "--sparsity", "0.5")
                      }.items():
        files[tag] = tmp_path / f"{tag}.npz"
        assert run(capsys, "mask", DIGITS, *args, "-o", files[tag])[0] == 0
    other = tmp_path / "other.npz"
    save_model(other, {"fc1": Layer("fc1", np.ones((3, 64), np.int8)),
                       "fc3": Layer("fc3", np.ones((2, 3), np.int8))})
    for tag, layer in (("MISSING", "fc3"), ("SHAPE", "fc1")):
        files[tag] = tmp_path / f"{tag}.npz"
        save_masks(files[tag], [layer_mask(load_model(other)[layer], "rows",
                                           sparsity_bp=3400)], model=load_model(other))
    files["NOTMASKS"] = DIGITS
    return files


@pytest.mark.parametrize("tag, fragment", [
    ("WEIGHTMASKS", "its mask is per weight (method magnitude); shrink removes whole "
                    "neurons and needs row masks"),
    ("COLMASKS", "its mask is per col"),
    ("LASTLAYER", "layer 'fc2' is the last layer: its rows are the model's outputs"),
    ("ALLROWS", "the mask prunes all 32 rows"),
    ("MISSING", "mask for layer 'fc3', which"),
    ("SHAPE", "made for a layer 'fc1' of shape 3x64; "),
    ("NOTMASKS", "not a prune8 masks file"),
])
def test_bad_masks_are_one_line_and_status_2(tmp_path, capsys, tag, fragment):
    files = _bad_files(tmp_path, capsys)
    out = tmp_path / "out.npz"
    code, stdout, err = run(capsys, "shrink", DIGITS, files[tag], "-o", out)
    assert code == 2 and stdout == "" and not out.exists()
    assert err.count("\n") == 1 and err.startswith("prune8 shrink: error: ")
    assert fragment in err and "Traceback" not in err


def test_a_next_layer_that_does_not_read_the_rows_is_refused():
    model = {"a": Layer("a", np.ones((4, 3), np.int8)), "b": Layer("b", np.ones((2, 5), np.int8))}
    with pytest.raises(ModelError, match="does not read the 4 outputs of 'a'"):
        shrink(model, [row_mask("a", [1, 0, 1, 1], 3)])
