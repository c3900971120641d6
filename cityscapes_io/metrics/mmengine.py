"""The metrics as mmengine ``BaseMetric`` subclasses (the optional extra ``mmengine``, which
installs ``mmengine-lite``: mmengine without OpenCV): :class:`CityscapesSemanticMetric`,
:class:`CityscapesInstanceMetric`, :class:`CityscapesPanopticMetric`.

>>> from mmengine.evaluator import Evaluator
>>> from cityscapes_io.metrics.mmengine import CityscapesSemanticMetric
>>> evaluator = Evaluator([CityscapesSemanticMetric(cityscapes_io.open(root, split="val"))])  # doctest: +SKIP
>>> for data_batch in loader:                                                                 # doctest: +SKIP
...     evaluator.process(model.test_step(data_batch), data_batch)
>>> evaluator.evaluate(len(loader.dataset))     # doctest: +SKIP
{'cityscapes/mIoU': 78.1, 'cityscapes/iIoU': 57.3, ...}

mmsegmentation's and mmdetection's own Cityscapes metrics write every prediction as a file and
run the official scripts on them; these count each frame as it comes (:mod:`cityscapes_io.metrics`)
and keep, in ``self.results``, one frame's statistics as bytes per data sample
(:meth:`~cityscapes_io.metrics.Metric.to_bytes`, a few hundred bytes; no pixels).
``compute_metrics`` merges them and returns the numbers :func:`cityscapes_io.evaluate` gives
for the same frames, and logs the official tables (:attr:`result` keeps the result object).

**The ground truth** is the frame of ``dataset`` (a :class:`~cityscapes_io.Dataset` of the split
evaluated, or a root or URL opened with ``split``, default ``"val"``, and ``storage_options``)
whose id ``<city>_<seq>_<frame>`` begins the file name of the sample's ``img_path``, else of
its ``seg_map_path``, else its ``img_id``. The index from name to frame is made on first use
(file references, no pixels).

**The data samples**, as mmengine's ``Evaluator.process`` hands them on (dicts made by
``to_dict()``; data elements given directly work too):

- semantic (mmsegmentation): ``pred_sem_seg.data``, the ``1×H×W`` class of every pixel at the
  frame's size; train ids by default, as mmsegmentation's Cityscapes models predict
  (``CityscapesDataset`` reads ``_gtFine_labelTrainIds.png``), or label ids with
  ``ids="label"``;
- instance (mmdetection): ``pred_instances`` with ``masks`` (``N×H×W``), ``labels`` (indices
  into the dataset's classes) and ``scores``, or ``mask_scores`` when present (as
  mmdetection's ``CityScapesMetric`` prefers them);
- panoptic (mmdetection): ``pred_panoptic_seg.sem_seg``, ``1×H×W``, each pixel
  ``label + instance * INSTANCE_OFFSET`` (mmdetection's ``INSTANCE_OFFSET`` is 1000, the label
  is the remainder: ``mmdet/evaluation/functional/panoptic_utils.py`` and the fusion heads),
  one segment per value; VOID where the label equals the number of classes or the element's
  ``ignore_index``, as mmdetection's ``CocoPanopticMetric`` reads them.

Class indices name classes by the ``classes`` argument, else by ``dataset_meta["classes"]``
(the runner sets it from the dataset), else by the defaults: mmdetection's
``CityscapesDataset`` classes (person, rider, car, truck, bus, train, motorcycle, bicycle) for
instances; those 8 things followed by the 11 stuff classes in train-id order (road ... sky) for
panoptic (mmdetection's fusion heads number things first). Names are official label names.

**Results** (with the prefix ``cityscapes/``, mmdetection's ``CityScapesMetric``'s; unrounded):

==========  ==============================================================================
semantic    ``mIoU``, ``iIoU``, ``mIoU_categories``, ``iIoU_categories``: percentages, as
            mmsegmentation's ``IoUMetric`` reports ``mIoU`` (the official averages over
            classes and categories)
instance    ``mAP``, ``AP@50``: fractions, as mmdetection's ``CityScapesMetric`` reports
            them (the official ``allAp``, ``allAp50%``); with distance data also
            ``mAP_100m``, ``mAP_50m``, ``AP@50_50m``
panoptic    ``PQ``, ``SQ``, ``RQ``, ``PQ_th``, ``SQ_th``, ``RQ_th``, ``PQ_st``, ``SQ_st``,
            ``RQ_st``: percentages, as mmdetection's ``CocoPanopticMetric`` reports them
==========  ==============================================================================

**Across ranks** ``BaseMetric.evaluate`` collects ``self.results`` itself. mmengine 0.10.7's
``collect_device="cpu"`` does it through files: rank 0 makes a temporary folder under
``./.dist_test`` (in the working directory), every rank pickles its results into it, and rank 0
reads them back, so across machines that folder must be on a shared filesystem.
``collect_device="gpu"`` uses ``all_gather_object`` over the process group instead: no files,
and no GPU either under the gloo backend (the objects travel as CPU tensors; under NCCL as CUDA
tensors). These metrics default to ``"gpu"`` for that reason (``"cpu"`` when ``collect_dir`` is
given). Both keep mmengine's contract: results are interleaved rank by rank and cut to
``size``, which drops the samples a sampler repeats to even out the ranks' shares (hence one
result per data sample, not per batch); a frame counted twice otherwise is refused.

**Registry**: importing this module registers the three classes in mmengine's root
``METRICS`` registry (no mmsegmentation or mmdetection import); mmsegmentation's and
mmdetection's registries are its children and find them, so a config can name them once it
imports this module: ``custom_imports = dict(imports=["cityscapes_io.metrics.mmengine"])`` and
``val_evaluator = dict(type="CityscapesSemanticMetric", dataset="data/cityscapes")``.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

try:
    from mmengine.evaluator import BaseMetric
    from mmengine.logging import print_log
    from mmengine.registry import METRICS
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("cityscapes_io.metrics.mmengine needs mmengine: pip install 'cityscapes_io[mmengine]' "
                      "(mmengine-lite, mmengine without OpenCV)") from exc

from ..dataset import Dataset
from ..dataset import open as open_dataset
from ..evaluation.common import ID_OF, NAME, TRAIN_TO_ID
from ..evaluation.instance import INSTANCE_LABELS
from ..frame import Frame
from .core import InstanceMetric, Metric, PanopticMetric, SemanticMetric
from .inputs import FramesByName, as_array

__all__ = ["CityscapesSemanticMetric", "CityscapesInstanceMetric", "CityscapesPanopticMetric", "INSTANCE_OFFSET",
           "PANOPTIC_CLASSES"]

#: mmdetection's panoptic encoding: ``label + instance * INSTANCE_OFFSET``.
INSTANCE_OFFSET = 1000
#: The default panoptic classes: the 8 things (mmdetection's order), then the stuff in train-id order.
PANOPTIC_CLASSES: Tuple[str, ...] = tuple(INSTANCE_LABELS) + tuple(
    NAME[int(TRAIN_TO_ID[t])] for t in range(19) if NAME[int(TRAIN_TO_ID[t])] not in INSTANCE_LABELS)

_MISSING = object()


def _field(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """A field of a data sample: a key of the dict ``to_dict()`` made, or an attribute of a data
    element."""
    if isinstance(obj, Mapping):
        if name in obj:
            return obj[name]
    elif hasattr(obj, name):
        return getattr(obj, name)
    if default is _MISSING:
        raise KeyError(f"a data sample without {name!r}")
    return default


def _label_ids(classes: Sequence[str], what: str) -> np.ndarray:
    """The official label id of each class name."""
    unknown = [str(n) for n in classes if n not in ID_OF]
    if unknown:
        raise ValueError(f"{what}: classes the official Cityscapes table does not know: {unknown}")
    return np.array([ID_OF[n] for n in classes], np.int64)


def _merged(core: Any, results: Sequence[bytes]) -> Metric:
    """The metric of all the states in ``results``, merged two by two (each merge copies the
    left one's records: pairs keep that n log n)."""
    metrics: List[Metric] = [core.from_bytes(bytes(blob)) for blob in results]
    if not metrics:
        metric: Metric = core()
        return metric
    while len(metrics) > 1:
        metrics = [metrics[k].merge(metrics[k + 1]) if k + 1 < len(metrics) else metrics[k]
                   for k in range(0, len(metrics), 2)]
    return metrics[0]


class _CityscapesMetric(BaseMetric):
    """What the three metrics share: the frame of each data sample, the bytes of one frame per
    sample in ``self.results``, their merge in ``compute_metrics``."""

    default_prefix: Optional[str] = "cityscapes"
    #: The metric of :mod:`cityscapes_io.metrics` that counts.
    core: Any = Metric

    def __init__(self, dataset: Any, options: Mapping[str, Any], *, split: Optional[str], storage_options:
                 Optional[dict], collect_device: Optional[str], prefix: Optional[str], collect_dir: Optional[str]):
        if collect_device is None:
            collect_device = "cpu" if collect_dir is not None else "gpu"
        super().__init__(collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        if isinstance(dataset, Dataset):
            if split is not None or storage_options is not None:
                raise TypeError("split= and storage_options= are for a root; the Dataset given has its own")
        elif isinstance(dataset, (str, os.PathLike)) or (isinstance(dataset, (list, tuple)) and dataset):
            dataset = open_dataset(dataset, split=split or "val", storage_options=storage_options)
        else:
            raise TypeError(f"dataset: a cityscapes_io Dataset of the ground truth or its root, got "
                            f"{type(dataset).__name__}")
        self.dataset: Dataset = dataset
        self._options = dict(options)
        self.core(**self._options)  # (refuses bad options now)
        #: The result object of the last ``compute_metrics`` (on the main process; ``print`` gives
        #: the official tables).
        self.result: Any = None
        self._frames = FramesByName(self.dataset)

    def frame(self, sample: Any) -> Frame:
        """The ground-truth frame of a data sample (by ``img_path``, ``seg_map_path``,
        ``img_id``)."""
        names = [str(v) for v in (_field(sample, k, None) for k in ("img_path", "seg_map_path", "img_id"))
                 if v is not None]
        frame = self._frames.find(names)
        if frame is not None:
            return frame
        raise ValueError(f"no frame of the dataset for the data sample of {names or 'no img_path'} (img_path, "
                         f"seg_map_path or img_id naming <city>_<seq>_<frame>)")

    def process(self, data_batch: Any, data_samples: Sequence[Any]) -> None:
        """Count the frames of a batch: one frame's state as bytes per data sample in
        ``self.results`` (``data_batch`` is not read)."""
        for sample in data_samples:
            frame = self.frame(sample)
            metric = self.core(**self._options)
            metric.update(self._prediction(sample), frame)
            self.results.append(metric.to_bytes())

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Merge the states of every frame (of every rank, once ``evaluate`` collected them),
        log the official tables and return the numbers (see the module's documentation)."""
        self.result = _merged(self.core, results).compute()
        print_log(f"{type(self).__name__}: {self.result}", logger="current")
        return self._summary(self.result)

    def _classes(self, default: Sequence[str], given: Optional[Sequence[str]]) -> Tuple[str, ...]:
        """The class names of the labels: given, else the dataset's, else the default."""
        if given is not None:
            return tuple(given)
        meta = self.dataset_meta
        if isinstance(meta, Mapping) and meta.get("classes"):
            return tuple(meta["classes"])
        return tuple(default)

    def _prediction(self, sample: Any) -> Any:
        raise NotImplementedError

    def _summary(self, result: Any) -> Dict[str, float]:
        raise NotImplementedError


def _one_map(value: Any, what: str) -> np.ndarray:
    """A ``1×H×W`` (or ``H×W``) map as an ``H×W`` array."""
    arr = as_array(value, what)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{what}: shape {arr.shape}, not 1×H×W")
    return arr


class CityscapesSemanticMetric(_CityscapesMetric):
    """Pixel-level semantic labeling of mmsegmentation's data samples
    (:class:`~cityscapes_io.metrics.SemanticMetric`): ``pred_sem_seg.data``, ``1×H×W`` train ids
    (``ids="train"``, mmsegmentation's Cityscapes models) or label ids (``ids="label"``).
    Results: ``mIoU``, ``iIoU``, ``mIoU_categories``, ``iIoU_categories`` (percentages).

    Parameters
    ----------
    dataset : Dataset, str or path
        The ground truth: a :class:`~cityscapes_io.Dataset`, or a root or URL (what a config
        can hold), opened with ``split`` (default ``"val"``) and ``storage_options``.
    ids : {"train", "label"}
        What the predicted values are.
    collect_device : {"gpu", "cpu"}, optional
        mmengine's collection across ranks; default ``"gpu"`` (``all_gather_object``, no files,
        no GPU needed under gloo), ``"cpu"`` when ``collect_dir`` is given (files in a folder
        the ranks share). See the module's documentation.
    prefix, collect_dir
        As mmengine's ``BaseMetric`` (default prefix ``"cityscapes"``).
    """

    core = SemanticMetric

    def __init__(self, dataset: Any, *, ids: str = "train", split: Optional[str] = None,
                 storage_options: Optional[dict] = None, collect_device: Optional[str] = None,
                 prefix: Optional[str] = None, collect_dir: Optional[str] = None):
        super().__init__(dataset, {"ids": ids}, split=split, storage_options=storage_options,
                         collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)

    def _prediction(self, sample: Any) -> Any:
        return _one_map(_field(_field(sample, "pred_sem_seg"), "data"), "pred_sem_seg.data")

    def _summary(self, result: Any) -> Dict[str, float]:
        return {"mIoU": 100.0 * result.average_classes, "iIoU": 100.0 * result.average_inst_classes,
                "mIoU_categories": 100.0 * result.average_categories,
                "iIoU_categories": 100.0 * result.average_inst_categories}


class CityscapesInstanceMetric(_CityscapesMetric):
    """Instance-level semantic labeling of mmdetection's data samples
    (:class:`~cityscapes_io.metrics.InstanceMetric`): ``pred_instances`` with ``masks``
    (``N×H×W`` at the frame's size), ``labels`` (indices into the classes) and ``scores`` (or
    ``mask_scores`` when present). Predictions of classes without instances in the official
    evaluation are skipped, as the official skips them. Results: ``mAP``, ``AP@50`` (fractions;
    with distance data ``mAP_100m``, ``mAP_50m``, ``AP@50_50m`` too).

    Parameters
    ----------
    dataset, split, storage_options, collect_device, prefix, collect_dir
        As :class:`CityscapesSemanticMetric`.
    classes : sequence of str, optional
        The official name of each label index; default ``dataset_meta["classes"]`` when the
        runner set it, else mmdetection's ``CityscapesDataset`` classes (person, rider, car,
        truck, bus, train, motorcycle, bicycle).
    mask_threshold : float
        For masks of probabilities (a pixel is in the mask above it); bool masks as they are.
    """

    core = InstanceMetric

    def __init__(self, dataset: Any, *, classes: Optional[Sequence[str]] = None, mask_threshold: float = 0.5,
                 split: Optional[str] = None, storage_options: Optional[dict] = None,
                 collect_device: Optional[str] = None, prefix: Optional[str] = None,
                 collect_dir: Optional[str] = None):
        super().__init__(dataset, {"mask_threshold": mask_threshold}, split=split, storage_options=storage_options,
                         collect_device=collect_device, prefix=prefix, collect_dir=collect_dir)
        self.classes = None if classes is None else tuple(classes)
        if self.classes is not None:
            _label_ids(self.classes, "classes")

    def _prediction(self, sample: Any) -> Any:
        pred = _field(sample, "pred_instances")
        label_ids = _label_ids(self._classes(INSTANCE_LABELS, self.classes), "pred_instances.labels")
        labels: np.ndarray = as_array(_field(pred, "labels"), "pred_instances.labels").reshape(-1)
        if labels.size and (labels.dtype.kind not in "ui" or int(labels.min()) < 0
                            or int(labels.max()) >= label_ids.size):
            raise ValueError(f"pred_instances.labels: values outside 0..{label_ids.size - 1} (indices of the "
                             f"{label_ids.size} classes)")
        scores = _field(pred, "mask_scores", None)
        return {"masks": _field(pred, "masks"), "labels": label_ids[labels.astype(np.int64)],
                "scores": _field(pred, "scores") if scores is None else scores}

    def _summary(self, result: Any) -> Dict[str, float]:
        out = {"mAP": result.ap, "AP@50": result.ap50}
        if result.distance_available:
            out.update({"mAP_100m": result.ap_100m, "mAP_50m": result.ap_50m, "AP@50_50m": result.ap50_50m})
        return out


class CityscapesPanopticMetric(_CityscapesMetric):
    """Panoptic segmentation of mmdetection's data samples
    (:class:`~cityscapes_io.metrics.PanopticMetric`): ``pred_panoptic_seg.sem_seg``, ``1×H×W``,
    ``label + instance * instance_offset`` per pixel, one segment per value, VOID where the label
    is the number of classes or ``pred_panoptic_seg.ignore_index``. Results: ``PQ``, ``SQ``,
    ``RQ`` and ``_th`` / ``_st`` for things and stuff (percentages).

    Parameters
    ----------
    dataset, split, storage_options, collect_device, prefix, collect_dir
        As :class:`CityscapesSemanticMetric`.
    classes : sequence of str, optional
        The official name of each label; default ``dataset_meta["classes"]`` when the runner set
        it, else :data:`PANOPTIC_CLASSES` (the 8 things in mmdetection's order, then the 11
        stuff classes in train-id order).
    instance_offset : int
        mmdetection's ``INSTANCE_OFFSET`` (1000).
    """

    core = PanopticMetric

    def __init__(self, dataset: Any, *, classes: Optional[Sequence[str]] = None,
                 instance_offset: int = INSTANCE_OFFSET, split: Optional[str] = None,
                 storage_options: Optional[dict] = None, collect_device: Optional[str] = None,
                 prefix: Optional[str] = None, collect_dir: Optional[str] = None):
        super().__init__(dataset, {}, split=split, storage_options=storage_options, collect_device=collect_device,
                         prefix=prefix, collect_dir=collect_dir)
        self.classes = None if classes is None else tuple(classes)
        if self.classes is not None:
            _label_ids(self.classes, "classes")
        self.instance_offset = int(instance_offset)
        if self.instance_offset < 1:
            raise ValueError(f"instance_offset must be positive, got {instance_offset!r}")

    def _prediction(self, sample: Any) -> Any:
        element = _field(sample, "pred_panoptic_seg")
        pan = _one_map(_field(element, "sem_seg"), "pred_panoptic_seg.sem_seg")
        if pan.dtype.kind not in "ui":
            raise ValueError(f"pred_panoptic_seg.sem_seg: values of type {pan.dtype}, not integers")
        label_ids = _label_ids(self._classes(PANOPTIC_CLASSES, self.classes), "pred_panoptic_seg")
        n = label_ids.size
        values, inverse = np.unique(pan.astype(np.int64), return_inverse=True)
        if values.size and int(values[0]) < 0:
            raise ValueError(f"pred_panoptic_seg.sem_seg: negative value {int(values[0])}")
        labels = values % self.instance_offset
        ignore = _field(element, "ignore_index", None)
        void = (labels == n) if ignore is None else (labels == n) | (labels == int(ignore))
        bad = labels[(labels > n) & ~void]
        if bad.size:
            raise ValueError(f"pred_panoptic_seg.sem_seg: labels {sorted(set(bad.tolist()))[:10]} outside "
                             f"0..{n} ({n} classes, {n} VOID)")
        seg_of_value = np.where(void, 0, np.cumsum(~void))  # segment ids 1.., 0 for VOID
        ids = seg_of_value[inverse.reshape(pan.shape)]
        segments = [{"id": int(seg_of_value[k]), "category_id": int(label_ids[int(labels[k])])}
                    for k in range(values.size) if not void[k]]
        return {"ids": ids, "segments": segments}

    def _summary(self, result: Any) -> Dict[str, float]:
        out: Dict[str, float] = {}
        for suffix, scores in (("", result.all), ("_th", result.things), ("_st", result.stuff)):
            for key in ("pq", "sq", "rq"):
                out[key.upper() + suffix] = 100.0 * scores[key]
        return out


def _register(cls: type) -> None:
    """Register ``cls`` in mmengine's root ``METRICS`` under its name (again when this module
    is reloaded; a name taken by another class is refused by the registry)."""
    taken = METRICS.module_dict.get(cls.__name__)
    again = taken is not None and (taken.__module__, taken.__qualname__) == (cls.__module__, cls.__qualname__)
    METRICS.register_module(module=cls, force=again)


for _cls in (CityscapesSemanticMetric, CityscapesInstanceMetric, CityscapesPanopticMetric):
    _register(_cls)
