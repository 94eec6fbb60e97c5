"""A Model remembers the file it came from (files.model): it writes itself back in its own
format with new weights, a .tflite changed only in those weights' bytes, an .npz with
every array it held; and it serialises each layer for the board once."""

from __future__ import annotations

import numpy as np
import pytest

from prune8_host.errors import ModelError, UsageError
from prune8_host.files import tflite
from prune8_host.files.model import Model, load_model, save_model
from prune8_host.files.npzio import load_arrays, save_npz
from prune8_host.twin.layer import Layer
from support.models import quantized_arrays

TFLITE = "examples/digits_fc_channel.tflite"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def test_an_npz_is_written_back_with_every_array_it_held(tmp_path):
    path, out = tmp_path / "q.npz", tmp_path / "out.npz"
    arrays = {"fc2.bias": np.zeros(3, np.int32), **quantized_arrays()}  # not in layer order
    save_npz(path, arrays)
    model = load_model(path, layers=["fc2"])
    assert list(model) == ["fc2"] and model.kind == "npz"
    zero = np.zeros((3, 4), np.int8)
    model.write(out, weights={"fc2": zero})
    after = load_arrays(out)
    assert list(after) == list(arrays)  # the file's order; fc1 kept though not selected
    for key, a in arrays.items():
        want = zero if key == "fc2" else a
        assert after[key].dtype == want.dtype and after[key].tobytes() == want.tobytes(), key


def test_a_tflite_is_written_back_changed_only_in_the_new_weights(tmp_path):
    model = load_model(TFLITE)
    assert model.kind == "tflite" and list(model) == list(model.tflite_model.placements)
    same, pruned = tmp_path / "same.tflite", tmp_path / "pruned.tflite"
    model.write(same)
    assert same.read_bytes() == open(TFLITE, "rb").read()
    name = next(iter(model))
    w = model[name].weights.copy()
    w[:, ::2] = 0
    model.with_weights({name: w}).write(pruned)
    assert pruned.read_bytes() == tflite.pruned_bytes(model.tflite_model, {name: w})
    again = load_model(pruned)
    assert np.array_equal(again[name].weights, w)
    assert all(np.array_equal(again[n].weights, model[n].weights) for n in model if n != name)


def test_the_extension_chooses_the_format(tmp_path):
    model = load_model(TFLITE)
    model.write(tmp_path / "layers.npz")  # a .tflite's layers as an .npz: prune8 model import
    save_model(tmp_path / "imported.npz", model)
    assert (tmp_path / "layers.npz").read_bytes() == (tmp_path / "imported.npz").read_bytes()
    model.write(tmp_path / "no-extension")  # the model's own format
    assert (tmp_path / "no-extension").read_bytes() == open(TFLITE, "rb").read()
    npz = load_model("examples/example_model.npz")
    with pytest.raises(UsageError, match="only a .tflite model is written as a .tflite"):
        npz.write(tmp_path / "x.tflite")
    with pytest.raises(UsageError, match="this output is an .npz file, not an .npy"):
        npz.write(tmp_path / "x.npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imported.npz", "layers.npz",
                                                          "no-extension"]


def test_a_flat_npy_is_written_back_in_its_shape(tmp_path):
    path, out = tmp_path / "w.npy", tmp_path / "out.npz"
    np.save(path, np.arange(-6, 6, dtype=np.int8))
    model = load_model(path, rows=3, cols=4)
    assert model.kind == "npy" and model["w"].weights.shape == (3, 4)
    model.write(out, weights={"w": np.ones((3, 4), np.int8)})
    assert load_arrays(out)["w"].tolist() == [1] * 12


def test_new_weights_must_fit_the_layer():
    model = load_model("examples/example_model.npz")
    with pytest.raises(ModelError, match="layer 'fc2' has 320 int8 weights; got 3 int8"):
        model.with_weights({"fc2": np.zeros(3, np.int8)})
    with pytest.raises(ModelError, match="layer 'fc2' has 320 int8 weights; got 320 int16"):
        model.with_weights({"fc2": np.zeros((10, 32), np.int16)})
    with pytest.raises(ModelError, match="no layer 'fc9'"):
        model.with_weights({"fc9": np.zeros(3, np.int8)})


def test_each_layer_is_serialised_once(monkeypatch):
    from prune8_host.files import model as model_file
    made = []
    real = model_file.layer_record
    monkeypatch.setattr(model_file, "layer_record",
                        lambda layer: made.append(layer.name) or real(layer))
    model = Model({"a": Layer("a", np.ones((2, 3), np.int8))})
    assert model.record("a") is model.record("a") and made == ["a"]
    assert model.with_weights({"a": np.zeros((2, 3), np.int8)}).record("a").crc != \
        model.record("a").crc and made == ["a", "a"]
