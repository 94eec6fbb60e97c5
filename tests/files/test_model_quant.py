"""Model files with quantization parameters (NAME.FIELD keys): load_model exposes them,
save_model and `prune8 apply` keep them, and files without them read as before."""

import numpy as np

from prune8_host.cli import main
from prune8_host.files.model import load_model, save_model
from prune8_host.files.npzio import load_arrays, save_npz
from prune8_host.twin.layer import QUANT_FIELDS
from support.models import quantized_arrays


def test_quant_fields_are_exposed_not_layers(tmp_path):
    path = tmp_path / "q.npz"
    arrays = quantized_arrays()
    save_npz(path, arrays)
    model = load_model(path)
    assert list(model) == ["fc1", "fc2"]
    assert set(model["fc1"].quant) == set(QUANT_FIELDS)
    assert model["fc1"].quant["mult"] == 1 << 30
    assert model["fc1"].activations.tolist() == list(range(6))
    assert list(model["fc2"].quant) == ["bias"]


def test_save_model_writes_the_same_bytes(tmp_path):
    path, again = tmp_path / "q.npz", tmp_path / "again.npz"
    save_npz(path, quantized_arrays())
    save_model(again, load_model(path))
    assert again.read_bytes() == path.read_bytes()


def test_files_without_quant_fields_read_as_before(tmp_path):
    # "x.bias" is a layer when there is no layer "x": the old rule, unchanged
    path = tmp_path / "old.npz"
    save_npz(path, {"enc.bias": np.ones((2, 2), np.int8), "dec": np.ones((2, 3), np.int8)})
    model = load_model(path)
    assert list(model) == ["enc.bias", "dec"]
    assert all(layer.quant == {} for layer in model.values())


def test_apply_keeps_quant_fields(tmp_path, capsys):
    path, masks, out = tmp_path / "q.npz", tmp_path / "m.npz", tmp_path / "p.npz"
    save_npz(path, quantized_arrays())
    assert main(["mask", str(path), "--method", "magnitude", "--sparsity", "0.5",
                 "-o", str(masks)]) == 0
    assert main(["apply", str(path), str(masks), "-o", str(out)]) == 0
    capsys.readouterr()
    before, after = load_arrays(path), load_arrays(out)
    assert list(after) == list(before)
    for key in before:
        if key in ("fc1", "fc2"):
            assert np.count_nonzero(after[key]) < np.count_nonzero(before[key])
        else:
            assert after[key].tobytes() == before[key].tobytes() and \
                after[key].dtype == before[key].dtype, key
