"""CityPersons pedestrian detection: the log-average miss rate (MR⁻²) with the rules of the public
CityPersons evaluation code, ``evaluation/eval_script/eval_MR_multisetup.py`` and its ``coco.py``
(cvgroup-njust/CityPersons; Pedestron and CSP ship copies), as its ``eval_demo.py`` runs it.

Ground truth: ``Frame.persons()`` of every frame of the split (``gtBboxCityPersons``), written as
the reference's ``val_gt.json`` has them: every object is a candidate, a pedestrian is regular,
any other label (rider, sitting person, person (other), person group, ignore) is an *ignore*
object; its height is the full box's height, its visibility the visible box's area over the full
box's. Every frame of the split is an image, with or without persons or detections.

Predictions: a COCO results JSON (path or URL), a list of ``{"image_id", "bbox": [x, y, w, h],
"score", "category_id"?}``, or a dict holding that list under ``annotations`` and the COCO
``images`` beside it. ``image_id`` is the frame's base name (``frankfurt_000000_000294``, or a file
name starting with it) or an integer: the id of an entry of ``images`` (given in the JSON, or as
``images=`` the path of a COCO JSON such as the ``coco_citypersons`` export's annotations file)
whose ``file_name`` (or CityPersons' ``im_name``) starts with the frame's base name; without
``images``, integers number the ground-truth frames 1..N in the split's order (as the export numbers
them). Only detections of ``category_id`` 1 (pedestrian; also when absent) are evaluated, as the
reference evaluates category 1 alone. Or a :class:`~cityscapes_io.Dataset` whose frames have
``persons()``: each ``pedestrian`` is a detection of score 1 (Person has no score: ties are then
broken by frame order, and a warning says so).

The rules (eval_MR_multisetup.py; lines of the file as published):

- Setups (``Params.setDetParams``, l. 459-461): Reasonable height [50, 1e10], visibility
  [0.65, 1e10]; Small [50, 75], [0.65, 1e10]; Heavy [50, 1e10], [0.2, 0.65]; All [20, 1e10],
  [0.2, 1e10]. An object outside its setup's ranges, bounds included as in range
  (``h < lo or h > hi``, l. 101-102), is ignored.
- Detections (``evaluateImg``, l. 230-236): per image sorted by descending score (stable), the first
  1000 kept, then only those with height ``>= lo / 1.25`` and ``< hi * 1.25`` (``expFilter``)
  evaluated; the others count for nothing.
- Overlap (``iou``, l. 174-205): the intersection over the union, or over the detection's area
  alone for an ignored object; boxes ``[x, y, w, h]`` as given (no +1, no aspect-ratio
  standardisation: the reference applies none).
- Matching (l. 252-284) at IoU 0.5 (``>=``): in score order, each detection takes the regular
  object with the highest overlap not yet taken (the later of equal ones); without one, the first
  ignored object it overlaps enough (ignored objects can take any number of detections). A
  detection on an ignored object counts for nothing; an unmatched one is a false positive.
- The curve (``accumulate``, l. 345-388): the detections of all images by descending score
  (stable: image order, then the order above), ``fppi = FP / images``, ``recall = TP / regular
  objects``; at each of the nine FPPI points ``0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778,
  0.3162, 0.5623, 1.0000`` (l. 452) the recall of the last detection whose FPPI is at most the
  point (``searchsorted(side='right') - 1``); where no detection is (the first already exceeds
  the point), index -1: the *last* detection's recall, as the reference reads it; with no
  detection at all, recall 0 everywhere.
- MR (``summarize``, l. 422-429): ``exp(mean(log(1 - recall)))`` over the nine points, so one
  point of miss rate 0 makes MR 0.

Departures, where the reference fails or prints a sentinel: a setup without a regular object is
NaN (the reference prints -100%); an empty result list scores MR 1 (the reference raises on
``anns[0]``). A detection of a frame not in the ground truth (the reference asserts), a box that is
not four finite numbers or has a negative size, a score that is not a finite number are problems
of the submission, each naming the JSON file.
"""
from __future__ import annotations

import math
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import jsonfile
from ..errors import CityscapesIOError
from ..storage import Root, read_file
from .base import Matched, Task
from .common import json_root, match_dataset

__all__ = ["CityPersonsResult", "CityPersonsTask", "CityPersonsStatistics", "Detections", "SETUPS",
           "FPPI_POINTS", "EXPAND", "IOU", "MAX_DETECTIONS", "frame_problems", "frame_statistics",
           "person_arrays", "log_average_miss_rate"]

_BIG = 1e5 ** 2
#: The setups: name -> ((height low, high), (visibility low, high)), bounds inclusive.
SETUPS: Dict[str, Tuple[Tuple[float, float], Tuple[float, float]]] = {
    "Reasonable": ((50.0, _BIG), (0.65, _BIG)),
    "Small": ((50.0, 75.0), (0.65, _BIG)),
    "Heavy": ((50.0, _BIG), (0.2, 0.65)),
    "All": ((20.0, _BIG), (0.2, _BIG)),
}
#: The reference's labels of the setups (its printed table).
SETUP_LABELS: Dict[str, str] = {"Reasonable": "Reasonable", "Small": "Reasonable_small",
                                "Heavy": "Reasonable_occ=heavy", "All": "All"}
#: The nine FPPI points, as the reference writes them.
FPPI_POINTS: np.ndarray = np.array([0.0100, 0.0178, 0.0316, 0.0562, 0.1000, 0.1778, 0.3162, 0.5623, 1.0000])
#: Detections' height range: ``[low / EXPAND, high * EXPAND)``.
EXPAND = 1.25
IOU = 0.5
MAX_DETECTIONS = 1000
_NAMES = tuple(SETUPS)


@dataclass(frozen=True, eq=False)
class Detections:
    """One frame's detections: ``boxes`` N×4 ``[x, y, w, h]`` and ``scores`` N, in the order given
    (the order breaks ties of equal scores)."""

    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4)), np.zeros(0))


@dataclass
class CityPersonsStatistics:
    """One frame's record per setup: the scores of its evaluated detections that are not on an
    ignored object (``scores``), whether each is a true positive (``tp``), in the frame's order,
    and the number of regular objects (``regular``)."""

    scores: Dict[str, np.ndarray] = field(default_factory=dict)
    tp: Dict[str, np.ndarray] = field(default_factory=dict)
    regular: Dict[str, int] = field(default_factory=dict)
    problems: List[str] = field(default_factory=list)


# -- per frame ------------------------------------------------------------------------------------
def person_arrays(persons: Sequence[Any]) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Boxes N×4, ignore flags (not a pedestrian), heights (the full box's) and visibilities of
    CityPersons records, as the reference's ground-truth JSON holds them."""
    boxes = np.array([p.bbox for p in persons], np.float64).reshape(-1, 4)
    ignore = np.array([p.label != "pedestrian" for p in persons], bool)
    vis = np.array([p.visibility for p in persons], np.float64)
    return boxes, ignore, boxes[:, 3].copy(), vis


def _ground_truth(frame: Any) -> Tuple[Optional[List[Any]], List[str]]:
    try:
        persons = frame.persons()
    except CityscapesIOError as exc:
        return None, [str(exc)]
    if persons is None:
        return None, [f"{frame.where}: no CityPersons ground truth (gtBboxCityPersons/…/"
                      f"{posixpath.basename(frame.id)}_gtBboxCityPersons.json) for frame {frame.id}"]
    return persons, []


def _overlaps(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """The reference's overlap of each detection with each object: intersection over union, or
    over the detection's area for an ignored object; 0 without a positive intersection."""
    out = np.zeros((dt.shape[0], gt.shape[0]))
    if out.size == 0:
        return out
    dx1, dy1 = dt[:, 0:1], dt[:, 1:2]
    dx2, dy2 = dx1 + dt[:, 2:3], dy1 + dt[:, 3:4]
    gx1, gy1 = gt[None, :, 0], gt[None, :, 1]
    gx2, gy2 = gx1 + gt[None, :, 2], gy1 + gt[None, :, 3]
    iw = np.minimum(dx2, gx2) - np.maximum(dx1, gx1)
    ih = np.minimum(dy2, gy2) - np.maximum(dy1, gy1)
    inter = iw * ih
    darea = dt[:, 2:3] * dt[:, 3:4]
    garea = gt[None, :, 2] * gt[None, :, 3]
    union = np.where(crowd[None, :], darea, darea + garea - inter)
    hit = (iw > 0) & (ih > 0)
    np.divide(inter, union, out=out, where=hit)
    return out


def _match(dt: np.ndarray, gt: np.ndarray, gt_ignore: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per detection (in score order): whether it took a regular object, and whether it sits on
    an ignored one (the reference's greedy loop)."""
    order = np.argsort(gt_ignore.astype(np.int64), kind="mergesort")  # regular objects first
    gt, ign = gt[order], gt_ignore[order]
    ious = _overlaps(dt, gt, ign)
    taken = np.zeros(gt.shape[0], bool)
    tp = np.zeros(dt.shape[0], bool)
    on_ignore = np.zeros(dt.shape[0], bool)
    threshold = min(IOU, 1 - 1e-10)
    for d in range(dt.shape[0]):
        best, best_g, kind = threshold, -1, 0
        for g in range(gt.shape[0]):
            if taken[g]:
                continue
            if kind != 0 and ign[g]:
                break
            if ious[d, g] < best:
                continue
            best, best_g, kind = float(ious[d, g]), g, (-1 if ign[g] else 1)
        if best_g < 0:
            continue
        if kind == 1:
            taken[best_g] = True
            tp[d] = True
        else:
            on_ignore[d] = True
    return tp, on_ignore


def _statistics(persons: Sequence[Any], dets: Detections) -> CityPersonsStatistics:
    boxes, ignore, height, vis = person_arrays(persons)
    order = np.argsort(-np.asarray(dets.scores, np.float64), kind="mergesort")[:MAX_DETECTIONS]
    d_boxes, d_scores = np.asarray(dets.boxes, np.float64).reshape(-1, 4)[order], np.asarray(dets.scores)[order]
    rec = CityPersonsStatistics()
    for name, ((h_lo, h_hi), (v_lo, v_hi)) in SETUPS.items():
        gt_ignore = ignore | (height < h_lo) | (height > h_hi) | (vis < v_lo) | (vis > v_hi)
        keep = (d_boxes[:, 3] >= h_lo / EXPAND) & (d_boxes[:, 3] < h_hi * EXPAND)
        dt, sc = d_boxes[keep], d_scores[keep]
        tp, on_ignore = _match(dt, boxes, gt_ignore)
        rec.scores[name] = sc[~on_ignore].astype(np.float64)
        rec.tp[name] = tp[~on_ignore]
        rec.regular[name] = int((~gt_ignore).sum())
    return rec


def frame_problems(frame: Any, dets: Any) -> List[str]:
    """The problems of a frame's ground truth (its CityPersons file missing or unreadable) and of
    its prediction Frame (its persons unreadable)."""
    persons, problems = _ground_truth(frame)
    if persons is None:
        return problems
    return _detections(dets)[1]


def frame_statistics(frame: Any, dets: Any) -> CityPersonsStatistics:
    """One frame's record (:class:`CityPersonsStatistics`) against its detections
    (:class:`Detections`, or a prediction Frame whose pedestrians are detections of score 1)."""
    persons, problems = _ground_truth(frame)
    if persons is None:
        return CityPersonsStatistics(problems=problems)
    found, problems = _detections(dets)
    if problems:
        return CityPersonsStatistics(problems=problems)
    return _statistics(persons, found)


def _detections(dets: Any) -> Tuple[Detections, List[str]]:
    if isinstance(dets, Detections):
        return dets, []
    try:
        persons = dets.persons()
    except CityscapesIOError as exc:
        return Detections.empty(), [str(exc)]
    boxes = [p.bbox for p in persons or () if p.label == "pedestrian"]
    return Detections(np.array(boxes, np.float64).reshape(-1, 4), np.ones(len(boxes))), []


# -- the miss rate --------------------------------------------------------------------------------
def log_average_miss_rate(scores: np.ndarray, tp: np.ndarray, regular: int, images: int) -> Tuple[float, np.ndarray]:
    """MR⁻² and the recall at the nine FPPI points of the detections (not on ignored objects) of
    all images, concatenated in image order: the reference's ``accumulate`` and ``summarize``.
    NaN and an empty curve without regular objects."""
    if regular == 0 or images == 0:
        return float("nan"), np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    hits = tp[order]
    tps = np.cumsum(hits).astype(np.float64)
    fps = np.cumsum(~hits).astype(np.float64)
    q = np.zeros(FPPI_POINTS.size)
    if tps.size:
        recall = tps / regular
        recall = np.minimum.accumulate(recall[::-1])[::-1]
        fppi = fps / images
        at = np.searchsorted(fppi, FPPI_POINTS, side="right") - 1
        q = recall[at]  # -1: the last detection's recall, as the reference indexes it
    miss = 1 - q
    with np.errstate(divide="ignore"):
        return float(np.exp(np.mean(np.log(miss[miss < 2])))), q


class CityPersonsResult:
    """The miss rates: ``mr`` (setup -> MR⁻² as a fraction, NaN without regular objects),
    ``recall`` (setup -> the recall at the nine FPPI points), ``frames``, ``detections`` (the
    detections of category 1 given). ``to_dict()``: ``{"Reasonable": …, "Small": …, "Heavy": …,
    "All": …}``; ``print(result)``: the table, in percent as the reference prints it."""

    def __init__(self, mr: Dict[str, float], recall: Dict[str, np.ndarray], frames: int, detections: int):
        self.mr = mr
        self.recall = recall
        self.frames = frames
        self.detections = detections

    def to_dict(self) -> Dict[str, float]:
        return dict(self.mr)

    def __str__(self) -> str:
        lines = [f"{self.frames} frames, {self.detections} detections", "",
                 f"{'setup':<22}{'height':>14}{'visibility':>14}{'MR-2':>10}", "-" * 60]
        for name, ((h_lo, h_hi), (v_lo, v_hi)) in SETUPS.items():
            height = f"[{h_lo:.0f}:{'inf' if h_hi >= _BIG else f'{h_hi:.0f}'}]"
            vis = f"[{v_lo:.2f}:{'inf' if v_hi >= _BIG else f'{v_hi:.2f}'}]"
            mr = self.mr[name]
            lines.append(f"{name:<22}{height:>14}{vis:>14}{'n/a' if math.isnan(mr) else f'{100 * mr:.2f}%':>10}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "CityPersonsResult(" + ", ".join(f"{k}={v:.4f}" for k, v in self.mr.items()) + ")"


# -- the predictions ------------------------------------------------------------------------------
_FRAME_IN_NAME = re.compile(r"^(.+?_\d+_\d+)(?=$|[_.])")


def _load(url: Any, storage_options: Any) -> Tuple[Any, str, List[str]]:
    """A JSON document, how messages name it, and the problems (unreadable, not JSON)."""
    root, name = json_root(str(url), storage_options)
    where = root.display(name)
    try:
        return jsonfile.loads(read_file(root.fs, root.join(name)), where), where, []
    except CityscapesIOError as exc:
        return None, where, [str(exc)]


def _image_names(images: Any, where: str) -> Tuple[Dict[int, str], List[str]]:
    """COCO ``images``: integer id -> frame base name (from ``file_name`` or ``im_name``)."""
    if not isinstance(images, list):
        return {}, [f"{where}: 'images' is not a list"]
    out: Dict[int, str] = {}
    problems = []
    for k, img in enumerate(images):
        ident = img.get("id") if isinstance(img, dict) else None
        name = (img.get("file_name") or img.get("im_name")) if isinstance(img, dict) else None
        m = _FRAME_IN_NAME.match(posixpath.basename(name)) if isinstance(name, str) else None
        if isinstance(ident, bool) or not isinstance(ident, int) or m is None:
            problems.append(f"{where}: images[{k}]: expected an integer 'id' and a 'file_name' holding a frame id")
            continue
        out[ident] = m.group(1)
    return out, problems


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse(doc: Any, where: str, frames: Sequence[Any], by_int: Optional[Dict[int, str]]
           ) -> Tuple[List[Tuple[List[List[float]], List[float]]], int, List[str]]:
    """Per frame its boxes and scores (category 1), the number of those detections, the problems."""
    problems: List[str] = []
    if isinstance(doc, dict):
        if by_int is None and "images" in doc:
            by_int, problems = _image_names(doc["images"], where)
        doc = doc.get("annotations")
    if not isinstance(doc, list):
        return [], 0, [f"{where}: not a COCO results JSON (a list of detections, or 'annotations')"]
    index = {posixpath.basename(f.id): k for k, f in enumerate(frames)}
    out: List[Tuple[List[List[float]], List[float]]] = [([], []) for _ in frames]
    count = 0
    for k, det in enumerate(doc):
        at = f"{where}: detection {k}"
        if not isinstance(det, dict):
            problems.append(f"{at}: not an object")
            continue
        image_id, box, score = det.get("image_id"), det.get("bbox"), det.get("score")
        frame: Optional[int] = None
        if isinstance(image_id, str):
            m = _FRAME_IN_NAME.match(posixpath.basename(image_id))
            frame = index.get(m.group(1)) if m else None
        elif isinstance(image_id, int) and not isinstance(image_id, bool):
            if by_int is None:
                frame = image_id - 1 if 1 <= image_id <= len(frames) else None
            else:
                frame = index.get(by_int.get(image_id, ""))
        if frame is None:
            problems.append(f"{at}: image_id {image_id!r} is no ground-truth frame")
            continue
        if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box):
            problems.append(f"{at}: bbox must be [x, y, w, h] of finite numbers, got {str(box)[:60]}")
            continue
        if box[2] < 0 or box[3] < 0:
            problems.append(f"{at}: bbox {box} has a negative size")
            continue
        if not _number(score):
            problems.append(f"{at}: score {score!r} is not a finite number")
            continue
        category = det.get("category_id", 1)
        if category != 1:
            continue  # the reference evaluates category 1 (pedestrian) alone
        out[frame][0].append([float(v) for v in box])
        out[frame][1].append(float(score))  # type: ignore[arg-type]  # _number checked it
        count += 1
    return out, count, problems


# -- the task -------------------------------------------------------------------------------------
class CityPersonsTask(Task):
    """The CityPersons task: predictions a COCO results JSON or a Dataset with ``persons()``;
    a frame's statistics per setup the scores and hits of its detections
    (:class:`CityPersonsStatistics`); the result a :class:`CityPersonsResult`. Option ``images``:
    the path or URL of a COCO JSON whose ``images`` give the integer ``image_id``\\ s' frames."""

    options = ("images",)

    frame_problems = staticmethod(frame_problems)
    frame_statistics = staticmethod(frame_statistics)

    def match(self, frames: Sequence[Any], predictions: Any, *, pred_storage_options: Any = None,
              images: Any = None, **options: Any) -> Matched:
        """Every ground-truth frame with its detections; the context: the number of detections."""
        from ..dataset import Dataset

        if isinstance(predictions, Dataset):
            found, problems = match_dataset(frames, predictions)
            problems = [p for p in problems if ": no prediction for frame " not in p]  # no detection is fine
            args = [(p if p is not None else Detections.empty(),) for p in found]
            return Matched(list(frames), args, (), problems, ", ".join(predictions.roots) or "the prediction dataset",
                           context=None)
        doc, where, problems = _load(predictions, pred_storage_options)
        by_int: Optional[Dict[int, str]] = None
        if images is not None:
            img_doc, img_where, img_problems = _load(images, pred_storage_options)
            problems += img_problems
            if isinstance(img_doc, dict):
                by_int, more = _image_names(img_doc.get("images"), img_where)
                problems += more
            elif not img_problems:
                problems.append(f"{img_where}: not a COCO JSON with 'images'")
        if problems:
            return Matched(list(frames), [(Detections.empty(),)] * len(frames), (), problems, where)
        per_frame, count, problems = _parse(doc, where, frames, by_int)
        args = [(Detections(np.array(b, np.float64).reshape(-1, 4), np.array(s, np.float64)),) for b, s in per_frame]
        return Matched(list(frames), args or [(Detections.empty(),)] * len(frames), (), problems, where,
                       context=count)

    def start(self, matched: Matched) -> Dict[str, Any]:
        return {"scores": {n: [] for n in _NAMES}, "tp": {n: [] for n in _NAMES}, "regular": dict.fromkeys(_NAMES, 0),
                "detections": 0}

    def add(self, total: Dict[str, Any], stats: CityPersonsStatistics) -> Dict[str, Any]:
        for n in _NAMES:
            total["scores"][n].append(stats.scores[n])
            total["tp"][n].append(stats.tp[n])
            total["regular"][n] += stats.regular[n]
        return total

    def result(self, total: Dict[str, Any], matched: Matched, frames: int) -> CityPersonsResult:
        mr: Dict[str, float] = {}
        recall: Dict[str, np.ndarray] = {}
        for n in _NAMES:
            scores = np.concatenate(total["scores"][n]) if total["scores"][n] else np.zeros(0)
            tp = np.concatenate(total["tp"][n]) if total["tp"][n] else np.zeros(0, bool)
            mr[n], recall[n] = log_average_miss_rate(scores, tp, total["regular"][n], frames)
        count = matched.context if isinstance(matched.context, int) else sum(
            int(a[0].scores.size) if isinstance(a[0], Detections) else 0 for a in matched.args)
        return CityPersonsResult(mr, recall, frames, count)

    def warnings(self, result: CityPersonsResult, total: Dict[str, Any], matched: Matched) -> List[str]:
        if matched.context is None:
            return [f"{matched.where}: detections from a Dataset's persons() have no score (all 1.0): the miss "
                    f"rates are computed on ties, broken by frame order; give a COCO results JSON with scores"]
        return []
