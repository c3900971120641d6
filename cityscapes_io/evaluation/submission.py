"""Predictions held as a dataset, written in the official submission layout of a task
(:func:`export_predictions`): label-id PNGs (semantic), txt files and masks (instance), a COCO
panoptic JSON and its PNGs (panoptic), which :func:`~cityscapes_io.evaluate` and the official
scripts read.
"""
from __future__ import annotations

import json
import math
import posixpath
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .. import png
from ..dataset import open as open_dataset
from ..errors import CityscapesIOError
from .base import TASKS
from .common import HAS_INSTANCES, TRAIN_TO_ID, few, official_lut
from .instance import equal_scores_warning

__all__ = ["export_predictions"]


# -- from a dataset to the official submission layout ----------------------------------------------
def _semantic_files(frame, lut: np.ndarray) -> Tuple[List[Tuple[str, bytes]], List[str], int]:
    where = frame.where or frame.id
    arr = frame.label_ids()
    if arr is None:
        return [], [f"{where}: frame {frame.id} has no label ids"], 0
    mapped = lut[np.minimum(arr, lut.size - 1)]
    if arr.size and int(mapped.min()) < 0:
        bad = np.unique(arr[mapped < 0])
        return [], [f"{where}: values with no official label id (every pixel must be predicted): {few(bad)}"], 0
    return [(f"{frame.id}_pred.png", png.encode_label_png(mapped.astype(np.uint8)))], [], 0


#: The tasks whose submission layout :func:`export_predictions` writes.
_LAYOUTS = ("semantic", "instance", "panoptic")


class _InstanceFiles:
    """The instance submission, frame by frame: each frame's ``<frame>_pred.txt`` and its masks.
    The instances are those made in memory (own masks, overlaps kept) when the frame has them,
    else the segments of its instanceIds; the score is the instance's (a tar shard, a COCO
    results file and a frame made in memory keep it), 1 without one. The scores written are
    kept to tell, at the end, whether they are all equal (:meth:`ties`)."""

    def __init__(self) -> None:
        self.scores: List[float] = []

    def __call__(self, frame, lut: np.ndarray) -> Tuple[List[Tuple[str, bytes]], List[str], int]:
        where = frame.where or frame.id
        base = posixpath.basename(frame.id)
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
                return [], [f"{where}: instance value {inst.value}: label id {inst.label_id} has no official "
                            f"label id"], 0
            if not HAS_INSTANCES.get(official, False):
                skipped += 1
                continue
            score = 1.0 if inst.score is None else float(inst.score)
            if not math.isfinite(score):
                return [], [f"{where}: instance value {inst.value}: score {score} is not a finite number"], 0
            rel = f"{base}_pred/{len(lines)}.png"
            files.append((f"{posixpath.dirname(frame.id)}/{rel}".lstrip("/"),
                          png.encode_label_png(inst.mask.astype(np.uint8) * np.uint8(255))))
            lines.append(f"{rel} {official} {score!r}\n")  # repr: no new ties
            scores.append(score)
        files.append((f"{frame.id}_pred.txt", "".join(lines).encode()))
        self.scores += scores
        return files, [], skipped

    def ties(self, where: str) -> Optional[str]:
        """The warning for a submission whose scores are all equal (None when they are not)."""
        return equal_scores_warning(where, self.scores)


class _PanopticFiles:
    """The panoptic submission, frame by frame: each frame's COCO panoptic PNG (by the rules of
    ``csCreatePanopticImgs``, :func:`cityscapes_io.panoptic.panoptic_frame`, categories the
    official label ids matched by name) in ``cityscapes_panoptic_<split>/<base>_panoptic.png``,
    and at the end one ``cityscapes_panoptic_<split>.json`` per split (``image_id`` the frame's
    base name, as the official files have it)."""

    def __init__(self, train_ids: bool):
        from ..labels import LabelMap
        from ..panoptic import panoptic_categories

        self.train_labels = LabelMap.cityscapes_train() if train_ids else None
        self.categories = panoptic_categories(LabelMap.cityscapes())
        self.known = {int(c["id"]) for c in self.categories}
        self.records: Dict[str, Tuple[List[dict], List[dict]]] = {}

    def __call__(self, frame, lut: np.ndarray) -> Tuple[List[Tuple[str, bytes]], List[str], int]:
        from ..panoptic import PANOPTIC_SUFFIX, panoptic_frame

        where = frame.where or frame.id
        if self.train_labels is not None:  # the values are train ids, whatever the frame's labels say
            frame = frame.derived(self.train_labels, lambda values: np.arange(65536, dtype=np.uint16))
        made = panoptic_frame(frame)
        if made is None:
            return [], [f"{where}: frame {frame.id} has no instance ids"], 0
        pixels, image, annotation = made
        unknown = sorted({s["category_id"] for s in annotation["segments_info"]} - self.known)
        if unknown:
            names = sorted({frame.labels[c].name if c in frame.labels else str(c) for c in unknown})
            return [], [f"{where}: labels with no official label id: {', '.join(names)}"], 0
        split = frame.split or "default"
        base = posixpath.basename(frame.id)
        file_name = f"{base}{PANOPTIC_SUFFIX}"
        images, annotations = self.records.setdefault(split, ([], []))
        images.append(image)
        annotations.append(dict(annotation, file_name=file_name))
        return [(f"cityscapes_panoptic_{split}/{file_name}", png.encode_label_png(pixels))], [], 0

    def index_files(self) -> List[Tuple[str, bytes]]:
        return [(f"cityscapes_panoptic_{split}.json",
                 json.dumps({"images": images, "annotations": annotations, "categories": self.categories},
                            indent=1).encode())
                for split, (images, annotations) in sorted(self.records.items())]


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
    from ..storage.sinks import open_sink

    if task not in TASKS or task not in _LAYOUTS:  # (a task registered without a submission layout)
        raise ValueError(f"export_predictions: task must be one of {', '.join(t for t in TASKS if t in _LAYOUTS)}, "
                         f"got {task!r}")
    ds = src if isinstance(src, Dataset) else open_dataset(src, storage_options=storage_options)
    if split is not None:
        ds = ds.filter(split=split)
    # Train ids whatever the label map says, or the dataset's labels to official ids by name.
    lut = TRAIN_TO_ID if train_ids else official_lut(ds.labels)
    panoptic = _PanopticFiles(train_ids) if task == "panoptic" else None
    instance = _InstanceFiles() if task == "instance" else None
    make: Callable[[Any, np.ndarray], Tuple[List[Tuple[str, bytes]], List[str], int]] = (
        panoptic if panoptic is not None else instance if instance is not None else _semantic_files)
    # The source's roots: a destination equal to, inside or holding one is refused (nothing deleted).
    sink = open_sink(out, out_storage_options, existing="replace" if overwrite else "refuse",
                     sources=ds.reader.roots)
    problems: List[str] = []
    done = skipped = 0
    try:
        for frame in ds:
            try:
                files, bad, k = make(frame, lut)
            except CityscapesIOError as exc:
                files, bad, k = [], [str(exc)], 0
            finally:
                frame.release()
            problems += bad
            skipped += k
            if files:
                sink.put_frame(files)
            done += 1
            if progress is not None:
                progress(done)
        if panoptic is not None:
            for rel, data in panoptic.index_files():
                sink.put(rel, data)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    ties = instance.ties(", ".join(ds.roots) or str(out)) if instance is not None else None
    if ties is not None:
        warnings.warn(ties, stacklevel=2)
    if problems:  # each problem names its frame's file; the error, the source's roots (not a Dataset's repr)
        raise CityscapesIOError(", ".join(ds.roots) or None, f"{len(problems)} frame(s) not exported:\n" +
                                "\n".join(f"  {p}" for p in problems))
    return {"frames": done - len(problems), "skipped_regions": skipped}
