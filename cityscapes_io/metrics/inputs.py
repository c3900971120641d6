"""What the metrics take, made into what the evaluation tasks read: tensors and arrays as numpy
arrays, a target as a :class:`~cityscapes_io.Frame` (given, or made from an ``instanceIds``
array and a frame id), and each task's prediction as its in-memory record
(:class:`~cityscapes_io.evaluation.instance.MaskPredictions`,
:class:`~cityscapes_io.evaluation.panoptic.SegmentPredictions`), label ids mapped from train
ids by the official table when asked.

Nothing here imports torch: a tensor is recognised by its type's module and moved to the CPU
through its own methods.
"""
from __future__ import annotations

import posixpath
import re
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..evaluation.common import TRAIN_TO_ID
from ..evaluation.instance import MaskPredictions
from ..evaluation.panoptic import SegmentPredictions
from ..frame import Frame
from ..labels import LabelMap
from ..names import parse_frame_id
from ..sources import Source

__all__ = ["FramesByName", "IDS", "as_array", "target_frame", "frame_key", "label_ids_of", "mask_predictions",
           "segment_predictions", "HeldIds"]

#: The values of the metrics' ``ids`` option.
IDS = ("label", "train")

_CITYSCAPES = LabelMap.cityscapes()


def as_array(value: Any, what: str) -> np.ndarray:
    """``value`` as a numpy array: a torch tensor is detached and moved to the CPU (a
    floating-point one of a type numpy lacks, such as bfloat16, as float32 first); anything
    else goes through ``np.asarray``."""
    if type(value).__module__.split(".")[0] == "torch" and hasattr(value, "detach"):
        tensor = value.detach()
        if tensor.is_floating_point() and str(tensor.dtype) not in ("torch.float32", "torch.float64",
                                                                     "torch.float16"):
            tensor = tensor.float()
        return np.asarray(tensor.cpu().numpy())
    try:
        return np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - whatever np.asarray refuses
        raise TypeError(f"{what}: not an array or tensor ({type(value).__name__})") from exc


class HeldIds(Source):
    """The source of a ground truth given as an ``instanceIds`` array (``label * 1000 + n`` for
    instances, the label id elsewhere; a label-id map is one without instances)."""

    def __init__(self, ids: np.ndarray):
        self._ids = ids

    def has_annotations(self) -> bool:
        return True

    def instance_ids(self) -> Optional[np.ndarray]:
        return self._ids

    def size(self) -> Optional[Tuple[int, int]]:
        return int(self._ids.shape[0]), int(self._ids.shape[1])


def _ground_truth_array(value: Any, frame_id: str) -> np.ndarray:
    arr = as_array(value, f"ground truth of {frame_id}")
    if arr.ndim != 2:
        raise ValueError(f"ground truth of {frame_id}: an array of shape {arr.shape}, not H×W")
    if arr.dtype.kind not in "ui":
        raise ValueError(f"ground truth of {frame_id}: values of type {arr.dtype}, not integer label or instance ids")
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        return arr
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) > 65535):
        raise ValueError(f"ground truth of {frame_id}: values outside 0..65535 (instanceIds are 16-bit)")
    return arr.astype(np.uint16)


def target_frame(target: Any, id: Optional[str] = None, split: Optional[str] = None) -> Frame:
    """The ground-truth frame of a metric's ``target``.

    A :class:`~cityscapes_io.Frame` is used as it is (its split and id order it); ``id`` and
    ``split`` must not be given with it. Otherwise the target is an ``H×W`` array or tensor of
    ``instanceIds`` values (a label-id map is a ground truth without instances), with the
    frame's id given as ``id=`` or as a pair ``(id, array)``, or a mapping with ``"id"``,
    ``"instance_ids"`` and optionally ``"split"`` (a sample of :mod:`cityscapes_io.torch`);
    ``split`` defaults to ``"val"``."""
    if isinstance(target, Frame):
        if id is not None or split is not None:
            raise TypeError("id= and split= are for array targets; a Frame has its own")
        if target.labels.is_train_ids:
            raise ValueError(f"{target.where}: the ground truth holds train ids; give the frame of the official "
                             f"dataset (label ids), not of to_train_ids()")
        return target
    if isinstance(target, Mapping):
        if "id" not in target or "instance_ids" not in target:
            raise TypeError("a mapping target needs 'id' and 'instance_ids' (a sample of cityscapes_io.torch "
                            "with the instance_ids target)")
        if id is not None:
            raise TypeError("id= given with a mapping that has its own 'id'")
        id, value = target["id"], target["instance_ids"]
        split = target.get("split", split)
    elif isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str):
        if id is not None:
            raise TypeError("id= given with an (id, array) pair")
        id, value = target
    else:
        value = target
    if id is None:
        raise TypeError("an array target needs its frame's id (for the order of the frames): "
                        "update(prediction, array, id='aachen/aachen_000000_000019') or (id, array)")
    if not isinstance(id, str):
        raise TypeError(f"a frame id is a string, got {type(id).__name__}")
    return Frame(id, split if split is not None else "val", _CITYSCAPES, HeldIds(_ground_truth_array(value, id)))


def frame_key(frame: Frame) -> Tuple[str, str]:
    """The frame's key in a metric: its split and, for a Cityscapes name, its base name
    (``aachen_000000_000019`` for ``aachen/aachen_000000_000019``: what evaluation matches
    predictions by), else its whole id."""
    base = posixpath.basename(frame.id)
    return frame.split, base if parse_frame_id(base).seq is not None else frame.id


def label_ids_of(values: np.ndarray, ids: str, what: str) -> np.ndarray:
    """Label ids of ``values`` (integers): as given with ``ids="label"``, mapped from train ids
    (0..18) by the official table with ``ids="train"``; ValueError for a value that is not a
    train id."""
    values = np.asarray(values)
    if values.size and values.dtype.kind not in "ui":
        raise ValueError(f"{what}: values of type {values.dtype}, not integer ids")
    values = values.astype(np.int64)
    if ids == "label":
        return values
    bad = values[(values < 0) | (values >= 19)]
    if bad.size:
        raise ValueError(f"{what}: {sorted(set(bad.tolist()))[:10]} not train ids (0..18)")
    mapped: np.ndarray = TRAIN_TO_ID[values]
    return mapped


def mask_predictions(prediction: Any, ids: str, threshold: float, where: str) -> MaskPredictions:
    """Instance predictions as the instance task reads them in memory.

    ``prediction``: a mapping with ``masks`` (``N×H×W`` or ``N×1×H×W``: bool; floating-point
    probabilities, a pixel in the mask when above ``threshold``; other integers, non-zero
    pixels), ``labels`` (label ids, or train ids with ``ids="train"``) and ``scores``:
    torchvision's detection output as it is. Or :class:`MaskPredictions` (official label ids)."""
    if isinstance(prediction, MaskPredictions):
        return prediction
    if not isinstance(prediction, Mapping) or not {"masks", "labels", "scores"} <= set(prediction):
        raise TypeError(f"{where}: instance predictions are a mapping with 'masks', 'labels' and 'scores' "
                        f"(torchvision's detection output)")
    raw = prediction["masks"]
    if type(raw).__module__.split(".")[0] == "torch" and hasattr(raw, "is_floating_point") \
            and raw.is_floating_point():
        raw = raw > threshold  # on the tensor's device: one byte per pixel crosses
    masks = as_array(raw, where)
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise ValueError(f"{where}: masks of shape {masks.shape}, not N×H×W or N×1×H×W")
    if masks.dtype.kind == "f":
        masks = masks > threshold
    elif masks.dtype != np.bool_:
        masks = masks != 0
    labels = label_ids_of(as_array(prediction["labels"], where).reshape(-1), ids, f"{where}: labels")
    scores: np.ndarray = as_array(prediction["scores"], where).reshape(-1).astype(np.float64)
    return MaskPredictions(masks, labels, scores, where)


def _segments(prediction: Mapping[str, Any], where: str) -> Sequence[Any]:
    for key in ("segments", "segments_info"):
        if key in prediction:
            return list(prediction[key])
    raise TypeError(f"{where}: a panoptic prediction needs 'segments' (or COCO's 'segments_info')")


def segment_predictions(prediction: Any, ids: str, where: str) -> SegmentPredictions:
    """A panoptic prediction as the panoptic task reads it in memory.

    ``prediction``: a mapping with ``ids``, the ``H×W`` segment id of every pixel (0: VOID
    unless listed), and ``segments`` (or COCO's ``segments_info``), one mapping per segment
    with its ``id`` and ``category_id`` (other keys are ignored): category ids as the panoptic
    ground truth has them, the official label ids (``car`` 26), or train ids with
    ``ids="train"``. Or :class:`SegmentPredictions` (label ids)."""
    if isinstance(prediction, SegmentPredictions):
        return prediction
    if not isinstance(prediction, Mapping) or "ids" not in prediction:
        raise TypeError(f"{where}: a panoptic prediction is a mapping with 'ids' (H×W segment ids) and 'segments'")
    pixels = as_array(prediction["ids"], where)
    seg_ids, cats = [], []
    for k, seg in enumerate(_segments(prediction, where)):
        try:
            seg_ids.append(int(seg["id"]))
            cats.append(int(seg["category_id"]))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: segment {k} without integer 'id' and 'category_id': {str(seg)[:80]}") from None
    categories = label_ids_of(np.array(cats, np.int64), ids, f"{where}: category ids")
    return SegmentPredictions(pixels, tuple(seg_ids), tuple(int(c) for c in categories), where)


#: ``<city>_<seq>_<frame>`` at the start of a file's base name.
_FRAME_IN_NAME = re.compile(r"^(.+?_\d{6}_\d{6})(?!\d)")


class FramesByName:
    """A dataset's frames by base name (``frankfurt_000000_000294``), indexed on first use, for
    the adapters that are given file names (detectron2's ``file_name``, mmengine's
    ``img_path``) rather than frames."""

    def __init__(self, dataset: Iterable[Frame]):
        self.dataset = dataset
        self._index: Optional[Dict[str, Frame]] = None

    def find(self, names: Sequence[str]) -> Optional[Frame]:
        """The frame whose ``<city>_<seq>_<frame>`` begins the base name of one of ``names`` (paths
        or ids, tried in order); None when none does.

        Raises
        ------
        ValueError
            Two frames of the dataset have one base name (several splits: give one).
        """
        if self._index is None:
            index: Dict[str, Frame] = {}
            for frame in self.dataset:
                base = posixpath.basename(frame.id)
                if base in index:
                    raise ValueError(f"{frame.where}: two frames named {base} in the dataset (give one split)")
                index[base] = frame
            self._index = index
        for name in names:
            found = _FRAME_IN_NAME.match(posixpath.basename(name.replace("\\", "/")))
            if found and found.group(1) in self._index:
                return self._index[found.group(1)]
        return None
