"""The channel study (prune8_eval.channels_eval, make eval): run small, it measures what it
says, on the files it names, and writes a report that says what was measured."""

import numpy as np

from prune8_eval import channels_eval, channels_report
from prune8_host.files.footprint import macs_and_weights


def _small_run():
    return channels_eval.sweep(models=("cnn",), sparsities=(0, 5000),
                               scorers=("scaled", "wanda"), recoveries=("none", "lsq"),
                               epochs=1, log=lambda *_: None)


def test_the_channel_study_measures_each_point_and_writes_its_report(tmp_path):
    run = _small_run()
    (m,) = run["models"]
    dense_bytes = channels_eval.SUBJECTS["cnn"].path.read_bytes()
    assert (m["dense"]["macs"], m["dense"]["weight_bytes"]) == macs_and_weights(dense_bytes)
    by = {(r["scorer"], r["recovery"], r["finetuned"], r["sparsity_bp"]): r
          for r in m["rows"]}
    # per scorer and sparsity: recovery none, lsq, and the fine-tuned control
    assert len(m["rows"]) == len(by) == 2 * 2 * 3
    for key, r in by.items():
        assert r["images"] == 360 and r["invoke_us"] > 0 and r["dense_invoke_us"] > 0
        if key[3] == 0:     # nothing removed: the dense model's size, and its accuracy
            assert r["channels_removed"] == 0
            assert (r["macs"], r["weight_bytes"]) == (m["dense"]["macs"],
                                                      m["dense"]["weight_bytes"])
            if not key[2]:
                assert r["correct"] == m["dense"]["correct"]
    # scale-aware L1 at 50%: half of each 8-channel group, so about half the weights
    half = by["scaled", "none", False, 5000]
    assert half["channels_removed"] == 8 and half["channels"] == 16
    assert half["weight_bytes"] < m["dense"]["weight_bytes"] * 0.6
    assert half["macs"] < m["dense"]["macs"] * 0.6
    # lsq and fine-tuning keep the shapes the mask chose; lsq wins back what none lost
    for key in (("scaled", "lsq", False, 5000), ("scaled", "none", True, 5000)):
        assert (by[key]["macs"], by[key]["weight_bytes"]) == (half["macs"],
                                                              half["weight_bytes"])
    assert by["scaled", "lsq", False, 5000]["correct"] > half["correct"]
    # Wanda cannot score the group through the depthwise layer: only the other one goes
    wanda = by["wanda", "none", False, 5000]
    assert wanda["channels_removed"] == 4 and "dw/weights" in wanda["note"]

    paths = channels_report.write(tmp_path, run)
    assert [p.name for p in paths] == ["channels.csv", "channels.png", "channels.md"]
    lines = paths[0].read_text().splitlines()
    assert lines[0] == f"# made by: {channels_report.COMMAND}"
    assert lines[1].split(",") == list(channels_report.COLUMNS)
    assert len(lines) == 2 + len(m["rows"])
    row = dict(zip(channels_report.COLUMNS, lines[1 + 1 + m["rows"].index(half)].split(",")))
    assert (row["scorer"], row["recovery"], row["sparsity_bp"], row["correct"]) == \
        ("scaled", "none", "5000", str(half["correct"]))
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = paths[2].read_text()
    assert "## What wins" in text and "recovery lsq against none" in text
    assert "- Plainly: on the digits CNN, lsq " in text
    assert "| scale-aware L1 | lsq | " in text and "1 epoch fine-tuning, none" in text
    assert f"{100 * by['scaled', 'lsq', False, 5000]['correct'] / 360:.1f}" in text
    assert "Wanda cannot score group 1 (through dw/weights)" in text


def test_wanda_on_the_mobilenet_is_reported_not_applicable(tmp_path):
    # every MobileNet group runs through a depthwise layer: nothing to measure, said so
    run = channels_eval.sweep(models=("mobilenet",), sparsities=(3000,), scorers=("wanda",),
                              log=lambda *_: None)
    (m,) = run["models"]
    assert [r["correct"] for r in m["rows"]] == [None]
    assert m["rows"][0]["note"].startswith("n/a: every group runs through a depthwise layer")
    text = channels_report.markdown(run)
    assert "| Wanda | - | n/a |" in text and "Wanda: n/a" in text
    csv = channels_report.write(tmp_path, run)[0].read_text().splitlines()
    assert csv[2].startswith("mobilenet,wanda,,0,3000,,") and "n/a" in csv[2]
    assert np.isfinite(m["calib_seconds"])


def test_the_control_holds_pruned_channels_at_zero_so_the_shrink_is_exact():
    # the fine-tuned digits CNN, its pruned channels held at zero through training and
    # quantized anew, loses nothing when recovery none removes them
    from prune8_eval import channels_tune, digits
    from prune8_host.files.graph import groups_of
    from prune8_host.files.tflite import parse
    from prune8_host.files.tflite_shrink import shrink
    from prune8_host.twin import tflm
    s = channels_eval.SUBJECTS["cnn"]
    tm = parse(s.path.read_bytes(), str(s.path))
    groups = [g for g in groups_of(tm) if g.prunable]
    keeps = channels_eval.keeps_for(tm.layers, groups, "scaled", 5000)
    masks = channels_tune.channel_masks(tm, groups, keeps)
    assert sorted(masks) == ["conv1/weights", "dw/weights", "pw/weights"]
    assert not masks["dw/weights"].w[..., ~keeps[groups[0].number]].any()
    tuned = s.tune(tm, masks, digits.load(), epochs=1)
    small = shrink(parse(tuned, "tuned"), keeps)
    x = np.load(s.test)["images"]
    assert tflm.drift(tuned, small.data, x)["max_int8"] == 0
    assert len(small.data) < len(tuned)


def test_the_mobilenet_trainer_holds_masked_parameters_at_zero():
    from prune8_eval import digits
    from prune8_eval import mobilenet as mn
    data = digits.load()
    p = mn.init()
    keep = {k: (np.arange(v.shape[-1 if k.startswith("b1_dw/w") else 0]) % 2 == 0)
            for k, v in p.items() if k.startswith(("stem/", "b1_dw/"))}
    masks = {k: (k_ if k.startswith("b1_dw/w") else
                 k_.reshape((-1,) + (1,) * (p[k].ndim - 1))) * np.ones_like(p[k])
             for k, k_ in keep.items()}
    p = {k: v * masks.get(k, 1.0) for k, v in p.items()}
    tuned = mn.train(p, mn.upsample(data.x_train[:64]), data.y_train[:64], epochs=1,
                     masks=masks)
    for k, m in masks.items():
        assert not tuned[k][m == 0].any() and tuned[k][m == 1].any(), k
