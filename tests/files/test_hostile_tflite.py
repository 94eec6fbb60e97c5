"""Hostile .tflite files through every command that takes a model (issue 22).

The corpus (tests/data/hostile/tflite/, made by tests/data/make_hostile.py from a valid
model with the schema's object API), and files that are not regular files (a FIFO, a
link to /dev/zero, a directory, a file bigger than any board's filesystem), run in one
process capped in memory, each command under an alarm (this module run as a script,
guarded_runs): every run
ends in status 2 with one line on stderr naming the file, writes nothing, and leaves an
existing -o target as it was. Then mutated flatbuffers (bit flips, truncations, random
field values through the object API) fed to the reader and to the commands: status 0
with a valid output, or status 2 with one line, never a traceback or an output on
failure. `make test` runs a bounded, fixed set of examples; `make test-slow` a large,
random one (pytest -m slow).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import resource
import signal
import subprocess
import sys
import traceback

import flatbuffers
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prune8_host.cli import main
from prune8_host.errors import HostError
from prune8_host.files import tflite
from prune8_host.files.graph import channel_groups, read_graph
from prune8_host.files.npzio import save_npz
from support import ROOT

CORPUS = ROOT / "tests" / "data" / "hostile" / "tflite"
HOSTILE = sorted(CORPUS.iterdir())
NOPORT = "/nonexistent/ttyUSB0"  # a board command that got past its files fails here
LIMIT = 1 << 30                  # the address space of the process that runs them all
FAST, SLOW = 40, 1500            # mutated files per property: make test / make test-slow

_spec = importlib.util.spec_from_file_location("make_hostile",
                                               ROOT / "tests" / "data" / "make_hostile.py")
make_hostile = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_hostile)
GOOD = make_hostile.good_tflite()

# Every command that takes a model, F the model; OUT an output (suffix as given), MASKS /
# ROWS row masks, CHANNELS channel-group masks made for the good model, DATA images and
# labels for its 16 inputs.
COMMANDS = [
    ["model", "info", "F"],
    ["model", "import", "F", "-o", "OUT.npz"],
    ["score", "F", "--method", "magnitude", "-o", "OUT.npz"],
    ["mask", "F", "--method", "magnitude", "--sparsity", "0.5", "-o", "OUT.npz"],
    ["apply", "F", "MASKS", "-o", "OUT.tflite"],
    ["report", "F"],
    ["pack", "F", "MASKS", "-o", "OUT.p8s"],
    ["shrink", "F", "ROWS", "-o", "OUT.npz"],
    ["mask", "F", "--structured", "channels", "--sparsity", "0.5", "-o", "OUT.npz"],
    ["shrink", "F", "CHANNELS", "-o", "OUT.tflite"],
    ["report", "F", "--compare", "F"],
    ["eval", "F", "--test", "DATA"],
    ["push", "F", "--port", NOPORT],
    ["run", "F", "--method", "magnitude", "--sparsity", "0.5", "-o", "OUT.tflite", "--port",
     NOPORT],
    ["verify", "F", "--port", NOPORT],
    ["calibrate", "F", "--images", "DATA", "--port", NOPORT],
    ["demo", "F", "--port", NOPORT],
    ["stats", "MASKS", "--model", "F"],
    ["pull", "-o", "OUT.npz", "--model", "F", "--port", NOPORT],
]
BOARD = {"push", "run", "verify", "calibrate", "demo", "pull"}  # a board after the model


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The good model, masks made for it, and data for its input."""
    d = tmp_path_factory.mktemp("inputs")
    good = d / "good.tflite"
    good.write_bytes(GOOD)
    names = {"GOOD": str(good), "MASKS": str(d / "masks.npz"), "ROWS": str(d / "rows.npz"),
             "DATA": str(d / "data.npz"), "CHANNELS": str(d / "channels.npz")}
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["mask", str(good), "--method", "magnitude", "--sparsity", "0.5", "-o",
                     names["MASKS"]]) == 0
        assert main(["mask", str(good), "--method", "rows", "--sparsity", "0.5", "--layer",
                     "fc1/weights", "-o", names["ROWS"]]) == 0
        assert main(["mask", str(good), "--structured", "channels", "--sparsity", "0.5",
                     "-o", names["CHANNELS"]]) == 0
    rng = np.random.default_rng(0)
    save_npz(names["DATA"], {"images": rng.integers(-128, 128, (6, 16)).astype(np.int8),
                             "labels": rng.integers(0, 4, 6)})
    return names


def argv_for(command, model, out_dir, names, tag: str) -> tuple[list[str], str | None]:
    out = None
    argv = []
    for a in command:
        if a.startswith("OUT"):
            out = str(out_dir / f"out-{tag}{a[3:]}")
            a = out
        argv.append({"F": str(model), **names}.get(a, a))
    return argv, out


def not_regular_files(d):
    """Files a .tflite name may stand for that are not regular files."""
    fifo = d / "fifo.tflite"
    os.mkfifo(fifo)
    (d / "zero.tflite").symlink_to("/dev/zero")
    (d / "null.tflite").symlink_to("/dev/null")
    (d / "dir.tflite").mkdir()
    big = d / "big.tflite"  # a TFLite header, then holes: bigger than any filesystem
    with open(big, "wb") as f:
        f.write(GOOD[:8])
        f.truncate(tflite.max_model_bytes() + 1)
    return [fifo, d / "zero.tflite", d / "null.tflite", d / "dir.tflite", big]


# -- running commands as a hostile-input test needs to see them -----------------------

class Hang(Exception):
    """The alarm went off: a command blocked or looped."""


def _on_alarm(signum, frame):
    raise Hang()


def _state(out: str | None):
    """What a run may change: the output's bytes and its directory's listing."""
    if out is None:
        return None
    try:
        with open(out, "rb") as f:
            data = f.read().hex()
    except FileNotFoundError:
        data = None
    return {"data": data, "listing": sorted(os.listdir(os.path.dirname(out)))}


def guarded_runs(jobs: dict) -> dict:
    """Each run's status (the exit status, or "traceback" when an exception escaped
    prune8's main, "hang" when the alarm went off, "memory" for a MemoryError), stdout and
    stderr (their last 2,000 characters), whether its output changed (the file's bytes or
    its directory's listing), and the process's peak resident memory. Runs in the
    process the address-space cap was set in (the __main__ block below): 600 runs cost
    what 600 calls cost, not 600 interpreter start-ups."""
    signal.signal(signal.SIGALRM, _on_alarm)
    results = []
    for run in jobs["runs"]:
        before = _state(run["out"])
        stdout, stderr = io.StringIO(), io.StringIO()
        detail = ""
        signal.alarm(jobs["timeout_s"])
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                status = main(run["argv"])
        except Hang:
            status = "hang"
        except MemoryError:
            status, detail = "memory", traceback.format_exc()
        except BaseException:  # the point: anything that escapes main
            status, detail = "traceback", traceback.format_exc()
        finally:
            signal.alarm(0)
        after = _state(run["out"])
        results.append({"argv": run["argv"], "status": status,
                        "stdout": stdout.getvalue()[-2000:],
                        "stderr": (stderr.getvalue() + detail)[-2000:],
                        "out_changed": before != after,
                        "out_exists": bool(after and after["data"] is not None)})
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"results": results, "peak_rss_bytes": peak_kb * 1024}


def guarded(runs: list[dict], tmp_path) -> dict:
    """guarded_runs in a fresh process whose address space is capped at LIMIT."""
    jobs = tmp_path / "jobs.json"
    jobs.write_text(json.dumps({"limit_bytes": LIMIT, "timeout_s": 20, "runs": runs}))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT / "tests"), str(ROOT / "eval"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, __file__, str(jobs)], capture_output=True,
                          text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_every_command_refuses_every_hostile_tflite(inputs, tmp_path):
    files = HOSTILE + not_regular_files(tmp_path)
    runs = []
    for i, f in enumerate(files):
        for command in COMMANDS:
            argv, out = argv_for(command, f, tmp_path, inputs, f"{i}-{command[0]}")
            if out and i % 2:  # half the outputs exist: they must stay as they were
                with open(out, "wb") as o:
                    o.write(b"an earlier output\n")
            runs.append({"argv": argv, "out": out, "file": str(f)})
    report = guarded([{"argv": r["argv"], "out": r["out"]} for r in runs], tmp_path)
    failures = []
    for run, got in zip(runs, report["results"]):
        lines = got["stderr"].splitlines()
        ok = (got["status"] == 2 and got["stdout"] == "" and len(lines) == 1
              and run["file"] in lines[0] and not got["out_changed"])
        if not ok:
            failures.append(f"{' '.join(got['argv'][:2])} {os.path.basename(run['file'])}: "
                            f"status {got['status']}, stdout {got['stdout'][:80]!r}, "
                            f"stderr {got['stderr'][-400:]!r}"
                            + (", the output changed" if got["out_changed"] else ""))
    assert not failures, f"{len(failures)} of {len(runs)} runs:\n" + "\n".join(failures[:40])
    assert len(runs) == len(files) * len(COMMANDS) >= 40 * 16
    # the memory all of them took together: 64 MB measured for 588 runs (main, reading /dev/zero into
    # memory, hit the 1 GB cap); a quarter of the cap leaves room for other platforms
    assert report["peak_rss_bytes"] < LIMIT // 4


def test_the_good_model_passes_every_command_the_hostile_ones_fail(inputs, tmp_path):
    # The harness is not vacuous: the file the corpus is made from goes through every
    # command (to the port, for those that need a board), under the same cap.
    runs = [argv_for(c, inputs["GOOD"], tmp_path, inputs, c[0]) for c in COMMANDS]
    report = guarded([{"argv": a, "out": o} for a, o in runs], tmp_path)
    for (argv, out), got in zip(runs, report["results"]):
        if argv[0] in BOARD:
            assert got["status"] == 2 and NOPORT in got["stderr"], got
            assert not got["out_changed"]
        else:
            assert got["status"] == 0, got
            assert out is None or got["out_exists"], got
    pruned = tmp_path / "out-apply.tflite"
    assert list(tflite.read(pruned).layers) == ["fc1/weights", "fc2/weights"]


def test_weights_after_the_flatbuffer_are_read_and_written_in_place(tmp_path):
    # The >2 GB format done right: the weights follow the flatbuffer, one buffer each.
    m = make_hostile.model_object(GOOD)
    w1, w2 = (make_hostile.tensor(m, f"fc{i}/weights").buffer for i in (1, 2))
    layers = make_hostile.layers()
    tail = layers["fc1"].tobytes() + bytes(16) + layers["fc2"].tobytes()
    data = make_hostile.with_offset_buffers(m, {w1: (None, 128), w2: (None, 32)}, tail)
    fix = make_hostile.model_object(data)  # fc2's offset: after fc1's 128 bytes and 16
    fix.buffers[w2].offset = fix.buffers[w1].offset + 144
    data = make_hostile.pack_model(fix) + data[len(make_hostile.pack_model(fix)):]
    tm = tflite.parse(data, "large.tflite")
    assert np.array_equal(tm.layers["fc1/weights"].weights, layers["fc1"])
    assert np.array_equal(tm.layers["fc2/weights"].weights, layers["fc2"])
    zeroed = {n: np.zeros_like(layer.weights) for n, layer in tm.layers.items()}
    out = tflite.pruned_bytes(tm, zeroed)
    changed = np.flatnonzero(np.frombuffer(out, np.uint8) != np.frombuffer(data, np.uint8))
    assert changed.size and changed.min() >= tm.placements["fc1/weights"].start
    assert not tflite.parse(out, "out").layers["fc2/weights"].weights.any()


def test_the_offset_rule_refuses_what_main_wrote_corrupt():
    # main accepted an offset into the flatbuffer's own tables, and apply then wrote
    # weights over them (exit 0, a file that no longer reads)
    data = (CORPUS / "offset-into-tables.tflite").read_bytes()
    with pytest.raises(HostError, match="must follow the flatbuffer's own tables"):
        tflite.parse(data, "x.tflite")


def test_a_fifo_is_refused_without_being_opened_for_reading(tmp_path, capsys):
    fifo = tmp_path / "model.tflite"
    os.mkfifo(fifo)
    signal.alarm(20)  # a regression blocks in open(): the alarm ends the test instead
    try:
        assert main(["model", "info", str(fifo)]) == 2
    finally:
        signal.alarm(0)
    assert f"{fifo} is a FIFO (named pipe), not a .tflite file" in capsys.readouterr().err


def test_what_tflm_prints_when_it_refuses_a_model_is_in_the_one_line(inputs, tmp_path,
                                                                    capfd):
    # a model the reader takes (its output's type is not its business) that TFLM refuses:
    # TFLM's C++ prints its reasons on file descriptor 2; they end up in prune8's one line
    m = make_hostile.model_object(GOOD)
    make_hostile.tensor(m, "fc2/output").type = 2  # int32
    model = tmp_path / "int32-output.tflite"
    model.write_bytes(make_hostile.pack_model(m))
    capfd.readouterr()
    assert main(["eval", str(model), "--test", inputs["DATA"]]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert "TFLM cannot load the model" in err and "input->type != output->type" in err
    assert str(model) in err  # the one line names the file, though TFLM saw only bytes


# -- mutated flatbuffers --------------------------------------------------------------

# The commands a mutated file goes through: what reads it, writes from it and runs it.
PROPERTY_COMMANDS = [["model", "info", "F"], ["apply", "F", "MASKS", "-o", "OUT.tflite"],
                     ["pack", "F", "MASKS", "-o", "OUT.p8s"], ["eval", "F", "--test", "DATA"]]


def check_commands(data: bytes, d, names) -> None:
    """Every property command on `data`: status 0 with a valid output, or 2 with one line
    on stderr and no output; never an exception out of main, never a hang."""
    model = d / "m.tflite"
    model.write_bytes(data)
    try:
        tflite.parse(data, "m.tflite")
        readable = True
    except HostError:
        readable = False
    for command in PROPERTY_COMMANDS:
        argv, out = argv_for(command, model, d, names, command[0])
        if out and os.path.exists(out):
            os.unlink(out)
        stdout, stderr = io.StringIO(), io.StringIO()
        # a hang fails the example (the alarm's default action ended the whole worker
        # without a word)
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(20)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                code = main(argv)
        except Hang:
            raise AssertionError(f"{argv} did not end within 20 s") from None
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        lines = stderr.getvalue().splitlines()
        if code == 0:
            assert readable, (argv, stdout.getvalue())
            if command[0] == "apply":  # the pruned file reads back, as many layers
                assert len(tflite.read(out).layers) == len(tflite.parse(data).layers)
            assert out is None or os.path.exists(out)
        else:
            assert code == 2 and len(lines) == 1, (argv, code, stderr.getvalue())
            assert out is None or not os.path.exists(out), argv
            if not readable:
                assert str(model) in lines[0], lines


@st.composite
def bit_flips(draw):
    flips = draw(st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(0, 7)),
                          min_size=1, max_size=6))
    data = bytearray(GOOD)
    for i, bit in flips:
        data[i] ^= 1 << bit
    return bytes(data)


@st.composite
def truncations(draw):
    n = draw(st.integers(0, len(GOOD) - 1))
    return GOOD[:n] + draw(st.binary(max_size=8))


INT32 = st.one_of(st.integers(-2, 20), st.sampled_from([2 ** 31 - 1, -2 ** 31, 65536]))
UINT32 = st.one_of(st.integers(0, 20), st.sampled_from([2 ** 32 - 1, 2 ** 31]))
FLOATS = st.one_of(st.floats(width=32), st.sampled_from([0.0, -0.0, 1e-30, 1e30]))


@st.composite
def field_values(draw):
    """The good model with one field set to a value drawn for its type, through the
    schema's object API: tensors, operators, buffers and the subgraph."""
    m = make_hostile.model_object(GOOD)
    g = m.subgraphs[0]
    tensors = list(g.tensors)
    t = draw(st.sampled_from(tensors))
    op = draw(st.sampled_from(g.operators))
    b = draw(st.sampled_from(m.buffers))
    edits = {
        "tensor.shape": lambda: setattr(t, "shape", draw(st.lists(INT32, max_size=5))),
        "tensor.buffer": lambda: setattr(t, "buffer", draw(UINT32)),
        "tensor.type": lambda: setattr(t, "type", draw(st.integers(0, 25))),
        "tensor.scale": lambda: t.quantization and setattr(
            t.quantization, "scale", draw(st.lists(FLOATS, max_size=9))),
        "tensor.zeroPoint": lambda: t.quantization and setattr(
            t.quantization, "zeroPoint", draw(st.lists(st.integers(-2 ** 63, 2 ** 63 - 1),
                                                       max_size=9))),
        "tensor.quantizedDimension": lambda: t.quantization and setattr(
            t.quantization, "quantizedDimension", draw(INT32)),
        "tensor.quantization": lambda: setattr(t, "quantization", None),
        "op.inputs": lambda: setattr(op, "inputs", draw(st.lists(INT32, max_size=4))),
        "op.outputs": lambda: setattr(op, "outputs", draw(st.lists(INT32, max_size=2))),
        "op.opcodeIndex": lambda: setattr(op, "opcodeIndex", draw(UINT32)),
        "op.fusedActivation": lambda: setattr(op.builtinOptions, "fusedActivationFunction",
                                              draw(st.integers(-128, 127))),
        "buffer.data": lambda: setattr(b, "data", draw(st.none() | st.lists(
            st.integers(0, 255), max_size=200))),
        "buffer.offset": lambda: (setattr(b, "offset", draw(st.integers(0, 2 ** 64 - 1))),
                                  setattr(b, "size", draw(st.integers(0, 2 ** 64 - 1)))),
        "subgraph.inputs": lambda: setattr(g, "inputs", draw(st.lists(INT32, max_size=3))),
        "subgraph.outputs": lambda: setattr(g, "outputs", draw(st.lists(INT32, max_size=3))),
        "subgraph.tensors": lambda: setattr(g, "tensors", draw(st.lists(
            st.sampled_from(tensors), max_size=9))),
    }
    for name in draw(st.lists(st.sampled_from(sorted(edits)), min_size=1, max_size=3)):
        edits[name]()
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=tflite.IDENTIFIER)
    return bytes(b.Output())


MUTATIONS = {"bit-flips": bit_flips(), "truncations": truncations(),
             "field-values": field_values()}


def _property(examples: int, derandomize: bool):
    return settings(max_examples=examples, deadline=None, derandomize=derandomize,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_mutated_flatbuffers_end_in_an_output_or_one_line(kind, inputs, tmp_path):
    @_property(FAST, derandomize=True)  # the same examples on every run of make test
    @given(MUTATIONS[kind])
    def check(data):
        check_commands(data, tmp_path, inputs)
    check()


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(MUTATIONS))
def test_mutated_flatbuffers_deep(kind, inputs, tmp_path):
    @_property(SLOW, derandomize=False)
    @given(MUTATIONS[kind])
    def check(data):
        check_commands(data, tmp_path, inputs)
    check()


class Once:
    """A schema object packed once: every list entry holding it refers to that one table
    (the object API packs each entry anew; a hostile file need not)."""

    def __init__(self, obj):
        self.obj, self.offset = obj, None

    def Pack(self, builder):
        if self.offset is None:
            self.offset = self.obj.Pack(builder)
        return self.offset


def test_the_walk_is_bounded_by_the_file_not_by_what_it_claims():
    # a subgraph list naming one subgraph 60,000 times, whose operator list names one
    # operator 60,000 times: 3.6e9 operators if followed (as TFLM's runtime unpacks a
    # model); refused at the second mention of a table
    m = make_hostile.model_object(GOOD)
    n = 60000
    m.subgraphs[0].operators = [Once(m.subgraphs[0].operators[0])] * n
    m.subgraphs = [Once(m.subgraphs[0])] * n
    data = make_hostile.pack_model(m)
    assert len(data) < 600_000
    with pytest.raises(HostError, match="is listed twice"):
        tflite.parse(data, "bomb.tflite")


def test_the_budget_bounds_what_is_not_a_table():
    # 2,000 tensors (each its own table) named by one string of 400 KB: 800 MB of names
    # if each were copied, as TFLM's runtime copies them; refused once the bytes read pass
    # a budget in proportion to the file's size
    class SharedStrings(flatbuffers.Builder):  # each string written once, then referred to
        shared: dict = {}

        def CreateString(self, s, *args):
            if s not in self.shared:
                self.shared[s] = super().CreateString(s, *args)
            return self.shared[s]

    m = make_hostile.model_object(GOOD)
    first = m.subgraphs[0].tensors[0]
    first.name = b"x" * 400_000
    m.subgraphs[0].tensors += [copy.copy(first) for _ in range(2000)]
    b = SharedStrings(1024)
    b.Finish(m.Pack(b), file_identifier=tflite.IDENTIFIER)
    data = bytes(b.Output())
    assert len(data) < 600_000
    with pytest.raises(HostError, match="refers to more tables and values than"):
        tflite.parse(data, "names.tflite")


if __name__ == "__main__":  # guarded(): the runs of JOBS.json under the cap
    with open(sys.argv[1]) as f:
        jobs = json.load(f)
    resource.setrlimit(resource.RLIMIT_AS, (jobs["limit_bytes"], jobs["limit_bytes"]))
    sys.stdout.write(json.dumps(guarded_runs(jobs)))


# -- damaged shapes in the operator graph ----------------------------------------------

def main_of(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def refused_by_apply_and_eval(model, inputs, tmp_path, capsys, says: str) -> None:
    """apply and eval of `model` each end in one line naming it and saying `says`, and
    apply writes nothing."""
    for argv in (["apply", model, inputs["MASKS"], "-o", tmp_path / "out.tflite"],
                 ["eval", model, "--test", inputs["DATA"]]):
        code, out, err = main_of(capsys, *argv)
        assert code == 2 and out == "" and err.count("\n") == 1, err
        assert str(model) in err and says in err, err
    assert not (tmp_path / "out.tflite").exists()


def _fc1_rows_prunable(groups) -> bool:
    return any(group.prunable and any(m.layer == "fc1/weights" and m.role == "rows"
                                      for m in group.members) for group in groups)


@pytest.mark.parametrize("name,shape", [("input", []), ("fc1/output", []),
                                        ("fc1/output", [1, 0]), ("fc2/output", [])])
def test_a_damaged_activation_shape_blocks_its_channels(name, shape, inputs, tmp_path):
    # what the deep property found: a scalar where a layer reads channels crashed the
    # channel-group walk of `model info` (an IndexError out of main); a negative
    # dimension the reader refuses
    assert _fc1_rows_prunable(channel_groups(read_graph(tflite.parse(GOOD, "good"))))
    m = make_hostile.model_object(GOOD)
    make_hostile.tensor(m, name).shape = shape
    data = make_hostile.pack_model(m)
    g = read_graph(tflite.parse(data, "m.tflite"))
    damaged = next(t for t in range(len(g.tensors)) if g.name(t) == name)
    groups = channel_groups(g)  # the walk ends: the damaged tensor carries no channels
    assert all(damaged not in group.tensors for group in groups)
    if name == "fc1/output":  # what fc1's rows write is damaged: they are not pruned
        assert not _fc1_rows_prunable(groups)
    check_commands(data, tmp_path, inputs)



def test_a_damaged_width_bounds_the_channel_walk(tmp_path, capsys):
    # the deep property's find: one bit flip made the input 16,777,232 wide, and the
    # walk of model info built a node per position (past the 20 s alarm); now a tensor
    # that wide carries no channels, and a graph of more positions in all is refused
    from prune8_host.files import graph
    m = make_hostile.model_object(GOOD)
    make_hostile.tensor(m, "input").shape = [1, 16777232]
    wide = tmp_path / "wide.tflite"
    wide.write_bytes(make_hostile.pack_model(m))
    code, out, err = main_of(capsys, "model", "info", wide)
    assert code == 0 and "16,777,232 wide" in out, err
    n = graph.MAX_TENSOR_POSITIONS
    for name in ("input", "fc1/output", "fc2/output"):  # each at the bound, too many
        make_hostile.tensor(m, name).shape = [1, n]
    assert 3 * n > graph.MAX_POSITIONS
    many = tmp_path / "many.tflite"
    many.write_bytes(make_hostile.pack_model(m))
    code, out, err = main_of(capsys, "model", "info", many)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert str(many) in err and "more than prune8 maps into channel groups" in err, err


# -- a model that crashes TFLM's C++ ---------------------------------------------------

def test_a_model_that_crashes_tflm_ends_in_one_line_not_the_process(inputs, tmp_path,
                                                                   capsys):
    # what the deep property found: an input with a zero dimension passes the reader and
    # TFLM's own checks, and TFLM's kernels then end the process with SIGSEGV; TFLM now
    # runs each model first in a child process (twin.tflm._trial)
    m = make_hostile.model_object(GOOD)
    make_hostile.tensor(m, "input").shape = [0]
    model = tmp_path / "zero-input.tflite"
    model.write_bytes(make_hostile.pack_model(m))
    refused_by_apply_and_eval(model, inputs, tmp_path, capsys,
                              "TFLM crashed running the model (SIGSEGV)")


def test_a_model_tflm_does_not_finish_is_one_line(monkeypatch):
    from tflite_micro.python.tflite_micro import runtime

    from prune8_host.twin import tflm

    def hang(data):  # runs in the forked child only: the parent's trial gives up
        import time
        time.sleep(30)
    monkeypatch.setattr(runtime.Interpreter, "from_bytes", staticmethod(hang))
    monkeypatch.setattr(tflm, "TRIAL_S", 0.5)
    m = make_hostile.model_object(GOOD)
    m.description = b"a model not tried before"  # another digest than GOOD's
    with pytest.raises(HostError, match="TFLM did not finish one inference"):
        tflm.interpreter(make_hostile.pack_model(m))


def test_a_model_whose_output_has_no_values_is_one_line(inputs, tmp_path, capsys):
    # the deep property's find: an output of shape [0] ran, and the drift's largest
    # difference over no values raised ValueError out of main
    m = make_hostile.model_object(GOOD)
    make_hostile.tensor(m, "fc2/output").shape = [0]
    model = tmp_path / "empty-output.tflite"
    model.write_bytes(make_hostile.pack_model(m))
    refused_by_apply_and_eval(model, inputs, tmp_path, capsys, "output has no values")
