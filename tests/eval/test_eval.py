"""The evaluation (prune8_eval.evaluate): PyTorch's pruning agrees with ours where there
is one right answer, the structured methods remove whole neurons, and a short sweep
writes the report. The tests that need PyTorch are the `peers` group: `make test-peers`
installs the eval extra and runs them; `make test` leaves them out."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prune8_eval import evaluate
from prune8_host import twin
from prune8_host.files.model import load_model


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


@pytest.mark.peers
@SETTINGS
@given(distinct_magnitudes(), st.data())
def test_magnitude_masks_equal_torch_l1_unstructured_when_magnitudes_differ(torch, w, data):
    n = w.size
    k = data.draw(st.integers(0, n - 1))
    bp = -(-k * 10000 // n)                       # smallest bp with n * bp // 10000 == k
    assert evaluate.prune_count(n, bp) == k
    ours = twin.mask_to_keep(twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=bp), n)
    assert ours.tolist() == evaluate.torch_l1_keep(w, k).reshape(-1).tolist()


@pytest.mark.peers
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


@pytest.mark.peers
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


@pytest.mark.peers
def test_a_short_sweep_writes_the_report(torch, tmp_path):
    from prune8_eval import report, series
    run = evaluate.sweep(epochs=1, step_bp=5000, log=lambda *_: None, imp_rounds=2,
                         imp_epochs=1)
    res = run["results"]
    grid = [r for r in res if r.series == "grid"]
    # every method one-shot and fine-tuned at 0% and 50%, and magnitude-rq one-shot
    assert len(grid) == len(evaluate.SERIES) * 2 * 2 + 2
    # per IMP round: three rewinds, the retraining control, magnitude one-shot and tuned
    assert len(res) - len(grid) == 2 * (len(evaluate.IMP_SERIES) + 2)
    for r in grid:
        if r.sparsity_bp == 0 and not r.finetuned:
            assert r.pruned == 0 and r.accuracy == run["int8_accuracy"]
    imp = {(r.method, r.sparsity_bp): r for r in res if r.series == "imp" and r.finetuned}
    first, last = sorted({bp for _, bp in imp})
    assert (first, last) == (7764, 9500)                     # 1 - 0.05^(1/2), then 95%
    # round 1 without rewinding is the control: the same one-shot mask, the same training
    assert imp["imp-none", first].correct == imp["retrain", first].correct
    assert imp["imp-init", last].pruned == 2249               # the 95% grid point's count
    assert (imp["imp-init", first].epochs, imp["imp-init", last].epochs) == (1, 2)
    assert [s["hidden"] for s in run["shrink"]] == [32, 16]
    assert {e["layer"] for e in run["reconstruction"]} == {"fc1", "fc2"}
    paths = report.write(tmp_path, run)
    assert [p.name for p in paths] == ["accuracy.csv", "accuracy.png", "README.md"]
    csv = paths[0].read_text().splitlines()
    assert csv[0] == f"# made by: {series.COMMAND}" and len(csv) == 2 + len(res)
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    readme = paths[2].read_text()
    assert "Made by `make eval` (`python -m prune8_eval.evaluate`)" in readme
    assert "## Test accuracy (%), iterative magnitude pruning" in readme


def test_imp_series_magnitude_masks_are_the_twins():
    # the IMP table's magnitude columns prune by imp.magnitude_keep at each round's count:
    # on int8 weights that is the twin's exact-tie mask with the same k
    from prune8_eval import iterative as imp
    from prune8_host.twin.reference import layer_mask, weight_keep
    model = load_model(DIGITS)
    for bp in (500, 3333, 7000, 9500):
        for layer in model.values():
            k = evaluate.prune_count(layer.n, bp)
            ours = imp.magnitude_keep(layer.weights, np.ones(layer.weights.shape, bool), k)
            twin_keep = weight_keep(layer_mask(layer, "magnitude", sparsity_bp=bp))
            assert np.array_equal(ours, twin_keep), (layer.name, bp)


def test_the_cnn_study_writes_its_report(tmp_path):
    from prune8_eval import cnn_eval
    run = cnn_eval.sweep(step_bp=5000, epochs=1, series=[("magnitude", "layer"),
                                                          ("scaled", "layer"),
                                                          ("scaled", "channel")],
                         log=lambda *_: None)
    by = {(r["method"], r["scope"], r["finetuned"], r["sparsity_bp"]): r for r in run["rows"]}
    assert len(run["rows"]) == 3 * 2 * 2
    for key, r in by.items():
        if key[3] == 0 and not key[2]:  # unpruned: the model's own accuracy
            assert r["pruned"] == 0 and r["correct"] == run["int8_correct"]
        if key[3] == 5000:
            assert r["pruned"] == run["weights"] // 2 or key[1] == "channel"
    paths = cnn_eval.write(tmp_path, run)
    text = paths[2].read_text()
    assert "## What wins" in text and "Scale-aware against raw int8 magnitude" in text
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths[0].read_text().startswith(f"# made by: {cnn_eval.COMMAND}")
