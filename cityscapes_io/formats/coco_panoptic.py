"""COCO panoptic as a standalone dataset, in Datumaro's ``coco_panoptic`` layout:

- ``annotations/panoptic_<split>.json``: ``{"annotations", "categories", "images"}``;
- ``annotations/panoptic_<split>/<id>.png``: RGB, segment id ``R + 256 G + 65536 B`` per pixel,
  0 where no segment is;
- ``images/<split>/<id>.<ext>``: the photos (``save_media``).

Writing follows the official ``csCreatePanopticImgs`` rules (:mod:`cityscapes_io.panoptic`):
categories are the labels evaluated (``id`` the label id, or the train id with
``train_ids=True``; ``color``, ``supercategory``, ``isthing``), one segment per ``instanceIds``
value kept, its ``id`` the value itself (a value 0, which COCO panoptic keeps for VOID: the
largest 16-bit value the frame does not use for road in train ids, no segment for a custom
label), ``iscrowd`` 1 for a region of a class with instances.
Image ids are integers from 1 in input order, counted per split (each JSON stands alone, and a
split's file is the same whatever else is converted); ``file_name`` is ``<frame id>.<ext>`` of
the photo, relative to ``images/<split>/``, as Datumaro names it, so Datumaro reads the frame
ids back. Frames without ground truth get an image record and no annotation. The records of a
split are spooled to a temporary file as they come and streamed into the JSON at the end.

Reading takes the splits from ``annotations/panoptic_<split>.json``, the labels from the
categories (ids kept; ``has_instances`` from ``isthing``; colours from ``color``, when given),
one frame per image record (its id the ``file_name`` without extension, without a trailing
``_leftImg8bit`` / ``_gtFine_leftImg8bit``), the photo from ``images/<split>/`` (or
``images/``, Datumaro's rule) when it is there. A PNG is decoded when asked for; each segment
becomes an ``instanceIds`` value:

- a segment id that already is the value of its category (``id // 1000`` the category, for a
  thing that is not a crowd; the category itself otherwise) is kept, so this library's output
  reads back exactly;
- otherwise things (``isthing`` 1, ``iscrowd`` 0) are numbered per category from 0 in
  ``segments_info`` order (numbers kept by other segments passed over), and crowds and stuff
  take the plain category id.

Pixels of no segment (id 0) take the void label: the category named ``unlabeled`` when there
is one that is not a thing (Datumaro's export of a Cityscapes tree has it, as category 1, and
leaves its pixels VOID), else a label ``unlabeled`` of its own, with id 0, or, when a category
has id 0, id 255 (or the first free id). Categories that are all official Cityscapes labels with
their ids (this library's and ``csCreatePanopticImgs``' output) read as the whole official map,
the classes ignored in evaluation included (never used), so that writers get the map they know;
with train ids (``--use-train-id``), the train-id map, whose void is 255 ``ignore``. A segment in the PNG that
``segments_info`` does not list, an unknown category id, a PNG whose size differs from its
image record raise :class:`~cityscapes_io.errors.InvalidFileError` naming the file and the
segment (or skip the frame under ``on_error="skip"``); a listed segment absent from the PNG is
a warning. An image id given to two images, two annotations of one image, a ``height`` /
``width`` that is not a positive integer or exceeds :data:`~cityscapes_io.png.MAX_PIXELS` are
errors of the images concerned; every ``file_name`` is resolved inside the dataset root
(:func:`~cityscapes_io.storage.resolve_inside`: absolute paths, ``..`` out of the root and
symbolic links out of it are refused), and a PNG's size is compared with its record from its
header, before it is decoded.
"""
from __future__ import annotations

import collections
import dataclasses
import posixpath
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import jsonfile, png
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, LabelMapError, OnError, apply_policy
from ..frame import Frame
from ..sources import FileSource
from ..instances import INSTANCE_DIVISOR, MAX_INSTANCE_VALUE
from ..labels import TRAIN_IGNORE, Label, LabelMap, normalize_name
from ..mapping import mapping_between
from ..names import safe_relpath
from ..panoptic import panoptic_categories, panoptic_frame
from .base import Reader
from ..storage import Root, check_inside, listdir, read_file, resolve_inside, resolve_single_root
from .base import Encoded, Entry, Files, Writer, check_names
from .spool import json_lists
from .coco import annotation_jsons

__all__ = ["CocoPanopticReader", "CocoPanopticWriter", "decode_coco_panoptic", "segment_values",
           "panoptic_labels", "frame_id_of"]

ANNOTATIONS_DIR = "annotations"
IMAGES_DIR = "images"
PREFIX = "panoptic_"
#: Endings of Cityscapes photo names, left out of frame ids (longest first).
PHOTO_SUFFIXES = ("_gtFine_leftImg8bit", "_leftImg8bit")
#: The label of the pixels of no segment (segment id 0, VOID).
VOID_NAME = "unlabeled"
#: A segment: (segment id, category id, iscrowd).
Segment = Tuple[int, int, bool]


# -- names ------------------------------------------------------------------------------------------
def json_path(split: str) -> str:
    return f"{ANNOTATIONS_DIR}/{PREFIX}{split}.json"


def png_path(split: str, frame_id: str) -> str:
    return f"{ANNOTATIONS_DIR}/{PREFIX}{split}/{frame_id}.png"


def photo_path(split: str, frame_id: str, ext: str) -> str:
    return f"{IMAGES_DIR}/{split}/{frame_id}{ext}"


def frame_id_of(file_name: str) -> str:
    """The frame id of an image record's ``file_name``: without extension and without a
    Cityscapes photo ending (``aachen/aachen_000000_000019_leftImg8bit.png`` gives
    ``aachen/aachen_000000_000019``)."""
    stem = posixpath.splitext(file_name)[0]
    for suffix in PHOTO_SUFFIXES:
        if stem.endswith(suffix) and len(posixpath.basename(stem)) > len(suffix):
            return stem[: -len(suffix)]
    return stem


# -- decoding ---------------------------------------------------------------------------------------
def segment_values(segments: Sequence[Segment], labels: LabelMap, where: str = "") -> List[int]:
    """The ``instanceIds`` value of each segment (see the module docstring): kept when the
    segment id already is one for its category, else numbered (things) or the category id."""
    out: List[Optional[int]] = []
    for sid, cat, crowd in segments:
        lab = labels.get(cat)
        thing = bool(lab is not None and lab.has_instances) and not crowd
        ok = (INSTANCE_DIVISOR <= sid <= MAX_INSTANCE_VALUE and sid // INSTANCE_DIVISOR == cat) if thing else sid == cat
        out.append(sid if ok else None)
    used: Set[int] = {v for v in out if v is not None}
    following: Dict[int, int] = {}
    for k, (sid, cat, crowd) in enumerate(segments):
        if out[k] is not None:
            continue
        lab = labels.get(cat)
        if lab is not None and lab.has_instances and not crowd and cat >= 1 \
                and cat * INSTANCE_DIVISOR <= MAX_INSTANCE_VALUE:
            n = following.get(cat, 0)
            while cat * INSTANCE_DIVISOR + n in used:
                n += 1
            value = cat * INSTANCE_DIVISOR + n
            if n >= INSTANCE_DIVISOR or value > MAX_INSTANCE_VALUE:
                raise InvalidFileError(where, f"segment {sid}: too many instances of category {cat} for "
                                              f"16-bit instanceIds")
            following[cat] = n + 1
            used.add(value)
            out[k] = value
        else:  # a crowd, stuff, or a thing whose category cannot number instances: the class
            out[k] = cat
    return [int(v) for v in out if v is not None]


def decode_coco_panoptic(data: bytes, path: str, segments: Sequence[Segment], labels: LabelMap, *,
                         void: int = 0, size: Optional[Tuple[int, int]] = None, index: str = "segments_info") -> np.ndarray:
    """The ``instanceIds`` array (uint16) of a COCO panoptic PNG.

    Parameters
    ----------
    data, path : bytes, str
        The PNG and its path (for messages).
    segments : sequence of (segment id, category id, iscrowd)
        The annotation's ``segments_info``.
    labels : LabelMap
        The dataset's labels (which categories are things).
    void : int
        The value of pixels of no segment (id 0).
    size : (height, width), optional
        The image record's size, which the PNG must have.
    index : str
        The JSON file, for messages.

    Raises
    ------
    InvalidFileError
        Not a PNG, a size other than the image record's, or a segment id that
        ``segments_info`` does not list (the message names the PNG, the id and a pixel).
    """
    if size is not None:  # compared from the header, before anything is decoded
        w, h = png.image_size(data, path)
        if (h, w) != tuple(size):
            raise InvalidFileError(path, f"PNG is {w}x{h} but its image record in {index} says {size[1]}x{size[0]}")
    rgb = png.decode_rgb(data, path)
    h, w = rgb.shape[:2]
    ids = rgb[..., 0].astype(np.uint32)
    ids |= rgb[..., 1].astype(np.uint32) << 8
    ids |= rgb[..., 2].astype(np.uint32) << 16
    values = segment_values(segments, labels, path)
    keys = np.array([0] + [s[0] for s in segments], dtype=np.uint32)
    table = np.array([void] + values, dtype=np.uint16)
    order = np.argsort(keys, kind="stable")
    keys, table = keys[order], table[order]
    pos = np.searchsorted(keys, ids)
    np.minimum(pos, keys.size - 1, out=pos)
    known = keys[pos] == ids
    if not known.all():
        y, x = divmod(int(np.argmin(known)), w)
        sid = int(ids[y, x])
        raise InvalidFileError(path, f"segment id {sid} (colour {tuple(int(c) for c in rgb[y, x])}, first at pixel "
                                     f"x={x}, y={y}) is not in the segments_info of its annotation in {index}")
    counts = np.bincount(pos.ravel(), minlength=keys.size)
    absent = sorted(int(k) for k, c in zip(keys.tolist(), counts.tolist()) if c == 0 and k != 0)
    if absent:
        warnings.warn(f"{path}: segments_info in {index} lists segment id(s) absent from the PNG: "
                      f"{', '.join(map(str, absent))}", stacklevel=2)
    return table[pos]


class CocoPanopticSource(FileSource):
    """A COCO panoptic frame's files: the PNG (``panoptic``) and the photo, with the frame's
    segments."""

    GT_KINDS = ("panoptic",)

    def __init__(self, files: Optional[Mapping[str, Tuple[Any, str]]], segments: Sequence[Segment],
                 labels: LabelMap, void: int, size: Optional[Tuple[int, int]], index: str):
        super().__init__(files)
        self.segments = tuple(segments)
        self.labels = labels
        self.void = void
        self.shape = size
        self.index = index

    def instance_ids(self) -> Optional[np.ndarray]:
        if "panoptic" not in self._files:
            return None
        return decode_coco_panoptic(self.read_bytes("panoptic"), self.path("panoptic"), self.segments, self.labels,
                                    void=self.void, size=self.shape, index=self.index)

    def label_ids(self) -> Optional[np.ndarray]:
        return None

    def original(self, kind: str) -> Optional[bytes]:
        return None

    def size(self) -> Optional[Tuple[int, int]]:
        return self.shape if self.shape is not None else super().size()

    def fresh(self) -> "CocoPanopticSource":
        return CocoPanopticSource(self._files, self.segments, self.labels, self.void, self.shape, self.index)

    def __getstate__(self):
        return {"_files": self._files, "segments": self.segments, "labels": self.labels, "void": self.void,
                "shape": self.shape, "index": self.index}

    def __setstate__(self, state) -> None:
        CocoPanopticSource.__init__(self, state["_files"], state["segments"], state["labels"], state["void"],
                                    state["shape"], state["index"])


# -- the JSON ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Item:
    """One image record with its annotation (None: a photo without ground truth)."""

    id: str
    image_id: Any
    image: str
    size: Optional[Tuple[int, int]]
    panoptic: Optional[str]
    segments: Tuple[Segment, ...]


def _field(record: Any, key: str, kind, where: str, what: str):
    if not isinstance(record, dict) or key not in record:
        raise InvalidFileError(where, f"not a COCO panoptic file: {what} has no {key!r}")
    value = record[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        raise InvalidFileError(where, f"{what}: {key!r} is {value!r}, expected {' or '.join(k.__name__ for k in kinds)}")
    return value


def panoptic_labels(categories: Sequence[dict], where: str) -> Tuple[LabelMap, int]:
    """``(labels, void id)`` from a JSON's ``categories``: one label per category (its id and
    name; ``has_instances`` from ``isthing``, colour from ``color``, ``category`` from
    ``supercategory``). The pixels of no segment are the category named ``unlabeled`` (not a
    thing) when there is one, else a label ``unlabeled`` added for them (id 0, or 255 or the
    first free id when a category has id 0)."""
    labels: List[Label] = []
    for k, cat in enumerate(categories):
        what = f"categories[{k}]"
        cid = _field(cat, "id", int, where, what)
        name = _field(cat, "name", str, where, what)
        if not 0 <= cid < INSTANCE_DIVISOR:
            raise LabelMapError(where, f"{what}: category id {cid} does not fit instanceIds (0..999)")
        color = cat.get("color")
        rgb: Optional[Tuple[int, int, int]] = None
        if color is not None:
            if not (isinstance(color, list) and len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255
                                                                        for c in color)):
                raise LabelMapError(where, f"{what}: color {color!r} is not [r, g, b] in 0..255")
            rgb = (color[0], color[1], color[2])
        sup = cat.get("supercategory")
        labels.append(Label(name, cid, rgb, category=sup if isinstance(sup, str) and sup else None,
                            has_instances=bool(cat.get("isthing", 0))))
    official = _official(labels, where)
    if official is not None:
        return official
    unlabeled = [lab for lab in labels if normalize_name(lab.name) == VOID_NAME and not lab.has_instances]
    if unlabeled:
        # The file has a class for the pixels nobody labelled (Datumaro's export of a Cityscapes
        # tree: ``unlabeled``, category 1, whose pixels are VOID): VOID is that class.
        void = unlabeled[0].id
    else:
        ids = {lab.id for lab in labels}
        void = 0 if 0 not in ids else (255 if 255 not in ids else min(set(range(INSTANCE_DIVISOR)) - ids))
        name = VOID_NAME
        while name in {lab.name for lab in labels}:  # a thing called "unlabeled": the void label is another
            name += "_"
        labels.append(Label(name, void, (0, 0, 0), category="void", has_instances=False, ignore_in_eval=True))
    try:
        return LabelMap(labels, source=where), void
    except LabelMapError as exc:
        raise LabelMapError(where, f"categories: {exc.reason}") from None


def _official(labels: Sequence[Label], where: str) -> Optional[Tuple[LabelMap, int]]:
    """The whole official map (label ids; or the train-id map, whose void is 255 ``ignore``)
    when every category is an official label with its id (or train id), with ``isthing`` and
    ``color`` taken from the categories; None otherwise."""
    for table, void in ((LabelMap.cityscapes(), 0), (LabelMap.cityscapes_train(), TRAIN_IGNORE)):
        hits = {lab.id: lab for lab in labels if table.get(lab.id) is not None and table[lab.id].name == lab.name}
        if labels and len(hits) == len(labels):
            return LabelMap([dataclasses.replace(ref, has_instances=hits[ref.id].has_instances,
                                                 color=hits[ref.id].color or ref.color) if ref.id in hits else ref
                             for ref in table], source=where), void
    return None


def _parse(data: bytes, where: str) -> Tuple[List[dict], List[Union[_Item, CityscapesIOError]]]:
    """``(categories, items or per-item errors)`` of one JSON, items in ``images`` order."""
    doc = jsonfile.loads(data, where)
    if not isinstance(doc, dict):
        raise InvalidFileError(where, "not a COCO panoptic file: expected a JSON object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(doc.get(key), list):
            raise InvalidFileError(where, f"not a COCO panoptic file: no {key!r} list")
    categories = doc["categories"]
    known = _category_ids(categories, where)
    annotations: Dict[Any, Tuple[str, Tuple[Segment, ...]]] = {}
    errors: Dict[Any, CityscapesIOError] = {}
    image_ids = [_field(img, "id", (int, str), where, f"images[{k}]") for k, img in enumerate(doc["images"])]
    images = set(image_ids)
    for k, ann in enumerate(doc["annotations"]):
        what = f"annotations[{k}]"
        if isinstance(ann, dict) and "segments_info" not in ann and "segmentation" in ann:
            raise InvalidFileError(where, f"not a COCO panoptic file: {what} has 'segmentation' and no "
                                          f"'segments_info' (COCO instances?)")
        image_id = _field(ann, "image_id", (int, str), where, what)
        file_name = _field(ann, "file_name", str, where, what)
        infos = _field(ann, "segments_info", list, where, what)
        segments: List[Segment] = []
        error: Optional[CityscapesIOError] = None
        for j, info in enumerate(infos):
            sid = _field(info, "id", int, where, f"{what}.segments_info[{j}]")
            cat = _field(info, "category_id", int, where, f"{what}.segments_info[{j}]")
            if cat not in known:
                error = error or InvalidFileError(where, f"{file_name}: segment {sid} has category_id {cat}, which "
                                                         f"is not in categories")
            if sid <= 0 or sid >= 1 << 24:
                error = error or InvalidFileError(where, f"{file_name}: segment id {sid} is not in 1..16777215 "
                                                         f"(0 is void)")
            segments.append((sid, cat, bool(info.get("iscrowd", 0))))
        if len({s[0] for s in segments}) != len(segments):
            error = error or InvalidFileError(where, f"{file_name}: segments_info lists a segment id twice")
        if image_id not in images:
            raise InvalidFileError(where, f"{what} ({file_name}) refers to image id {image_id!r}, which no image has")
        if image_id in annotations or image_id in errors:
            error = error or InvalidFileError(where, f"two annotations for image id {image_id!r}")
        if error is not None:
            errors[image_id] = error
        else:
            annotations[image_id] = (file_name, tuple(segments))
    uses = collections.Counter(image_ids)
    items: List[Union[_Item, CityscapesIOError]] = []
    seen: Set[str] = set()
    for k, (img, image_id) in enumerate(zip(doc["images"], image_ids)):
        what = f"images[{k}]"
        file_name = _field(img, "file_name", str, where, what)
        try:
            if uses[image_id] > 1:
                raise InvalidFileError(where, f"{what}: image id {image_id!r} is given to {uses[image_id]} images: "
                                              f"which of them its annotation belongs to cannot be told")
            if image_id in errors:
                raise errors[image_id]
            size = _size(img, what, where)
            frame_id = _frame_id(file_name, what, where)
            if frame_id in seen:
                raise InvalidFileError(where, f"{what}: a second image of frame id {frame_id!r}")
        except CityscapesIOError as exc:
            items.append(exc)
            continue
        seen.add(frame_id)
        ann = annotations.get(image_id)
        items.append(_Item(frame_id, image_id, file_name, size, ann[0] if ann else None, ann[1] if ann else ()))
    return categories, items


def _category_ids(categories: List[Any], where: str) -> Set[int]:
    """The ids of a JSON's categories, each an integer given once."""
    known: Set[int] = set()
    for k, cat in enumerate(categories):
        cid = _field(cat, "id", int, where, f"categories[{k}]")
        if cid in known:
            raise LabelMapError(where, f"categories[{k}]: category id {cid} is given twice")
        known.add(cid)
    return known


def _frame_id(file_name: str, what: str, where: str) -> str:
    """The frame id of an image record's ``file_name``, which must be a plain relative path."""
    try:
        safe_relpath(file_name)
    except ValueError as exc:
        raise InvalidFileError(where, f"{what}: refused file_name: {exc}") from None
    return frame_id_of(file_name)


def _size(img: dict, what: str, where: str) -> Optional[Tuple[int, int]]:
    """``(height, width)`` of an image record (None when it gives neither), checked against
    :data:`~cityscapes_io.png.MAX_PIXELS`."""
    h, w = img.get("height"), img.get("width")
    if h is None and w is None:
        return None
    if not (isinstance(h, int) and isinstance(w, int) and not isinstance(h, bool) and not isinstance(w, bool)
            and h > 0 and w > 0):
        raise InvalidFileError(where, f"{what}: height and width must be positive integers, got {h!r} x {w!r}")
    if h * w > png.MAX_PIXELS:
        raise InvalidFileError(where, f"{what}: height x width is {h}x{w}, more than the limit of "
                                      f"{png.MAX_PIXELS} pixels (refused)")
    return h, w


class CocoPanopticReader(Reader):
    """Lists a COCO panoptic dataset (see the module docstring)."""

    format = "coco_panoptic"
    EVIDENCE = "panoptic_*.json"
    EVIDENCE_GROUP = "coco"

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """``annotations/panoptic_*.json``."""
        found = sorted(n for n in annotation_jsons(root, listing) if n.startswith("panoptic_"))
        return f"annotations/{found[0]}" if found else None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root: Root = resolve_single_root(url, storage_options, "COCO panoptic")
        self.roots = [self.root]
        self.on_error = on_error
        names = [n for n, t in listdir(self.root, ANNOTATIONS_DIR).items()
                 if t == "file" and n.startswith(PREFIX) and n.endswith(".json") and len(n) > len(PREFIX) + 5]
        found = sorted(n[len(PREFIX):-len(".json")] for n in names)
        if not found:
            raise DatasetNotFoundError(self.root.url, f"not a COCO panoptic dataset: no {ANNOTATIONS_DIR}/"
                                                      f"{PREFIX}<split>.json")
        wanted = [split] if isinstance(split, str) else (list(split) if split else None)
        if wanted is not None:
            missing = [s for s in wanted if s not in found]
            if missing:
                raise DatasetNotFoundError(self.root.url, f"no split {', '.join(map(repr, missing))} "
                                                          f"(found: {', '.join(found)})")
            found = sorted(wanted)
        self._splits = found
        self._cities = [cities] if isinstance(cities, str) else (list(cities) if cities else None)
        self._parsed: Dict[str, Tuple[List[dict], List[Union[_Item, CityscapesIOError]]]] = {}
        categories, _ = self._index(found[0])
        self._categories = categories
        self.labels, self.void = panoptic_labels(categories, self.root.display(json_path(found[0])))

    def _index(self, split: str) -> Tuple[List[dict], List[Union[_Item, CityscapesIOError]]]:
        if split not in self._parsed:
            path = check_inside(self.root.fs, self.root.path, self.root.join(json_path(split)))
            self._parsed = {split: _parse(read_file(self.root.fs, path),
                                          self.root.display(json_path(split)))}  # one split held at a time
        return self._parsed[split]

    def splits(self) -> List[str]:
        return list(self._splits)

    def _listing(self, folder: str) -> Set[str]:
        try:
            return {self.root.relative(p) for p in self.root.fs.find(self.root.join(folder))}
        except FileNotFoundError:
            return set()

    def iter_frames(self, split: str) -> Iterator[Frame]:
        where = self.root.display(json_path(split))
        categories, items = self._index(split)
        if categories != self._categories:
            raise LabelMapError(where, f"categories differ from those of {json_path(self._splits[0])}")
        image_dir = (f"{IMAGES_DIR}/{split}" if listdir(self.root, IMAGES_DIR).get(split) == "directory"
                     else IMAGES_DIR)
        photos = self._listing(image_dir)
        png_dir = f"{ANNOTATIONS_DIR}/{PREFIX}{split}"
        pngs = self._listing(png_dir)
        for item in items:
            if isinstance(item, CityscapesIOError):
                apply_policy(self.on_error, item)
                continue
            try:
                files = self._files(item, where, png_dir, pngs, image_dir, photos)
            except CityscapesIOError as exc:
                apply_policy(self.on_error, exc)
                continue
            frame = Frame(item.id, split, self.labels,
                          CocoPanopticSource(files, item.segments, self.labels, self.void, item.size, where),
                          on_error=self.on_error)
            if self._cities is not None and frame.city not in self._cities:
                continue
            yield frame

    def _files(self, item: _Item, where: str, png_dir: str, pngs: Set[str], image_dir: str,
               photos: Set[str]) -> Dict[str, Tuple[Any, str]]:
        """The files of an item, their paths from the JSON resolved inside the dataset root."""
        files = {}
        if item.panoptic is not None:
            path = resolve_inside(self.root.fs, self.root.path, item.panoptic, base=self.root.join(png_dir),
                                  index=where, entry=f"annotation of image {item.image_id!r} 'file_name'")
            rel = self.root.relative(path)
            if rel not in pngs:
                raise DatasetNotFoundError(self.root.display(rel), f"the PNG of {item.id!r} in {where} is missing")
            files["panoptic"] = (self.root.fs, path)
        path = resolve_inside(self.root.fs, self.root.path, item.image, base=self.root.join(image_dir), index=where,
                              entry=f"image {item.image_id!r} 'file_name'")
        if self.root.relative(path) in photos:
            files["image"] = (self.root.fs, path)
        return files


# -- writing ----------------------------------------------------------------------------------------
class CocoPanopticWriter(Writer):
    """Writes a COCO panoptic dataset (see the module docstring).

    Parameters
    ----------
    train_ids : bool
        Category ids are the Cityscapes train ids (``csCreatePanopticImgs --use-train-id``)
        instead of the label ids.
    **options :
        Those of :class:`~cityscapes_io.formats.base.Writer` (``save_media``, ``image_ext``,
        ``label_map``, ``overwrite``).
    """

    format = "coco_panoptic"

    def __init__(self, url, *, train_ids: bool = False, **options):
        self.train_ids = bool(train_ids)
        super().__init__(url, **options)  # the records of each split go to self.spool, as they come
        self._ids: Dict[str, Set[str]] = {}

    def _output(self, frame: Frame) -> Tuple[Frame, Tuple[str, ...]]:
        """The frame in the output labels, and the names of its labels the output lacks."""
        labels = self.resolve_labels(frame)
        m = mapping_between(frame.labels, labels)
        if m.identity:
            return frame, ()
        dropped = tuple(sorted({m.missing[i.label_id] for i in frame.instances() if i.label_id in m.missing}))
        return frame.derived(labels, m.lut, m.renames()), dropped

    def _made(self, frame: Frame) -> Tuple[Optional[np.ndarray], dict, Optional[dict], Tuple[str, ...]]:
        """``(PNG pixels or None, image record, annotation record or None, labels dropped)``;
        the records without their image id, which :meth:`record` gives."""
        ext = self.photo_ext(frame) or self.image_ext or ".png"
        out, dropped = self._output(frame) if frame.has_annotations else (frame, ())
        made = panoptic_frame(out, self.train_ids) if frame.has_annotations else None
        if made is None:
            size = frame.size()
            if size is None:
                raise InvalidFileError(frame.where, "neither ground truth nor a photo")
            h, w = size
            return None, {"width": int(w), "height": int(h), "file_name": f"{frame.id}{ext}"}, None, ()
        pixels, image, annotation = made
        image = {"width": image["width"], "height": image["height"], "file_name": f"{frame.id}{ext}"}
        # 0 is void in COCO panoptic: a value 0 of an evaluated custom label is no segment (one of
        # an official class, road in train ids, has another id: see cityscapes_io.panoptic).
        segments = [s for s in annotation["segments_info"] if s["id"] != 0]
        return pixels, image, {"file_name": f"{frame.id}.png", "segments_info": segments}, dropped

    def encode(self, frame: Frame) -> Encoded:
        check_names(frame)
        pixels, image, annotation, dropped = self._made(frame)
        split = frame.split or "default"
        files: List[Tuple[str, bytes]] = []
        notes = []
        if pixels is not None:
            files.append((png_path(split, frame.id), png.encode_label_png(pixels)))
        else:
            notes.append("no ground truth: written without masks")
        if self.save_media:
            photo = self.photo(frame, None if pixels is None else pixels.shape[:2])
            if photo is not None:
                files.append((photo_path(split, frame.id, photo[1]), photo[0]))
            else:
                notes.append("no photo: written without one")
        return Encoded(files, Entry(split, frame.id, (image, annotation), dropped, tuple(notes),
                                    scores_lost=self.scores_lost(frame)))

    def index_info(self, frame: Frame) -> tuple:
        # A frame whose files are there already (resume, finalize): its records again.
        _, image, annotation, _ = self._made(frame)
        return (image, annotation)

    def record(self, entry: Entry) -> None:
        if entry.info:
            seen = self._ids.setdefault(entry.split, set())
            if entry.id in seen:
                raise InvalidFileError(entry.id, f"two frames of split {entry.split!r} have this id")
            seen.add(entry.id)
            image, annotation = entry.info
            image_id = self.spool.count((entry.split, "images")) + 1
            self.spool.add((entry.split, "images"), dict(image, id=image_id))
            if annotation is not None:
                self.spool.add((entry.split, "annotations"), dict(annotation, image_id=image_id))
            entry = dataclasses.replace(entry, info=())
        super().record(entry)

    def planned_files(self, frame: Frame) -> List[str]:
        split = frame.split or "default"
        files = [png_path(split, frame.id)] if frame.has_annotations else []
        ext = self.photo_ext(frame) if self.save_media else None
        if ext:
            files.append(photo_path(split, frame.id, ext))
        return files

    def index_files(self) -> Files:
        assert self.labels is not None
        categories = panoptic_categories(self.labels, self.train_ids)
        return [(json_path(split), json_lists(
            [("annotations", self.spool.records((split, "annotations"))), ("categories", categories),
             ("images", self.spool.records((split, "images")))])) for split in self.spool.groups()]
