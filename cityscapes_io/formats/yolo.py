"""YOLO (Ultralytics): the folder YOLOv5/YOLOv8/YOLO11 detectors and segmenters train from.

Writing gives Ultralytics' layout::

    data.yaml
    images/<split>/<name><ext>      the frame's photo, copied as it is (.png for Cityscapes)
    labels/<split>/<name>.txt       one line per object

- ``<name>`` is the last part of the frame id (``aachen/aachen_000000_000019`` gives
  ``aachen_000000_000019``): the city folder is flattened away. Cityscapes' base names are
  unique (they start with the city), and a flat folder is what both peers take: Ultralytics
  finds a photo's labels by replacing the last ``/images/`` of its path with ``/labels/`` and the
  extension with ``.txt`` (so sub-folders would work there), but Datumaro 1.13's
  YOLO-Ultralytics importer looks for photos at most two folders down (``images/<split>/``) and
  names items by base name only. Frames of one split that share a base name overwrite each
  other's files: :meth:`YoloWriter.close` warns when that happened.
- The photo is the frame's own: the photo key the dataset was opened with
  (``cityscapes_io.open(root, image="leftImg8bit_foggy@beta_0.02")`` writes the Foggy photos
  with the clear frames' ground truth). Photos are always written (the layout has no labels
  without images); ``image_ext`` re-encodes them.
- Detection lines (default) are ``class cx cy w h``: the class index (0..N-1, in label-map
  order of the chosen classes), then the box centre and size as fractions of the image width and
  height, with 6 decimals (``%.6f``, as Ultralytics' ``convert_segment_masks_to_yolo`` rounds;
  fixed decimals rather than its COCO converter's ``%g``, whose exponents (``1e-05``) Datumaro
  1.13's detector refuses). The box is the instance's pixel box ``[x, x + w] x [y, y + h]``
  (pixel corners), so ``cx * W - w * W / 2`` gives back ``x`` within 0.5e-6 of the image size.
- ``segmentation="polygon"`` writes ``class x1 y1 x2 y2 ...`` instead: one polygon per object,
  as Ultralytics' segment format holds it. The polygon runs along the pixel edges of the
  instance mask (pixel corners, :func:`cityscapes_io.rle.mask_to_polygons`); holes are cut in
  by zero-width bridges (that function's), and the fragments of an object (an instance split
  by an occluder) are joined into one ring by zero-width bridges between their closest corners,
  walked there and back, the way Ultralytics' ``merge_multi_segment`` joins the parts of a COCO
  polygon (the code is our own). **Tolerance**: a rasteriser that sets a pixel when its centre
  is inside by the even-odd rule (pycocotools', :func:`cityscapes_io.rle.polygons_to_mask`, the
  one :class:`YoloReader` uses) draws every polygon back to its mask exactly (IoU 1, 0 pixels
  off; the bridges, walked both ways, cancel). Rasterisers that also fill the pixels the
  outline passes through (Pillow's ``ImageDraw.polygon``; OpenCV's ``fillPoly``, with which
  Ultralytics makes its training masks) draw a superset: the mask, one more pixel on its right
  and lower edges, and the one-pixel-wide bridges.
- Classes: ``classes="things"`` (default: the evaluated classes with instances, person, rider,
  car, truck, bus, train, motorcycle, bicycle), ``"all"`` (every evaluated class, stuff regions
  as one object each) or a list of label names, chosen by ``coco_instances``' own rules
  (:func:`~cityscapes_io.formats.coco.chosen_categories`); the class indices follow label-map order.
- Crowd regions (group regions of a thing class: instanceIds values below 1000, ``cargroup``)
  are **left out** by default: YOLO has no crowd or ignore flag, and a group box taught as one
  object is wrong. ``include_crowd=True`` writes them as ordinary objects.
- ``data.yaml``: ``path`` (the destination's absolute path on local disk; ``.`` elsewhere,
  which Ultralytics 8.3 resolves against the YAML's folder and older versions against their
  ``datasets_dir``: edit it after downloading), one key per split naming its photo folder
  (``train: images/train``, ``val: images/val``, ...), ``nc`` and ``names`` as a mapping
  ``index: name`` (Ultralytics turns a list into that mapping, and Datumaro 1.13 accepts
  both). It is written by hand (no YAML library needed), names quoted.

Reading (:class:`YoloReader`) takes such a folder back: splits are the folders under
``images/`` and ``labels/``, labels the names of ``data.yaml`` (read with PyYAML when it is
installed, else with a reader of the plain subset written here), frame ids ``<city>/<name>``
when the name follows the Cityscapes grammar. Boxes become rectangular instances and polygons
are drawn into masks (centre-inside, even-odd: exact for what the writer wrote); the image
size comes from the photo's header, so a frame needs its photo.
"""
from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import png, rle
from ..errors import DatasetNotFoundError, InvalidFileError
from ..frame import Frame
from ..instances import INSTANCE_DIVISOR, Instance, class_of, split_value
from ..labels import LabelMap, official_label
from ..names import parse_frame_id, safe_relpath, sort_key
from ..sources import FileSource
from ..storage import Root, find_files, listdir, resolve_single_root
from ..storage.sinks import LocalSink
from . import decode_text, read_dataset_file
from .base import Entry, Files, Option, Reader, Segments, Writer
from .coco import (CocoInstancesWriter, annotation_mask, annotation_values, checked_classes, chosen_categories, coco_labels,
                   mask_polygons, paint_annotations)

__all__ = ["YoloReader", "YoloWriter", "YoloSource", "bridge_fragments", "instance_polygon", "data_yaml",
           "parse_data_yaml", "SEGMENTATIONS", "DATA_YAML"]

DATA_YAML = "data.yaml"
IMAGES_DIR = "images"
LABELS_DIR = "labels"
#: What the lines hold: boxes (``class cx cy w h``) or polygons (``class x1 y1 x2 y2 ...``).
SEGMENTATIONS = ("box", "polygon")
#: Digits after the point of the normalised coordinates.
DECIMALS = 6
#: Corners compared at a time when looking for the closest pair of two fragments.
_BLOCK = 1 << 20


def _coco_option(name: str) -> Option:
    """``coco_instances``' option ``name``, whose parsing ``yolo`` shares."""
    return next(o for o in CocoInstancesWriter.OPTIONS if o.name == name)


# -- polygons -------------------------------------------------------------------------------------
def bridge_fragments(rings: Sequence[np.ndarray]) -> np.ndarray:
    """One ring through every ring of ``rings`` (each ``N x 2``, closed implicitly): each ring is
    joined to the rest at their closest pair of corners by a zero-width bridge, walked there and
    back, so that the even-odd and non-zero rules draw the union of the rings (as Ultralytics'
    ``merge_multi_segment`` joins the parts of a COCO polygon into one segment).

    Returns
    -------
    ndarray
        ``M x 2``; ``rings[0]`` itself when there is one ring.
    """
    if not rings:
        raise ValueError("no ring to join")
    acc = np.asarray(rings[-1])
    for ring in reversed(rings[:-1]):
        ring = np.asarray(ring)
        i, j = _closest_pair(ring, acc)
        acc = np.concatenate([np.roll(ring, -i, axis=0), ring[i:i + 1], np.roll(acc, -j, axis=0), acc[j:j + 1]])
    return acc


def _closest_pair(a: np.ndarray, b: np.ndarray) -> Tuple[int, int]:
    """``(i, j)``: the corners ``a[i]`` and ``b[j]`` closest to each other (first such pair)."""
    best, where = None, (0, 0)
    step = max(1, _BLOCK // max(len(b), 1))
    for start in range(0, len(a), step):
        block: np.ndarray = a[start:start + step].astype(np.int64)
        d = ((block[:, None, :] - b[None, :, :].astype(np.int64)) ** 2).sum(-1)
        k = int(np.argmin(d))
        i, j = divmod(k, d.shape[1])
        if best is None or d[i, j] < best:
            best, where = int(d[i, j]), (start + i, j)
    return where


def instance_polygon(ids: np.ndarray, value: int, box: Sequence[float]) -> np.ndarray:
    """The one polygon of the pixels of ``ids`` equal to ``value`` (``box`` their ``[x, y, w,
    h]``), in pixel corners: each 8-connected fragment's outline with its holes bridged in
    (:func:`cityscapes_io.rle.mask_to_polygons`), the fragments joined by
    :func:`bridge_fragments`. ``K x 2`` integers."""
    rings = [np.asarray(p, dtype=np.int64).reshape(-1, 2) for p in mask_polygons(ids, value, box)]
    return bridge_fragments(rings)


def _number(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.{DECIMALS}f}"


# -- data.yaml ------------------------------------------------------------------------------------
def _quoted(text: str) -> str:
    """``text`` as a double-quoted YAML scalar."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


_PLAIN = re.compile(r"^[A-Za-z0-9_./][A-Za-z0-9_./-]*$")
#: Words YAML 1.1 (PyYAML) reads as booleans or null: never written bare.
_SPECIAL = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}


def _plain(text: str) -> str:
    """``text`` bare when YAML reads it back as that string, else quoted."""
    return text if _PLAIN.match(text) and text.lower() not in _SPECIAL and not text.isdigit() else _quoted(text)


def data_yaml(path: str, splits: Sequence[str], names: Sequence[str]) -> str:
    """The text of ``data.yaml``: ``path``, one ``<split>: images/<split>`` line per split,
    ``nc`` and ``names`` as a mapping ``index: "name"`` (names quoted, the rest bare when YAML
    reads it back the same)."""
    lines = ["# Ultralytics YOLO dataset, written by cityscapes_io", f"path: {_plain(path)}"]
    lines += [f"{_plain(s)}: {_plain(IMAGES_DIR + '/' + s)}" for s in splits]
    lines += [f"nc: {len(names)}", "names:"]
    lines += [f"  {k}: {_quoted(n)}" for k, n in enumerate(names)]
    return "\n".join(lines) + "\n"


_KEY_VALUE = re.compile(r"^(?P<key>\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^:#\s][^:#]*?)\s*:(?:\s+(?P<value>.*?))?\s*$")


def _scalar(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        out, k = [], 1
        while k < len(text) - 1:
            c = text[k]
            if c == "\\" and k + 1 < len(text) - 1:
                nxt = text[k + 1]
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                k += 2
                continue
            out.append(c)
            k += 1
        return "".join(out)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text.split(" #", 1)[0].strip()


def parse_data_yaml(text: str, where: str) -> Dict[str, Any]:
    """The keys of a ``data.yaml``: PyYAML's ``safe_load`` when it is installed; otherwise the
    plain subset Ultralytics' own files use (``key: scalar`` lines, and ``names`` as an indented
    ``index: name`` mapping, an indented ``- name`` list or a one-line ``[a, b]`` list).

    Raises
    ------
    InvalidFileError
        Not a mapping, or (without PyYAML) a line outside that subset.
    """
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        yaml = None
    if yaml is not None:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidFileError(where, f"not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(doc, dict):
            raise InvalidFileError(where, "not a YAML mapping")
        return doc
    out: Dict[str, Any] = {}
    block: Optional[str] = None
    for lineno, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        line = raw.rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0] in " \t" and block is not None:
            item = line.strip()
            if item.startswith("- "):
                if out.get(block) is None:
                    out[block] = []
                items = out[block]
                if not isinstance(items, list):
                    raise InvalidFileError(where, f"line {lineno}: a list item inside a mapping")
                items.append(_scalar(item[2:]))
                continue
            m = _KEY_VALUE.match(item)
            if m is None or m.group("value") is None:
                raise InvalidFileError(where, f"line {lineno}: not 'key: value' (install PyYAML to read any YAML)")
            if out.get(block) is None:
                out[block] = {}
            mapping = out[block]
            if not isinstance(mapping, dict):
                raise InvalidFileError(where, f"line {lineno}: a mapping entry inside a list")
            key: Any = _scalar(m.group("key"))
            mapping[int(key) if key.isdigit() else key] = _scalar(m.group("value"))
            continue
        m = _KEY_VALUE.match(line)
        if m is None:
            raise InvalidFileError(where, f"line {lineno}: not 'key: value' (install PyYAML to read any YAML)")
        name, value = _scalar(m.group("key")), m.group("value")
        block = None
        if value is None or value == "":
            block = name
            out[name] = None
        elif value.startswith("[") and value.endswith("]"):
            out[name] = [_scalar(v) for v in value[1:-1].split(",") if v.strip()]
        else:
            out[name] = _scalar(value)
    return out


def _names(doc: Mapping[str, Any], where: str) -> List[str]:
    """The class names of a parsed ``data.yaml``, in index order."""
    names = doc.get("names")
    if isinstance(names, list):
        return [str(n) for n in names]
    if isinstance(names, dict):
        try:
            keys = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise InvalidFileError(where, "names: the keys of the mapping are not class indices") from None
        if keys != list(range(len(keys))):
            raise InvalidFileError(where, f"names: class indices {keys[:10]} are not 0..{len(keys) - 1}")
        by_index = {int(k): v for k, v in names.items()}
        return [str(by_index[k]) for k in keys]
    raise InvalidFileError(where, "no 'names' list or mapping")


# -- writing --------------------------------------------------------------------------------------
class YoloWriter(Writer):
    """Writes Ultralytics' YOLO layout (see the module docstring).

    Parameters
    ----------
    classes : "things", "all" or list of str
        The classes written, as for ``coco_instances`` (default: the 8 thing classes).
    segmentation : "box" or "polygon"
        Box lines ``class cx cy w h`` (default) or polygon lines ``class x1 y1 ...``.
    include_crowd : bool
        Also write group regions of thing classes as objects (default: left out).
    **options
        As :class:`~cityscapes_io.formats.base.Writer` (``image_ext``, ``label_map``, ...).
        Photos are always written.
    """

    format = "yolo"
    ALWAYS_SAVES_MEDIA = True
    ENCODES_AHEAD = True
    NO_GROUND_TRUTH = "no ground truth: photo written without a labels file"
    OPTIONS = Writer.OPTIONS + (
        _coco_option("classes"),
        Option("segmentation", "yolo: box lines (default) or polygon lines, one polygon per object",
               argparse={"choices": ("box", "polygon")}),
        Option("include_crowd", "yolo: also write group regions (cargroup, ...) as objects (default: left out)",
               argparse={"action": "store_true"}))

    def __init__(self, url, *, classes: Union[str, Sequence[str]] = "things", segmentation: Optional[str] = "box",
                 include_crowd: bool = False, **options):
        segmentation = segmentation or "box"
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation must be one of {', '.join(SEGMENTATIONS)}, got {segmentation!r}")
        self.segmentation = segmentation
        self.include_crowd = bool(include_crowd)
        # The classes are chosen by coco_instances' own rules (chosen_categories); category ids
        # 1..N give the class indices 0..N-1.
        self._chosen = checked_classes(classes)
        #: label id -> (class index, name, thing)
        self._classes: Dict[int, Tuple[int, str, bool]] = {}
        self._seen: Dict[str, Set[str]] = {}
        self._clashes: List[str] = []
        super().__init__(url, **options)

    def setup(self, labels: LabelMap) -> None:
        self._classes = {c.label_id: (c.coco_id - 1, c.name, c.thing)
                         for c in chosen_categories(labels, self._chosen, "contiguous").values()}

    # -- one frame ------------------------------------------------------------------------------
    def _name(self, frame: Frame) -> str:
        return posixpath.basename(safe_relpath(frame.id))

    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:
        split = frame.split or "default"
        name = self._name(frame)
        files: List[Tuple[str, Any]] = []
        photo = self.photo(frame, None if seg is None else seg.ids.shape)
        if photo is not None:
            files.append((f"{IMAGES_DIR}/{split}/{name}{photo[1]}", photo[0]))
        if seg is not None:
            files.append((f"{LABELS_DIR}/{split}/{name}.txt", self.label_lines(seg).encode("utf-8")))
        return files

    def label_lines(self, seg: Segments) -> str:
        """The text of a frame's labels file, from its segments in output label ids."""
        h, w = seg.ids.shape
        values = [v for v in seg.values if class_of(v) in self._classes
                  and (self.include_crowd or not (self._classes[class_of(v)][2] and v < INSTANCE_DIVISOR))]
        lines = []
        for v, mask_rle in zip(values, rle.encode_segments(seg.ids, values)):
            index = self._classes[class_of(v)][0]
            x, y, bw, bh = rle.bbox(mask_rle)
            if self.segmentation == "box":
                coords = [(x + bw / 2) / w, (y + bh / 2) / h, bw / w, bh / h]
            else:
                ring: np.ndarray = instance_polygon(seg.ids, v, (x, y, bw, bh)).astype(np.float64)
                ring[:, 0] /= w
                ring[:, 1] /= h
                coords = ring.ravel().tolist()
            lines.append(" ".join([str(index)] + [_number(c) for c in coords]))
        return "".join(line + "\n" for line in lines)

    def encode(self, frame: Frame):
        encoded = super().encode(frame)
        if not frame.has_image:
            entry = dataclasses.replace(encoded.entry, warnings=encoded.entry.warnings + (
                "no photo: labels written without one (Ultralytics and Datumaro pass such a frame over)",))
            encoded = dataclasses.replace(encoded, entry=entry)
        return encoded

    def planned_files(self, frame: Frame) -> List[str]:
        split = frame.split or "default"
        name = self._name(frame)
        files = [f"{LABELS_DIR}/{split}/{name}.txt"] if frame.has_annotations else []
        ext = self.photo_ext(frame)
        return files + ([f"{IMAGES_DIR}/{split}/{name}{ext}"] if ext else [])

    def touch(self, frame: Frame) -> None:
        if frame.has_annotations:
            frame.instances()
        if frame.has_image:
            frame.image_bytes()

    def record(self, entry: Entry) -> None:
        name = posixpath.basename(entry.id)
        seen = self._seen.setdefault(entry.split, set())
        if name in seen:
            self._clashes.append(f"{entry.split}/{entry.id}")
        seen.add(name)
        super().record(entry)

    # -- the index ------------------------------------------------------------------------------
    def close_warnings(self) -> List[str]:
        if not self._clashes:
            return []
        return [f"{self.dest.url}: {len(self._clashes)} frame(s) have the base name of an earlier frame of their split "
                f"and overwrote its files (yolo flattens frame ids to their last part): "
                f"{', '.join(self._clashes[:5])}"]

    def index_files(self) -> Files:
        path = os.path.abspath(self.dest.root) if isinstance(self.dest, LocalSink) else "."
        names = [name for _, (index, name, _) in sorted(self._classes.items(), key=lambda kv: kv[1][0])]
        return [(DATA_YAML, data_yaml(path, list(self.subsets), names).encode("utf-8"))]

    def index_folders(self) -> List[str]:
        return [f"{IMAGES_DIR}/{split}" for split in self.subsets]


# -- reading --------------------------------------------------------------------------------------
class YoloSource(FileSource):
    """A YOLO frame: its photo and its labels file, drawn into instanceIds on demand (each line
    an object, painted in file order; boxes as rectangles, polygons centre-inside by the even-odd
    rule). :meth:`given_instances` gives each line as its own instance (overlaps kept)."""

    GT_KINDS = ("labels",)

    def __init__(self, files: Mapping[str, Tuple[Any, str]], categories: Sequence[int], things: Mapping[int, bool],
                 background: int, labels: LabelMap):
        super().__init__(files)
        self.categories = tuple(categories)
        self.things = dict(things)
        self.background = background
        self.labels = labels

    def size(self) -> Optional[Tuple[int, int]]:
        if "image" not in self._files:
            return None
        w, h = png.image_size(self.read_bytes("image"), self._shown("image"))
        return h, w

    def _annotations(self) -> Tuple[int, int, List[tuple]]:
        where = self._shown("labels")
        size = self.size()
        if size is None:
            raise InvalidFileError(where, "no photo: the image size is unknown (YOLO coordinates are fractions of it)")
        h, w = size
        try:
            text = self.read_bytes("labels").decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidFileError(where, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        anns = []
        for lineno, line in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
            fields = line.split()
            if not fields:
                continue
            try:
                index = int(fields[0])
                numbers = np.array([float(f) for f in fields[1:]], dtype=np.float64)
            except ValueError:
                raise InvalidFileError(where, f"line {lineno}: not numbers: {line[:80]!r}") from None
            if not 0 <= index < len(self.categories):
                raise InvalidFileError(where, f"line {lineno}: class {index} is not among the {len(self.categories)} "
                                              f"names of data.yaml")
            if not np.isfinite(numbers).all():
                raise InvalidFileError(where, f"line {lineno}: coordinates must be finite")
            if len(numbers) == 4:
                cx, cy, bw, bh = numbers
                x0, x1, y0, y1 = (cx - bw / 2) * w, (cx + bw / 2) * w, (cy - bh / 2) * h, (cy + bh / 2) * h
                poly = [x0, y0, x1, y0, x1, y1, x0, y1]
            elif len(numbers) >= 6 and len(numbers) % 2 == 0:
                pts = numbers.reshape(-1, 2) * (w, h)
                poly = pts.ravel().tolist()
            else:
                raise InvalidFileError(where, f"line {lineno}: {len(fields)} fields: 'class cx cy w h' or "
                                              f"'class x1 y1 x2 y2 x3 y3 ...' is needed")
            anns.append((lineno, self.categories[index], 0, [[float(c) for c in poly]]))
        return h, w, anns

    def instance_ids(self) -> Optional[np.ndarray]:
        h, w, anns = self._annotations()
        return paint_annotations(h, w, anns, self.things, self.background, self._shown("labels"))

    def given_instances(self) -> Optional[List[Instance]]:
        h, w, anns = self._annotations()
        where = self._shown("labels")
        out = []
        for ann, value in zip(anns, annotation_values(anns, self.things, where)):
            label_id, number = split_value(value)
            out.append(Instance.from_mask(annotation_mask(ann, h, w, where), label_id=label_id, id=number,
                                          is_crowd=number is None, label=self.labels.get(label_id)))
        return out

    def label_ids(self) -> Optional[np.ndarray]:
        return None

    def polygons(self) -> Tuple[Optional[bytes], Optional[str]]:
        return None, None

    def __getstate__(self):
        return {"files": self._files, "categories": self.categories, "things": self.things,
                "background": self.background, "labels": self.labels}

    def __setstate__(self, state) -> None:
        YoloSource.__init__(self, state["files"], state["categories"], state["things"], state["background"],
                            state["labels"])


def _has_instances(labels: LabelMap, label_id: int) -> bool:
    """Whether label ``label_id`` of ``labels`` numbers its objects (unknown ids do)."""
    label = labels.get(label_id)
    return True if label is None else bool(label.has_instances)


class YoloReader(Reader):
    """Reads Ultralytics' YOLO layout (see the module docstring): ``data.yaml``,
    ``images/<split>/`` and ``labels/<split>/``."""

    format = "yolo"
    EVIDENCE = "data.yaml and labels/"

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        if listing.get(DATA_YAML) == "file" and listing.get(LABELS_DIR) == "directory":
            return f"{DATA_YAML} and {LABELS_DIR}/"
        return None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error="raise"):
        self.root: Root = resolve_single_root(url, storage_options, "YOLO")
        self.roots = [self.root]
        self.on_error = on_error
        self._cities = [cities] if isinstance(cities, str) else (list(cities) if cities else None)
        top = listdir(self.root, "")
        if top.get(DATA_YAML) != "file":
            raise DatasetNotFoundError(self.root.url, f"not a YOLO dataset: no {DATA_YAML}")
        where = self.root.display(DATA_YAML)
        doc = parse_data_yaml(decode_text(read_dataset_file(self.root, DATA_YAML) or b"", where), where)
        names = _names(doc, where)
        official = bool(names) and all(official_label(n) is not None for n in names)
        ids = [official_label(n).id if official else k + 1 for k, n in enumerate(names)]  # type: ignore[union-attr]
        if official and len(set(ids)) != len(ids):
            ids = [k + 1 for k in range(len(names))]
        self.labels, self._background = coco_labels(list(zip(ids, names)), source=where)
        self._categories = ids
        self._things = {cid: _has_instances(self.labels, cid) for cid in ids}
        found = set()
        for folder in (IMAGES_DIR, LABELS_DIR):
            if top.get(folder) == "directory":
                found |= {n for n, t in listdir(self.root, folder).items() if t == "directory"}
        wanted = [split] if isinstance(split, str) else (list(split) if split else None)
        if wanted is not None:
            missing = [s for s in wanted if s not in found]
            if missing:
                raise DatasetNotFoundError(self.root.url, f"no split {', '.join(missing)} (there are: "
                                                          f"{', '.join(sorted(found)) or 'none'})")
            found = set(wanted)
        self._splits = sorted(found)

    def splits(self) -> List[str]:
        return list(self._splits)

    def _list(self, folder: str, split: str) -> Dict[str, str]:
        base = self.root.join(f"{folder}/{split}")
        try:
            paths = find_files(self.root.fs, base)
        except FileNotFoundError:
            return {}
        out = {}
        for path in paths:
            rel = path[len(base) + 1:]
            stem, ext = posixpath.splitext(rel)
            if folder == LABELS_DIR and ext == ".txt":
                out[stem] = path
            elif folder == IMAGES_DIR and ext.lower() in png.IMAGE_EXTS:
                out[stem] = path
            elif self.on_ignored is not None:
                self.on_ignored(path)
        return out

    def iter_frames(self, split: str):
        if split not in self._splits:
            raise DatasetNotFoundError(self.root.url, f"no split {split}")
        images, labels = self._list(IMAGES_DIR, split), self._list(LABELS_DIR, split)
        fs = self.root.fs
        frames = []
        for stem in set(images) | set(labels):
            files = {}
            if stem in images:
                files["image"] = (fs, images[stem])
            if stem in labels:
                files["labels"] = (fs, labels[stem])
            name = parse_frame_id(stem)
            frame_id = f"{name.city}/{stem}" if "/" not in stem and name.city and name.seq is not None else stem
            if self._cities is not None and frame_id.split("/", 1)[0] not in self._cities:
                continue
            frames.append((frame_id, files))
        for frame_id, files in sorted(frames, key=lambda f: sort_key(f[0])):
            source = YoloSource(files, self._categories, self._things, self._background, self.labels)
            yield Frame(frame_id, split, self.labels, source, on_error=self.on_error)
