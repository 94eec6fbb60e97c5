"""Sparse storage formats: lossless round trips and sizes exactly as documented."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prune8_host.files import packed as sparse


@st.composite
def pruned_layers(draw):
    rows = draw(st.sampled_from([1, 2, 4, 8, 12, 16, 32]))
    cols = draw(st.sampled_from([1, 2, 4, 8, 16, 24, 64]))
    density = draw(st.sampled_from([0.0, 0.05, 0.25, 0.5, 0.9, 1.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    w[rng.random((rows, cols)) >= density] = 0
    if draw(st.booleans()):  # structured: whole rows or blocks zero
        w[rng.random(rows) < 0.5, :] = 0
    return w


@settings(max_examples=300, deadline=None)
@given(pruned_layers())
def test_every_format_round_trips_with_its_documented_size(w):
    for p in sparse.candidates(w):
        assert sparse.decode(p).tobytes() == w.tobytes(), p.format
        assert p.size == sparse.expected_size(p.format, w, p.br, p.bc), p.format
    best = sparse.pack_layer(w)
    assert best.size == min(p.size for p in sparse.candidates(w))


def test_sizes_by_hand():
    w = np.zeros((4, 8), np.int8)
    w[0, 1], w[2, 7], w[3, 0] = 5, -3, 127
    assert sparse.encode("dense", w).size == 32
    assert sparse.encode("native", w).size == 4 + 3           # one mask word + 3 values
    assert sparse.encode("csr", w).size == 2 * 5 + 2 * 3 + 3  # ptrs, cols, values
    assert sparse.encode("coo", w).size == 5 * 3
    assert sparse.encode("block", w, 2, 4).size == 4 + 8 * 3  # 3 of 4 blocks non-zero
    assert sparse.pack_layer(w).format == "native"


def test_wide_indices_beyond_65536_weights():
    w = np.zeros((300, 300), np.int8)
    w[299, 299] = 1
    p = sparse.encode("coo", w)
    assert sparse.index_width(300, 300) == 4 and p.size == 9
    assert sparse.decode(p)[299, 299] == 1


def test_packed_file_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    layers = {}
    for name, shape in (("fc1", (32, 64)), ("fc2", (10, 32))):
        w = rng.integers(-128, 128, shape).astype(np.int8)
        w[rng.random(shape) < 0.8] = 0
        layers[name] = sparse.pack_layer(w)
    size = sparse.write_packed(tmp_path / "m.p8s", layers)
    back = sparse.read_packed(tmp_path / "m.p8s")
    assert back == layers and size == (tmp_path / "m.p8s").stat().st_size


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2-D int8"):
        sparse.encode("csr", np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="does not tile"):
        sparse.encode("block", np.zeros((3, 4), np.int8), 2, 2)
