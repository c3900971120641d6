"""Counting pairs of values over the pixels of two images: evaluation's confusion matrices and
per-instance histograms.

``count_pairs(a, b, nb, length)`` is ``numpy.bincount(a * nb + b, minlength=length)`` without
the 64-bit copy of the keys that ``bincount`` makes (16 MB for a 2048x1024 frame), in the
optional C extension :mod:`cityscapes_io._count` (runs of equal keys counted in a register, the
GIL released, so the threads of an evaluation count at the same time). Without the extension
(or with ``CITYSCAPES_IO_PURE_PYTHON=1``) numpy counts, with the same result.
"""
from __future__ import annotations

import threading
from typing import Any, NamedTuple, Optional

import numpy as np

from . import decoder

__all__ = ["count_pairs", "count_segments", "segment_ids", "apply_lut"]

_C: Any = decoder.count_module()


def _c_ready(arr: np.ndarray) -> bool:
    return (arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2, 4) and arr.dtype.isnative
            and arr.flags.c_contiguous and arr.flags.aligned)


def count_pairs(a: np.ndarray, b: Optional[np.ndarray], nb: int, length: int, a_min: int = 0) -> np.ndarray:
    """``out[k]`` (int64, ``length`` counters): how many pixels have the key
    ``k = (a - a_min) * nb + b`` (``a - a_min`` when ``b`` is None), over the pixels where
    ``a >= a_min``. ``a`` and ``b``: arrays of unsigned integers of the same size.

    Raises
    ------
    ValueError
        A key is ``length`` or more (the caller's bound was wrong: a bug, not a bad file).
    """
    if b is not None and a.size != b.size:
        raise ValueError(f"count_pairs: {a.size} and {b.size} pixels")
    if _C is not None and _c_ready(a) and (b is None or _c_ready(b)):
        out: np.ndarray = np.zeros(length, np.int64)
        missed = _C.count_pairs(a, a.dtype.itemsize, b, 0 if b is None else b.dtype.itemsize, nb if b is not None
                                else 1, a_min, out)
    else:
        flat = a.ravel()
        other = None if b is None else b.ravel()
        if a_min:
            sel = flat >= a_min
            flat = flat[sel]
            other = None if other is None else other[sel]
        # Keys in the narrowest type that holds every key the dtypes allow (bincount's copy is
        # the cost; a key must not wrap around into a counter below `length`).
        bound = 1 << 63
        if a.dtype.kind == "u" and (b is None or b.dtype.kind == "u"):
            top = int(np.iinfo(a.dtype).max)  # (the values themselves are cast too, and a_min and nb)
            bound = max(top, a_min, nb, max(top - a_min, 0) * (1 if b is None else nb)
                        + (0 if b is None else int(np.iinfo(b.dtype).max)))
        kind = np.uint16 if bound < 1 << 16 else np.int32 if bound < 1 << 31 else np.int64
        key: np.ndarray = flat.astype(kind)
        if a_min:
            key -= kind(a_min)
        if other is not None:
            key *= kind(nb)
            key += other
        out = np.bincount(key.ravel(), minlength=length)
        missed = int(out[length:].sum())
        out = out[:length]
    if missed:
        raise ValueError(f"count_pairs: {missed} pixels with keys past {length}")
    return out


class SegmentCounts(NamedTuple):
    """What :func:`count_segments` counts."""

    counts: np.ndarray  #: int64, ``out[g_value * nb + p_value]``
    g_missing: int  #: ground-truth pixels whose id is not listed (value 0)
    g_zero: int  #: ground-truth pixels of id 0
    p_missing: int
    p_zero: int


def segment_ids(pixels: np.ndarray) -> np.ndarray:
    """The segment ids of an image as flat uint32: ``R + 256 G + 65536 B`` of an ``H×W×3``
    image (COCO panoptic PNGs), else the values themselves."""
    if pixels.ndim == 3:
        rgb = pixels.reshape(-1, 3).astype(np.uint32)
        return rgb[:, 0] | (rgb[:, 1] << 8) | (rgb[:, 2] << 16)
    return pixels.reshape(-1).astype(np.uint32, copy=False)


def _pixel_size(pixels: np.ndarray) -> int:
    """Bytes a pixel as the C counter reads them, 0 when it cannot."""
    if not pixels.flags.c_contiguous or not pixels.dtype.isnative or not pixels.flags.aligned:
        return 0
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        return 3
    if pixels.ndim in (1, 2) and pixels.dtype.kind == "u" and pixels.dtype.itemsize in (2, 4):
        return pixels.dtype.itemsize
    return 0


def count_segments(g: Optional[np.ndarray], g_keys: Any, g_vals: Any, p: np.ndarray,
                   p_keys: Any, p_vals: Any, nb: int, length: int) -> SegmentCounts:
    """Pairs of segments over the pixels of a ground truth ``g`` and a prediction ``p``:
    each pixel's id (``H×W×3`` uint8 images: ``R + 256 G + 65536 B``; else the values) is
    mapped through its side's table (ids ``*_keys``, ascending, to ``*_vals``; 0 for an id not
    listed) and ``counts[g_value * nb + p_value]`` is counted (``p_value`` alone when ``g`` is
    None), with how many pixels of each side were not listed and how many had id 0.

    In C when the extension is built (one pass, no intermediate arrays, the GIL released);
    with numpy otherwise."""
    pk = np.asarray(p_keys, np.uint32)
    pv = np.asarray(p_vals, np.uint32)
    gk = np.asarray(g_keys, np.uint32)
    gv = np.asarray(g_vals, np.uint32)
    psize = _pixel_size(p)
    gsize = 0 if g is None else _pixel_size(g)
    if _C is not None and psize and (g is None or gsize):
        out: np.ndarray = np.zeros(length, np.int64)
        missed, gm, gz, pm, pz = _C.count_segments(g, gsize, gk, gv, p, psize, pk, pv, nb if g is not None else 1,
                                                   out)
        if missed:
            raise ValueError(f"count_segments: {missed} pixels with keys past {length}")
        return SegmentCounts(out, gm, gz, pm, pz)
    p_ids = segment_ids(p)
    p_val = _map(p_ids, pk, pv)
    if g is None:
        counts = count_pairs(p_val, None, 1, length)
        return SegmentCounts(counts, 0, 0, int(counts[:1].sum()), int(np.count_nonzero(p_ids == 0)))
    g_ids = segment_ids(g)
    g_val = _map(g_ids, gk, gv)
    top_g = int(gv.max()) if gv.size else 0
    top_p = int(pv.max()) if pv.size else 0
    if nb < 1 << 16 and top_g * nb + top_p < 1 << 16:  # (keys in 16 bits, half the memory traffic, when none can wrap)
        key = g_val.astype(np.uint16) * np.uint16(nb) + p_val.astype(np.uint16)
    else:
        key = g_val.astype(np.int64) * nb + p_val
    counts = np.bincount(key, minlength=length)
    if counts.size > length:
        raise ValueError(f"count_segments: {int(counts[length:].sum())} pixels with keys past {length}")
    # (the pixels of unlisted ids are the matrix's row and column 0: no pass over the pixels)
    return SegmentCounts(counts, int(counts[:nb].sum()), int(np.count_nonzero(g_ids == 0)),
                         int(counts[::nb].sum()), int(np.count_nonzero(p_ids == 0)))


# Per thread (evaluation works on two frames at once in threads): a table of 2**24 entries,
# segment id -> value, all zero between uses (numpy's path of count_segments).
_LOCAL = threading.local()


def _map(ids: np.ndarray, keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``vals`` of ``ids`` through ``keys`` (0 for ids not listed), as uint16 when the values fit."""
    fits = not vals.size or int(vals.max()) < 1 << 16
    if ids.dtype.itemsize <= 2:
        table = np.zeros(1 << 16, np.uint16 if fits else np.uint32)
        table[keys[keys < 1 << 16]] = vals[keys < 1 << 16]
        return table[ids]
    if not fits:
        pos = np.minimum(np.searchsorted(keys, ids), max(keys.size - 1, 0))
        return np.where(keys[pos] == ids, vals[pos], 0) if keys.size else np.zeros(ids.shape, np.uint32)
    if ids.size and int(ids.max()) >= 1 << 24:  # (not colours: searched instead)
        pos = np.minimum(np.searchsorted(keys, ids), max(keys.size - 1, 0))
        return np.where(keys[pos] == ids, vals[pos], 0) if keys.size else np.zeros(ids.shape, np.uint32)
    big = getattr(_LOCAL, "table", None)
    if big is None:
        big = _LOCAL.table = np.zeros(1 << 24, np.uint16)
    inside = keys < 1 << 24
    big[keys[inside]] = vals[inside]
    try:
        return big[ids]
    finally:
        big[keys[inside]] = 0


def apply_lut(table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """``table[ids]``: a lookup table applied to an image of unsigned integer indices, in C
    (one look-up per run of equal pixels, the GIL released) when the extension is built, else
    ``numpy.take`` (itself twice as fast as ``table[ids]`` on a frame).

    Raises
    ------
    IndexError
        An index is past the end of the table.
    """
    if (_C is not None and _c_ready(ids) and table.ndim == 1 and table.dtype.kind in "ui"
            and table.dtype.itemsize in (1, 2, 4) and table.dtype.isnative and table.flags.c_contiguous
            and table.flags.aligned):
        out: np.ndarray = np.empty(ids.shape, table.dtype)
        if _C.apply_lut(ids, ids.dtype.itemsize, table, table.dtype.itemsize, out):
            raise IndexError(f"apply_lut: indices past the table's {table.size} entries")
        return out
    return np.take(table, ids)
