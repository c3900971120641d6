"""Preparing train ids: the official ``csCreateTrainIdLabelImgs`` / ``csCreateTrainIdInstanceImgs``
step, on current libraries, locally, on object stores or from an archive.

:func:`prepare` writes ``<id>_gtFine_labelTrainIds.png`` (8-bit, 255 = ignore) and
``<id>_gtFine_instanceTrainIds.png`` (16-bit, ``train id * 1000 + instance``) for every annotated
frame (``_gtCoarse_`` ones for the coarse annotations), next to the source files as the official
scripts do and as training code (mmsegmentation, PaddleSeg, ...) expects, or into a mirrored tree
under ``dst``. Two sources:

- ``source="png"`` (default): a lookup table over the shipped ``labelIds`` / ``instanceIds``
  PNGs; needs no polygons and is exact to the shipped files;
- ``source="polygons"``: the polygons drawn by the official rules
  (:func:`cityscapes_io.rasterize`), pixel-identical to the official scripts' files.

Into ``dst``, ``save_media`` also copies the photos of the frames prepared
(``leftImg8bit/<split>/<city>/<frame>_leftImg8bit.png``, bytes unchanged), so that the tree is one
training code reads as it is: mmsegmentation's ``CityscapesDataset`` lists the photos of
``leftImg8bit/<split>/`` and pairs each with its ``gtFine/<split>/<city>/<frame>_gtFine_labelTrainIds.png``,
and finds 0 samples in a tree without photos (:func:`prepare` warns when it writes one).

Existing files are kept unless ``overwrite`` (then replaced atomically), so an interrupted run
continues where it stopped. Writing goes through the conversion pipeline: the same workers,
report and error policy as :func:`cityscapes_io.convert`.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from concurrent.futures import Executor
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import png
from .dataset import Dataset, open as open_dataset
from .errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, OnError, check_policy
from .formats.cityscapes import CityscapesReader
from .frame import Frame
from .names import GT_DIR, IMAGE_DIR, gt_path, image_path
from .panoptic import panoptic_categories, panoptic_frame, panoptic_names
from .storage.sinks import Data, is_archive_url
from .writing import Report, items_for, refuse_in_parts, refuse_overwriting_source, run_writer
from .storage import is_read_only
from .formats.base import Encoded, Entry, Files, Option, Writer, check_names
from .formats.spool import json_lists

__all__ = ["prepare", "PrepareReport", "PREPARE_KINDS", "TRAIN_ID_KINDS", "PANOPTIC", "kinds_from"]

#: What :func:`prepare` writes by default: the official preparation scripts' two files.
TRAIN_ID_KINDS = ("labelTrainIds", "instanceTrainIds")
#: Every kind it can write, and the rasterisation encoding of each (``source="polygons"``).
PREPARE_KINDS = {"labelTrainIds": "trainIds", "instanceTrainIds": "instanceTrainIds", "labelIds": "ids",
                 "instanceIds": "instanceIds", "color": "color"}
#: The COCO panoptic files of ``csCreatePanopticImgs`` (from the instanceIds PNGs, gtFine only).
PANOPTIC = "panoptic"
SOURCES = ("png", "polygons")
#: The report's note on a frame prepared into ``dst`` with ``save_media`` whose source has no photo.
NO_PHOTO = "no photo in the source: prepared without one"


@dataclasses.dataclass
class PrepareReport(Report):
    """What :func:`prepare` did (see :class:`~cityscapes_io.writing.Report`).

    Attributes
    ----------
    photos : int or None
        Photos of the prepared frames in ``dst`` (copied with ``save_media``, or found there
        complete by a resumed run); None when the files were written next to the source, beside
        its own photos.
    """

    photos: Optional[int] = None


class PrepareWriter(Writer):
    """Writes the prepared files of each frame (and its photo, with ``save_media``) and, for
    the panoptic kind, the JSON of each split at the end. Driven by :func:`prepare` through the
    conversion pipeline, in this process or in worker processes.

    ``media_splits``: with ``save_media``, per annotation tree, the splits whose photos its
    frames carry (a split in two trees takes them with the first tree's frames, so no photo is
    written twice); None: every frame's. An entry's ``info`` is ``(photo written,)`` followed by
    the frame's panoptic records."""

    format = "prepare"
    OPTIONS = Writer.OPTIONS + (Option("kinds", "the files made (--kinds)"), Option("source", "png or polygons (--from)"),
                                Option("train_ids", "train-id categories (--train-ids)"),
                                Option("media_splits", "the splits whose photos are copied (--save-media)"))

    def __init__(self, url, *, kinds: Sequence[str] = TRAIN_ID_KINDS, source: str = "png", train_ids: bool = False,
                 media_splits: Optional[Dict[str, Sequence[str]]] = None, **options):
        self.kinds = tuple(kinds)
        self.source = source
        self.train_ids = bool(train_ids)
        self.media_splits = media_splits
        super().__init__(url, **options)  # the panoptic JSON's records go to self.spool, per split
        self._bases: Dict[str, set] = {}
        #: Photos of the frames recorded (written, or found complete).
        self.photos = 0

    def _kinds_of(self, frame: Frame) -> Tuple[str, ...]:
        """The kinds made for ``frame``: panoptic files for the fine annotations only, as the
        official script makes them."""
        return tuple(k for k in self.kinds if k != PANOPTIC or frame.annotations == GT_DIR)

    def encode(self, frame: Frame) -> Encoded:
        check_names(frame)
        if self.source == "polygons":
            _check_polygons_size(frame)
        files: List[Tuple[str, bytes]] = []
        records: tuple = ()
        shape: Optional[Tuple[int, int]] = None
        for kind in self._kinds_of(frame):
            if kind == PANOPTIC:
                made = panoptic_frame(frame, self.train_ids, frame.annotations)
                if made is None:
                    raise InvalidFileError(frame.where, "no ground truth to make the panoptic file from")
                files.append((self._path(frame, kind), _encode(made[0])))
                records = (made[1], made[2])
                shape = made[0].shape[:2]
                continue
            arr = self._array(frame, kind)
            if arr is None:
                raise InvalidFileError(frame.where, "no ground truth to take the train ids from")
            files.append((self._path(frame, kind), _encode(arr)))
            shape = arr.shape[:2]
        photo = self.photo(frame, shape) if self._carries_photo(frame) else None
        if photo is not None:  # the original bytes: no image_ext is given
            files.append((image_path(frame.split, frame.id, photo[1]), photo[0]))
        return Encoded(files, Entry(frame.split or "default", frame.id, (photo is not None,) + records,
                                    warnings=self._notes(frame)))

    def _carries_photo(self, frame: Frame) -> bool:
        """Whether the frame's photo is to be written with it (when it has one)."""
        if not self.save_media:
            return False
        return self.media_splits is None or frame.split in self.media_splits.get(frame.annotations, ())

    def _notes(self, frame: Frame) -> Tuple[str, ...]:
        return (NO_PHOTO,) if self._carries_photo(frame) and not frame.has_image else ()

    def entry(self, frame: Frame) -> Entry:
        # A frame found complete (resume): its photo is among its planned files.
        return dataclasses.replace(super().entry(frame), warnings=self._notes(frame))

    def index_info(self, frame: Frame) -> tuple:
        # A frame whose files are there already (resume): its panoptic records from its PNG.
        photo = (self._carries_photo(frame) and frame.has_image,)
        if PANOPTIC not in self._kinds_of(frame):
            return photo
        made = panoptic_frame(frame, self.train_ids, frame.annotations)
        if made is None:
            raise InvalidFileError(frame.where, "no ground truth to make the panoptic records from")
        return photo + (made[1], made[2])

    def record(self, entry: Entry) -> None:
        if entry.info:
            self.photos += int(entry.info[0])
            entry = dataclasses.replace(entry, info=entry.info[1:])
        if entry.info:
            base = entry.id.rsplit("/", 1)[-1]
            seen = self._bases.setdefault(entry.split, set())
            if base in seen:
                raise InvalidFileError(entry.id, f"two frames of split {entry.split!r} are named {base!r}: the "
                                                 f"panoptic folder of a split is flat, as the official script makes it")
            seen.add(base)
            self.spool.add((entry.split, "images"), entry.info[0])
            self.spool.add((entry.split, "annotations"), entry.info[1])
            entry = dataclasses.replace(entry, info=())
        super().record(entry)

    def index_files(self) -> Files:
        out: List[Tuple[str, Data]] = []
        assert self.labels is not None
        categories = panoptic_categories(self.labels, self.train_ids)
        for split in self.spool.groups():
            stem = self._panoptic_stem(split)
            # As the official script's json.dump(..., sort_keys=True, indent=4) lays it out.
            out.append((f"{GT_DIR}/{stem}.json", json_lists(
                [("annotations", self.spool.records((split, "annotations"))), ("categories", categories),
                 ("images", self.spool.records((split, "images")))], indent=4)))
        return out


    def _panoptic_stem(self, split: str) -> str:
        return f"cityscapes_panoptic_{split}{'_trainId' if self.train_ids else ''}"

    def _array(self, frame: Frame, kind: str) -> Optional[np.ndarray]:
        """The pixels of one prepared file (cached on the frame, so the decode-ahead thread's
        work is used)."""
        if self.source == "polygons":
            return frame.rasterize(PREPARE_KINDS[kind])
        return frame.train_ids() if kind == "labelTrainIds" else frame.instance_train_ids()

    def _path(self, frame: Frame, kind: str) -> str:
        if kind == PANOPTIC:
            return f"{frame.annotations}/{self._panoptic_stem(frame.split)}/{panoptic_names(frame, frame.annotations)[2]}"
        return gt_path(frame.split, frame.id, kind, frame.annotations)

    def touch(self, frame: Frame) -> None:
        # Everything but the PNG encoding, one frame ahead: drawing or the lookups run here
        # while the writer's thread encodes (zlib releases the GIL); the photo is read too.
        for kind in self._kinds_of(frame):
            if kind == PANOPTIC:
                frame.instances()
            else:
                self._array(frame, kind)
        if self._carries_photo(frame) and frame.has_image:
            frame.image_bytes()

    def planned_files(self, frame: Frame) -> List[str]:
        files = [self._path(frame, kind) for kind in self._kinds_of(frame)]
        ext = self.photo_ext(frame) if self._carries_photo(frame) else None
        if ext is not None:
            files.append(image_path(frame.split, frame.id, ext))
        return files


def _check_polygons_size(frame: Frame) -> None:
    """Refuse a polygons file whose ``imgWidth``/``imgHeight`` disagree with the frame's PNGs
    (read from their headers): the files drawn from it would not fit beside them."""
    polygons = frame.polygons()
    if polygons is None:
        raise InvalidFileError(frame.where, "the frame has no polygons file to draw from")
    size = frame.size()
    if size is not None and size != (polygons.height, polygons.width):
        raise InvalidFileError(polygons.path, f"imgWidth x imgHeight is {polygons.width}x{polygons.height} but the "
                                              f"frame's PNGs are {size[1]}x{size[0]}: the polygons do not belong "
                                              f"to these images")


def kinds_from(source: str) -> Tuple[str, ...]:
    """The kinds :func:`prepare` can make from ``source`` (``"png"`` or ``"polygons"``)."""
    return tuple(PREPARE_KINDS) if source == "polygons" else TRAIN_ID_KINDS + (PANOPTIC,)


def _encode(arr: np.ndarray) -> bytes:
    return png.encode_label_png(arr)


def prepare(src, kinds: Union[str, Sequence[str]] = TRAIN_ID_KINDS, *, source: str = "png", dst=None,
            overwrite: bool = False, workers: int = 1, on_error: OnError = "raise", storage_options=None,
            dst_storage_options=None, annotations: Optional[str] = None, split=None, cities=None,
            progress: Optional[Callable[[int], None]] = None, decode_ahead: bool = True,
            train_ids: bool = False, save_media: bool = False, image: Optional[str] = None,
            executor: Optional[Executor] = None) -> PrepareReport:
    """Write the train-id files of a Cityscapes dataset, as the official preparation scripts do.

    Parameters
    ----------
    src : str, list of str, or Dataset
        The dataset (a path, ``.zip``, fsspec URL such as ``s3://bucket/cityscapes``), or a
        Cityscapes :class:`Dataset` already opened (its filters apply).
    kinds : str or sequence of str
        ``"labelTrainIds"``, ``"instanceTrainIds"`` (default: both); ``"panoptic"``: the COCO
        panoptic files of ``csCreatePanopticImgs`` (from the PNGs, fine annotations only), for
        each split ``gtFine/cityscapes_panoptic_<split>.json`` and the folder
        ``gtFine/cityscapes_panoptic_<split>/`` of ``<id>_gtFine_panoptic.png``; with
        ``source="polygons"`` also ``"labelIds"``, ``"instanceIds"``, ``"color"`` (the official
        ``json2labelImg`` / ``json2instanceImg``: for a tree with polygons only; next to a
        tree's own PNGs these are the shipped files, kept unless ``overwrite``, which redraws
        them from the polygons).
    source : {"png", "polygons"}
        Take the classes from the shipped PNGs by lookup table (exact to them, no polygons
        needed), or draw the polygons by the official rules (pixel-identical to the official
        scripts' output).
    dst : str, optional
        Write into a tree mirroring the source under ``dst`` (``dst/gtFine/<split>/...``)
        instead of next to the source files; needed when the source is read-only (a zip). A
        ``.zip`` is written as one archive (refused when it exists, unless ``overwrite``); the
        source itself is refused. Without ``save_media`` the tree has no photos (a warning says
        so: mmsegmentation's ``CityscapesDataset`` finds 0 samples in it).
    overwrite : bool
        Replace files that exist (atomically); without it they are kept, so a run that was
        interrupted continues where it stopped.
    workers : int
        Processes preparing frames.
    executor : concurrent.futures.Executor, optional
        Prepare on this executor instead (a local ``ProcessPoolExecutor``,
        ``distributed.Client(...).get_executor()``, a Ray executor; not with ``workers``): a task
        is a frame, sent as file references with the destination and its storage options; the
        worker decodes, encodes and writes the frame's files and sends back its index entry
        (for the panoptic kind, the frame's JSON records), recorded here in order: the files
        and JSON are those of one process. The destination must be one the workers reach (a
        URL, or a folder they share); not a ``.zip``.
    on_error : "raise", "skip" or callable
        A frame that cannot be prepared raises, or is skipped and listed in the report.
    storage_options, dst_storage_options : dict, optional
        fsspec options of the source and of ``dst`` (``dst`` defaults to the source's).
    annotations : {"gtFine", "gtCoarse"}, optional
        Only this annotation tree; default: every tree the dataset has, as the official
        scripts do.
    split, cities : optional
        Only these splits / cities.
    progress : callable, optional
        Called with the number of frames done so far.
    train_ids : bool
        Panoptic files with train ids as category ids (``csCreatePanopticImgs --use-train-id``:
        ``cityscapes_panoptic_<split>_trainId.json`` and its folder).
    save_media : bool
        Also copy the photos of the frames prepared into ``dst``
        (``leftImg8bit/<split>/<city>/<frame>_leftImg8bit.png``, bytes unchanged), from any
        source (a folder, an archive, an object store), so that ``dst`` is a tree training code
        reads as it is. A frame without a photo is prepared and listed in the report's
        ``warnings``. Needs ``dst``: next to the source, the photos are where they are.

    image : str, optional
        The photo key the frames' photo is (default ``leftImg8bit``; see
        :func:`cityscapes_io.open`): what ``save_media`` copies, as ``leftImg8bit/``.
    Returns
    -------
    PrepareReport
        Frames read, written (those found complete counted as ``resumed``), skipped with why;
        ``photos``: the photos of the prepared frames in ``dst``. Frames without ground truth
        (photos only) are not part of the input.

    Warns
    -----
    UserWarning
        ``"<dst>: no photos written (leftImg8bit/): ..."`` when frames were prepared into
        ``dst`` and it got no photo.
    """
    check_policy(on_error)
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    allowed = kinds_from(source)
    bad = [k for k in kinds if k not in allowed]
    if bad or not kinds:
        raise ValueError(f"kinds {bad or list(kinds)!r} not available from {source}: choose from {', '.join(allowed)}")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if executor is not None and workers > 1:
        raise ValueError("give workers (processes started here) or executor (the caller's), not both")
    if save_media and dst is None:
        raise ValueError("save_media copies the photos into dst: without dst the prepared files are written next to "
                         "the source, whose photos are where they are (give dst, or leave save_media out)")
    if set(kinds) == {PANOPTIC}:  # made from the fine annotations only, as the official script does
        if annotations not in (None, GT_DIR):
            raise ValueError(f"the panoptic files are made from {GT_DIR}, not {annotations}")
        annotations = GT_DIR
    datasets = _datasets(src, storage_options, annotations, split, cities, on_error, image)
    # One writer per destination, fed the frames of every annotation tree that goes there.
    groups: Dict[str, Tuple[Optional[dict], List[Dataset]]] = {}
    for ds in datasets:
        if dst is not None:
            opts = dst_storage_options if dst_storage_options is not None else storage_options
            refuse_overwriting_source(ds, dst, opts)
            url = str(dst)
        else:
            url, opts = _destination(ds, storage_options)
        groups.setdefault(url, (opts, []))[1].append(ds)
    report = PrepareReport(", ".join(groups) or str(dst or ""), "prepare", photos=None if dst is None else 0)
    start = time.perf_counter()
    for url, (opts, group) in groups.items():
        archive = is_archive_url(url)
        options: Dict[str, Any] = {"kinds": kinds, "source": source, "train_ids": train_ids,
                                   "save_media": save_media,
                                   "media_splits": _media_splits(group) if save_media and len(group) > 1 else None}
        w = PrepareWriter(url, storage_options=opts, labels=group[0].labels,
                          existing=("replace" if overwrite else "refuse") if archive else "keep", **options)
        if workers > 1 or executor is not None:
            refuse_in_parts(w, "workers or executor")
        trees = sorted({_tree_reader(ds).annotations for ds in group})
        frames = (f for ds in group for f in _annotated(ds, source))
        items = items_for(frames, w, resume=not overwrite and not archive,
                          folders=trees + [IMAGE_DIR] if save_media else trees)
        run_writer(w, items, report, format=PrepareWriter, url=url, storage_options=opts,
                   options=options, workers=workers, decode_ahead=decode_ahead, executor=executor,
                   on_error=on_error, progress=_offset(progress, report.read) if progress else None)
        if report.photos is not None:
            report.photos += w.photos
            if w.written and not w.photos:
                warnings.warn(_no_photos(url, kinds, save_media), stacklevel=2)
    report.seconds = time.perf_counter() - start
    return report


def _media_splits(group: List[Dataset]) -> Dict[str, List[str]]:
    """Per annotation tree of ``group`` (in order), the splits whose photos its frames carry:
    those no tree before it has (``val`` is in gtFine and gtCoarse: its photos come once)."""
    out: Dict[str, List[str]] = {}
    taken: set = set()
    for ds in group:
        own = [s for s in ds.splits() if s not in taken]
        out[_tree_reader(ds).annotations] = own
        taken.update(own)
    return out


def _no_photos(url: str, kinds: Sequence[str], save_media: bool) -> str:
    """The warning on a destination that got no photos."""
    readers = ("mmsegmentation's CityscapesDataset finds 0 samples" if "labelTrainIds" in kinds
               else "tools that pair the ground truth with its photos find none")
    cure = "the source has none for the frames prepared" if save_media else "pass --save-media"
    return f"{url}: no photos written ({IMAGE_DIR}/): {readers}; {cure}"


def _datasets(src, storage_options, annotations, split, cities, on_error, image=None) -> List[Dataset]:
    """One Cityscapes dataset per annotation tree to prepare, each with the requested splits
    and cities it has (a split such as ``train_extra`` or ``test`` is in one tree only); a
    requested split or city that no tree has is an error."""
    if isinstance(src, Dataset):
        _tree_reader(src)  # a Cityscapes dataset, or ValueError
        return [src.filter(split=split, cities=cities) if split is not None or cities is not None else src]
    first = open_dataset(src, storage_options=storage_options, on_error=on_error, annotations=annotations,
                         image=image)
    read = getattr(first.reader, "annotations", None)
    trees = [annotations] if annotations else list(getattr(first.reader, "trees", [])) or [read]
    splits = [split] if isinstance(split, str) else (list(split) if split is not None else None)
    wanted_cities = [cities] if isinstance(cities, str) else (list(cities) if cities is not None else None)
    out, found_splits, found_cities = [], set(), set()
    for tree in trees:
        ds = first if tree == read else open_dataset(src, storage_options=storage_options, on_error=on_error,
                                                     annotations=tree, image=image)
        have = [s for s in ds.splits() if splits is None or s in splits]
        found_splits.update(have)
        if not have:
            continue
        if wanted_cities is not None:
            present = {c for s in have for c in ds.cities(s)}
            found_cities.update(present)
            chosen = [c for c in wanted_cities if c in present]
            if not chosen:
                continue
            ds = ds.filter(split=have if splits is not None else None, cities=chosen)
        elif splits is not None:
            ds = ds.filter(split=have)
        out.append(ds)
    where = " + ".join(map(str, first.reader.roots))
    missing = [s for s in splits or () if s not in found_splits]
    if missing:
        raise DatasetNotFoundError(where, f"no split {', '.join(map(repr, missing))} in {', '.join(trees)} "
                                          f"(found: {', '.join(sorted(found_splits)) or 'none'})")
    missing = [c for c in wanted_cities or () if c not in found_cities]
    if missing:
        raise DatasetNotFoundError(where, f"no city {', '.join(map(repr, missing))} in {', '.join(trees)}")
    return out


def _tree_reader(ds: Dataset) -> CityscapesReader:
    """The Cityscapes reader under a dataset's operations."""
    reader = ds.source_reader
    if not isinstance(reader, CityscapesReader):
        raise ValueError(f"prepare needs a Cityscapes dataset, got {reader.format}")
    return reader


def _destination(ds: Dataset, storage_options):
    """``(url, storage options)`` of the root holding the annotation tree of ``ds``, where the
    files go when no ``dst`` is given."""
    reader = _tree_reader(ds)
    roots = reader.annotation_roots()
    if not roots:
        raise DatasetNotFoundError(" + ".join(map(str, reader.roots)), f"no {reader.annotations}/ annotations")
    if len(roots) > 1:
        raise CityscapesIOError(" + ".join(map(str, roots)), "the annotations lie in several roots: give dst")
    root = roots[0]
    if is_read_only(root.fs):
        raise CityscapesIOError(root.url, "the source is read-only (an archive): give dst, a folder or bucket "
                                          "to write the prepared files into")
    return root.url, storage_options


def _annotated(ds: Dataset, source: str) -> Iterator[Frame]:
    """The frames to prepare: those with ground truth (or, drawing polygons, a polygons file
    or ground truth: a frame with PNGs but no polygons is reported, not passed over)."""
    for frame in ds:
        if frame.has_annotations or (source == "polygons" and frame.has("polygons")):
            yield frame


def _offset(progress: Callable[[int], None], done: int) -> Callable[[int], None]:
    return lambda n: progress(done + n)
