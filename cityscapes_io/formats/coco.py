"""COCO instances: the JSON detectors and instance-segmentation models train on.

Writing follows mmdetection's ``tools/dataset_converters/cityscapes.py``: one file per split,
``annotations/instancesonly_filtered_gtFine_<split>.json``, with

- ``categories``: ``{id, name}`` of the classes that have instances and are evaluated (person,
  rider, car, truck, bus, train, motorcycle, bicycle), in label-map order, ``id`` the label id;
- ``images``: ``{id, file_name, height, width, segm_file}``, ``file_name`` relative to
  ``leftImg8bit/<split>/`` (``<city>/<name>_leftImg8bit.png``), ``segm_file`` the frame's
  ``<city>/<name>_gtFine_labelIds.png``;
- ``annotations``: one per segment of those classes, in increasing ``instanceIds`` value
  ``v``: ``{id, image_id, category_id, iscrowd, segmentation, area, bbox}``, ``iscrowd`` 1 for
  ``v < 1000`` (a group region), ``segmentation`` the compressed RLE (counts as a string),
  ``area`` and ``bbox`` ``[x, y, w, h]`` of the RLE, as pycocotools gives them; the key is left
  out when a split has no annotation at all, as there. One key of our own is added to an
  instance's annotation: ``cityscapes_instance_id``, the instanceIds value it was made from
  (COCO has no instance number, and Cityscapes numbers have gaps where objects are hidden), so
  that reading the file back gives the same instanceIds; pycocotools, detectron2 and
  mmdetection ignore it, and files without it are numbered in annotation order. A segment with
  a ``score`` (:attr:`~cityscapes_io.Instance.score`: a prediction built in memory, or read from
  a format that keeps it) gives its annotation ``"score"``, as COCO results have it
  (pycocotools' ``loadRes`` and Datumaro read it).

Image ids count from 0 and annotation ids from 1 (as in COCO's own files: pycocotools' ``COCOeval``
takes an annotation id 0 for "unmatched") in each split, in input order. The records of each split
are spooled to a temporary file as frames come and streamed out at :meth:`close`, so memory does
not grow with the number of frames. The layout is compact JSON, ``categories`` first, records
with sorted keys (mmdetection's ``json.dump`` puts ``images`` first and keeps insertion order and
``", "`` separators: the same JSON when parsed). With
``save_media`` the photos go under ``leftImg8bit/<split>/``; COCO has no other per-frame file.

``layout="datumaro"`` writes Datumaro's layout instead, the one its ``coco_instances`` importer
reads: ``annotations/instances_<split>.json``, photos in ``images/<split>/<id><ext>``,
``file_name`` ``<id><ext>`` (Datumaro's item id is then the frame id, as it is for the Cityscapes
tree), no ``segm_file``; the records are otherwise the same.

Options: ``classes`` (``"things"``: the above; ``"all"``: every evaluated label, stuff too, with
``iscrowd`` 0 for classes that have no instances, since COCO's crowd flag is for groups of
objects; or a list of label names), ``segmentation`` (``"rle"``, or ``"polygon"``: every
segment as COCO polygons that pycocotools draws back to the same mask, holes cut in) and
``category_ids`` (``"label"``: the label id; ``"contiguous"``: 1..N in category order).

Reading takes ``annotations/instancesonly_filtered_gtFine_<split>.json`` and the generic
``annotations/instances_<split>.json`` (so both layouts), and annotations' ``score``; see
:class:`CocoInstancesReader`.
"""
from __future__ import annotations

import collections
import copy
import dataclasses
import json
import posixpath
import re
import warnings
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from .. import jsonfile, rle
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, LabelMapError, OnError, apply_policy
from ..frame import Frame
from ..sources import FileSource
from ..instances import INSTANCE_DIVISOR, MAX_INSTANCE_VALUE, Instance, class_of, split_value
from ..labels import Label, LabelMap, has_instances, official_label
from ..mapping import background_id, distinct_colors
from ..names import GT_DIR, IMAGE_DIR, IMAGE_SUFFIX, gt_suffix, image_path, parse_frame_id, safe_relpath, sort_key
from .base import Reader
from ..png import MAX_PIXELS
from ..storage import (Root, check_inside, find_files, listdir, read_file, resolve_inside, resolve_single_root,
                       storage_errors)
from ..storage.sinks import Data
from .base import Entry, Files, Option, Segments, Writer
from .spool import json_lists

__all__ = ["CocoInstancesReader", "CocoInstancesWriter", "CocoSource", "annotation_path", "coco_labels",
           "paint_annotations", "CLASSES", "SEGMENTATIONS", "CATEGORY_IDS", "LAYOUTS"]

ANNOTATIONS_DIR = "annotations"
#: mmdetection's file name of a split, and the generic COCO one (``instances_val2017.json``).
MMDET_PREFIX = f"instancesonly_filtered_{GT_DIR}_"
COCO_PREFIX = "instances_"
CLASSES = ("things", "all")
SEGMENTATIONS = ("rle", "polygon")
CATEGORY_IDS = ("label", "contiguous")
#: Where the writer puts the JSON and the photos: mmdetection's Cityscapes layout, or Datumaro's
#: (its ``coco_instances`` importer reads only ``annotations/instances_<split>.json``, with the
#: photos in ``images/<split>/``).
LAYOUTS = ("mmdetection", "datumaro")
#: The photo folder of Datumaro's layout (with the split under it).
DATUMARO_IMAGES = "images"
#: Where the reader looks for the photos of split ``S``: the first of these folders that exists.
PHOTO_DIRS = (IMAGE_DIR + "/{split}", "images/{split}", "{split}", "images")
#: Category ids whose instances instanceIds can number (``id * 1000 + n`` in 16 bits; values
#: below 1000 are whole-class regions, so label 0 has none).
_THING_IDS = range(1, MAX_INSTANCE_VALUE // INSTANCE_DIVISOR + 1)
#: The annotation key holding the instanceIds value an annotation was made from (our own key:
#: pycocotools, detectron2 and mmdetection ignore it).
VALUE_KEY = "cityscapes_instance_id"


def annotation_path(split: str, layout: str = "mmdetection") -> str:
    """The JSON of a split, relative to the dataset root (mmdetection's name, or Datumaro's)."""
    return f"{ANNOTATIONS_DIR}/{COCO_PREFIX if layout == 'datumaro' else MMDET_PREFIX}{split}.json"


def photo_path(split: str, frame_id: str, ext: str, layout: str = "mmdetection") -> str:
    """Where a frame's photo is written, relative to the dataset root: ``leftImg8bit/<split>/
    <id>_leftImg8bit<ext>`` (mmdetection's layout) or ``images/<split>/<id><ext>`` (Datumaro's,
    named as its exporter names the items of a Cityscapes tree)."""
    if layout == "datumaro":
        return f"{DATUMARO_IMAGES}/{split}/{safe_relpath(frame_id)}{ext}"
    return image_path(split, frame_id, ext)


def _ignored(label: Label) -> bool:
    """Whether a label is left out of evaluation (its own flag, else the official label's)."""
    if label.ignore_in_eval is not None:
        return label.ignore_in_eval
    ref = official_label(label.name)
    return bool(ref.ignore_in_eval) if ref is not None else False


# -- writing ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Category:
    """A class a writer annotates: its label id, the id it is written with, its name, and
    whether it has instances."""

    label_id: int
    coco_id: int
    name: str
    thing: bool


def checked_classes(classes: Union[str, Sequence[str]]) -> Union[str, Tuple[str, ...]]:
    """A ``classes`` option as :func:`chosen_categories` takes it: ``"things"``, ``"all"``, or a
    non-empty tuple of label names.

    Raises
    ------
    ValueError
        Another string, or an empty list.
    """
    if isinstance(classes, str):
        if classes not in CLASSES:
            raise ValueError(f"classes must be one of {', '.join(CLASSES)} or a list of label names, got {classes!r}")
        return classes
    names = tuple(classes)
    if not names:
        raise ValueError("classes: the list of label names is empty")
    return names


def selected_splits(files: Mapping[str, str], split: Union[str, Sequence[str], None], where: str) -> Dict[str, str]:
    """``{split: annotation file}`` of the splits asked for (all when ``split`` is None).

    Raises
    ------
    DatasetNotFoundError
        A split asked for that ``files`` lacks (``where`` names the annotation folder).
    """
    wanted = [split] if isinstance(split, str) else (list(split) if split else None)
    if wanted is None:
        return dict(files)
    missing = [s for s in wanted if s not in files]
    if missing:
        raise DatasetNotFoundError(where, f"no split {', '.join(map(repr, missing))} (found: "
                                          f"{', '.join(sorted(files))})")
    return {s: files[s] for s in wanted}


def chosen_categories(labels: LabelMap, classes: Union[str, Tuple[str, ...]],
                      category_ids: str = "label") -> Dict[int, Category]:
    """The classes a box or mask writer annotates, by label id, in label-map order: ``classes``
    ``"things"`` (the evaluated classes with instances), ``"all"`` (every evaluated class) or
    label names; written with their label ids (``category_ids="label"``) or 1..N
    (``"contiguous"``).

    Raises
    ------
    ValueError
        A name that is not a label of ``labels``.
    """
    if isinstance(classes, tuple):
        chosen = []
        for name in classes:
            lab = labels.get(name) or labels.find(name)
            if lab is None or lab.id < 0:
                raise ValueError(f"classes: no label {name!r} in the output labels ({labels.source})")
            chosen.append(lab)
        wanted = {lab.id for lab in chosen}
        picked = [lab for lab in labels if lab.id in wanted]  # in label-map order
    else:
        bg = background_id(labels)
        evaluated = [lab for lab in labels if lab.id >= 0 and lab.id != bg and not _ignored(lab)]
        picked = [lab for lab in evaluated if classes == "all" or has_instances(lab, True)]
    return {lab.id: Category(lab.id, k + 1 if category_ids == "contiguous" else lab.id, lab.name,
                             bool(has_instances(lab, True)))
            for k, lab in enumerate(picked)}


class CocoInstancesWriter(Writer):
    """Writes COCO instances as mmdetection's Cityscapes converter does (see the module
    docstring).

    Parameters
    ----------
    classes : "things", "all" or list of str
        The categories: the evaluated classes that have instances (default), every evaluated
        class, or these labels (by name, any of the output labels).
    segmentation : "rle" or "polygon"
        Compressed RLE (default), or polygons (outer contours and holes) for every segment.
    category_ids : "label" or "contiguous"
        ``category_id`` is the label id (default), or 1..N in category order.
    keep_instance_ids : bool
        Add ``cityscapes_instance_id`` (the instanceIds value) to each instance's annotation, so
        that reading back gives the same instanceIds (default). Without it the file has exactly
        the keys mmdetection's converter writes, and instances read back are numbered in
        annotation order.
    layout : "mmdetection" or "datumaro"
        mmdetection's layout (default): ``annotations/instancesonly_filtered_gtFine_<split>.json``,
        photos in ``leftImg8bit/<split>/<id>_leftImg8bit<ext>``. Datumaro's, which its
        ``coco_instances`` importer reads: ``annotations/instances_<split>.json``, photos in
        ``images/<split>/<id><ext>`` (``file_name`` ``<id><ext>``, so Datumaro's item ids are
        the frame ids, as for the Cityscapes tree; image records without mmdetection's
        ``segm_file``). Datumaro refuses a dataset without the folder ``images/``: it is made
        (``images/<split>/``, empty without ``save_media``) where the destination has folders;
        on an object store a warning says so.
    **options
        As :class:`~cityscapes_io.formats.base.Writer` (``save_media``, ``image_ext``, ``label_map``...).
    """

    format = "coco_instances"
    KEEPS_SCORES = True
    OPTIONS = Writer.OPTIONS + (
        Option("classes", "coco_instances, voc_detection, yolo: the classes annotated (default things: the 8 "
                          "evaluated classes with instances; all: stuff too)", argparse={"metavar": "things|all|NAME[,NAME...]"},
               value=lambda given: given if given in ("things", "all") else [c for c in given.split(",") if c]),
        Option("segmentation", "coco_instances: compressed RLE (default) or polygons with holes; yolo: boxes "
                               "(default) or polygon (one per instance)",
               argparse={"choices": ("rle", "polygon")}),
        Option("category_ids", "coco_instances: category ids = label ids (default) or 1..N",
               argparse={"choices": ("label", "contiguous")}),
        Option("keep_instance_ids", "coco_instances: leave out cityscapes_instance_id (exactly mmdetection's keys; "
                                    "instances read back are renumbered)", flags=("--no-instance-ids",),
               argparse={"action": "store_false"}),
        Option("layout", "coco_instances: where the JSON and photos go: mmdetection (default; "
                         "annotations/instancesonly_filtered_gtFine_<split>.json, photos in leftImg8bit/<split>/) or "
                         "datumaro (annotations/instances_<split>.json, photos in images/<split>/, which Datumaro's "
                         "coco_instances importer reads)", argparse={"choices": ("mmdetection", "datumaro")}))
    NO_GROUND_TRUTH = "no ground truth: written without annotations"

    def __init__(self, url, *, classes: Union[str, Sequence[str]] = "things", segmentation: str = "rle",
                 category_ids: str = "label", keep_instance_ids: bool = True, layout: str = "mmdetection",
                 **options):
        self.classes = checked_classes(classes)
        if segmentation not in SEGMENTATIONS:
            raise ValueError(f"segmentation must be one of {', '.join(SEGMENTATIONS)}, got {segmentation!r}")
        if category_ids not in CATEGORY_IDS:
            raise ValueError(f"category_ids must be one of {', '.join(CATEGORY_IDS)}, got {category_ids!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.layout = layout
        self.segmentation = segmentation
        self.category_ids = category_ids
        self.keep_instance_ids = bool(keep_instance_ids)
        self._categories: Dict[int, Category] = {}
        super().__init__(url, **options)  # each split's images and annotations go to self.spool

    def setup(self, labels: LabelMap) -> None:
        self._categories = chosen_categories(labels, self.classes, self.category_ids)

    def _category_records(self) -> List[dict]:
        return [{"id": c.coco_id, "name": c.name} for c in self._categories.values()]

    # -- one frame ------------------------------------------------------------------------------
    def entry_info(self, frame: Frame, seg: Optional[Segments]) -> tuple:
        # The records are made from the same segments as the files.
        return self._records(frame, seg)

    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:
        if not self.save_media:
            return []
        photo = self.photo(frame, None if seg is None else seg.ids.shape)
        return [] if photo is None else [(photo_path(frame.split or "default", frame.id, photo[1], self.layout),
                                          photo[0])]

    def planned_files(self, frame: Frame) -> List[str]:
        # The photo is COCO's only per-frame file. Without save_media there is none: resume and
        # finalize then take every frame as written and make its records again (index_info),
        # so each frame is in the JSON once, in input order, whatever a previous run did.
        ext = self.photo_ext(frame) if self.save_media else None
        return [photo_path(frame.split or "default", frame.id, ext, self.layout)] if ext else []

    def index_info(self, frame: Frame) -> tuple:
        # A frame written before (resume) or by a shard (finalize): its records from its pixels,
        # which are released at once (the pipeline may hold several such frames).
        try:
            return self._records(frame, self.output_segments(frame) if frame.has_annotations else None)
        finally:
            frame.release()

    def _records(self, frame: Frame, seg: Optional[Segments]) -> tuple:
        """``(image record, [annotation records])`` of a frame, without their ids."""
        if seg is not None:
            h, w = seg.ids.shape
        else:
            size = frame.size()
            if size is None:
                raise InvalidFileError(frame.where, "no ground truth and no photo: the image size is unknown")
            h, w = size
        ext = self.photo_ext(frame) or self.image_ext or frame.image_ext or ".png"
        image: Dict[str, Any] = {"height": int(h), "width": int(w)}
        if self.layout == "datumaro":
            image["file_name"] = f"{frame.id}{ext}"
        else:
            image["file_name"] = f"{frame.id}{IMAGE_SUFFIX}{ext}"
            image["segm_file"] = f"{frame.id}{gt_suffix('labelIds', frame.annotations)}"
        annotations: List[dict] = []
        if seg is None:
            return image, annotations
        values = [v for v in seg.values if class_of(v) in self._categories]
        scores = _scores(frame, seg.ids)
        for v, mask_rle in zip(values, rle.encode_segments(seg.ids, values)):
            cat = self._categories[class_of(v)]
            box = rle.bbox(mask_rle)
            segmentation: Any = mask_rle
            if self.segmentation == "polygon":
                segmentation = mask_polygons(seg.ids, v, box)
            ann = {"iscrowd": int(cat.thing and v < INSTANCE_DIVISOR), "category_id": cat.coco_id,
                   "bbox": box, "area": rle.area(mask_rle), "segmentation": segmentation}
            if v >= INSTANCE_DIVISOR and self.keep_instance_ids:
                # The instance's own value: COCO has no instance number, and Cityscapes numbers
                # have gaps (objects hidden behind others); kept so that reading back gives
                # the same instanceIds. Other tools ignore the key.
                ann[VALUE_KEY] = int(v)
            if v in scores:
                ann["score"] = scores[v]  # a prediction's confidence, as COCO results have it
            annotations.append(ann)
        return image, annotations

    # -- the index ------------------------------------------------------------------------------
    def record(self, entry: Entry) -> None:
        if entry.info:
            image, annotations = entry.info
            images_key, annotations_key = (entry.split, "images"), (entry.split, "annotations")
            image_id = self.spool.count(images_key)
            self.spool.add(images_key, dict(image, id=image_id))
            for ann in annotations:
                # Annotation ids from 1, as COCO's own files: pycocotools' COCOeval takes an id 0
                # for "unmatched", so ground truth used as its own detections would not score AP 1.
                self.spool.add(annotations_key,
                                dict(ann, id=self.spool.count(annotations_key) + 1, image_id=image_id))
            entry = dataclasses.replace(entry, info=())
        super().record(entry)

    def index_files(self) -> Files:
        out: List[Tuple[str, Data]] = []
        categories = self._category_records()
        for split in self.subsets:
            # The categories first, so that a reader finds the labels in the first bytes; then
            # the images and the annotations (left out when there is none, as mmdetection does).
            head: List[Tuple[str, Any]] = [("categories", categories),
                                           ("images", self.spool.records((split, "images")))]
            if self.spool.count((split, "annotations")):
                head.append(("annotations", self.spool.records((split, "annotations"))))
            out.append((annotation_path(split, self.layout), json_lists(head)))
        if self.layout == "datumaro" and not self.save_media and self.subsets and not self.dest.has_folders:
            warnings.warn(f"{self.dest.url}: no photos written (save_media), and an object store has no empty "
                          f"folder: Datumaro's COCO importer refuses a dataset without the folder "
                          f"{DATUMARO_IMAGES}/ (make it after downloading)", stacklevel=3)
        return out

    def index_folders(self) -> List[str]:
        # Datumaro's importer refuses a dataset without images/ (its exporter makes it, empty
        # without photos).
        return [f"{DATUMARO_IMAGES}/{split}" for split in self.subsets] if self.layout == "datumaro" else []


def _scores(frame: Frame, ids: np.ndarray) -> Dict[int, float]:
    """``{value of ids: score}`` of the frame's segments that have a score
    (:attr:`~cityscapes_io.Instance.score`), ``ids`` its instanceIds in output ids: each
    segment's output value is read at one of its pixels, so labels mapped, merged or numbered
    anew carry their score (segments merged into one keep the best).

    Raises
    ------
    InvalidFileError
        A score that is not a finite number (JSON cannot hold it).
    """
    out: Dict[int, float] = {}
    for inst in frame.instances():
        if inst.score is None or inst.area == 0:
            continue
        score = float(inst.score)
        if not np.isfinite(score):
            raise InvalidFileError(frame.where, f"instance {inst.value}: score {inst.score!r} is not a finite number")
        x, y, w, _ = inst.bbox
        row, col = divmod(int(np.argmax(inst.mask_crop)), w)
        value = int(ids[y + row, x + col])
        out[value] = max(score, out.get(value, score))
    return out


def mask_polygons(ids: np.ndarray, value: int, box: Sequence[float]) -> List[List[int]]:
    """COCO polygons of the pixels of ``ids`` equal to ``value``, worked out on its box."""
    x, y, w, h = (int(b) for b in box)
    polys = rle.mask_to_polygons(ids[y:y + h, x:x + w] == value)
    offset = np.array([x, y])
    return [(np.asarray(p).reshape(-1, 2) + offset).ravel().tolist() for p in polys]


# -- reading ----------------------------------------------------------------------------------------
def coco_labels(categories: Sequence[Tuple[int, str]], source: str = "coco") -> Tuple[LabelMap, int]:
    """The label map of a COCO dataset, and the id of its background (the pixels no annotation
    covers).

    Each category is a label with its id and name; colours are the official Cityscapes ones
    for official label names, distinct others for the rest. Categories have instances unless
    the name is an official label without them (road, sky), or instanceIds cannot number them
    (id 0, ids above 65): those are read as whole-class regions. The background is label 0
    when no category has that id (else the lowest free id), named ``unlabeled`` when every
    category is an official Cityscapes label and ``background`` otherwise. When every category
    is an official Cityscapes label with its own id (Cityscapes written as COCO), the map is the
    whole official one.
    """
    ids = {cid for cid, _ in categories}
    names = {name for _, name in categories}
    official = bool(categories) and all(official_label(name) is not None for _, name in categories)
    if official and all(official_label(name).id == cid for cid, name in categories):  # type: ignore[union-attr]
        # Cityscapes written as COCO (label ids kept): the whole official map, so that the ids
        # stay dense for the writers that need them (VOC) and void is unlabeled, 0.
        full = LabelMap.cityscapes()
        return LabelMap(full, source=source), 0
    bg_id = next(i for i in range(len(ids) + 1) if i not in ids)
    bg_name = "unlabeled" if official else "background"
    while bg_name in names:
        bg_name += "_"
    labels = [Label(bg_name, bg_id, (0, 0, 0), None, "void", False, True)]
    for cid, name in categories:
        ref = official_label(name)
        thing = (ref.has_instances if ref is not None else True) and cid in _THING_IDS
        if ref is not None:
            labels.append(Label(name, cid, ref.color, ref.train_id, ref.category, thing, ref.ignore_in_eval))
        else:
            labels.append(Label(name, cid, None, None, None, thing, None))
    colors = distinct_colors(labels)
    return LabelMap((dataclasses.replace(lab, color=c) for lab, c in zip(labels, colors)), source=source), bg_id


def paint_annotations(height: int, width: int, annotations: Sequence[tuple], things: Mapping[int, bool],
                      background: int, where: str) -> np.ndarray:
    """The instanceIds array of an image from its annotations ``(id, category_id, iscrowd,
    segmentation[, kept value[, score]])``, painted in order (a later one over an earlier one):
    ``category * 1000 + n`` for a non-crowd annotation of a category that has instances
    (``things[category]``; ``n`` the number of the kept instanceIds value this library's writer
    stores, else counted per category from 0), the plain category id otherwise; ``background``
    elsewhere.

    Raises
    ------
    InvalidFileError
        An unknown category, a malformed segmentation, an RLE of another size than the image,
        more than 1000 instances of one category; the message names ``where`` (the file) and
        the annotation id.
    """
    values = annotation_values(annotations, things, where)
    # Painted column-major, the order COCO masks are decoded in, then transposed once.
    out = np.full((width, height), background, dtype=np.uint16)
    for ann, value in zip(annotations, values):
        out[annotation_mask(ann, height, width, where).T] = value
    return np.ascontiguousarray(out.T)


def annotation_values(annotations: Sequence[tuple], things: Mapping[int, bool], where: str) -> List[int]:
    """The instanceIds value of each annotation (as :func:`paint_annotations` takes them and
    numbers them), without decoding any mask."""
    counters: Dict[int, int] = {}
    taken: Set[int] = set()
    for a in annotations:
        number = _kept_number(a[4]) if len(a) > 4 else None
        if number is not None and isinstance(a[1], int):
            taken.add(a[1] * INSTANCE_DIVISOR + number)
    values = []
    for aid, cat, crowd, _, *rest in annotations:
        at = f"{where} (annotation id {aid})"
        thing = things.get(cat) if isinstance(cat, int) and not isinstance(cat, bool) else None
        if thing is None:
            raise InvalidFileError(at, f"category_id {cat!r} is not among the file's categories")
        if thing and not crowd:
            kept = _kept_number(rest[0]) if rest else None
            if kept is not None:
                value = cat * INSTANCE_DIVISOR + kept
                if value > MAX_INSTANCE_VALUE:
                    raise InvalidFileError(at, f"instance {kept} of category {cat} does not fit 16-bit instanceIds")
            else:  # numbered from 0, passing over the numbers kept values hold
                n = counters.get(cat, 0)
                while cat * INSTANCE_DIVISOR + n in taken:
                    n += 1
                if n >= INSTANCE_DIVISOR:
                    raise InvalidFileError(at, f"more than {INSTANCE_DIVISOR} instances of category {cat} in one "
                                               f"image: instanceIds number them 0..999")
                counters[cat] = n + 1
                value = cat * INSTANCE_DIVISOR + n
                if value > MAX_INSTANCE_VALUE:
                    raise InvalidFileError(at, f"instance {n} of category {cat} does not fit 16-bit instanceIds "
                                               f"(at most {MAX_INSTANCE_VALUE})")
        else:
            value = cat
            if not 0 <= value < INSTANCE_DIVISOR:
                raise InvalidFileError(at, f"category_id {cat} does not fit instanceIds (region values 0..999)")
        values.append(value)
    return values


def annotation_mask(ann: tuple, height: int, width: int, where: str) -> np.ndarray:
    """The ``height x width`` boolean mask of an annotation's segmentation (column-major, as
    COCO masks are decoded)."""
    aid, segm = ann[0], ann[3]
    at = f"{where} (annotation id {aid})"
    if isinstance(segm, dict):
        return rle.decode(segm, shape=(height, width), path=at)
    if isinstance(segm, list):
        return rle.polygons_to_mask(segm, height, width, path=at)
    if segm is None:
        raise InvalidFileError(at, "no segmentation (an RLE or a list of polygons is needed)")
    raise InvalidFileError(at, f"segmentation is a {type(segm).__name__}: an RLE {{size, counts}} or a list of "
                               f"polygons is needed")


def _annotation_score(ann: tuple, where: str) -> Optional[float]:
    """An annotation's ``score`` (None without one); a score that is not a number raises."""
    score = ann[5] if len(ann) > 5 else None
    if score is None:
        return None
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        raise InvalidFileError(f"{where} (annotation id {ann[0]})", f"score is {json.dumps(score)[:100]}, not a number")
    return float(score)


def _kept_number(value) -> Optional[int]:
    """The instance number of a kept instanceIds value (None when there is none usable)."""
    if isinstance(value, int) and not isinstance(value, bool) and INSTANCE_DIVISOR <= value <= MAX_INSTANCE_VALUE:
        return value % INSTANCE_DIVISOR
    return None


@dataclasses.dataclass(frozen=True)
class _Image:
    id: Any
    file_name: str
    height: int
    width: int


class CocoSource(FileSource):
    """A COCO image: its photo file (when found) and its annotation records, decoded into
    instanceIds on demand (:func:`paint_annotations`). Annotations with a ``score`` (a model's
    detections) are also the frame's instances as made (:meth:`given_instances`): each its own
    mask, overlaps kept, and its score."""

    def __init__(self, files: Optional[Mapping[str, Tuple[Any, str]]], image: _Image, annotations: Sequence[tuple],
                 things: Mapping[int, bool], background: int, json_path: str, labels: LabelMap):
        super().__init__(files)
        self.image_record = image
        self.annotations = tuple(annotations)
        self.things = things
        self.background = background
        self.json_path = json_path
        self.labels = labels

    @property
    def gt_kind(self) -> Optional[str]:
        return None  # the ground truth is not a file of its own

    def has_annotations(self) -> bool:
        return True  # an image of the file is annotated, with no object at all if need be

    def where(self) -> Optional[str]:
        return f"{self.json_path} (image id {self.image_record.id})"

    def size(self) -> Optional[Tuple[int, int]]:
        return self.image_record.height, self.image_record.width

    def instance_ids(self) -> Optional[np.ndarray]:
        img = self.image_record
        return paint_annotations(img.height, img.width, self.annotations, self.things, self.background,
                                 self.json_path)

    def given_instances(self) -> Optional[List[Instance]]:
        """With scores in the file (detections): one :class:`Instance` per annotation, in file
        order, with its own mask (overlaps kept) and ``score`` (None for an annotation without
        one); None for ground truth (no score at all), whose instances are the segments of the
        painted instanceIds.

        Raises
        ------
        InvalidFileError
            A score that is not a number, or what :func:`paint_annotations` raises.
        """
        scores = [_annotation_score(a, self.json_path) for a in self.annotations]
        if all(score is None for score in scores):
            return None
        img = self.image_record
        out = []
        for ann, value, score in zip(self.annotations, annotation_values(self.annotations, self.things,
                                                                         self.json_path), scores):
            label_id, number = split_value(value)
            out.append(Instance.from_mask(annotation_mask(ann, img.height, img.width, self.json_path),
                                          label_id=label_id, id=number, is_crowd=number is None,
                                          label=self.labels.get(label_id), score=score))
        return out

    def scores(self) -> Dict[int, float]:
        """``{instanceIds value: score}`` of the annotations with a score, without decoding a
        mask (annotations painted with one value: the one painted last, on top)."""
        scores = [_annotation_score(a, self.json_path) for a in self.annotations]
        if all(score is None for score in scores):
            return {}
        values = annotation_values(self.annotations, self.things, self.json_path)
        return {value: score for value, score in zip(values, scores) if score is not None}

    def label_ids(self) -> Optional[np.ndarray]:
        return None

    def original(self, kind: str) -> Optional[bytes]:
        return None

    def polygons(self) -> Tuple[Optional[bytes], Optional[str]]:
        return None, None

    def fresh(self) -> "CocoSource":
        out = copy.copy(self)
        FileSource.__init__(out, self._files)
        return out

    def __getstate__(self):
        return {"_files": self._files, "image": self.image_record, "annotations": self.annotations,
                "things": self.things, "background": self.background, "json_path": self.json_path,
                "labels": self.labels}

    def __setstate__(self, state) -> None:
        CocoSource.__init__(self, state["_files"], state["image"], state["annotations"], state["things"],
                            state["background"], state["json_path"], state["labels"])


_SPLIT_FILE = re.compile(rf"^(?:{MMDET_PREFIX}|{COCO_PREFIX})(?P<split>.+)\.json$")
_CATEGORIES_KEY = re.compile(rb'"categories"\s*:\s*\[')
_BLOCK = 1 << 20


def annotation_jsons(root: Root, listing: Mapping[str, str]) -> List[str]:
    """The JSON files in ``annotations/`` of a root laid out as COCO's: one with an
    ``annotations/`` folder and no ``gtFine/``, ``gtCoarse/`` or ``imgsFine/`` (its photos may
    sit in ``leftImg8bit/``). Beside ``gtFine/`` (mmdetection keeps its JSON there) the
    Cityscapes tree wins: it has every class, the JSON only the things."""
    if listing.get("annotations") != "directory" or any(listing.get(d) == "directory"
                                                           for d in ("gtFine", "gtCoarse", "imgsFine")):
        return []
    return [n for n, t in listdir(root, "annotations").items() if t == "file" and n.endswith(".json")]


class CocoInstancesReader(Reader):
    """Reads COCO instances: ``annotations/instancesonly_filtered_gtFine_<split>.json``
    (mmdetection's Cityscapes files) or ``annotations/instances_<split>.json`` (generic COCO,
    Datumaro's layout), one split per file.

    - Labels: the categories of every split (ids kept, see :func:`coco_labels`), read at open
      without parsing the rest of the files.
    - Frames: one per image, in id order. The id is ``file_name`` without its extension and
      without a ``_leftImg8bit`` suffix (so Cityscapes -> COCO -> Cityscapes keeps the ids).
    - Photos: ``<folder>/<file_name>`` in the first of ``leftImg8bit/<split>/``,
      ``images/<split>/``, ``<split>/`` and ``images/`` that exists (mmdetection's, Datumaro's
      and COCO's own layouts); an image whose file is not there has no photo.
    - Ground truth: the image's annotations painted in file order (:func:`paint_annotations`),
      decoded when asked for. A split's JSON is parsed once, when iteration reaches it.
    - Scores: when annotations have a ``score`` (detections), the frame's
      :meth:`~cityscapes_io.Frame.original_instances` are the annotations, each its own mask
      (overlaps kept) with its :attr:`~cityscapes_io.Instance.score`: what instance evaluation
      and ``export_predictions`` use. A COCO *results* file (a bare list of detections, without
      ``images`` and ``categories``) is not a dataset: it is refused as not a COCO file.

    Problems of a split's file (not COCO, an image id given to two images, a ``height`` /
    ``width`` that is not a positive integer or exceeds :data:`~cityscapes_io.png.MAX_PIXELS`,
    an annotation of an image the file does not list, a ``file_name`` that leaves the dataset
    root, or a photo that is a symbolic link out of it) raise, or are skipped under
    ``on_error``; problems of an annotation (unknown category, malformed segmentation, RLE of
    the wrong size or with counts that do not sum exactly to it, polygon points far outside
    the image) raise when the frame is decoded, before any mask is allocated, naming the file
    and the annotation id.
    """

    format = "coco_instances"
    EVIDENCE = "annotations/instances_*.json"
    EVIDENCE_GROUP = "coco"

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """``annotations/instances_*.json`` (or ``instancesonly_filtered_*.json``)."""
        found = sorted(n for n in annotation_jsons(root, listing)
                       if n.startswith(("instancesonly_filtered_", "instances_")))
        return f"annotations/{found[0]}" if found else None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root: Root = resolve_single_root(url, storage_options, "COCO")
        self.roots = [self.root]
        self.on_error = on_error
        self._files = selected_splits(self._split_files(), split, self.root.display(ANNOTATIONS_DIR))
        self._cities: Optional[Set[str]] = None if cities is None else (
            {cities} if isinstance(cities, str) else set(cities))
        self._categories = self._read_categories()
        self.labels, self._background = coco_labels(
            sorted(self._categories.items()), source=" + ".join(self._display(s) for s in sorted(self._files)))
        self._things = {lab.id: bool(lab.has_instances) for lab in self.labels if lab.id in self._categories}
        regions = [f"{lab.name} ({lab.id})" for lab in self.labels if lab.id in self._categories
                   and lab.id not in _THING_IDS and has_instances(official_label(lab.name), True)]
        if regions:
            warnings.warn(f"{self.root.url}: categories read as whole-class regions (instanceIds number the "
                          f"instances of label ids 1..65 only): {', '.join(regions)}", stacklevel=3)

    # -- listing --------------------------------------------------------------------------------
    def _split_files(self) -> Dict[str, str]:
        found: Dict[str, str] = {}
        for name, kind in sorted(listdir(self.root, ANNOTATIONS_DIR).items()):
            m = _SPLIT_FILE.match(name)
            if kind != "file" or m is None:
                continue
            split = m.group("split")
            if split in found:
                raise CityscapesIOError(self.root.display(ANNOTATIONS_DIR),
                                        f"split {split!r} has two files, {found[split]} and {name}: keep one")
            found[split] = name
        if not found:
            raise DatasetNotFoundError(self.root.url, f"not a COCO instances dataset: no {ANNOTATIONS_DIR}/"
                                                      f"{MMDET_PREFIX}<split>.json or {ANNOTATIONS_DIR}/"
                                                      f"{COCO_PREFIX}<split>.json")
        return found

    def _path(self, split: str) -> str:
        return self.root.join(ANNOTATIONS_DIR, self._files[split])

    def _display(self, split: str) -> str:
        return self.root.display(f"{ANNOTATIONS_DIR}/{self._files[split]}")

    def splits(self) -> List[str]:
        return sorted(self._files)

    def split_locations(self, split: str) -> List[str]:
        return [self._display(split)]

    # -- categories -----------------------------------------------------------------------------
    def _read_categories(self) -> Dict[int, str]:
        """``{id: name}`` of the categories of every split (they must agree on the names)."""
        out: Dict[int, str] = {}
        for split in sorted(self._files):
            where = self._display(split)
            path = check_inside(self.root.fs, self.root.path, self._path(split))
            for cid, name in _check_categories(_scan_categories(self.root.fs, path, where), where):
                if out.setdefault(cid, name) != name:
                    raise LabelMapError(where, f"category {cid} is {name!r} here and {out[cid]!r} in another split")
        return out

    # -- frames ---------------------------------------------------------------------------------
    def iter_frames(self, split: str) -> Iterator[Frame]:
        where = self._display(split)
        try:
            images, by_image = self._parse(split)
        except CityscapesIOError as exc:
            apply_policy(self.on_error, exc)
            return
        photos = self._photos(split)
        base = photos[0] if photos is not None else self.root.path
        shared = _shared_ids(images)
        frames: Dict[str, Tuple[_Image, str]] = {}
        for img in images:
            try:
                if img.id in shared:
                    raise InvalidFileError(where, f"image id {img.id!r} is given to {shared[img.id]} images: which "
                                                  f"of them its annotations belong to cannot be told")
                path = resolve_inside(self.root.fs, self.root.path, img.file_name, base=base, index=where,
                                      entry=f"image {img.id} 'file_name'")
                frame_id = _frame_id(img.file_name, where, img.id)
                if frame_id in frames:
                    raise InvalidFileError(where, f"images {frames[frame_id][0].id} and {img.id} are both "
                                                  f"{frame_id!r}")
            except CityscapesIOError as exc:
                apply_policy(self.on_error, exc)
                continue
            frames[frame_id] = img, path
        for frame_id in sorted(frames, key=sort_key):
            if self._cities is not None and parse_frame_id(frame_id).city not in self._cities:
                continue
            img, path = frames[frame_id]
            files = {}
            if photos is not None and img.file_name in photos[1]:
                files["image"] = (self.root.fs, path)
            source = CocoSource(files, img, by_image.get(img.id, ()), self._things, self._background, where,
                                self.labels)
            yield Frame(frame_id, split, self.labels, source, on_error=self.on_error)

    def _parse(self, split: str) -> Tuple[List[_Image], Dict[Any, List[tuple]]]:
        """The images of a split's JSON and ``{image id: [(id, category, iscrowd, segmentation, kept
        instanceIds value, score)]}`` (the last two None when the annotation has none)."""
        where = self._display(split)
        doc = jsonfile.loads(read_file(self.root.fs, check_inside(self.root.fs, self.root.path, self._path(split))), where)
        if not isinstance(doc, dict):
            raise InvalidFileError(where, f"not a COCO file: the top level is a {type(doc).__name__}, not an object")
        missing = [k for k in ("images", "categories") if k not in doc]
        if missing:
            raise InvalidFileError(where, f"not a COCO file: no {' or '.join(map(repr, missing))} "
                                          f"(has {', '.join(map(repr, sorted(doc))) or 'nothing'})")
        for key in ("images", "categories", "annotations"):
            if not isinstance(doc.get(key, []), list):
                raise InvalidFileError(where, f"not a COCO file: {key!r} is not a list")
        cats = dict(_check_categories(doc["categories"], where))
        if any(self._categories.get(cid) != name for cid, name in cats.items()):
            raise InvalidFileError(where, "the categories changed since the dataset was opened")
        images = [_check_image(rec, k, where) for k, rec in enumerate(doc["images"])]
        known = {img.id for img in images}
        by_image: Dict[Any, List[tuple]] = {}
        for k, ann in enumerate(doc.get("annotations", ())):  # mmdetection leaves the key out when empty
            aid = ann.get("id", f"#{k}") if isinstance(ann, dict) else f"#{k}"
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            if not isinstance(image_id, (int, str)) or isinstance(image_id, bool) or image_id not in known:
                what = "is not an object" if not isinstance(ann, dict) else \
                    f"refers to image_id {ann.get('image_id')!r}, which is not among the file's images"
                apply_policy(self.on_error, InvalidFileError(f"{where} (annotation id {aid})",
                                                             f"the annotation {what}"))
                continue
            by_image.setdefault(image_id, []).append((aid, ann.get("category_id"), bool(ann.get("iscrowd", 0)),
                                                      ann.get("segmentation"), ann.get(VALUE_KEY), ann.get("score")))
        return images, by_image

    def _photos(self, split: str) -> Optional[Tuple[str, Set[str]]]:
        """``(folder, {file names under it})`` of the photo folder of a split, None without one."""
        for pattern in PHOTO_DIRS:
            rel = pattern.format(split=split)
            parent, _, name = rel.rpartition("/")
            if listdir(self.root, parent).get(name) != "directory":
                continue
            folder = self.root.join(rel)
            with storage_errors(self.root.display(rel), "cannot list"):
                paths = find_files(self.root.fs, folder)
            return folder, {self.root.relative(p)[len(rel) + 1:] for p in paths}
        return None


def _scan_categories(fs, path: str, where: str) -> list:
    """The ``categories`` list of a COCO JSON, read without parsing the rest: the file is read
    until the list is complete (at its start in this library's and Datumaro's files, after the
    images in mmdetection's, at the end of COCO's own)."""
    decoder = json.JSONDecoder()
    tail = b""
    found: Optional[bytearray] = None
    with storage_errors(where, "cannot read"), fs.open(path, "rb") as fh:
        while True:
            chunk = fh.read(_BLOCK)
            if found is None:
                data = tail + chunk
                m = _CATEGORIES_KEY.search(data)
                if m is None:
                    if not chunk:
                        raise InvalidFileError(where, "not a COCO file: no \"categories\" list")
                    tail = data[-4096:]
                    continue
                found = bytearray(data[m.end() - 1:])
            else:
                found += chunk
            try:
                text = found.decode("utf-8")
                _, end = decoder.raw_decode(text)
            except RecursionError:
                raise InvalidFileError(where, "not valid JSON: \"categories\" is nested too deeply") from None
            except (ValueError, UnicodeDecodeError) as exc:
                if not chunk:
                    raise InvalidFileError(where, f"\"categories\" is not a JSON list: {exc}") from None
                continue
            return jsonfile.loads(text[:end], where)  # the list found, parsed as strictly as the whole file


def _check_categories(categories, where: str) -> List[Tuple[int, str]]:
    out: List[Tuple[int, str]] = []
    seen: Dict[int, str] = {}
    if not isinstance(categories, list):
        raise InvalidFileError(where, "not a COCO file: \"categories\" is not a list")
    for k, cat in enumerate(categories):
        cid = cat.get("id") if isinstance(cat, dict) else None
        name = cat.get("name") if isinstance(cat, dict) else None
        if not isinstance(cid, int) or isinstance(cid, bool) or not isinstance(name, str) or not name:
            raise InvalidFileError(where, f"categories[{k}] is not {{\"id\": <int>, \"name\": <str>, ...}}: "
                                          f"{json.dumps(cat)[:200]}")
        if cid in seen:
            raise InvalidFileError(where, f"category id {cid} is given twice ({seen[cid]!r} and {name!r})")
        seen[cid] = name
        out.append((cid, name))
    return out


def _check_image(rec, k: int, where: str) -> _Image:
    def whole(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and v > 0

    if not isinstance(rec, dict):
        raise InvalidFileError(where, f"images[{k}] is not an object")
    iid, name = rec.get("id"), rec.get("file_name")
    if not isinstance(iid, (int, str)) or isinstance(iid, bool):
        raise InvalidFileError(where, f"images[{k}] has no id")
    if not isinstance(name, str) or not name:
        raise InvalidFileError(where, f"image id {iid} has no file_name")
    if not (whole(rec.get("height")) and whole(rec.get("width"))):
        raise InvalidFileError(where, f"image id {iid}: height and width must be positive integers, got "
                                      f"{rec.get('height')!r} x {rec.get('width')!r}")
    h, w = int(rec["height"]), int(rec["width"])
    if h * w > MAX_PIXELS:
        raise InvalidFileError(where, f"image id {iid}: height x width is {h}x{w}, more than the limit of "
                                      f"{MAX_PIXELS} pixels (refused)")
    return _Image(iid, name, h, w)


def _shared_ids(images: Sequence[_Image]) -> Dict[Any, int]:
    """``{image id: number of images}`` of the ids given to more than one image."""
    return {iid: n for iid, n in collections.Counter(img.id for img in images).items() if n > 1}


def _frame_id(file_name: str, where: str, image_id) -> str:
    """The frame id of an image: its ``file_name`` without extension and ``_leftImg8bit``."""
    stem = posixpath.splitext(file_name)[0]
    if stem.endswith(IMAGE_SUFFIX) and len(stem) > len(IMAGE_SUFFIX) and not stem.endswith("/" + IMAGE_SUFFIX):
        stem = stem[: -len(IMAGE_SUFFIX)]
    try:
        return safe_relpath(stem)
    except ValueError as exc:
        raise InvalidFileError(where, f"image id {image_id}: file_name {file_name!r} cannot be read: {exc}") from None

