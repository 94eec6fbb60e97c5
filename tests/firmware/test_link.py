"""The serial-link protocol (docs/protocol.md) with faults, board side run on CPython.

The firmware's receivers (`prune8.push`, `prune8.files`) run in a subprocess with its store rooted
in a temp dir; the host's `HostLink` talks to it over pipes through a port wrapper that
can corrupt, drop or duplicate bytes. The same faults on the virtual board (a real
MicroPython VM behind a pty) are in tests/board/test_board_transfer.py.
"""

import io
import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from prune8 import errors
from prune8.protocol import BEGIN, BEGIN_FMT, CRC, DATA, END, KEEP, LAYER, SYNC
from prune8_host import twin
from prune8_host.device.link import HostLink, abort_sequence, frame
from prune8_host.errors import BoardError, LinkError
from prune8_host.files.records import layer_record, model_id
from prune8_host.twin.layer import Layer
from support.board_on_cpython import (
    PREAMBLE,
    PipePort,
    push,
    push_frames,
    watch_writes,
    writes_behind,
)


@pytest.fixture
def board(tmp_path):
    """start(code) runs board code (PREAMBLE's modules) on CPython, /prune8 under tmp_path."""
    root = str(tmp_path / "prune8")
    procs = []

    def start(code):
        p = subprocess.Popen([sys.executable, "-c", PREAMBLE.format(root=root) + code],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        procs.append(p)
        return p

    start.root = root
    yield start
    for p in procs:
        p.kill()
        p.wait()


def layers(seed=0):
    rng = np.random.default_rng(seed)
    w1 = rng.integers(-128, 128, (32, 64)).astype(np.int8)   # 2048: full capacity
    w2 = rng.integers(-128, 128, (10, 32)).astype(np.int8)
    a2 = rng.integers(0, 128, 32).astype(np.int8)
    calib = rng.integers(-128, 128, (23, 32)).astype(np.int8)  # frames split samples
    return [Layer("fc1", w1), Layer("fc2", w2, a2, calib=calib)]


def header(name, rows, cols):
    """A LAYER frame's payload for an int8 layer of this shape (no activations)."""
    return layer_record(Layer(name, np.zeros((rows, cols), np.int8))).header


def stored(root):
    """The layers in model.bin as (name, rows, cols, stored bytes, CRC)."""
    from prune8 import store
    mid, index = store.read_model_index(os.path.join(root, "model.bin"))
    data = open(os.path.join(root, "model.bin"), "rb").read()
    return [(l.name, l.rows, l.cols, data[l.offset:l.offset + l.data_len], l.crc)
            for l in index]


def expected(model):
    return [(l.name, *l.weights.shape, layer_record(l).stored, layer_record(l).crc) for l in model]


def test_push_stores_exactly_what_was_sent(board):
    p = board("push.push()")
    link = HostLink(PipePort(p), timeout=2)
    model = layers()
    push(link, model)
    assert p.wait(10) == 0
    assert stored(board.root) == expected(model)
    assert link.retries == 0
    payload = sum(len(layer_record(x).data) for x in model)
    assert link.tx_bytes / payload < 1.10  # framing overhead
    # the board's Wanda sums (accumulated frame by frame) are the twin's
    sums = np.frombuffer(stored(board.root)[1][3][320 + 32:], "<u4")
    assert sums.tolist() == twin.wanda_sumsq(model[1].calib).tolist()


class RecordingFile(io.BytesIO):
    """A file that remembers where each write began and how long it was."""

    def __init__(self):
        super().__init__()
        self.writes = []
        self.data = b""

    def write(self, data):
        self.writes.append((self.tell(), len(data)))
        return super().write(data)

    def close(self):
        self.data = self.getvalue()
        super().close()


def test_the_model_file_is_written_in_whole_flash_blocks():
    """block_writer.BlockWriter (what a push writes model.bin through): every write the
    filesystem sees is one whole 4 KB block at a block boundary, except the rest at the
    end and a patch of bytes already in the file; the file is byte for byte what plain
    writes and seeks would have made."""
    from prune8.block_writer import BlockWriter
    rng = np.random.default_rng(3)
    chunks = [rng.integers(0, 256, int(k), dtype=np.uint8).tobytes()
              for k in rng.integers(1, 700, 60)]
    f = RecordingFile()
    w = BlockWriter(f)
    plain = bytearray()
    across = None
    # patch bytes still in RAM; across the end of what is in the file; in the file
    patches = {3: lambda n: n - 4, 30: lambda n: n // 4096 * 4096 - 2, 40: lambda n: 100}
    for i, c in enumerate(chunks):
        w.write(c)
        plain += c
        if i in patches:
            at = patches[i](len(plain))
            across = at if i == 30 else across
            w.patch(at, b"\xee\xff\xdd\xcc")
            plain[at:at + 4] = b"\xee\xff\xdd\xcc"
        assert w.tell() == len(plain)
    w.close()
    assert f.closed and f.data == bytes(plain)
    *blocks, last = [wr for wr in f.writes if wr not in ((across, 2), (100, 4))]
    assert (across, 2) in f.writes and (100, 4) in f.writes
    assert blocks == [(i * 4096, 4096) for i in range(len(plain) // 4096)]
    assert last == (len(plain) // 4096 * 4096, len(plain) % 4096)


def test_a_discarded_block_writer_writes_nothing_more():
    from prune8.block_writer import BlockWriter
    f = RecordingFile()
    w = BlockWriter(f)
    w.write(b"x" * 5000)
    w.close(keep=False)
    assert f.writes == [(0, 4096)] and f.closed


# The push with model.bin.tmp watched: writes behind the file's end are reported.
WATCHED_PUSH = (watch_writes("push", "model.bin.tmp")
                + "try:\n    push.push()\nfinally:\n    report_writes()\n")


def behind_the_end(p) -> list:
    return writes_behind(p.stderr.read().decode())


def past_a_block(seed=7):
    """A model of more than one 4 KB block: a block flushed before the end holds the
    model id and fc1's CRC."""
    rng = np.random.default_rng(seed)
    return layers(seed) + [Layer("fc3", rng.integers(-128, 128, (80, 100)).astype(np.int8))]


def unannounced(frames):
    """A push's frames with no model id and no layer CRC announced (both 0)."""
    out = []
    for t, payload in frames:
        if t == BEGIN:
            payload = struct.pack(BEGIN_FMT, struct.unpack(BEGIN_FMT, payload)[0], 0)
        elif t == LAYER:
            payload = payload[:-4] + bytes(4)
        out.append((t, payload))
    return out


def test_an_announced_push_only_appends_to_the_model_file(board):
    """The host announces the model id and every layer's CRC: the board writes
    model.bin front to back, never behind its end (docs/protocol.md), and answers END
    with the id the host worked out."""
    model = past_a_block()
    p = board(WATCHED_PUSH)
    link = HostLink(PipePort(p))
    frames = push_frames(model)
    mid = struct.unpack("<I", link.exchange(frames)[-1])[0]
    assert p.wait(10) == 0
    assert behind_the_end(p) == []
    assert stored(board.root) == expected(model)
    assert mid == model_id(layer_record(x).stored_header for x in model)


def test_an_unannounced_push_fills_the_crcs_in_and_stores_the_same(board):
    """Nothing announced (0s: a push that keeps stored layers sends no id): the board
    works the CRCs and the id out and writes them behind the end, and the file is the
    same as an announced push's."""
    model = past_a_block()
    p = board(WATCHED_PUSH)
    link = HostLink(PipePort(p))
    mid = struct.unpack("<I", link.exchange(unannounced(push_frames(model)))[-1])[0]
    assert p.wait(10) == 0
    assert behind_the_end(p)  # the model id at offset 4, and fc1's CRC
    assert stored(board.root) == expected(model)
    assert mid == model_id(layer_record(x).stored_header for x in model)


def test_a_push_that_keeps_layers_announces_the_id_and_only_appends(board):
    """push --layer: the stored layers it keeps are copied by the board (KEEP), their
    headers as the board lists them; the host announces the id those headers and the
    sent layer's give, and the board still writes model.bin front to back."""
    from prune8 import store
    old = past_a_block(16)
    p = board("push.push()")
    push(HostLink(PipePort(p)), old)
    assert p.wait(10) == 0
    _, index = store.read_model_index(os.path.join(board.root, "model.bin"))
    kept = {info.name: info.record_header() for info in index}
    new_fc2 = Layer("fc2", np.full((10, 32), 3, np.int8))
    record = layer_record(new_fc2)
    mid = model_id([kept["fc1"], record.stored_header, kept["fc3"]])
    frames = [(BEGIN, struct.pack(BEGIN_FMT, 3, mid)), (KEEP, b"fc1"), (LAYER, record.header)]
    frames += [(DATA, record.data[i:i + 256]) for i in range(0, len(record.data), 256)]
    frames += [(KEEP, b"fc3"), (END, b"\0")]
    p = board(WATCHED_PUSH)
    got = struct.unpack("<I", HostLink(PipePort(p)).exchange(frames)[-1])[0]
    assert p.wait(10) == 0
    assert got == mid
    assert behind_the_end(p) == []
    assert stored(board.root) == expected([old[0], new_fc2, old[2]])


@pytest.mark.parametrize("what", ["layer", "model"])
def test_a_wrong_announced_crc_or_id_is_refused_and_nothing_committed(board, what):
    p = board("push.push()")
    push(HostLink(PipePort(p)), layers(2))
    p.wait(10)
    before = stored(board.root)
    model = layers(7)
    frames = push_frames(model)
    records = [layer_record(x) for x in model]
    if what == "layer":  # fc2's CRC off by one
        i = [k for k, (t, _) in enumerate(frames) if t == LAYER][1]
        frames[i] = (LAYER, frames[i][1][:-4] + struct.pack("<I", records[1].crc ^ 1))
        want = str(errors.layer_crc_mismatch("fc2", records[1].crc, records[1].crc ^ 1))
    else:
        mid = model_id(r.stored_header for r in records)
        frames[0] = (BEGIN, struct.pack(BEGIN_FMT, len(model), mid ^ 1))
        want = str(errors.model_id_mismatch(mid, mid ^ 1))
    p = board("push.push()")
    with pytest.raises(BoardError) as info:
        HostLink(PipePort(p)).exchange(frames)
    assert want in str(info.value)
    assert p.wait(10) == 0
    assert stored(board.root) == before
    assert not os.path.exists(os.path.join(board.root, "model.bin.tmp"))


def test_frame_crc_matches_zlib_and_the_board_fallback():
    from prune8 import link as board_link
    data = bytes(range(256)) * 2
    assert board_link.crc32_halves(data, len(data)) == \
        (zlib.crc32(data) & 0xFFFF, zlib.crc32(data) >> 16)
    saved = board_link.crc32
    board_link.crc32 = None  # a port without binascii.crc32
    try:
        assert board_link.crc32_halves(data, len(data)) == \
            (zlib.crc32(data) & 0xFFFF, zlib.crc32(data) >> 16)
    finally:
        board_link.crc32 = saved
    # a running CRC continues across calls, with and without binascii
    a, b = data[:100], data[100:]
    for impl in (saved, None):
        board_link.crc32 = impl
        try:
            lo, hi = board_link.crc32_halves(a, len(a))
            assert board_link.crc32_halves(b, len(b), lo, hi) == \
                (zlib.crc32(data) & 0xFFFF, zlib.crc32(data) >> 16)
        finally:
            board_link.crc32 = saved
    f = frame(DATA, 7, b"abc")
    assert f[0] == SYNC and struct.unpack(CRC, f[-4:])[0] == zlib.crc32(f[1:-4])


def fault_once(kind, at_frame=5):
    """A write hook that damages the at_frame-th write once."""
    state = {"done": False}

    def hook(port, data):
        if state["done"] or port.frames_written != at_frame or len(data) < 100:
            return data
        state["done"] = True
        if kind == "corrupt":
            b = bytearray(data)
            b[60] ^= 0x5A
            return bytes(b)
        if kind == "drop":
            return data[:40] + data[57:]
        if kind == "duplicate":
            return data + data
        raise AssertionError(kind)
    return hook


@pytest.mark.parametrize("windowed", [False, True], ids=["stop-and-wait", "window"])
@pytest.mark.parametrize("kind", ["corrupt", "drop", "duplicate"])
def test_faults_are_recovered_and_data_applied_once(board, kind, windowed):
    p = board("push.push()")
    link = HostLink(PipePort(p, fault_once(kind)), timeout=0.5, window=4)
    model = layers(1)
    push(link, model, windowed)
    assert p.wait(10) == 0
    assert stored(board.root) == expected(model)
    if kind != "duplicate":
        assert link.retries >= 1


def test_a_layer_bigger_than_the_pruner_is_stored_as_sent(board):
    """Layers past the Pruner's capacity go to flash as they arrive (prune8.stream
    prunes them there): 64 x 64 = 4096 > max_weights = 2048, with calibration samples
    folded into the sums on the way and per-channel parameters in the tail."""
    rng = np.random.default_rng(5)
    big = Layer("big", rng.integers(-128, 128, (64, 64)).astype(np.int8),
                rng.integers(0, 128, 64).astype(np.int8),
                calib=rng.integers(-128, 128, (40, 64)).astype(np.int8))
    p = board("push.push()")
    push(HostLink(PipePort(p)), [big])
    assert p.wait(10) == 0
    assert stored(board.root) == expected([big])


def test_over_capacity_layer_is_refused_and_nothing_committed(board):
    p = board("push.push()")
    push(HostLink(PipePort(p)), layers(2))
    p.wait(10)
    before = stored(board.root)
    p = board("push.push()")
    big = Layer("big", np.zeros((4097, 1), np.int8))  # rows past the kernels' 4096
    with pytest.raises(BoardError) as info:
        push(HostLink(PipePort(p)), [big])
    assert str(errors.capacity_units("rows", 4097, errors.MAX_UNITS_LIMIT)) in str(info.value)
    assert p.wait(10) == 0
    assert stored(board.root) == before
    assert not os.path.exists(os.path.join(board.root, "model.bin.tmp"))


def test_host_killed_mid_push_then_abort_and_retry(board):
    p = board("push.push()")
    push(HostLink(PipePort(p)), layers(3))
    p.wait(10)
    before = stored(board.root)

    p = board("push.push()")
    link = HostLink(PipePort(p))
    link.request(BEGIN, struct.pack(BEGIN_FMT, 1, 0))
    link.request(LAYER, header("fc9", 32, 64))
    p.stdin.write(frame(DATA, link.seq, bytes(256))[:100])  # the host dies mid-frame
    p.stdin.flush()
    # A new host connects: the abort sequence ends the orphaned receiver cleanly.
    p.stdin.write(abort_sequence())
    p.stdin.flush()
    assert p.wait(10) == 0
    assert stored(board.root) == before
    assert not os.path.exists(os.path.join(board.root, "model.bin.tmp"))

    p = board("push.push()")
    model = layers(4)
    push(HostLink(PipePort(p)), model)
    p.wait(10)
    assert stored(board.root) == expected(model)


def test_board_dies_mid_push_keeps_the_old_model(board):
    p = board("push.push()")
    push(HostLink(PipePort(p)), layers(5))
    p.wait(10)
    before = stored(board.root)

    p = board("push.push()")
    link = HostLink(PipePort(p), timeout=0.3, silence=1.0)
    link.request(BEGIN, struct.pack(BEGIN_FMT, 2, 0))
    link.request(LAYER, header("fc1", 32, 64))
    link.request(DATA, bytes(256))
    p.kill()  # a reset: the receiver is gone mid-transfer
    p.wait()
    with pytest.raises(LinkError, match="no answer"):
        link.request(DATA, bytes(256))
    assert stored(board.root) == before


def test_duplicate_frames_do_not_shift_data(board):
    # every D frame delivered twice: the layer must still be exactly the data
    p = board("push.push()")

    def twice(port, data):
        return data + data if data[1:2] == b"D" else data
    model = layers(6)
    push(HostLink(PipePort(p, twice)), model)
    assert p.wait(10) == 0
    assert stored(board.root) == expected(model)


def test_a_window_of_frames_stores_exactly_what_was_sent(board):
    p = board("push.push()")
    link = HostLink(PipePort(p), window=3)
    model = layers(7)
    push(link, model, windowed=True)
    assert p.wait(10) == 0
    assert stored(board.root) == expected(model)
    assert link.retries == 0


def test_an_error_mid_window_ends_the_receiver_and_commits_nothing(board):
    """The board refuses a layer while frames after it are in flight: it answers them
    with the same error until the host's ABORT, so none is taken for REPL input."""
    p = board("push.push()")
    push(HostLink(PipePort(p)), layers(8))
    p.wait(10)
    before = stored(board.root)
    p = board("push.push()")
    big = Layer("big", np.zeros((4097, 1), np.int8))  # rows past the kernels' 4096
    with pytest.raises(BoardError, match="4097"):
        push(HostLink(PipePort(p), window=4), layers(9) + [big], windowed=True)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    assert stored(board.root) == before
    assert not os.path.exists(os.path.join(board.root, "model.bin.tmp"))


def test_abort_mid_window_ends_the_receiver_and_commits_nothing(board):
    p = board("push.push()")
    push(HostLink(PipePort(p)), layers(10))
    p.wait(10)
    before = stored(board.root)
    p = board("push.push()")
    frames = push_frames(layers(11))
    for i, (t, payload) in enumerate(frames[:6]):  # six frames in flight, unanswered
        p.stdin.write(frame(t, i, payload))
    p.stdin.write(abort_sequence(6))
    p.stdin.flush()
    assert p.wait(10) == 0
    assert stored(board.root) == before
    assert not os.path.exists(os.path.join(board.root, "model.bin.tmp"))


# The board made slow on purpose: its third DATA frame takes 1.5 s (a long flash erase).
SLOW_BOARD = ("import time\n"
              "_data = push.ModelReceiver.data\n"
              "_calls = [0]\n"
              "def _slow(self, payload):\n"
              "    _calls[0] += 1\n"
              "    if _calls[0] == 3:\n"
              "        time.sleep(1.5)\n"
              "    return _data(self, payload)\n"
              "push.ModelReceiver.data = _slow\n"
              "push.push()")


@pytest.mark.parametrize("windowed", [False, True], ids=["stop-and-wait", "window"])
def test_a_slow_board_is_waited_for(board, windowed):
    """Slowness is normal: frames are resent while the board is busy, and the push
    completes exactly, applied once."""
    p = board(SLOW_BOARD)
    link = HostLink(PipePort(p), timeout=0.3, silence=5.0)
    model = layers(12)
    push(link, model, windowed)
    assert p.wait(10) == 0
    assert stored(board.root) == expected(model)
    assert link.retries >= 1


def test_a_board_silent_past_the_bound_is_given_up_on(board):
    """Silence is the fault: the same board, with a bound shorter than its stall."""
    p = board(SLOW_BOARD)
    link = HostLink(PipePort(p), timeout=0.2, silence=0.8)
    with pytest.raises(LinkError, match="no answer to frame 4 .*without a word"):
        push(link, layers(13), windowed=True)


# A board whose END takes 1.5 s: a push that announces no model id has it rewrite the
# file's header, which LittleFS pays for with a copy of the whole file.
SLOW_END = ("import time\n"
            "_end = push.ModelReceiver.end\n"
            "def _slow(self, payload):\n"
            "    time.sleep(1.5)\n"
            "    return _end(self, payload)\n"
            "push.ModelReceiver.end = _slow\n"
            "push.push()")


@pytest.mark.parametrize("bound, fits", [(0.8, False), (4.0, True)])
def test_an_end_is_waited_for_its_own_bound_and_not_resent(board, bound, fits):
    """END's bound can be set per exchange (link.bounds): a copy of the file at END is
    waited for, never answered by sending END again (it would reach the REPL)."""
    p = board(SLOW_END)
    link = HostLink(PipePort(p), timeout=0.3, bounds={END: bound})
    model = layers(14)
    if not fits:
        with pytest.raises(LinkError, match="without a word"):
            push(link, model, windowed=True)
        return
    push(link, model, windowed=True)
    assert p.wait(10) == 0
    assert stored(board.root) == expected(model)
    assert link.retries == 0  # waited for, not resent


def test_a_push_that_announces_no_id_waits_for_the_rewrite(monkeypatch):
    """A push that keeps stored layers without their headers announces no model id:
    its END is given the time to rewrite the whole new model.bin at the flash's
    worst-case figures; with them (the board's listing), the id is announced."""
    import contextlib

    from prune8_host.device import patience, transfer
    from prune8_host.files.model import Model

    class FakeLink:
        bounds: dict = {}

        def exchange(self, frames):
            self.frames = frames
            return [None] * (len(frames) - 1) + [struct.pack("<I", 7)]

    class FakeSession:
        info = {}
        made = FakeLink()

        @contextlib.contextmanager
        def link(self, code, progress=None):
            self.made.bounds = {}
            yield self.made

    session = FakeSession()
    model = Model({x.name: x for x in layers(15)})
    transfer.push_model(session, model, only=["fc2"], board_layers=["fc1", "fc2"],
                        quiet=True, kept_bytes=300_000)
    new_size = transfer.stored_size([model.record("fc2")]) + 300_000
    assert session.made.bounds == {END: patience.rewrite_seconds(new_size)}
    assert patience.rewrite_seconds(212_992) == pytest.approx(patience.FLASH_S + 52 * 0.448)
    heads = {"fc1": model.record("fc1").stored_header}  # as the board lists them
    transfer.push_model(session, model, only=["fc2"], board_layers=["fc1", "fc2"],
                        quiet=True, kept_headers=heads)
    assert session.made.bounds == {}
    begin = struct.unpack(BEGIN_FMT, session.made.frames[0][1])
    assert begin == (2, model_id(model.record(n).stored_header for n in model))
    transfer.push_model(session, model, quiet=True)  # every layer: the id is announced
    assert session.made.bounds == {}
    begin = struct.unpack(BEGIN_FMT, session.made.frames[0][1])
    assert begin == (2, model_id(model.record(n).stored_header for n in model))
