"""Semantic (pixel-level) evaluation with the rules of cityscapesScripts'
``evaluation/evalPixelLevelSemanticLabeling.py`` (FORMAT.md section 10): a confusion matrix over
the label ids 0..33, IoU per class and category with the ground truth of classes ignored in
evaluation left out of the false positives, iIoU weighting each ground-truth instance's true
positives and false negatives by ``avgClassSize[class] / instance size``, NaN for a class or
category with nothing to score and averages over the scores that are not NaN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .. import png
from ..counting import apply_lut, count_pairs
from ..errors import CityscapesIOError
from ..storage import Root, check_inside, read_file, resolve_root
from .base import Matched, Task
from .common import (CATEGORIES, CATEGORY, HAS_INSTANCES, IDS, IGNORED, N, NAME, TABLE, TRAIN_TO_ID, few,
                     match_dataset, match_predictions, official_lut)

__all__ = ["SemanticResult", "SemanticTask", "SemanticStatistics", "AVG_CLASS_SIZE", "frame_problems",
           "frame_statistics", "train_id_hint"]

#: The official average instance sizes in pixels (evalPixelLevelSemanticLabeling.py), the iIoU weights.
AVG_CLASS_SIZE: Dict[str, float] = {
    "bicycle": 4672.3249222261,
    "caravan": 36771.8241758242,
    "motorcycle": 6298.7200839748,
    "rider": 3930.4788056518,
    "bus": 35732.1511111111,
    "train": 67583.7075812274,
    "car": 12794.0202738185,
    "person": 3462.4756337644,
    "truck": 27855.1264367816,
    "trailer": 16926.9763313609,
}

def _instance_categories() -> Dict[str, List[int]]:
    """Categories whose labels all have instances (official ``generateInstanceStats``), with their ids."""
    out: Dict[str, List[int]] = {}
    for cat in CATEGORIES:
        rows = [lab for lab in TABLE if lab.category == cat and lab.id >= 0]
        if all(lab.has_instances for lab in rows):
            out[cat] = [lab.id for lab in rows]
    return out


_NOT_IGNORED = [i for i in IDS if not IGNORED[i]]
_INSTANCE_CATEGORIES = _instance_categories()
_INSTANCE_CLASSES = [i for i in IDS if HAS_INSTANCES[i] and not IGNORED[i]]
# Per label id: the index of its instance category in _INSTANCE_CATEGORIES, -1 when none.
_CAT_INDEX: np.ndarray = np.full(N, -1, np.int64)
for _k, (_cat, _ids) in enumerate(_INSTANCE_CATEGORIES.items()):
    _CAT_INDEX[_ids] = _k
# -- per frame ------------------------------------------------------------------------------------
@dataclass
class SemanticStatistics:
    """What one frame adds: its confusion matrix and, per evaluated gt instance (in the official
    order), its label id and weighted TP / FN for the class and for the category."""

    matrix: Optional[np.ndarray]
    instances: Optional[np.ndarray] = None  # shape (n, 5): label id, tpW, fnW, catTpW, catFnW
    problems: List[str] = field(default_factory=list)


def _size_problem(where: str, size: Tuple[int, int], frame: Any, shape: Tuple[int, ...]) -> Optional[str]:
    """The problem of a prediction of ``size`` (H, W) for a ground truth of ``shape``, if any."""
    if tuple(size) == tuple(shape[:2]):
        return None
    return f"{where}: size {size[1]}x{size[0]}, the ground truth {frame.id} is {shape[1]}x{shape[0]}"


def _read_prediction(pred: Any, pred_root: Optional[Root], lut: Optional[np.ndarray], frame: Any,
                     shape: Optional[Tuple[int, ...]]) -> Tuple[Optional[np.ndarray], str, List[str]]:
    """The prediction of a frame as label ids (``None`` with problems when it cannot be read),
    with the name problems are reported under. ``pred`` is a file path under ``pred_root``
    (``lut`` maps train ids when given), a prediction Frame (``lut`` maps its dataset's label
    ids to the official ones, -1 for none) or an ``H×W`` array of integers held in memory
    (label ids; train ids when ``lut`` is given, as for files). Its size is compared with
    ``shape``, the ground truth's, from its header before it is decoded; nothing is decoded
    when ``shape`` is None (the ground truth cannot be read)."""
    train = lut is not None and (pred_root is not None or isinstance(pred, np.ndarray))  # train ids (not a Frame's)
    if isinstance(pred, np.ndarray):
        where = f"prediction of {frame.where}"
        if shape is None:
            return None, where, []
        if pred.ndim != 2:
            return None, where, [f"{where}: an array of shape {pred.shape}, not H×W"]
        problem = _size_problem(where, pred.shape, frame, shape)
        if problem:
            return None, where, [problem]
        if pred.dtype.kind not in "ui":
            return None, where, [f"{where}: values of type {pred.dtype}, not integer ids (take the argmax of scores)"]
        if pred.size and pred.dtype.kind == "i" and int(pred.min()) < 0:
            return None, where, [f"{where}: negative values: {few(np.unique(pred[pred < 0]))}"]
        top = int(pred.max()) if pred.size else 0
        arr = pred.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32, copy=False)
    elif isinstance(pred, str):
        assert pred_root is not None
        where = pred_root.display(pred_root.relative(pred))
        try:
            check_inside(pred_root.fs, pred_root.path, pred)  # a link out of the prediction folder
            data = read_file(pred_root.fs, pred)
            header = png.read_header(data, where)
            if shape is None:  # the ground truth cannot be read: its problem is reported
                return None, where, []
            problem = _size_problem(where, (header.height, header.width), frame, shape)
            if problem:
                return None, where, [problem]
            arr = png.decode_gray(data, where)
        except CityscapesIOError as exc:
            return None, where, [str(exc)]
    else:
        where = pred.where or f"prediction {pred.id}"
        try:
            if shape is None:
                return None, where, []
            if pred.has("labelIds") and (pred.shown("labelIds") or "").lower().endswith(".png"):
                # The file label_ids() decodes (its bytes are kept for it): its header, no other read.
                header = png.read_header(pred.read_bytes("labelIds"), pred.shown("labelIds") or where)
                size: Optional[Tuple[int, int]] = (header.height, header.width)
            else:
                size = pred.size()
            problem = _size_problem(where, size, frame, shape) if size else None
            if problem:
                return None, where, [problem]
            arr = pred.label_ids()
        except CityscapesIOError as exc:
            return None, where, [str(exc)]
        if arr is None:
            return None, where, [f"{where}: prediction frame {pred.id} has no label ids"]
        problem = _size_problem(where, arr.shape, frame, shape)  # (a source without size())
        if problem:
            return None, where, [problem]
    if lut is None:
        if arr.size and int(arr.max()) >= N:
            bad = np.unique(arr[arr >= N])
            return None, where, [f"{where}: values that are not label ids (0..{N - 1}): {few(bad)}"]
        return arr, where, []
    mapped: np.ndarray = apply_lut(lut, np.minimum(arr, lut.size - 1) if arr.dtype != np.uint8 or lut.size < 256 else arr)
    if arr.size and int(mapped.min()) < 0:
        problems = []
        if train and (arr == 255).any():
            problems.append(f"{where}: train id 255 (ignore) in a prediction: every pixel must be predicted")
        bad = np.unique(arr[(mapped < 0) & ((arr != 255) if train else True)])
        if bad.size:
            kind = "train ids" if train else "labels the official table knows"
            problems.append(f"{where}: values that are not {kind}: {few(bad)}")
        return None, where, problems
    return mapped, where, []


def _frame_read(frame: Any, pred: Any, pred_root: Optional[Root], lut: Optional[np.ndarray]
                ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray], List[str]]:
    """A frame's ground-truth label and instance ids and its prediction as label ids (a path
    under ``pred_root``, or a Frame), with the problems. The ground truth is read first: its
    size bounds what the prediction may decode."""
    gt_where = frame.where
    gt_problems: List[str] = []
    gt = inst = None
    try:
        gt = frame.label_ids()
        inst = frame.instance_ids()
    except CityscapesIOError as exc:
        gt_problems.append(str(exc))
    if not gt_problems and (gt is None or inst is None):
        gt_problems.append(f"{gt_where}: no ground truth label or instance ids")
    shape = gt.shape if gt is not None and inst is not None and not gt_problems else None
    p, where, problems = _read_prediction(pred, pred_root, lut, frame, shape)
    problems += gt_problems
    if gt is not None and not gt_problems and gt.size and int(gt.max()) >= N:
        problems.append(f"{gt_where}: ground truth values that are not label ids: {few(np.unique(gt[gt >= N]))}")
    return gt, inst, p, problems


def frame_problems(frame: Any, pred: Any, pred_root: Optional[Root], lut: Optional[np.ndarray]) -> List[str]:
    """The problems of one frame's prediction (a path under ``pred_root``, a Frame, or an array
    held in memory) and ground truth."""
    return _frame_read(frame, pred, pred_root, lut)[3]


def frame_statistics(frame: Any, pred: Any, pred_root: Optional[Root], lut: Optional[np.ndarray]
                     ) -> SemanticStatistics:
    """One frame's statistics against its prediction (a path under ``pred_root``, a Frame, or an
    ``H×W`` array held in memory: label ids, train ids when ``lut`` is given)."""
    gt, inst, p, problems = _frame_read(frame, pred, pred_root, lut)
    if problems or p is None:
        return SemanticStatistics(None, problems=problems)
    assert gt is not None and inst is not None
    pred8 = p.astype(np.uint8, copy=False)  # (label ids, checked below N)
    matrix = count_pairs(gt, pred8, N, N * N)
    return SemanticStatistics(matrix.reshape(N, N), _instance_stats(inst, pred8))


# The classes and categories counted per instance: for each label id its instance category
# (a column of _CAT_OF), and per instanceIds value > 1000 of such a class its average size.
_CAT_OF: np.ndarray = np.zeros((N, max(len(_INSTANCE_CATEGORIES), 1)), np.int64)
for _lab in IDS:
    if _CAT_INDEX[_lab] >= 0:
        _CAT_OF[_lab, _CAT_INDEX[_lab]] = 1
_AVG: np.ndarray = np.zeros(N)
for _lab in _INSTANCE_CLASSES:
    _AVG[_lab] = AVG_CLASS_SIZE[NAME[_lab]]


def _instance_stats(inst: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per ground-truth instance (value > 1000, of a class evaluated with instances), in ascending
    order of value: label id, tpWeighted, fnWeighted and, for its category, catTpWeighted, catFnWeighted.

    One histogram of (instance value, predicted label) over the instance pixels, no sort: an
    instance's size is its row's sum, its true positives the column of its class, its category's
    true positives the columns of the category's classes."""
    high = int(inst.max()) if inst.size else 0
    if high <= 1000:
        return np.zeros((0, 5))
    low = int(inst.min(where=inst > 1000, initial=high))
    span = high - low + 1
    hist = count_pairs(inst, pred, N, span * N, a_min=low).reshape(span, N)
    size = hist.sum(axis=1)
    rows = np.flatnonzero(size)
    value = rows + low
    label = value // 1000
    keep = (label < N)
    keep[keep] = _AVG[label[keep]] > 0  # classes ignored in evaluation, and values the table does not know
    rows, value, label = rows[keep], value[keep], label[keep]
    if rows.size == 0:
        return np.zeros((0, 5))
    n = size[rows].astype(np.float64)
    tp = hist[rows, label].astype(np.float64)
    cat_tp = (hist[rows] @ _CAT_OF)[np.arange(rows.size), _CAT_INDEX[label]].astype(np.float64)
    cat_tp[_CAT_INDEX[label] < 0] = 0.0
    weight = _AVG[label] / n
    out = np.empty((rows.size, 5))
    out[:, 0] = label
    out[:, 1] = tp * weight
    out[:, 2] = (n - tp) * weight
    out[:, 3] = cat_tp * weight
    out[:, 4] = (n - cat_tp) * weight
    return out


# -- the result -----------------------------------------------------------------------------------
class SemanticResult:
    """The pixel-level result: ``print(result)`` gives the official tables, :meth:`to_dict` the
    content of the official ``resultPixelLevelSemanticLabeling.json``."""

    def __init__(self, matrix: np.ndarray, class_tp_fn: Dict[str, List[float]],
                 category_tp_fn: Dict[str, List[float]], frames: int):
        self.confusion_matrix = matrix
        self.frames = frames
        m = matrix
        self.class_scores: Dict[str, float] = {}
        self.class_inst_scores: Dict[str, float] = {}
        for lab in IDS:
            name = NAME[lab]
            if IGNORED[lab]:
                self.class_scores[name] = self.class_inst_scores[name] = float("nan")
                continue
            tp = int(m[lab, lab])
            fn = int(m[lab, :].sum()) - tp
            fp = int(m[[i for i in _NOT_IGNORED if i != lab], lab].sum())
            self.class_scores[name] = _ratio(tp, tp + fp + fn)
            if name in class_tp_fn:
                tpw, fnw = class_tp_fn[name]
                self.class_inst_scores[name] = _ratio(tpw, tpw + fp + fnw)
            else:
                self.class_inst_scores[name] = float("nan")
        self.category_scores: Dict[str, float] = {}
        self.category_inst_scores: Dict[str, float] = {}
        for cat in CATEGORIES:
            ids = [i for i in IDS if CATEGORY[i] == cat and not IGNORED[i]]
            others = [i for i in _NOT_IGNORED if CATEGORY[i] != cat]
            if not ids:
                self.category_scores[cat] = float("nan")
            else:
                tp = int(m[np.ix_(ids, ids)].sum())
                fn = int(m[ids, :].sum()) - tp
                fp = int(m[np.ix_(others, ids)].sum())
                self.category_scores[cat] = _ratio(tp, tp + fp + fn)
            if cat in category_tp_fn:
                inst_ids = _INSTANCE_CATEGORIES[cat]
                fp = int(m[np.ix_(others, inst_ids)].sum())
                tpw, fnw = category_tp_fn[cat]
                self.category_inst_scores[cat] = _ratio(tpw, tpw + fp + fnw)
            else:
                self.category_inst_scores[cat] = float("nan")
        self.average_classes = _average(self.class_scores)
        self.average_inst_classes = _average(self.class_inst_scores)
        self.average_categories = _average(self.category_scores)
        self.average_inst_categories = _average(self.category_inst_scores)

    def to_dict(self) -> Dict[str, Any]:
        """The keys and values of the official ``resultPixelLevelSemanticLabeling.json``."""
        total = int(self.confusion_matrix.sum())
        return {
            "confMatrix": self.confusion_matrix.tolist(),
            "priors": {NAME[i]: (int(self.confusion_matrix[i, :].sum()) / total if total else float("nan"))
                       for i in IDS},
            "labels": {NAME[i]: i for i in IDS},
            "classScores": dict(self.class_scores),
            "classInstScores": dict(self.class_inst_scores),
            "categoryScores": dict(self.category_scores),
            "categoryInstScores": dict(self.category_inst_scores),
            "averageScoreClasses": self.average_classes,
            "averageScoreInstClasses": self.average_inst_classes,
            "averageScoreCategories": self.average_categories,
            "averageScoreInstCategories": self.average_inst_categories,
        }

    def __str__(self) -> str:
        lines = [f"{self.frames} frames", "", "classes          IoU      nIoU", "-" * 32]
        for lab in IDS:
            if not IGNORED[lab]:
                name = NAME[lab]
                lines.append(f"{name:<14}: {self.class_scores[name]:>5.3f}    {self.class_inst_scores[name]:>5.3f}")
        lines += ["-" * 32, f"Score Average : {self.average_classes:5.3f}    {self.average_inst_classes:5.3f}",
                  "-" * 32, "", "categories       IoU      nIoU", "-" * 32]
        for cat in CATEGORIES:
            if all(lab.ignore_in_eval for lab in TABLE if lab.category == cat):
                continue
            lines.append(f"{cat:<14}: {self.category_scores[cat]:>5.3f}    {self.category_inst_scores[cat]:>5.3f}")
        lines += ["-" * 32, f"Score Average : {self.average_categories:5.3f}    {self.average_inst_categories:5.3f}",
                  "-" * 32]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"SemanticResult(frames={self.frames}, mIoU={self.average_classes:.4f}, "
                f"iIoU={self.average_inst_classes:.4f})")


def _ratio(num: float, denom: float) -> float:
    return float("nan") if denom == 0 else float(num) / denom


def _average(scores: Mapping[str, float]) -> float:
    valid = [s for s in scores.values() if not math.isnan(s)]
    return sum(valid) / len(valid) if valid else float("nan")




#: Train ids 0..18 and the label ids they stand for (official table).
_TRAIN_COLUMNS = np.arange(19)
_TRAIN_LABEL_IDS = TRAIN_TO_ID[:19].copy()


def train_id_hint(matrix: np.ndarray, miou: float,
                  advice: str = "pass pred_train_ids=True (--pred-train-ids)") -> Optional[str]:
    """Why the predictions, read as label ids, were probably train ids (the message ends with
    ``advice``, the option that reads them as train ids); ``None`` when they were probably not.

    The rule, from the confusion matrix alone (no per-frame cost): every predicted value seen is
    a train id (0..18; a label-id PNG holding 255, the ignore train id, is refused before this),
    and reading the same pixels as train ids (value ``t`` as the label id of train id ``t``)
    gives a mean IoU at least twice the one as label ids and at least 0.05 higher. Label-id
    predictions of a real scene use ids above 18 (vegetation 21, sky 23, car 26 ...); if a
    prediction does not, yet scores better as label ids, nothing is said. The numbers returned
    are never changed: the warning names the option that reads the PNGs as train ids."""
    predicted = matrix.sum(axis=0)
    if not predicted.any() or predicted[_TRAIN_COLUMNS.size:].any() or math.isnan(miou):
        return None
    as_train = np.zeros_like(matrix)
    as_train[:, _TRAIN_LABEL_IDS] = matrix[:, _TRAIN_COLUMNS]
    train_miou = _average(_class_ious(as_train))
    if math.isnan(train_miou) or train_miou < 2 * miou or train_miou - miou < 0.05:
        return None
    return (f"predictions look like train ids (every value in 0..18): their mean IoU as label ids is "
            f"{miou:.3f}, as train ids {train_miou:.3f}; {advice}")


def _class_ious(m: np.ndarray) -> Dict[str, float]:
    """The class IoUs of a confusion matrix (as :class:`SemanticResult` computes them)."""
    scores: Dict[str, float] = {}
    for lab in _NOT_IGNORED:
        tp = int(m[lab, lab])
        fn = int(m[lab, :].sum()) - tp
        fp = int(m[[i for i in _NOT_IGNORED if i != lab], lab].sum())
        scores[NAME[lab]] = _ratio(tp, tp + fp + fn)
    return scores


# -- the task -------------------------------------------------------------------------------------
class SemanticTask(Task):
    """The pixel-level task: predictions a folder / URL of PNGs of label ids (train ids with the
    option ``pred_train_ids``) or a Dataset; a frame's statistics its confusion matrix and its
    instances' weighted TP / FN (:class:`SemanticStatistics`); the result a :class:`SemanticResult`."""

    options = ("pred_train_ids", "image")
    frame_problems = staticmethod(frame_problems)
    frame_statistics = staticmethod(frame_statistics)

    def match(self, frames: Sequence[Any], predictions: Any, *, pred_storage_options: Any = None,
              pred_train_ids: bool = False, image: Optional[str] = None, **options: Any) -> Matched:
        """Per frame its prediction (path or Frame), and the common arguments: the prediction
        root and the lookup table. The context: whether the PNGs were read as label ids."""
        from ..dataset import Dataset

        if isinstance(predictions, Dataset):
            preds, problems = match_dataset(frames, predictions)
            return Matched.one_each(frames, preds, (None, official_lut(predictions.labels)), problems,
                                    "the prediction dataset", context=False)
        root = resolve_root(predictions, pred_storage_options)
        paths, problems = match_predictions(frames, root, image=image)
        return Matched.one_each(frames, paths, (root, TRAIN_TO_ID if pred_train_ids else None), problems, root,
                                context=not pred_train_ids)

    def start(self, matched: Matched) -> Tuple[np.ndarray, Dict[str, List[float]], Dict[str, List[float]]]:
        matrix: np.ndarray = np.zeros((N, N), np.int64)
        class_acc: Dict[str, List[float]] = {NAME[i]: [0.0, 0.0] for i in _INSTANCE_CLASSES}
        cat_acc: Dict[str, List[float]] = {c: [0.0, 0.0] for c in _INSTANCE_CATEGORIES}
        return matrix, class_acc, cat_acc

    def add(self, total: Any, stats: SemanticStatistics) -> Any:
        matrix, class_acc, cat_acc = total
        if stats.matrix is not None:
            matrix += stats.matrix
            for lab, tpw, fnw, ctpw, cfnw in (stats.instances if stats.instances is not None else ()):
                acc = class_acc[NAME[int(lab)]]
                acc[0] += tpw
                acc[1] += fnw
                cat = CATEGORY[int(lab)]
                if cat in cat_acc:
                    cat_acc[cat][0] += ctpw
                    cat_acc[cat][1] += cfnw
        return total

    def result(self, total: Any, matched: Matched, frames: int) -> SemanticResult:
        matrix, class_acc, cat_acc = total
        return SemanticResult(matrix, class_acc, cat_acc, frames)

    def warnings(self, result: SemanticResult, total: Any, matched: Matched) -> List[str]:
        if not matched.context:  # only a folder of PNGs read as label ids
            return []
        hint = train_id_hint(total[0], result.average_classes)
        return [f"{matched.where}: {hint}"] if hint else []
