"""Channel groups pruned on the virtual board (MicroPython): `prune8 run MODEL.tflite
--structured channels -o SMALL.tflite` on micro_speech, whose FC layer (4 x 4000) is
bigger than the Pruner and is read from flash a tile at a time, writes the very model
that `prune8 mask --structured channels` and `prune8 shrink` make on the host, verified
bit for bit, within the heap budget; a refused call changes nothing on the board.
CPython runs the same firmware code in tests/firmware/test_group_prune.py."""

from __future__ import annotations

import subprocess
import sys

import pytest

from prune8.formats import MASKS_PATH, MODEL_PATH
from prune8.groups_format import GROUPS_PATH
from prune8_eval import zoo
from prune8_host import heap_law
from prune8_host.boards import load_board
from prune8_host.device import calls
from prune8_host.device.session import BoardSession
from prune8_host.device.transfer import pull_file, put_file
from prune8_host.files.graph import groups_of
from prune8_host.files.model import load_model
from prune8_host.twin.layer import PruneOptions
from support.cli import board_cli as cli
from support.cli import small_budget_profile

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def port(deployed_vboard):
    return deployed_vboard.port


@pytest.fixture(scope="module")
def micro_speech(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "micro_speech.tflite"
    path.write_bytes(zoo.micro_speech())
    return path


def host_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "prune8_host.cli", *args], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def board_file(port, path):
    with BoardSession(port) as s:
        return pull_file(s, path, quiet=True)


def test_run_structured_channels_writes_what_mask_and_shrink_write(port, micro_speech,
                                                                   tmp_path):
    small = tmp_path / "small.tflite"
    code, report = cli(port, "run", str(micro_speech), "--structured", "channels",
                       "--sparsity", "0.5", "--min-keep", "2", "--recover", "none",
                       "-o", str(small))
    assert code == 0 and report["verified"], report
    assert [(c["layer"], c["unit"], c["pruned"]) for c in report["layers"]] == \
        [("conv/weights", "row", 4)]
    assert report["prune"]["groups"] == [4]
    assert report["small_model"]["channels_removed"] == 4
    assert report["small_model"]["against_masked"]["max_int8"] == 0
    assert 0 < report["prune"]["heap_peak"] <= load_board("esp32").heap_bytes
    masks = tmp_path / "m.npz"
    host_cli("mask", str(micro_speech), "--structured", "channels", "--sparsity", "0.5",
             "--min-keep", "2", "-o", str(masks))
    host_cli("shrink", str(micro_speech), str(masks), "--recover", "none", "-o",
             str(tmp_path / "host.tflite"))
    assert small.read_bytes() == (tmp_path / "host.tflite").read_bytes()
    code, checked = cli(port, "verify", str(micro_speech))
    assert code == 0 and checked["verified"], checked


def test_a_refused_group_prune_changes_nothing_on_the_board(port, micro_speech, tmp_path):
    code, report = cli(port, "run", str(micro_speech), "--structured", "channels",
                       "--sparsity", "0.25", "-o", str(tmp_path / "m.npz"))
    assert code == 0 and report["verified"], report
    masks, groups = board_file(port, MASKS_PATH), board_file(port, GROUPS_PATH)
    # a scorer of whole rows has no per-weight scores to sum: refused before the board
    code, err = cli(port, "run", str(micro_speech), "--structured", "channels",
                    "--method", "rows", "--sparsity", "0.5", "-o", str(tmp_path / "x.npz"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "method" in err, err
    # the board itself refuses a damaged groups file, with the same masks kept
    with BoardSession(port) as s:
        put_file(s, GROUPS_PATH, groups[:-2], quiet=True)  # cut short
        result = s.call_json(calls.prune_groups(PruneOptions("scaled", 5000)),
                             timeout=300)
        assert result["ok"] is False and "truncated" in result["error"], result
        put_file(s, GROUPS_PATH, groups, quiet=True)
    assert board_file(port, MASKS_PATH) == masks


def test_a_group_prune_over_the_budget_is_refused_before_anything_is_sent(port, micro_speech,
                                                                         tmp_path):
    """What the measured law says a group prune needs is checked before the push: one
    line naming the groups, the need and the budget; the board is left as it was.
    --ignore-heap sends it, and the board's reported peak is what the law was fitted to
    (the law covers it, at most its slack above)."""
    model = load_model(micro_speech)
    groups = [g for g in groups_of(model.tflite_model) if g.prunable]
    fig = heap_law.figures(load_board("esp32"))
    need = fig.group_need(*heap_law.group_shapes(model, groups), "scaled")
    slack = fig.groups["scaled"]["slack"]
    assert need <= load_board("esp32").heap_bytes   # micro_speech's groups fit an esp32
    tight = small_budget_profile(tmp_path, need - 1)
    assert cli(port, "push", "examples/digits_mlp.npz")[0] == 0  # another model held
    before = board_file(port, MODEL_PATH)
    masks = tmp_path / "m.npz"
    code, err = cli(port, "run", str(micro_speech), "--structured", "channels",
                    "--sparsity", "0.3", "--board", tight, "-o", str(masks))
    assert code == 2 and err.count("\n") == 1, err
    assert f"need {need:,} bytes of heap from boot to prune with scaled" in err
    assert f"over its {need - 1:,}-byte budget" in err and "--ignore-heap" in err
    assert board_file(port, MODEL_PATH) == before and not masks.exists()  # nothing sent
    code, report = cli(port, "run", str(micro_speech), "--structured", "channels",
                       "--sparsity", "0.3", "--board", tight, "--ignore-heap",
                       "-o", str(masks))
    assert code == 0 and report["verified"] and masks.exists()
    assert need - slack <= report["prune"]["heap_peak"] <= need
