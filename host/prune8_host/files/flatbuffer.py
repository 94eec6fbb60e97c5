"""Reading a flatbuffer that may be hostile, under a budget (files.tflite uses it).

The flatbuffers accessors follow whatever offsets and lengths the file holds. A damaged
offset raises somewhere deep inside them; a hostile file can list one table a million
times, in a list of subgraphs each listing it again, so that unpacking it (as TFLM's
own Python runtime does with the object API before it runs a model) takes hours and
gigabytes. `Walk` counts every table visited and every vector element read against a
budget in proportion to the file's size, and notes the highest byte of every table and
vector read: where the flatbuffer's own structure ends. `Walk.everything` reads every
field of every table reachable from the root, by the generated reader classes, so that
nothing after it (the reader, TFLM) meets an offset that leads outside the file; a
table it reaches twice is refused (a flatbuffers builder, and so every converter, writes
each table once: only a crafted file lists one again), so that it reads each table once
and its time is in proportion to the file's size, not merely bounded by a budget.
"""

from __future__ import annotations

import struct

import numpy as np
from flatbuffers import number_types as N
from flatbuffers.table import Table

from prune8_host.errors import FileFormatError

# What the flatbuffers accessors raise when an offset or length read from the file leads
# outside it: struct.unpack_from past the end, a position flatbuffers' number check
# refuses, numpy.frombuffer asked for more bytes than there are.
DAMAGED = (struct.error, TypeError, ValueError, IndexError, OverflowError)

# The schema's unions: the field of a table that holds one -> the union's enum, whose
# member names are the names of the tables it may hold.
_UNIONS = {"BuiltinOptions": "BuiltinOptions", "BuiltinOptions2": "BuiltinOptions2",
           "Details": "QuantizationDetails", "ArraySegments": "SparseIndexVector",
           "ArrayIndices": "SparseIndexVector"}


class Walk:
    """The budget and the extent of one file's flatbuffer (module docstring)."""

    def __init__(self, data: bytes, path, schema):
        self.data, self.path, self.schema = data, path, schema
        self.base = np.frombuffer(data, np.uint8)
        self.end = 0
        self._fields: dict[type, list] = {}
        self._seen: set[int] = set()
        self.renew()

    def renew(self) -> None:
        """A fresh budget: a table takes at least 4 bytes of the file, and each vector
        element or string byte is read at most a few times."""
        self.tables = len(self.data) // 4 + 64
        self.elements = 4 * len(self.data) + 4096

    def _spent(self) -> FileFormatError:
        return FileFormatError(f"{self.path}: damaged TFLite flatbuffer (it refers to more "
                               f"tables and values than {len(self.data):,} bytes can hold)")

    def visit(self, table):
        """Count a table (a generated reader object) against the budget; note its end."""
        self.tables -= 1
        if self.tables < 0:
            raise self._spent()
        tab = table._tab
        vtable = tab.Pos - tab.Get(N.SOffsetTFlags, tab.Pos)
        self.end = max(self.end, tab.Pos + tab.Get(N.VOffsetTFlags, vtable + 2))
        return table

    def array(self, a) -> np.ndarray:
        """A vector read as a NumPy view (the accessors give 0 when it is absent: an empty
        array); counted against the budget, its end noted."""
        if isinstance(a, int):
            return np.zeros(0, np.uint8)
        self.spend(a.size)
        self.end = max(self.end, self.offset(a) + a.nbytes)
        return a

    def spend(self, elements: int) -> None:
        self.elements -= elements
        if self.elements < 0:
            raise self._spent()

    def offset(self, view: np.ndarray) -> int:
        """Where a view into the file's bytes starts in the file."""
        return view.ctypes.data - self.base.ctypes.data

    def everything(self, table) -> None:
        """Read every field of `table` and of every table under it (module docstring)."""
        pos = table._tab.Pos
        if pos in self._seen:
            raise FileFormatError(f"{self.path}: damaged TFLite flatbuffer (the table at byte "
                                  f"{pos:,} is listed twice; a converter writes each once)")
        self._seen.add(pos)
        self.visit(table)
        for name, kind in self._layout(type(table)):
            if kind == "numbers":
                self.array(getattr(table, name + "AsNumpy")())
            elif kind == "vector":
                get = getattr(table, name)
                for j in range(getattr(table, name + "Length")()):
                    self._value(get(j))
            elif kind == "union":
                self._union(getattr(table, name)(), getattr(table, name + "Type")(),
                            _UNIONS[name])
            else:
                self._value(getattr(table, name)())

    def _value(self, v) -> None:
        if isinstance(v, bytes):  # a string
            self.spend(len(v) + 1)
        elif hasattr(v, "_tab"):
            self.everything(v)

    def _union(self, tab: Table | None, kind: int, enum: str) -> None:
        names = {v: k for k, v in vars(getattr(self.schema, enum)).items()
                 if not k.startswith("_")}
        cls = getattr(self.schema, names.get(kind, "NONE"), None)
        if tab is None or cls is None:  # none, or a kind this schema does not know
            return
        member = cls()
        member.Init(tab.Bytes, tab.Pos)
        self.everything(member)

    def _layout(self, cls: type) -> list[tuple[str, str]]:
        """(field, kind) of a generated reader class, from its accessor methods: a vector
        of numbers has NameAsNumpy, any other vector NameLength, a union NameType."""
        if cls not in self._fields:
            methods = {k for k, v in vars(cls).items() if callable(v) and k[:1].isupper()}
            skip = ("Init", "GetRootAs", "GetRootAs" + cls.__name__,
                    cls.__name__ + "BufferHasIdentifier")
            fields = []
            for name in sorted(methods):
                if name in skip or name.endswith(("Length", "IsNone", "AsNumpy")) or \
                        (name.endswith("Type") and name[:-4] in _UNIONS):
                    continue
                kind = "numbers" if name + "AsNumpy" in methods else \
                    "vector" if name + "Length" in methods else \
                    "union" if name in _UNIONS and name + "Type" in methods else "scalar"
                fields.append((name, kind))
            self._fields[cls] = fields
        return self._fields[cls]
