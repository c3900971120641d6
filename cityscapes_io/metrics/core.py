"""The three metrics: :class:`SemanticMetric`, :class:`InstanceMetric`, :class:`PanopticMetric`.

Each one runs its evaluation task's own frame function (:mod:`cityscapes_io.evaluation`) on
each frame it is given, keeps the frame's statistics (:mod:`.state`: integer sums added at once,
the floating-point part kept per frame) and, in :meth:`Metric.compute`, adds them up with the
task's own accumulation in the order :func:`cityscapes_io.evaluate` adds frames, to the task's
own result object. Hence the numbers are those of ``evaluate()`` on the same frames, bit for
bit, whatever the order of the updates, merges and ranks:

- the integer sums (a confusion matrix, TP / FP / FN counts) are exact in any order;
- every floating-point quantity is computed per frame by the same function from the same
  pixels, then summed by the same code in the same order (split, then
  :func:`cityscapes_io.names.sort_key` of the frame id), so each sum sees the same operands in
  the same sequence.
"""
from __future__ import annotations

import importlib
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple, TypeVar

import numpy as np

from ..evaluation.base import Matched
from ..evaluation.common import N, TRAIN_TO_ID, refuse
from ..evaluation.instance import INSTANCE_LABELS, InstanceResult, InstanceStatistics, InstanceTask
from ..evaluation.instance import frame_statistics as instance_statistics
from ..evaluation.panoptic import PanopticResult, PanopticStatistics, PanopticTask
from ..evaluation.panoptic import frame_statistics as panoptic_statistics
from ..evaluation.semantic import SemanticResult, SemanticStatistics, SemanticTask, train_id_hint
from ..evaluation.semantic import frame_statistics as semantic_statistics
from ..frame import Frame
from ..labels import LabelMap
from ..panoptic import panoptic_categories
from .inputs import IDS, as_array, frame_key, mask_predictions, segment_predictions, target_frame
from .state import Layout, State, decode, decode_records, encode, encode_records

__all__ = ["Metric", "SemanticMetric", "InstanceMetric", "PanopticMetric"]

M = TypeVar("M", bound="Metric")


class Metric:
    """What the three metrics share: ``update``, ``merge``, ``reset``, ``compute``, ``sync``,
    and their state as bytes (:meth:`to_bytes`, :meth:`from_bytes`; pickling uses them).

    Parameters
    ----------
    ids : {"label", "train"}
        What the predictions' class values are: official label ids (``car`` 26), or train ids
        (0..18, ``car`` 13) mapped to label ids by the official table, as ``evaluate(...,
        pred_train_ids=True)`` maps PNGs of train ids.

    Notes
    -----
    A frame is counted once: updating a frame already counted (by this metric, or by one
    merged into it or synced with it) raises ValueError naming it, and so do :meth:`merge`
    and :meth:`sync` when two states hold a frame. Frames are known by split and base name
    (``aachen_000000_000019``), as evaluation matches predictions to them.
    """

    #: The per-frame record's arrays and the sums (set by each metric).
    layout: Layout

    def __init__(self, *, ids: str = "label"):
        if ids not in IDS:
            raise ValueError(f"ids must be one of {', '.join(map(repr, IDS))}, got {ids!r}")
        self.ids = ids
        self._local = State.empty(self.layout)
        self._others: Optional[State] = None  # what sync() brought from the other ranks

    # -- what each metric defines ---------------------------------------------------------------
    def _statistics(self, prediction: Any, frame: Frame) -> Tuple[Any, Optional[np.ndarray], Tuple[np.ndarray, ...]]:
        """The frame's statistics (with its problems), its sums and its record."""
        raise NotImplementedError

    def _result(self, state: State) -> Any:
        raise NotImplementedError

    def _config(self) -> Dict[str, Any]:
        """What two metrics must share to be merged (besides their type)."""
        return {}

    def _settings(self) -> Dict[str, Any]:
        """The constructor's options (JSON values), kept in the bytes."""
        return {"ids": self.ids}

    def _check(self, record: Tuple[np.ndarray, ...]) -> bool:
        """Whether a record read from bytes is consistent."""
        return True

    # -- the contract ------------------------------------------------------------------------------
    def update(self, prediction: Any, target: Any, *, id: Optional[str] = None, split: Optional[str] = None) -> None:
        """Count one frame.

        Parameters
        ----------
        prediction
            The frame's prediction, numpy arrays or torch tensors (a CUDA tensor is moved to the
            CPU); its form depends on the metric.
        target : Frame, array, (id, array) or mapping
            The ground truth: a :class:`~cityscapes_io.Frame` (``cityscapes_io.open(root)[i]``:
            read when needed, from any root), or the frame's ``instanceIds`` as an ``H×W``
            array or tensor (``label * 1000 + n`` for instances, the label id elsewhere; a
            label-id map is a ground truth without instances) with the frame's id given as
            ``id=`` or as a pair ``(id, array)``, or a sample of :mod:`cityscapes_io.torch`
            (a mapping with ``id``, ``split`` and ``instance_ids``).
        id : str, optional
            The frame id of an array target (``aachen/aachen_000000_000019``): it places the
            frame in the order of evaluation and tells frames apart.
        split : str, optional
            The split of an array target (default ``"val"``).

        Raises
        ------
        CityscapesIOError
            Listing the problems of the prediction or ground truth (sizes, values that are not
            ids, unknown labels or categories), as ``evaluate()`` refuses them.
        ValueError
            When the frame was counted already; TypeError for a target or prediction of no
            form above.
        """
        frame = target_frame(target, id=id, split=split)
        key = frame_key(frame)
        if key in self._local.records or (self._others is not None and key in self._others.records):
            raise ValueError(f"{frame.where}: frame {frame.id} is counted already (reset() between evaluations)")
        stats, sums, record = self._statistics(prediction, frame)
        if stats.problems:
            raise refuse(stats.problems, frame.where)
        self._local.add_frame(key, sums, record)

    def merge(self: M, other: M) -> M:
        """Add what ``other`` counted (a metric of the same kind and options, of other frames) to
        this metric, and return this metric."""
        if type(other) is not type(self):
            raise TypeError(f"cannot merge a {type(other).__name__} into a {type(self).__name__}")
        if other._config() != self._config():
            raise ValueError(f"cannot merge {type(self).__name__}s of different options: {other._config()} and "
                             f"{self._config()}")
        merged = self._local.copy()
        merged.add(other._state())
        if self._others is not None:
            merged.copy().add(self._others)  # (a frame in both is refused before anything changes)
        self._local = merged
        return self

    def reset(self) -> None:
        """Forget every frame (and what :meth:`sync` brought)."""
        self._local = State.empty(self.layout)
        self._others = None

    def compute(self) -> Any:
        """The result over every frame counted here, merged in and synced: the object
        :func:`cityscapes_io.evaluate` returns for the task (``print`` gives the official
        tables, ``to_dict()`` the official results JSON), with its numbers."""
        return self._result(self._state())

    def sync(self, group: Any = None) -> None:
        """Count, here, the frames every rank of ``group`` counted (``torch.distributed``).

        The sums are all-reduced, the per-frame records all-gathered
        (``all_gather_object`` of their bytes); nothing is written to files. Afterwards
        :meth:`compute` gives the numbers of the frames of all ranks on every rank. Each call
        replaces what the previous one brought, so ``sync()`` may be called again after more
        updates. Every rank of the group must call it (it is a collective operation). Without
        an initialised process group it does nothing.

        Raises
        ------
        ValueError
            When ranks counted the same frame (a sampler that repeats frames to even out the
            ranks' shares; see :class:`Metric`), on every rank.
        """
        try:
            dist: Any = importlib.import_module("torch.distributed")
            torch: Any = importlib.import_module("torch")
        except ImportError as exc:
            raise ImportError("Metric.sync needs PyTorch: pip install 'cityscapes_io[torch]'") from exc
        if not dist.is_available() or not dist.is_initialized():
            return
        device = torch.device("cpu")
        if dist.get_backend(group) == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        sums = torch.from_numpy(self._local.sums.copy()).to(device)
        dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=group)
        gathered: List[Any] = [None] * dist.get_world_size(group)
        dist.all_gather_object(gathered, encode_records(self._local.records, self.layout), group=group)
        rank = dist.get_rank(group)
        others = State(sums.cpu().numpy().astype(np.int64) - self._local.sums)
        problem: Optional[ValueError] = None
        for r, blob in enumerate(gathered):
            if r != rank:
                try:
                    others.add(State(np.zeros_like(self._local.sums), self._records_of(blob)))
                except ValueError as exc:
                    problem = problem or exc
        try:
            others.copy().add(self._local)
        except ValueError as exc:
            problem = problem or exc
        if problem is not None:
            raise problem
        self._others = others

    def __len__(self) -> int:
        """The number of frames counted."""
        return len(self._local.records) + (len(self._others.records) if self._others is not None else 0)

    # -- bytes -------------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The state as bytes (a few tens of bytes per frame and per segment or instance; no
        pixels): what :meth:`from_bytes` reads back, in another process or on another machine."""
        return encode(self._state(), self.layout, self._settings())

    @classmethod
    def from_bytes(cls: Any, data: bytes) -> Any:
        """The metric whose :meth:`to_bytes` gave ``data``. Raises ValueError for bytes that are
        not those of a metric of this kind (nothing in them is executed)."""
        metric, end = cls._decoded(data, 0)
        if end != len(data):
            raise ValueError("bytes after the end of the metric state")
        return metric

    @classmethod
    def _decoded(cls: Any, data: bytes, offset: int) -> Tuple[Any, int]:
        state, config, end = decode(data, cls.layout, offset)
        try:
            metric = cls(**config)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"a metric state with options that do not make a {cls.__name__}: {exc}") from None
        if state.sums.shape != metric.layout.sums_shape or any(not metric._check(r) for r in state.records.values()):
            raise ValueError(f"a {cls.__name__} state holds inconsistent sums or frame records")
        metric._local = state
        return metric, end

    def __reduce__(self) -> Any:
        return (_from_bytes, (type(self), self.to_bytes()))

    # -- helpers -----------------------------------------------------------------------------------
    def _state(self) -> State:
        if self._others is None:
            return self._local
        state = self._local.copy()
        state.add(self._others)
        return state

    def _records_of(self, blob: Any) -> Dict[Any, Tuple[np.ndarray, ...]]:
        if not isinstance(blob, bytes):
            raise ValueError(f"sync: a rank sent {type(blob).__name__}, not the records of a {type(self).__name__}")
        records = decode_records(blob, self.layout)
        if any(not self._check(r) for r in records.values()):
            raise ValueError(f"sync: a rank sent an inconsistent {type(self).__name__} record")
        return records

    def __repr__(self) -> str:
        return f"{type(self).__name__}(ids={self.ids!r}, frames={len(self)})"


def _from_bytes(cls: Any, data: bytes) -> Any:
    """Unpickling: the metric of ``cls`` whose bytes are ``data``."""
    return cls.from_bytes(data)


# -- semantic -------------------------------------------------------------------------------------------
_ZERO_MATRIX: np.ndarray = np.zeros((N, N), np.int64)


class SemanticMetric(Metric):
    """Pixel-level semantic labeling (``evaluate(..., task="semantic")``): IoU and iIoU per
    class and category, the official ``resultPixelLevelSemanticLabeling.json``.

    ``prediction``: an ``H×W`` array or tensor of integers, label ids (or train ids with
    ``ids="train"``; 255 is refused: every pixel is predicted), the ground truth's size (take
    the argmax of the scores first).

    State: the 34×34 confusion matrix (summed as frames come) and per frame, for each ground
    truth instance of a class with instances, its label and its weighted TP / FN for the class
    and its category (4 floats: their sums depend on the order of the additions).
    """

    layout = Layout("semantic", ("<i8", "<f8"), (1, 2), (N, N))

    def _statistics(self, prediction: Any, frame: Frame) -> Tuple[Any, Optional[np.ndarray], Tuple[np.ndarray, ...]]:
        pred = as_array(prediction, f"prediction of {frame.where}")
        stats: SemanticStatistics = semantic_statistics(frame, pred, None, TRAIN_TO_ID if self.ids == "train" else None)
        if stats.problems or stats.matrix is None:
            return stats, None, ()
        inst = stats.instances if stats.instances is not None else np.zeros((0, 5))
        return stats, stats.matrix, (inst[:, 0].astype(np.int64), np.ascontiguousarray(inst[:, 1:]))

    def _check(self, record: Tuple[np.ndarray, ...]) -> bool:
        labels, weights = record
        return weights.shape == (labels.size, 4) and bool(((labels >= 0) & (labels < N)).all())

    def _result(self, state: State) -> SemanticResult:
        task = SemanticTask()
        matched = Matched([], [])
        total = task.start(matched)
        for labels, weights in state.ordered():
            inst = np.empty((labels.size, 5))
            inst[:, 0] = labels
            inst[:, 1:] = weights
            task.add(total, SemanticStatistics(_ZERO_MATRIX, inst))
        total[0][...] = state.sums
        result = task.result(total, matched, len(state.records))
        if self.ids == "label":
            hint = train_id_hint(state.sums, result.average_classes, "pass ids='train' to the metric")
            if hint:
                warnings.warn(f"{type(self).__name__}: {hint}", UserWarning, stacklevel=3)
        return result


# -- instance -------------------------------------------------------------------------------------------
_C = len(INSTANCE_LABELS)
_INSTANCE_FIELDS = ("gt_class", "gt_inst", "gt_size", "gt_dist", "gt_dconf", "pred_class", "pred_conf",
                    "pred_size", "pred_void", "pair_pred", "pair_gt", "pair_inter")


class InstanceMetric(Metric):
    """Instance-level semantic labeling (``evaluate(..., task="instance")``): AP and AP50 per
    class (AP100m / AP50m when the ground-truth frames have disparity and camera files), the
    official ``resultInstanceLevelSemanticLabeling.json``.

    ``prediction``: torchvision's detection output as it is, a mapping with ``masks``
    (``N×H×W`` or ``N×1×H×W``; bool, or probabilities: a pixel is in the mask when above
    ``mask_threshold``, 0.5, the threshold torchvision's own evaluation uses), ``labels``
    (label ids, ``car`` 26, or train ids with ``ids="train"``; predictions of classes not
    evaluated are skipped, as the official skips them) and ``scores``. The order of the
    predictions is the order of a txt file's lines (it breaks ties of equal scores).

    State: per frame, no mask: each ground-truth segment's class, size and (with distances)
    median depth; each prediction's class, score, size and overlap with void; each pair of
    prediction and segment of its class that overlap, their intersection. AP needs them all
    (matching is per threshold, over all frames); about 25 bytes per segment, prediction and
    overlapping pair.
    """

    layout = Layout("instance", ("<i8", "|b1", "<i8", "<f8", "<f8", "<i8", "<f8", "<i8", "<i8", "<i8", "<i8",
                                 "<i8", "|b1"), (1,) * 13, (0,))

    def __init__(self, *, ids: str = "label", mask_threshold: float = 0.5):
        super().__init__(ids=ids)
        self.mask_threshold = float(mask_threshold)

    def _settings(self) -> Dict[str, Any]:
        return {"ids": self.ids, "mask_threshold": self.mask_threshold}

    def _statistics(self, prediction: Any, frame: Frame) -> Tuple[Any, Optional[np.ndarray], Tuple[np.ndarray, ...]]:
        pred = mask_predictions(prediction, self.ids, self.mask_threshold, f"prediction of {frame.where}")
        stats: InstanceStatistics = instance_statistics(frame, pred, None)
        if stats.problems:
            return stats, None, ()
        record = tuple(getattr(stats, name) for name in _INSTANCE_FIELDS) + (np.array([stats.distance]),)
        return stats, None, record

    def _check(self, record: Tuple[np.ndarray, ...]) -> bool:
        n_gt, n_pred, n_pair = record[0].size, record[5].size, record[9].size

        def within(values: np.ndarray, n: int) -> bool:
            return bool(((values >= 0) & (values < n)).all())

        return (all(a.size == n_gt for a in record[:5]) and all(a.size == n_pred for a in record[5:9])
                and all(a.size == n_pair for a in record[9:12]) and record[12].size == 1
                and within(record[9], n_pred) and within(record[10], n_gt)
                and within(record[0], _C) and within(record[5], _C))

    def _result(self, state: State) -> InstanceResult:
        task = InstanceTask()
        matched = Matched([], [], where=type(self).__name__)
        total = task.start(matched)
        for record in state.ordered():
            stats = InstanceStatistics(distance=bool(record[12][0]))
            for name, arr in zip(_INSTANCE_FIELDS, record):
                setattr(stats, name, arr)
            task.add(total, stats)
        result = task.result(total, matched, len(state.records))
        for message in task.warnings(result, total, matched):
            warnings.warn(message, UserWarning, stacklevel=3)
        return result


# -- panoptic -------------------------------------------------------------------------------------------
class PanopticMetric(Metric):
    """Panoptic segmentation (``evaluate(..., task="panoptic")``): PQ, SQ, RQ per category and
    over All / Things / Stuff, the official ``resultPanopticSemanticLabeling.json``.

    ``prediction``: a mapping with ``ids``, the ``H×W`` segment id of every pixel (0 is VOID
    unless listed), and ``segments`` (or COCO's ``segments_info``), one mapping per segment
    with its ``id`` and ``category_id``; category ids are those of the panoptic ground truth,
    the official label ids (``car`` 26, ``road`` 7), or train ids with ``ids="train"`` (as
    detectron2's Cityscapes models give them). A pixel of an id not listed (but 0) and a listed
    id absent from the pixels are refused, as in a submission.

    Parameters
    ----------
    categories : list of dict, optional
        The categories (``id``, ``name``, ``isthing``), in the order of the ground-truth
        JSON; default those of the official ``cityscapes_panoptic_<split>.json``
        (:func:`cityscapes_io.panoptic.panoptic_categories` of the official table).

    State: TP, FP and FN per category (summed as frames come) and per frame the sum of the IoUs
    of its matches per category (a float each, kept for its categories with a match).

    The ground truth is made from each frame's instanceIds by the rules of
    ``csCreatePanopticImgs``, which give the numbers of the official panoptic files.
    """

    #: (Each metric has its own: the sums' shape follows its categories.)
    layout = Layout("panoptic", ("<i8", "<f8"), (1, 1), (3, 0))

    def __init__(self, *, ids: str = "label", categories: Optional[Sequence[Dict[str, Any]]] = None):
        cats = [dict(c) for c in (categories if categories is not None else panoptic_categories(LabelMap.cityscapes()))]
        try:
            self.category_ids = tuple(int(c["id"]) for c in cats)
        except (KeyError, TypeError, ValueError):
            raise ValueError("categories: each one a mapping with an integer 'id'") from None
        self.categories = cats
        self.layout = Layout("panoptic", ("<i8", "<f8"), (1, 1), (3, len(cats)))
        super().__init__(ids=ids)
        self._zero_counts: np.ndarray = np.zeros((3, len(cats)), np.int64)

    def _config(self) -> Dict[str, Any]:
        return {"categories": self.categories}

    def _settings(self) -> Dict[str, Any]:
        return {"ids": self.ids, "categories": self.categories}

    def _statistics(self, prediction: Any, frame: Frame) -> Tuple[Any, Optional[np.ndarray], Tuple[np.ndarray, ...]]:
        pred = segment_predictions(prediction, self.ids, f"prediction of {frame.where}")
        stats: PanopticStatistics = panoptic_statistics(frame, pred, None, None, None, self.category_ids)
        if stats.problems or stats.iou is None or stats.counts is None:
            return stats, None, ()
        where = np.flatnonzero(stats.iou)
        return stats, stats.counts, (where.astype(np.int64), stats.iou[where])

    def _check(self, record: Tuple[np.ndarray, ...]) -> bool:
        where, values = record
        return where.size == values.size and bool(((where >= 0) & (where < len(self.category_ids))).all())

    def _result(self, state: State) -> PanopticResult:
        task = PanopticTask()
        matched = Matched([], [], context=self.categories)
        total = task.start(matched)
        for where, values in state.ordered():
            iou = np.zeros(len(self.category_ids))
            iou[where] = values
            task.add(total, PanopticStatistics(iou, self._zero_counts))
        total[1][...] = state.sums
        return task.result(total, matched, len(state.records))
