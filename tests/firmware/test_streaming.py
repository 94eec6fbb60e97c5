"""Layers bigger than RAM, pruned and run tile by tile from flash (prune8.stream,
prune8.stored_dense, the streamed prune8.sparse), on CPython: every mask equals the
twin's on the whole layer, for layers of 2049, 16,000 and 65,536 weights and tiles that split
rows, N:M groups and blocks at awkward places; the streamed kernels' outputs equal the
in-RAM kernels'. The virtual board runs the same code on MicroPython in
tests/board/test_board_stream.py."""

import json
import subprocess
import sys
from array import array

import numpy as np
import pytest

from prune8 import dense, errors, store
from prune8 import sparse as board_sparse
from prune8.stored_dense import StoredDense
from prune8_host.device.link import HostLink
from prune8_host.files import packed
from prune8_host.files.boardstore import parse_masks
from prune8_host.twin.layer import Layer
from prune8_host.twin.reference import apply_layer_mask, layer_mask
from support.board_on_cpython import PREAMBLE, PipePort, push, watch_writes, writes_behind
from support.models import big_layers


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("board") / "prune8")
    model = big_layers()
    p = subprocess.Popen([sys.executable, "-c", PREAMBLE.format(root=root) + "push.push()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    push(HostLink(PipePort(p)), model)
    assert p.wait(30) == 0
    return root, {layer.name: layer for layer in model}


def board_prune(root, layer, method, bp, **kwargs):
    call = f"prune_model.prune({method!r}, {bp}, layers=[{layer!r}], **{kwargs!r})"
    out = subprocess.run([sys.executable, "-c", PREAMBLE.format(root=root) + call],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    if not result["ok"]:
        return result
    with open(root + "/masks.bin", "rb") as f:
        return result, {m.name: m for m in parse_masks(f.read())[1]}


def twin_mask(layer, method, bp, **kwargs):
    kwargs.pop("tile", None)
    return layer_mask(layer, method, sparsity_bp=bp, **kwargs)


# (method, bp, options): every scorer, both ties, min_keep, min_score, the per-channel
# scope, N:M, blocks and gradual steps


CASES = [
    ("magnitude", 5000, {}),
    ("magnitude", 5000, {"tie": "strict", "min_keep": 3}),
    ("l2", 7000, {"min_score": 900}),
    ("gradient", 5000, {}),
    ("wanda", 6000, {}),
    ("mincut", 5000, {}),
    ("random", 5000, {"seed": 4242}),
    ("scaled", 5000, {}),
    ("magnitude", 3000, {"scope": "channel"}),
    ("mincut", 5000, {"scope": "channel", "tie": "strict"}),
    ("rows", 5000, {}),
    ("cols", 2500, {"min_keep": 0}),
    ("magnitude", 0, {"nm": (2, 4)}),
    ("random", 0, {"nm": (3, 8), "seed": 9}),
    ("magnitude", 8000, {"steps": 3}),
    ("rows", 6000, {"steps": 2}),
]
SIZES = {"odd": 2049, "kws": 16000, "conv": 65536}
# tiles: the Pruner's own (2048), and ones that split rows, groups and block rows
TILES = [None, 1001, 77]


def applicable(name, method, opts):
    if name == "conv" and method in ("gradient", "wanda"):
        return False  # no activations or calibration samples stored for it
    if name == "odd" and method == "wanda":
        return False
    if "nm" in opts and 683 % opts["nm"][1] and name == "odd":
        return False
    return True


PARAMS = [(name, tile, *case) for name in SIZES for tile in TILES for case in CASES
          if applicable(name, case[0], case[2])
          and (tile in (None, 77) or name != "conv")]


@pytest.mark.parametrize("name, tile, method, bp, opts", PARAMS, ids=[
    f"{n}-{t}-{m}-{bp}-{'-'.join(map(str, o.values()))}" for n, t, m, bp, o in PARAMS])
def test_streamed_masks_equal_the_twins(stored, name, tile, method, bp, opts):
    root, model = stored
    result, masks = board_prune(root, name, method, bp, tile=tile, **opts)
    assert result["layers"] == [{"layer": name, "n": masks[name].n, "streamed": True,
                                 "pruned": int(masks[name].n - masks[name].keep().sum())}]
    expected = twin_mask(model[name], method, bp, **opts)
    assert masks[name].words.tolist() == expected.words.tolist()


@pytest.mark.parametrize("name, block", [("odd", (3, 1)), ("odd", (1, 1)), ("kws", (2, 4)),
                                         ("kws", (4, 1)), ("conv", (128, 8))])
@pytest.mark.parametrize("tile", [None, 333, 50])
def test_streamed_blocks_equal_the_twins(stored, name, block, tile):
    """Block sums accumulate over tiles that end inside block rows; more blocks than
    the Pruner holds (1x1 over 3 x 683: 2049, 4x1 over 4 x 4000) are no problem."""
    root, model = stored
    result, masks = board_prune(root, name, "blocks", 5000, block=block, tile=tile)
    expected = twin_mask(model[name], "blocks", 5000, block=block)
    assert masks[name].words.tolist() == expected.words.tolist()


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A stored 32 x 64 layer (it fits the Pruner), without activations or calibration
    samples."""
    root = str(tmp_path_factory.mktemp("board") / "prune8")
    layer = Layer("small", np.random.default_rng(1).integers(-128, 128, (32, 64)).astype(
        np.int8))
    p = subprocess.Popen([sys.executable, "-c", PREAMBLE.format(root=root) + "push.push()"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    push(HostLink(PipePort(p)), [layer])
    assert p.wait(10) == 0
    return root, layer


def test_a_layer_that_fits_is_pruned_in_ram_unless_a_tile_is_asked_for(small):
    root, _ = small
    in_ram, masks = board_prune(root, "small", "mincut", 5000)
    streamed, again = board_prune(root, "small", "mincut", 5000, tile=100)
    assert not in_ram["layers"][0]["streamed"] and streamed["layers"][0]["streamed"]
    assert masks["small"].words.tolist() == again["small"].words.tolist()


@pytest.mark.parametrize("tile", [None, 100])  # in RAM, streamed
@pytest.mark.parametrize("method", ["gradient", "wanda", "blocks"])
def test_a_layer_without_what_its_scorer_needs_gets_the_twins_error(small, method, tile):
    """No activations for the gradient proxy, no calibration samples for Wanda, no block
    size for blocks: the board's prune (in RAM or streamed) and the twin raise the same
    error (prune8.scorers' needs, prune8.errors' builders)."""
    root, layer = small
    result = board_prune(root, "small", method, 5000, tile=tile)
    with pytest.raises(errors.Prune8Error) as twin:
        layer_mask(layer, method, sparsity_bp=5000)
    assert result == {"ok": False, "error": str(twin.value), "type": type(twin.value).__name__}


def test_streamed_errors_are_the_in_ram_errors(stored):
    """Bad options fail the same way streamed or not, and leave the masks as they were."""
    root, _ = stored
    board_prune(root, "conv", "magnitude", 5000)
    before = open(root + "/masks.bin", "rb").read()
    for kwargs, error in [
        ({"min_keep": 65537}, errors.min_keep(65537, 65536)),
        ({"scope": "channel", "min_keep": 300}, errors.min_keep(300, 256)),
        ({"tie": "loose"}, errors.option("tie", "loose", ("exact", "strict"))),
        ({"nm": (2, 3)}, errors.nm_cols(256, 3)),
        ({"nm": (5, 4)}, errors.nm_values(5, 4)),
    ]:
        result = board_prune(root, "conv", "magnitude", 5000, **kwargs)
        assert result == {"ok": False, "error": str(error), "type": type(error).__name__}
    result = board_prune(root, "conv", "rows", 5000, scope="channel")
    assert result["error"] == str(errors.scope_weights())
    result = board_prune(root, "conv", "blocks", 5000, block=(3, 3))
    assert result["error"] == str(errors.block_fit("rows", 256, 3, "br"))
    result = board_prune(root, "conv", "blocks", 5000, block=(256, 1))  # > a record's u8
    assert result["error"] == str(errors.block_values(256, 1))
    assert open(root + "/masks.bin", "rb").read() == before
    assert sorted(p.name for p in __import__("pathlib").Path(root).iterdir()) == \
        ["masks.bin", "model.bin"]  # no scratch file is left behind



def test_a_layer_prune_keeps_the_other_layers_masks_byte_for_byte(stored):
    """Pruning one layer copies the masks of the others into the new masks.bin through
    the Pruner's weight buffer, a buffer at a time: conv's 8 KB mask is four of them."""
    root, model = stored
    board_prune(root, "conv", "magnitude", 5000)
    _, before = board_prune(root, "kws", "l2", 3000)
    result, after = board_prune(root, "odd", "random", 5000, seed=7)
    assert result["ok"] and sorted(after) == ["conv", "kws", "odd"]
    for name in ("conv", "kws"):
        assert after[name].options == before[name].options
        assert after[name].words.tobytes() == before[name].words.tobytes(), name
    assert after["conv"].words.tolist() == \
        twin_mask(model["conv"], "magnitude", 5000).words.tolist()

# -- inference from flash ----------------------------------------------------------------

def test_stored_dense_equals_the_dense_kernel_under_every_mask_unit(stored, tmp_path):
    """StoredDense streams the weights in tiles (here 777: tiles end inside rows) and
    zeroes what each mask prunes as it reads them."""
    root, model = stored
    mid, index = store.read_model_index(root + "/model.bin")
    info = {i.name: i for i in index}["conv"]
    layer = model["conv"]
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (4, 256)).astype(np.int8)
    for method, kwargs in [("magnitude", {}), ("rows", {}), ("cols", {}),
                           ("blocks", {"block": (4, 8)})]:
        _, masks = board_prune(root, "conv", method, 5000, **kwargs)
        _, mask_index = store.read_masks_index(root + "/masks.bin")
        minfo = {m.name: m for m in mask_index}["conv"]
        fd = StoredDense(info, root + "/model.bin", 1 << 30, -8, minfo, root + "/masks.bin",
                         tile=777)
        ref = dense.Dense(256, 256, 1 << 30, -8, -3, 5)
        pruned = apply_layer_mask(layer.weights, masks["conv"])
        bias = layer.quant["bias"].copy()
        if method == "rows":  # a pruned neuron outputs its zero point (masked_model)
            bias[~masks["conv"].keep()] = 0
        ref.load(pruned.reshape(-1).tobytes(), bias.tolist())
        try:
            for xi in x:
                got, want = array("b", bytes(256)), array("b", bytes(256))
                fd.forward(bytearray(xi.tobytes()), got)
                ref.forward(bytearray(xi.tobytes()), want)
                assert got == want, method
        finally:
            fd.close()


@pytest.mark.parametrize("shape", [(40, 300), (300, 9)])
@pytest.mark.parametrize("chunk", [64, 37])
def test_streamed_sparse_formats_equal_the_held_ones(tmp_path, shape, chunk):
    """Every packed format run from the file `chunk` bytes at a time (chunks end inside
    rows, COO entries and blocks) gives the held payload's outputs."""
    rng = np.random.default_rng(shape[0])
    w = rng.integers(-128, 128, shape).astype(np.int8)
    w[rng.random(shape) < 0.7] = 0
    w[:, :3] = 0
    rows, cols = shape
    bias = rng.integers(-5000, 5000, rows).tolist()
    x = rng.integers(-128, 128, (3, cols)).astype(np.int8)
    for p in packed.candidates(w):
        path = tmp_path / f"{p.format}-{p.br}x{p.bc}.bin"
        path.write_bytes(b"pad" + p.payload)
        args = (p.format, rows, cols, p.nnz, p.br, p.bc)
        q = (1518500250, -9, 3, -2, True, bias)
        held = board_sparse.SparseDense(*args, p.payload, *q)
        f = open(path, "rb")
        streamed = board_sparse.SparseDense(*args, None, *q, f, 3, len(p.payload), chunk)
        try:
            for xi in x:
                a, b = array("b", bytes(rows)), array("b", bytes(rows))
                held.forward(bytearray(xi.tobytes()), a)
                streamed.forward(bytearray(xi.tobytes()), b)
                assert a == b, p.format
        finally:
            streamed.close()


@pytest.mark.parametrize("method, kwargs", [("magnitude", {}), ("rows", {}),
                                            ("blocks", {"block": (4, 8)})])
def test_apply_writes_the_pruned_model_tile_by_tile(stored, method, kwargs):
    """apply_model.apply() writes model.bin's layers with their masks applied (a pruned
    row's bias zeroed too): the records and bytes the twin's masked model would give,
    front to back (no write behind the file's end: LittleFS would copy the rest)."""
    from prune8_host.files.records import layer_record
    from prune8_host.twin.reference import masked_model
    root, model = stored
    _, masks = board_prune(root, "conv", method, 5000, **kwargs)
    for name in ("odd", "kws"):
        _, more = board_prune(root, name, "magnitude", 3000)
        masks[name] = more[name]
    run = subprocess.run([sys.executable, "-c", PREAMBLE.format(root=root)
                          + "from prune8 import apply_model, store\n"
                          + watch_writes("store", "pruned.bin.tmp")
                          + "apply_model.apply()\nreport_writes()\n"],
                         capture_output=True, text=True, check=True)
    out = run.stdout
    assert json.loads(out.strip().splitlines()[-1])["ok"], out
    assert writes_behind(run.stderr) == []
    want = masked_model(model, list(masks.values()))
    mid, index = store.read_model_index(root + "/pruned.bin")
    data = open(root + "/pruned.bin", "rb").read()
    for info in index:
        record = layer_record(want[info.name])
        assert data[info.offset:info.offset + info.data_len] == record.stored
        assert info.crc == record.crc
    assert mid == store.model_id(index)
