"""Opening an input file that may be anything: a FIFO named model.tflite blocks on its
first read, a link to /dev/zero never ends, a directory cannot be read at all. Each input
is checked to be a regular file, and its size taken, before a byte of it is read; a
reader that has a size limit refuses a larger file by its size, and never reads more
than the limit (the file may grow between the check and the read)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from prune8_host.errors import FileFormatError

_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_input(path, what: str) -> int:
    """The size of `path`, a regular file (through symlinks); otherwise FileFormatError
    naming it and what it is. `what` names the file kind expected ("a .tflite file")."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read it ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileFormatError(f"{path} is a directory, not {what}")
    if not stat.S_ISREG(st.st_mode):
        raise FileFormatError(f"{path} is {_kind(st.st_mode)}, not {what}: give a regular "
                              f"file")
    return st.st_size


def read_input(path, what: str, limit: int, why: str) -> bytes:
    """The bytes of regular file `path`, refused (FileFormatError) when it holds more
    than `limit` bytes (`why` says where the limit comes from). Opened without blocking,
    so a FIFO put in its place after the check is refused by the same test, not waited
    on."""
    size = check_input(path, what)
    if size > limit:
        raise FileFormatError(f"{path}: {size:,} bytes, more than {why} ({limit:,} bytes)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read it ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):  # replaced since the check
            raise FileFormatError(f"{path} is {_kind(st.st_mode)}, not {what}")
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise FileFormatError(f"{path}: cannot read it ({e.strerror})") from None
    if len(data) > limit:
        raise FileFormatError(f"{path}: more than {why} ({limit:,} bytes)")
    return data


def is_regular(path) -> bool:
    """Whether `path` is a regular file (through symlinks), found without opening it."""
    try:
        return stat.S_ISREG(os.stat(Path(path)).st_mode)
    except (OSError, ValueError):
        return False
