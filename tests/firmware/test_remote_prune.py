"""The board's prune command (prune8.prune_model.prune, run on CPython with its store in a
temp dir) against the host reference (prune8_host.twin.reference.layer_mask), for every method,
N:M patterns, block sizes and gradual steps. The virtual board runs the same code on
MicroPython in tests/board/test_board_transfer.py."""

import json
import subprocess
import sys

import pytest

from prune8 import scorers, tiles
from prune8.formats import SCORERS
from prune8_host.device import calls
from prune8_host.device.link import HostLink
from prune8_host.device.verify import check_masks
from prune8_host.files.boardstore import parse_masks
from prune8_host.files.masks import load_masks, save_masks
from prune8_host.files.model import load_model
from prune8_host.twin import scorers as twin_scorers
from prune8_host.twin.layer import PruneOptions
from prune8_host.twin.reference import layer_mask, mask_for
from support.board_on_cpython import PREAMBLE, PipePort, push

EXAMPLE = "examples/example_model.npz"


@pytest.fixture(scope="module")
def stored_model(tmp_path_factory, request):
    root = str(tmp_path_factory.mktemp("board") / "prune8")
    model = load_model(request.config.rootpath / EXAMPLE)
    p = subprocess.Popen([sys.executable, "-c", PREAMBLE.format(root=root) + "push.push()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    push(HostLink(PipePort(p)), list(model.values()))
    assert p.wait(10) == 0
    return root, model


def board_prune(root, *args, **kwargs):
    return board_masks(root, f"prune_model.prune(*{args!r}, **{kwargs!r})")


def board_masks(root, call):
    """Run `call` on the board's code (CPython) and read back the masks.bin it wrote."""
    out = subprocess.run([sys.executable, "-c", PREAMBLE.format(root=root) + call],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"], result
    with open(root + "/masks.bin", "rb") as f:
        return parse_masks(f.read())[1]


CASES = [
    ("magnitude", 5000, {}),
    ("l2", 3000, {"tie": "strict", "min_keep": 4}),
    ("gradient", 7500, {"min_score": 3}),
    ("wanda", 5000, {}),
    ("mincut", 6000, {}),
    ("random", 5000, {"seed": 4242}),
    ("rows", 2500, {}),
    ("cols", 5000, {"min_keep": 0}),
    ("blocks", 5000, {"block": (2, 2)}),
    ("magnitude", 0, {"nm": (2, 4)}),
    ("wanda", 0, {"nm": (1, 4)}),
    ("magnitude", 8000, {"steps": 4}),
    ("mincut", 7000, {"steps": 3}),
    ("rows", 6000, {"steps": 3}),
    ("blocks", 5000, {"block": (2, 4), "steps": 2}),
]


@pytest.mark.parametrize("method, bp, opts", CASES,
                         ids=[f"{m}-{bp}-{'-'.join(map(str, o))}" for m, bp, o in CASES])
def test_board_prune_equals_the_reference(stored_model, tmp_path, method, bp, opts):
    """The board's prune, called as the host calls it (device.calls.prune), makes the
    twin's masks; each comes back carrying the very PruneOptions it was called with, and
    keeps them through a masks file."""
    root, model = stored_model
    options = PruneOptions(method, sparsity_bp=bp, **opts)
    masks = board_masks(root, calls.prune(options))
    assert [m.name for m in masks] == list(model)
    for m in masks:
        assert m.options == options, m.name
        assert m.words.tolist() == mask_for(model[m.name], options).words.tolist(), m.name
    checks = check_masks(model, masks)
    assert all(c.verified for c in checks), [c.note for c in checks]
    save_masks(tmp_path / "m.npz", masks)
    assert [m.options for m in load_masks(tmp_path / "m.npz")] == [options] * len(masks)


def test_the_scorer_table_covers_every_stored_scorer_with_the_twins_unit():
    """masks.bin stores a scorer by its index in formats.SCORERS; the board's table has
    an entry for each, whose mask unit is the twin's."""
    names = {tiles.WEIGHT: "weight", tiles.ROW: "row", tiles.COL: "col", tiles.BLOCK: "block"}
    assert sorted(scorers.TABLE) == sorted(SCORERS)
    assert {m: names[scorers.unit(m)] for m in SCORERS} == \
        {m: twin_scorers.find(m).unit for m in SCORERS}


def test_prune_one_layer_keeps_the_other_masks(stored_model):
    root, model = stored_model
    board_prune(root, "magnitude", 5000)
    masks = board_prune(root, "rows", 2500, "exact", 1, 0, ["fc2"])
    by_name = {m.name: m for m in masks}
    assert by_name["fc1"].method == "magnitude" and by_name["fc2"].method == "rows"


def test_the_board_refuses_a_bad_step_count_before_writing(stored_model):
    root, _ = stored_model
    board_prune(root, "magnitude", 5000)
    before = open(root + "/masks.bin", "rb").read()
    call = "prune_model.prune('magnitude', 5000, steps=-1)"
    out = subprocess.run([sys.executable, "-c", PREAMBLE.format(root=root) + call],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"ok": False, "type": "ScheduleError", "error":
                      "steps must be an integer in 0..100000 (0: prune in one shot); got -1"}
    assert open(root + "/masks.bin", "rb").read() == before


@pytest.mark.parametrize("method, kwargs", [
    ("bogus", {"steps": -1, "scope": "row"}),   # the method first, then steps, then scope
    ("magnitude", {"steps": -1, "scope": "row"}),
    ("magnitude", {"scope": "row"}),
])
def test_bad_options_get_the_twins_error_in_the_twins_order(stored_model, method, kwargs):
    root, model = stored_model
    call = f"prune_model.prune({method!r}, 5000, **{kwargs!r})"
    out = subprocess.run([sys.executable, "-c", PREAMBLE.format(root=root) + call],
                         capture_output=True, text=True, check=True).stdout
    board = json.loads(out.strip().splitlines()[-1])
    with pytest.raises(Exception) as twin:
        layer_mask(next(iter(model.values())), method, sparsity_bp=5000, **kwargs)
    assert (board["type"], board["error"]) == (type(twin.value).__name__, str(twin.value))
