"""The board's firmware run on CPython in a subprocess: its store rooted in a temporary
directory (PREAMBLE), a serial-port look-alike over the subprocess's pipes with a fault
hook (PipePort), and a model pushed through the framed link (push)."""

import os
import select
import struct

from prune8.protocol import BEGIN, BEGIN_FMT, DATA, END, LAYER, MAX_PAYLOAD, MODEL_ID_FMT
from prune8_host.files.records import layer_record, model_id

# The board's store rooted at {root}: every store path of prune8.formats moved there
# before the receivers import them.
PREAMBLE = ("import prune8.formats as p\n"
            "for k in [k for k in dir(p) if k == 'ROOT' or k.endswith('_PATH')]:\n"
            "    setattr(p, k, {root!r} + getattr(p, k)[len('/prune8'):])\n"
            "from prune8 import files, infer, prune_model, push, status\n")


def watch_writes(module: str, suffix: str) -> str:
    """Board code that makes `module`'s open() watch the files it opens for writing whose
    path ends with `suffix`: every write that starts behind the end of what was written
    so far (which LittleFS pays for with a copy of the rest of the file) is noted;
    report_writes() prints them to stderr as `BEHIND [offsets]` (writes_behind reads
    them back)."""
    return (
        "import builtins\n"
        "_open = builtins.open\n"
        "behind = []\n"
        "class Watched:\n"
        "    def __init__(self, f):\n"
        "        self.f, self.end = f, 0\n"
        "    def write(self, data):\n"
        "        at = self.f.tell()\n"
        "        if at < self.end:\n"
        "            behind.append(at)\n"
        "        self.end = max(self.end, at + len(data))\n"
        "        return self.f.write(data)\n"
        "    def __getattr__(self, name):\n"
        "        return getattr(self.f, name)\n"
        "    def __enter__(self):\n"
        "        return self\n"
        "    def __exit__(self, *exc):\n"
        "        self.f.close()\n"
        "def watched(path, mode='r', *args):\n"
        "    f = _open(path, mode, *args)\n"
        f"    return Watched(f) if 'w' in mode and path.endswith({suffix!r}) else f\n"
        f"{module}.open = watched\n"
        "def report_writes():\n"
        "    import sys\n"
        "    sys.stderr.write('BEHIND %r\\n' % behind)\n")


def writes_behind(stderr: str) -> list:
    """The offsets report_writes() printed (watch_writes)."""
    return eval(stderr[stderr.index("BEHIND ") + 7:].splitlines()[0])


class PipePort:
    """A serial-port look-alike over a subprocess's pipes, with a fault hook on writes."""

    def __init__(self, proc, hook=None):
        self.proc = proc
        self.hook = hook
        self.frames_written = 0

    def write(self, data):
        if self.hook:
            data = self.hook(self, data)
        self.frames_written += 1
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def read(self, n):
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], 0.05)
        return os.read(fd, n) if ready else b""


def push_frames(model):
    """The frames of a push of `model`: BEGIN, per layer LAYER and its DATA, END, with
    the model id and the CRCs announced as the host announces them."""
    records = [layer_record(layer) for layer in model]
    frames = [(BEGIN, struct.pack(BEGIN_FMT, len(model), model_id(r.stored_header for r in records)))]
    for record in records:
        frames.append((LAYER, record.header))
        data = record.data
        frames += [(DATA, data[i:i + MAX_PAYLOAD]) for i in range(0, len(data), MAX_PAYLOAD)]
    return frames + [(END, b"\0")]


def push(link, model, windowed=False):
    """Push `model` one frame at a time, or all its frames as one windowed exchange."""
    frames = push_frames(model)
    if windowed:
        return struct.unpack(MODEL_ID_FMT, link.exchange(frames)[-1])[0]
    replies = [link.request(t, p) for t, p in frames]
    return struct.unpack(MODEL_ID_FMT, replies[-1])[0]
