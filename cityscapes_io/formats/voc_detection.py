"""Pascal VOC detection: the folders domain-adaptive detectors (Cityscapes → Foggy Cityscapes)
train on, as detectron2's ``load_voc_instances`` and Datumaro's ``voc_detection`` read them.

Layout written (``<id>`` is the VOC id, below):

- ``Annotations/<id>.xml``: ``folder`` (the frame's city, "" when it has none), ``filename``
  (``<id>.jpg``), ``size`` (``width``, ``height``, ``depth`` 3), and one ``object`` per box:
  ``name`` (the label's name), ``pose`` ``Unspecified``, ``truncated`` (1 when the box touches
  the image border, 0 otherwise: Cityscapes has no truncation flag, a box at the border is the
  one sign of an object cut by the frame), ``difficult`` and ``bndbox`` with VOC's 1-based
  pixel coordinates: for a segment's box ``(x, y, w, h)`` in 0-based pixels, ``xmin = x + 1``,
  ``ymin = y + 1``, ``xmax = x + w``, ``ymax = y + h`` (the last pixel, inclusive, 1-based);
- ``JPEGImages/<id>.jpg``: the frame's own photo (the one ``open(..., image=KEY)`` chose, so
  ``--image leftImg8bit_foggy@beta_0.02`` gives the Foggy set with the clear frames' ground
  truth), re-encoded as JPEG by default, as VOC readers assume (detectron2 opens
  ``<id>.jpg``); ``image_ext="png"`` (``--image-ext png``) keeps PNG. The photos are always
  written (:attr:`~cityscapes_io.formats.base.Writer.ALWAYS_SAVES_MEDIA`);
- ``ImageSets/Main/<split>.txt``: the ids of a split, one a line;
- ``ImageSets/Main/<class>_<split>.txt``: per class, every frame of the split as
  ``"%s % d" % (id, flag)`` (the VOC devkit's and Datumaro's spacing: ``<id>  1``, ``<id> -1``,
  ``<id>  0``): 1 when the frame has a box of the class that is not difficult, 0 when all its
  boxes of the class are difficult (VOC's meaning of 0), -1 when it has none;
- ``labelmap.txt``: Datumaro's label file (``background``, then the classes), without which
  Datumaro's importer knows only the 20 VOC classes.

**Ids.** A Cityscapes frame id ``<city>/<city>_<seq>_<frame>`` is written flattened to its base
name (``aachen_000000_000019``): base names are unique in Cityscapes (the city is in them), and
flat ids are what the VOC devkit, the domain-adaptation repositories and Datumaro's exporter
use. Any other id keeps its sub-folders (``a/b/1`` is ``Annotations/a/b/1.xml``), which
detectron2 (``os.path.join``) and Datumaro read as well. Reading back, a flat id in the
Cityscapes grammar gets its city folder again, so ids survive the round trip.

**Boxes.** The boxes are those of the frame's segments (:meth:`~cityscapes_io.Frame.instances`,
in output label ids) of the chosen classes: the 8 evaluated classes with instances by default
(person, rider, car, truck, bus, train, motorcycle, bicycle), ``classes`` as for
``coco_instances`` (``"things"``, ``"all"``, or label names). A crowd / group region (a segment
``v < 1000`` of a class with instances) becomes a box with ``difficult`` 1, the VOC way of
saying "do not count a miss here"; a region of a class without instances (road, with
``classes="all"``) is an ordinary box.

**Reading.** :class:`VocDetectionReader` reads such a folder (and VOC detection folders of
other tools). A frame cannot hold a box without a mask: each box is a rectangular instance
mask. :meth:`~cityscapes_io.Frame.original_instances` gives one :class:`~cityscapes_io.Instance`
per ``object``, in file order, whose ``bbox`` is the box exactly (overlaps kept); the frame's
instanceIds paint the rectangles, larger ones first, so that :meth:`~cityscapes_io.Frame.instances`
keeps the boxes of objects that are not covered. An object with ``difficult`` 1 reads as a
whole-class region (``is_crowd``), the others as instances numbered per class in file order.
The labels are those of ``labelmap.txt`` (else the names the XML files use), with the official
Cityscapes ids for official names (see :func:`~cityscapes_io.formats.coco.coco_labels`).
"""
from __future__ import annotations

import posixpath
from dataclasses import dataclass
import xml.etree.ElementTree as ET
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..errors import DatasetNotFoundError, InvalidFileError, LabelMapError, OnError, apply_policy
from ..frame import Frame, compose_instances
from ..instances import INSTANCE_DIVISOR, Instance, class_of, instance_value, segment_stats
from ..labels import Label, LabelMap, official_label
from ..mapping import distinct_colors
from ..names import parse_frame_id, sort_key
from ..png import MAX_PIXELS
from ..sources import MaskSource
from ..storage import Root, check_inside, find_files, listdir, resolve_single_root
from . import decode_text, read_dataset_file, resolve_listed, text_lines
from .base import Files, Option, Reader, Segments, Writer
from .coco import CocoInstancesWriter, checked_classes, chosen_categories, coco_labels
from .voc import LABELMAP_FILE, format_labelmap, parse_labelmap

__all__ = ["VocDetectionReader", "VocDetectionWriter", "VocDetectionSource", "Box", "voc_id", "frame_id_of",
           "parse_annotation", "SETS_DIR"]

ANNOTATIONS_DIR = "Annotations"
IMAGES_DIR = "JPEGImages"
SETS_DIR = "ImageSets/Main"
#: The photo extension VOC readers assume (detectron2 opens ``JPEGImages/<id>.jpg``).
DEFAULT_IMAGE_EXT = ".jpg"
POSE = "Unspecified"
BACKGROUND = "background"
#: The largest annotation file read (a Cityscapes frame's XML is a few kB).
MAX_XML_BYTES = 16 << 20

#: ``--classes``: the option ``coco_instances`` declares (the command line offers one
#: ``--classes``, first declaration wins), taken as it is.
CLASSES_OPTION: Option = next(o for o in CocoInstancesWriter.OPTIONS if o.name == "classes")


def voc_id(frame_id: str) -> str:
    """The VOC id of a frame: a Cityscapes id ``<city>/<city>_<seq>_<frame>`` flattened to its
    base name (unique in Cityscapes), any other id as it is."""
    folder, base = posixpath.split(frame_id)
    name = parse_frame_id(base)
    if folder and "/" not in folder and name.seq is not None and name.city == folder:
        return base
    return frame_id


def frame_id_of(vid: str) -> str:
    """The frame id of a VOC id: a flat id in the Cityscapes grammar gets its city folder back
    (the inverse of :func:`voc_id`)."""
    name = parse_frame_id(vid)
    if "/" not in vid and name.seq is not None and name.city:
        return f"{name.city}/{vid}"
    return vid


# -- writing ----------------------------------------------------------------------------------------
def _categories(labels: LabelMap, classes: Union[str, Tuple[str, ...]]) -> Dict[int, Any]:
    """``{label id: category}`` (``name``, ``thing``) of the chosen classes, chosen exactly as
    ``coco_instances`` chooses them (:func:`~cityscapes_io.formats.coco.chosen_categories`)."""
    return dict(chosen_categories(labels, classes, "label"))


class VocDetectionWriter(Writer):
    """Writes Pascal VOC detection (see the module docstring).

    Parameters
    ----------
    classes : "things", "all" or list of str
        The classes boxed, as for ``coco_instances``: the evaluated classes with instances
        (default), every evaluated class, or these labels (by name).
    **options
        As :class:`~cityscapes_io.formats.base.Writer`. ``image_ext`` defaults to ``.jpg``
        (``"png"`` keeps PNG); the photos are written whether or not ``save_media`` is given.
    """

    format = "voc_detection"
    ALWAYS_SAVES_MEDIA = True
    ENCODES_AHEAD = True
    OPTIONS = Writer.OPTIONS + (CLASSES_OPTION,)
    NO_GROUND_TRUTH = "no ground truth: written with no object"

    def __init__(self, url, *, classes: Union[str, Sequence[str]] = "things", **options):
        self.classes = checked_classes(classes)
        self._categories: Dict[int, Any] = {}
        options["save_media"] = True
        options["image_ext"] = options.get("image_ext") or DEFAULT_IMAGE_EXT
        super().__init__(url, **options)

    def setup(self, labels: LabelMap) -> None:
        self._categories = _categories(labels, self.classes)
        for cat in self._categories.values():
            if "/" in cat.name or ":" in cat.name or "\n" in cat.name:
                raise LabelMapError(labels.source, f"class {cat.name!r} cannot be a VOC class name ('/', ':' or a "
                                                   f"line break: it names a list file and a line of labelmap.txt)")

    # -- one frame ------------------------------------------------------------------------------
    def _objects(self, frame: Frame, seg: Optional[Segments]) -> List[Tuple[str, Tuple[int, int, int, int], bool]]:
        """``(class name, (x, y, w, h), difficult)`` of the frame's segments of the chosen
        classes, in increasing instanceIds value."""
        if seg is None:
            return []
        if seg.unchanged:
            boxes = [(i.value, i.bbox) for i in frame.instances()]
        else:  # labels mapped: the segments of the output ids
            values, _, x0, y0, x1, y1 = segment_stats(seg.ids)
            boxes = [(int(v), (int(a), int(b), int(c) - int(a), int(d) - int(b)))
                     for v, a, b, c, d in zip(values.tolist(), x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist())]
        out = []
        for value, box in boxes:
            cat = self._categories.get(class_of(value))
            if cat is None or box[2] <= 0 or box[3] <= 0:
                continue
            out.append((cat.name, box, bool(cat.thing and value < INSTANCE_DIVISOR)))
        return out

    def _size(self, frame: Frame, seg: Optional[Segments]) -> Tuple[int, int]:
        if seg is not None:
            return int(seg.ids.shape[0]), int(seg.ids.shape[1])
        size = frame.size()
        if size is None:
            raise InvalidFileError(frame.where, "no ground truth and no photo: the image size is unknown")
        return int(size[0]), int(size[1])

    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:
        vid = voc_id(frame.id)
        if any(c.isspace() for c in vid):
            raise InvalidFileError(frame.id, "refused: a VOC id cannot hold whitespace (the ImageSets lists are "
                                             "split at spaces)")
        h, w = self._size(frame, seg)
        photo = self.photo(frame, None if seg is None else (h, w))
        ext = photo[1] if photo is not None else (self.image_ext or DEFAULT_IMAGE_EXT)
        xml = annotation_xml(frame.city or "", f"{posixpath.basename(vid)}{ext}", w, h, self._objects(frame, seg))
        files: List[Tuple[str, Any]] = [(f"{ANNOTATIONS_DIR}/{vid}.xml", xml)]
        if photo is not None:
            files.append((f"{IMAGES_DIR}/{vid}{photo[1]}", photo[0]))
        return files

    def planned_files(self, frame: Frame) -> List[str]:
        vid = voc_id(frame.id)
        ext = self.photo_ext(frame)
        return [f"{ANNOTATIONS_DIR}/{vid}.xml"] + ([f"{IMAGES_DIR}/{vid}{ext}"] if ext else [])

    def entry_info(self, frame: Frame, seg: Optional[Segments]) -> tuple:
        # Per class present: its list flag (1: a box that is not difficult; 0: difficult ones only).
        flags: Dict[str, int] = {}
        for name, _, difficult in self._objects(frame, seg):
            flags[name] = max(flags.get(name, 0), 0 if difficult else 1)
        return tuple(sorted(flags.items()))

    def index_info(self, frame: Frame) -> tuple:
        # A frame written before (resume) or by a shard (finalize): its flags from its pixels.
        try:
            return self.entry_info(frame, self.output_segments(frame) if frame.has_annotations else None)
        finally:
            frame.release()

    # -- the index ------------------------------------------------------------------------------
    def index_files(self) -> Files:
        files: List[Tuple[str, Any]] = []
        names = [cat.name for cat in self._categories.values()]
        for split, ids in self.subsets.items():
            vids = [voc_id(i) for i in ids]
            files.append((f"{SETS_DIR}/{split}.txt", "".join(v + "\n" for v in vids).encode("utf-8")))
            for name in names:
                lines = []
                for frame_id, vid in zip(ids, vids):
                    flag = dict(self.infos.get((split, frame_id), ())).get(name, -1)
                    lines.append("%s % d\n" % (vid, flag))
                files.append((f"{SETS_DIR}/{name}_{split}.txt", "".join(lines).encode("utf-8")))
        assert self.labels is not None
        chosen = [Label(BACKGROUND, 0, (0, 0, 0))] + [self.labels.get(i) or Label(c.name, i) for i, c in
                                                     self._categories.items()]
        chosen = [l for k, l in enumerate(chosen) if k == 0 or l.name != BACKGROUND]
        files.append((LABELMAP_FILE, format_labelmap(chosen, distinct_colors(chosen)).encode("utf-8")))
        return files

    def index_folders(self) -> List[str]:
        return [ANNOTATIONS_DIR, IMAGES_DIR] if self.subsets else []

    def close_warnings(self) -> List[str]:
        out = []
        underscored = [s for s in self.subsets if "_" in s]
        if underscored:
            out.append(f"{self.dest.url}: split(s) {', '.join(underscored)}: Datumaro's VOC importer passes over "
                       f"lists whose name holds '_' (it takes them for per-class lists); rename them "
                       f"(--rename-split) for Datumaro")
        for split, ids in self.subsets.items():
            seen: Dict[str, str] = {}
            for frame_id in ids:
                vid = voc_id(frame_id)
                if seen.setdefault(vid, frame_id) != frame_id:
                    out.append(f"{self.dest.url}: frames {seen[vid]} and {frame_id} of split {split} are both VOC "
                               f"id {vid}: one's files replaced the other's")
        return out


def annotation_xml(folder: str, filename: str, width: int, height: int,
                   objects: Sequence[Tuple[str, Tuple[int, int, int, int], bool]]) -> bytes:
    """A VOC ``Annotations/<id>.xml``: ``objects`` are ``(name, (x, y, w, h) 0-based, difficult)``;
    boxes are written 1-based inclusive (``xmin = x + 1``, ``xmax = x + w``)."""
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = folder
    ET.SubElement(root, "filename").text = filename
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(width)
    ET.SubElement(size, "height").text = str(height)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for name, (x, y, w, h), difficult in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = POSE
        truncated = x == 0 or y == 0 or x + w == width or y + h == height
        ET.SubElement(obj, "truncated").text = str(int(truncated))
        ET.SubElement(obj, "difficult").text = str(int(difficult))
        box = ET.SubElement(obj, "bndbox")
        for tag, v in (("xmin", x + 1), ("ymin", y + 1), ("xmax", x + w), ("ymax", y + h)):
            ET.SubElement(box, tag).text = str(v)
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=False) + b"\n"


# -- reading ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    """One ``object`` of an annotation file: its class name, the box in 0-based pixels
    (``x = xmin - 1``, ``w = xmax - xmin + 1``) and its ``difficult`` flag."""

    name: str
    x: int
    y: int
    w: int
    h: int
    difficult: bool


def _number(elem: Optional[ET.Element], tag: str, where: str) -> int:
    """An integer field (VOC writes integers; a float such as ``12.0`` is rounded)."""
    child = elem.find(tag) if elem is not None else None
    text = child.text.strip() if child is not None and child.text else ""
    try:
        value = float(text)
    except ValueError:
        raise InvalidFileError(where, f"<{tag}> is {text!r}, not a number") from None
    if not np.isfinite(value):
        raise InvalidFileError(where, f"<{tag}> is {text!r}, not a finite number")
    return int(round(value))


def parse_annotation(data: bytes, where: str) -> Tuple[Optional[Tuple[int, int]], List[Box]]:
    """``((height, width) or None, boxes)`` of a VOC annotation file.

    Raises
    ------
    InvalidFileError
        Not XML, not an ``<annotation>``, an object without ``name`` or ``bndbox``, a
        coordinate that is not a number, or a box that is empty or leaves the image (``size``);
        the message names ``where`` and the object.
    """
    if len(data) > MAX_XML_BYTES:
        raise InvalidFileError(where, f"{len(data)} bytes: more than {MAX_XML_BYTES} (refused)")
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise InvalidFileError(where, "refused: a document type declaration (entities are not read)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InvalidFileError(where, f"not XML: {exc}") from None
    if root.tag != "annotation":
        raise InvalidFileError(where, f"not a VOC annotation: the root element is <{root.tag}>")
    shape: Optional[Tuple[int, int]] = None
    size = root.find("size")
    if size is not None and size.find("width") is not None and size.find("height") is not None:
        w, h = _number(size, "width", where), _number(size, "height", where)
        if w <= 0 or h <= 0 or w * h > MAX_PIXELS:
            raise InvalidFileError(where, f"<size> is {w}x{h}: not a positive size within {MAX_PIXELS} pixels")
        shape = (h, w)
    boxes = []
    for k, obj in enumerate(root.iterfind("object")):
        at = f"{where} (object {k})"
        name_elem = obj.find("name")
        name = (name_elem.text or "").strip() if name_elem is not None else ""
        if not name:
            raise InvalidFileError(at, "no <name>")
        bb = obj.find("bndbox")
        if bb is None:
            raise InvalidFileError(at, "no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bb, t, at) for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax < xmin or ymax < ymin or xmin < 1 or ymin < 1:
            raise InvalidFileError(at, f"box ({xmin}, {ymin}, {xmax}, {ymax}) is empty or starts before pixel 1 "
                                       f"(VOC boxes are 1-based)")
        if shape is not None and (xmax > shape[1] or ymax > shape[0]):
            raise InvalidFileError(at, f"box ({xmin}, {ymin}, {xmax}, {ymax}) leaves the {shape[1]}x{shape[0]} "
                                       f"image")
        diff = obj.find("difficult")
        difficult = diff is not None and (diff.text or "").strip() in ("1", "true", "True")
        boxes.append(Box(name, xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1, difficult))
    return shape, boxes


class VocDetectionSource(MaskSource):
    """A VOC detection frame's files: ``annotation`` (the XML) and ``image``. The boxes are
    rectangular instances (:meth:`given_instances`, in file order), painted into instanceIds
    larger first."""

    GT_KINDS = ("annotation",)

    def __init__(self, files: Optional[Mapping[str, Tuple[Any, str]]], labels: LabelMap, background: int = 0):
        super().__init__(files, labels)
        self.background = background

    def _parsed(self) -> Tuple[Optional[Tuple[int, int]], List[Box]]:
        return parse_annotation(self.read_bytes("annotation"), self._shown("annotation"))

    def size(self) -> Optional[Tuple[int, int]]:
        if "annotation" in self._files:
            shape = self._parsed()[0]
            if shape is not None:
                return shape
        if "image" in self._files:
            from .. import png
            w, h = png.image_size(self.read_bytes("image"), self._shown("image"))
            return h, w
        return None

    def given_instances(self) -> Optional[List[Instance]]:
        if "annotation" not in self._files:
            return None
        where = self._shown("annotation")
        shape, boxes = self._parsed()
        if shape is None:
            shape = self.size()
            if shape is None:
                raise InvalidFileError(where, "no <size> and no photo: the image size is unknown")
        counters: Dict[int, int] = {}
        out = []
        for k, box in enumerate(boxes):
            name, x, y, w, h = box.name, box.x, box.y, box.w, box.h
            label = self.labels.get(name)
            if label is None:
                raise InvalidFileError(f"{where} (object {k})", f"class {name!r} is not in the labels "
                                                               f"({self.labels.source})")
            crowd = box.difficult or not label.has_instances or label.id * INSTANCE_DIVISOR > 0xFFFF
            number = None
            if not crowd:
                number = counters.get(label.id, 0)
                if number >= INSTANCE_DIVISOR:
                    raise InvalidFileError(where, f"more than {INSTANCE_DIVISOR} boxes of {name!r}: instanceIds "
                                                  f"number them 0..999")
                counters[label.id] = number + 1
            out.append(Instance(instance_value(label.id, number), label.id, label, number, crowd, w * h,
                                (x, y, w, h), np.ones((h, w), bool), True, (x, y), shape))
        return out

    def instance_ids(self) -> Optional[np.ndarray]:
        given = self.given_instances()
        if given is None:
            return None
        shape = self.size()
        assert shape is not None  # given_instances found it
        order = sorted(given, key=lambda i: -i.area)  # stable: equal boxes in file order
        out = compose_instances(order, shape)
        if self.background:
            covered: np.ndarray = np.zeros(shape, bool)
            for inst in given:
                x, y, w, h = inst.bbox
                covered[y:y + h, x:x + w] = True
            out[~covered] = self.background
        return out

    def __getstate__(self):
        return {"_files": self._files, "labels": self.labels, "background": self.background}

    def __setstate__(self, state) -> None:
        VocDetectionSource.__init__(self, state["_files"], state["labels"], state["background"])


class VocDetectionReader(Reader):
    """Lists a Pascal VOC detection dataset (see the module docstring): the splits are the
    lists ``ImageSets/Main/<split>.txt`` (a ``<class>_<split>.txt`` beside ``<split>.txt`` is a
    per-class list, not a split), the frames their ids, in the Cityscapes sort order."""

    format = "voc_detection"
    EVIDENCE = "Annotations/ and ImageSets/Main/"

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """An ``Annotations/`` folder beside ``ImageSets/Main/`` (and no ``SegmentationClass/``)."""
        if (listing.get(ANNOTATIONS_DIR) == "directory" and listing.get("ImageSets") == "directory"
                and listing.get("SegmentationClass") != "directory"
                and listdir(root, "ImageSets").get("Main") == "directory"):
            return f"{ANNOTATIONS_DIR}/"
        return None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root: Root = resolve_single_root(url, storage_options, "VOC detection")
        self.roots = [self.root]
        self.on_error = on_error
        if listdir(self.root, "").get(ANNOTATIONS_DIR) != "directory":
            raise DatasetNotFoundError(self.root.url, f"not a VOC detection dataset: no {ANNOTATIONS_DIR}/")
        self._cities: Optional[Set[str]] = None if cities is None else (
            {cities} if isinstance(cities, str) else set(cities))
        names = self._label_names()
        lists = sorted(posixpath.splitext(n)[0] for n, t in listdir(self.root, SETS_DIR).items()
                       if t == "file" and n.endswith(".txt"))
        listed = set(lists)
        self._lists = [s for s in lists if not _is_class_list(s, listed, names)]
        if not self._lists:
            raise DatasetNotFoundError(self.root.display(SETS_DIR), "no split list <split>.txt")
        wanted = [split] if isinstance(split, str) else (list(split) if split else None)
        if wanted is not None:
            missing = [s for s in wanted if s not in self._lists]
            if missing:
                raise DatasetNotFoundError(self.root.display(SETS_DIR), f"no split {', '.join(map(repr, missing))}")
            self._lists = sorted(wanted)
        if names is None:
            names = self._names_in_annotations()
        self.labels, self._background = _labels(names, self.root.display(LABELMAP_FILE))
        self._photos: Optional[Dict[str, str]] = None

    def _label_names(self) -> Optional[List[str]]:
        """The class names of ``labelmap.txt`` (``background`` left out), None without one."""
        data = read_dataset_file(self.root, LABELMAP_FILE)
        if data is None:
            return None
        where = self.root.display(LABELMAP_FILE)
        return [l.name for l in parse_labelmap(decode_text(data, where, LabelMapError), source=where)
                if l.name != BACKGROUND]

    def _names_in_annotations(self) -> List[str]:
        """The class names the annotation files of the splits use, in order of first use."""
        names: Dict[str, None] = {}
        for split in self._lists:
            for vid, _ in self._ids(split):
                rel = f"{ANNOTATIONS_DIR}/{vid}.xml"
                data = read_dataset_file(self.root, rel)
                if data is not None:
                    names.update((b.name, None) for b in parse_annotation(data, self.root.display(rel))[1])
        return list(names)

    def splits(self) -> List[str]:
        return list(self._lists)

    def split_locations(self, split: str) -> List[str]:
        return [self.root.display(f"{SETS_DIR}/{split}.txt")]

    def _ids(self, split: str) -> List[Tuple[str, str]]:
        """``(id, line)`` of a split's list (ids checked to stay inside the root)."""
        rel = f"{SETS_DIR}/{split}.txt"
        where = self.root.display(rel)
        data = read_dataset_file(self.root, rel)
        if data is None:
            raise DatasetNotFoundError(where, "list file disappeared or cannot be read")
        out: List[Tuple[str, str]] = []
        seen: Dict[str, str] = {}
        for lineno, line in text_lines(decode_text(data, where)):
            vid, entry = line.split()[0], f"line {lineno}"
            resolve_listed(self.root, vid, where, entry, base=self.root.join(ANNOTATIONS_DIR))
            if vid in seen:
                apply_policy(self.on_error, InvalidFileError(where, f"{entry}: lists {vid!r} again (first on "
                                                                    f"{seen[vid]})"))
                continue
            seen[vid] = entry
            out.append((vid, entry))
        return out

    def _photo_index(self) -> Dict[str, str]:
        """``{id: path}`` of the photos in ``JPEGImages/`` (any extension), listed once."""
        if self._photos is None:
            base = self.root.join(IMAGES_DIR)
            try:
                found = find_files(self.root.fs, base)
            except FileNotFoundError:
                found = []
            self._photos = {}
            for path in found:
                stem = posixpath.splitext(self.root.relative(path)[len(IMAGES_DIR) + 1:])[0]
                self._photos.setdefault(stem, path)
        return self._photos

    def iter_frames(self, split: str) -> Iterator[Frame]:
        where = self.root.display(f"{SETS_DIR}/{split}.txt")
        photos = self._photo_index()
        frames = []
        for vid, entry in self._ids(split):
            frame_id = frame_id_of(vid)
            if self._cities is not None and parse_frame_id(frame_id).city not in self._cities:
                continue
            files: Dict[str, Tuple[Any, str]] = {}
            xml = self.root.join(ANNOTATIONS_DIR, f"{vid}.xml")
            if self.root.fs.exists(xml):
                files["annotation"] = (self.root.fs, xml)
            if vid in photos:
                files["image"] = (self.root.fs, photos[vid])
            if not files:
                apply_policy(self.on_error, DatasetNotFoundError(where, f"{entry}: lists {vid!r}, which has no "
                                                                        f"annotation and no photo"))
                continue
            for _, path in files.values():
                check_inside(self.root.fs, self.root.path, path, index=where, entry=entry,
                             rel=self.root.relative(path))
            frames.append((frame_id, files))
        for frame_id, files in sorted(frames, key=lambda f: sort_key(f[0])):
            yield Frame(frame_id, split, self.labels, VocDetectionSource(files, self.labels, self._background),
                        on_error=self.on_error)


def _is_class_list(name: str, lists: Set[str], classes: Optional[List[str]]) -> bool:
    """Whether list ``name`` is a per-class list ``<class>_<split>``: ``<split>.txt`` is there
    and, when the classes are known, ``<class>`` is one of them."""
    for k in range(1, len(name)):
        if name[k] == "_" and name[k + 1:] in lists and (classes is None or name[:k] in classes):
            return True
    return False


def _labels(names: Sequence[str], source: str) -> Tuple[LabelMap, int]:
    """The label map of the class names: official names keep their Cityscapes ids (all official:
    the whole official map), others take free ids from 1 up (see
    :func:`~cityscapes_io.formats.coco.coco_labels`)."""
    taken = {ref.id for ref in (official_label(n) for n in names) if ref is not None}
    free = (i for i in range(1, 1 << 16) if i not in taken)
    categories = []
    for name in dict.fromkeys(names):
        ref = official_label(name)
        categories.append((ref.id if ref is not None and ref.id > 0 else next(free), name))
    return coco_labels(categories, source=source)
