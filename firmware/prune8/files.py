# files(): serve reads and writes of files under /prune8/ over the link
# (docs/protocol.md; docs/spec.md §9.6), until the host sends END.
#
# OPEN and READ read a file in pieces; WRITE, DATA and COMMIT write one: to PATH.tmp,
# renamed over PATH on COMMIT, so an interrupted write never replaces a file with a
# partial one. A refused request is answered with an ERROR frame and the server goes on.

import os
import struct

from . import errors, store
from .formats import ROOT
from .protocol import COMMIT, DATA, END, MAX_PAYLOAD, OPEN, READ, READ_FMT, SIZE_FMT, WRITE
from .receiver import Receiver


def store_path(payload):
    """The path a request names, refused outside /prune8/."""
    path = bytes(payload).decode()
    if not path.startswith(ROOT + "/") or ".." in path:
        raise errors.outside_root(ROOT)
    return path


class FileServer(Receiver):
    doing = "reading a file"
    keep_going = True
    replayed = (OPEN, READ)     # reads are answered again; writes are applied once

    def __init__(self, link=None):
        Receiver.__init__(self, link)
        self.handlers = {OPEN: self.open, READ: self.read, WRITE: self.write,
                         DATA: self.data, COMMIT: self.commit, END: self.end}
        self.chunk = bytearray(MAX_PAYLOAD)
        self.f = None
        self.wpath = None

    def _close_file(self):
        if self.f is not None:
            self.f.close()
            self.f = None

    def open(self, payload):
        path = store_path(payload)
        self._close_file()
        self.f = open(path, "rb")
        return struct.pack(SIZE_FMT, os.stat(path)[6])

    def read(self, payload):
        off, n = struct.unpack(READ_FMT, payload)
        self.f.seek(off)
        mv = memoryview(self.chunk)
        got = self.f.readinto(mv[:min(n, MAX_PAYLOAD)])
        if not got:
            raise errors.read_past_end()
        return mv[:got]

    def write(self, payload):
        self.wpath = store_path(payload)
        self.doing = "writing a file"
        self._close_file()
        store.ensure_root()
        self.f = open(store.tmp_path(self.wpath), "wb")

    def data(self, payload):
        self.f.write(payload)

    def commit(self, payload):
        self._close_file()
        store.commit(store.tmp_path(self.wpath), self.wpath)

    def end(self, payload):
        self.done = True

    def close(self):
        if self.f is not None:
            self._close_file()
            if self.wpath:
                store.discard(store.tmp_path(self.wpath))


def files():
    """Serve reads and writes of files under /prune8/ until the host ends the session."""
    FileServer().serve()
