"""The board's sparse kernel (prune8.sparse, run here on CPython) computes exactly the
dense kernel's int8 outputs (prune8.dense) from every packed format."""

from array import array

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from prune8 import dense
from prune8 import sparse as board_sparse
from prune8_host.files import packed as sparse

INT32_MAX = 2**31 - 1


@st.composite
def layers(draw):
    rows = draw(st.sampled_from([1, 2, 4, 8, 10, 32]))
    cols = draw(st.sampled_from([1, 2, 4, 8, 16, 64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    w = rng.integers(-128, 128, (rows, cols)).astype(np.int8)
    w[rng.random((rows, cols)) < draw(st.sampled_from([0.0, 0.5, 0.9, 1.0]))] = 0
    if draw(st.booleans()):
        w[rng.random(rows) < 0.5, :] = 0
    params = dict(
        multiplier=draw(st.sampled_from([0, 1 << 30, INT32_MAX, 1518500250])),
        shift=draw(st.integers(-12, 3)), in_zp=draw(st.integers(-128, 127)),
        out_zp=draw(st.integers(-128, 127)), relu=draw(st.booleans()))
    bias = rng.integers(-5000, 5000, rows).tolist()
    x = rng.integers(-128, 128, (5, cols)).astype(np.int8)
    return w, params, bias, x


@settings(max_examples=300, deadline=None)
@given(layers())
def test_every_packed_format_equals_the_dense_kernel(case):
    w, params, bias, xs = case
    rows, cols = w.shape
    ref = dense.Dense(rows, cols, params["multiplier"], params["shift"], params["in_zp"],
                      params["out_zp"], params["relu"])
    ref.load(w.reshape(-1).tobytes(), bias)
    for p in sparse.candidates(w):
        sd = board_sparse.SparseDense(p.format, rows, cols, p.nnz, p.br, p.bc, p.payload,
                                      params["multiplier"], params["shift"], params["in_zp"],
                                      params["out_zp"], params["relu"], bias)
        for x in xs:
            got, want = array("b", bytes(rows)), array("b", bytes(rows))
            sd.forward(bytearray(x.tobytes()), got)
            ref.forward(bytearray(x.tobytes()), want)
            assert got == want, p.format
