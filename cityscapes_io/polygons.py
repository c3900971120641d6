"""Polygon annotations (``*_gtFine_polygons.json``) and their rasterisation, by the official rules.

A polygons file is ``{"imgHeight", "imgWidth", "objects": [{"label", "polygon": [[x, y], ...],
"deleted"?}, ...]}``. :func:`parse_polygons` reads one into a :class:`Polygons` record (points
as small arrays; nothing frame-sized is allocated). :func:`rasterize` draws it exactly as
cityscapesScripts 2.3.0 ``createLabelImage`` / ``createInstanceImage`` do, with Pillow's
``ImageDraw.polygon`` on the same image modes, so the result is pixel-identical under the same
Pillow version:

- objects in file order, later ones painted over earlier ones;
- deleted objects skipped; labels with a negative id (license plate) skipped, so the car under a
  plate stays car;
- a name that is not a label but ends in ``group`` (``cargroup``) is that label, as a group;
  ``polegroup`` is a label of its own;
- background ``unlabeled`` (0, or 255 with train ids);
- instance numbers counted per class in file order from 0 (an object later painted over still
  takes its number); groups, stuff, and objects whose train id is 255 get the plain class value.

The official scripts save the instance images in Pillow mode ``I``, which Pillow 11.3 and later
can no longer write as PNG; here the instance encodings are returned as ``uint16`` arrays, which
:func:`cityscapes_io.png.encode_png` writes as 16-bit PNGs.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import numpy as np
from PIL import Image, ImageDraw

from . import jsonfile
from .errors import InvalidFileError
from .instances import INSTANCE_DIVISOR
from .labels import TRAIN_IGNORE, Label, LabelMap, has_instances, official_label, train_id_of

__all__ = ["Polygons", "PolygonObject", "parse_polygons", "rasterize", "ENCODINGS", "resolve_polygon_label",
           "rename_polygons", "MAX_PIXELS", "MARGIN"]

#: Encodings :func:`rasterize` draws.
ENCODINGS = ("ids", "trainIds", "color", "instanceIds", "instanceTrainIds")
#: Largest ``imgWidth × imgHeight`` accepted (64 Mpx, 32 times a Cityscapes frame): a header
#: asking for more would make the rasteriser allocate gigabytes.
MAX_PIXELS = 1 << 26
GROUP_SUFFIX = "group"
#: How far outside the image a vertex may lie, in pixels. The official scripts draw polygons
#: reaching outside the frame clipped (and number objects lying wholly outside it): that is kept.
#: A vertex farther out is a corrupt or crafted file: Pillow's rasteriser works in 32-bit
#: integers, and a polygon reaching past them is drawn as a stray pixel, its object lost silently.
MARGIN = 1 << 20

_OFFICIAL = LabelMap.cityscapes()


@dataclass(frozen=True)
class PolygonObject:
    """One object of a polygons file.

    Attributes
    ----------
    index : int
        Its position in the file's ``objects`` (drawing order).
    label : str
        The name as written (``car``, ``cargroup``).
    points : ndarray
        ``N×2`` vertices ``(x, y)``, as written (integers in the release).
    deleted : bool
    resolved : Label or None
        The official label the name stands for (the group rule applied); None for an unknown name.
    is_group : bool
        The name is a label's name followed by ``group`` (a crowd of that class).
    """

    index: int
    label: str
    points: np.ndarray
    deleted: bool
    resolved: Optional[Label]
    is_group: bool

    def problem(self) -> Optional[str]:
        """Why the official scripts could not draw this object (None when they can, or when it
        is deleted and so never drawn)."""
        if self.deleted:
            return None
        if self.resolved is None:
            return f"unknown label {self.label!r}"
        if len(self.points) < 3:
            return f"polygon has {len(self.points)} point(s): a polygon needs at least 3"
        return None


@dataclass(frozen=True)
class Polygons:
    """A parsed polygons file: image size, objects in file order, and where it was read."""

    width: int
    height: int
    objects: Tuple[PolygonObject, ...]
    path: str = "<polygons>"

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[PolygonObject]:
        return iter(self.objects)

    def problems(self) -> List[Tuple[int, str]]:
        """``(object index, reason)`` of every object that cannot be drawn: an unknown label,
        fewer than three points, or vertices beyond :data:`MARGIN` pixels of the image."""
        return [(o.index, p) for o in self.objects for p in (o.problem() or self._placement(o),) if p is not None]

    def _placement(self, obj: PolygonObject) -> Optional[str]:
        if obj.deleted or not len(obj.points):
            return None
        lo, hi = obj.points.min(axis=0), obj.points.max(axis=0)
        if lo[0] < -MARGIN or lo[1] < -MARGIN or hi[0] > self.width + MARGIN or hi[1] > self.height + MARGIN:
            return (f"({obj.label!r}) vertices reach x {lo[0]}..{hi[0]}, y {lo[1]}..{hi[1]}: more than {MARGIN} "
                    f"pixels beyond the {self.width}x{self.height} image (a corrupt or foreign polygons file; "
                    f"drawn, the object would be lost)")
        return None

    def check(self) -> None:
        """Raise :class:`InvalidFileError` naming the file and the first object that cannot be
        drawn."""
        for index, reason in self.problems():
            raise InvalidFileError(self.path, f"object {index}: {reason}")


def resolve_polygon_label(name: str, labels: Optional[LabelMap] = None) -> Tuple[Optional[Label], bool]:
    """``(label, is_group)`` of a polygon's label name, by the official rule: the label of that
    exact name, else, for a name ending in ``group``, the label named by the rest, as a group.

    Names are looked up in ``labels`` first when given (a dataset whose labels were renamed
    keeps polygons in its own names; there names also match ignoring case, spaces and
    underscores, as label files spell them), then in the official table (exact names only,
    as the official scripts do)."""
    if not isinstance(name, str):
        return None, False
    official = _OFFICIAL.get(name)
    if official is not None and official.id < 0:
        return official, False  # the license plate is never drawn, whatever id a label file gave it
    maps = [labels] if labels is not None and labels != _OFFICIAL else []
    for lm in maps + [_OFFICIAL]:
        def look(n: str) -> Optional[Label]:
            return lm.get(n) if lm is _OFFICIAL else (lm.get(n) or lm.find(n))

        hit = look(name)
        if hit is not None:
            return hit, False
        if name.endswith(GROUP_SUFFIX):
            base = look(name[: -len(GROUP_SUFFIX)])
            if base is not None:
                return base, True
    return None, False


def parse_polygons(data, path: str = "<polygons>", labels: Optional[LabelMap] = None) -> Polygons:
    """Parse a polygons file (bytes, text, or an already loaded dict); object names are resolved
    in ``labels`` (the dataset's, when they are not the official ones), then in the official
    table (:func:`resolve_polygon_label`).

    Raises
    ------
    InvalidFileError
        Not JSON, a missing or bad ``imgWidth``/``imgHeight`` (or a size above
        :data:`MAX_PIXELS`), or an object that is not ``{"label": str, "polygon": [[x, y], ...]}``
        with finite coordinates. The message names the file and the object index.
    """
    if isinstance(data, (bytes, bytearray, str)):
        doc = jsonfile.loads(data, path)
    else:
        doc = data
    if not isinstance(doc, dict):
        raise InvalidFileError(path, "not a polygons file: the top level is not a JSON object")
    size = []
    for key in ("imgWidth", "imgHeight"):
        value = doc.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or value <= 0:
            raise InvalidFileError(path, f"{key} is {value!r}: a positive integer is needed")
        size.append(int(value))
    width, height = size
    if width * height > MAX_PIXELS:
        raise InvalidFileError(path, f"image size {width}x{height} is larger than {MAX_PIXELS} pixels: refused "
                                     f"(drawing it would allocate gigabytes)")
    objects = doc.get("objects", [])
    if not isinstance(objects, list):
        raise InvalidFileError(path, "'objects' is not a list")
    return Polygons(width, height, tuple(_parse_object(i, o, path, labels) for i, o in enumerate(objects)), path)


def _parse_object(index: int, obj, path: str, labels: Optional[LabelMap]) -> PolygonObject:
    def bad(reason: str) -> InvalidFileError:
        return InvalidFileError(path, f"object {index}: {reason}")

    if not isinstance(obj, dict):
        raise bad("not a JSON object")
    label = obj.get("label")
    if not isinstance(label, str):
        raise bad(f"label is {label!r}: a string is needed")
    raw = obj.get("polygon")
    if not isinstance(raw, list):
        raise bad(f"({label!r}) has no 'polygon' list of [x, y] points")
    points = _fast_points(raw)
    if points is None:
        points = _checked_points(raw, label, bad)
    resolved, is_group = resolve_polygon_label(label, labels)
    return PolygonObject(index, label, points, bool(obj.get("deleted", 0)), resolved, is_group)


def _fast_points(raw: list) -> Optional[np.ndarray]:
    """The points as an array when they are plainly well-formed (``[[x, y], ...]`` of finite
    numbers, the usual case, checked by numpy), else None (then checked one by one)."""
    if not raw:
        return np.zeros((0, 2), dtype=np.int64)
    try:
        arr = np.array(raw)
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.ndim != 2 or arr.shape[1] != 2:
        return None
    if arr.dtype.kind == "i":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.isfinite(arr).all():
        return arr.astype(np.float64, copy=False)
    return None  # booleans, strings, NaN, ...: the slow path names the point


def _checked_points(raw: list, label: str, bad: Callable[[str], InvalidFileError]) -> np.ndarray:
    coords: List[Tuple[float, float]] = []
    integral = True
    for k, p in enumerate(raw):
        if not (isinstance(p, (list, tuple)) and len(p) == 2
                and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)):
            raise bad(f"({label!r}) point {k} is {p!r}: [x, y] numbers are needed")
        if not all(math.isfinite(c) for c in p):
            raise bad(f"({label!r}) point {k} is {p!r}: coordinates must be finite")
        integral = integral and isinstance(p[0], int) and isinstance(p[1], int)
        coords.append((p[0], p[1]))
    dtype = np.int64 if integral else np.float64
    try:
        return np.array(coords, dtype=dtype).reshape(len(coords), 2)
    except OverflowError:
        return np.array(coords, dtype=np.float64).reshape(len(coords), 2)


def rasterize(polygons: Polygons, encoding: str = "ids") -> np.ndarray:
    """Draw ``polygons`` as the official scripts do.

    Parameters
    ----------
    polygons : Polygons
        From :func:`parse_polygons` or :meth:`Frame.polygons`.
    encoding : {"ids", "trainIds", "color", "instanceIds", "instanceTrainIds"}
        ``ids`` / ``trainIds``: ``H×W`` uint8 label ids / train ids (``createLabelImage``);
        ``color``: ``H×W×4`` uint8 RGBA in the official colours; ``instanceIds`` /
        ``instanceTrainIds``: ``H×W`` uint16, ``id × 1000 + n`` (``createInstanceImage``).

    Raises
    ------
    InvalidFileError
        An object (not deleted) with an unknown label (the official script stops there too)
        or with fewer than three points, which enclose no area (the official script would draw
        a line or a dot), naming the file and the object index.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
    polygons.check()
    size = (polygons.width, polygons.height)
    unlabeled = _OFFICIAL["unlabeled"]
    if encoding in ("instanceIds", "instanceTrainIds"):
        return _draw_instances(polygons, size, encoding == "instanceTrainIds")
    if encoding == "color":
        image = Image.new("RGBA", size, unlabeled.color)
    else:
        image = Image.new("L", size, unlabeled.id if encoding == "ids" else unlabeled.train_id)
    draw = ImageDraw.Draw(image)
    for obj in polygons.objects:
        label = obj.resolved
        if obj.deleted or label is None or label.id < 0:
            continue
        fill = label.id if encoding == "ids" else (train_id_of(label) if encoding == "trainIds" else _color(label))
        draw.polygon(_xy(obj.points), fill=fill)
    return np.asarray(image, dtype=np.uint8)


def _color(label: Label) -> Tuple[int, int, int]:
    if label.color is not None:
        return label.color
    ref = official_label(label.name)
    return ref.color if ref is not None and ref.color is not None else (0, 0, 0)


def _draw_instances(polygons: Polygons, size: Tuple[int, int], train: bool) -> np.ndarray:
    unlabeled = _OFFICIAL["unlabeled"]
    image = Image.new("I", size, unlabeled.train_id if train else unlabeled.id)
    draw = ImageDraw.Draw(image)
    counters: Dict[str, int] = {}
    for obj in polygons.objects:
        label = obj.resolved
        if obj.deleted or label is None:
            continue
        if label.id < 0:  # never drawn: the license plate, whose train id is -1 as well
            continue
        value = train_id_of(label) if train else label.id
        if has_instances(label, False) and not obj.is_group and value != TRAIN_IGNORE:
            number = counters.get(label.name, 0)
            counters[label.name] = number + 1
            value = value * INSTANCE_DIVISOR + number
        draw.polygon(_xy(obj.points), fill=value)
    return np.asarray(image).astype(np.uint16)


def _xy(points: np.ndarray) -> List[float]:
    return points.ravel().tolist()  # x0, y0, x1, y1, ...: what Pillow flattens the points to


def rename_polygons(data: bytes, names: Mapping[str, str], path: str = "<polygons>") -> bytes:
    """A polygons file with its labels renamed by ``names`` (``{old: new}``; a group
    ``<old>group`` becomes ``<new>group``), everything else as it was.

    Raises
    ------
    KeyError
        A label (of an object not deleted) that ``names`` does not cover: the polygons cannot
        follow the renaming.
    """
    doc = jsonfile.loads(data, path)
    for obj in doc.get("objects", []) if isinstance(doc, dict) else ():
        label = obj.get("label") if isinstance(obj, dict) else None
        if not isinstance(label, str):
            continue
        if label in names:
            obj["label"] = names[label]
        elif label.endswith(GROUP_SUFFIX) and label[: -len(GROUP_SUFFIX)] in names:
            obj["label"] = names[label[: -len(GROUP_SUFFIX)]] + GROUP_SUFFIX
        elif not obj.get("deleted"):
            raise KeyError(label)
    return json.dumps(doc, indent=4).encode("utf-8")
