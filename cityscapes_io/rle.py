"""COCO run-length encoding (RLE) and COCO polygons, in numpy, exact to pycocotools.

A COCO RLE is ``{"size": [h, w], "counts": ...}``: the mask is read in column-major (Fortran)
order, pixel ``(x, y)`` at index ``x * h + y``, and ``counts`` are the lengths of its runs,
alternately of 0s and 1s, starting with a (possibly empty) run of 0s, summing to ``h * w``.
``counts`` is either that list of integers (*uncompressed*, what COCO's ``iscrowd`` annotations
hold) or a string (*compressed*, what pycocotools' ``mask.encode`` writes): each count, from
the fourth on, is replaced by its difference with the count two places before it; each
resulting signed integer is written in little-endian 5-bit groups, as few as hold it in two's
complement, each group as one character ``chr(48 + group)``, with ``32`` added to every group
but the last.

- :func:`encode` / :func:`decode` / :func:`area` / :func:`bbox`: pycocotools' ``encode``,
  ``decode``, ``area`` and ``toBbox`` (the same ``counts`` string, ``area`` and ``bbox``),
  vectorised: no Python loop over pixels or runs.
- :func:`encode_segments`: the RLE of several values of one ``instanceIds`` array at once, from
  one column-major pass over the array (no full-frame mask per segment).
- :func:`polygons_to_mask`: a COCO polygon segmentation drawn as pycocotools draws it
  (``frPyObjects`` + ``merge`` + ``decode``, that is ``COCO.annToMask``): each polygon on its own
  by pycocotools' rules (vertices scaled by 5 and rounded, the outline walked on that fine grid,
  a pixel filled when its centre is inside by the even-odd rule), then the union.
- :func:`mask_to_polygons`: a mask as COCO polygons that :func:`polygons_to_mask` (and so
  pycocotools) draws back to the same mask exactly; holes included (see there).

Every malformed RLE or polygon raises :class:`~cityscapes_io.errors.InvalidFileError` with
the ``path`` given (the file, and the annotation, being read) and the reason, before anything
of its declared size is allocated: sizes above :data:`~cityscapes_io.png.MAX_PIXELS`, counts
that are not integers in ``0..h*w`` or whose exact sum is not ``h * w`` (so no count wrapping
int64 reaches numpy), polygon points far outside the image.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import InvalidFileError
from .png import MAX_PIXELS

__all__ = ["encode", "decode", "area", "bbox", "encode_segments", "polygons_to_mask", "mask_to_polygons"]

#: A COCO RLE: ``{"size": [h, w], "counts": str | bytes | list of int}``.
RLE = Dict[str, Any]

_DEFAULT_PATH = "<rle>"
#: pycocotools' polygon rasteriser works on a grid 5 times finer than the pixels.
_POLY_SCALE = 5
#: Largest number of 5-bit groups one compressed count may take: 7 hold any difference of two
#: 32-bit counts (pycocotools' counts are 32-bit), and keep each decoded count within 2**34 of
#: the count two places before it (so that checking the range of the counts is exact: _counts).
_MAX_GROUPS = 7
#: A polygon's points may lie up to one image side and this many pixels more outside the image.
_MARGIN = 100


# ---------------------------------------------------------------------------------------------
# counts <-> compressed string


def _groups_needed(x: np.ndarray) -> np.ndarray:
    """5-bit groups each signed integer takes: the smallest k with -2**(5k-1) <= x < 2**(5k-1)."""
    k: np.ndarray = np.ones(len(x), dtype=np.int64)
    for j in range(1, 13):
        bound = 1 << (5 * j - 1)
        outside = (x < -bound) | (x >= bound)
        if not outside.any():
            break
        k += outside
    return k


def _compress(counts: np.ndarray, starts: Optional[np.ndarray] = None) -> List[str]:
    """The compressed strings of several lists of counts, given concatenated (list ``i``
    beginning at ``starts[i]``; one list when ``starts`` is None)."""
    c = np.asarray(counts, dtype=np.int64)
    n = len(c)
    starts = np.zeros(1, dtype=np.int64) if starts is None else np.asarray(starts, dtype=np.int64)
    if n == 0:
        return ["" for _ in starts]
    lengths = np.diff(np.r_[starts, n])
    x = c.copy()
    rank = np.arange(n) - np.repeat(starts, lengths)
    later = np.flatnonzero(rank >= 3)
    x[later] -= c[later - 2]  # from the fourth count on, the difference with the one two before
    k = _groups_needed(x)
    ends = np.cumsum(k)
    owner: np.ndarray = np.repeat(np.arange(n), k)
    group = np.arange(int(ends[-1])) - np.repeat(ends - k, k)
    chunk = (x[owner] >> (5 * group)) & 0x1F
    chunk |= (group < k[owner] - 1) * 0x20  # more groups of this number follow
    text = (chunk + 48).astype(np.uint8).tobytes().decode("ascii")
    last = starts + lengths - 1
    char_end = np.where(lengths > 0, ends[np.maximum(last, 0)], 0)
    char_end = np.maximum.accumulate(char_end)
    char_start = np.r_[0, char_end[:-1]]
    return [text[a:b] for a, b in zip(char_start.tolist(), char_end.tolist())]


def _decompress(data: bytes, path: str) -> np.ndarray:
    """The counts of a compressed string (int64; not yet checked against the size)."""
    raw = np.frombuffer(data, dtype=np.uint8).astype(np.int64) - 48
    if raw.size == 0:
        return np.zeros(0, dtype=np.int64)
    bad = np.flatnonzero((raw < 0) | (raw > 63))
    if bad.size:
        i = int(bad[0])
        raise InvalidFileError(path, f"RLE counts string has the character {chr(data[i])!r} at offset {i}: "
                                     f"compressed counts use the characters '0' to 'o' only")
    last = (raw & 0x20) == 0
    if not last[-1]:
        raise InvalidFileError(path, "RLE counts string is cut off: its last character continues a number")
    ends = np.flatnonzero(last) + 1
    starts = np.r_[0, ends[:-1]]
    k = ends - starts
    if int(k.max()) > _MAX_GROUPS:
        i = int(np.argmax(k > _MAX_GROUPS))
        raise InvalidFileError(path, f"RLE counts string: count {i} takes {int(k[i])} characters, more than "
                                     f"any count of a mask of up to 2**32 pixels")
    group = np.arange(raw.size) - np.repeat(starts, k)
    x = np.add.reduceat((raw & 0x1F) << (5 * group), starts)
    negative = (raw[ends - 1] & 0x10) != 0
    x[negative] -= np.left_shift(1, 5 * k[negative])
    counts = x.copy()
    counts[1::2] = np.cumsum(x[1::2])
    counts[2::2] = np.cumsum(x[2::2])
    return counts


# ---------------------------------------------------------------------------------------------
# reading an RLE


def _check_pixels(h: int, w: int, what: str, path: str) -> None:
    """Refuse a declared size above :data:`~cityscapes_io.png.MAX_PIXELS` before anything of
    that size is allocated."""
    if h * w > MAX_PIXELS:
        raise InvalidFileError(path, f"{what} is {h}x{w} (height x width), more than the limit of {MAX_PIXELS} "
                                     f"pixels (refused)")


def _size(rle: Mapping[str, Any], path: str) -> Tuple[int, int]:
    size = rle.get("size")
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in size)):
        raise InvalidFileError(path, f"RLE size is {size!r}: [height, width], two non-negative integers, "
                                     f"is needed")
    h, w = int(size[0]), int(size[1])
    _check_pixels(h, w, "RLE size", path)
    return h, w


def _list_counts(raw: Any, total: int, path: str) -> np.ndarray:
    """The counts of an uncompressed RLE (a list of integers), checked to lie in ``0..total``
    before they are cast to int64 (a Python integer past 64 bits, or a uint64, would wrap)."""
    if isinstance(raw, (list, tuple)) and any(isinstance(v, bool) for v in raw):
        raise InvalidFileError(path, "RLE counts list must hold integers only")
    try:
        arr = np.asarray(raw)
    except (ValueError, TypeError, OverflowError):  # nested lists of unequal lengths
        raise InvalidFileError(path, "RLE counts list must hold integers only") from None
    if arr.ndim == 1 and (arr.size == 0 or arr.dtype.kind in "iu"):
        _check_range(arr, total, path)
        return arr.astype(np.int64)
    if arr.ndim == 1 and all(isinstance(v, (int, np.integer)) for v in raw):
        # Integers numpy holds as objects or floats (past 64 bits, or uint64 mixed with int64):
        # checked as Python integers, exactly.
        values = [int(v) for v in raw]
        for i, v in enumerate(values):
            if not 0 <= v <= total:
                raise InvalidFileError(path, _range_reason(i, v, total))
        return np.array(values, dtype=np.int64)
    raise InvalidFileError(path, "RLE counts list must hold integers only")


def _range_reason(i: int, value: int, total: int) -> str:
    if value < 0:
        return f"RLE count {i} is negative ({value})"
    return f"RLE count {i} is {value}, more than the {total} pixels of its size"


def _check_range(counts: np.ndarray, total: int, path: str) -> None:
    """Refuse a count outside ``0..total`` (one such count is enough for the RLE to be wrong)."""
    bad = np.flatnonzero((counts < 0) | (counts > total))
    if bad.size:
        i = int(bad[0])
        raise InvalidFileError(path, _range_reason(i, int(counts[i]), total))


def _counts(rle, path: str, shape: Optional[Tuple[int, int]] = None) -> Tuple[int, int, np.ndarray]:
    """``(h, w, counts)`` of an RLE, checked: its size within :data:`~cityscapes_io.png.MAX_PIXELS`
    (and equal to ``shape`` when given), counts non-negative integers summing exactly to
    ``h * w``."""
    if not isinstance(rle, Mapping):
        raise InvalidFileError(path, f"an RLE is a {{'size': [h, w], 'counts': ...}} object, not "
                                     f"{type(rle).__name__}")
    h, w = _size(rle, path)
    _check_shape(h, w, shape, path)
    total = h * w
    raw = rle.get("counts")
    if isinstance(raw, str):
        try:
            raw = raw.encode("ascii")
        except UnicodeEncodeError:
            raise InvalidFileError(path, "RLE counts string is not ASCII: compressed counts use the characters "
                                         "'0' to 'o' only") from None
    if isinstance(raw, (bytes, bytearray)):
        counts = _decompress(bytes(raw), path)
        # Each decoded difference is below 2**34 in size, so the first count to leave 0..total
        # is computed exactly (int64 wraps only after that): checking the range is exact.
        _check_range(counts, total, path)
    elif isinstance(raw, (list, tuple, np.ndarray)):
        counts = _list_counts(raw, total, path)
    else:
        raise InvalidFileError(path, f"RLE counts is {type(raw).__name__}: a compressed string or a list of "
                                     f"integers is needed")
    # Every count is in 0..total <= MAX_PIXELS (2**27): the int64 sum of fewer than 2**36 of them
    # is exact.
    counted = int(counts.sum())
    if counted != total:
        raise InvalidFileError(path, f"RLE counts sum to {counted} pixels, but its size {h}x{w} has {total}: "
                                     f"the counts do not describe a mask of that size")
    return h, w, counts


def _check_shape(h: int, w: int, shape: Optional[Tuple[int, int]], path: str) -> None:
    if shape is not None and (h, w) != tuple(shape):
        raise InvalidFileError(path, f"RLE size is {h}x{w} (height x width), but the image is "
                                     f"{shape[0]}x{shape[1]}")


def decode(rle: RLE, *, shape: Optional[Tuple[int, int]] = None, path: str = _DEFAULT_PATH) -> np.ndarray:
    """The mask of an RLE, as pycocotools' ``mask.decode`` gives it.

    Parameters
    ----------
    rle : dict
        ``{"size": [h, w], "counts": ...}`` with compressed counts (``str`` or ``bytes``, as
        pycocotools writes them) or uncompressed counts (a list of integers, as COCO's
        ``iscrowd`` annotations hold them).
    shape : (int, int), optional
        ``(height, width)`` the mask must have (the image's).
    path : str
        Named in errors (the file, and the annotation).

    Returns
    -------
    ndarray
        ``h × w`` bool.

    Raises
    ------
    InvalidFileError
        Not an RLE; a bad size, or one above :data:`~cityscapes_io.png.MAX_PIXELS`; a size
        other than ``shape``; counts that are not integers, are negative, are a malformed string,
        or do not sum exactly to ``h * w``.
    """
    h, w, counts = _counts(rle, path, shape)
    values = (np.arange(len(counts)) & 1).astype(bool)
    return np.repeat(values, counts).reshape(w, h).T


def area(rle: RLE, *, path: str = _DEFAULT_PATH) -> int:
    """Number of pixels of an RLE's mask (pycocotools' ``mask.area``).

    Raises
    ------
    InvalidFileError
        As :func:`decode`.
    """
    return int(_counts(rle, path)[2][1::2].sum())


def bbox(rle: RLE, *, path: str = _DEFAULT_PATH) -> List[float]:
    """Bounding box ``[x, y, w, h]`` of an RLE's mask, floats, as pycocotools' ``mask.toBbox``
    gives it (``[0, 0, 0, 0]`` for an empty mask).

    Raises
    ------
    InvalidFileError
        As :func:`decode`.
    """
    h, _, counts = _counts(rle, path)
    ends = np.cumsum(counts)
    first = (ends - counts)[1::2]  # start of each run of 1s
    length = counts[1::2]
    keep = length > 0
    if not keep.any():
        return [0.0, 0.0, 0.0, 0.0]
    first = first[keep]
    last = first + length[keep] - 1
    x0, x1 = int(first[0] // h), int(last[-1] // h)
    if (last // h > first // h).any():  # a run from one column into the next spans every row
        y0, y1 = 0, h - 1
    else:
        y0, y1 = int((first % h).min()), int((last % h).max())
    return [float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1)]


# ---------------------------------------------------------------------------------------------
# writing an RLE


def _nonzero(b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` of the set pixels of a 2-D bool array (np.nonzero, several times faster
    on large arrays with few set pixels)."""
    flat = np.flatnonzero(b)
    return flat // b.shape[1], flat % b.shape[1]


def _column_runs(a: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``(starts, values)`` of the runs of a non-empty 2-D array read in column-major order
    (starts as indices into that order).

    The changes are found row-major (between vertically adjacent pixels, and between the
    bottom of one column and the top of the next) and only their few positions are reordered,
    which is several times faster than transposing the array."""
    h, w = a.shape
    y, x = _nonzero(a[1:] != a[:-1])
    inner = x * h + y + 1
    wrap = (np.flatnonzero(a[0, 1:] != a[-1, :-1]) + 1) * h
    starts = np.sort(np.r_[0, inner, wrap])
    return starts, a[starts % h, starts // h]


def encode(mask: np.ndarray) -> RLE:
    """The RLE of a mask, exactly as pycocotools' ``mask.encode`` writes it, with the counts as
    ``str`` (pycocotools gives ``bytes``; COCO JSON holds the string).

    Parameters
    ----------
    mask : ndarray
        ``h × w``, bool (or anything, nonzero counting as set).

    Returns
    -------
    dict
        ``{"size": [h, w], "counts": str}``.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    h, w = m.shape
    if h * w == 0:
        counts: np.ndarray = np.zeros(1, dtype=np.int64)
    else:
        starts, values = _column_runs(m if m.dtype == bool else m != 0)
        counts = np.diff(np.r_[starts, h * w])
        if values[0]:
            counts = np.r_[0, counts]
    return {"size": [int(h), int(w)], "counts": _compress(counts)[0]}


def encode_segments(ids: np.ndarray, values: Optional[Iterable[int]] = None) -> List[RLE]:
    """The RLE of ``ids == v`` for several values ``v`` of one array, at once.

    The array is read once in column-major order; its runs are grouped by value and each
    segment's counts are the gaps between its own runs and their lengths, so no full-frame mask
    is built per segment. Each result equals ``encode(ids == v)``.

    Parameters
    ----------
    ids : ndarray
        ``h × w`` integer array (an ``instanceIds`` image).
    values : iterable of int, optional
        The values to encode, in the order wanted (a value absent from ``ids`` gives the RLE of
        an empty mask). Default: every value present, ascending.

    Returns
    -------
    list of dict
        One ``{"size": [h, w], "counts": str}`` per value.
    """
    a = np.asarray(ids)
    if a.ndim != 2:
        raise ValueError(f"ids must be 2-D, got shape {a.shape}")
    h, w = a.shape
    n = h * w
    if n == 0:
        return [{"size": [int(h), int(w)], "counts": "0"} for _ in ([] if values is None else list(values))]
    starts, run_values = _column_runs(a)
    present, inverse = np.unique(run_values, return_inverse=True)
    if values is None:
        wanted = np.arange(len(present))
        found: np.ndarray = np.ones(len(present), dtype=bool)
    else:
        asked = np.asarray(list(values)).reshape(-1)
        if asked.size == 0:
            return []
        wanted = np.minimum(np.searchsorted(present, asked), len(present) - 1)
        found = present[wanted] == asked
    # Runs of the segments asked for, grouped by segment, in pixel order within each.
    use: np.ndarray = np.zeros(len(present), dtype=bool)
    use[wanted[found]] = True
    runs = np.flatnonzero(use[inverse])
    runs = runs[np.argsort(inverse[runs], kind="stable")]
    seg = inverse[runs]
    s = starts[runs]
    e = np.r_[starts[1:], n][runs]
    new_seg = np.r_[True, seg[1:] != seg[:-1]]
    prev_end = np.r_[0, e[:-1]]
    prev_end[new_seg] = 0
    # Counts of a segment: gap, run, gap, run, ..., then the tail when it is not empty.
    first = np.flatnonzero(new_seg)
    last = np.r_[first[1:], len(seg)] - 1
    tail = n - e[last]
    per_run = np.column_stack([s - prev_end, e - s]).ravel()
    has_tail = tail > 0
    # Insert the tails after each segment's last run.
    pos = 2 * (last + 1)
    counts = np.insert(per_run, pos[has_tail], tail[has_tail])
    seg_len = 2 * (last - first + 1) + has_tail
    text = _compress(counts, np.r_[0, np.cumsum(seg_len)[:-1]]) if len(first) else []
    strings = dict(zip(seg[first].tolist(), text))
    empty = _compress(np.array([n], dtype=np.int64))[0]
    return [{"size": [int(h), int(w)], "counts": strings[g] if ok else empty}
            for g, ok in zip(wanted.tolist(), found.tolist())]


# ---------------------------------------------------------------------------------------------
# polygons -> mask (pycocotools' rasteriser)


def _polygon_coords(poly, index: int, h: int, w: int, path: str) -> np.ndarray:
    try:
        xy = np.asarray(poly, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidFileError(path, f"polygon {index} is not a flat list of numbers [x0, y0, x1, y1, ...]") from None
    if xy.ndim != 1 or (isinstance(poly, (list, tuple)) and any(isinstance(v, bool) for v in poly)):
        raise InvalidFileError(path, f"polygon {index} is not a flat list of numbers [x0, y0, x1, y1, ...]")
    if xy.size % 2:
        raise InvalidFileError(path, f"polygon {index} has an odd number of coordinates ({xy.size}): "
                                     f"x, y pairs are needed")
    if xy.size < 6:
        raise InvalidFileError(path, f"polygon {index} has {xy.size // 2} point(s): a polygon needs at least 3")
    if not np.isfinite(xy).all():
        raise InvalidFileError(path, f"polygon {index} has a coordinate that is not finite")
    # The outline is walked cell by cell on the fine grid, so its length bounds the memory used:
    # points are kept within one image side (and _MARGIN pixels more) of the image.
    margin = max(h, w) + _MARGIN
    x, y = xy[0::2], xy[1::2]
    outside = np.flatnonzero((x < -margin) | (x > w + margin) | (y < -margin) | (y > h + margin))
    if outside.size:
        i = int(outside[0])
        raise InvalidFileError(path, f"polygon {index} has the point ({x[i]:g}, {y[i]:g}), more than {margin} "
                                     f"pixels outside the {w}x{h} image (refused)")
    return xy


def _polygon_toggles(xy: np.ndarray, h: int, w: int) -> np.ndarray:
    """Column-major pixel indices where one polygon's mask switches between out and in (a
    pixel is in when an odd number of them are at or before it), by pycocotools' rules."""
    # 1. Vertices on the grid 5 times finer, rounded half up (C truncation of v + 0.5).
    px = np.trunc(_POLY_SCALE * xy[0::2] + 0.5).astype(np.int64)
    py = np.trunc(_POLY_SCALE * xy[1::2] + 0.5).astype(np.int64)
    xs, ys = px, py
    xe, ye = np.roll(px, -1), np.roll(py, -1)
    # 2. Every edge walked along its longer axis, one fine cell a step, the other coordinate
    #    rounded from the line; always walked from the same end (so an edge drawn both ways
    #    gives the same cells), the cells listed in the edge's own direction.
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    along_x = dx >= dy
    flip = np.where(along_x, xs > xe, ys > ye)
    ax = np.where(flip, xe, xs)
    ay = np.where(flip, ye, ys)
    bx = np.where(flip, xs, xe)
    by = np.where(flip, ys, ye)
    steps = np.maximum(dx, dy)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(along_x, (by - ay) / dx, (bx - ax) / dy)
    slope = np.where(steps == 0, 0.0, slope)
    counts = steps + 1
    edge: np.ndarray = np.repeat(np.arange(len(px)), counts)
    d = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    t = np.where(flip[edge], steps[edge] - d, d)
    minor0 = np.where(along_x, ay, ax)[edge]
    minor = np.trunc(minor0 + slope[edge] * t + 0.5).astype(np.int64)
    major = np.where(along_x, ax, ay)[edge] + t
    u = np.where(along_x[edge], major, minor)
    v = np.where(along_x[edge], minor, major)
    # 3. Where the outline crosses the vertical line through a pixel centre: one switch, at
    #    the first pixel of that column below the crossing.
    u0, u1, v0, v1 = u[:-1], u[1:], v[:-1], v[1:]
    cross = np.flatnonzero(u0 != u1)
    uc = np.where(u1[cross] < u0[cross], u1[cross], u1[cross] - 1)
    xd = (uc + 0.5) / _POLY_SCALE - 0.5
    ok = (np.floor(xd) == xd) & (xd >= 0) & (xd <= w - 1)
    yd = (np.minimum(v0[cross], v1[cross])[ok] + 0.5) / _POLY_SCALE - 0.5
    yd = np.ceil(np.clip(yd, 0, h))
    return xd[ok].astype(np.int64) * h + yd.astype(np.int64)


def _toggles_to_runs(toggles: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(starts, ends)`` of the runs of 1s that switch points make (an even number of switches
    at one place cancel out)."""
    pos, mult = np.unique(toggles, return_counts=True)
    pos = pos[(mult & 1) == 1]
    pos = pos[pos < n]
    if len(pos) & 1:
        pos = np.r_[pos, n]
    return pos[0::2], pos[1::2]


def polygons_to_mask(polygons: Sequence[Sequence[float]], h: int, w: int, *,
                     path: str = _DEFAULT_PATH) -> np.ndarray:
    """A COCO polygon segmentation drawn as pycocotools draws it (``COCO.annToMask``, that is
    ``mask.frPyObjects`` then ``mask.merge`` then ``mask.decode``).

    Each polygon is drawn alone by pycocotools' rules, then the union is taken: a pixel is set
    when its centre is inside a polygon (pixel ``(x, y)`` spans ``[x, x+1] × [y, y+1]``, so the
    polygon ``[0, 0, 2, 0, 2, 2, 0, 2]`` covers 2×2 pixels), inside meaning the even-odd rule
    on pycocotools' approximation of the outline (vertices rounded to a fifth of a pixel).

    Parameters
    ----------
    polygons : list of list of float
        Flat ``[x0, y0, x1, y1, ...]`` rings, at least 3 points each; coordinates may lie
        outside the image, by up to ``max(h, w) + 100`` pixels.
    h, w : int
        The image's height and width.
    path : str
        Named in errors.

    Returns
    -------
    ndarray
        ``h × w`` bool.

    Raises
    ------
    InvalidFileError
        A polygon that is not a flat list of finite numbers, has an odd count of them, fewer
        than 3 points, or a point more than ``max(h, w) + 100`` pixels outside the image; an image
        above :data:`~cityscapes_io.png.MAX_PIXELS`.
    """
    if isinstance(polygons, (str, bytes)) or not isinstance(polygons, (list, tuple)):
        raise InvalidFileError(path, "polygon segmentation must be a list of flat [x0, y0, x1, y1, ...] lists")
    _check_pixels(h, w, "image size", path)
    n = h * w
    change: np.ndarray = np.zeros(n + 1, dtype=np.int32)
    for i, poly in enumerate(polygons):
        xy = _polygon_coords(poly, i, h, w, path)
        starts, ends = _toggles_to_runs(_polygon_toggles(xy, h, w), n)
        np.add.at(change, starts, 1)
        np.add.at(change, ends, -1)
    inside = np.cumsum(change[:n]) > 0
    return inside.reshape(w, h).T


# ---------------------------------------------------------------------------------------------
# mask -> polygons


def _rings(mask: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The boundary of a mask as closed rings of unit pixel edges.

    Returns ``(vx, vy, ring_start, ring_area2)``: the vertices of every ring in order (each
    ring starting at its top-left vertex), where each ring starts in those arrays, and twice its
    signed area (negative for an outer boundary, positive for a hole). The set pixels are kept
    on the left of every edge (as seen on screen, y down); where two set pixels touch by a
    corner only, the ring goes from one to the other (8-connectivity).
    """
    h, w = mask.shape
    p = np.zeros((h + 2, w + 2), dtype=bool)
    p[1:-1, 1:-1] = mask
    # Directions: 0 east (+x), 1 south (+y), 2 west, 3 north; the right turn of d is d + 1.
    above, below = p[:-1, 1:-1], p[1:, 1:-1]  # (h+1) x w: horizontal edge at row Y, column x
    hy, hx = _nonzero(above != below)
    east = above[hy, hx]  # set pixel above: walk east, from (x, Y) to (x+1, Y)
    left, right = p[1:-1, :-1], p[1:-1, 1:]  # h x (w+1): vertical edge at column X, row y
    vy_, vx_ = _nonzero(left != right)
    south = right[vy_, vx_]  # set pixel on the right (+x): walk south, from (X, y) to (X, y+1)
    sx = np.r_[np.where(east, hx, hx + 1), vx_]
    sy = np.r_[hy, np.where(south, vy_, vy_ + 1)]
    direction = np.r_[np.where(east, 0, 2), np.where(south, 1, 3)]
    step_x = np.array([1, 0, -1, 0])
    step_y = np.array([0, 1, 0, -1])
    ex = sx + step_x[direction]
    ey = sy + step_y[direction]
    # Edges in order of their start vertex, row by row (ties: by direction).
    stride = w + 1
    order = np.lexsort((direction, sy * stride + sx))
    sx, sy, ex, ey, direction = sx[order], sy[order], ex[order], ey[order], direction[order]
    start_key = sy * stride + sx
    end_key = ey * stride + ex
    m = len(sx)
    # The next edge: the one leaving the end vertex; at a vertex where two leave (two set
    # pixels touching by a corner), the one turning right.
    first = np.searchsorted(start_key, end_key)
    second = np.minimum(first + 1, m - 1)
    two = (second != first) & (start_key[second] == end_key)
    take_second = two & (direction[second] == (direction + 1) % 4)
    nxt = np.where(take_second, second, first)
    # Ring of every edge: the smallest edge index on its cycle (pointer doubling), which is the
    # ring's top-left edge since edges are sorted by start vertex.
    label = np.arange(m)
    jump = nxt.copy()
    span = 1
    while span < m:
        merged = np.minimum(label, label[jump])
        if np.array_equal(merged, label):
            break  # no smaller label within reach: none further on either
        label = merged
        jump = jump[jump]
        span *= 2
    # Position along the ring: distance to the ring's last edge (list ranking, the cycle cut
    # before its first edge).
    heads = np.flatnonzero(label == np.arange(m))
    pred: np.ndarray = np.empty(m, dtype=np.int64)
    pred[nxt] = np.arange(m)
    tails = pred[heads]
    succ = nxt.copy()
    succ[tails] = tails
    dist: np.ndarray = np.ones(m, dtype=np.int64)
    dist[tails] = 0
    while True:
        dist += dist[succ]
        new = succ[succ]
        if np.array_equal(new, succ):
            break
        succ = new
    ring_order = np.lexsort((-dist, label))
    ring_start: np.ndarray = np.asarray(np.searchsorted(label[ring_order], heads))
    vx, vy = sx[ring_order], sy[ring_order]
    cross = sx * ey - ex * sy
    area2 = np.add.reduceat(cross[ring_order], ring_start) if m else np.zeros(0, dtype=np.int64)
    return vx, vy, ring_start, area2


def mask_to_polygons(mask: np.ndarray) -> List[List[int]]:
    """A mask as COCO polygons that draw back to it exactly (through :func:`polygons_to_mask`,
    and so through pycocotools' ``annToMask``).

    One polygon per 8-connected component of the mask (two pixels touching by a corner are one
    component), in order of the component's top-left pixel (row by row), each a flat
    ``[x0, y0, x1, y1, ...]`` list of integers:

    - coordinates are **pixel corners**: pixel ``(x, y)`` spans ``[x, x+1] × [y, y+1]``, and the
      ring runs along the pixels' edges (a single pixel ``(3, 5)`` is ``[3, 5, 3, 6, 4, 6, 4,
      5]``), the convention pycocotools draws with (a pixel is set when its centre is inside);
      only the corners of the outline are listed. Pillow's ``ImageDraw.polygon`` (which the
      Cityscapes scripts draw ``_polygons.json`` with) also fills the pixels the outline
      passes through, so it draws these one pixel wider on the right and lower sides;
    - the outer boundary runs counter-clockwise as seen on screen (y down), holes clockwise;
    - holes are **cut into the polygon**: each hole's ring is joined to the boundary above it
      by a zero-width vertical bridge (from the hole's top-left corner straight up to the first
      boundary corner, there and back again along the same line), so one ring draws the
      component with its holes. COCO has no hole flag and ``annToMask`` takes the union of the
      polygons, so a hole given as a polygon of its own would be filled; the bridge, walked
      both ways, cancels out under the even-odd rule (pycocotools) and the non-zero rule alike.
      An island inside a hole is a component, and so a polygon, of its own.

    Parameters
    ----------
    mask : ndarray
        ``h × w``, bool (or anything, nonzero counting as set).

    Returns
    -------
    list of list of int
        Empty for an empty mask.
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    m = m != 0
    rows = np.flatnonzero(m.any(axis=1))
    if not rows.size:
        return []
    cols = np.flatnonzero(m.any(axis=0))
    oy, ox = int(rows[0]), int(cols[0])
    m = m[oy:int(rows[-1]) + 1, ox:int(cols[-1]) + 1]  # the work is done on the bounding box
    h, w = m.shape
    vx, vy, ring_start, area2 = _rings(m)
    nrings = len(ring_start)
    ring_end = np.r_[ring_start[1:], len(vx)]
    ring_of: np.ndarray = np.repeat(np.arange(nrings), ring_end - ring_start)
    holes = np.flatnonzero(area2 > 0)
    # Where each hole joins: the nearest ring corner straight above its top-left corner (on the
    # same vertical line x0), or at that corner itself on another ring (a corner two rings
    # share). Corners sorted by column, then row.
    col_key = vx * (h + 1) + vy
    by_col = np.argsort(col_key, kind="stable")
    keys_sorted = col_key[by_col]
    children: Dict[int, List[Tuple[int, int]]] = {}
    if holes.size:
        q = col_key[ring_start[holes]]
        idx = np.searchsorted(keys_sorted, q, side="right") - 1
        own = ring_of[by_col[idx]] == holes
        idx = idx - own
        again = ring_of[by_col[idx]] == holes
        idx = idx - again
        hit = by_col[idx]
        for hole, corner in zip(holes.tolist(), hit.tolist()):
            target = int(ring_of[corner])
            children.setdefault(target, []).append((corner - int(ring_start[target]), hole))
    out: List[List[int]] = []
    for root in np.flatnonzero(area2 < 0).tolist():
        xs, ys = _expand(root, vx, vy, ring_start, ring_end, children)
        out.append(_simplify(xs + ox, ys + oy))
    return out


def _expand(root: int, vx: np.ndarray, vy: np.ndarray, ring_start: np.ndarray, ring_end: np.ndarray,
            children: Dict[int, List[Tuple[int, int]]]) -> Tuple[np.ndarray, np.ndarray]:
    """The corners of a ring with its holes (and theirs) spliced in, each hole's ring walked from
    its first corner back to it, between two visits of the corner it hangs from."""
    pieces: List[slice] = []
    stack: List[List[Any]] = [[root, 0, sorted(children.get(root, [])), 0]]
    while stack:
        top = stack[-1]
        ring, cursor, kids, k = top
        base = int(ring_start[ring])
        if k < len(kids):
            at, hole = kids[k]
            pieces.append(slice(base + cursor, base + at + 1))
            top[1] = at
            top[3] = k + 1
            stack.append([hole, 0, sorted(children.get(hole, [])), 0])
        else:
            pieces.append(slice(base + cursor, int(ring_end[ring])))
            if ring != root:
                pieces.append(slice(base, base + 1))
            stack.pop()
    index = np.concatenate([np.arange(s.start, s.stop) for s in pieces])
    return vx[index], vy[index]


def _simplify(xs: np.ndarray, ys: np.ndarray) -> List[int]:
    """The ring without repeated corners and without corners in the middle of a straight run."""
    keep = (xs != np.roll(xs, 1)) | (ys != np.roll(ys, 1))
    xs, ys = xs[keep], ys[keep]
    dx_in, dy_in = np.sign(xs - np.roll(xs, 1)), np.sign(ys - np.roll(ys, 1))
    dx_out, dy_out = np.roll(dx_in, -1), np.roll(dy_in, -1)
    corner = (dx_in != dx_out) | (dy_in != dy_out)
    xs, ys = xs[corner], ys[corner]
    return np.column_stack([xs, ys]).ravel().tolist()
