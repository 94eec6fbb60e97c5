"""The prune8 command on .npy / .npz files: outputs, and one-line errors with status 2."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from prune8_eval import tflite_build, zoo
from prune8_host import heap_law, twin
from prune8_host.boards import load_board
from prune8_host.cli import main
from prune8_host.files.masks import load_masks
from prune8_host.files.model import load_model
from prune8_host.files.npzio import load_arrays
from prune8_host.twin import reference as twin_reference
from prune8_host.twin.layer import Layer, PruneOptions

EXAMPLE = "examples/example_model.npz"


@pytest.fixture(autouse=True)
def at_repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_mask_writes_twin_masks_and_metadata(tmp_path, capsys):
    out = tmp_path / "m.npz"
    code, stdout, _ = run(capsys, "mask", EXAMPLE, "--method", "magnitude", "--sparsity", "0.3",
                          "--tie", "strict", "--min-keep", "5", "-o", str(out))
    assert code == 0 and stdout.count("\n") == 1 and "-> " in stdout
    model = load_model(EXAMPLE)
    for m in load_masks(out):
        w = model[m.name].flat
        expected = twin.prune_mask(twin.magnitude_scores(w), sparsity_bp=3000, tie="strict",
                                   min_keep=5)
        assert m.words.tolist() == expected.tolist()
        assert m.unit == "weight" and m.options == PruneOptions(
            "magnitude", sparsity_bp=3000, tie="strict", min_keep=5)


def test_score_json_and_output(tmp_path, capsys):
    out = tmp_path / "s.npz"
    code, stdout, _ = run(capsys, "score", EXAMPLE, "--method", "mincut", "--layer", "fc2",
                          "-o", str(out), "--json")
    report = json.loads(stdout)
    assert code == 0 and [r["layer"] for r in report["layers"]] == ["fc2"]
    w = load_model(EXAMPLE)["fc2"].weights
    assert load_arrays(out)["fc2"].tolist() == twin.mincut_scores(w, 10, 32).reshape(-1).tolist()


def test_apply_zeroes_rows_of_a_row_mask(tmp_path, capsys):
    masks, pruned = tmp_path / "m.npz", tmp_path / "p.npz"
    assert run(capsys, "mask", EXAMPLE, "--method", "rows", "--sparsity-bp", "5000",
               "-o", str(masks))[0] == 0
    assert run(capsys, "apply", EXAMPLE, str(masks), "-o", str(pruned))[0] == 0
    w = load_model(EXAMPLE)["fc1"].weights
    keep_words, expected = twin.prune_rows(w, 32, 64, sparsity_bp=5000)
    assert load_model(pruned)["fc1"].weights.tolist() == expected.tolist()
    code, stdout, _ = run(capsys, "stats", str(masks), "--json")
    fc1 = json.loads(stdout)["layers"][0]
    assert (fc1["unit"], fc1["n"], fc1["pruned"]) == ("row", 32, 16)


def test_flat_npy_needs_rows_and_cols_for_shaped_methods(tmp_path, capsys):
    path = tmp_path / "w.npy"
    np.save(path, np.arange(-6, 6, dtype=np.int8))
    code, _, err = run(capsys, "score", str(path), "--method", "mincut")
    assert code == 2 and "--rows and --cols" in err
    code, stdout, _ = run(capsys, "score", str(path), "--method", "mincut", "--rows", "3",
                          "--cols", "4", "--json")
    assert code == 0 and json.loads(stdout)["layers"][0]["n"] == 12


def test_gradient_with_activations_file(tmp_path, capsys):
    w, a = tmp_path / "w.npy", tmp_path / "a.npy"
    np.save(w, np.array([[100, -50], [3, 4]], np.int8))
    np.save(a, np.array([16, 32], np.int8))
    out = tmp_path / "s.npz"
    assert run(capsys, "score", str(w), "--method", "gradient", "--activations", str(a),
               "-o", str(out))[0] == 0
    # |100*16|>>4 = 100, |-50*32|>>4 = 100, |3*16|>>4 = 3, |4*32|>>4 = 8
    assert load_arrays(out)["w"].tolist() == [100, 100, 3, 8]


@pytest.mark.parametrize("argv, fragment", [
    (["mask", "missing.npz", "--method", "rows", "--sparsity", "0.5"], "no such file"),
    (["mask", EXAMPLE, "--method", "rows", "--sparsity", "1.5"], "--sparsity must be a fraction"),
    (["mask", EXAMPLE, "--method", "rows"], "give --sparsity S"),
    (["mask", EXAMPLE, "--method", "magnitude", "--sparsity", "0.5", "--board", "nope"],
     "unknown board 'nope'"),
    (["mask", EXAMPLE, "--method", "magnitude", "--sparsity", "0.5", "--layer", "fc9"],
     "no layer 'fc9'"),
    (["score", "FLOAT", "--method", "magnitude"], "quantize to int8 first"),
    (["score", "NOTNPY", "--method", "magnitude"], "not a NumPy"),
    (["score", "BIG", "--method", "magnitude", "--board", "esp32"],
     "4096 weights exceed capacity: max_weights=2048"),
    (["mask", "GRADNOACT", "--method", "gradient", "--sparsity", "0.5"], "no activations"),
    (["apply", EXAMPLE, "NOTMASKS", "-o", "x.npz"], "not a prune8 masks file"),
])
def test_bad_input_is_one_line_and_status_2(tmp_path, capsys, argv, fragment):
    files = {"FLOAT": ("f.npy", np.zeros((2, 2), np.float32)),
             "NOTNPY": ("t.npy", None), "BIG": ("big.npy", np.zeros((64, 64), np.int8)),
             "GRADNOACT": ("g.npy", np.ones((2, 2), np.int8)),
             "NOTMASKS": ("n.npz", np.ones((2, 2), np.int8))}
    argv = list(argv)
    for i, a in enumerate(argv):
        if a in files:
            name, array = files[a]
            path = tmp_path / name
            if array is None:
                path.write_text("hello")
            elif name.endswith(".npz"):
                np.savez(path, x=array)
            else:
                np.save(path, array)
            argv[i] = str(path)
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and fragment in err and "Traceback" not in err


def test_console_script_and_help():
    exe = [sys.executable, "-m", "prune8_host.cli"]
    top = subprocess.run(exe + ["--help"], capture_output=True, text=True)
    assert top.returncode == 0
    for cmd in ("boards", "build", "score", "mask", "apply", "stats", "demo"):
        assert cmd in top.stdout
    sub = subprocess.run(exe + ["mask", "--help"], capture_output=True, text=True)
    assert "--sparsity" in sub.stdout and "--tie" in sub.stdout and "--min-keep" in sub.stdout


def test_boards_lists_profiles(capsys):
    code, out, _ = run(capsys, "boards", "--json")
    boards = {b["name"]: b for b in json.loads(out)}
    assert boards["esp32"]["flash_offset"] == 0x1000 and boards["esp32"]["max_weights"] == 2048
    assert boards["esp32c3"]["mpy_arch"] == "rv32imc" and boards["esp32s3"]["flash_offset"] == 0
    # the firmware at rest, counted from boot, as measured (boards/heap.json), under budget
    for name, b in boards.items():
        fig = heap_law.figures(load_board(name))
        assert b["heap_at_rest"] == fig.at_rest and 40_000 < fig.at_rest < b["heap_bytes"]
    code, out, _ = run(capsys, "boards")
    head, esp32 = out.splitlines()[:2]
    assert head.split()[5:7] == ["at", "rest"] and head.split()[7] == "budget"
    assert esp32.split()[5:7] == [str(boards["esp32"]["heap_at_rest"]), "100000"]


def test_demo_prunes_on_a_virtual_board_and_verifies_every_layer(capsys):
    code, out, _ = run(capsys, "demo", "--json", "--quiet")
    report = json.loads(out)
    assert code == 0 and report["verified"]
    rows = report["layers"]
    assert {(r["layer"], r["method"]) for r in rows} == {
        (layer, m) for layer in ("fc1", "fc2")
        for m in ("magnitude", "l2", "gradient", "wanda", "mincut", "random", "rows", "cols",
                  "blocks")}
    assert all(r["verified"] and r["sparsity_bp"] == 5000 for r in rows)


def test_model_info_reports_fit_per_layer(tmp_path, capsys):
    path = tmp_path / "m.npz"
    np.savez(path, small=np.ones((4, 8), np.int8), wide=np.ones((2, 100), np.int8),
             huge=np.ones((1, 4097), np.int8), **{"small.act": np.ones(8, np.int8)})
    code, out, _ = run(capsys, "model", "info", str(path), "--json")
    info = json.loads(out)
    layers = {r["layer"]: r for r in info["layers"]}
    assert code == 0
    assert layers["small"]["fits"] == "in RAM" and layers["small"]["activations"] == "per column"
    assert layers["small"]["bytes"] == 32 + 8
    assert layers["wide"]["fits"] == "from flash"  # 100 cols > max_units=64: streamed
    assert layers["huge"]["fits"] == "no: 4097 cols exceed capacity: max_units=4096"
    assert info["fs_bytes"] == 0x200000 and 32 + 8 + 200 < info["stored_bytes"] < 400
    code, out, _ = run(capsys, "model", "info", str(path), "--board", "esp32s3")
    assert code == 0 and "wide" in out and out.count("in RAM") == 3  # S3: 128 units


def test_model_info_shows_the_heap_each_layers_prune_needs(capsys):
    """Per layer, the heap from boot a prune of it needs on the board, by scorer and
    pattern, within the measurements it was fitted to (the 256 x 256 layer is a shape
    measured on esp32) and with what the model's other layer (fc2) adds, and whether it
    fits the budget."""
    code, out, _ = run(capsys, "model", "info", "examples/digits_wide.npz", "--method",
                       "mincut", "--json")
    info = json.loads(out)
    fc1 = info["layers"][0]
    entry = heap_law.load_data()["capacities"][0]
    law = entry["laws"]["mincut"]["one-shot"]["streamed"]
    measured = next(p[3] for p in law["points"] if p[:2] == [256, 256])
    other = entry["other_layers"]
    more = math.ceil(other["per_layer"]["mincut"]["one-shot"]
                     + other["per_name_byte"] * len("fc2"))
    assert code == 0 and fc1["shape"] == [256, 256] and fc1["fits"] == "from flash"
    assert more > 0
    assert measured + more <= fc1["heap_need"] <= measured + law["slack"] + more
    assert info["heap_at_rest"] < fc1["heap_need"] <= info["heap_budget"] == 100_000
    assert fc1["heap_fits"] and info["method"] == "mincut"
    # per-channel scope keeps per-row state when streamed, per step: over the esp32
    # budget in 8 steps
    code, out, _ = run(capsys, "model", "info", "examples/digits_wide.npz", "--method",
                       "mincut", "--scope", "channel", "--steps", "8")
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("fc1"))
    assert row.endswith("(over)") and "over the budget: fc1" in out
    assert "--ignore-heap" in out


def test_a_group_prune_over_the_budget_is_refused_before_any_board(tmp_path, capsys):
    """person_detection's channel groups (28 stored layers, 41 members): the measured
    group law says more than the esp32's 100,000 bytes, so `run --structured channels`
    says so in one line before it opens any port, and `model info` shows the need; a
    board of a bigger budget (esp32s3) takes it."""
    path = tmp_path / "person_detection.tflite"
    path.write_bytes(zoo.person_detection())
    points = heap_law.load_data()["capacities"][0]["groups"]["scaled"]["points"]
    measured = max(p[-1] for p in points)   # person_detection's is the largest measured
    code, _, err = run(capsys, "run", str(path), "--structured", "channels", "--sparsity",
                       "0.3", "--port", str(tmp_path / "no-such-port"), "-o",
                       str(tmp_path / "m.npz"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    need = int(err.split(" need ")[1].split(" bytes")[0].replace(",", ""))
    assert measured <= need and "over its 100,000-byte budget" in err
    assert "41 members over 28 stored layers" in err and "--ignore-heap" in err
    # a scorer whose group prune fits is named, with its need
    magnitude = next(p[-1] for p in heap_law.load_data()["capacities"][0]["groups"]
                     ["magnitude"]["points"] if p[:3] == [28, 481, 41])
    assert magnitude <= 100_000 and "prune with --method magnitude (it needs " in err
    assert not (tmp_path / "m.npz").exists()
    code, out, _ = run(capsys, "model", "info", str(path), "--method", "scaled", "--json")
    assert code == 0 and json.loads(out)["channel_groups_heap_need"] == need
    code, out, _ = run(capsys, "model", "info", str(path), "--method", "scaled")
    assert f"{need:,} bytes from boot" in out and "prune8 run refuses it" in out
    code, out, _ = run(capsys, "model", "info", str(path), "--method", "scaled", "--board",
                       "esp32s3")
    assert code == 0 and "prune8 run refuses it" not in out


def test_model_info_says_when_no_channel_group_can_be_pruned(tmp_path, capsys):
    """A .tflite whose one group feeds the graph's output has nothing to prune: model
    info says so, rather than that the figure was never measured."""
    rng = np.random.default_rng(3)
    fc = Layer("fc", rng.integers(-127, 128, (4, 8)).astype(np.int8),
               quant={"bias": np.zeros(4, np.int32), "mult": np.int32(1 << 30),
                      "shift": np.int32(-8), "relu": np.int8(0), "in_zp": np.int32(-128),
                      "out_zp": np.int32(-128), "in_scale": np.float32(0.01),
                      "w_scale": np.float32(0.02), "out_scale": np.float32(0.03)})
    path = tmp_path / "one_fc.tflite"
    path.write_bytes(tflite_build.fc_chain({"fc": fc}))
    code, out, _ = run(capsys, "model", "info", str(path))
    assert code == 0 and "none to prune (no group above can be removed)" in out
    assert "not measured" not in out
    code, out, _ = run(capsys, "model", "info", str(path), "--json")
    assert json.loads(out)["channel_groups_heap_need"] is None


def test_mask_with_nm_steps_blocks_random(tmp_path, capsys):
    model = load_model(EXAMPLE)
    w1 = model["fc1"].weights
    out = tmp_path / "m.npz"
    assert run(capsys, "mask", EXAMPLE, "--method", "l2", "--nm", "2:4", "-o", str(out))[0] == 0
    m = {x.name: x for x in load_masks(out)}["fc1"]
    assert m.options.nm == (2, 4)
    assert m.words.tolist() == twin.nm_mask(twin.l2_scores(w1), 32, 64, 2, 4).tolist()

    assert run(capsys, "mask", EXAMPLE, "--method", "random", "--seed", "99", "--sparsity",
               "0.5", "--layer", "fc1", "-o", str(out))[0] == 0
    m = load_masks(out)[0]
    expected = twin.prune_mask(twin.random_scores(2048, 99), sparsity_bp=5000)
    assert m.options.seed == 99 and m.words.tolist() == expected.tolist()

    assert run(capsys, "mask", EXAMPLE, "--method", "blocks", "--block", "4x8", "--sparsity",
               "0.5", "--layer", "fc1", "-o", str(out))[0] == 0
    m = load_masks(out)[0]
    assert (m.unit, m.n, m.options.block) == ("block", 8 * 8, (4, 8))

    code, stdout, _ = run(capsys, "mask", EXAMPLE, "--method", "magnitude", "--sparsity",
                          "0.9", "--steps", "3", "--layer", "fc2", "--json")
    assert code == 0 and json.loads(stdout)["layers"][0]["pruned"] == 288  # 90% of 320


def test_an_nm_pattern_over_rows_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "m.npz"
    code, _, err = run(capsys, "mask", EXAMPLE, "--method", "rows", "--nm", "2:4", "-o",
                       str(out))
    assert code == 2 and not out.exists()
    assert err == "prune8 mask: error: an N:M pattern needs a per-weight scorer, not rows\n"


def test_gradual_magnitude_ends_at_the_final_sparsity_and_prunes_small_weights_first():
    from prune8_host.twin.reference import layer_mask
    layer = load_model(EXAMPLE)["fc1"]
    gradual = layer_mask(layer, "magnitude", sparsity_bp=7000, steps=4)
    one_shot = layer_mask(layer, "magnitude", sparsity_bp=7000)
    assert gradual.stats()["pruned"] == one_shot.stats()["pruned"] == 1433
    kept = np.abs(layer.weights.reshape(-1).astype(int))[gradual.keep()]
    pruned = np.abs(layer.weights.reshape(-1).astype(int))[~gradual.keep()]
    assert pruned.max() <= kept.min()


def test_report_and_schedule(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert run(capsys, "mask", EXAMPLE, "--method", "cols", "--sparsity", "0.5",
               "-o", str(out))[0] == 0
    code, stdout, _ = run(capsys, "report", str(out), "--json")
    r = json.loads(stdout)
    assert code == 0 and r["kind"] == "masks"
    assert r["weights_pruned"] == 32 * 32 + 10 * 16  # half the columns of each layer
    code, stdout, _ = run(capsys, "report", EXAMPLE, "--method", "magnitude", "--top", "2",
                          "--json")
    r = json.loads(stdout)
    fc1 = r["layers"][0]
    w = np.abs(load_model(EXAMPLE)["fc1"].weights.reshape(-1).astype(int))
    assert fc1["scores"]["max"] == w.max() and fc1["top"][0] == [int(np.argmax(w)), w.max()]
    code, stdout, _ = run(capsys, "schedule", "--steps", "10", "--final", "0.9", "--json")
    assert json.loads(stdout)["sparsity_bp"] == [0, 2439, 4392, 5913, 7056, 7875, 8424, 8757,
                                                 8928, 8991, 9000]


def test_every_command_has_a_one_line_help():
    from prune8_host.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    helps = {c.dest: c.help for c in sub._choices_actions}
    for name in ("score", "mask", "apply", "stats", "report", "schedule", "model", "demo",
                 "build", "boards", "flash"):
        assert helps.get(name) and "\n" not in helps[name], name


def test_pack_then_unpack_gives_the_pruned_model(tmp_path, capsys):
    masks, packed, back, pruned = (tmp_path / n for n in ("m.npz", "p.p8s", "u.npz", "a.npz"))
    assert run(capsys, "mask", EXAMPLE, "--method", "blocks", "--block", "2x2", "--sparsity",
               "0.75", "-o", str(masks))[0] == 0
    code, out, _ = run(capsys, "pack", EXAMPLE, str(masks), "-o", str(packed), "--json")
    r = json.loads(out)
    assert code == 0 and r["packed_bytes"] < r["dense_bytes"] == 2368
    assert run(capsys, "unpack", str(packed), "-o", str(back))[0] == 0
    assert run(capsys, "apply", EXAMPLE, str(masks), "-o", str(pruned))[0] == 0
    a, u = load_model(pruned), load_model(back)
    assert all((a[n].weights == u[n].weights).all() for n in ("fc1", "fc2"))


def test_an_interrupt_during_start_up_is_one_line(monkeypatch, capsys):
    from prune8_host import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["ls"]) == 130
    assert capsys.readouterr().err == "prune8: interrupted\n"


def test_every_argument_explains_itself():
    import argparse

    from prune8_host.cli import build_parser
    parser = build_parser()
    missing = []

    def walk(p, prog):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{prog} {name}")
            elif not action.help and not isinstance(action, argparse._HelpAction):
                missing.append(f"{prog}: {action.dest}")

    walk(parser, "prune8")
    assert not missing, missing


@pytest.mark.parametrize("argv", [["model", "info", "LONG"],
                                  ["report", "LONG", "--method", "magnitude"]])
def test_tables_stay_aligned_with_long_layer_names(tmp_path, capsys, argv):
    from prune8_host.files.npzio import save_npz
    path = tmp_path / "long.npz"
    name = "encoder.block3.attention.output_projection"
    save_npz(path, {name: np.ones((4, 8), np.int8), "fc": np.ones((2, 4), np.int8)})
    code, out, _ = run(capsys, *[str(path) if a == "LONG" else a for a in argv])
    assert code == 0
    head, *rows = [line for line in out.splitlines()  # the table, not the notes under it
                   if not line.startswith(("model:", "heap on "))]
    second = head.split()[1]
    column = head.index(second)  # where the second column starts, in every row
    for row in rows:
        assert row[column - 1] == " " and row[column] != " ", (head, row)


def test_steps_must_be_at_least_one_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "m.npz"
    code, _, err = run(capsys, "mask", EXAMPLE, "--method", "magnitude", "--sparsity", "0.5",
                       "--steps", "0", "-o", str(out))
    assert code == 2 and "steps must be an integer in 1..100000" in err and not out.exists()
    layer = load_model(EXAMPLE)["fc1"]
    with pytest.raises(twin.errors.ScheduleError, match=r"steps must be an integer in 0\.\."):
        twin_reference.layer_mask(layer, "magnitude", sparsity_bp=5000, steps=-1)


def test_the_command_lines_options_are_one_object_down_to_the_board_call():
    """argparse -> PruneOptions (block and N:M as pairs) -> the one line the board runs."""
    from prune8_host.cli import build_parser
    from prune8_host.commands.options import prune_options
    from prune8_host.device import calls
    args = build_parser().parse_args(["prune", "--method", "blocks", "--block", "2x4",
                                      "--sparsity", "0.25", "--tie", "strict", "--steps", "3"])
    options = prune_options(args)
    assert options == PruneOptions("blocks", sparsity_bp=2500, tie="strict", block=(2, 4),
                                   steps=3)
    assert calls.prune(options, ["fc1"]) == (
        "from prune8 import prune_model;prune_model.prune(method='blocks',sparsity_bp=2500,"
        "tie='strict',min_keep=1,min_score=0,seed=0,block=(2, 4),nm=None,steps=3,"
        "scope='layer',layers=['fc1'])")
    nm = prune_options(build_parser().parse_args(["prune", "--method", "l2", "--nm", "2:4"]))
    assert (nm.nm, nm.sparsity_bp, nm.block) == ((2, 4), 0, None)
