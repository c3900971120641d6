"""Evaluators with detectron2's ``DatasetEvaluator`` protocol (``reset()``, ``process(inputs,
outputs)``, ``evaluate()``) that import nothing of detectron2: :class:`CityscapesSemSegEvaluator`,
:class:`CityscapesInstanceEvaluator`, :class:`CityscapesPanopticEvaluator`.

detectron2's own Cityscapes evaluators write every prediction as a PNG into a temporary folder
shared by the ranks and run the official script on rank 0 (so they do not work across
machines). These count each frame as it comes (:mod:`cityscapes_io.metrics`), sync the counts
across ``torch.distributed`` ranks in ``evaluate()`` (no files) and give the official numbers
on every rank. They drop into ``detectron2.evaluation.inference_on_dataset`` as they are.

The ground truth is the frame of ``dataset`` (a :class:`~cityscapes_io.Dataset` of the split
evaluated, e.g. ``cityscapes_io.open(root, split="val")``) whose id is in the input's
``file_name`` (``.../frankfurt_000000_000294_leftImg8bit.png``), else in its ``image_id``.
The index from base name to frame is made on first use (file references, no pixels).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from ..dataset import Dataset
from ..evaluation.common import ID_OF
from ..evaluation.instance import INSTANCE_LABELS
from ..frame import Frame
from .core import InstanceMetric, Metric, PanopticMetric, SemanticMetric
from .inputs import FramesByName, as_array

__all__ = ["CityscapesSemSegEvaluator", "CityscapesInstanceEvaluator", "CityscapesPanopticEvaluator"]



def _field(obj: Any, name: str) -> Any:
    """A field of a detectron2 ``Instances`` (attribute) or of a mapping."""
    if isinstance(obj, Mapping):
        return obj[name]
    return getattr(obj, name)


class _Evaluator:
    """What the three evaluators share: the frame of each input, the metric, ``evaluate``."""

    def __init__(self, dataset: Dataset, metric: Metric, group: Any = None):
        if not isinstance(dataset, Dataset):
            raise TypeError(f"dataset: a cityscapes_io Dataset of the ground truth, got {type(dataset).__name__}")
        self.dataset = dataset
        self.metric = metric
        self.group = group
        #: The result object of the last :meth:`evaluate` (``print`` gives the official tables).
        self.result: Any = None
        self._frames = FramesByName(self.dataset)

    def reset(self) -> None:
        """Forget every frame (detectron2 calls it before inference)."""
        self.metric.reset()
        self.result = None

    def frame(self, inp: Mapping[str, Any]) -> Frame:
        """The ground-truth frame of a detectron2 input dict."""
        names = [str(inp[k]) for k in ("file_name", "image_id") if inp.get(k) is not None]
        frame = self._frames.find(names)
        if frame is not None:
            return frame
        raise ValueError(f"no frame of the dataset for the input {names or sorted(inp)} (file_name or image_id "
                         f"holding <city>_<seq>_<frame>)")

    def process(self, inputs: Sequence[Mapping[str, Any]], outputs: Sequence[Mapping[str, Any]]) -> None:
        """Count a batch: detectron2's input dicts and the model's output dicts."""
        if len(inputs) != len(outputs):
            raise ValueError(f"{len(inputs)} inputs and {len(outputs)} outputs")
        for inp, out in zip(inputs, outputs):
            self.metric.update(self._prediction(out), self.frame(inp))

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Sync across ranks (when ``torch.distributed`` is initialised), compute, and return
        detectron2's dict of results (percentages), on every rank. :attr:`result` keeps the
        whole result object."""
        self.metric.sync(self.group)
        self.result = self.metric.compute()
        return self._summary(self.result)

    def _prediction(self, output: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _summary(self, result: Any) -> Dict[str, Dict[str, float]]:
        raise NotImplementedError


class CityscapesSemSegEvaluator(_Evaluator):
    """Semantic segmentation: ``outputs[k]["sem_seg"]``, the ``C×H×W`` scores at the input's
    size, whose argmax is a train id (``ids="train"``, detectron2's Cityscapes models) or a
    label id (``ids="label"``). ``evaluate()`` returns ``{"sem_seg": {"IoU", "iIoU", "IoU_sup",
    "iIoU_sup"}}`` as detectron2's evaluator does."""

    def __init__(self, dataset: Dataset, *, ids: str = "train", group: Any = None):
        super().__init__(dataset, SemanticMetric(ids=ids), group)

    def _prediction(self, output: Mapping[str, Any]) -> Any:
        scores = output["sem_seg"]
        if hasattr(scores, "argmax") and type(scores).__module__.split(".")[0] == "torch":
            return scores.argmax(dim=0)
        return np.asarray(scores).argmax(axis=0)

    def _summary(self, result: Any) -> Dict[str, Dict[str, float]]:
        return {"sem_seg": {"IoU": 100.0 * result.average_classes, "iIoU": 100.0 * result.average_inst_classes,
                            "IoU_sup": 100.0 * result.average_categories,
                            "iIoU_sup": 100.0 * result.average_inst_categories}}


class CityscapesInstanceEvaluator(_Evaluator):
    """Instance segmentation: ``outputs[k]["instances"]`` with ``pred_masks`` (N×H×W at the
    input's size), ``pred_classes`` (indices into ``classes``) and ``scores``; a detectron2
    ``Instances`` or a mapping. ``classes``: the model's class names, default detectron2's
    Cityscapes ``thing_classes`` (person, rider, car, truck, bus, train, motorcycle, bicycle).
    ``evaluate()`` returns ``{"segm": {"AP", "AP50"}}``."""

    def __init__(self, dataset: Dataset, *, classes: Iterable[str] = INSTANCE_LABELS, mask_threshold: float = 0.5,
                 group: Any = None):
        super().__init__(dataset, InstanceMetric(mask_threshold=mask_threshold), group)
        names = list(classes)
        unknown = [n for n in names if n not in ID_OF]
        if unknown:
            raise ValueError(f"classes the official table does not know: {unknown}")
        self._label_ids = np.array([ID_OF[n] for n in names], np.int64)

    def _prediction(self, output: Mapping[str, Any]) -> Any:
        instances = output["instances"]
        classes: np.ndarray = as_array(_field(instances, "pred_classes"), "pred_classes").astype(np.int64).reshape(-1)
        if classes.size and (int(classes.min()) < 0 or int(classes.max()) >= self._label_ids.size):
            raise ValueError(f"pred_classes outside 0..{self._label_ids.size - 1} (the classes given)")
        return {"masks": _field(instances, "pred_masks"), "labels": self._label_ids[classes],
                "scores": _field(instances, "scores")}

    def _summary(self, result: Any) -> Dict[str, Dict[str, float]]:
        return {"segm": {"AP": 100.0 * result.ap, "AP50": 100.0 * result.ap50}}


class CityscapesPanopticEvaluator(_Evaluator):
    """Panoptic segmentation: ``outputs[k]["panoptic_seg"]``, ``(ids, segments_info)``: the
    H×W segment ids (0 VOID) and per segment its ``id`` and ``category_id`` (a train id with
    ``ids="train"``, what detectron2's Cityscapes metadata maps thing and stuff classes to; a
    label id with ``ids="label"``); or, with ``segments_info`` None (Panoptic-DeepLab),
    ``category * label_divisor + instance`` per pixel and -1 for VOID. ``evaluate()`` returns
    ``{"panoptic_seg": {"PQ", "SQ", "RQ", "PQ_th", "SQ_th", "RQ_th", "PQ_st", "SQ_st", "RQ_st"}}``."""

    def __init__(self, dataset: Dataset, *, ids: str = "train", label_divisor: int = 1000, group: Any = None):
        super().__init__(dataset, PanopticMetric(ids=ids), group)
        self.label_divisor = int(label_divisor)

    def _prediction(self, output: Mapping[str, Any]) -> Any:
        pixels, segments = output["panoptic_seg"]
        ids: np.ndarray = as_array(pixels, "panoptic_seg").astype(np.int64)
        if segments is not None:
            return {"ids": ids, "segments": list(segments)}
        values = np.unique(ids)
        made: List[Dict[str, int]] = [{"id": int(v) + 1, "category_id": int(v) // self.label_divisor}
                                      for v in values.tolist() if v != -1]
        return {"ids": ids + 1, "segments": made}

    def _summary(self, result: Any) -> Dict[str, Dict[str, float]]:
        out: Dict[str, float] = {}
        for suffix, scores in (("", result.all), ("_th", result.things), ("_st", result.stuff)):
            for key in ("pq", "sq", "rq"):
                out[key.upper() + suffix] = 100.0 * scores[key]
        return {"panoptic_seg": out}
