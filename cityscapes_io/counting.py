"""Counting pairs of values over the pixels of two images: evaluation's confusion matrices and
per-instance histograms.

``count_pairs(a, b, nb, length)`` is ``numpy.bincount(a * nb + b, minlength=length)`` without
the 64-bit copy of the keys that ``bincount`` makes (16 MB for a 2048x1024 frame), in the
optional C extension :mod:`cityscapes_io._count` (runs of equal keys counted in a register, the
GIL released, so the threads of an evaluation count at the same time). Without the extension
(or with ``CITYSCAPES_IO_PURE_PYTHON=1``) numpy counts, with the same result.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import decoder

__all__ = ["count_pairs"]

_C: Any = decoder.count_module()


def _c_ready(arr: np.ndarray) -> bool:
    return arr.dtype.kind == "u" and arr.dtype.itemsize in (1, 2, 4) and arr.dtype.isnative and arr.flags.c_contiguous


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
        key: np.ndarray = flat.astype(np.int64) - a_min
        if other is not None:
            key = key * nb + other
        out = np.bincount(key, minlength=length)
        missed = int(out[length:].sum())
        out = out[:length]
    if missed:
        raise ValueError(f"count_pairs: {missed} pixels with keys past {length}")
    return out
