"""The digits example: the shipped files regenerate byte for byte, and the float
training they come from uses only arithmetic that every CPU rounds alike."""

import filecmp
import importlib.util

import numpy as np

from prune8_eval import mlp
from prune8_host.files.example_model import example_model
from prune8_host.files.model import save_model
from support import ROOT

FILES = ("digits_mlp.npz", "digits_test.npz", "digits_calib.npz")


def load_example(name="make_digits"):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_make_digits():
    return load_example("make_digits")


def test_make_digits_regenerates_the_shipped_files_byte_for_byte(tmp_path):
    built = load_make_digits().write(tmp_path)
    for name in FILES:
        assert filecmp.cmp(tmp_path / name, ROOT / "examples" / name, shallow=False), \
            f"examples/{name} is not what examples/make_digits.py makes: rerun it"
    assert built["float_accuracy"] >= 0.95


def test_the_example_model_is_the_one_prune8_demo_builds(tmp_path):
    """examples/example_model.npz is what the installed package makes in memory."""
    save_model(tmp_path / "example_model.npz", example_model())
    assert filecmp.cmp(tmp_path / "example_model.npz", ROOT / "examples" / "example_model.npz",
                       shallow=False), "rerun examples/make_example.py"


def test_make_wide_regenerates_the_shipped_files_byte_for_byte(tmp_path):
    """examples/digits_wide.npz (a 256 x 256 layer: pruned and run from flash on the
    board) and its test split."""
    built = load_example("make_wide").write(tmp_path)
    for name in ("digits_wide.npz", "digits_wide_test.npz"):
        assert filecmp.cmp(tmp_path / name, ROOT / "examples" / name, shallow=False), \
            f"examples/{name} is not what examples/make_wide.py makes: rerun it"
    assert built["float_accuracy"] >= 0.95


def test_exp_matches_libm_closely():
    z = -np.concatenate([np.linspace(0, 50, 10001), [1e-300, 700.0, 745.0, 1e4]])
    got = mlp._exp_nonpos(z)
    want = np.exp(z)
    ok = z >= -700.0                  # below, exp is clamped at exp(-700) ~ 1e-304
    assert np.all(np.abs(got[ok] - want[ok]) <= 1e-13 * want[ok])
    assert np.all(got[~ok] == got[z == -700.0][0])


def test_deterministic_matmul_is_a_matmul():
    rng = np.random.default_rng(0)
    a, w = rng.standard_normal((7, 5)), rng.standard_normal((3, 5))
    assert np.allclose(mlp._dot_t(a, w), a @ w.T, rtol=1e-14, atol=1e-14)
    d = rng.standard_normal((7, 3))
    assert np.allclose(mlp._outer_sum(d, a), d.T @ a, rtol=1e-14, atol=1e-14)


def test_masked_training_keeps_pruned_weights_at_zero():
    rng = np.random.default_rng(1)
    x, y = rng.random((40, 6)), rng.integers(0, 3, 40)
    m = mlp.init(6, 4, 3, seed=2)
    mask = (rng.random((4, 6)) < 0.5).astype(np.float64)
    t = mlp.train(m, x, y, epochs=3, lr=0.1, seed=3, batch=8, masks={"w1": mask})
    assert np.all(t.w1[mask == 0] == 0) and np.any(t.w1[mask == 1] != m.w1[mask == 1])
