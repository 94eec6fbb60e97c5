"""The scorer table (twin/scorers.py) is what the host scores layers with: every scorer
masks a layer through it with one entry per unit of its mask, a layer that lacks what a
scorer needs is refused in one line that names what to add, and where the board refuses
a call the twin raises the board's error, class and message."""

from dataclasses import replace

import numpy as np
import pytest

import prune8
from prune8 import errors
from prune8.formats import SCORERS
from prune8_host.errors import ModelError
from prune8_host.twin import scorers
from prune8_host.twin.layer import Layer
from prune8_host.twin.reference import layer_mask, layer_scores

RNG = np.random.default_rng(19)
W = RNG.integers(-128, 128, (4, 8)).astype(np.int8)
# a 4 x 8 layer with everything a scorer may need: activations (one per column),
# calibration samples and per-row weight scales
FULL = Layer("fc", W, activations=RNG.integers(-128, 128, 8).astype(np.int8),
             calib=RNG.integers(-128, 128, (3, 8)).astype(np.int8),
             quant={"w_scale": np.array([0.1, 0.2, 0.05, 0.3], np.float32)})
ENTRIES = {"weight": 32, "row": 4, "col": 8, "block": 4}  # blocks of 2 x 4


@pytest.mark.parametrize("scorer", scorers.TABLE, ids=lambda s: s.name)
def test_every_scorer_masks_half_of_its_units(scorer):
    m = layer_mask(FULL, scorer.name, sparsity_bp=5000, seed=3, block=(2, 4))
    assert (m.method, m.unit, m.n) == (scorer.name, scorer.unit, ENTRIES[scorer.unit])
    assert m.stats()["pruned"] == m.n // 2


def test_a_flat_layer_is_one_row_for_the_scorers_that_need_no_shape():
    flat = Layer("flat", W.reshape(-1), activations=W.reshape(-1))  # one per weight
    for name in ("magnitude", "l2", "random", "gradient"):
        m = layer_mask(flat, name, sparsity_bp=5000)
        assert (m.rows, m.cols, m.n) == (1, 32, 32), name


@pytest.mark.parametrize("method, layer, error, message", [
    # the board's errors (prune8.errors), the same class and text on both sides
    ("gradient", replace(FULL, activations=None), prune8.EmptyInputError,
     "layer 'fc' has no activations for the gradient proxy: add fc.act to the model"),
    ("wanda", replace(FULL, calib=None), prune8.EmptyInputError,
     "layer 'fc' has no calibration samples for Wanda: add fc.calib (samples x 8, int8) to "
     "the model"),
    ("blocks", FULL, prune8.PatternError, "method blocks needs a block size"),
    ("mincut", Layer("flat", W.reshape(-1)), ModelError,
     "layer 'flat' is 1-D: give --rows and --cols for mincut"),
    ("gradient", Layer("flat", W.reshape(-1), activations=W[0]), ModelError,
     "layer 'flat' is 1-D: give --rows and --cols for gradient"),  # one per column
])
def test_a_layer_without_what_its_scorer_needs_is_refused_naming_it(method, layer, error,
                                                                     message):
    with pytest.raises(error) as e:
        layer_scores(layer, method)
    assert str(e.value) == message


@pytest.mark.parametrize("name", ["hessian", ["magnitude"]])
def test_an_unknown_scorer_is_the_boards_option_error(name):
    expected = errors.option("method", name, SCORERS)  # prune8.prune_model's
    for call in (layer_scores, layer_mask):
        with pytest.raises(errors.OptionError) as e:
            call(FULL, name)
        assert str(e.value) == str(expected)


@pytest.mark.parametrize("method", ["rows", "cols", "blocks"])
@pytest.mark.parametrize("nm", [(2, 4), (5, 4)])
def test_an_nm_pattern_over_unit_scores_fails_as_on_the_board(method, nm):
    p = prune8.Pruner()
    w = bytearray(W.tobytes())
    if method == "blocks":
        p.blocks(w, 4, 8, 2, 4)
    else:
        getattr(p, method)(w, 4, 8)
    with pytest.raises(prune8.Prune8Error) as board:
        p.nm_mask(nm[0], nm[1], 4, 8)  # what prune8.prune_model calls after scoring
    with pytest.raises(prune8.Prune8Error) as twin:
        layer_mask(FULL, method, nm=nm, block=(2, 4))
    assert (type(twin.value), str(twin.value)) == (type(board.value), str(board.value))
