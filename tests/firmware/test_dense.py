"""int8 inference, bit for bit: the firmware (`prune8.dense`, on CPython and on the
MicroPython WebAssembly VM) against the twin (`prune8_host.qnn`), and the twin against
TFLM's formulas written out here with Python ints.

- requantization (MultiplyByQuantizedMultiplier) over the whole accumulator range, every
  shift -31..30, multipliers at 0, 2**30 and up to 2**31 - 1;
- whole layers with random shapes, inputs, biases at the limit, zero points, ReLU, and
  both buffer kinds; saturation at both ends;
- the digits model: logits of every test image, and the calibration statistic;
- the no-big-int claim: dense.py run with every arithmetic result checked < 2**30;
- errors: the same class and message on both sides.

Examples per test: --firmware-examples=N or $PRUNE8_FIRMWARE_EXAMPLES (default 300).
"""

import ast
import json
import os
import shutil
import sys
import types
from array import array
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from prune8 import dense, errors
from prune8_host.files.model import load_model
from prune8_host.suite.runner import SCRIPTS
from prune8_host.twin import dense as qnn
from support import ROOT

EXAMPLES = int(os.environ.get("PRUNE8_FIRMWARE_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SMALL = 1 << 30                       # MicroPython small ints are -2**30 .. 2**30 - 1
ACC_MAX = (1 << 29) - 1 + 255 * 128 * 4096   # |acc| bound from the kernel's domain
INT32_MAX = (1 << 31) - 1


# -- TFLM / gemmlowp with Python ints (C semantics spelled out) ---------------------

def c_div(a, b):
    """C integer division: truncates toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def ref_srdhm(a, b):
    if a == b == -(1 << 31):
        return INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    return c_div(ab + nudge, 1 << 31)


def ref_rdbp(x, e):
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def ref_mbqm(x, m, shift):
    left, right = max(shift, 0), max(-shift, 0)
    x = min(INT32_MAX, max(-(1 << 31), x << left))   # prune8 saturates TFLM's int32 product
    return ref_rdbp(ref_srdhm(x, m), right)


def clamp_sat(v):
    return max(-dense.SAT, min(dense.SAT, v))


multipliers = st.one_of(st.sampled_from([0, 1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1]),
                        st.integers(1 << 30, INT32_MAX))
shifts = st.one_of(st.integers(-31, 30), st.integers(-12, 2))
accs = st.one_of(st.integers(-ACC_MAX, ACC_MAX), st.integers(-70000, 70000),
                 st.sampled_from([0, 1, -1, ACC_MAX, -ACC_MAX, SMALL - 1, -(SMALL - 1)]))


# -- the twin against the formulas ----------------------------------------------------

def test_known_values():
    srdhm = qnn.saturating_rounding_doubling_high_mul
    assert int(srdhm(1 << 30, 1 << 30)) == 1 << 29
    assert int(srdhm(-(1 << 31), -(1 << 31))) == INT32_MAX      # the one overflow
    assert int(srdhm(-(1 << 30), 1)) == 0      # -0.5 rounds up (toward +inf) ...
    assert int(srdhm(-(1 << 30) - 1, 1)) == -1
    assert int(srdhm(3 << 29, 1)) == 1         # ... and +0.75 to 1
    rdbp = qnn.rounding_divide_by_pot
    assert [int(rdbp(v, 1)) for v in (-3, -2, -1, 1, 2, 3, 5, -5)] == [-2, -1, -1, 1, 1, 2, 3, -3]
    assert int(rdbp(-(1 << 31), 31)) == -1 and int(rdbp(INT32_MAX, 31)) == 1
    qm = qnn.quantize_multiplier
    assert qm(0.5) == (1 << 30, 0)
    assert qm(1.0) == (1 << 30, 1)
    assert qm(0.75) == (3 << 29, 0)
    assert qm(1 - 2.0 ** -40) == (1 << 30, 1)  # rounds up to 2**31: halved, shift + 1
    assert qm(2.0 ** -33) == (0, 0)            # flushed to zero below 2**-31
    assert qm(0.0) == (0, 0)
    with pytest.raises(ValueError):
        qm(2.0 ** 31)


@SETTINGS
@given(st.lists(st.integers(-(1 << 31), INT32_MAX), min_size=1, max_size=20),
       st.integers(0, INT32_MAX), st.integers(-31, 30))
def test_twin_requantization_is_tflm(xs, m, shift):
    x = np.array(xs, np.int64)
    assert qnn.saturating_rounding_doubling_high_mul(x, m).tolist() == [ref_srdhm(v, m)
                                                                         for v in xs]
    assert qnn.multiply_by_quantized_multiplier(x, m, shift).tolist() == [
        ref_mbqm(v, m, shift) for v in xs]


@SETTINGS
@given(st.floats(2.0 ** -40, 2.0 ** 29, allow_nan=False))
def test_quantize_multiplier_represents_the_real(real):
    m, shift = qnn.quantize_multiplier(real)
    if m == 0:
        assert real < 2.0 ** -31
        return
    assert 1 << 30 <= m <= INT32_MAX and -31 <= shift <= 30
    assert abs(m * 2.0 ** (shift - 31) - real) <= 2.0 ** (shift - 32)


# -- requantization: firmware limbs against the twin -----------------------------------

@SETTINGS
@given(accs, multipliers, shifts)
@example(ACC_MAX, INT32_MAX, 30)
@example(-ACC_MAX, INT32_MAX, 30)
@example(1, INT32_MAX, 30)
@example(-1, 1 << 30, -31)
@example(SMALL - 1, INT32_MAX, 0)
@example(-(SMALL - 1), INT32_MAX, -1)
def test_requantize_matches_twin(acc, m, shift):
    m2, m1, m0 = dense.multiplier_limbs(m)
    got = dense.requantize(acc, m2, m1, m0, max(shift, 0), max(-shift, 0))
    assert got == clamp_sat(int(qnn.multiply_by_quantized_multiplier(acc, m, shift)))


# -- whole layers --------------------------------------------------------------------

@st.composite
def int8s(draw, n):
    kind = draw(st.sampled_from(["full", "extremes", "small", "const"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "full":
        v = rng.integers(-128, 128, n)
    elif kind == "extremes":
        v = rng.choice([-128, 127, -127, 0], n)
    elif kind == "small":
        v = rng.integers(-3, 4, n)
    else:
        v = np.full(n, draw(st.integers(-128, 127)))
    return v.astype(np.int8)


@st.composite
def layers(draw):
    shape = draw(st.sampled_from(["digits1", "digits2", "random", "tall", "wide"]))
    rows, cols = {"digits1": (32, 64), "digits2": (10, 32), "tall": (draw(st.integers(1, 200)), 1),
                  "wide": (1, draw(st.integers(1, 4096)))}.get(
        shape, (draw(st.integers(1, 64)), draw(st.integers(1, 64))))
    w = draw(int8s(rows * cols)).reshape(rows, cols)
    brng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    span = draw(st.sampled_from([0, 100, 30000, (1 << 29) - 1]))
    bias = brng.integers(-span, span + 1, rows).astype(np.int32)
    if draw(st.booleans()):
        bias[brng.integers(0, rows)] = draw(st.sampled_from([(1 << 29) - 1, -(1 << 29)]))
    if draw(st.booleans()):  # per channel: a multiplier and a shift for every row
        multiplier = np.array(draw(st.lists(multipliers, min_size=rows, max_size=rows)))
        shift = np.array(draw(st.lists(shifts, min_size=rows, max_size=rows)))
    else:
        multiplier, shift = draw(multipliers), draw(shifts)
    return {"w": w, "bias": bias, "multiplier": multiplier, "shift": shift,
            "in_zp": draw(st.integers(-128, 127)), "out_zp": draw(st.integers(-128, 127)),
            "relu": draw(st.booleans())}


def _ints(v):
    """An int, or a list of them (the board takes a per-channel parameter as a list)."""
    return v.tolist() if isinstance(v, np.ndarray) else int(v)


def firmware_layer(p):
    rows, cols = p["w"].shape
    d = dense.Dense(rows, cols, _ints(p["multiplier"]), _ints(p["shift"]), int(p["in_zp"]),
                    int(p["out_zp"]), bool(p["relu"]))
    d.load(bytearray(p["w"].tobytes()), array("i", p["bias"].tolist()))
    return d


def twin_layer(p, x):
    return qnn.dense(x, p["w"], p["bias"], p["multiplier"], p["shift"], p["out_zp"], p["relu"],
                     in_zero_point=p["in_zp"])


def board_int8(v, as_array):
    return array("b", v.tolist()) if as_array else bytearray(v.tobytes())


def read_int8(buf):
    return np.frombuffer(bytes(buf), np.int8) if isinstance(buf, bytearray) \
        else np.array(list(buf), np.int8)


@SETTINGS
@given(layers(), st.booleans(), st.booleans(), st.data())
def test_dense_matches_twin(p, x_array, out_array, data):
    rows, cols = p["w"].shape
    x = data.draw(int8s(cols))
    d = firmware_layer(p)
    out = array("b", bytes(rows)) if out_array else bytearray(rows)
    d.forward(board_int8(x, x_array), out)
    assert read_int8(out).tolist() == twin_layer(p, x).tolist()


def test_saturation_both_ends_and_relu_floor():
    w = np.full((3, 64), 127, np.int8)
    w[1] = -128
    w[2] = 0
    p = {"w": w, "bias": np.array([0, 0, -(1 << 29)], np.int32), "multiplier": INT32_MAX,
         "shift": 30, "in_zp": -128, "out_zp": 10, "relu": False}
    x = np.full(64, 127, np.int8)
    assert twin_layer(p, x).tolist() == [127, -128, -128]
    assert read_int8(_run(p, x)).tolist() == [127, -128, -128]
    p["relu"] = True
    assert twin_layer(p, x).tolist() == [127, 10, 10]   # ReLU clamps at the zero point
    assert read_int8(_run(p, x)).tolist() == [127, 10, 10]


def _run(p, x):
    out = array("b", bytes(p["w"].shape[0]))
    firmware_layer(p).forward(board_int8(x, True), out)
    return out


def test_batch_equals_single_images():
    m = load_model(ROOT / "examples" / "digits_mlp.npz")
    images = np.load(ROOT / "examples" / "digits_test.npz")["images"][:7]
    batch = qnn.logits(m, images)
    assert batch.tolist() == [qnn.logits(m, im).tolist() for im in images]


# -- the digits model, every test image --------------------------------------------------

def firmware_network(model):
    layers = []
    for q in qnn.qlayers(model):
        rows, cols = q.weights.shape
        d = dense.Dense(rows, cols, q.multiplier, q.shift, q.in_zp, q.out_zp, q.relu)
        d.load(q.weights.reshape(-1).tobytes(), q.bias.tolist())
        layers.append(d)
    return dense.Network(layers)


@pytest.fixture(scope="module")
def digits():
    model = load_model(ROOT / "examples" / "digits_mlp.npz")
    test = np.load(ROOT / "examples" / "digits_test.npz")
    calib = np.load(ROOT / "examples" / "digits_calib.npz")
    return model, test["images"], test["labels"], calib["images"]


def test_digits_logits_identical_for_every_test_image(digits):
    model, images, labels, _ = digits
    net = firmware_network(model)
    want = qnn.logits(model, images)
    got = np.array([read_int8(net.forward(bytearray(im.tobytes()))) for im in images])
    assert got.tolist() == want.tolist()
    assert [net.predict(bytearray(im.tobytes())) for im in images] == \
        qnn.predict(model, images).tolist()
    assert qnn.accuracy(model, images, labels) >= 0.95


def test_digits_calibration_statistic_both_ways(digits):
    model, _, _, calib = digits
    twin_stats = qnn.activation_stats(model, calib)
    net = firmware_network(model)
    for im in calib:
        net.forward(bytearray(im.tobytes()), True)
    for i, (name, layer) in enumerate(model.items()):
        a = bytearray(layer.weights.shape[1])
        net.stats[i].result(a)
        assert np.frombuffer(bytes(a), np.int8).tolist() == twin_stats[name].tolist() \
            == layer.activations.tolist(), name   # the shipped NAME.act is this statistic


@SETTINGS
@given(st.integers(1, 64), st.integers(1, 40), st.integers(-128, 127), st.booleans(), st.data())
def test_column_stats_matches_twin(cols, n, zp, as_array, data):
    rows = data.draw(int8s(n * cols)).reshape(n, cols)
    s = dense.ColumnStats(cols)
    for r in rows:
        s.add(board_int8(r, as_array), zp)
    sums = qnn.column_sums(rows, zp)
    assert list(s.sums) == sums.tolist()
    out = array("b", bytes(cols))
    assert list(s.result(out)) == qnn.column_stat(sums).tolist()


def test_column_stats_limit_and_worst_case():
    s = dense.ColumnStats(2)
    x = bytearray([0x80, 0x7F])               # -128 and 127
    for _ in range(dense.MAX_CALIB):
        s.add(x, 127)                         # |-128 - 127| = 255: the largest term
    assert list(s.sums) == [255 * dense.MAX_CALIB, 0]
    assert list(s.result(bytearray(2))) == [127, 0]
    with pytest.raises(errors.QuantError) as fw:
        s.add(x, 127)
    with pytest.raises(errors.QuantError) as tw:
        qnn.column_sums(np.zeros((dense.MAX_CALIB + 1, 2), np.int8), 0)
    assert str(fw.value) == str(tw.value)


# -- no intermediate reaches 2**30 -------------------------------------------------------

class _Checked(ast.NodeTransformer):
    """Wrap every arithmetic result of dense.py in _chk(), which records its magnitude."""

    def visit_BinOp(self, node):
        self.generic_visit(node)
        return ast.copy_location(ast.Call(ast.Name("_chk", ast.Load()), [node], []), node)

    def visit_UnaryOp(self, node):
        self.generic_visit(node)
        if isinstance(node.op, ast.USub):
            return ast.copy_location(ast.Call(ast.Name("_chk", ast.Load()), [node], []), node)
        return node

    def visit_AugAssign(self, node):
        self.generic_visit(node)
        load = ast.parse(ast.unparse(node.target), mode="eval").body
        value = ast.BinOp(load, node.op, node.value)
        return ast.copy_location(
            ast.Assign([node.target], ast.Call(ast.Name("_chk", ast.Load()), [value], [])), node)


@pytest.fixture(scope="module")
def checked_dense():
    """prune8.dense compiled with every +, -, *, <<, >>, &, // result recorded while
    `watch` is on (construction may build the multiplier, a big int, on purpose)."""
    src = Path(dense.__file__).read_text()
    tree = ast.fix_missing_locations(_Checked().visit(ast.parse(src)))
    mod = types.ModuleType("prune8._dense_checked")
    mod.__package__ = "prune8"
    state = {"watch": False, "max": 0}

    def _chk(v):
        if state["watch"] and isinstance(v, int):
            state["max"] = max(state["max"], abs(v) if v >= 0 else -v - 1)
        return v

    mod.__dict__["_chk"] = _chk
    exec(compile(tree, dense.__file__, "exec"), mod.__dict__)
    return mod, state


def _checked_run(checked_dense, p, x):
    """Run p's layer, requantization extremes and calibration in the instrumented module."""
    mod, state = checked_dense
    rows, cols = p["w"].shape
    d = mod.Dense(rows, cols, _ints(p["multiplier"]), _ints(p["shift"]), int(p["in_zp"]),
                  int(p["out_zp"]), bool(p["relu"]))
    d.load(bytearray(p["w"].tobytes()), p["bias"].tolist())
    m2, m1, m0 = mod.multiplier_limbs(int(np.max(p["multiplier"])))
    out = bytearray(rows)
    stats = mod.ColumnStats(cols)
    state["watch"], state["max"] = True, 0
    try:
        d.forward(bytearray(x.tobytes()), out)
        for acc in (ACC_MAX, -ACC_MAX, SMALL - 1, -(SMALL - 1)):
            for shift in (-31, -1, 0, 1, 30):
                mod.requantize(acc, m2, m1, m0, max(shift, 0), max(-shift, 0))
        stats.add(bytearray(x.tobytes()), int(p["in_zp"]))
        stats.result(bytearray(cols))
    finally:
        state["watch"] = False
    assert state["max"] < SMALL
    assert read_int8(out).tolist() == twin_layer(p, x).tolist()


@SETTINGS
@given(layers(), st.data())
def test_no_intermediate_reaches_2_30(checked_dense, p, data):
    _checked_run(checked_dense, p, data.draw(int8s(p["w"].shape[1])))


@pytest.mark.parametrize("sign", [1, -1])
def test_no_intermediate_reaches_2_30_at_the_largest_accumulator(checked_dense, sign):
    """|x - zp| = 255 times |w| = 128 in every one of 4096 columns, plus the largest bias."""
    p = {"w": np.full((2, 4096), -128, np.int8),
         "bias": np.full(2, (1 << 29) - 1 if sign > 0 else -(1 << 29), np.int32),
         "multiplier": INT32_MAX, "shift": 0, "in_zp": 127 if sign > 0 else -128,
         "out_zp": 0, "relu": False}
    _checked_run(checked_dense, p, np.full(4096, -128 if sign > 0 else 127, np.int8))


def test_high_mul_worst_cases_stay_small(checked_dense):
    mod, state = checked_dense
    state["watch"], state["max"] = True, 0
    try:
        for u in (0, 1, 0x7FFF, 0x8000, SMALL - 1, SMALL - 0x8000, 0x3FFF8001):
            for m in (0, 1, 0x7FFF, 1 << 30, INT32_MAX, INT32_MAX - 0x7FFF, 0x7FFF7FFF):
                for neg in (False, True):
                    got = mod.high_mul(u, m >> 30, (m >> 15) & 0x7FFF, m & 0x7FFF, neg)
                    assert got == (u * m + (1 << 30) - neg) >> 31
    finally:
        state["watch"] = False
    assert state["max"] < SMALL


def test_the_check_sees_a_big_value(checked_dense):
    mod, state = checked_dense
    state["watch"], state["max"] = True, 0
    try:
        mod.requantize(SMALL - 1, 1, 0x7FFF, 0x7FFF, 0, 0)    # fine
        assert state["max"] < SMALL
        mod.high_mul(1 << 31, 1, 0, 0, False)                 # outside the domain: caught
    finally:
        state["watch"] = False
    assert state["max"] >= SMALL


# -- errors: the same class and message on both sides --------------------------------------

GOOD = {"rows": 2, "cols": 3, "multiplier": 1 << 30, "shift": -1, "in_zp": 0, "out_zp": 0,
        "relu": False}
BAD = [("rows", 0), ("cols", 4097), ("multiplier", (1 << 30) - 1), ("multiplier", -1),
       ("multiplier", 1 << 31), ("shift", 31), ("shift", -32),
       ("multiplier", [1 << 30]), ("multiplier", [1 << 30, 5]), ("shift", [0, 31]),
       ("shift", [0, 1, 2]), ("in_zp", 128),
       ("out_zp", -129), ("relu", 1), ("bias", (1 << 29)), ("bias", -(1 << 29) - 1),
       ("bias_len", 3), ("x_len", 2)]


@pytest.mark.parametrize("field,value", BAD)
def test_errors_match(field, value):
    p = dict(GOOD)
    bias = [5, -7]
    x_len = 3
    if field == "bias":
        bias = [0, value]
    elif field == "bias_len":
        bias = [0] * value
    elif field == "x_len":
        x_len = value
    else:
        p[field] = value
    assert_same_error(p, bias, x_len)


def test_both_counts_are_checked_before_any_multiplier():
    """A bad multiplier value and a shift list of the wrong length: both sides name the
    length (docs/spec.md §8.4's order)."""
    msg = assert_same_error(dict(GOOD, multiplier=[0, 5], shift=[1]), [5, -7], 3)
    assert "shift" in msg


def assert_same_error(p, bias, x_len):
    """Dense(p) loaded with bias and run on x_len inputs fails on the firmware and in the
    twin with the same class and message; returns the message."""
    rows, cols = p["rows"], p["cols"]
    w = np.zeros((max(rows, 1), max(min(cols, 4097), 1)), np.int8)

    def firmware():
        d = dense.Dense(rows, cols, p["multiplier"], p["shift"], p["in_zp"], p["out_zp"],
                        p["relu"])
        d.load(bytearray(w.tobytes()), bias)
        d.forward(bytearray(x_len), bytearray(rows))

    def twin():
        qnn.dense(np.zeros(x_len, np.int8), w if rows else np.zeros((0, cols), np.int8),
                  np.array(bias, np.int64), p["multiplier"], p["shift"], p["out_zp"],
                  p["relu"], in_zero_point=p["in_zp"])

    with pytest.raises(errors.Prune8Error) as fw:
        firmware()
    with pytest.raises(errors.Prune8Error) as tw:
        twin()
    assert (type(fw.value), str(fw.value)) == (type(tw.value), str(tw.value))
    return str(fw.value)


def test_network_refuses_a_broken_chain():
    a = dense.Dense(4, 8, 1 << 30, 0, 0, 3, True)
    with pytest.raises(errors.LengthMismatchError, match="cols"):
        dense.Network([a, dense.Dense(2, 5, 1 << 30, 0, 3, 0)])
    with pytest.raises(errors.LengthMismatchError, match="in_zp"):
        dense.Network([a, dense.Dense(2, 4, 1 << 30, 0, 0, 0)])


# -- the real MicroPython VM -------------------------------------------------------------
#
# The virtual board (prune8_host.vboard: the pinned MicroPython WebAssembly VM behind a
# pty) with the bytecode build and the data files in its flash, reached through the same
# raw-REPL session the tools use.


def run_on_vm(script: Path, data: dict[str, bytes], tmp_path: Path) -> str:
    from prune8_host.device.build import build_firmware
    from prune8_host.device.session import BoardSession
    from prune8_host.suite.runner import script_code
    from prune8_host.vboard import VirtualBoard

    flash = tmp_path / "flash"
    (flash / "data").mkdir(parents=True)
    for name, blob in data.items():
        (flash / "data" / name).write_bytes(blob)
    build = build_firmware("esp32", out_root=tmp_path / "build")
    shutil.copytree(build.package_dir, flash / "prune8")
    code = script_code(script, {}) if isinstance(script, Path) else script
    with VirtualBoard(board="esp32", baud=0, flash_dir=flash) as vb, \
            BoardSession(vb.port, check_firmware=False, timeout=600) as s:
        return s.exec(code, timeout=600)


def test_dense_alloc_on_the_micropython_vm(tmp_path):
    out = run_on_vm(SCRIPTS / "test_dense_alloc.py", {}, tmp_path)
    cases = [line for line in out.splitlines() if line.startswith("CASE ")]
    assert len(cases) >= 14, out
    failed = [c for c in cases if " PASS " not in c]
    assert not failed, "\n".join(failed)
    measured = [c for c in cases if "alloc=" in c and "-control-" not in c]
    assert len(measured) >= 13 and all(c.endswith("alloc=0") for c in measured)


VM_SCRIPT = r"""
import json
from prune8 import dense
with open("/data/layers.json") as f:
    spec = json.load(f)
with open("/data/blob.bin", "rb") as f:
    blob = f.read()
layers = []
for s in spec["layers"]:
    d = dense.Dense(s["rows"], s["cols"], s["multiplier"], s["shift"], s["in_zp"],
                    s["out_zp"], s["relu"])
    o = s["offset"]
    d.load(memoryview(blob)[o:o + s["rows"] * s["cols"]], s["bias"])
    layers.append(d)
net = dense.Network(layers)
o, n, cols = spec["images"]
for i in range(n):
    out = net.forward(memoryview(blob)[o + i * cols:o + (i + 1) * cols], True)
    print("OUT " + " ".join(str(v) for v in out))
for i in range(len(layers)):
    print("ACT " + " ".join(str(v) for v in net.stats[i].result(bytearray(layers[i].cols))))
for c in spec["cases"]:
    d = dense.Dense(c["rows"], c["cols"], c["multiplier"], c["shift"], c["in_zp"],
                    c["out_zp"], c["relu"])
    d.load(memoryview(blob)[c["w"]:c["w"] + c["rows"] * c["cols"]], c["bias"])
    out = bytearray(c["rows"])
    d.forward(memoryview(blob)[c["x"]:c["x"] + c["cols"]], out)
    print("CASE " + " ".join(str(v - 256 if v > 127 else v) for v in out))
"""


def test_vm_matches_twin_on_digits_and_random_layers(tmp_path, digits):
    """On real MicroPython: the digits logits and calibration statistic for every test
    image, and 60 random layers at the extremes (a third per channel), equal the twin's."""
    model, images, _, _ = digits
    blob = bytearray()
    spec = {"layers": [], "cases": []}
    for q in qnn.qlayers(model):
        rows, cols = q.weights.shape
        spec["layers"].append({"rows": rows, "cols": cols, "multiplier": q.multiplier,
                               "shift": q.shift, "in_zp": q.in_zp, "out_zp": q.out_zp,
                               "relu": q.relu, "bias": q.bias.tolist(), "offset": len(blob)})
        blob += q.weights.tobytes()
    spec["images"] = [len(blob), len(images), images.shape[1]]
    blob += images.tobytes()
    rng = np.random.default_rng(7)
    want_cases = []
    for i in range(60):
        rows, cols = int(rng.integers(1, 33)), int(rng.integers(1, 65))
        w = rng.choice([-128, 127, 0, 1, -1, 64], (rows, cols)).astype(np.int8) if i % 2 \
            else rng.integers(-128, 128, (rows, cols)).astype(np.int8)
        x = rng.integers(-128, 128, cols).astype(np.int8)
        span = [0, 1000, (1 << 29) - 1][i % 3]
        p = {"w": w, "bias": rng.integers(-span, span + 1, rows).astype(np.int32),
             "multiplier": int([1 << 30, INT32_MAX, rng.integers(1 << 30, 1 << 31)][i % 3]),
             "shift": int(rng.integers(-31, 31)) if i % 4 else int(rng.integers(-10, 3)),
             "in_zp": int(rng.integers(-128, 128)), "out_zp": int(rng.integers(-128, 128)),
             "relu": bool(i % 5 == 0)}
        if i % 3 == 1:  # per channel: a list of one multiplier and one shift per row
            p["multiplier"] = [int(v) for v in rng.integers(1 << 30, 1 << 31, rows)]
            p["shift"] = [int(v) for v in rng.integers(-31, 31, rows)]
        spec["cases"].append({k: (v.tolist() if k == "bias" else v) for k, v in p.items()
                              if k != "w"} | {"rows": rows, "cols": cols, "w": len(blob),
                                              "x": len(blob) + w.size})
        blob += w.tobytes() + x.tobytes()
        want_cases.append(twin_layer(p, x).tolist())
    out = run_on_vm(_write(tmp_path, "vm_digits.py", VM_SCRIPT),
                    {"layers.json": json.dumps(spec).encode(), "blob.bin": bytes(blob)},
                    tmp_path)
    lines = out.splitlines()
    got = [[int(v) for v in line.split()[1:]] for line in lines if line.startswith("OUT ")]
    assert got == qnn.logits(model, images).tolist()
    acts = [[int(v) for v in line.split()[1:]] for line in lines if line.startswith("ACT ")]
    assert acts == [a.tolist() for a in qnn.activation_stats(model, images).values()]
    cases = [[int(v) for v in line.split()[1:]] for line in lines if line.startswith("CASE ")]
    assert cases == want_cases


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
