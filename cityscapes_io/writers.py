"""What every writer shares: the ``write(frame)`` / ``close()`` contract, the destination, and
mapping the labels of incoming frames onto the output label map.

Per-frame files are written inside ``write()``; index files (subset lists, label maps) when the
writer closes. A writer keeps no pixels of a frame once ``write()`` returns: only its id.
"""
from __future__ import annotations

import io
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Set, Tuple, Union

import numpy as np
from PIL import Image

from . import png
from .errors import InvalidFileError, LabelMapError
from .frame import Frame
from .instances import INSTANCE_DIVISOR
from .labels import Label, LabelMap
from .names import safe_relpath
from .output import Destination, open_destination

__all__ = ["Writer", "Entry", "writer", "LabelMapping", "resolve_label_map", "distinct_colors"]

_PIL_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF",
                ".webp": "WEBP"}


def resolve_label_map(label_map, source: Optional[LabelMap], storage_options=None) -> Optional[LabelMap]:
    """The output label map for a writer's ``label_map`` option.

    ``"source"`` (the input's labels), ``"cityscapes"`` (the official map), a path or URL of a
    ``label_colors.txt`` / ``dataset_meta.json``, a dict ``{name: (r, g, b)}``, or a LabelMap.
    """
    if label_map is None or label_map == "source":
        return source
    if isinstance(label_map, LabelMap):
        return label_map
    if isinstance(label_map, Mapping):
        return LabelMap.from_colors(label_map, source="label_map option")
    if label_map == "cityscapes":
        return LabelMap.cityscapes()
    import fsspec

    path = str(label_map)
    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as f:
            data = f.read()
    except FileNotFoundError:
        raise LabelMapError(path, "label map file not found (expected 'source', 'cityscapes' or a file)") from None
    text = data.decode("utf-8", errors="strict")
    if path.lower().endswith(".json"):
        return LabelMap.parse_dataset_meta(text, source=path)
    return LabelMap.parse_label_colors(text, source=path)


def background_id(labels: LabelMap) -> int:
    """Id of the background label: the first black one, else one named background, else 0."""
    for lab in labels:
        if lab.color == (0, 0, 0) and lab.id >= 0:
            return lab.id
    bg = labels.find("background")
    return bg.id if bg is not None else 0


class LabelMapping:
    """Maps label ids of a source map onto a target map by name; labels the target lacks go to
    its background (one warning names them)."""

    def __init__(self, source: LabelMap, target: LabelMap, ids: Optional[Mapping[int, Optional[int]]] = None,
                 background: Optional[int] = None):
        self.source, self.target = source, target
        self.background = background_id(target) if background is None else background
        self.ids: Dict[int, int] = {}
        self.missing: Dict[int, str] = {}  # source id -> name, for labels the target lacks
        for lab in source:
            if lab.id < 0:
                continue
            if ids is not None:  # an explicit mapping (None: dropped on purpose, no warning)
                new = ids.get(lab.id)
                self.ids[lab.id] = self.background if new is None else new
                continue
            hit = target.get(lab.name) or target.find(lab.name)
            if hit is None or hit.id < 0:
                self.missing[lab.id] = lab.name
                self.ids[lab.id] = self.background
            else:
                self.ids[lab.id] = hit.id
        self.identity = source is target or (not self.missing and all(k == v for k, v in self.ids.items()))

    def lut(self, values) -> np.ndarray:
        """Lookup table remapping instanceIds values (``out = lut[arr]``); the array's distinct
        known values are ``values``.

        Instance numbers are kept; when two source instances land on the same output value
        (two labels merged into one), the later one gets the next free number. Pixels of
        unknown labels become background."""
        lut = np.full(65536, self.background, dtype=np.uint16)
        used: Dict[int, set] = {}
        for v in sorted(int(x) for x in values):
            if v >= INSTANCE_DIVISOR:
                lab, num = divmod(v, INSTANCE_DIVISOR)
                new_lab = self.ids.get(lab, self.background)
                if new_lab == self.background:  # dropped: the pixels become plain background
                    lut[v] = self.background
                    continue
                nums = used.setdefault(new_lab, set())
                if num in nums:
                    num = next(n for n in range(INSTANCE_DIVISOR) if n not in nums)
                nums.add(num)
                if new_lab * INSTANCE_DIVISOR + num > 0xFFFF:
                    raise LabelMapError(self.target.source, f"label id {new_lab} is too large for 16-bit instanceIds "
                                                            f"(instances need label ids up to 65)")
                lut[v] = new_lab * INSTANCE_DIVISOR + num
            else:
                lut[v] = self.ids.get(v, self.background)
        return lut


def value_lut(values, fn, dtype=np.uint8) -> np.ndarray:
    """A 65536-entry lookup table with ``table[v] = fn(v)`` for the given instanceIds values."""
    table = np.zeros(65536, dtype=dtype)
    for v in values:
        table[v] = fn(v)
    return table


def class_of(v: int) -> int:
    """Label id of an instanceIds value."""
    return v // INSTANCE_DIVISOR if v >= INSTANCE_DIVISOR else v


def distinct_colors(labels: List[Label], reserved=()) -> List[Tuple[int, int, int]]:
    """One colour per label, all different: a label keeps its colour unless an earlier label
    (or ``reserved``) took it (Cityscapes ids 0–4 are all black, pole/polegroup and
    car/license plate share one); then the nearest free colour is used. Labels without a
    colour get free ones."""
    used = set(tuple(c) for c in reserved)
    out = []
    for lab in labels:
        base = lab.color if lab.color is not None else _fallback_color(lab.id)
        color = base
        d = 1
        while color in used:
            r, g, b = base
            for cand in ((r, g, b + d), (r, g + d, b), (r + d, g, b), (r, g, b - d), (r, g - d, b), (r - d, g, b)):
                if all(0 <= c <= 255 for c in cand) and cand not in used:
                    color = cand
                    break
            d += 1
        used.add(color)
        out.append(color)
    return out


def _fallback_color(i: int) -> Tuple[int, int, int]:
    return voc_colormap(256)[i % 256]


def voc_colormap(n: int = 256) -> List[Tuple[int, int, int]]:
    """The Pascal VOC palette: index bits spread over the high bits of R, G and B."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        out.append((r, g, b))
    return out


@dataclass(frozen=True)
class Entry:
    """What the index files need to know of one written frame."""

    split: str
    id: str
    info: tuple = ()
    dropped: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = ()


def check_names(frame: Frame) -> None:
    """Refuse frame ids and split names that would write outside the destination."""
    for part, what in ((frame.id, "frame id"), (frame.split or "default", "split name")):
        try:
            safe_relpath(part)
        except ValueError as exc:
            raise InvalidFileError(part, f"refused to write outside the destination: bad {what}: {exc}") from None
    if "/" in (frame.split or "default"):
        raise InvalidFileError(frame.split, "refused: a split name cannot contain '/'")


class Writer:
    """Base class of the format writers: a context manager with ``write(frame)``.

    Parameters
    ----------
    url : str
        Destination root (path or fsspec URL; ``.zip`` writes an archive).
    storage_options : dict, optional
    labels : LabelMap, optional
        Labels of the frames to come (default: those of the first frame written).
    label_map : str, dict or LabelMap
        Output labels: ``"source"`` (default), ``"cityscapes"``, a label file, a dict.
    save_media : bool
        Also write the photos.
    image_ext : str, optional
        Extension of written photos (``.jpg``); default: keep the original, png when unknown.
    """

    format = ""

    def __init__(self, url, *, storage_options=None, labels: Optional[LabelMap] = None,
                 label_map: Union[str, dict, LabelMap, None] = "source", save_media: bool = False,
                 image_ext: Optional[str] = None, **options):
        if options:
            raise TypeError(f"{type(self).__name__}: unknown option(s) {', '.join(sorted(options))}")
        self.dest: Destination = open_destination(url, storage_options)
        self.save_media = bool(save_media)
        if image_ext and not image_ext.startswith("."):
            image_ext = "." + image_ext
        if image_ext and image_ext.lower() not in _PIL_FORMATS:
            raise ValueError(f"image_ext {image_ext!r} not supported (one of {', '.join(_PIL_FORMATS)})")
        self.image_ext = image_ext.lower() if image_ext else None
        self._label_map_option = label_map
        self._storage_options = storage_options
        self.labels: Optional[LabelMap] = None
        self._mappings: Dict[int, LabelMapping] = {}
        self.subsets: "OrderedDict[str, List[str]]" = OrderedDict()
        self._info: Dict[Tuple[str, str], tuple] = {}
        self._dropped: Set[str] = set()
        self._frame_dropped: Set[str] = set()
        self.written = 0
        self._closed = False
        if labels is not None:
            self._set_labels(labels)

    # -- labels -----------------------------------------------------------------------------
    def _set_labels(self, source: LabelMap) -> None:
        self.labels = resolve_label_map(self._label_map_option, source, self._storage_options)

    def mapping(self, frame: Frame) -> LabelMapping:
        if self.labels is None:
            self._set_labels(frame.labels)
        key = id(frame.labels)
        m = self._mappings.get(key)
        if m is None:
            m = self._mappings[key] = LabelMapping(frame.labels, self.labels)
            m._keep = frame.labels  # keep the map alive so its id() stays unique
        return m

    def output_instance_ids(self, frame: Frame) -> Optional[Tuple[np.ndarray, List[int]]]:
        """The frame's instanceIds in output label ids, and their distinct values (sorted).

        Validated on the way: unknown labels raise, or go to background under
        ``on_error="skip"``. The values come from the single pass that lists the instances, so
        no writer has to search the array for them again."""
        arr = frame.instance_ids()
        if arr is None:
            return None
        insts = frame.instances()
        m = self.mapping(frame)
        values = [i.value for i in insts]
        # Every pixel belongs to a known instance unless unknown labels were skipped.
        covered = sum(i.area for i in insts) == arr.size
        if m.identity and covered:
            return arr, sorted(values)
        lut = m.lut(values)
        self._frame_dropped.update(m.missing[class_of(v)] for v in values if class_of(v) in m.missing)
        out_values = {int(lut[v]) for v in values}
        if not covered:
            out_values.add(m.background)
        return lut[arr], sorted(out_values)

    # -- photos -----------------------------------------------------------------------------
    def photo(self, frame: Frame, shape: Optional[Tuple[int, int]] = None) -> Optional[Tuple[bytes, str]]:
        """``(bytes, ext)`` of the photo to write: the original bytes when the extension is
        kept, re-encoded otherwise. ``shape`` is the ground truth's (height, width), which the
        photo must match."""
        ext = self.photo_ext(frame)
        if ext is None:
            return None
        if shape is not None and "image" in frame._files:
            w, h = png.image_size(frame.image_bytes(), frame.path("image"))
            if (h, w) != tuple(shape):
                raise InvalidFileError(frame.path("image"), f"photo is {w}x{h} but the ground truth is "
                                                            f"{shape[1]}x{shape[0]}")
        if ext == (frame.image_ext or ".png"):
            return frame.image_bytes(), ext
        img = Image.fromarray(frame.image())
        buf = io.BytesIO()
        fmt = _PIL_FORMATS[ext]
        img.save(buf, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        return buf.getvalue(), ext

    # -- contract ---------------------------------------------------------------------------
    def write(self, frame: Frame) -> None:
        """Write one frame's files (all of them, or none when the frame cannot be encoded)."""
        self.add_entry(self.write_files(frame))

    def write_files(self, frame: Frame) -> Entry:
        """Encode and write the frame's own files; returns what the index files need to know
        of it. (Parallel conversions call this in worker processes, and :meth:`add_entry` in
        the parent.)"""
        if self._closed:
            raise ValueError("write() on a closed writer")
        check_names(frame)
        self._frame_dropped: Set[str] = set()
        self.dest.put_frame(self.encode(frame))
        notes = []
        if not frame.has_annotations:
            notes.append("no ground truth: written without masks")
        if self.save_media and not frame.has_image:
            notes.append("no photo: written without one")
        return Entry(frame.split or "default", frame.id, self.index_info(frame), tuple(sorted(self._frame_dropped)),
                     tuple(notes))

    def entry(self, frame: Frame) -> Entry:
        """The index entry of a frame whose files are already written (no decoding)."""
        check_names(frame)
        return Entry(frame.split or "default", frame.id, self.index_info(frame))

    def add_entry(self, entry: Entry) -> None:
        """Record a written frame for the index files."""
        self.subsets.setdefault(entry.split, []).append(entry.id)
        if entry.info:
            self._info[(entry.split, entry.id)] = entry.info
        self._dropped.update(entry.dropped)
        self.written += 1

    def planned_files(self, frame: Frame) -> List[str]:
        """Paths (relative to the destination) that writing this frame produces, known
        without decoding anything: what ``resume`` checks for."""
        raise NotImplementedError

    def index_info(self, frame: Frame) -> tuple:
        """Format-specific data the index files need about a frame (none by default)."""
        return ()

    def photo_ext(self, frame: Frame) -> Optional[str]:
        """Extension the frame's photo is written with (None without a photo)."""
        if not frame.has_image:
            return None
        src_ext = frame.image_ext or ".png"
        ext = self.image_ext or (src_ext if src_ext in _PIL_FORMATS else ".png")
        if ext in (".jpg", ".jpeg") and src_ext in (".jpg", ".jpeg"):
            ext = src_ext
        return ext

    def encode(self, frame: Frame) -> List[Tuple[str, bytes]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def index_files(self) -> List[Tuple[str, bytes]]:
        """The index files (subset lists, label files), written together by close()."""
        return []

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.labels is None:  # nothing written: the official map stands in for "source"
                self._set_labels(LabelMap.cityscapes())
            dropped = sorted(self._dropped)
            if dropped:
                warnings.warn(f"labels not in the output label map ({self.labels.source}) were written as "
                              f"background: {', '.join(dropped)}", stacklevel=2)
            # All index files are encoded first, then written together: they appear as a set.
            self.dest.put_many(self.index_files())
        finally:
            self.dest.close()

    def abort(self) -> None:
        """Close without writing the index files (after an error, or in a shard)."""
        if not self._closed:
            self._closed = True
            self.dest.abort()
            self.dest.close()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False


def writer(url, format: str, *, storage_options=None, **options) -> Writer:
    """Open a writer for ``format`` (``"cityscapes"``, ``"voc"``, ``"camvid"``) at ``url``.

    Use it as a context manager::

        with cityscapes_io.writer("out/", "voc", save_media=True) as w:
            for frame in cityscapes_io.open("cityscapes/"):
                w.write(frame)
    """
    from .formats import writer_class

    return writer_class(format)(url, storage_options=storage_options, **options)
