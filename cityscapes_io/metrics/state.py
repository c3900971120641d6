"""A metric's state and its bytes.

A :class:`State` is what a metric has counted: ``sums``, the integer parts summed as frames come
(a confusion matrix, TP / FP / FN counts: exact in any order), and ``records``, one per frame
keyed by ``(split, frame key)``, the part whose sum depends on the order of the additions (the
floating-point weights and IoUs), kept per frame so that :meth:`State.ordered` can give them in
the order :func:`cityscapes_io.evaluate` adds frames.

A record is a tuple of numpy arrays with a fixed layout per task (:class:`Layout`). The bytes of
a state (:func:`encode`, :func:`decode`) keep each integer array in the narrowest type that holds
its values and the sums as their non-zero entries; nothing is pickled, so bytes from elsewhere
are read as data only: any inconsistency is a ValueError.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Sequence, Tuple

import numpy as np

from ..names import sort_key

__all__ = ["State", "Layout", "encode", "decode", "encode_records", "decode_records", "MAGIC"]

#: The first bytes of an encoded state (the last one is the format's version).
MAGIC = b"CSIOMET\x01"

Key = Tuple[str, str]

# Array types as stored: code -> numpy dtype (little-endian).
_CODES: Dict[int, np.dtype] = {k: np.dtype(t) for k, t in enumerate(
    ("|b1", "|u1", "<u2", "<u4", "<i8", "|i1", "<i2", "<i4", "<f8"))}
_CODE_OF = {dt: k for k, dt in _CODES.items()}
_UNSIGNED: Tuple[np.dtype, ...] = (np.dtype("|u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<i8"))
_SIGNED: Tuple[np.dtype, ...] = (np.dtype("|i1"), np.dtype("<i2"), np.dtype("<i4"), np.dtype("<i8"))


@dataclass(frozen=True)
class Layout:
    """The arrays of one task's per-frame record: each one's canonical type (what the task's
    accumulation reads back) and number of dimensions, and the shape of the sums."""

    name: str
    dtypes: Tuple[str, ...]
    ndims: Tuple[int, ...]
    sums_shape: Tuple[int, ...]


@dataclass
class State:
    """Integer sums and per-frame records (see the module's documentation)."""

    sums: np.ndarray
    records: Dict[Key, Tuple[np.ndarray, ...]] = field(default_factory=dict)

    @classmethod
    def empty(cls, layout: Layout) -> "State":
        return cls(np.zeros(layout.sums_shape, np.int64))

    def add_frame(self, key: Key, sums: Any, record: Tuple[np.ndarray, ...]) -> None:
        """Count one frame (its key must be new)."""
        if key in self.records:
            raise ValueError(duplicate_message([key]))
        if sums is not None:
            self.sums += sums
        self.records[key] = record

    def add(self, other: "State") -> None:
        """Add another state (no frame may be in both)."""
        both = [k for k in other.records if k in self.records]
        if both:
            raise ValueError(duplicate_message(both))
        self.sums += other.sums
        self.records.update(other.records)

    def copy(self) -> "State":
        return State(self.sums.copy(), dict(self.records))

    def ordered(self) -> Iterator[Tuple[np.ndarray, ...]]:
        """The records in the order evaluation adds frames: by split, then by
        :func:`cityscapes_io.names.sort_key` of the frame key (city, sequence, frame number)."""
        for key in sorted(self.records, key=lambda k: (k[0], sort_key(k[1]))):
            yield self.records[key]


def duplicate_message(keys: Sequence[Key]) -> str:
    shown = ", ".join(f"{split}/{frame}" for split, frame in sorted(keys)[:5])
    more = f" ({len(keys)} frames)" if len(keys) > 5 else ""
    return (f"frame(s) counted twice: {shown}{more}. A frame is counted once: reset() the metric between "
            f"evaluations, give each frame to one rank (DistributedSampler pads the last batch with frames of "
            f"other ranks unless the number of frames divides evenly; CityscapesIterable never repeats one), and "
            f"merge() or sync() metrics of disjoint frames")


# -- bytes --------------------------------------------------------------------------------------------
def _narrow(arr: np.ndarray) -> np.ndarray:
    """An integer array in the narrowest stored type holding its values; others as stored."""
    if arr.dtype.kind == "b":
        return arr.astype("|b1", copy=False)
    if arr.dtype.kind == "f":
        return arr.astype("<f8", copy=False)
    if arr.dtype.kind not in "ui":
        raise TypeError(f"cannot store an array of type {arr.dtype}")
    lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
    for dt in (_UNSIGNED if lo >= 0 else _SIGNED):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return arr.astype(dt, copy=False)
    raise OverflowError("integer values past 64 bits")


def _put(out: List[bytes], arr: np.ndarray) -> None:
    stored = _narrow(np.asarray(arr))
    out.append(struct.pack("<BB", _CODE_OF[stored.dtype], stored.ndim))
    out.append(struct.pack(f"<{stored.ndim}Q", *stored.shape))
    out.append(np.ascontiguousarray(stored).tobytes())


def _put_sparse(out: List[bytes], arr: np.ndarray) -> None:
    arr = np.asarray(arr)
    flat = arr.ravel()
    where = np.flatnonzero(flat)
    _put(out, np.array(arr.shape, np.int64))
    _put(out, where)
    _put(out, flat[where])


def _put_text(out: List[bytes], text: str) -> None:
    data = text.encode("utf-8")
    out.append(struct.pack("<I", len(data)))
    out.append(data)


class _Reader:
    """Reads what the ``_put`` functions wrote, refusing anything inconsistent."""

    def __init__(self, data: bytes, offset: int = 0):
        self.data = memoryview(data)
        self.pos = offset

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError("a metric state ends early (truncated or not a metric state)")
        part = self.data[self.pos:self.pos + n]
        self.pos += n
        return part

    def unpack(self, fmt: str) -> Tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def text(self) -> str:
        (n,) = self.unpack("<I")
        try:
            return bytes(self.take(n)).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("a metric state holds text that is not UTF-8") from None

    def array(self, dtype: str, ndim: int) -> np.ndarray:
        code, n_dims = self.unpack("<BB")
        if code not in _CODES:
            raise ValueError(f"a metric state holds an array of unknown type code {code}")
        if n_dims != ndim:
            raise ValueError(f"a metric state holds a {n_dims}-d array where a {ndim}-d one belongs")
        shape = self.unpack(f"<{n_dims}Q")
        stored = _CODES[code]
        count = int(np.prod(shape, dtype=np.int64)) if n_dims else 1
        raw = self.take(count * stored.itemsize)
        target: np.dtype = np.dtype(dtype)
        if (stored.kind == "f") != (target.kind == "f"):
            raise ValueError(f"a metric state holds {stored} values where {target} ones belong")
        return np.frombuffer(raw, stored, count).reshape(shape).astype(target)

    def sparse(self, dtype: str) -> np.ndarray:
        shape = tuple(int(n) for n in self.array("<i8", 1))
        where = self.array("<i8", 1)
        values = self.array(dtype, 1)
        if any(n < 0 for n in shape) or len(shape) > 4:
            raise ValueError("a metric state's sums have an impossible shape")
        size = int(np.prod(shape, dtype=np.int64))
        if where.size != values.size or (where.size and (int(where.min()) < 0 or int(where.max()) >= size)):
            raise ValueError("a metric state's sparse array is inconsistent")
        out: np.ndarray = np.zeros(size, dtype)
        out[where] = values
        return out.reshape(shape)


def encode_records(records: Dict[Key, Tuple[np.ndarray, ...]], layout: Layout) -> bytes:
    """The bytes of per-frame records (see :func:`decode_records`)."""
    out: List[bytes] = [struct.pack("<Q", len(records))]
    for (split, frame), record in records.items():
        if len(record) != len(layout.dtypes):
            raise ValueError(f"a {layout.name} record has {len(record)} arrays, not {len(layout.dtypes)}")
        _put_text(out, split)
        _put_text(out, frame)
        for arr in record:
            _put(out, arr)
    return b"".join(out)


def _read_records(reader: _Reader, layout: Layout) -> Dict[Key, Tuple[np.ndarray, ...]]:
    (count,) = reader.unpack("<Q")
    records: Dict[Key, Tuple[np.ndarray, ...]] = {}
    for _ in range(count):
        key = (reader.text(), reader.text())
        if key in records:
            raise ValueError(duplicate_message([key]))
        records[key] = tuple(reader.array(dt, nd) for dt, nd in zip(layout.dtypes, layout.ndims))
    return records


def decode_records(data: bytes, layout: Layout) -> Dict[Key, Tuple[np.ndarray, ...]]:
    """Per-frame records from :func:`encode_records`' bytes, each array in its canonical type."""
    reader = _Reader(data)
    records = _read_records(reader, layout)
    if reader.pos != len(reader.data):
        raise ValueError("bytes after the end of the metric records")
    return records


def encode(state: State, layout: Layout, config: Dict[str, Any]) -> bytes:
    """The bytes of a metric's state: :data:`MAGIC`, the task's name, its configuration (JSON),
    the sums (non-zero entries) and the records; :func:`decode` reads them back."""
    out: List[bytes] = [MAGIC]
    _put_text(out, layout.name)
    _put_text(out, json.dumps(config, sort_keys=True))
    _put_sparse(out, state.sums)
    out.append(encode_records(state.records, layout))
    return b"".join(out)


def decode(data: bytes, layout: Layout, offset: int = 0) -> Tuple[State, Dict[str, Any], int]:
    """The state, configuration and end offset of :func:`encode`'s bytes at ``offset`` (the
    sums have the shape the bytes give: the caller compares it with the one it expects)."""
    reader = _Reader(data, offset)
    if bytes(reader.take(len(MAGIC))) != MAGIC:
        raise ValueError("not the bytes of a cityscapes_io metric (or of another version)")
    name = reader.text()
    if name != layout.name:
        raise ValueError(f"the bytes of a {name} metric, not of a {layout.name} one")
    try:
        config = json.loads(reader.text())
    except ValueError:
        raise ValueError("a metric state's configuration is not JSON") from None
    sums = reader.sparse("<i8")
    records = _read_records(reader, layout)
    return State(sums, records), config if isinstance(config, dict) else {}, reader.pos
