"""Writing an output file (every -o) so that nothing is lost on a fault (docs/spec.md
§9.5).

- A regular file, or a new path: written to a temporary file of a name unique to this
  writer, in the target's own directory, then renamed over the target (atomic on
  POSIX). Two writers to one output each leave a whole file (the last rename wins), a
  failed or interrupted write leaves the old file and no temporary file behind, and an
  existing file keeps its permissions.
- A symlink: written through to the file it points to (the link stays a link).
- A character device or a FIFO (`-o /dev/null`, a pipe): written to, never replaced.
- A directory or any other kind of file: refused, with what to give instead.

An output's name says its format when it ends in one of FORMAT_SUFFIXES: a writer that
writes another format there refuses it (`check_suffix`) before writing anything.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from prune8_host.errors import UsageError


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one existing file (through links and relative paths)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(out: str | os.PathLike, *inputs) -> None:
    """Refuse, before any work is done, an output that cannot be written as
    output_file writes it, or that is one of the inputs (it would destroy it)."""
    for given in inputs:
        if given is not None and same_file(out, given):
            raise UsageError(f"{out}: the output is the input {given}; write the result "
                             f"to another file")
    target = Path(os.path.realpath(out))
    if target.is_dir():
        raise UsageError(f"{out} is a directory: give the output's file name")
    if not target.exists() and not target.parent.is_dir():
        raise UsageError(f"{out}: no directory {target.parent} to write it in")


# The extensions of the formats prune8 writes, with how a message names each. A packed
# model (prune8 pack, docs/sparse.md) is prune8's own container, named after its magic.
PACKED_SUFFIX = ".p8s"
FORMAT_SUFFIXES = {".npz": "an .npz", ".npy": "an .npy", ".tflite": "a .tflite",
                   PACKED_SUFFIX: "a prune8 packed model (.p8s)"}


def check_suffix(path: str | os.PathLike, suffix: str) -> None:
    """Refuse to write a file of format `suffix` (e.g. ".npz") under a name that ends in
    another of FORMAT_SUFFIXES; a name with none of them is written as it is."""
    named = Path(path).suffix.lower()
    if named in FORMAT_SUFFIXES and named != suffix:
        raise UsageError(f"{path}: this output is {FORMAT_SUFFIXES[suffix]} file, not "
                         f"{FORMAT_SUFFIXES[named]}: name it {Path(path).stem}{suffix}")


@contextlib.contextmanager
def output_file(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file to write `path` with (module docstring); committed on success."""
    target = Path(os.path.realpath(path))  # through symlinks, to what they point to
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise UsageError(f"{path}: cannot write it ({e.strerror})") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path} is a directory: give the output's file name")
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        # A device or a pipe neither seeks nor tells (zip writers need both): the output
        # is made in memory and written in one go.
        buf = io.BytesIO()
        yield buf
        with open(target, "wb") as f:
            f.write(buf.getvalue())
        return
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{path} is not a regular file (nor a device or a pipe): "
                         f"give another output file")
    if not target.parent.is_dir():
        raise UsageError(f"{path}: no directory {target.parent} to write it in")
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_output(path: str | os.PathLike, data: bytes) -> int:
    """Write `data` as the output `path`; returns its size."""
    with output_file(path) as f:
        f.write(data)
    return len(data)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
