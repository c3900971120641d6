"""Panoptic evaluation with the rules of cityscapesScripts' ``evaluation/evalPanopticSemanticLabeling.py``
(FORMAT.md section 10).

- Predictions: a COCO panoptic JSON (path or URL) whose PNGs are in the folder of the same stem
  beside it (segment id ``R + 256 G + 65536 B``, 0 where no segment is listed: VOID); each
  annotation's ``image_id`` is the frame's base name (``frankfurt_000000_000294``), as in the
  official ground truth, or an integer id (COCO's, as the ``coco_panoptic`` writer writes) of an
  entry of the JSON's ``images`` whose ``file_name`` holds the frame id.
- Ground truth: the official ``gtFine/cityscapes_panoptic_<split>.json`` and its folder (the
  output of ``csCreatePanopticImgs`` or of :func:`cityscapes_io.prepare` with
  ``kinds=["panoptic"]``) when they are there, found beside the frames' ``gtFine`` tree;
  otherwise each frame's ``instanceIds`` with the same rules (:mod:`cityscapes_io.panoptic`),
  derived on the fly (so also for a frame the JSON does not list, or when the JSON does not
  parse). Both give the same numbers. Categories come from that JSON, else from
  :func:`cityscapes_io.panoptic.panoptic_categories` of the frames' labels.
- Per category: a ground-truth segment (not a crowd) and a predicted segment of its category
  match when IoU > 0.5, the union leaving out the predicted segment's pixels on VOID; matches
  add their IoU and a TP; unmatched segments that are not crowds are FN; unmatched predicted
  segments are FP unless more than half of them lies on VOID or on the crowd region of their
  category. PQ = ΣIoU / (TP + ½FP + ½FN), SQ = ΣIoU / TP (0 without TP), RQ = TP / (TP + ½FP +
  ½FN); a category with no TP, FP or FN scores 0 and is left out of the averages over All,
  Things (``isthing`` 1) and Stuff, whose ``n`` counts the categories averaged. (The official
  script divides by zero when ``n`` is 0; here the averages are NaN.)

The per-frame work maps segment ids to dense indices and counts the pairs in one pass
(:func:`cityscapes_io.counting.count_segments`): no sort over the pixels.
"""
from __future__ import annotations

import io
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .. import jsonfile, png
from ..counting import count_pairs, count_segments, segment_ids
from ..errors import CityscapesIOError, InvalidFileError, UnsafePathError
from ..labels import has_instances, official_label
from ..names import GT_DIR
from ..panoptic import panoptic_categories, panoptic_frame
from ..storage import Root, read_file, resolve_inside
from .base import Matched, Task
from .common import few, json_root, match_dataset

__all__ = ["PanopticResult", "PanopticTask", "PanopticStatistics", "SegmentPredictions", "frame_problems",
           "frame_statistics"]

# A prediction annotation as the frames need it: (PNG file name, segment ids, category ids).
_Pred = Tuple[str, Tuple[int, ...], Tuple[int, ...]]
# A ground-truth annotation of the official files: (PNG file name, ids, category ids, areas, iscrowd).
_Gt = Tuple[str, Tuple[int, ...], Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]


# -- per frame ------------------------------------------------------------------------------------
@dataclass
class PanopticStatistics:
    """What one frame adds, per category (in the order of the categories): the IoU of its
    matches, its TP, FP and FN."""

    iou: Optional[np.ndarray] = None
    counts: Optional[np.ndarray] = None  # shape (3, n categories): tp, fp, fn
    problems: List[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class SegmentPredictions:
    """One frame's panoptic prediction held in memory (a frame function's ``pred``, as
    :mod:`cityscapes_io.metrics` gives it), what a COCO panoptic annotation and its PNG say:
    ``ids`` the ``H×W`` segment id of every pixel (0 is VOID unless listed), ``segment_ids``
    and ``category_ids`` the listed segments and their categories (an id listed twice keeps
    its last category, as the official's dict does). ``where`` names it in problems."""

    ids: np.ndarray
    segment_ids: Tuple[int, ...]
    category_ids: Tuple[int, ...]
    where: str = "prediction"


def _held_prediction(pred: SegmentPredictions, known: Dict[int, int]
                     ) -> Tuple[Optional[np.ndarray], Tuple[int, ...], Tuple[int, ...], str, List[str]]:
    """:func:`_made_prediction` of a prediction held in memory: its pixels as ``H×W`` uint32,
    the segment ids and category ids listed, the name, the problems."""
    where, ids = pred.where, pred.ids
    if ids.ndim != 2 or ids.dtype.kind not in "ui":
        return None, (), (), where, [f"{where}: segment ids of shape {ids.shape} and type {ids.dtype}, not H×W "
                                     f"integers"]
    if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= 1 << 32):
        return None, (), (), where, [f"{where}: segment ids outside 0..4294967295"]
    if len(pred.segment_ids) != len(pred.category_ids):
        return None, (), (), where, [f"{where}: {len(pred.segment_ids)} segment ids, {len(pred.category_ids)} "
                                     f"category ids"]
    by_id = {int(i): int(c) for i, c in zip(pred.segment_ids, pred.category_ids)}
    unknown = sorted({c for c in by_id.values() if c not in known})
    if unknown:
        return None, (), (), where, [f"{where}: unknown category ids {unknown}"]
    return (np.ascontiguousarray(ids, np.uint32), tuple(by_id), tuple(by_id.values()), where, [])


def _segment_ids(data: bytes, where: str) -> np.ndarray:
    """The pixels of a COCO panoptic PNG whose header was read (:func:`_read_png`), in a form
    :func:`counting.count_segments` reads: ``H×W×3`` RGB from the fast PNG path, else the
    segment ids ``R + 256 G + 65536 B`` as flat uint32 (Pillow holds RGB pixels in four bytes;
    their copy as ``RGBX``, the pad byte masked off, is cheaper than packing them to three)."""
    if png.fast_path_active():
        return png.decode_rgb(data, where)
    try:
        im: Image.Image = Image.open(io.BytesIO(data))
        if im.mode != "RGB":
            im = im.convert("RGB")
        raw = im.tobytes("raw", "RGBX")
    except Exception as exc:  # noqa: BLE001 - Pillow's errors on a corrupt or truncated file
        raise InvalidFileError(where, png.decode_failure(data, exc, "cannot decode image")) from exc
    return np.frombuffer(raw, "<u4") & np.uint32(0xFFFFFF)


def _keys(segment_ids: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Segment ids (distinct) ascending, and each one's index in ``segment_ids`` plus one."""
    ids = np.asarray(segment_ids, np.int64)
    order = np.argsort(ids, kind="stable")
    return ids[order], order + 1


def _read_png(root: Root, path: str) -> Tuple[Optional[bytes], Tuple[int, int], str, List[str]]:
    """A COCO panoptic PNG's bytes and its shape (H, W) from its header (nothing decoded), with
    the name problems are reported under; ``None`` with the problems when it cannot be read."""
    where = root.display(root.relative(path))
    try:
        data = read_file(root.fs, path)
        header = png.read_header(data, where)
    except CityscapesIOError as exc:
        return None, (0, 0), where, [str(exc)]
    return data, (header.height, header.width), where, []


def _read_prediction(root: Root, path: str, frame: Any, gshape: Optional[Tuple[int, ...]]
                     ) -> Tuple[Optional[bytes], str, List[str]]:
    """A prediction PNG's bytes when its header's size is the ground truth's ``gshape`` (None
    when the ground truth cannot be read: the prediction is not decoded then)."""
    data, shape, where, problems = _read_png(root, path)
    if data is not None and gshape is not None and shape != tuple(gshape):
        problems.append(f"{where}: size {shape[1]}x{shape[0]}, the ground truth {frame.id} is "
                        f"{gshape[1]}x{gshape[0]}")
    return (data if gshape is not None and not problems else None), where, problems


def _decoded(data: Optional[bytes], where: str, problems: List[str]) -> Optional[np.ndarray]:
    """The segment ids of a PNG read by :func:`_read_png`, None (a problem added) when it does not decode."""
    if data is None:
        return None
    try:
        return _segment_ids(data, where)
    except CityscapesIOError as exc:
        problems.append(str(exc))
        return None


def _derived_gt(frame: Any, cat_index: Dict[int, int]) -> Tuple[Optional[np.ndarray], Any, Any, List[str]]:
    """A frame's ground truth from its instanceIds by the rules of csCreatePanopticImgs: the
    values (flat uint16), a table of each value's segment index plus one (0: VOID), and
    (category index, crowd flag, area) per segment."""
    where = frame.where
    try:
        inst = frame.instance_ids()
    except CityscapesIOError as exc:
        return None, None, None, [str(exc)]
    if inst is None:
        return None, None, None, [f"{where}: no ground truth instance ids"]
    values = inst.astype(np.uint16, copy=False)
    area = count_pairs(values, None, 1, 65536)
    table: np.ndarray = np.zeros(65536, np.int64)
    cats, crowd, areas, problems = [], [], [], []
    for v in np.flatnonzero(area):
        v = int(v)
        label = frame.labels.get(v if v < 1000 else v // 1000)
        if label is None:
            problems.append(f"{where}: value {v} of no label")
            continue
        ref = official_label(label.name) or label  # (the official label of its name says how it is evaluated)
        if ref.ignore_in_eval or label.id < 0:
            continue
        if ref.id not in cat_index:
            problems.append(f"{where}: label {ref.name} ({ref.id}) is not a category")
            continue
        cats.append(cat_index[ref.id])
        crowd.append(v < 1000 and bool(has_instances(ref, False)))
        areas.append(int(area[v]))
        table[v] = len(cats)
    if problems:
        return None, None, None, problems
    segs = (np.array(cats, np.int64), np.array(crowd, bool), np.array(areas, np.int64))
    return values, table, segs, []


def _made_prediction(pred: Any, known: Dict[int, int]
                     ) -> Tuple[Optional[np.ndarray], Tuple[int, ...], Tuple[int, ...], str, List[str]]:
    """A prediction Frame made into COCO panoptic segments by the rules of csCreatePanopticImgs
    (:func:`cityscapes_io.panoptic.panoptic_frame`, as ``export_predictions`` writes them): the
    segment ids of its pixels (H x W uint32), the segment ids and category ids listed, with the
    name problems are reported under; None with the problems when it cannot be made."""
    where = pred.where or f"prediction {pred.id}"
    try:
        made = panoptic_frame(pred)
    except CityscapesIOError as exc:
        return None, (), (), where, [str(exc)]
    if made is None:
        return None, (), (), where, [f"{where}: prediction frame {pred.id} has no instance ids"]
    pixels, _, annotation = made
    segments = annotation["segments_info"]
    ids = tuple(int(seg["id"]) for seg in segments)
    cats = tuple(int(seg["category_id"]) for seg in segments)
    unknown = sorted({c for c in cats if c not in known})
    if unknown:
        return None, (), (), where, [f"{where}: unknown category ids {unknown} (labels matched by name to the "
                                     f"official table)"]
    rgb = pixels.astype(np.uint32)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16), ids, cats, where, []


def frame_problems(frame: Any, pred: Any, gt: Optional[_Gt], pred_root: Optional[Root], gt_root: Optional[Root],
                   cat_ids: Tuple[int, ...]) -> List[str]:
    """The problems of one frame's prediction (an annotation of the prediction JSON, a
    prediction Frame, or :class:`SegmentPredictions`) and ground truth."""
    return _frame(frame, pred, gt, pred_root, gt_root, cat_ids, False).problems


def frame_statistics(frame: Any, pred: Any, gt: Optional[_Gt], pred_root: Optional[Root], gt_root: Optional[Root],
                     cat_ids: Tuple[int, ...]) -> PanopticStatistics:
    """One frame's per-category sums against its prediction (an annotation of the prediction
    JSON, a prediction Frame, or :class:`SegmentPredictions`; ``gt``: its annotation in the
    official ground-truth JSON, None to derive it from the instanceIds)."""
    return _frame(frame, pred, gt, pred_root, gt_root, cat_ids, True)


def _frame(frame: Any, pred: Any, gt: Optional[_Gt], pred_root: Optional[Root], gt_root: Optional[Root],
           cat_ids: Tuple[int, ...], counting: bool) -> PanopticStatistics:
    """The problems of a frame and, when ``counting`` and there are none, its per-category sums."""
    n_cat = len(cat_ids)
    cat_index = {c: k for k, c in enumerate(cat_ids)}
    assert pred is not None
    made: Optional[np.ndarray] = None
    made_problems: List[str] = []
    if isinstance(pred, tuple):
        name, pred_ids, pred_cats = pred
    else:
        made, pred_ids, pred_cats, name, made_problems = (
            _held_prediction(pred, cat_index) if isinstance(pred, SegmentPredictions)
            else _made_prediction(pred, cat_index))
        if made is None:
            return PanopticStatistics(problems=made_problems)
    kp = len(pred_ids)
    step = kp + 1
    # Ground truth first, its size bounding the prediction's decode: per pixel its segment index
    # (0 VOID) times `step`, and per segment its category index, crowd flag and area.
    g_pix: Optional[np.ndarray] = None  # the ground truth's pixels, and its ids' segment index plus one
    g_keys: Any = ()
    g_vals: Any = ()
    gshape: Optional[Tuple[int, int]] = None
    gt_where = frame.where
    if gt is not None:
        assert gt_root is not None
        gt_path, gt_ids, gt_cats, gt_areas, gt_crowd = gt
        g_data, g_shape, gt_where, gt_problems = _read_png(gt_root, gt_path)
        g_pix = _decoded(g_data, gt_where, gt_problems)
        if g_pix is not None:
            gshape = g_shape
            g_keys, g_vals = _keys(gt_ids)
        unknown = sorted({c for c in gt_cats if c not in cat_index})
        if unknown:
            gt_problems.append(f"{gt_where}: unknown category ids {unknown} in the ground truth")
        segs = None if unknown else (np.array([cat_index[c] for c in gt_cats], np.int64),
                                     np.array(gt_crowd, np.int64) == 1, np.array(gt_areas, np.int64))
    else:
        g_pix, table, segs, gt_problems = _derived_gt(frame, cat_index)
        if g_pix is not None:
            gshape = g_pix.shape
            g_keys = np.flatnonzero(table)
            g_vals = table[g_keys]
    if made is None:
        assert pred_root is not None
        data, where, problems = _read_prediction(pred_root, name, frame, gshape)
        pid = _decoded(data, where, problems)
    else:  # a prediction Frame, made in memory: its size compared with the ground truth's
        where, problems = name, made_problems
        if gshape is not None and made.shape != tuple(gshape):
            problems.append(f"{where}: size {made.shape[1]}x{made.shape[0]}, the ground truth {frame.id} is "
                            f"{gshape[1]}x{gshape[0]}")
        pid = made if gshape is not None and not problems else None
    problems += gt_problems
    if pid is None:
        return PanopticStatistics(problems=problems)
    p_keys, p_vals = _keys(pred_ids)
    scoring = not problems and counting and g_pix is not None and segs is not None
    if scoring:
        assert g_pix is not None and segs is not None
        kg = len(segs[0])
        pairs = count_segments(g_pix, g_keys, g_vals, pid, p_keys, p_vals, step, (kg + 1) * step)
        m = pairs.counts.reshape(kg + 1, step)
        pred_area = m.sum(axis=0)
        if gt is not None:
            unlisted = pairs.g_missing - pairs.g_zero
            if unlisted:
                problems.append(f"{gt_where}: {unlisted} pixels of segments the ground-truth JSON does not list")
    else:
        pairs = count_segments(None, (), (), pid, p_keys, p_vals, 1, step)
        pred_area = pairs.counts
    stray = pairs.p_missing - (0 if 0 in pred_ids else pairs.p_zero)
    if stray:
        ids = segment_ids(pid)
        bad = np.unique(ids[~np.isin(ids, np.asarray(pred_ids, np.int64)) & (ids != 0)])
        problems.append(f"{where}: segment ids in the PNG that segments_info does not list: {few(bad)}")
    absent = [pred_ids[j] for j in np.flatnonzero(pred_area[1:] == 0)]
    if absent:
        problems.append(f"{where}: segments_info ids absent from the PNG: {few(np.array(absent))}")
    # (An unknown category id is a problem of the JSON, reported with it.)
    if problems or not scoring or any(c not in cat_index for c in pred_cats):
        return PanopticStatistics(problems=problems)
    assert segs is not None
    g_cat, g_crowd, g_area = segs
    kg = len(g_cat)
    p_cat = np.array([cat_index[c] for c in pred_cats], np.int64)
    p_area = pred_area[1:]
    void = m[0, 1:]
    inter = m[1:, 1:]
    # Matches: pairs of the same category, the gt segment not a crowd, IoU > 0.5 (unique both ways).
    union = p_area[None, :] + g_area[:, None] - inter - void[None, :]
    ok = (inter > 0) & (g_cat[:, None] == p_cat[None, :]) & ~g_crowd[:, None]
    iou = np.where(ok, inter / np.where(union > 0, union, 1), 0.0)
    gi, pj = np.nonzero(ok & (iou > 0.5))
    cat = g_cat[gi]
    iou_sum = np.bincount(cat, weights=iou[gi, pj], minlength=n_cat)
    counts: np.ndarray = np.zeros((3, n_cat), np.int64)
    counts[0] = np.bincount(cat, minlength=n_cat)
    g_matched: np.ndarray = np.zeros(kg, bool)
    g_matched[gi] = True
    p_matched: np.ndarray = np.zeros(kp, bool)
    p_matched[pj] = True
    counts[2] = np.bincount(g_cat[~g_matched & ~g_crowd], minlength=n_cat)
    # The crowd region of each category (the last listed, as the official dict keeps it).
    crowd_of: np.ndarray = np.full(n_cat, -1, np.int64)
    for i in np.flatnonzero(g_crowd & ~g_matched):
        crowd_of[g_cat[i]] = i
    ignored: np.ndarray = void.astype(np.int64)
    has_crowd = crowd_of[p_cat] >= 0
    cols = np.flatnonzero(has_crowd)
    ignored[cols] += inter[crowd_of[p_cat[cols]], cols]
    fp = ~p_matched & ~(ignored / p_area > 0.5)
    counts[1] = np.bincount(p_cat[fp], minlength=n_cat)
    return PanopticStatistics(iou_sum, counts)


# -- the result -----------------------------------------------------------------------------------
class PanopticResult:
    """The panoptic result: ``print(result)`` gives the official table, :meth:`to_dict` the
    content of the official ``resultPanopticSemanticLabeling.json``.

    Attributes
    ----------
    categories : list of dict
        The categories (``id``, ``name``, ``isthing``, ...), as the ground-truth JSON lists them.
    iou, tp, fp, fn : dict
        Per category id, the sums over the frames.
    per_class : dict
        Per category id, ``{"pq", "sq", "rq"}``.
    all, things, stuff : dict
        ``{"pq", "sq", "rq", "n"}`` averaged over the categories with a TP, FP or FN.
    """

    def __init__(self, categories: Sequence[dict], iou: np.ndarray, counts: np.ndarray, frames: int):
        self.categories = [dict(c) for c in categories]
        self.frames = frames
        ids = [int(c["id"]) for c in categories]
        self.iou = {c: float(v) for c, v in zip(ids, iou)}
        self.tp = {c: int(v) for c, v in zip(ids, counts[0])}
        self.fp = {c: int(v) for c, v in zip(ids, counts[1])}
        self.fn = {c: int(v) for c, v in zip(ids, counts[2])}
        self.per_class: Dict[int, Dict[str, float]] = {}
        averages: Dict[str, List[float]] = {}
        for name, isthing in (("All", None), ("Things", True), ("Stuff", False)):
            pq = sq = rq = 0.0
            n = 0
            for c, info in zip(ids, categories):
                if isthing is not None and (info.get("isthing") == 1) != isthing:
                    continue
                tp, fp, fn, s = self.tp[c], self.fp[c], self.fn[c], self.iou[c]
                if tp + fp + fn == 0:
                    scores = {"pq": 0.0, "sq": 0.0, "rq": 0.0}
                else:
                    n += 1
                    denom = tp + 0.5 * fp + 0.5 * fn
                    scores = {"pq": s / denom, "sq": s / tp if tp != 0 else 0, "rq": tp / denom}
                    pq += scores["pq"]
                    sq += scores["sq"]
                    rq += scores["rq"]
                if name == "All":
                    self.per_class[c] = scores
            averages[name] = [pq, sq, rq, n]
        nan = float("nan")
        self.all: Dict[str, Any]
        self.things: Dict[str, Any]
        self.stuff: Dict[str, Any]
        self.all, self.things, self.stuff = (
            {"pq": a[0] / a[3] if a[3] else nan, "sq": a[1] / a[3] if a[3] else nan,
             "rq": a[2] / a[3] if a[3] else nan, "n": int(a[3])}
            for a in (averages["All"], averages["Things"], averages["Stuff"]))

    @property
    def pq(self) -> float:
        """PQ over all categories."""
        return self.all["pq"]

    def to_dict(self) -> Dict[str, Any]:
        """The keys and values of the official results JSON (``per_class`` keyed by the category
        id as a string, as JSON has it; keys in the official file's sorted order)."""
        return {"All": dict(self.all), "Stuff": dict(self.stuff), "Things": dict(self.things),
                "per_class": {str(c): dict(self.per_class[c]) for c in sorted(self.per_class)}}

    def __str__(self) -> str:
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in self.categories}
        lines = ["{:14s}| {:>5s}  {:>5s}  {:>5s}".format("Category", "PQ", "SQ", "RQ")]
        for c in sorted(self.per_class):
            s = self.per_class[c]
            lines.append("{:14s}| {:5.1f}  {:5.1f}  {:5.1f}".format(names[c], 100 * s["pq"], 100 * s["sq"],
                                                                     100 * s["rq"]))
        lines.append("-" * 41)
        lines.append("{:14s}| {:>5s}  {:>5s}  {:>5s} {:>5s}".format("", "PQ", "SQ", "RQ", "N"))
        for name, r in (("All", self.all), ("Things", self.things), ("Stuff", self.stuff)):
            lines.append("{:14s}| {:5.1f}  {:5.1f}  {:5.1f} {:5d}".format(name, 100 * r["pq"], 100 * r["sq"],
                                                                           100 * r["rq"], r["n"]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"PanopticResult(frames={self.frames}, PQ={self.all['pq']:.4f}, SQ={self.all['sq']:.4f}, "
                f"RQ={self.all['rq']:.4f})")


# -- the task -------------------------------------------------------------------------------------
def _base(frame: Any) -> str:
    return posixpath.basename(frame.id)


def _load_json(root: Root, path: str, where: str) -> Tuple[Any, List[str]]:
    try:
        data = read_file(root.fs, path)
    except CityscapesIOError as exc:
        return None, [str(exc)]
    try:
        return jsonfile.loads(data, where), []
    except CityscapesIOError as exc:
        return None, [str(exc)]


def _annotations(doc: Any, where: str, what: str) -> Tuple[List[dict], List[str]]:
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        return [], [f"{where}: no list of 'annotations' in the {what} JSON"]
    return doc["annotations"], []


def _segments(ann: Any, where: str, keys: Sequence[str]) -> Tuple[Optional[List[Tuple[int, ...]]], List[str]]:
    """The ``keys`` of each entry of an annotation's ``segments_info`` (the last entry of an id
    kept, as the official dict does), or None with the problems."""
    segs = ann.get("segments_info")
    if not isinstance(segs, list):
        return None, [f"{where}: annotation without a list of segments_info"]
    by_id: Dict[int, Tuple[int, ...]] = {}
    for s in segs:
        try:
            row = tuple(int(s[k]) if k != "iscrowd" else int(s.get(k, 0)) for k in keys)
        except (KeyError, TypeError, ValueError):
            return None, [f"{where}: a segments_info entry without integer {', '.join(keys)}: {str(s)[:80]}"]
        if not 0 <= row[0] < 1 << 24:
            return None, [f"{where}: segment id {row[0]} cannot be a colour of the PNG (ids are 0..16777215)"]
        by_id[row[0]] = row
    return list(by_id.values()), []


def _gt_files(frames: Sequence[Any]) -> Tuple[Optional[Root], Dict[str, _Gt], Optional[List[dict]]]:
    """The official panoptic ground truth beside the frames' gtFine tree, when it is there:
    its folder's root, the annotation of each frame base name and its categories."""
    frame = frames[0]
    locations = frame.source.locations()
    kind = next((k for k in ("instanceIds", "labelIds") if k in locations), None)
    if kind is None:
        return None, {}, None
    fs, path = locations[kind]
    pos = path.rfind(f"/{GT_DIR}/")
    if pos >= 0:
        top = path[:pos + 1]
    elif path.startswith(f"{GT_DIR}/"):
        top = ""
    else:
        return None, {}, None
    stem = f"{top}{GT_DIR}/cityscapes_panoptic_{frame.split}"
    try:
        if not fs.isfile(stem + ".json"):
            return None, {}, None
        doc = jsonfile.loads(read_file(fs, stem + ".json"), stem + ".json")
    except (CityscapesIOError, OSError):
        return None, {}, None
    categories = doc.get("categories") if isinstance(doc, dict) else None
    out: Dict[str, _Gt] = {}
    wanted = {_base(f) for f in frames}
    for ann in (doc.get("annotations") or [] if isinstance(doc, dict) else []):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        if image_id not in wanted:
            continue
        rows, problems = _segments(ann, stem, ("id", "category_id", "area", "iscrowd"))
        try:  # (a file_name that is not a safe path: the frame's ground truth is derived)
            path = resolve_inside(fs, stem, ann.get("file_name"), index=stem + ".json", entry=image_id)
        except UnsafePathError:
            continue
        if rows is None:
            continue
        out[image_id] = (path, tuple(r[0] for r in rows), tuple(r[1] for r in rows),
                         tuple(r[2] for r in rows), tuple(r[3] for r in rows))
    del doc
    return Root(fs, stem, stem), out, categories if isinstance(categories, list) else None


# A frame id inside a file name (``aachen/aachen_000000_000019.png``,
# ``aachen_000000_000019_leftImg8bit.png``): the base name up to its sequence and frame numbers.
_FRAME_IN_NAME = re.compile(r"^(.+?_\d{6}_\d{6})(?!\d)")


def _frame_in_name(file_name: str) -> Optional[str]:
    match = _FRAME_IN_NAME.match(posixpath.basename(file_name))
    return match.group(1) if match else None


def _image_frames(images: Any) -> Dict[int, Optional[str]]:
    """The frame base name of each integer id of the JSON's ``images`` list, from the entry's
    ``file_name`` (None when it holds no frame id, or when entries of one id name different
    frames). Only read as a name, never opened."""
    out: Dict[int, Optional[str]] = {}
    for image in images if isinstance(images, list) else []:
        if not isinstance(image, dict) or not _is_int(image.get("id")):
            continue
        name = image.get("file_name")
        base = _frame_in_name(name) if isinstance(name, str) else None
        key = int(image["id"])
        out[key] = base if out.get(key, base) == base else None
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _predictions(anns: List[Any], frames: Sequence[Any], pred_root: Root, where: str, known: set,
                 problems: List[str], images: Any = None) -> Tuple[Dict[str, Optional[_Pred]], List[str]]:
    """The prediction annotation of each frame base name (None for one refused) and the
    problems of the prediction JSON ``where``: annotations of no frame or of a frame already
    annotated, ``file_name`` resolved inside the prediction folder, unknown category ids,
    frames without annotation.

    A string ``image_id`` is the frame's base name (the official format). An integer one (COCO's
    ids, as the ``coco_panoptic`` writer gives them) names an entry of the JSON's ``images``,
    whose ``file_name`` holds the frame id."""
    preds: Dict[str, Optional[_Pred]] = {}
    wanted = {_base(f) for f in frames}
    by_id: Optional[Dict[int, Optional[str]]] = None
    for k, ann in enumerate(anns):
        if not isinstance(ann, dict) or not isinstance(ann.get("image_id"), (str, int)) \
                or not isinstance(ann.get("file_name"), str):
            problems.append(f"{where}: annotation {k} without image_id and file_name")
            continue
        raw = ann["image_id"]
        image_id = str(raw)
        label = f"annotation of image {image_id}"
        if image_id not in wanted and _is_int(raw):
            if by_id is None:
                by_id = _image_frames(images)
            if int(raw) not in by_id:
                problems.append(f"{where}: {label}: image_id {raw} is not a frame id and no entry of "
                                f"'images' has that id")
                continue
            base = by_id[int(raw)]
            if base is None:
                problems.append(f"{where}: {label}: the file_name of its entry in 'images' holds no frame id "
                                f"(<city>_<seq>_<frame>), or entries of that id name different frames")
                continue
            image_id = base
            label = f"annotation of image {raw} ({base})"
        if image_id not in wanted:
            problems.append(f"{where}: {label} matches no ground-truth frame")
            continue
        if image_id in preds:
            problems.append(f"{where}: duplicate image_id {image_id}: several annotations for one image")
            continue
        preds[image_id] = None
        try:
            path = resolve_inside(pred_root.fs, pred_root.path, ann["file_name"], index=where,
                                  entry=f"{label}: file_name")
        except UnsafePathError as exc:
            problems.append(str(exc))
            continue
        rows, bad = _segments(ann, f"{where}: {label}", ("id", "category_id"))
        problems += bad
        if rows is None:
            continue
        unknown = sorted({r[1] for r in rows if r[1] not in known})
        if unknown:
            problems.append(f"{where}: {label}: unknown category ids {unknown}")
        preds[image_id] = (path, tuple(r[0] for r in rows), tuple(r[1] for r in rows))
    problems += [f"{f.where}: no prediction for frame {f.id} (image_id {_base(f)}) in {where}"
                 for f in frames if _base(f) not in preds]
    return preds, problems


class PanopticTask(Task):
    """The panoptic task: predictions a COCO panoptic JSON (its PNGs beside it) or a Dataset of
    instance ids; a frame's statistics its per-category IoU sums, TP, FP and FN
    (:class:`PanopticStatistics`); the result a :class:`PanopticResult`."""

    frame_problems = staticmethod(frame_problems)
    frame_statistics = staticmethod(frame_statistics)

    def match(self, frames: Sequence[Any], predictions: Any, *, pred_storage_options: Any = None,
              **options: Any) -> Matched:
        """Per frame its prediction annotation (or Frame) and ground-truth annotation (None: derived
        from the instanceIds); the common arguments: the prediction and ground-truth roots and the
        category ids. The context: the categories.

        The problems of a JSON: one that does not parse or lacks keys, frames without an
        annotation, annotations of no frame, unknown category ids (the frames' own problems:
        missing or unreadable PNGs, wrong sizes, PNG segment ids that ``segments_info`` does not
        list and listed ids absent from the PNG)."""
        from ..dataset import Dataset

        if not frames:
            raise CityscapesIOError(str(predictions), "no ground-truth frames to evaluate")
        gt_root, gt_anns, categories = _gt_files(frames)
        if categories is None:
            categories = panoptic_categories(frames[0].labels)
        cat_ids = tuple(int(c["id"]) for c in categories)
        if isinstance(predictions, Dataset):
            found, problems = match_dataset(frames, predictions)
            pairs = [(f, (p, gt_anns.get(_base(f)))) for f, p in zip(frames, found) if p is not None]
            return Matched([f for f, _ in pairs], [a for _, a in pairs], (None, gt_root, cat_ids), problems,
                           ", ".join(predictions.roots) or "the prediction dataset", context=categories)
        known = set(cat_ids)
        folder, name = json_root(str(predictions), pred_storage_options)
        json_path = folder.join(name)
        where = folder.display(name)
        stem = name[:-5] if name.lower().endswith(".json") else name
        pred_root = Root(folder.fs, folder.join(stem), folder.display(stem))
        doc, problems = _load_json(folder, json_path, where)
        preds: Dict[str, Optional[_Pred]] = {}
        if doc is not None:
            anns, problems = _annotations(doc, where, "prediction")
            images = doc.get("images") if isinstance(doc, dict) else None
            del doc
            preds, problems = _predictions(anns, frames, pred_root, where, known, problems, images)
            del images
            del anns
        keep = [f for f in frames if preds.get(_base(f))]
        args: List[Tuple[Any, ...]] = [(preds[_base(f)], gt_anns.get(_base(f))) for f in keep]
        return Matched(keep, args, (pred_root, gt_root, cat_ids), problems, where, context=categories)

    def start(self, matched: Matched) -> Tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(matched.context)), np.zeros((3, len(matched.context)), np.int64)

    def add(self, total: Tuple[np.ndarray, np.ndarray], s: PanopticStatistics) -> Tuple[np.ndarray, np.ndarray]:
        iou, counts = total
        if s.iou is not None and s.counts is not None:
            iou += s.iou
            counts += s.counts
        return total

    def result(self, total: Tuple[np.ndarray, np.ndarray], matched: Matched, frames: int) -> PanopticResult:
        return PanopticResult(matched.context, total[0], total[1], frames)
