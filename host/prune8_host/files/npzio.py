"""Reading and writing .npy / .npz files with one-line errors (docs/spec.md §9.4, §9.5).

`save_npz` writes the same bytes for the same arrays on every run (fixed zip
timestamps, sorted order kept as given), so shipped examples can be regenerated
and compared byte for byte. Loading never unpickles.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from prune8_host.errors import FileFormatError

from .inputs import check_input
from .output import check_suffix, output_file

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: fixed, so output is stable


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays to an uncompressed .npz that np.load reads, deterministically.

    Written as files.output writes every output: an interrupted save keeps the old file;
    a name that says another format (x.npy, x.tflite) is refused.
    """
    check_suffix(path, ".npz")
    with output_file(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


NPY_MAGIC = b"\x93NUMPY"


def _read_npy(f, where: str) -> np.ndarray:
    """One .npy array from an open file, refusing object (pickled) data before reading it."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version[0]}.{version[1]}")
        read_header = fmt.read_array_header_1_0 if version == (1, 0) else \
            fmt.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise FileFormatError(f"{where}: not a readable .npy array ({e})") from None
    if dtype.hasobject:
        raise FileFormatError(f"{where}: holds Python objects (pickled data), which prune8 "
                              f"never loads: save plain numeric arrays")
    count = int(np.prod(shape, dtype=np.int64))
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise FileFormatError(f"{where}: truncated .npy array ({len(data)} of "
                              f"{count * dtype.itemsize} data bytes)")
    a = np.frombuffer(data, dtype=dtype)
    return a.reshape(shape[::-1]).T.copy() if fortran else a.reshape(shape).copy()


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a .npz (by name) or a .npy (named after the file stem).

    An .npz is read member by member: each must be an .npy array (member NAME.npy, or
    NAME), no two members may give the same name, and object arrays are refused.
    """
    path = Path(path)
    check_input(path, "a .npy or .npz file")  # a FIFO or a device is not opened
    try:
        with open(path, "rb") as f:
            head = f.read(len(NPY_MAGIC))
            if head == NPY_MAGIC:
                f.seek(0)
                return {path.stem: _read_npy(f, str(path))}
    except FileNotFoundError:
        raise FileFormatError(f"{path}: no such file") from None
    except OSError as e:
        raise FileFormatError(f"{path}: cannot read it ({e.strerror})") from None
    if not zipfile.is_zipfile(path):
        raise FileFormatError(f"{path}: not a NumPy .npy or .npz file (neither an .npy array "
                              f"nor a zip archive of them)")
    out: dict[str, np.ndarray] = {}
    members: dict[str, str] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                member = info.filename
                name = member[:-4] if member.endswith(".npy") else member
                if name in members:
                    raise FileFormatError(f"{path}: members {members[name]!r} and {member!r} "
                                          f"are both array {name!r}: keep one")
                members[name] = member
                with zf.open(info) as f:
                    out[name] = _read_npy(f, f"{path}: member {member!r}")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
        raise FileFormatError(f"{path}: damaged zip archive ({e})") from None
    if not out:
        raise FileFormatError(f"{path}: an .npz with no arrays in it")
    return out
