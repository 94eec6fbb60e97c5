"""Channel groups of a .tflite (files.graph), their scores and masks (twin.channels) and
the physically smaller model (files.tflite_shrink): exact against the channel-zeroed
model, by TFLM."""

from pathlib import Path

import numpy as np
import pytest

from prune8.bp import prune_count
from prune8_eval import zoo
from prune8_host.errors import ModelError
from prune8_host.files import footprint
from prune8_host.files.graph import groups_of
from prune8_host.files.masks import load_masks, save_masks
from prune8_host.files.tflite import parse, read
from prune8_host.files.tflite_shrink import group_keeps, shrink
from prune8_host.twin import tflm
from prune8_host.twin.channels import group_keep, group_masks, group_scores
from prune8_host.twin.layer import PruneOptions
from prune8_host.twin.reference import layer_scores

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MODELS = ["digits_fc.tflite", "digits_fc_channel.tflite", "digits_cnn.tflite"]


def _masks(tm, bp, method="scaled", min_keep=1):
    groups = [g for g in groups_of(tm) if g.prunable]
    masks, keeps = group_masks(tm.layers, [(g.channels, g.members) for g in groups],
                               PruneOptions(method, sparsity_bp=bp, min_keep=min_keep))
    return groups, masks, {g.number: k for g, k in zip(groups, keeps)}


def test_the_cnn_has_the_groups_its_graph_couples():
    groups = groups_of(read(EXAMPLES / "digits_cnn.tflite"))
    assert [(g.channels, g.prunable) for g in groups] == [(1, False), (8, True), (8, True),
                                                           (10, False)]
    assert "model's input" in groups[0].blocked and "model's output" in groups[3].blocked
    # conv1's 8 output channels pass through the depthwise conv, then pw reads them
    g = groups[1]
    assert [(m.layer, m.role) for m in g.members] == [
        ("conv1/weights", "rows"), ("dw/weights", "rows"), ("pw/weights", "cols")]
    assert g.members[0].index.tolist() == list(range(8))
    # pw's channels reach fc through its NHWC flatten: channel c is every 8th column
    fc = groups[2].members[1]
    assert fc.layer == "fc/weights" and fc.index.shape == (8, 16)
    assert fc.index[3].tolist() == list(range(3, 128, 8))


@pytest.mark.parametrize("name", MODELS)
def test_a_channel_score_sums_the_scores_of_every_weight_the_channel_owns(name):
    tm = read(EXAMPLES / name)
    for g in groups_of(tm):
        for method in ("scaled", "magnitude"):
            got = group_scores(tm.layers, g.channels, g.members, method)
            want = np.zeros(g.channels, np.int64)
            for m in g.members:
                s = layer_scores(tm.layers[m.layer], method).reshape(
                    tm.layers[m.layer].weights.shape).astype(np.int64)
                for ch in range(g.channels):
                    if m.role == "rows" and m.index[ch] >= 0:
                        want[ch] += s[m.index[ch]].sum()
                    elif m.role == "cols":
                        want[ch] += sum(s[:, j].sum() for j in m.index[ch] if j >= 0)
            assert got.tolist() == want.tolist()


def test_a_group_keeps_min_keep_and_prunes_the_k_lowest():
    s = np.array([5, 1, 9, 1, 7, 3], np.int64)
    keep = group_keep(s, PruneOptions("scaled", sparsity_bp=5000))
    assert keep.tolist() == [True, False, True, False, True, False]  # ties: lowest index
    assert group_keep(s, PruneOptions("scaled", sparsity_bp=10000, min_keep=2)).sum() == 2
    # a group smaller than min_keep is kept whole
    assert group_keep(s[:2], PruneOptions("scaled", sparsity_bp=9000, min_keep=4)).all()
    for bp in (0, 3000, 9999):
        assert (~group_keep(s, PruneOptions("scaled", sparsity_bp=bp))).sum() == \
            prune_count(6, bp, 1)


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("bp", [3000, 5000, 9000])
def test_the_small_model_gives_the_channel_zeroed_models_outputs_bit_for_bit(name, bp):
    tm = read(EXAMPLES / name)
    _, _, keeps = _masks(tm, bp)
    small = shrink(tm, keeps)
    images = tflm.drawn_inputs(tm.data, 128)
    test = np.load(EXAMPLES / "digits_test.npz")["images"]
    for x in (images, test):
        assert np.array_equal(tflm.outputs(small.data, x), tflm.outputs(small.zeroed, x))
    assert small.inexact == []
    assert len(small.data) < len(tm.data)
    # every removed channel is gone from the layers that made and read it
    back = parse(small.data)
    for g_number, keep in keeps.items():
        assert keep.sum() < keep.size
    for name_, layer in back.layers.items():
        rows, cols = small.removed[name_] if name_ in small.removed else (0, 0)
        assert layer.weights.shape == (tm.layers[name_].weights.shape[0] - rows,
                                       tm.layers[name_].weights.shape[1] - cols)


def test_group_masks_are_row_masks_that_round_trip_and_give_the_keeps_back(tmp_path):
    tm = read(EXAMPLES / "digits_cnn.tflite")
    groups, masks, keeps = _masks(tm, 5000)
    save_masks(tmp_path / "m.npz", list(masks.values()), model=tm.layers)
    back = load_masks(tmp_path / "m.npz")
    assert {m.name: m.unit for m in back} == {n: "row" for n in masks}
    got = group_keeps(tm, groups_of(tm), back)
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in keeps.items()}


def test_masks_that_split_a_group_are_refused(tmp_path):
    tm = read(EXAMPLES / "digits_cnn.tflite")
    _, masks, _ = _masks(tm, 5000)
    alone = [m for n, m in masks.items() if n != "dw/weights"]
    with pytest.raises(ModelError, match="none for 'dw/weights'"):
        group_keeps(tm, groups_of(tm), alone)
    other = _masks(tm, 2500)[1]
    mixed = [masks["conv1/weights"], other["dw/weights"], masks["pw/weights"]]
    with pytest.raises(ModelError, match="keep different channels of group 1"):
        group_keeps(tm, groups_of(tm), mixed)


def test_a_per_weight_scorer_is_needed():
    tm = read(EXAMPLES / "digits_cnn.tflite")
    g = groups_of(tm)[1]
    with pytest.raises(Exception, match="method"):
        group_scores(tm.layers, g.channels, g.members, "rows")


# -- models of the structure users bring (prune8_eval.zoo: look-alikes made here) ------

ZOO = {name: zoo_make() for name, zoo_make in zoo.MODELS.items()}


def test_groups_follow_reshape_depthwise_add_and_concatenation():
    ms = groups_of(parse(ZOO["micro_speech"], "micro_speech"))
    # the depthwise conv of one channel makes 8 channels; the FC reads each through the
    # flatten of its 25x20x8 output: 500 columns per channel, every 8th
    g = next(g for g in ms if g.prunable)
    assert g.channels == 8 and [(m.layer, m.role) for m in g.members] == \
        [("conv/weights", "rows"), ("fc/weights", "cols")]
    assert g.members[1].index[2].tolist() == list(range(2, 4000, 8))
    assert "SOFTMAX" in ms[2].blocked  # the FC's own rows reach the softmax
    res = groups_of(parse(ZOO["residual_cnn"], "residual_cnn"))
    # the ADD joins both branches' producers, the CONCATENATION joins them to the stem
    g = next(g for g in res if g.prunable)
    makers = [m.layer for m in g.producers()]
    assert makers == ["stem/weights", "branch_a_dw/weights", "branch_a_pw/weights",
                      "branch_b_proj/weights"]
    assert g.channels == 32  # the concatenation's 16 + 16


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_models_shrink_to_what_tflm_runs_with_the_same_interface(name):
    data = ZOO[name]
    tm = parse(data, name)
    _, _, keeps = _masks(tm, 3000)
    small = shrink(tm, keeps)
    dense_it, small_it = tflm.interpreter(data), tflm.interpreter(small.data)
    for d in ("get_input_details", "get_output_details"):
        a, b = getattr(dense_it, d)(0), getattr(small_it, d)(0)
        assert list(a["shape"]) == list(b["shape"]) and a["dtype"] == b["dtype"]
    x = tflm.drawn_inputs(data, 24 if name == "person_detection" else 64)
    got, want = tflm.outputs(small.data, x), tflm.outputs(small.zeroed, x)
    if small.inexact:  # only a SAME-padded spatial consumer may make the fold approximate
        assert all("SAME padding" in why for why in small.inexact)
        assert name == "mnist_cnn"
    else:
        assert np.array_equal(got, want)
    macs, weights = footprint.macs_and_weights(data)
    small_macs, small_weights = footprint.macs_and_weights(small.data)
    assert small_weights <= 0.8 * weights and small_macs <= 0.8 * macs
