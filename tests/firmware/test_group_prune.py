"""The board's channel-group prune (prune8.channels, run on CPython with its store in a
temp dir) against the twin (prune8_host.twin.channels.group_masks), bit for bit: every
zoo model and examples/digits_cnn.tflite at several sparsities, min_keep values, both
tie rules and the per-weight scorers a .tflite can use; the same errors as the twin
for bad options, and a failed call changes nothing. The virtual board runs the same
code on MicroPython in tests/board/test_board_groups.py."""

import json
import subprocess
import sys

import numpy as np
import pytest

from prune8.groups_format import GROUPS_MAGIC
from prune8_eval import zoo
from prune8_host.device import calls
from prune8_host.device.link import HostLink
from prune8_host.device.verify import check_masks
from prune8_host.files.boardstore import groups_file, member_table, parse_masks
from prune8_host.files.graph import groups_of
from prune8_host.files.model import load_model
from prune8_host.twin.channels import Member, group_masks
from prune8_host.twin.layer import PruneOptions
from support.board_on_cpython import PREAMBLE, PipePort, push

MODELS = [*zoo.MODELS, "digits_cnn"]


def _model(name, tmp_path_factory):
    if name == "digits_cnn":
        return load_model("examples/digits_cnn.tflite")
    path = tmp_path_factory.mktemp("zoo") / f"{name}.tflite"
    path.write_bytes(zoo.MODELS[name]())
    return load_model(path)


@pytest.fixture(scope="module", params=MODELS)
def board(request, tmp_path_factory):
    """(store root, model, groups): the model pushed to a board on CPython, its
    prunable groups in the board's groups.bin."""
    model = _model(request.param, tmp_path_factory)
    root = str(tmp_path_factory.mktemp("board") / "prune8")
    p = subprocess.Popen([sys.executable, "-c", PREAMBLE.format(root=root) + "push.push()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    model_id = push(HostLink(PipePort(p)), list(model.values()))
    assert p.wait(30) == 0
    groups = [(g.channels, g.members) for g in groups_of(model.tflite_model) if g.prunable]
    with open(root + "/groups.bin", "wb") as f:
        f.write(groups_file(model_id, groups, model))
    return root, model, groups


def on_board(root, call):
    out = subprocess.run([sys.executable, "-c", PREAMBLE.format(root=root) + call],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def board_masks(root):
    with open(root + "/masks.bin", "rb") as f:
        return parse_masks(f.read())[1]


CASES = [
    ("scaled", 3000, "exact", 1, 0),
    ("scaled", 5000, "strict", 4, 0),
    ("scaled", 10000, "exact", 0, 0),
    ("magnitude", 7000, "exact", 2, 0),
    ("l2", 2500, "strict", 1, 0),
    ("mincut", 5000, "exact", 3, 0),
    ("random", 6000, "exact", 1, 77),
]


@pytest.mark.parametrize("method, bp, tie, min_keep, seed", CASES,
                         ids=["-".join(map(str, c)) for c in CASES])
def test_group_masks_equal_the_twins(board, method, bp, tie, min_keep, seed):
    root, model, groups = board
    options = PruneOptions(method, sparsity_bp=bp, tie=tie, min_keep=min_keep, seed=seed)
    result = on_board(root, calls.prune_groups(options))
    assert result["ok"], result
    want, keeps = group_masks(model, groups, options)
    got = board_masks(root)
    assert [m.name for m in got] == list(want)
    for m in got:
        assert m.options == want[m.name].options, m.name
        assert m.words.tolist() == want[m.name].words.tolist(), (m.name, method, bp)
    assert result["groups"] == [int(k.sum()) for k in keeps]
    assert [(r["layer"], r["pruned"]) for r in result["layers"]] == \
        [(m.name, m.stats()["pruned"]) for m in want.values()]
    checks = check_masks(model, got)
    assert all(c.verified for c in checks), [c.note for c in checks]


def test_every_group_keeps_min_keep_channels(board):
    """min_keep bounds every group, and a group smaller than it is kept whole."""
    root, model, groups = board
    result = on_board(root, calls.prune_groups(PruneOptions("scaled", sparsity_bp=10000,
                                                            min_keep=12)))
    assert result["ok"], result
    assert result["groups"] == [min(12, channels) for channels, _ in groups]


def test_a_small_tile_gives_the_same_masks(board):
    """Tiles of 37 weights end inside rows and column periods."""
    root, model, groups = board
    options = PruneOptions("scaled", sparsity_bp=4000)
    assert on_board(root, calls.prune_groups(options))["ok"]
    whole = [m.words.tolist() for m in board_masks(root)]
    assert on_board(root, calls.prune_groups(options, tile=37))["ok"]
    assert [m.words.tolist() for m in board_masks(root)] == whole


BAD = [
    ({"method": "rows"}, "method"),          # a scorer of rows, not of weights
    ({"method": "blocks"}, "method"),
    ({"method": "bogus"}, "method"),
    ({"tie": "loose"}, "tie"),
    ({"sparsity_bp": 10001}, "sparsity"),
    ({"min_keep": -1}, "min_keep"),
    ({"seed": -3}, "seed"),
    ({"method": "gradient"}, "activations"),  # a .tflite holds none
    ({"method": "wanda"}, "calibration"),
]


@pytest.mark.parametrize("change, fragment", BAD, ids=[b[1] + "-" + str(i)
                                                       for i, b in enumerate(BAD)])
def test_bad_options_raise_the_twins_error_and_change_nothing(board, change, fragment):
    root, model, groups = board
    assert on_board(root, calls.prune_groups(PruneOptions("scaled", sparsity_bp=5000)))["ok"]
    before = open(root + "/masks.bin", "rb").read()
    fields = {"method": "scaled", "sparsity_bp": 5000, **change}
    options = PruneOptions(**fields)
    with pytest.raises(Exception) as twin_error:
        group_masks(model, groups, options)
    result = on_board(root, calls.prune_groups(options))
    assert result == {"ok": False, "type": type(twin_error.value).__name__,
                      "error": str(twin_error.value)}
    assert fragment in result["error"]
    assert open(root + "/masks.bin", "rb").read() == before


def test_a_damaged_or_stale_groups_file_is_refused_and_changes_nothing(board):
    root, model, groups = board
    call = calls.prune_groups(PruneOptions("scaled", sparsity_bp=5000))
    assert on_board(root, call)["ok"]
    before = open(root + "/masks.bin", "rb").read()
    good = open(root + "/groups.bin", "rb").read()
    past = bytearray(good)
    past[-2:] = (32000).to_bytes(2, "little")  # the last table entry: past the channels
    cases = [(good[:4] + bytes([good[4] ^ 1]) + good[5:], "made for another model"),
             (b"XXXX" + good[4:], "not a prune8 channel groups file"),
             (good[:-3], "truncated"),
             (bytes(past), "damaged (channel 32000 in a group of")]
    try:
        for data, fragment in cases:
            with open(root + "/groups.bin", "wb") as f:
                f.write(data)
            result = on_board(root, call)
            assert not result["ok"] and result["type"] == "StoreError", (fragment, result)
            assert fragment in result["error"], result
            assert open(root + "/masks.bin", "rb").read() == before, fragment
    finally:
        with open(root + "/groups.bin", "wb") as f:
            f.write(good)


def test_member_tables_are_periodic_and_say_what_the_index_says():
    # micro_speech's FC reads each of 8 channels in 500 columns, every 8th: one table of 8
    m = Member("fc", "cols", np.array([[c for c in range(4000) if c % 8 == ch]
                                       for ch in range(8)]))
    assert member_table(m, 4, 4000, 8).tolist() == list(range(8))
    rows = Member("conv", "rows", np.array([2, -1, 0]))
    assert member_table(rows, 4, 9, 3).tolist() == [2, -1, 0, -1]
    assert GROUPS_MAGIC == groups_file(0, [], {})[:4]
    with pytest.raises(Exception, match="two channels"):
        member_table(Member("fc", "cols", np.array([[0, 1], [1, -1]])), 2, 2, 2)


def test_channel_sums_saturate_at_max_small_as_the_twins_cap():
    """A channel's sum is capped at MAX_SMALL wherever it crosses it, as the twin caps
    its exact sum: the board's partial sums never pass a small int."""
    from array import array

    from prune8 import channels

    cap = 2**30 - 1
    sc = array("h", [32767] * 8)
    totals = array("i", [cap - 40000, cap - 5, 0])
    channels.add_cols(sc, 8, 0, array("h", [0, 1, 2, -1]), 4, totals)
    assert list(totals) == [cap, cap, 2 * 32767]
    totals = array("i", [cap - 100, 7])
    channels.add_rows(sc, 8, 0, 2, 4, array("h", [0, 1]), 2, totals)  # rows 0 and 1
    assert list(totals) == [cap, 7 + 4 * 32767]
