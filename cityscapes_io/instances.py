"""Instances: the segments of a frame, as records that hold no mask until one is asked for.

:func:`segment_stats` finds every segment of an ``instanceIds`` array with its area and bounding
box in one pass over run-lengths, so listing the instances of a frame never builds one
full-frame mask per instance.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from .labels import Label

__all__ = ["Instance", "segment_stats", "INSTANCE_DIVISOR", "MAX_INSTANCE_VALUE", "class_of", "class_of_array",
           "split_value", "instance_value", "train_value_lut"]

#: ``instanceIds`` value ``v >= 1000`` encodes label ``v // 1000`` and instance ``v % 1000``.
INSTANCE_DIVISOR = 1000
#: The largest value 16-bit instanceIds hold (so instances exist for label ids up to 65).
MAX_INSTANCE_VALUE = 0xFFFF


def split_value(value: int) -> Tuple[int, Optional[int]]:
    """``(label id, instance number)`` of an ``instanceIds`` value; the number is None for a
    whole-class region (a value below 1000)."""
    return (value // INSTANCE_DIVISOR, value % INSTANCE_DIVISOR) if value >= INSTANCE_DIVISOR else (value, None)


def instance_value(label_id: int, number: Optional[int]) -> int:
    """The ``instanceIds`` value of instance ``number`` of a label (the plain label id for a
    region, ``number`` None); ValueError when it does not fit 16 bits."""
    value = label_id if number is None else label_id * INSTANCE_DIVISOR + number
    if not 0 <= value <= MAX_INSTANCE_VALUE or (number is not None and not 0 <= number < INSTANCE_DIVISOR):
        raise ValueError(f"label id {label_id} with instance number {number} does not fit 16-bit instanceIds "
                         f"(instances need label ids up to 65, numbers 0..999)")
    return value


def train_value_lut(values, train_ids: np.ndarray) -> np.ndarray:
    """A 65536-entry uint16 lookup table from ``instanceIds`` values to ``instanceTrainIds``
    values, for the given values: an instance ``id * 1000 + n`` becomes ``train * 1000 + n``,
    a region (value below 1000) the plain train id, and everything whose train id is 255
    (ignore) 255. ``train_ids`` maps label ids to train ids (:meth:`LabelMap.train_id_table`)."""
    lut = np.full(MAX_INSTANCE_VALUE + 1, 255, dtype=np.uint16)
    for v in values:
        v = int(v)
        label, number = split_value(v)
        t = int(train_ids[label]) if 0 <= label < len(train_ids) else 255
        lut[v] = t if number is None or t == 255 else t * INSTANCE_DIVISOR + number
    return lut


def _as_int(value, what: str) -> int:
    """``value`` as a Python int (a numpy integer too); ValueError for anything else."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {type(value).__name__} {value!r}") from None


def _as_score(value) -> float:
    """``value`` as a confidence (a Python float; a numpy float too); ValueError for anything
    that is not a real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"score must be a number, got {type(value).__name__} {value!r}")
    return float(value)


def class_of(value: int) -> int:
    """Label id of an ``instanceIds`` value: ``v // 1000`` for ``v >= 1000``, ``v`` below."""
    return split_value(value)[0]


def class_of_array(ids: np.ndarray) -> np.ndarray:
    """:func:`class_of` of every pixel: ``uint8`` when the labels fit, else ``uint16``. An 8-bit
    array holds plain label ids already and is returned as is."""
    if ids.dtype == np.uint8:
        return ids
    lab = np.where(ids >= INSTANCE_DIVISOR, ids // INSTANCE_DIVISOR, ids)
    return lab.astype(np.uint8) if lab.size and lab.max() < 256 else lab.astype(np.uint16)


@dataclass(frozen=True, eq=False)
class Instance:
    """One segment of a frame.

    Attributes
    ----------
    value : int
        The raw ``instanceIds`` value (``label_id * 1000 + id``, or ``label_id`` for a crowd or
        stuff region).
    label_id : int
        Index into the frame's label map.
    label : Label or None
        The label (None only for an instance built in memory with an unknown label map).
    id : int or None
        Instance number (0 is valid, gaps are normal); None for whole-class regions.
    is_crowd : bool
        True when the label cannot tell instances apart (value < 1000).
    area : int
        Number of pixels.
    bbox : (x, y, w, h)
        Bounding box in pixels.
    score : float or None
        A prediction's confidence (the instance evaluation reads it; None: 1.0 there).
    """

    value: int
    label_id: int
    label: Optional[Label]
    id: Optional[int]
    is_crowd: bool
    area: int
    bbox: Tuple[int, int, int, int]
    _plane: Optional[np.ndarray] = field(repr=False, compare=False, default=None)
    _match: object = field(repr=False, compare=False, default=None)
    _offset: Tuple[int, int] = field(repr=False, compare=False, default=(0, 0))
    _frame_shape: Tuple[int, int] = field(repr=False, compare=False, default=(0, 0))
    score: Optional[float] = None

    @property
    def mask_crop(self) -> np.ndarray:
        """Boolean mask of the bounding box region (``h × w``)."""
        x, y, w, h = self.bbox
        ox, oy = self._offset
        assert self._plane is not None, "an Instance is made by a frame or by from_mask"
        return self._plane[y - oy : y - oy + h, x - ox : x - ox + w] == self._match

    @property
    def shape(self) -> Tuple[int, int]:
        """``(height, width)`` of the frame the instance belongs to."""
        return self._frame_shape

    @property
    def mask(self) -> np.ndarray:
        """Full-frame boolean mask, built on access (not cached)."""
        out: np.ndarray = np.zeros(self._frame_shape, dtype=bool)
        x, y, w, h = self.bbox
        out[y : y + h, x : x + w] = self.mask_crop
        return out

    @classmethod
    def from_mask(
        cls,
        mask: np.ndarray,
        *,
        label_id: int,
        id: Optional[int] = None,
        is_crowd: bool = False,
        label: Optional[Label] = None,
        score: Optional[float] = None,
    ) -> "Instance":
        """Build an instance from a full-frame boolean (or 0/1) mask.

        ``value`` is ``label_id * 1000 + id`` for a numbered, non-crowd instance and ``label_id``
        otherwise (an instance without a number gets one when written). ``score``, a prediction's
        confidence, becomes a Python float (a numpy float from a model's output too).
        """
        # Numpy integers (a label from ``np.unique(prediction)``) become Python ints: ``label_id *
        # 1000`` overflows a uint8 on numpy 2, and wraps silently in older numpy.
        label_id = _as_int(label_id, "label id")
        id = None if id is None else _as_int(id, "instance number")
        score = None if score is None else _as_score(score)
        mask = np.asarray(mask).astype(bool, copy=False)
        if mask.ndim != 2:
            raise ValueError(f"mask must be 2-D, got shape {mask.shape}")
        rows = np.flatnonzero(mask.any(axis=1))
        cols = np.flatnonzero(mask.any(axis=0))
        if len(rows):
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        else:
            y0 = y1 = x0 = x1 = 0
        bbox = (x0, y0, x1 - x0, y1 - y0)
        crop = mask[y0:y1, x0:x1].copy()
        if not 0 <= label_id < INSTANCE_DIVISOR or (not is_crowd and label_id * INSTANCE_DIVISOR > 0xFFFF):
            raise ValueError(f"label id {label_id} does not fit instanceIds (regions: below 1000; "
                             f"numbered instances: up to 65)")
        if id is not None and not is_crowd:
            if not 0 <= id < INSTANCE_DIVISOR:
                raise ValueError(f"instance number {id} out of range 0..999")
            value = label_id * INSTANCE_DIVISOR + id
        else:
            value = label_id
        return cls(value, label_id, label, None if is_crowd else id, bool(is_crowd), int(crop.sum()), bbox, crop,
                   True, (x0, y0), mask.shape, score)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Instance):
            return NotImplemented
        return (
            (self.value, self.label_id, self.id, self.is_crowd, self.area, self.bbox)
            == (other.value, other.label_id, other.id, other.is_crowd, other.area, other.bbox)
            and np.array_equal(self.mask_crop, other.mask_crop)
        )

    __hash__ = None  # type: ignore[assignment]


def segment_stats(arr: np.ndarray):
    """Every distinct value of a 2-D array with its area and bounding box, in one pass.

    Works on run-lengths along rows: run starts are found with one vectorised comparison, and
    areas and boxes are reduced per value over runs, which are far fewer than pixels.

    Returns
    -------
    values, areas, x0, y0, x1, y1 : numpy arrays
        One entry per distinct value, sorted by value; ``x1``/``y1`` are exclusive.
    """
    h, w = arr.shape
    if h == 0 or w == 0:
        e: np.ndarray = np.zeros(0, dtype=np.int64)
        return arr.reshape(-1)[:0], e, e, e, e, e
    starts = np.empty((h, w), dtype=bool)
    starts[:, 0] = True
    np.not_equal(arr[:, 1:], arr[:, :-1], out=starts[:, 1:])
    idx = np.flatnonzero(starts)
    vals = arr.reshape(-1)[idx]
    ends = np.empty_like(idx)
    ends[:-1] = idx[1:]
    ends[-1] = h * w
    # A run never crosses a row: every row begins with a run start.
    order = np.argsort(vals, kind="stable")
    vals_s = vals[order]
    idx_s = idx[order]
    lengths = (ends - idx)[order]
    first = np.flatnonzero(np.r_[True, vals_s[1:] != vals_s[:-1]])
    rows = idx_s // w
    cols = idx_s - rows * w
    areas = np.add.reduceat(lengths, first)
    # Stable sort keeps runs of one value in raster order: first run has the top row, last the bottom.
    last = np.r_[first[1:], len(vals_s)] - 1
    y0 = rows[first]
    y1 = rows[last] + 1
    x0 = np.minimum.reduceat(cols, first)
    x1 = np.maximum.reduceat(cols + lengths, first)
    return vals_s[first], areas, x0, y0, x1, y1
