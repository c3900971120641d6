"""Predictions held as a dataset, written in the official submission layout of a task
(:func:`export_predictions`): label-id PNGs (semantic), txt files and masks (instance), a COCO
panoptic JSON and its PNGs (panoptic), which :func:`~cityscapes_io.evaluate` and the official
scripts read.

Each task's layout is a :class:`~cityscapes_io.formats.base.Writer` (:data:`SUBMISSIONS`), driven
like every writer by :mod:`cityscapes_io.writing` (the destination's guards, ``.zip`` and URL
destinations, decoding ahead, progress and the report). They are not formats a dataset is read
in or converted to, so the format registry does not list them. A frame's files come from its
label ids or instances in the official ids, not from its segments: each writer overrides
``encode``, which raises (nothing of the frame written) when the frame cannot be exported.
"""
from __future__ import annotations

import json
import math
import posixpath
import warnings
from typing import Callable, Dict, List, Optional, Tuple, Type

import numpy as np

from .. import png
from ..dataset import open as open_dataset
from ..errors import CityscapesIOError
from ..formats.base import Encoded, Entry, Files, Option, Writer
from ..frame import Frame
from ..labels import LabelMap
from ..writing import Report, items_for, run_writer
from .base import TASKS
from .common import HAS_INSTANCES, TRAIN_TO_ID, few, official_lut
from .instance import equal_scores_warning

__all__ = ["export_predictions", "SubmissionWriter", "SemanticSubmission", "InstanceSubmission",
           "PanopticSubmission", "SUBMISSIONS"]


# -- from a dataset to the official submission layout ----------------------------------------------
class _NotWritten(Exception):
    """A frame's files that the destination refused: the export stops there, as it does on any
    error of the destination (only errors of the frames themselves are gathered). Not a
    :class:`CityscapesIOError`, so the driver does not take it for the frame's own."""

    def __init__(self, error: CityscapesIOError):
        super().__init__(error)
        self.error = error


class SubmissionWriter(Writer):
    """Base class of the submission writers: a frame's values are official label ids through
    :attr:`lut` (the frames' labels matched to the official ones by name, or train ids with
    ``train_ids=True``); the frames keep their own labels (none is renamed to the writer's).

    ``encode`` raises a :class:`CityscapesIOError` naming the frame's file when the frame cannot
    be exported (the driver gathers them: the other frames are written); an error of the
    destination stops the export (:meth:`put`). A frame's :class:`Entry` carries in ``info``
    what the writer keeps of it (:meth:`record`): the regions left out, and the instance scores
    or panoptic records."""

    OPTIONS = (Option("train_ids", "the values are train ids, whatever the label map says"),)

    def __init__(self, url, *, train_ids: bool = False, **options):
        self.train_ids = bool(train_ids)
        #: A frame's values (label ids of its labels, or train ids) -> official label ids (-1: none).
        self.lut: np.ndarray = TRAIN_TO_ID
        #: Regions of the frames written that are not predictions of the task (instance: crowd
        #: and stuff regions).
        self.skipped_regions = 0
        super().__init__(url, **options)

    def setup(self, labels: LabelMap) -> None:
        """Train ids whatever the label map says, or the dataset's labels to official ids by name."""
        self.lut = TRAIN_TO_ID if self.train_ids else official_lut(labels)

    def with_labels(self, frame: Frame) -> Frame:
        """The frame as it is: its values are mapped by :attr:`lut`, not by the writer's labels."""
        return frame

    def put(self, frame: Frame) -> Entry:
        """Encode the frame and put its files; an error of the destination stops the export."""
        encoded = self.encode_next(frame)
        try:
            self.dest.put_frame(encoded.files)
        except CityscapesIOError as exc:
            raise _NotWritten(exc) from exc
        return encoded.entry

    def record(self, entry: Entry) -> None:
        """Count the regions a written frame left out (``entry.info[0]``)."""
        super().record(entry)
        self.skipped_regions += entry.info[0] if entry.info else 0

    def submission(self, frame: Frame, files: Files, info: tuple = ()) -> Encoded:
        """A frame's files and its entry (``info``: what :meth:`record` keeps of it)."""
        return Encoded(files, Entry(frame.split or "default", frame.id, info))


class SemanticSubmission(SubmissionWriter):
    """The semantic submission: ``<city>/<frame>_pred.png`` holding official label ids; every
    pixel must be predicted."""

    format = "semantic submission"

    def encode(self, frame: Frame) -> Encoded:
        where = frame.where or frame.id
        arr = frame.label_ids()
        if arr is None:
            raise CityscapesIOError(where, f"frame {frame.id} has no label ids")
        lut = self.lut
        mapped = lut[np.minimum(arr, lut.size - 1)]
        if arr.size and int(mapped.min()) < 0:
            bad = np.unique(arr[mapped < 0])
            raise CityscapesIOError(where, f"values with no official label id (every pixel must be predicted): "
                                           f"{few(bad)}")
        return self.submission(frame, [(f"{frame.id}_pred.png", png.encode_label_png(mapped.astype(np.uint8)))])

    def touch(self, frame: Frame) -> None:
        frame.label_ids()


class InstanceSubmission(SubmissionWriter):
    """The instance submission, frame by frame: each frame's ``<frame>_pred.txt`` and its masks.
    The instances are those made in memory (own masks, overlaps kept) when the frame has them,
    else the segments of its instanceIds; the score is the instance's (a tar shard, a COCO
    results file and a frame made in memory keep it), 1 without one. The scores written are
    kept to tell, at the end, whether they are all equal (:meth:`ties`)."""

    format = "instance submission"
    KEEPS_SCORES = True

    def __init__(self, url, **options):
        self.scores: List[float] = []
        super().__init__(url, **options)

    def encode(self, frame: Frame) -> Encoded:
        where = frame.where or frame.id
        base = posixpath.basename(frame.id)
        lut = self.lut
        files: List[Tuple[str, bytes]] = []
        lines: List[str] = []
        scores: List[float] = []
        skipped = 0
        given = frame.original_instances()  # made in memory: own masks (overlaps kept) and scores
        for inst in (given if given is not None else frame.instances()):
            if inst.is_crowd:
                skipped += 1  # a region, not an instance: the instance task has no use for it
                continue
            official = int(lut[inst.label_id]) if 0 <= inst.label_id < lut.size else -1
            if official < 0:
                raise CityscapesIOError(where, f"instance value {inst.value}: label id {inst.label_id} has no "
                                               f"official label id")
            if not HAS_INSTANCES.get(official, False):
                skipped += 1
                continue
            score = 1.0 if inst.score is None else float(inst.score)
            if not math.isfinite(score):
                raise CityscapesIOError(where, f"instance value {inst.value}: score {score} is not a finite number")
            rel = f"{base}_pred/{len(lines)}.png"
            files.append((f"{posixpath.dirname(frame.id)}/{rel}".lstrip("/"),
                          png.encode_label_png(inst.mask.astype(np.uint8) * np.uint8(255))))
            lines.append(f"{rel} {official} {score!r}\n")  # repr: no new ties
            scores.append(score)
        files.append((f"{frame.id}_pred.txt", "".join(lines).encode()))
        return self.submission(frame, files, (skipped, tuple(scores)))

    def touch(self, frame: Frame) -> None:
        if frame.original_instances() is None:
            frame.instances()

    def record(self, entry: Entry) -> None:
        super().record(entry)
        self.scores += entry.info[1]

    def ties(self, where: str) -> Optional[str]:
        """The warning for a submission whose scores are all equal (None when they are not)."""
        return equal_scores_warning(where, self.scores)


class PanopticSubmission(SubmissionWriter):
    """The panoptic submission, frame by frame: each frame's COCO panoptic PNG (by the rules of
    ``csCreatePanopticImgs``, :func:`cityscapes_io.panoptic.panoptic_frame`, categories the
    official label ids matched by name) in ``cityscapes_panoptic_<split>/<base>_panoptic.png``,
    and at the end one ``cityscapes_panoptic_<split>.json`` per split (``image_id`` the frame's
    base name, as the official files have it)."""

    format = "panoptic submission"

    def __init__(self, url, *, train_ids: bool = False, **options):
        from ..panoptic import panoptic_categories

        self.train_labels = LabelMap.cityscapes_train() if train_ids else None
        self.categories = panoptic_categories(LabelMap.cityscapes())
        self.known = {int(c["id"]) for c in self.categories}
        self.records: Dict[str, Tuple[List[dict], List[dict]]] = {}
        super().__init__(url, train_ids=train_ids, **options)

    def encode(self, frame: Frame) -> Encoded:
        from ..panoptic import PANOPTIC_SUFFIX, panoptic_frame

        where = frame.where or frame.id
        if self.train_labels is not None:  # the values are train ids, whatever the frame's labels say
            frame = frame.derived(self.train_labels, lambda values: np.arange(65536, dtype=np.uint16))
        made = panoptic_frame(frame)
        if made is None:
            raise CityscapesIOError(where, f"frame {frame.id} has no instance ids")
        pixels, image, annotation = made
        unknown = sorted({s["category_id"] for s in annotation["segments_info"]} - self.known)
        if unknown:
            names = sorted({frame.labels[c].name if c in frame.labels else str(c) for c in unknown})
            raise CityscapesIOError(where, f"labels with no official label id: {', '.join(names)}")
        split = frame.split or "default"
        file_name = f"{posixpath.basename(frame.id)}{PANOPTIC_SUFFIX}"
        return self.submission(frame, [(f"cityscapes_panoptic_{split}/{file_name}", png.encode_label_png(pixels))],
                               (0, image, dict(annotation, file_name=file_name)))

    def touch(self, frame: Frame) -> None:
        frame.instance_ids()

    def record(self, entry: Entry) -> None:
        super().record(entry)
        images, annotations = self.records.setdefault(entry.split, ([], []))
        images.append(entry.info[1])
        annotations.append(entry.info[2])

    def index_files(self) -> Files:
        return [(f"cityscapes_panoptic_{split}.json",
                 json.dumps({"images": images, "annotations": annotations, "categories": self.categories},
                            indent=1).encode())
                for split, (images, annotations) in sorted(self.records.items())]


#: Task name -> the writer of its submission layout (what :func:`export_predictions` writes).
SUBMISSIONS: Dict[str, Type[SubmissionWriter]] = {
    "semantic": SemanticSubmission, "instance": InstanceSubmission, "panoptic": PanopticSubmission}


def export_predictions(src, out, task: str = "semantic", *, train_ids: bool = False, split: Optional[str] = None,
                       storage_options=None, out_storage_options=None, overwrite: bool = False,
                       progress: Optional[Callable[[int], None]] = None) -> Dict[str, int]:
    """Write predictions held as a dataset into the official submission layout, with label ids.

    Parameters
    ----------
    src : str, path or Dataset
        The predictions as a dataset this library reads (e.g. one written by ``writer(...)`` from a
        model's outputs), or a Dataset made in Python. Its labels are matched to the official
        ones by name, so a train-id dataset is mapped as it is.
    out : str or path
        Folder, ``.zip`` or URL written: ``semantic``, ``<city>/<frame>_pred.png`` holding label
        ids; ``instance``, ``<city>/<frame>_pred.txt`` with one line ``<mask> <label id> <score>``
        per instance and the masks (0/255 PNGs) in ``<city>/<frame>_pred/``. The score is the
        instance's ``score`` when it has one (formats that keep it: a frame made in memory, tar
        shards, COCO results' ``score``), else 1; when every instance written has the same score
        a warning says that AP will be computed on ties. ``panoptic``, per split
        ``cityscapes_panoptic_<split>.json`` (COCO panoptic, ``image_id`` the frame's base name,
        categories the official label ids) and its PNGs in ``cityscapes_panoptic_<split>/``, made
        from the frames' instance ids by the rules of ``csCreatePanopticImgs`` (labels ignored in
        evaluation are VOID); :func:`evaluate` takes the JSON's path.
    task : str
        ``"semantic"``, ``"instance"`` or ``"panoptic"``.
    train_ids : bool
        The values are train ids (0..18) whatever the dataset's label map says.
    split : str, optional
        Only this split.
    overwrite : bool
        Replace what ``out`` holds (otherwise a non-empty ``out`` is refused).

    Returns
    -------
    dict
        ``{"frames": n, "skipped_regions": k}`` (instance task: crowd and stuff regions, which are
        not instance predictions, are left out).

    Raises
    ------
    CityscapesIOError
        Listing every frame that could not be written (no label ids, a value with no official
        label id such as 255, a score that is not a finite number): a submission must predict
        every pixel. The other frames are written.
    """
    from ..dataset import Dataset

    if task not in TASKS or task not in SUBMISSIONS:  # (a task registered without a submission layout)
        raise ValueError(f"export_predictions: task must be one of "
                         f"{', '.join(t for t in TASKS if t in SUBMISSIONS)}, got {task!r}")
    ds = src if isinstance(src, Dataset) else open_dataset(src, storage_options=storage_options)
    if split is not None:
        ds = ds.filter(split=split)
    cls = SUBMISSIONS[task]
    # The source's roots: a destination equal to, inside or holding one is refused (nothing deleted).
    w = cls(out, storage_options=out_storage_options, labels=ds.labels, train_ids=train_ids,
            existing="replace" if overwrite else "refuse", sources=ds.reader.roots)
    report = Report(str(out), cls.format)
    try:  # every frame's error is gathered (the other frames are written); the destination's stops it
        run_writer(w, items_for(ds, w), report, format=cls, url=out, storage_options=out_storage_options,
                   options={"train_ids": train_ids}, on_error="skip", progress=progress)
    except _NotWritten as exc:
        raise exc.error from exc.error.__cause__
    ties = w.ties(", ".join(ds.roots) or str(out)) if isinstance(w, InstanceSubmission) else None
    if ties is not None:
        warnings.warn(ties, stacklevel=2)
    if report.skipped:  # each names its frame's file; the error, the source's roots (not a Dataset's repr)
        raise CityscapesIOError(", ".join(ds.roots) or None, f"{len(report.skipped)} frame(s) not exported:\n" +
                                "\n".join(f"  {reason}" for _, _, reason in report.skipped))
    return {"frames": report.written, "skipped_regions": w.skipped_regions}
