"""Evaluation of predictions against Cityscapes ground truth, with the official rules.

So far the semantic (pixel-level) task: the rules of cityscapesScripts'
``evaluation/evalPixelLevelSemanticLabeling.py`` (see FORMAT.md section 10): a confusion matrix
over the label ids 0..33, IoU per class and category with the ground truth of classes ignored in
evaluation left out of the false positives, iIoU weighting each ground-truth instance's true
positives and false negatives by ``avgClassSize[class] / instance size``, NaN for a class or
category with nothing to score and averages over the scores that are not NaN.

Ground truth and predictions are read frame by frame; each frame gives a confusion matrix and
its instances' weighted counts, summed in frame order in the calling process (so that
``workers > 1`` gives the very same numbers as one process).
"""
from __future__ import annotations

import math
import multiprocessing
import posixpath
import re
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import png
from .dataset import open as open_dataset
from .errors import CityscapesIOError
from .labels import _OFFICIAL
from .storage import Root, find_files, read_file, resolve_root

__all__ = ["evaluate", "SemanticResult", "TASKS", "AVG_CLASS_SIZE"]

#: The tasks :func:`evaluate` knows so far.
TASKS = ("semantic",)

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

# The official table, label ids 0..33 (the license plate, id -1, is not evaluated).
_LABELS = [row for row in _OFFICIAL if row[1] >= 0]
_IDS = [row[1] for row in _LABELS]
N = max(_IDS) + 1  # 34
_NAME = {row[1]: row[0] for row in _LABELS}
_CATEGORY = {row[1]: row[3] for row in _LABELS}
_HAS_INSTANCES = {row[1]: row[4] for row in _LABELS}
_IGNORED = {row[1]: row[5] for row in _LABELS}
#: Categories in the order of the official ``category2labels`` (first appearance in the table).
CATEGORIES: List[str] = list(dict.fromkeys(row[3] for row in _OFFICIAL))
_NOT_IGNORED = [i for i in _IDS if not _IGNORED[i]]


def _instance_categories() -> Dict[str, List[int]]:
    """Categories whose labels all have instances (official ``generateInstanceStats``), with their ids."""
    out: Dict[str, List[int]] = {}
    for cat in CATEGORIES:
        rows = [row for row in _OFFICIAL if row[3] == cat and row[1] >= 0]
        if all(row[4] for row in rows):
            out[cat] = [row[1] for row in rows]
    return out


_INSTANCE_CATEGORIES = _instance_categories()
_INSTANCE_CLASSES = [i for i in _IDS if _HAS_INSTANCES[i] and not _IGNORED[i]]
# Per label id: the index of its instance category in _INSTANCE_CATEGORIES, -1 when none.
_CAT_INDEX: np.ndarray = np.full(N, -1, np.int64)
for _k, (_cat, _ids) in enumerate(_INSTANCE_CATEGORIES.items()):
    _CAT_INDEX[_ids] = _k
# Train id -> label id (the official table); -1 for a value that is not a train id.
_TRAIN_TO_ID: np.ndarray = np.full(256, -1, np.int64)
for _row in _LABELS:
    if 0 <= _row[2] < 255:
        _TRAIN_TO_ID[_row[2]] = _row[1]

_TAIL = re.compile(r"(?=(_\d+_\d+))")


# -- per frame ------------------------------------------------------------------------------------
@dataclass
class _FrameStats:
    """What one frame adds: its confusion matrix and, per evaluated gt instance (in the official
    order), its label id and weighted TP / FN for the class and for the category."""

    matrix: Optional[np.ndarray]
    instances: Optional[np.ndarray] = None  # shape (n, 5): label id, tpW, fnW, catTpW, catFnW
    problems: List[str] = field(default_factory=list)


def _frame_stats(frame, pred_root: Root, pred_path: str, train_ids: bool) -> _FrameStats:
    where = pred_root.display(pred_root.relative(pred_path))
    gt_where = frame.where
    try:
        pred = png.decode_gray(read_file(pred_root.fs, pred_path), where)
    except CityscapesIOError as exc:
        return _FrameStats(None, problems=[str(exc)])
    gt = frame.label_ids()
    inst = frame.instance_ids()
    if gt is None or inst is None:
        return _FrameStats(None, problems=[f"{gt_where}: no ground truth label or instance ids"])
    problems = []
    if pred.shape != gt.shape:
        problems.append(f"{where}: size {pred.shape[1]}x{pred.shape[0]}, the ground truth "
                        f"{frame.id} is {gt.shape[1]}x{gt.shape[0]}")
        return _FrameStats(None, problems=problems)
    pred = pred.astype(np.int64)
    if train_ids:
        if (pred == 255).any():
            problems.append(f"{where}: train id 255 (ignore) in a prediction: every pixel must be predicted")
        mapped = _TRAIN_TO_ID[np.minimum(pred, 255)]
        bad = np.unique(pred[(mapped < 0) & (pred != 255)])
        if bad.size:
            problems.append(f"{where}: values that are not train ids: {_few(bad)}")
        if problems:
            return _FrameStats(None, problems=problems)
        pred = mapped
    else:
        bad = np.unique(pred[pred >= N])
        if bad.size:
            problems.append(f"{where}: values that are not label ids (0..{N - 1}): {_few(bad)}")
    gt = gt.astype(np.int64)
    bad_gt = np.unique(gt[gt >= N]) if gt.size else np.array([], np.int64)
    if bad_gt.size:
        problems.append(f"{gt_where}: ground truth values that are not label ids: {_few(bad_gt)}")
    if problems:
        return _FrameStats(None, problems=problems)
    matrix = np.bincount((gt * N + pred).ravel(), minlength=N * N).reshape(N, N).astype(np.int64)
    return _FrameStats(matrix, _instance_stats(inst.astype(np.int64), pred))


def _few(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f" ... ({values.size} values)" if values.size > limit else "")


def _instance_stats(inst: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per ground-truth instance (value > 1000, of a class evaluated with instances), in ascending
    order of value: label id, tpWeighted, fnWeighted and, for its category, catTpWeighted, catFnWeighted."""
    sel = inst > 1000
    values = inst[sel]
    if values.size == 0:
        return np.zeros((0, 5))
    p = pred[sel]
    uniq, inv = np.unique(values, return_inverse=True)
    inv = inv.ravel()
    labels = uniq // 1000
    size = np.bincount(inv, minlength=uniq.size)
    tp = np.bincount(inv[p == values // 1000], minlength=uniq.size)
    cat_of_value = np.where(values // 1000 < N, _CAT_INDEX[np.minimum(values // 1000, N - 1)], -1)
    cat_tp = np.bincount(inv[(cat_of_value >= 0) & (_CAT_INDEX[p] == cat_of_value)], minlength=uniq.size)
    rows = []
    for k in range(uniq.size):
        lab = int(labels[k])
        if lab not in _NAME or lab not in _INSTANCE_CLASSES:
            continue  # classes ignored in evaluation (and values the official table does not know)
        n = int(size[k])
        weight = AVG_CLASS_SIZE[_NAME[lab]] / float(n)
        t, ct = int(tp[k]), int(cat_tp[k])
        rows.append((lab, float(t) * weight, float(n - t) * weight, float(ct) * weight, float(n - ct) * weight))
    return np.array(rows, dtype=np.float64).reshape(-1, 5)


def _chunk_stats(frames: Sequence[Any], pred_root: Root, paths: Sequence[str], train_ids: bool) -> List[_FrameStats]:
    out = []
    for frame, path in zip(frames, paths):
        out.append(_frame_stats(frame, pred_root, path, train_ids))
        frame.release()
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
        for lab in _IDS:
            name = _NAME[lab]
            if _IGNORED[lab]:
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
            ids = [i for i in _IDS if _CATEGORY[i] == cat and not _IGNORED[i]]
            others = [i for i in _NOT_IGNORED if _CATEGORY[i] != cat]
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
            "priors": {_NAME[i]: (int(self.confusion_matrix[i, :].sum()) / total if total else float("nan"))
                       for i in _IDS},
            "labels": {_NAME[i]: i for i in _IDS},
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
        for lab in _IDS:
            if not _IGNORED[lab]:
                name = _NAME[lab]
                lines.append(f"{name:<14}: {self.class_scores[name]:>5.3f}    {self.class_inst_scores[name]:>5.3f}")
        lines += ["-" * 32, f"Score Average : {self.average_classes:5.3f}    {self.average_inst_classes:5.3f}",
                  "-" * 32, "", "categories       IoU      nIoU", "-" * 32]
        for cat in CATEGORIES:
            if all(row[5] for row in _OFFICIAL if row[3] == cat):
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


# -- matching predictions to frames -----------------------------------------------------------------
def _match(frames: Sequence[Any], pred_root: Root) -> Tuple[List[str], List[str]]:
    """The prediction file of each frame, and the problems of the prediction tree."""
    keys: Dict[str, int] = {}
    by_tail: Dict[str, List[str]] = {}
    for k, frame in enumerate(frames):
        base = posixpath.basename(frame.id)
        keys[base] = k
        m = re.search(r"_\d+_\d+$", base)
        by_tail.setdefault(m.group(0) if m else "", []).append(base)
    try:
        files = find_files(pred_root.fs, pred_root.path)
    except FileNotFoundError as exc:
        raise CityscapesIOError(str(pred_root), "the prediction folder does not exist") from exc
    found: Dict[int, List[str]] = {}
    problems = []
    untailed = by_tail.get("", [])
    for path in files:
        name = posixpath.basename(path)
        if not name.lower().endswith(".png"):
            continue
        hits = {base for t in _TAIL.findall(name) for base in by_tail.get(t, []) if base in name}
        hits.update(base for base in untailed if base in name)
        shown = pred_root.display(pred_root.relative(path))
        if not hits:
            problems.append(f"{shown}: matches no ground-truth frame")
        elif len(hits) > 1:
            problems.append(f"{shown}: matches several ground-truth frames: {', '.join(sorted(hits))}")
        else:
            found.setdefault(keys[hits.pop()], []).append(path)
    out = []
    for k, frame in enumerate(frames):
        paths = found.get(k, [])
        if not paths:
            problems.append(f"{frame.where}: no prediction for frame {frame.id}")
        elif len(paths) > 1:
            shown = ", ".join(pred_root.display(pred_root.relative(p)) for p in paths)
            problems.append(f"{frame.where}: several predictions for frame {frame.id}: {shown}")
        out.append(paths[0] if paths else "")
    return out, problems


def _refuse(problems: Sequence[str], pred_root: Root) -> CityscapesIOError:
    return CityscapesIOError(str(pred_root), f"{len(problems)} problem(s) with the predictions:\n" +
                             "\n".join(f"  {p}" for p in problems))


# -- entry point ----------------------------------------------------------------------------------
def evaluate(gt, predictions, task: str = "semantic", *, split: str = "val", storage_options=None,
             pred_storage_options=None, workers: int = 1, progress: Optional[Callable[[int], None]] = None,
             **options: Any) -> SemanticResult:
    """Evaluate ``predictions`` against the ground truth ``gt`` with the official rules.

    Parameters
    ----------
    gt : str or path
        A Cityscapes root (local, zip, fsspec URL) with ``gtFine`` label and instance ids.
    predictions : str or path
        Folder or URL holding one single-channel PNG per ground-truth frame whose file name
        contains ``<city>_<seq>_<frame>`` (searched recursively), holding label ids.
    task : str
        ``"semantic"`` (the only task so far).
    split : str
        The split evaluated (default ``"val"``).
    workers : int
        Processes; frames are split over them with identical results.
    progress : callable, optional
        Called with the number of frames done.
    pred_train_ids : bool
        (option) the predictions hold train ids (0..18), mapped to label ids by the official table.

    Raises
    ------
    CityscapesIOError
        Listing every problem of the predictions (a frame without prediction, a prediction that
        matches no frame or several, wrong sizes, values that are not label ids), with file names.
    """
    if task not in TASKS:
        raise ValueError(f"unknown or not yet available task {task!r}; available tasks so far: {', '.join(TASKS)}")
    train_ids = bool(options.pop("pred_train_ids", False))
    if options:
        raise TypeError(f"unknown option(s) for task {task!r}: {', '.join(sorted(options))}")
    ds = open_dataset(gt, split=split, storage_options=storage_options)
    frames = list(ds)
    if not frames:
        raise CityscapesIOError(str(gt), f"no ground-truth frames in split {split!r}")
    pred_root = resolve_root(predictions, pred_storage_options)
    paths, problems = _match(frames, pred_root)
    if problems:
        raise _refuse(problems, pred_root)

    matrix: np.ndarray = np.zeros((N, N), np.int64)
    class_acc: Dict[str, List[float]] = {_NAME[i]: [0.0, 0.0] for i in _INSTANCE_CLASSES}
    cat_names = list(_INSTANCE_CATEGORIES)
    cat_acc: Dict[str, List[float]] = {c: [0.0, 0.0] for c in cat_names}
    done = 0

    def add(stats: _FrameStats) -> None:
        nonlocal done, matrix
        done += 1
        if stats.problems:
            problems.extend(stats.problems)
        elif stats.matrix is not None:
            matrix += stats.matrix
            for lab, tpw, fnw, ctpw, cfnw in (stats.instances if stats.instances is not None else ()):
                acc = class_acc[_NAME[int(lab)]]
                acc[0] += tpw
                acc[1] += fnw
                cat = _CATEGORY[int(lab)]
                if cat in cat_acc:
                    cat_acc[cat][0] += ctpw
                    cat_acc[cat][1] += cfnw
        if progress is not None:
            progress(done)

    if workers <= 1:
        for frame, path in zip(frames, paths):
            add(_frame_stats(frame, pred_root, path, train_ids))
            frame.release()
    else:
        size = max(1, min(16, len(frames) // (workers * 4) or 1))
        chunks = [(frames[i:i + size], paths[i:i + size]) for i in range(0, len(frames), size)]
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            pending: List[Future] = []
            it = iter(chunks)
            for chunk in it:  # a bounded window of chunks in flight, consumed in order
                pending.append(pool.submit(_chunk_stats, chunk[0], pred_root, chunk[1], train_ids))
                if len(pending) >= 2 * workers:
                    for stats in pending.pop(0).result():
                        add(stats)
            for fut in pending:
                for stats in fut.result():
                    add(stats)
    if problems:
        raise _refuse(problems, pred_root)
    return SemanticResult(matrix, class_acc, cat_acc, len(frames))
