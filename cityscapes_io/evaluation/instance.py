"""Instance-level evaluation with the rules of cityscapesScripts'
``evaluation/evalInstanceLevelSemanticLabeling.py`` (2.3.0, FORMAT.md section 10).

Predictions: one ``<city>_<seq>_<frame>*.txt`` per ground-truth frame, each line
``<mask path relative to the txt> <label id> <confidence>``, a mask being an image whose non-zero
pixels are the instance (or a :class:`~cityscapes_io.Dataset` whose frames hold the predicted
instances, their ``score`` the confidence). The rules, as the official applies them:

- The ground truth segments are the distinct values of ``instanceIds`` of the eight classes
  with instances evaluated (person ... bicycle); a value below 1000 is a *group* (a crowd).
- A prediction of another label (or with an empty mask) is skipped. Per prediction: its pixel
  count, its overlap with *void* (the instanceIds values that are label ids ignored in evaluation:
  a group region of an ignored class is void, a caravan *instance* is not), and its intersection
  with every ground-truth segment of its own label (groups included).
- For each minimum region size / distance setting, overlap threshold ``t`` (0.5:0.95:0.05, IoU
  strictly above ``t``) and class: the ground truth scored is the instances (value >= 1000) of at
  least the region size (and close and dense enough in disparity). A scored instance matched by
  several predictions is one true positive with the highest confidence and a false positive for
  each other. A prediction that matches no segment at all (groups and small ones included) is a
  false positive unless more than ``t`` of its pixels are void, groups, or segments not scored
  (a group too small counts twice, as in the official). A scored instance without a match is a
  false negative.
- AP: the official's precision/recall curve over unique confidences, with an artificial point
  (recall 0, precision 1), integrated by the steps of its convolution; NaN for a class without
  scored ground truth, 0 for one without predictions. Averages are ``nanmean`` over classes and
  thresholds; per class plain means (NaN stays NaN).

Distances: the official 2.3.0 never computes ``medDist`` / ``distConf`` (``distanceAvailable``
is False), so AP100m / AP50m are absent from its results. Here they are computed when every frame
has ``disparity/<split>/<id>_disparity.png`` and ``camera/<split>/<id>_camera.json`` beside its
ground truth: a pixel's disparity is ``(p - 1) / 256`` for ``p > 0`` (``p == 0`` invalid), its
depth ``baseline * fx / disparity`` (infinite for disparity 0); per segment ``distConf`` is the
fraction of its pixels with a valid disparity and ``medDist`` the median depth of those pixels
(infinite when there are none).

Two departures, both where the official fails instead of scoring: a class with scored ground
truth and predictions but not one true or false positive scores AP 0 (the official raises an
IndexError); blank lines of a txt file are skipped (the official refuses the file), fields are
separated by any whitespace. A confidence that is not a finite number (``nan``, ``inf``) is a
problem of the submission (the official would rank NaN above every score), and so are a mask path
leaving the prediction folder and a mask whose header's size is not the ground truth's (refused
before it is decoded). A camera JSON or disparity PNG that cannot be used is a problem of the ground
truth, named.
"""
from __future__ import annotations

import io
import math
import posixpath
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .. import jsonfile, png
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, UnsafePathError
from ..parts import decode_disparity_raw, disparity_header, parse_camera
from ..release import Location
from ..storage import (Root, check_inside, read_file, read_range, resolve_inside, resolve_root,
                       storage_errors)
from .base import Matched, Task
from .common import HAS_INSTANCES, ID_OF, IDS, IGNORED, KNOWN_IDS, NAME, match_dataset, match_predictions

__all__ = ["InstanceResult", "InstanceTask", "InstanceStatistics", "MaskPredictions", "equal_scores_warning",
           "OVERLAPS", "MIN_REGION_SIZES", "DISTANCE_THRESHOLDS", "DISTANCE_CONFIDENCES", "INSTANCE_LABELS",
           "frame_problems", "frame_statistics", "average_precision", "distances"]

#: The official parameters (``args`` of the official script).
OVERLAPS: np.ndarray = np.arange(0.5, 1.0, 0.05)
MIN_REGION_SIZES: np.ndarray = np.array([100, 1000, 1000])
DISTANCE_THRESHOLDS: np.ndarray = np.array([float("inf"), 100, 50])
DISTANCE_CONFIDENCES: np.ndarray = np.array([-float("inf"), 0.5, 0.5])

#: The evaluated classes, in the official order (labels with instances not ignored in evaluation).
INSTANCE_LABELS: List[str] = [NAME[i] for i in IDS if HAS_INSTANCES[i] and not IGNORED[i]]
_INSTANCE_IDS = [ID_OF[n] for n in INSTANCE_LABELS]
_C = len(INSTANCE_LABELS)
# Label ids the official table knows (the license plate, -1, included: it is skipped, not refused).
_KNOWN_IDS = KNOWN_IDS
# Per instanceIds value: the index of its evaluated class (-1 none), and whether it is void.
_VALUE_CLASS: np.ndarray = np.full(65536, -1, np.int8)
_VALUE_VOID: np.ndarray = np.zeros(65536, bool)
for _k, _lab in enumerate(_INSTANCE_IDS):
    _VALUE_CLASS[_lab] = _k
    _VALUE_CLASS[_lab * 1000:(_lab + 1) * 1000] = _k
for _lab in IDS:
    if IGNORED[_lab]:
        _VALUE_VOID[_lab] = True
_O50 = int(np.flatnonzero(np.isclose(OVERLAPS, 0.5))[0])


# -- per frame ------------------------------------------------------------------------------------
@dataclass
class InstanceStatistics:
    """What the AP needs of one frame, no mask: per ground-truth segment of an evaluated class
    (ascending value) its class, whether it is an instance (not a group), size, median distance
    and stereo density; per prediction its class, confidence, size and void overlap; per
    (prediction, segment of its class) with a common pixel the intersection."""

    gt_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gt_inst: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    gt_size: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gt_dist: np.ndarray = field(default_factory=lambda: np.zeros(0))
    gt_dconf: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pred_class: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pred_conf: np.ndarray = field(default_factory=lambda: np.zeros(0))
    pred_size: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pred_void: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_pred: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_gt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_inter: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    distance: bool = False
    problems: List[str] = field(default_factory=list)


@dataclass(frozen=True, eq=False)
class MaskPredictions:
    """One frame's instance predictions held in memory (a frame function's ``pred``, as
    :mod:`cityscapes_io.metrics` gives them): ``masks`` ``N×H×W`` bool, ``label_ids`` the N
    official label ids, ``scores`` the N confidences, in the order of the lines of a txt file
    (the order breaks ties of equal confidence). ``where`` names them in problems."""

    masks: np.ndarray
    label_ids: np.ndarray
    scores: np.ndarray
    where: str = "predictions"


def _decode_mask(data: bytes, where: str) -> np.ndarray:
    """A prediction mask as the official reads it (``Image.convert("L")``), as an array whose
    non-zero pixels are the instance. A gray PNG is used as decoded (a 16-bit value the
    official clips to 255 stays non-zero)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        header = png.read_header(data, where)
        if header.color_type == 0 and header.bit_depth >= 8:  # 1-, 2- and 4-bit gray: below, as Pillow reads them
            return png.decode_gray(data, where)
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("L"))
    except Exception as exc:  # noqa: BLE001 - any decoding failure is a problem of the submission
        raise InvalidFileError(where, png.decode_failure(data, exc, "cannot decode mask")) from exc


def _parse_txt(pred: str, root: Root) -> Tuple[List[Tuple[str, str, int, float]], List[str]]:
    """The lines of a prediction txt: ``(mask path, shown name, label id, confidence)`` in the
    official's order (a mask named twice keeps its first place and its last line's values),
    and the problems. A txt found through a link out of the prediction folder is refused, a mask
    path is resolved inside it (:func:`~cityscapes_io.storage.resolve_inside`), a UTF-8
    byte-order mark is skipped, a confidence that is not a finite number is refused."""
    where = root.display(root.relative(pred))
    try:
        check_inside(root.fs, root.path, pred)
        text = read_file(root.fs, pred).decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], [f"{where}: not a text file"]
    except CityscapesIOError as exc:
        return [], [str(exc)]
    base = posixpath.dirname(pred)
    found: Dict[str, Tuple[str, str, int, float]] = {}
    problems = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            problems.append(f"{where}, line {n}: expected '<mask path> <label id> <confidence>', got {line!r}")
            continue
        rel, lab, conf = parts
        try:
            path = resolve_inside(root.fs, root.path, rel, base=base, index=where, entry=f"line {n}")
        except UnsafePathError as exc:
            problems.append(str(exc))
            continue
        try:
            label_id, confidence = int(float(lab)), float(conf)
        except (ValueError, OverflowError):
            problems.append(f"{where}, line {n}: label id {lab!r} or confidence {conf!r} is not a number")
            continue
        if not math.isfinite(confidence):
            problems.append(f"{where}, line {n}: confidence {conf!r} is not a finite number")
            continue
        if label_id not in _KNOWN_IDS:
            problems.append(f"{where}, line {n}: label id {label_id} is not in the official label table")
            continue
        found[path] = (path, root.display(root.relative(path)), label_id, confidence)
    return list(found.values()), problems


def _read_mask(path: str, shown: str, txt: str, root: Root, shape: Tuple[int, ...]) -> np.ndarray:
    """A prediction mask (see :func:`_decode_mask`), its size compared with the ground truth's
    ``shape`` from its header before it is decoded. Raises CityscapesIOError with the problem."""
    try:
        data = read_file(root.fs, path)
    except DatasetNotFoundError:
        raise DatasetNotFoundError(shown, f"the mask does not exist (named in {txt})") from None
    width, height = png.image_size(data, shown)
    if (height, width) != tuple(shape):
        raise InvalidFileError(shown, f"size {width}x{height}, the ground truth is {shape[1]}x{shape[0]}")
    return _decode_mask(data, shown)


def _crop(arr: np.ndarray) -> Optional[Tuple[Tuple[int, int], np.ndarray]]:
    """The corner (y0, x0) and the boolean crop of a mask's non-zero pixels; None when it has none."""
    rows = np.flatnonzero(arr.any(axis=1))
    if rows.size == 0:
        return None
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(arr[y0:y1].any(axis=0))
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    return (y0, x0), arr[y0:y1, x0:x1] != 0


def _held_masks(pred: MaskPredictions, shape: Tuple[int, ...]):
    """:func:`_prediction_masks` of predictions held in memory: a label id the official table
    does not know or a confidence that is not finite is a problem, as in a txt file."""
    where = pred.where
    masks, label_ids, scores = pred.masks, np.asarray(pred.label_ids), np.asarray(pred.scores, np.float64)
    if masks.ndim != 3 or tuple(masks.shape[1:]) != tuple(shape):
        yield -1, 0.0, None, None, (f"{where}: masks of shape {tuple(masks.shape)}, not N×{shape[0]}×{shape[1]} "
                                    f"(N×H×W as the ground truth)")
        return
    if not label_ids.shape == scores.shape == (masks.shape[0],):
        yield -1, 0.0, None, None, (f"{where}: {masks.shape[0]} masks, {label_ids.size} labels and {scores.size} "
                                    f"scores")
        return
    for k, (label_id, conf) in enumerate(zip(label_ids.tolist(), scores.tolist())):
        if label_id not in _KNOWN_IDS:
            yield -1, 0.0, None, None, (f"{where}: prediction {k}: label id {label_id} is not in the official "
                                        f"label table")
            continue
        if not math.isfinite(conf):
            yield -1, 0.0, None, None, f"{where}: prediction {k}: confidence {conf} is not a finite number"
            continue
        if label_id not in _INSTANCE_IDS:
            continue
        cropped = _crop(masks[k])
        if cropped is not None:
            yield _INSTANCE_IDS.index(label_id), conf, cropped[0], cropped[1], None


def _prediction_masks(pred: Any, pred_root: Optional[Root], shape: Tuple[int, ...]):
    """``(class index, confidence, crop box (y0, x0), boolean crop or None, problems)`` of each
    prediction of an evaluated class, in the official order; masks are decoded one at a time.
    ``pred``: a txt path under ``pred_root``, a prediction Frame or :class:`MaskPredictions`."""
    if isinstance(pred, MaskPredictions):
        yield from _held_masks(pred, shape)
        return
    if isinstance(pred, str):
        assert pred_root is not None
        lines, problems = _parse_txt(pred, pred_root)
        for problem in problems:
            yield -1, 0.0, None, None, problem
        txt = pred_root.display(pred_root.relative(pred))
        for path, shown, label_id, conf in lines:
            if label_id not in _INSTANCE_IDS:
                continue  # the official does not even open it
            try:
                arr = _read_mask(path, shown, txt, pred_root, shape)
            except CityscapesIOError as exc:
                yield -1, 0.0, None, None, str(exc)
                continue
            if arr.ndim != 2:
                arr = np.asarray(arr.any(axis=2))
            cropped = _crop(arr)
            if cropped is not None:
                yield _INSTANCE_IDS.index(label_id), conf, cropped[0], cropped[1], None
        return
    where = pred.where or f"prediction {pred.id}"
    try:
        # Instances built in memory keep their own masks (overlaps) and scores; a frame read
        # from files gives them through instances().
        given = pred.original_instances()
        instances = given if given is not None else pred.instances()
    except CityscapesIOError as exc:
        yield -1, 0.0, None, None, str(exc)
        return
    for inst in instances:
        if inst.is_crowd:
            continue
        label = inst.label if inst.label is not None else pred.labels.get(inst.label_id)
        official = ID_OF.get(label.name) if label is not None else None
        if official is None:
            name = label.name if label is not None else f"label id {inst.label_id}"
            yield -1, 0.0, None, None, f"{where}: {name} is not a label of the official table"
            continue
        if tuple(inst.shape) != tuple(shape):
            yield -1, 0.0, None, None, (f"{where}: size {inst.shape[1]}x{inst.shape[0]}, the ground truth is "
                                        f"{shape[1]}x{shape[0]}")
            continue
        if official not in _INSTANCE_IDS or inst.area == 0:
            continue
        x, y, _, _ = inst.bbox
        conf = 1.0 if inst.score is None else float(inst.score)
        if not math.isfinite(conf):
            yield -1, 0.0, None, None, f"{where}: instance value {inst.value}: score {conf} is not a finite number"
            continue
        yield _INSTANCE_IDS.index(official), conf, (y, x), inst.mask_crop, None


def _distance_files(frame: Any) -> Optional[Tuple[Location, Location]]:
    """The locations of the frame's disparity PNG and camera JSON when it has both (in any of
    its dataset's roots: beside the ground truth, or the release's own ``disparity`` and
    ``camera`` packages), else None (no distances)."""
    parts = frame.parts
    if parts is None:
        return None
    disparity, camera = parts.find("disparity"), parts.find("camera")
    return (disparity, camera) if disparity is not None and camera is not None else None


def _camera_factor(camera: Location) -> float:
    """``baseline * fx`` of a camera JSON (depth = factor / disparity), a positive number.
    Raises InvalidFileError naming the file."""
    root, rel = camera
    shown = root.display(rel)
    cam = parse_camera(read_file(root.fs, root.join(rel)), shown)
    factor = cam.baseline * cam.fx
    if not math.isfinite(factor):
        raise InvalidFileError(shown, f"camera JSON: baseline x fx is not a finite number ({factor})")
    return factor


def _disparity_size(data: bytes, path: str, frame: Any, shape: Tuple[int, ...]) -> None:
    """Refuse a disparity PNG that is not 16-bit gray or whose size is not the ground truth's
    ``shape``."""
    header = disparity_header(data, path)
    if (header.height, header.width) != tuple(shape[:2]):
        raise InvalidFileError(path, f"disparity of size {header.width}x{header.height}, the ground truth "
                                     f"{frame.id} is {shape[1]}x{shape[0]}")


def _distance_problems(frame: Any, shape: Tuple[int, ...]) -> List[str]:
    """What :func:`distances` would refuse in a frame's camera and disparity files, reading
    the camera JSON and the disparity's header only (for a check-only run)."""
    try:
        files = _distance_files(frame)
        if files is not None:
            (root, rel), camera = files
            _camera_factor(camera)
            _disparity_size(read_range(root.fs, root.join(rel), 0, 33), root.display(rel), frame, shape)
    except CityscapesIOError as exc:
        return [str(exc)]
    return []


def distances(frame: Any, inst: np.ndarray, values: np.ndarray) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Per segment value in ``values`` (ascending), its median depth and the fraction of its
    pixels with a valid disparity; None when the frame has no disparity and camera files.
    Raises CityscapesIOError naming a camera JSON or disparity PNG that cannot be used."""
    files = _distance_files(frame)
    if files is None:
        return None
    (root, rel), camera = files
    factor = _camera_factor(camera)
    shown = root.display(rel)
    data = read_file(root.fs, root.join(rel))
    _disparity_size(data, shown, frame, inst.shape)
    disp = decode_disparity_raw(data, shown)
    if values.size == 0:
        return np.zeros(0), np.zeros(0)
    seg: np.ndarray = np.asarray(np.searchsorted(values, inst.ravel()))
    seg_ok: np.ndarray = seg < values.size
    seg_ok[seg_ok] &= values[seg[seg_ok]] == inst.ravel()[seg_ok]
    p: np.ndarray = disp.ravel().astype(np.int64)
    sizes = np.bincount(seg[seg_ok], minlength=values.size)
    valid = seg_ok & (p > 0)
    counts = np.bincount(seg[valid], minlength=values.size)
    keys = np.sort(seg[valid].astype(np.int64) * 65536 + p[valid])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    med = np.full(values.size, np.inf)
    with np.errstate(divide="ignore"):
        for k in np.flatnonzero(counts):
            raw = keys[starts[k]:starts[k] + counts[k]] & 0xFFFF
            depth = factor / ((raw.astype(np.float64) - 1.0) / 256.0)
            med[k] = float(np.median(depth))
    conf = np.where(sizes > 0, counts / np.maximum(sizes, 1), 0.0)
    return med, conf


def _ground_truth(frame: Any) -> Tuple[Optional[np.ndarray], List[str]]:
    """A frame's instanceIds, or None with the problem."""
    try:
        inst = frame.instance_ids()
    except CityscapesIOError as exc:
        return None, [str(exc)]
    if inst is None:
        return None, [f"{frame.where}: no ground truth instance ids"]
    return inst, []


def frame_problems(frame: Any, pred: Any, pred_root: Optional[Root]) -> List[str]:
    """The problems of one frame's prediction (a txt path under ``pred_root``, a Frame, or
    :class:`MaskPredictions`) and
    ground truth: lines, masks (their headers), label ids, scores, the camera and disparity files."""
    inst, problems = _ground_truth(frame)
    if inst is None:
        return problems
    problems = [problem for *_, problem in _prediction_masks(pred, pred_root, inst.shape) if problem is not None]
    return problems or _distance_problems(frame, inst.shape)


def frame_statistics(frame: Any, pred: Any, pred_root: Optional[Root]) -> InstanceStatistics:
    """One frame's record against its prediction (a txt path under ``pred_root``, a Frame, or
    :class:`MaskPredictions`)."""
    inst, problems = _ground_truth(frame)
    if inst is None:
        return InstanceStatistics(problems=problems)
    flat = inst.ravel()
    sizes = np.bincount(flat, minlength=256)
    present = np.flatnonzero(sizes)
    klass = _VALUE_CLASS[present] if present.size else np.zeros(0, np.int8)
    seg_values = present[klass >= 0]
    # Per value: its index among the frame's values (segments of evaluated classes first).
    void_values = present[_VALUE_VOID[present]]
    lut: np.ndarray = np.full(max(int(present[-1]) + 1 if present.size else 1, 1), -1, np.int64)
    lut[seg_values] = np.arange(seg_values.size)
    lut[void_values] = seg_values.size
    rec = InstanceStatistics(gt_class=klass[klass >= 0].astype(np.int64), gt_inst=seg_values >= 1000,
                       gt_size=sizes[seg_values].astype(np.int64),
                       gt_dist=np.full(seg_values.size, -1.0), gt_dconf=np.zeros(seg_values.size))
    p_class: List[int] = []
    p_conf: List[float] = []
    p_size: List[int] = []
    p_void: List[int] = []
    pairs_p: List[int] = []
    pairs_g: List[int] = []
    pairs_i: List[int] = []
    nseg = seg_values.size
    for c, conf, corner, crop, problem in _prediction_masks(pred, pred_root, inst.shape):
        if problem is not None:
            rec.problems.append(problem)
            continue
        if rec.problems:
            continue
        assert corner is not None and crop is not None
        y0, x0 = corner
        h, w = crop.shape
        under = inst[y0:y0 + h, x0:x0 + w][crop]
        counts = np.bincount(lut[under] + 1, minlength=nseg + 2)  # 0: other values, nseg + 1: void
        k = len(p_class)
        p_class.append(c)
        p_conf.append(conf)
        p_size.append(under.size)
        p_void.append(int(counts[nseg + 1]))
        hit = np.flatnonzero(counts[1:nseg + 1])
        hit = hit[rec.gt_class[hit] == c]
        pairs_p.extend([k] * hit.size)
        pairs_g.extend(hit.tolist())
        pairs_i.extend(counts[1 + hit].tolist())
    if rec.problems:
        return InstanceStatistics(problems=rec.problems)
    try:
        dist = distances(frame, inst, seg_values)
    except CityscapesIOError as exc:
        return InstanceStatistics(problems=[str(exc)])
    if dist is not None:
        rec.distance = True
        rec.gt_dist, rec.gt_dconf = dist
    rec.pred_class = np.array(p_class, np.int64)
    rec.pred_conf = np.array(p_conf, np.float64)
    rec.pred_size = np.array(p_size, np.int64)
    rec.pred_void = np.array(p_void, np.int64)
    rec.pair_pred = np.array(pairs_p, np.int64)
    rec.pair_gt = np.array(pairs_g, np.int64)
    rec.pair_inter = np.array(pairs_i, np.int64)
    return rec


# -- the AP ---------------------------------------------------------------------------------------
def average_precision(y_true: np.ndarray, y_score: np.ndarray, hard_fns: int) -> float:
    """The official precision/recall curve and its step-wise integration."""
    if y_score.size == 0:
        return 0.0  # the official raises IndexError here; its curve would be the artificial point alone
    order = np.argsort(y_score, kind="stable")
    scores, trues = y_score[order], y_true[order]
    cumsum = np.cumsum(trues)
    _, first = np.unique(scores, return_index=True)
    total = cumsum[-1]
    below = np.append(cumsum, 0.0)[first - 1]
    tp = total - below
    fp = scores.size - first - tp
    fn = below + hard_fns
    precision = np.append(tp / (tp + fp), 1.0)
    recall = np.append(tp / (tp + fn), 0.0)
    widths = np.convolve(np.concatenate(([recall[0]], recall, [0.0])), [-0.5, 0, 0.5], "valid")
    return float(np.dot(precision, widths))


def _ap_matrix(g: Dict[str, np.ndarray], p: Dict[str, np.ndarray], pr: Dict[str, np.ndarray],
               settings: int) -> np.ndarray:
    ap = np.zeros((settings, _C, OVERLAPS.size))
    inter = pr["inter"]
    pg, pp = pr["gt"], pr["pred"]
    iou = inter / (g["size"][pg] + p["size"][pp] - inter) if inter.size else np.zeros(0)
    have_pred = np.bincount(p["class"], minlength=_C) > 0
    npred = p["class"].size
    for d in range(settings):
        size_min, dist_max, dconf_min = MIN_REGION_SIZES[d], DISTANCE_THRESHOLDS[d], DISTANCE_CONFIDENCES[d]
        out = (g["size"] < size_min) | (g["dist"] > dist_max) | (g["dconf"] < dconf_min)
        scored = g["inst"] & ~out
        n_scored = np.bincount(g["class"][scored], minlength=_C)
        ignore_weight = (~g["inst"]).astype(np.int64) + out.astype(np.int64)
        ignored = p["void"] + np.bincount(pp, weights=(inter * ignore_weight[pg]), minlength=npred).astype(np.int64)
        ignored_share = ignored / np.maximum(p["size"], 1)
        for o, th in enumerate(OVERLAPS):
            hit = iou > th
            found: np.ndarray = np.zeros(npred, bool)
            found[pp[hit]] = True
            # True positives: per scored instance the best of its matches; the other matches are FPs.
            tpi = np.flatnonzero(hit & scored[pg])
            mg, mconf = pg[tpi], p["conf"][pp[tpi]]
            order = np.lexsort((mconf, mg))
            mg, mconf = mg[order], mconf[order]
            best = np.ones(mg.size, bool)
            best[:-1] = mg[1:] != mg[:-1]
            matched_class = g["class"][mg]
            n_matched = np.bincount(matched_class[best], minlength=_C)
            fp = ~found & (ignored_share <= th)
            fp_class, fp_conf = p["class"][fp], p["conf"][fp]
            for c in range(_C):
                if n_scored[c] == 0:
                    ap[d, c, o] = float("nan")
                    continue
                if not have_pred[c]:
                    ap[d, c, o] = 0.0
                    continue
                mine = matched_class == c
                fps = fp_class == c
                y_score = np.concatenate((mconf[mine], fp_conf[fps]))
                y_true = np.concatenate((best[mine].astype(np.float64), np.zeros(int(fps.sum()))))
                ap[d, c, o] = average_precision(y_true, y_score, int(n_scored[c] - n_matched[c]))
    return ap


# -- the result -----------------------------------------------------------------------------------
def _nanmean(a: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(np.nanmean(a))


class InstanceResult:
    """The instance-level result: ``print(result)`` gives the official table, :meth:`to_dict`
    the content of the official ``resultInstanceLevelSemanticLabeling.json``.

    ``ap_matrix`` is the official ``resultApMatrix`` (setting x class x overlap; one setting
    without distance data, three with). ``ap``, ``ap50`` are the averages; ``class_ap``,
    ``class_ap50`` per class; ``ap_100m``, ``ap_50m``, ``ap50_50m`` (and ``class_ap_100m``, ...)
    NaN when the ground truth has no disparity and camera data (``distance_available`` False).
    """

    def __init__(self, ap_matrix: np.ndarray, distance_available: bool, frames: int):
        self.ap_matrix = ap_matrix
        self.distance_available = distance_available
        self.frames = frames
        a = ap_matrix
        nan = float("nan")
        self.ap = _nanmean(a[0])
        self.ap50 = _nanmean(a[0, :, _O50])
        self.class_ap = {n: float(np.average(a[0, k])) for k, n in enumerate(INSTANCE_LABELS)}
        self.class_ap50 = {n: float(a[0, k, _O50]) for k, n in enumerate(INSTANCE_LABELS)}
        if distance_available:
            self.ap_100m, self.ap_50m, self.ap50_50m = _nanmean(a[1]), _nanmean(a[2]), _nanmean(a[2, :, _O50])
            self.class_ap_100m = {n: float(np.average(a[1, k])) for k, n in enumerate(INSTANCE_LABELS)}
            self.class_ap_50m = {n: float(np.average(a[2, k])) for k, n in enumerate(INSTANCE_LABELS)}
            self.class_ap50_50m = {n: float(a[2, k, _O50]) for k, n in enumerate(INSTANCE_LABELS)}
        else:
            self.ap_100m = self.ap_50m = self.ap50_50m = nan
            self.class_ap_100m = {n: nan for n in INSTANCE_LABELS}
            self.class_ap_50m = dict(self.class_ap_100m)
            self.class_ap50_50m = dict(self.class_ap_100m)

    def to_dict(self) -> Dict[str, Any]:
        """The keys and values of the official ``resultInstanceLevelSemanticLabeling.json``."""
        averages: Dict[str, Any] = {"allAp": self.ap, "allAp50%": self.ap50}
        if self.distance_available:
            averages.update({"allAp50m": self.ap_50m, "allAp100m": self.ap_100m, "allAp50%50m": self.ap50_50m})
        classes: Dict[str, Dict[str, float]] = {}
        for n in INSTANCE_LABELS:
            classes[n] = {"ap": self.class_ap[n], "ap50%": self.class_ap50[n]}
            if self.distance_available:
                classes[n].update({"ap50m": self.class_ap_50m[n], "ap100m": self.class_ap_100m[n],
                                   "ap50%50m": self.class_ap50_50m[n]})
        averages["classes"] = classes
        return {
            "averages": averages,
            "overlaps": OVERLAPS.tolist(),
            "minRegionSizes": MIN_REGION_SIZES.tolist(),
            "distanceThresholds": DISTANCE_THRESHOLDS.tolist(),
            "minStereoDensities": DISTANCE_CONFIDENCES.tolist(),
            "instLabels": list(INSTANCE_LABELS),
            "resultApMatrix": self.ap_matrix.tolist(),
        }

    def __str__(self) -> str:
        width = 90 if self.distance_available else 50
        heads = ["AP", "AP_50%"] + (["AP_50m", "AP_100m", "AP_50%50m"] if self.distance_available else [])
        lines = [f"{self.frames} frames", "", "#" * width,
                 f"{'what':<15}:" + "".join(f"{h:>15}" for h in heads), "#" * width]

        def row(name: str, values: Sequence[float]) -> str:
            return f"{name:<15}:" + "".join(f"{v:>15.3f}" for v in values)

        for n in INSTANCE_LABELS:
            vals = [self.class_ap[n], self.class_ap50[n]]
            if self.distance_available:
                vals += [self.class_ap_50m[n], self.class_ap_100m[n], self.class_ap50_50m[n]]
            lines.append(row(n, vals))
        lines.append("-" * width)
        vals = [self.ap, self.ap50] + ([self.ap_50m, self.ap_100m, self.ap50_50m] if self.distance_available else [])
        lines.append(row("average", vals))
        return "\n".join(lines)

    def __repr__(self) -> str:
        text = f"InstanceResult(frames={self.frames}, AP={self.ap:.4f}, AP50={self.ap50:.4f}"
        if self.distance_available:
            text += f", AP100m={self.ap_100m:.4f}, AP50m={self.ap_50m:.4f}"
        return text + ")"


# -- the task -------------------------------------------------------------------------------------
class InstanceTask(Task):
    """The instance-level task: predictions a folder / URL of txt files and masks, or a Dataset;
    a frame's statistics the sizes, overlaps and scores of its segments and predictions
    (:class:`InstanceStatistics`, no mask); the result an :class:`InstanceResult`."""

    options = ("image",)

    frame_problems = staticmethod(frame_problems)
    frame_statistics = staticmethod(frame_statistics)

    def match(self, frames: Sequence[Any], predictions: Any, *, pred_storage_options: Any = None,
              image: Optional[str] = None, **options: Any) -> Matched:
        """Per frame its prediction (txt path or Frame); the common argument, the prediction root."""
        from ..dataset import Dataset

        if isinstance(predictions, Dataset):
            preds, problems = match_dataset(frames, predictions)
            return Matched.one_each(frames, preds, (None,), problems,
                                    ", ".join(predictions.roots) or "the prediction dataset")
        root = resolve_root(predictions, pred_storage_options)
        paths, problems = match_predictions(frames, root, exts=(".txt",), image=image)
        return Matched.one_each(frames, paths, (root,), problems, root)

    def start(self, matched: Matched) -> Dict[str, Any]:
        return {"gt": {k: [] for k in ("class", "inst", "size", "dist", "dconf")},
                "pred": {k: [] for k in ("class", "conf", "size", "void")},
                "pairs": {k: [] for k in ("pred", "gt", "inter")}, "n_gt": 0, "n_pred": 0, "distance": True}

    def add(self, total: Dict[str, Any], r: InstanceStatistics) -> Dict[str, Any]:
        gts, preds, pairs = total["gt"], total["pred"], total["pairs"]
        for key, arr in (("class", r.gt_class), ("inst", r.gt_inst), ("size", r.gt_size),
                         ("dist", r.gt_dist), ("dconf", r.gt_dconf)):
            gts[key].append(arr)
        for key, arr in (("class", r.pred_class), ("conf", r.pred_conf), ("size", r.pred_size),
                         ("void", r.pred_void)):
            preds[key].append(arr)
        pairs["pred"].append(r.pair_pred + total["n_pred"])
        pairs["gt"].append(r.pair_gt + total["n_gt"])
        pairs["inter"].append(r.pair_inter)
        total["n_gt"] += r.gt_class.size
        total["n_pred"] += r.pred_class.size
        total["distance"] = total["distance"] and r.distance
        return total

    def _arrays(self, total: Dict[str, Any]) -> Dict[str, Dict[str, np.ndarray]]:
        dtypes = {"class": np.int64, "inst": bool, "size": np.int64, "dist": np.float64, "dconf": np.float64,
                  "conf": np.float64, "void": np.int64, "pred": np.int64, "gt": np.int64, "inter": np.int64}
        return {name: {k: (np.concatenate(v) if v else np.zeros(0, dtypes[k])) for k, v in total[name].items()}
                for name in ("gt", "pred", "pairs")}

    def result(self, total: Dict[str, Any], matched: Matched, frames: int) -> InstanceResult:
        cat = self._arrays(total)
        distance = total["distance"] and bool(frames)
        matrix = _ap_matrix(cat["gt"], cat["pred"], cat["pairs"], 3 if distance else 1)
        return InstanceResult(matrix, distance, frames)

    def warnings(self, result: InstanceResult, total: Dict[str, Any], matched: Matched) -> List[str]:
        scores = total["pred"]["conf"]
        ties = equal_scores_warning(str(matched.where), np.concatenate(scores) if scores else np.zeros(0))
        return [ties] if ties is not None else []


def equal_scores_warning(where: str, scores: Sequence[float]) -> Optional[str]:
    """The warning for instance predictions (``where``: their file or root) whose scores are
    all equal, more than one of them (no score at all counts as 1.0): AP is then computed on
    ties. None when the scores tell the predictions apart, or there is one at most."""
    values = np.asarray(scores, dtype=np.float64)
    if values.size < 2 or not bool((values == values[0]).all()):
        return None
    return (f"{where}: all {values.size} instance predictions have the same score ({float(values[0])!r}): AP is "
            f"computed on ties; give each prediction its confidence (Instance.score), or keep the predictions in a "
            f"format that stores scores (COCO results' score, tar shards, the official .txt)")

