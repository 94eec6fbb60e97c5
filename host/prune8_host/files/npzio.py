"""Reading and writing .npy / .npz files with one-line errors.

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

from .output import output_file

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: fixed, so output is stable


def save_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write arrays to an uncompressed .npz that np.load reads, deterministically.

    Written as files.output writes every output: an interrupted save keeps the old file.
    """
    with output_file(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, array in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a .npz (by name) or a .npy (named after the file stem)."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise FileFormatError(f"{path}: not a NumPy .npy/.npz file ({e})") from None
    if isinstance(data, np.ndarray):
        return {path.stem: data}
    try:
        return {name: data[name] for name in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise FileFormatError(f"{path}: unreadable array in .npz ({e})") from None
    finally:
        data.close()
