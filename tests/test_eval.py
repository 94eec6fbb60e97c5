"""The evaluation (prune8_host.evaluate): PyTorch's pruning agrees with ours where there
is one right answer, the structured methods remove whole neurons, and a short sweep
writes the report. Skipped, with the reason, when the eval extra is not installed."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prune8_host import evaluate, twin
from prune8_host.model import load_model



@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip(
        "torch", reason="PyTorch is not installed: this test needs the eval extra "
                        "(pip install -e '.[eval]'; make eval installs it)")

DIGITS = evaluate.MODEL
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def distinct_magnitudes(draw):
    """A rows x cols int8 layer whose |w| are all different (n <= 128)."""
    rows = draw(st.integers(1, 16))
    cols = draw(st.integers(1, 128 // rows))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    mags = rng.choice(128, rows * cols, replace=False)
    signs = rng.choice([-1, 1], rows * cols)
    return (mags * signs).astype(np.int8).reshape(rows, cols)


@SETTINGS
@given(distinct_magnitudes(), st.data())
def test_magnitude_masks_equal_torch_l1_unstructured_when_magnitudes_differ(torch, w, data):
    n = w.size
    k = data.draw(st.integers(0, n - 1))
    bp = -(-k * 10000 // n)                       # smallest bp with n * bp // 10000 == k
    assert evaluate.prune_count(n, bp) == k
    ours = twin.mask_to_keep(twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=bp), n)
    assert ours.tolist() == evaluate.torch_l1_keep(w, k).reshape(-1).tolist()


@SETTINGS
@given(st.integers(1, 32), st.integers(1, 64), st.integers(0, 2**32 - 1), st.data())
def test_row_masks_equal_torch_ln_structured_when_norms_differ(torch, rows, cols, seed, data):
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (rows, cols)).astype(np.int8)
    norms = np.abs(w.astype(np.int64)).sum(axis=1)
    if len(set(norms.tolist())) < rows:
        return  # ties: either choice is right
    k = data.draw(st.integers(0, rows - 1))
    bp = -(-k * 10000 // rows)
    words, _ = twin.prune_rows(w, rows, cols, sparsity_bp=bp)
    assert twin.mask_to_keep(words, rows).tolist() == \
        evaluate.torch_ln_rows_keep(w, k).tolist()


def test_on_the_digits_model_masks_differ_only_among_ties(torch):
    model = load_model(DIGITS)
    for bp in range(0, 10000, 500):
        _, ties_only = evaluate.masks_agree(model, "magnitude", "torch-l1", bp)
        identical, _ = evaluate.masks_agree(model, "rows", "torch-ln", bp)
        assert ties_only and identical, bp


def test_structured_pruning_removes_whole_neurons():
    model = load_model(DIGITS)
    keep, bias_keep = evaluate.keep_masks(model, "rows", 2500)
    k = evaluate.prune_count(32, 2500)
    gone = ~bias_keep["fc1"]
    assert np.count_nonzero(gone) == k == 8
    pruned = evaluate.apply_keep(model, keep, bias_keep)
    assert not pruned["fc1"].weights[gone].any() and not pruned["fc1"].quant["bias"][gone].any()
    assert not pruned["fc2"].weights[:, gone].any()
    assert pruned["fc2"].weights[:, ~gone].tolist() == model["fc2"].weights[:, ~gone].tolist()


def test_a_short_sweep_writes_the_report(torch, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib is not installed (the eval extra)")
    pytest.importorskip("sklearn", reason="scikit-learn is not installed")
    from prune8_host import evalreport
    run = evaluate.sweep(epochs=1, step_bp=5000, log=lambda *_: None)
    res = run["results"]
    assert len(res) == len(evaluate.METHODS) * 2 * 2
    for r in res:
        if r.sparsity_bp == 0 and not r.finetuned:
            assert r.pruned == 0 and r.accuracy == run["int8_accuracy"]
    paths = evalreport.write(tmp_path, run)
    assert [p.name for p in paths] == ["accuracy.csv", "accuracy.png", "README.md"]
    csv = paths[0].read_text().splitlines()
    assert csv[0] == f"# made by: {evaluate.COMMAND}" and len(csv) == 2 + len(res)
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Made by `make eval` (`python -m prune8_host.evaluate`)" in paths[2].read_text()
