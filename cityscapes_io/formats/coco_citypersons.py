"""CityPersons as COCO: :meth:`Frame.persons() <cityscapes_io.Frame.persons>` in the layout the
pedestrian-detection code reads (issue 23), ``-f coco_citypersons``.

The layout is the one of the CityPersons evaluation's ground truth, ``val_gt.json`` as CSP ships
it (``liuwei16/CSP: eval_city/val_gt.json``, read by ``eval_city/eval_script/coco.py`` and
``eval_MR_multisetup.py``; Pedestron carries the same evaluation in ``tools/cityPerson/`` and the
same file as ``datasets/CityPersons/val_gt*.json``). One file per split,
``annotations/citypersons_<split>.json`` (those projects take the path from a config: there is no
fixed name to follow), with

- ``categories``: the CityPersons label table (:data:`~cityscapes_io.parts.PERSON_LABELS`,
  ``helpers/labels_cityPersons.py``'s names), in ``val_gt.json``'s order: pedestrian 1, rider 2,
  sitting person 3, person (other) 4, person group 5, ignore 0 (``val_gt.json`` names the last
  three "other person", "people group", "ignore region"; nothing reads the names);
- ``images``: ``{id, file_name, im_name, height, width, frame_id, has_persons}``: ``id`` 1..N in
  frame order, ``file_name`` relative to ``leftImg8bit/<split>/`` (``<city>/<id>_leftImg8bit.png``,
  the frame's photo key's file name, as the ``coco_instances`` writer names it), ``im_name`` the
  file's base name (``val_gt.json``'s only name), ``frame_id`` the frame id
  (``aachen/aachen_000000_000019``: what an integer ``image_id`` of a prediction maps back to; its
  last component is the ``<city>_<seq>_<frame>`` name), ``has_persons`` false for a frame that had
  no CityPersons file (image kept, no annotation) — the last two are keys of our own;
- ``annotations``: one per person of the frame's CityPersons file, in the file's order,
  ``{id, image_id, category_id, iscrowd, ignore, bbox, vis_bbox, height, vis_ratio, area, label,
  instance_id}``: ``bbox`` the full body ``[x, y, w, h]``, ``vis_bbox`` the visible part (the name
  ``val_gt.json`` and the CSP/Pedestron readers use; no CityPersons reader found uses
  ``bbox_vis``, which the reader here accepts too), ``height`` the full box's height, ``vis_ratio``
  visible area over full area (:attr:`~cityscapes_io.parts.Person.visibility`), ``ignore`` 1 for
  every label but pedestrian (as in ``val_gt.json``, where riders, sitting and other persons,
  groups and ignore regions are all ``ignore`` 1 and every pedestrian is 0 whatever its size: the
  evaluation adds each setup's height and visibility ranges itself), ``iscrowd`` 1 for person
  groups and ignore regions (COCO's meaning: a region, not one object; ``val_gt.json`` has 0, and
  the reference evaluation reads ``ignore`` only, so this changes nothing there, while
  pycocotools' ``COCOeval``, which reads only ``iscrowd``, then treats them as crowd regions),
  ``area`` the full box's ``w * h``, ``label`` the CityPersons label and ``instance_id`` the gtFine
  instance id (keys of our own, as the ``anno_*.mat`` converters keep the instance id), so that
  reading back gives the same persons. Box numbers are written as integers when whole.
  ``category_id`` is 1 for every box by default (``persons_category="reference"``), as in
  ``val_gt.json``: the evaluation keeps category 1 only and uses the other boxes, through
  ``ignore``, as ignore regions; ``persons_category="label"`` writes each box's label id instead
  (for training several classes; the reference evaluation then no longer sees the other labels'
  boxes as ignore regions). Annotation ids count from 1 in each split.

With ``save_media`` the photos go under ``leftImg8bit/<split>/`` as ``file_name`` says. A frame
without a CityPersons file keeps its image entry (``has_persons`` false) and has no annotation;
the conversion report notes it. The records are spooled to a temporary file and streamed out at
``close()``, as the ``coco_instances`` writer does.

Reading (:class:`CocoCityPersonsReader`) gives one frame per image, in frame-id order: its photo
when ``leftImg8bit/<split>/<file_name>`` is there, no segmentation ground truth, and its persons
through a part store of its own (:class:`PersonsFromCoco`, a
:class:`~cityscapes_io.release.PartStore`) serving the frame a ``gtBboxCityPersons`` JSON made
from its annotations, so :meth:`Frame.persons() <cityscapes_io.Frame.persons>`,
``has_part("gtBboxCityPersons")`` and ``part_files`` (copying the part into a Cityscapes tree)
work as on the release. Files without our keys are read too (``val_gt.json``): an image without
``frame_id`` takes its id from ``file_name`` or ``im_name`` (the city from the name's grammar), an
annotation without ``label`` is the label of its ``category_id``, category 1 being a pedestrian
when not ``ignore`` and an ``ignore`` region otherwise (``val_gt.json`` keeps no other label).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import posixpath
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

from .. import jsonfile
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, OnError, apply_policy
from ..frame import Frame
from ..labels import LabelMap
from ..names import IMAGE_DIR, frame_dir, parse_frame_id, part_suffix, safe_relpath, sort_key
from ..parts import PERSON_LABELS, Person, image_file_suffix
from ..release import FrameParts
from ..sources import FileSource
from ..storage import (Root, check_inside, find_files, listdir, read_file, resolve_inside, resolve_single_root,
                       storage_errors)
from ..storage.sinks import Data
from .base import Encoded, Entry, Files, Option, Reader, Writer, check_names
from .coco import annotation_jsons, selected_splits
from .spool import json_lists

__all__ = ["CocoCityPersonsReader", "CocoCityPersonsWriter", "PersonsFromCoco", "annotation_path",
           "person_annotation", "PERSONS_CATEGORIES", "CATEGORY_ORDER"]

ANNOTATIONS_DIR = "annotations"
PREFIX = "citypersons_"
#: The part folder the reader's frames serve their persons from.
PERSONS_FOLDER = "gtBboxCityPersons"
#: ``persons_category``: every box category 1 (``val_gt.json``), or its own label id.
PERSONS_CATEGORIES = ("reference", "label")
#: The categories' order in ``val_gt.json`` (ids 1..5, then 0).
CATEGORY_ORDER = ("pedestrian", "rider", "sitting person", "person (other)", "person group", "ignore")
#: Labels that are regions rather than one person (``iscrowd`` 1).
REGION_LABELS = ("person group", "ignore")
_LABEL_OF_ID = {v: k for k, v in PERSON_LABELS.items()}


def annotation_path(split: str) -> str:
    """The JSON of a split, relative to the dataset root."""
    return f"{ANNOTATIONS_DIR}/{PREFIX}{split}.json"


def _number(v: float) -> Any:
    """``v`` as an int when whole (as ``val_gt.json`` writes boxes), else as a float."""
    v = float(v)
    return int(v) if v.is_integer() else v


def person_annotation(person: Person, category: str = "reference") -> Dict[str, Any]:
    """The annotation record of one person, without ``id`` and ``image_id`` (see the module
    docstring for each key)."""
    w, h = person.bbox[2], person.bbox[3]
    return {"category_id": 1 if category == "reference" else person.label_id,
            "iscrowd": int(person.label in REGION_LABELS), "ignore": int(person.label != "pedestrian"),
            "bbox": [_number(v) for v in person.bbox], "vis_bbox": [_number(v) for v in person.bbox_vis],
            "height": _number(h), "vis_ratio": person.visibility, "area": _number(w * h),
            "label": person.label, "instance_id": int(person.instance_id)}


# -- writing ----------------------------------------------------------------------------------------
class CocoCityPersonsWriter(Writer):
    """Writes each frame's CityPersons boxes (:meth:`Frame.persons`) as COCO, in the layout of
    the CityPersons evaluation's ``val_gt.json`` (see the module docstring).

    Parameters
    ----------
    persons_category : "reference" or "label"
        ``category_id`` 1 for every box, as ``val_gt.json`` and the evaluation have it (default),
        or each box's CityPersons label id.
    **options
        As :class:`~cityscapes_io.formats.base.Writer` (``save_media``, ``image_ext``, ...). The
        label map plays no part: the boxes are the CityPersons file's, not the segmentation's.
    """

    format = "coco_citypersons"
    OPTIONS = Writer.OPTIONS + (
        Option("persons_category", "coco_citypersons: category_id 1 for every box, as the CityPersons evaluation's "
                                   "val_gt.json (reference, default), or each box's CityPersons label id (label)",
               argparse={"choices": PERSONS_CATEGORIES}),)
    NO_PERSONS = "no CityPersons file: image entry written without annotations"

    def __init__(self, url, *, persons_category: str = "reference", **options):
        if persons_category not in PERSONS_CATEGORIES:
            raise ValueError(f"persons_category must be one of {', '.join(PERSONS_CATEGORIES)}, "
                             f"got {persons_category!r}")
        self.persons_category = persons_category
        super().__init__(url, **options)

    def _categories(self) -> List[dict]:
        return [{"id": PERSON_LABELS[name], "name": name} for name in CATEGORY_ORDER]

    def _photo_name(self, frame: Frame, ext: str) -> str:
        return f"{frame.id}{image_file_suffix(frame.image_key)}{ext}"

    def _photo_path(self, frame: Frame, ext: str) -> str:
        return safe_relpath(f"{IMAGE_DIR}/{frame.split or 'default'}/{self._photo_name(frame, ext)}")

    def _records(self, frame: Frame) -> tuple:
        """``(image record, [annotation records])`` of a frame, without their ids."""
        persons = frame.persons()
        size = frame.size()
        if size is None:
            raise InvalidFileError(frame.where, "no photo and no ground truth: the image size is unknown")
        ext = self.photo_ext(frame) or self.image_ext or frame.image_ext or ".png"
        name = self._photo_name(frame, ext)
        image = {"file_name": name, "im_name": posixpath.basename(name), "height": int(size[0]),
                 "width": int(size[1]), "frame_id": frame.id, "has_persons": persons is not None}
        return image, [person_annotation(p, self.persons_category) for p in persons or ()]

    def encode(self, frame: Frame) -> Encoded:
        """The frame's photo (with ``save_media``) and its records; the segmentation is not
        decoded."""
        check_names(frame)
        frame = self.with_labels(frame)
        info = self._records(frame)
        files: List[Tuple[str, Data]] = []
        if self.save_media:
            photo = self.photo(frame)
            if photo is not None:
                files.append((self._photo_path(frame, photo[1]), photo[0]))
        notes = []
        if not info[0]["has_persons"]:
            notes.append(self.NO_PERSONS)
        if self.save_media and not frame.has_image:
            notes.append("no photo: written without one")
        return Encoded(files, Entry(frame.split or "default", frame.id, info, (), tuple(notes)))

    def planned_files(self, frame: Frame) -> List[str]:
        ext = self.photo_ext(frame) if self.save_media else None
        return [self._photo_path(frame, ext)] if ext else []

    def index_info(self, frame: Frame) -> tuple:
        try:
            return self._records(frame)
        finally:
            frame.release()

    def touch(self, frame: Frame) -> None:
        frame.persons()
        if self.save_media and frame.has_image:
            frame.image_bytes()

    def record(self, entry: Entry) -> None:
        if entry.info:
            image, annotations = entry.info
            images_key, annotations_key = (entry.split, "images"), (entry.split, "annotations")
            image_id = self.spool.count(images_key) + 1  # 1..N, as val_gt.json
            self.spool.add(images_key, dict(image, id=image_id))
            for ann in annotations:
                self.spool.add(annotations_key, dict(ann, id=self.spool.count(annotations_key) + 1,
                                                     image_id=image_id))
            entry = dataclasses.replace(entry, info=())
        super().record(entry)

    def index_files(self) -> Files:
        out: List[Tuple[str, Data]] = []
        for split in self.subsets:
            head: List[Tuple[str, Any]] = [("categories", self._categories()),
                                           ("images", self.spool.records((split, "images"))),
                                           ("annotations", self.spool.records((split, "annotations")))]
            out.append((annotation_path(split), json_lists(head)))
        return out


# -- reading ----------------------------------------------------------------------------------------
class PersonsFromCoco:
    """The :class:`~cityscapes_io.release.PartStore` of one frame read from a CityPersons COCO
    file: its ``gtBboxCityPersons`` part, a CityPersons JSON (``imgHeight``, ``imgWidth``,
    ``objects`` with ``label``, ``instanceId``, ``bbox``, ``bboxVis``) made from the image's
    annotations when read. A location is ``(None, "gtBboxCityPersons/<file name>")``.

    Parameters
    ----------
    where : str
        How messages name the image (the JSON and the image id).
    frame_id : str
    height, width : int
    objects : sequence of dict
        The CityPersons objects, in annotation order (checked when parsed, as a file's are).
    """

    def __init__(self, where: str, frame_id: str, height: int, width: int, objects: Sequence[Mapping[str, Any]]):
        self.where, self.frame_id, self.height, self.width = where, frame_id, height, width
        self.objects = tuple(dict(o) for o in objects)
        self.name = frame_dir(frame_id)[1] + part_suffix(PERSONS_FOLDER)

    def names(self) -> List[str]:
        return [PERSONS_FOLDER]

    def photo_folders(self) -> List[str]:
        return []

    def listing(self, folder: str, split: str, city: str) -> Dict[str, Tuple[Any, str]]:
        return {self.name: (None, f"{PERSONS_FOLDER}/{self.name}")} if folder == PERSONS_FOLDER else {}

    def read(self, location: Tuple[Any, str]) -> bytes:
        doc = {"imgHeight": self.height, "imgWidth": self.width, "objects": list(self.objects)}
        return json.dumps(doc).encode("utf-8")

    def shown(self, location: Tuple[Any, str]) -> str:
        return f"{self.where} ({location[1].rsplit('/', 1)[-1]})"

    def __repr__(self) -> str:
        return f"PersonsFromCoco({self.where}: {len(self.objects)} objects)"


class _ImageSource(FileSource):
    """An image of the JSON: its photo (when found) and its size; no segmentation."""

    def __init__(self, files: Optional[Mapping[str, Tuple[Any, str]]], height: int, width: int, where: str):
        super().__init__(files)
        self.height, self.width, self.json_where = height, width, where

    def size(self) -> Optional[Tuple[int, int]]:
        return self.height, self.width

    def where(self) -> Optional[str]:
        return self.json_where

    def fresh(self) -> "_ImageSource":
        out = copy.copy(self)
        FileSource.__init__(out, self._files)
        return out

    def __getstate__(self):
        return {"_files": self._files, "height": self.height, "width": self.width, "where": self.json_where}

    def __setstate__(self, state) -> None:
        _ImageSource.__init__(self, state["_files"], state["height"], state["width"], state["where"])


@dataclasses.dataclass(frozen=True)
class _Image:
    id: Any
    file_name: Optional[str]
    frame_id: str
    height: int
    width: int
    has_persons: bool


class CocoCityPersonsReader(Reader):
    """Reads ``annotations/citypersons_<split>.json`` (this format's files, or the CityPersons
    evaluation's ``val_gt.json`` laid out so): one frame per image, its photo from
    ``leftImg8bit/<split>/<file_name>`` when there, its persons from the annotations
    (:meth:`Frame.persons`, through :class:`PersonsFromCoco`). The frames have no segmentation
    ground truth; their labels are the official Cityscapes map.

    A split's file that is not such a COCO file, an image without id, size or name, two images
    with one id or frame id, an annotation of an image the file does not list, or a name that
    leaves the root raise :class:`~cityscapes_io.errors.InvalidFileError` naming the file (or are
    skipped under ``on_error``); a malformed box raises when the frame's persons are read, as a
    CityPersons file's would.
    """

    format = "coco_citypersons"
    EVIDENCE = "annotations/citypersons_*.json"
    EVIDENCE_GROUP = "coco"
    NAME_GRAMMAR = True

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """``annotations/citypersons_*.json``."""
        found = sorted(n for n in annotation_jsons(root, listing) if n.startswith(PREFIX))
        return f"{ANNOTATIONS_DIR}/{found[0]}" if found else None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root: Root = resolve_single_root(url, storage_options, "CityPersons COCO")
        self.roots = [self.root]
        self.on_error = on_error
        self.labels = LabelMap.cityscapes()
        names = [n for n, t in listdir(self.root, ANNOTATIONS_DIR).items()
                 if t == "file" and n.startswith(PREFIX) and n.endswith(".json") and len(n) > len(PREFIX) + 5]
        self._files = {n[len(PREFIX):-len(".json")]: n for n in sorted(names)}
        if not self._files:
            raise DatasetNotFoundError(self.root.url, f"not a CityPersons COCO dataset: no {ANNOTATIONS_DIR}/"
                                                      f"{PREFIX}<split>.json")
        self._files = selected_splits(self._files, split, self.root.display(ANNOTATIONS_DIR))
        self._cities: Optional[Set[str]] = None if cities is None else (
            {cities} if isinstance(cities, str) else set(cities))

    def splits(self) -> List[str]:
        return sorted(self._files)

    def _display(self, split: str) -> str:
        return self.root.display(f"{ANNOTATIONS_DIR}/{self._files[split]}")

    def split_locations(self, split: str) -> List[str]:
        return [self._display(split)]

    def iter_frames(self, split: str) -> Iterator[Frame]:
        where = self._display(split)
        try:
            images, by_image = self._parse(split)
        except CityscapesIOError as exc:
            apply_policy(self.on_error, exc)
            return
        rel = f"{IMAGE_DIR}/{split}"
        photos: Set[str] = set()
        if listdir(self.root, IMAGE_DIR).get(split) == "directory":
            with storage_errors(self.root.display(rel), "cannot list"):
                photos = {self.root.relative(p)[len(rel) + 1:] for p in find_files(self.root.fs, self.root.join(rel))}
        frames: Dict[str, Tuple[_Image, Optional[str]]] = {}
        for img in images:
            try:
                path = None
                if img.file_name is not None and img.file_name in photos:
                    path = resolve_inside(self.root.fs, self.root.path, img.file_name, base=self.root.join(rel),
                                          index=where, entry=f"image {img.id} 'file_name'")
                if img.frame_id in frames:
                    raise InvalidFileError(where, f"images {frames[img.frame_id][0].id} and {img.id} are both "
                                                  f"{img.frame_id!r}")
            except CityscapesIOError as exc:
                apply_policy(self.on_error, exc)
                continue
            frames[img.frame_id] = img, path
        for frame_id in sorted(frames, key=sort_key):
            if self._cities is not None and parse_frame_id(frame_id).city not in self._cities:
                continue
            img, path = frames[frame_id]
            shown = f"{where} (image id {img.id})"
            source = _ImageSource({"image": (self.root.fs, path)} if path else {}, img.height, img.width, shown)
            parts = None
            if img.has_persons:
                objects = [_object(ann, shown) for ann in by_image.get(img.id, ())]
                parts = FrameParts(PersonsFromCoco(shown, frame_id, img.height, img.width, objects), split, frame_id)
            yield Frame(frame_id, split, self.labels, source, on_error=self.on_error, parts=parts)

    def _parse(self, split: str) -> Tuple[List[_Image], Dict[Any, List[dict]]]:
        where = self._display(split)
        path = check_inside(self.root.fs, self.root.path, self.root.join(ANNOTATIONS_DIR, self._files[split]))
        doc = jsonfile.loads(read_file(self.root.fs, path), where)
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
            raise InvalidFileError(where, "not a COCO file: no list of \"images\"")
        anns = doc.get("annotations", [])
        if not isinstance(anns, list):
            raise InvalidFileError(where, "not a COCO file: \"annotations\" is not a list")
        images = [_check_image(rec, k, where) for k, rec in enumerate(doc["images"])]
        ids: Set[Any] = set()
        for img in images:
            if img.id in ids:
                raise InvalidFileError(where, f"image id {img.id!r} is given to two images")
            ids.add(img.id)
        by_image: Dict[Any, List[dict]] = {}
        for k, ann in enumerate(anns):
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if isinstance(image_id, bool) or not isinstance(image_id, (int, str)) or image_id not in ids:
                aid = ann.get("id", f"#{k}") if isinstance(ann, dict) else f"#{k}"
                apply_policy(self.on_error, InvalidFileError(f"{where} (annotation id {aid})",
                                                             "not an annotation of one of the file's images"))
                continue
            by_image.setdefault(image_id, []).append(ann)
        return images, by_image


def _check_image(rec: Any, k: int, where: str) -> _Image:
    def whole(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if not isinstance(rec, dict):
        raise InvalidFileError(where, f"images[{k}] is not an object")
    iid = rec.get("id")
    if isinstance(iid, bool) or not isinstance(iid, (int, str)):
        raise InvalidFileError(where, f"images[{k}] has no id")
    if not (whole(rec.get("height")) and whole(rec.get("width"))):
        raise InvalidFileError(where, f"image id {iid}: height and width must be positive integers, got "
                                      f"{rec.get('height')!r} x {rec.get('width')!r}")
    file_name = rec.get("file_name")
    file_name = file_name if isinstance(file_name, str) and file_name else None
    frame_id = rec.get("frame_id")
    if not isinstance(frame_id, str) or not frame_id:
        name = file_name or rec.get("im_name")
        if not isinstance(name, str) or not name:
            raise InvalidFileError(where, f"image id {iid} has no frame_id, file_name or im_name")
        frame_id = _id_from_name(name)
    try:
        frame_id = safe_relpath(frame_id)
    except ValueError as exc:
        raise InvalidFileError(where, f"image id {iid}: frame id {frame_id!r}: {exc}") from None
    has = rec.get("has_persons", True)
    return _Image(iid, file_name, frame_id, int(rec["height"]), int(rec["width"]), has is not False)


def _id_from_name(name: str) -> str:
    """The frame id of a photo's name: without extension and what follows ``_leftImg8bit``,
    in the city folder the name's grammar gives when the name has none."""
    stem = posixpath.splitext(name)[0]
    cut = stem.rfind("_" + IMAGE_DIR)
    if cut > 0 and "/" not in stem[cut:]:
        stem = stem[:cut]
    if "/" not in stem:
        city = parse_frame_id(stem).city
        if city and parse_frame_id(stem).seq is not None:
            stem = f"{city}/{stem}"
    return stem


def _object(ann: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """The CityPersons object of an annotation (its boxes checked when the JSON is parsed)."""
    label = ann.get("label")
    if label is None:
        cid = ann.get("category_id")
        if cid == PERSON_LABELS["pedestrian"]:
            label = "ignore" if ann.get("ignore") else "pedestrian"
        else:  # (an unknown category is refused as an unknown label when the persons are read)
            label = _LABEL_OF_ID.get(cid, f"category {cid!r}") if isinstance(cid, int) else f"category {cid!r}"
    vis = ann.get("vis_bbox", ann.get("bbox_vis", ann.get("bbox")))
    return {"label": label, "instanceId": ann.get("instance_id", 0), "bbox": ann.get("bbox"), "bboxVis": vis}
