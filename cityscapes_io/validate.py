"""Checking a dataset: every problem found, streamed frame by frame.

>>> from cityscapes_io.validate import validate, summarize
>>> problems = list(validate("path/to/cityscapes"))            # doctest: +SKIP
>>> for p in problems:                                           # doctest: +SKIP
...     print(p)   # error: .../aachen_000000_000019_gtFine_instanceIds.png: cannot decode image: ...
>>> summarize(problems)                                          # doctest: +SKIP
{'total': 1, 'error': 1, 'warning': 0, 'by_code': {'corrupt-png': 1}}

:func:`validate` walks the dataset like any reader (lazily, one frame's pixels at a time), decodes
every file of each frame once and yields a :class:`Problem` for each thing wrong. It never raises
for bad input: a dataset that cannot be opened at all gives one ``error`` problem.

A frame's polygons file (``_gtFine_polygons.json``) is parsed, not drawn: it must be well-formed,
every object not deleted must be drawable by the official scripts (a known label, at least three
points), and its ``imgWidth x imgHeight`` must be the size of the frame's PNGs.

The COCO panoptic ground truth beside a split (``gtFine/cityscapes_panoptic_<split>[_trainId].json``
and its folder, as ``csCreatePanopticImgs`` and ``prepare --kinds panoptic`` write them) is not a
split: it is listed and its JSON parsed, its PNGs never decoded. The JSON must list one PNG per
annotated frame of its split, each PNG it lists must be in its folder, and the folder must hold
no other file.

Problem codes (stable; severity in brackets):

=====================  ========  ==========================================================
``not-found``          error     root, split or file missing; a folder that cannot be listed
``label-file``         error     ``label_colors.txt`` / ``dataset_meta.json`` is invalid
``corrupt-png``        error     a file cannot be read or decoded (truncated, not a PNG,
                                 wrong pixel type such as RGB where gray is expected)
``size-mismatch``      error     the photo and the ground truth differ in size (the polygons'
                                 ``imgWidth x imgHeight`` included)
``unknown-label``      error     pixel values whose label is not in the label map
``labelids-mismatch``  error     labelIds disagree with the classes of instanceIds (labelTrainIds
                                 with those of instanceTrainIds, in a train-id tree)
``corrupt-polygons``   error     a polygons file is not well-formed: not JSON, a missing or bad
                                 ``imgWidth``/``imgHeight`` or one too large, a malformed object,
                                 a non-finite coordinate (the reason names the object index)
``bad-polygon``        error     an object of a polygons file (not deleted) that cannot be drawn:
                                 an unknown label, fewer than 3 points (one problem per object)
``unreadable``         error     any other failure while reading (I/O errors)
``missing-gt``         warning   a photo without ground truth
``missing-photo``      warning   ground truth without a photo
``bad-name``           warning   a frame id outside the Cityscapes name grammar
``8bit-instanceids``   warning   an 8-bit instanceIds file (valid: plain class ids only)
``trainids-mismatch``  warning   labelTrainIds / instanceTrainIds beside official files that are
                                 not their train ids (stale, or drawn from polygons by another
                                 Pillow: ``prepare --overwrite`` rewrites them)
``unknown-file``       warning   a file under ``gtFine/`` or ``leftImg8bit/`` that is not a
                                 frame file (ignored by readers)
``corrupt-panoptic``   error     a panoptic JSON that is not JSON or not COCO panoptic (no
                                 ``annotations`` list, an entry without a string ``image_id``
                                 and ``file_name``)
``panoptic-mismatch``  warning   panoptic ground truth that does not match its split: frames of
                                 the split it lacks, entries naming no frame of it, PNGs it does
                                 not list, a folder without its JSON, or of a split the
                                 dataset does not have (``prepare --kinds panoptic
                                 --overwrite`` rewrites it); a PNG it lists that is missing is
                                 ``not-found``
``empty-split``        warning   a split folder with no frames
``bad-part``           error     a file of the release's other parts that cannot be used: a
                                 disparity PNG not 16-bit gray, a camera JSON missing a key or
                                 with a value out of range, a vehicle, timestamp, CityPersons
                                 or gtBbox3d file that does not parse (a PNG that does not
                                 decode is ``corrupt-png``, one of another size ``size-mismatch``)
``missing-part``       warning   a frame without a part (disparity, camera, a photo folder, a
                                 sequence, ...) that other frames of its split have; Rain
                                 Cityscapes (``leftImg8bit_rain``) covers a subset by design and
                                 is not counted
``polygons-mismatch``  warning   the polygons, drawn by the official rules, disagree with the
                                 labelIds PNG (the release has such frames): how many pixels
``empty-dataset``      warning   no frames at all
=====================  ========  ==========================================================
"""
from __future__ import annotations

import collections
import contextlib
import functools
import posixpath
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from typing import Callable, Any, Deque, Dict, Iterable, Iterator, List, Optional, Set, Tuple

import numpy as np

from . import jsonfile, png
from .dataset import Dataset, open as open_dataset
from .errors import (
    CityscapesIOError,
    DatasetNotFoundError,
    InvalidFileError,
    LabelMapError,
    StorageError,
    UnknownLabelError,
)
from .formats.cityscapes import PanopticTruth
from .frame import Frame
from .instances import class_of_array
from .parallel import Collector, WorkerDied, collecting, ordered_map
from .parts import decode_disparity_raw, parse_camera, parse_persons, parse_timestamp, parse_vehicle
from .polygons import parse_polygons, rasterize
from .release import PART_NAMES
from .storage import listdir, read_file

__all__ = ["Problem", "validate", "summarize", "ERROR", "WARNING"]

ERROR = "error"
WARNING = "warning"

#: Ground-truth kinds decoded as single-channel images.
_GRAY_KINDS = ("instanceIds", "labelIds", "instanceTrainIds", "labelTrainIds")
#: Order in which a frame's files are named when one file stands for the frame.
_KIND_ORDER = ("instanceIds", "labelIds", "instanceTrainIds", "labelTrainIds", "color", "polygons", "image")
#: Instance kinds and the class kind that must hold their classes.
_CLASS_PAIRS = (("instanceIds", "labelIds"), ("instanceTrainIds", "labelTrainIds"))
#: Kinds decoded here besides the photo and the frame's main ground truth (Cityscapes files).
_EXTRA_KINDS = _GRAY_KINDS + ("color",)
#: How many offending pixel values one problem lists.
_MAX_LISTED = 20

# instanceIds value -> class id, for every uint16 value.
_CLASS_OF = class_of_array(np.arange(1 << 16, dtype=np.uint16)).astype(np.uint16)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes
    ----------
    severity : str
        ``"error"`` (the data is wrong or unreadable) or ``"warning"`` (valid, but worth a look).
    path : str
        The file, folder or frame concerned.
    reason : str
        What is wrong, in words.
    code : str
        A short stable machine code (see the module documentation).
    """

    severity: str
    path: str
    reason: str
    code: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.path}: {self.reason}"

    def as_dict(self) -> Dict[str, str]:
        """``{"severity", "path", "reason", "code"}``, e.g. for JSON output."""
        return asdict(self)


def summarize(problems: Iterable[Problem]) -> Dict[str, Any]:
    """Counts of ``problems`` (consumes an iterator): ``{"total": n, "error": n, "warning": n,
    "by_code": {code: n}}`` with codes sorted."""
    by_severity = {ERROR: 0, WARNING: 0}
    by_code: Dict[str, int] = {}
    total = 0
    for p in problems:
        total += 1
        by_severity[p.severity] = by_severity.get(p.severity, 0) + 1
        by_code[p.code] = by_code.get(p.code, 0) + 1
    return {"total": total, **by_severity, "by_code": dict(sorted(by_code.items()))}


def validate(src, *, format: str = "cityscapes", split=None, cities=None,
             storage_options: Optional[dict] = None,
             progress: Optional[Callable[[int], None]] = None,
             annotations: Optional[str] = None, image: Optional[str] = None,
             executor: Optional[Executor] = None) -> Iterator[Problem]:
    """Check a dataset and yield every :class:`Problem` found, frame by frame.

    Parameters
    ----------
    src : str, path, list of them, or Dataset
        Dataset root(s), as for :func:`cityscapes_io.open` (local, fsspec URL, zip, ...), or a
        Dataset (its frames are checked as they are; ``format`` and ``storage_options`` unused).
    format : str
        Dataset format (``"cityscapes"``; ``"voc"`` and ``"camvid"`` get the checks that apply).
    split, cities : str or list of str, optional
        Restrict the check to these splits / cities.
    storage_options : dict, optional
        Filesystem options.
    progress : callable, optional
        Called with the number of frames checked so far, after each frame.
    executor : concurrent.futures.Executor, optional
        Check the frames on this executor (a local ``ProcessPoolExecutor``,
        ``distributed.Client(...).get_executor()``, a Ray executor): frames go as file
        references (with their filesystem and ``storage_options``), are decoded and checked on
        the workers, and their problems come back and are yielded in frame order, among the
        listing's, as one process yields them. The listing, the split-wide checks
        (``missing-part``, panoptic ground truth) and the counts stay here.

    Yields
    ------
    Problem
        Errors: unreadable or corrupt files, size mismatches, unknown labels, labelIds that
        disagree with instanceIds, malformed polygons files and objects in them that cannot be
        drawn, a dataset that cannot be opened, a panoptic JSON that is not COCO panoptic or
        lists a PNG that is missing. Warnings: a photo without ground truth or the reverse, ids
        outside the Cityscapes grammar, 8-bit instanceIds, unknown files, empty splits, an empty
        dataset, panoptic ground truth that does not match its split.

    Only one frame's pixels are held at a time; each file is decoded once (polygons files are
    parsed, never rasterised). Nothing is raised for bad data (an unknown ``format`` name still
    raises ``ValueError``).
    """
    pending: List[Problem] = []

    def on_error(exc: Exception) -> None:  # listing failures and the like: report, go on
        pending.append(_from_exception(exc))

    def on_ignored(path: str) -> None:
        pending.append(Problem(WARNING, _display(roots, None, str(path)),
                               "not a frame file (unknown name suffix): ignored by readers", "unknown-file"))

    try:
        if isinstance(src, Dataset):  # frames made in Python (predictions, a filtered view): checked as they are
            ds = src.filter(split=split, cities=cities) if split is not None or cities is not None else src
        else:
            ds = open_dataset(src, format=format, split=split, cities=cities, storage_options=storage_options,
                              on_error=on_error, annotations=annotations, image=image)
    except CityscapesIOError as exc:
        yield _from_exception(exc, default_path=_src_name(src))
        return
    except OSError as exc:
        yield Problem(ERROR, _src_name(src), f"cannot open: {exc}",
                      "not-found" if isinstance(exc, FileNotFoundError) else "unreadable")
        return
    grammar, instance_kinds = ds.reader.NAME_GRAMMAR, ds.reader.INSTANCE_KINDS
    roots = list(ds.reader.roots)
    ds.reader.on_ignored = on_ignored

    try:
        splits = ds.splits()
    except (CityscapesIOError, OSError) as exc:
        yield _from_exception(exc, default_path=_src_name(src))
        return
    counts = {s: 0 for s in splits}
    # The panoptic ground truth beside the splits checked, and the base names of the annotated
    # frames of those splits (what its JSON must list).
    found = list(getattr(ds.source_reader, "panoptic", ()))
    panoptic = [p for p in found if p.split in counts]
    own_splits = set(ds.source_reader.splits())
    orphans = [p for p in found if p.split not in own_splits]
    bases: Dict[str, Set[str]] = {p.split: set() for p in panoptic}
    total = 0
    aborted = False
    #: Per split, each frame's path and the parts it has (``missing-part``, at the end).
    present: Dict[str, List[Tuple[str, Set[str]]]] = {}
    tail: List[Problem] = []  # what the listing reported after the last frame, and the error that ended it
    held: Deque[Tuple[List[Problem], str, int]] = collections.deque()  # per frame taken: listing problems, split, number

    def taken() -> Iterator[Frame]:
        """The frames, counted as they are listed; the problems the listing reported before
        each kept with it (the frames are checked ahead on an executor)."""
        nonlocal total, aborted
        frames = iter(ds)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except (CityscapesIOError, OSError) as exc:  # a reader that raises while listing
                tail.extend(pending)
                pending.clear()
                tail.append(_from_exception(exc, default_path=_src_name(src)))
                aborted = True
                return
            counts[frame.split] = counts.get(frame.split, 0) + 1
            total += 1
            if frame.split in bases and frame.has_annotations:
                bases[frame.split].add(frame.id.rsplit("/", 1)[-1])
            held.append((list(pending), frame.split, total))
            pending.clear()
            if executor is None:
                yield frame
            else:  # the errors its policy is handed there come back with its problems
                yield collecting(frame)
                frame.release()
        tail.extend(pending)
        pending.clear()

    check = functools.partial(_frame_problems, grammar, instance_kinds, roots)
    results = ordered_map(check, taken(), executor=executor)
    try:
        with contextlib.closing(results):
            for result in results:
                before, split, number = held.popleft()
                yield from before
                assert result is not None
                problems, parts, errors = result
                present.setdefault(split, [])
                if parts is not None:
                    present[split].append(parts)
                if progress is not None:
                    progress(number)
                yield from problems
                yield from (_from_exception(exc) for exc in errors)  # as on_error reports them
                yield from pending  # problems handed to on_error while reading the frame (in this process)
                pending.clear()
    except WorkerDied as exc:
        raise CityscapesIOError(_src_name(src), f"the executor lost a worker (it died, was killed, or its cluster "
                                                f"went away) before {len(exc.lost)} frame(s) were checked: "
                                                f"{', '.join(f.id for f in exc.lost[:10])}; run again") from exc.__cause__
    yield from tail
    yield from pending
    pending.clear()

    if aborted:  # the counts are incomplete
        return
    yield from _missing_parts(present)
    for truth in panoptic:  # with a city filter, the JSON lists frames of other cities too
        yield from _check_panoptic(truth, bases[truth.split] if cities is None else None)
    for truth in orphans:
        yield Problem(WARNING, truth.display() if truth.has_json else truth.root.display(truth.stem),
                      f"panoptic ground truth of split {truth.split!r}, which the dataset does not have",
                      "panoptic-mismatch")
    if cities is None:  # with a city filter, a split may simply not hold those cities
        for s in splits:
            if counts.get(s, 0) == 0:
                yield Problem(WARNING, _split_path(ds, s), f"split {s!r} has no frames", "empty-split")
    if total == 0:
        where = " + ".join(ds.roots) or _src_name(src)
        within = f" in cities {', '.join(map(repr, _as_list(cities)))}" if cities is not None else ""
        yield Problem(WARNING, where, f"the dataset has no frames{within}", "empty-dataset")


# -- one frame ------------------------------------------------------------------------------------

#: The known label ids of the label maps seen last (by identity; a few, so that a worker keeps
#: those of the frames it is sent, which share one label map per task).
_KNOWN: Dict[int, Tuple[Any, np.ndarray]] = {}


def _known_ids(labels) -> np.ndarray:
    hit = _KNOWN.get(id(labels))
    if hit is None or hit[0] is not labels:
        if len(_KNOWN) >= 8:
            _KNOWN.clear()
        hit = _KNOWN[id(labels)] = (labels, labels.known_ids(1 << 16))
    return hit[1]


def _frame_problems(grammar: bool, instance_kinds: Optional[Tuple[str, ...]], roots: List[Any], frame: Frame
                    ) -> Tuple[List[Problem], Optional[Tuple[str, Set[str]]], List[Exception]]:
    """One frame checked (here, or on an executor's worker): its problems (paths as the roots
    display them), its main path and the parts it has (for ``missing-part``), and the errors
    its ``on_error`` was handed there. Its pixels are released."""
    where: Optional[Tuple[str, Set[str]]] = None
    try:
        problems = _check_frame(frame, grammar, instance_kinds, _known_ids)
        try:
            where = (_main_path(frame), frame_parts_present(frame) - {frame.image_key.split("@", 1)[0]})
        except (CityscapesIOError, OSError) as exc:
            problems.append(_from_exception(exc, default_path=_main_path(frame)))
        if roots:
            problems = _with_display_paths(problems, frame, roots)
    finally:
        frame.release()
    return problems, where, list(frame.on_error.errors) if isinstance(frame.on_error, Collector) else []


def _check_frame(frame, grammar: bool, instance_kinds: Optional[Tuple[str, ...]], known_ids) -> List[Problem]:
    """The problems of one frame; ``grammar`` and ``instance_kinds`` are its reader's
    ``NAME_GRAMMAR`` and ``INSTANCE_KINDS`` (:mod:`cityscapes_io.formats.base`)."""
    out: List[Problem] = []
    files = frame.files
    main = _main_path(frame)

    if not files and not frame.has("image") and not frame.has_annotations:
        return [Problem(ERROR, main, "frame has no files", "not-found")]

    # Presence of the photo and the ground truth.
    gt_files = [k for k in files if k != "image"]
    if frame.has("image") and not frame.has_annotations:
        extra = f" (only {', '.join(sorted(gt_files))})" if gt_files else ""
        out.append(Problem(WARNING, _path(frame, "image"), f"photo without ground truth{extra}", "missing-gt"))
    elif not frame.has("image") and gt_files:
        out.append(Problem(WARNING, main, "ground truth without a photo", "missing-photo"))

    if grammar and frame.seq is None:
        out.append(Problem(
            WARNING, main,
            f"frame id {frame.id!r} is outside the Cityscapes name grammar <city>_<seq:06d>_<frame:06d> "
            "(valid, but tools that parse names may not read it)", "bad-name"))

    # Decode every file once, recording sizes (width, height).
    sizes: Dict[str, Tuple[int, int]] = {}
    arrays: Dict[str, np.ndarray] = {}

    if frame.has("image"):
        img = _attempt(out, frame, "image", frame.image)
        if img is not None:
            sizes["image"] = (img.shape[1], img.shape[0])
            del img  # cached by the frame until release()

    gt_kind = _gt_kind(frame)
    ids = None
    if frame.has_annotations:  # from a file, or made in memory / by an operation (gt_kind None)
        ids = _attempt(out, frame, gt_kind, frame.instance_ids)
        if ids is not None:
            sizes[gt_kind or "ground truth"] = (ids.shape[1], ids.shape[0])
            arrays[gt_kind or "ground truth"] = ids

    for kind in _EXTRA_KINDS:
        if kind == gt_kind or kind not in files:
            continue
        if kind == "color":
            arr = _attempt(out, frame, kind, lambda: png.decode_rgb(frame.read_bytes(kind), frame.path(kind)))
        else:
            arr = _attempt(out, frame, kind, lambda: png.decode_gray(frame.read_bytes(kind), frame.path(kind)))
        if arr is not None:
            sizes[kind] = (arr.shape[1], arr.shape[0])
            if kind != "color":
                arrays[kind] = arr
        del arr

    # Polygons: well-formed, every object drawable; the size joins the comparison below.
    if "polygons" in files:
        path = _path(frame, "polygons")
        polygons = _attempt(out, frame, "polygons", lambda: parse_polygons(frame.read_bytes("polygons"), path, frame.labels),
                            code="corrupt-polygons")
        if polygons is not None:
            sizes["polygons"] = (polygons.width, polygons.height)
            for index, reason in polygons.problems():
                out.append(Problem(ERROR, path, f"object {index}: {reason} (the official scripts cannot draw it)",
                                   "bad-polygon"))
        del polygons

    # Sizes: everything against the photo (or the first ground truth when there is no photo).
    ref = "image" if "image" in sizes else next((k for k in _KIND_ORDER if k in sizes), next(iter(sizes), None))
    if ref is not None:
        rw, rh = sizes[ref]
        for kind, (w, h) in sizes.items():
            if kind != ref and (w, h) != (rw, rh):
                out.append(Problem(ERROR, _path(frame, kind),
                                   f"{_kind_name(ref)} is {rw}x{rh} but {_kind_name(kind)} is {w}x{h}",
                                   "size-mismatch"))

    # Label values.
    if ids is not None:
        if instance_kinds is not None and gt_kind == "instanceIds" and ids.dtype == np.uint8:
            out.append(Problem(WARNING, _path(frame, gt_kind),
                               "8-bit instanceIds: valid, but every value is a plain class id (no instances)",
                               "8bit-instanceids"))
        as_instances = instance_kinds is None or gt_kind in instance_kinds
        bad = _unknown_values(ids, known_ids(frame.labels), as_instances)
        if bad:
            out.append(_unknown_problem(_path(frame, gt_kind), bad, frame.labels, as_instances))
    # The frame's own class image (labelIds, or labelTrainIds in a train-id tree) holds labels.
    class_kind = dict(_CLASS_PAIRS).get(gt_kind or "", "labelIds")
    lab = arrays.get(class_kind)
    if lab is not None and gt_kind != class_kind:
        bad = _unknown_values(lab, known_ids(frame.labels), False)
        if bad:
            out.append(_unknown_problem(_path(frame, class_kind), bad, frame.labels, False))

    # labelIds must be the classes of instanceIds (in a train-id tree, labelTrainIds those of
    # instanceTrainIds; train-id files beside official ones are checked against those below).
    for inst_kind, cls_kind in _CLASS_PAIRS[1:] if gt_kind in ("instanceTrainIds", "labelTrainIds") else _CLASS_PAIRS[:1]:
        inst, cls = arrays.get(inst_kind), arrays.get(cls_kind)
        if inst is not None and cls is not None and inst.shape == cls.shape:
            expected = inst if inst.dtype == np.uint8 else _CLASS_OF[inst]
            problem = _disagreement(expected, cls, inst, cls_kind, inst_kind, "class")
            if problem is not None:
                out.append(Problem(ERROR, _path(frame, cls_kind), problem, "labelids-mismatch"))

    # Train-id files beside official ones must be their train ids (as `prepare` writes them).
    if gt_kind == "instanceIds" or (gt_kind == "labelIds" and "instanceIds" not in files):
        for kind, compute in (("labelTrainIds", frame.train_ids), ("instanceTrainIds", frame.instance_train_ids)):
            got = arrays.get(kind)
            if got is None:
                continue
            want = _attempt(out, frame, gt_kind, compute)
            if want is not None and want.shape == got.shape:
                source = ids if kind == "instanceTrainIds" else arrays.get("labelIds", ids)
                assert source is not None  # the train ids were computed from it
                problem = _disagreement(want, got, source, kind, gt_kind if kind == "instanceTrainIds" else "labelIds",
                                        "train id")
                if problem is not None:
                    out.append(Problem(WARNING, _path(frame, kind), problem + " (prepare --overwrite rewrites it)",
                                       "trainids-mismatch"))

    # The polygons drawn by the official rules against the labelIds PNG.
    if "polygons" in files and ids is not None and not any(p.code in ("corrupt-polygons", "bad-polygon") for p in out):
        # The labelIds PNG when it decoded, else the classes of the instanceIds (none when
        # labelIds is there but broken: reported above).
        classes = arrays.get("labelIds") if "labelIds" in files else (
            _CLASS_OF[ids] if gt_kind == "instanceIds" and ids.dtype == np.uint16 else None)
        drawn = (_attempt(out, frame, "polygons", lambda: frame.rasterize("ids"), code="corrupt-polygons")
                 if classes is not None and gt_kind in ("instanceIds", "labelIds") else None)
        if drawn is not None and classes is not None and drawn.shape == classes.shape:
            n = int(np.count_nonzero(drawn != classes))
            if n:
                out.append(Problem(WARNING, _path(frame, "polygons"),
                                   f"drawn by the official rules, the polygons give {n} of {drawn.size} pixels "
                                   f"({100 * n / drawn.size:.3f}%) another label than {_kind_name(class_kind)}",
                                   "polygons-mismatch"))
    out += _check_parts(frame, sizes.get(ref) if ref is not None else None)
    return out


def _missing_parts(present: Dict[str, List[Tuple[str, Set[str]]]]) -> Iterator[Problem]:
    """``missing-part`` for every frame without a part other frames of its split have."""
    for split, frames in present.items():
        counts: Dict[str, int] = {}
        for _, have in frames:
            for part in have:
                counts[part] = counts.get(part, 0) + 1
        for path, have in frames:
            for part in sorted(p for p in counts if p not in have and p not in _SUBSET_FOLDERS):
                yield Problem(WARNING, path, f"no {part} (which {counts[part]} of the {len(frames)} frames of split "
                                             f"{split!r} have)", "missing-part")


# -- the release's other parts -------------------------------------------------------------------------

#: The one-file parts checked, with their parsers.
_PART_PARSERS = {"camera": parse_camera, "vehicle": parse_vehicle, "timestamp": parse_timestamp,
                 "gtBboxCityPersons": parse_persons}
#: Photo folders that cover a subset of the frames by design (not ``missing-part``).
_SUBSET_FOLDERS = ("leftImg8bit_rain",)


def _check_parts(frame, size: Optional[Tuple[int, int]]) -> List[Problem]:
    """The problems of a frame's files of the release's other parts: each parsed (the disparity
    decoded, the other photos' headers read), sizes against ``size`` (width, height)."""
    parts = frame.parts
    if parts is None:
        return []
    out: List[Problem] = []

    def attempt(loc, fn, code: str = "bad-part"):
        shown = parts.shown(loc)
        try:
            return fn(parts.read(loc), shown)
        except CityscapesIOError as exc:
            out.append(_from_exception(exc, default_path=shown, code=code))
        return None

    def check_size(loc, w: int, h: int, what: str) -> None:
        if size is not None and (w, h) != tuple(size):
            out.append(Problem(ERROR, parts.shown(loc), f"the frame is {size[0]}x{size[1]} but {what} is {w}x{h}",
                               "size-mismatch"))

    try:
        loc = parts.find("disparity")
        if loc is not None:
            disp = attempt(loc, decode_disparity_raw)
            if disp is not None:
                check_size(loc, disp.shape[1], disp.shape[0], "its disparity")
        for name, parse in _PART_PARSERS.items():
            loc = parts.find(name)
            if loc is not None:
                attempt(loc, parse)
        loc = parts.find("gtBbox3d")
        if loc is not None:
            from .boxes3d import parse_boxes3d

            attempt(loc, parse_boxes3d)
        for key in parts.image_keys():
            loc = parts.photo(key)
            if loc is None or key == frame.image_key:
                continue
            dims = attempt(loc, png.image_size, code="corrupt-png")
            if dims is not None:
                check_size(loc, dims[0], dims[1], f"its {key} photo")
    except (CityscapesIOError, OSError) as exc:  # a part folder that cannot be listed
        out.append(_from_exception(exc, default_path=_main_path(frame)))
    return out


def frame_parts_present(frame) -> Set[str]:
    """The parts a frame has (see :meth:`cityscapes_io.release.FrameParts.present`)."""
    return frame.parts.present() if frame.parts is not None else set()


def _check_panoptic(truth: PanopticTruth, frames: Optional[Set[str]]) -> List[Problem]:
    """The problems of one split's panoptic ground truth: its JSON is COCO panoptic, lists a
    PNG of its folder per frame of ``frames`` (base names of the split's annotated frames;
    None: not compared) and nothing else, and the folder holds those PNGs only. Listed and
    parsed; nothing is decoded."""
    name = posixpath.basename(truth.json_path)
    folder = truth.root.display(truth.stem)
    if not truth.has_json:
        return [Problem(WARNING, folder, f"panoptic PNGs without their JSON {name} (prepare --kinds panoptic writes it "
                                         f"last: an interrupted run? run it again)", "panoptic-mismatch")]
    path = truth.display()
    try:
        doc = jsonfile.loads(read_file(truth.root.fs, truth.root.join(truth.json_path)), path)
        files = {n for n, t in listdir(truth.root, truth.stem).items() if t == "file"}
    except CityscapesIOError as exc:
        return [_from_exception(exc, default_path=path, code="corrupt-panoptic")]
    annotations = doc.get("annotations") if isinstance(doc, dict) else None
    if not isinstance(annotations, list):
        return [Problem(ERROR, path, "not COCO panoptic: no 'annotations' list", "corrupt-panoptic")]
    out: List[Problem] = []
    listed: Dict[str, str] = {}  # file_name -> image_id
    for i, ann in enumerate(annotations):
        image_id, file_name = (ann.get("image_id"), ann.get("file_name")) if isinstance(ann, dict) else (None, None)
        if not isinstance(image_id, str) or not isinstance(file_name, str):
            out.append(Problem(ERROR, path, f"annotation {i}: no string image_id and file_name (not the COCO "
                                            f"panoptic of csCreatePanopticImgs)", "corrupt-panoptic"))
            continue
        listed[file_name] = image_id
    if out:  # entries it cannot name: the JSON is not compared with its split and folder
        return out
    if not truth.has_folder and listed:
        return out + [Problem(ERROR, folder, f"missing: {name} lists {len(listed)} PNGs in it", "not-found")]
    out += [Problem(ERROR, truth.root.display(f"{truth.stem}/{f}"), f"listed in {name} but missing", "not-found")
            for f in sorted(listed) if f not in files]
    rewrite = "prepare --kinds panoptic --overwrite rewrites it"
    unlisted = sorted(files - set(listed))
    if unlisted:
        out.append(Problem(WARNING, folder, f"{_some(unlisted)} not listed in {name} (ignored by evaluation; "
                                            f"{rewrite})", "panoptic-mismatch"))
    if frames is not None:
        ids = set(listed.values())
        lacking = sorted(frames - ids)
        if lacking:
            out.append(Problem(WARNING, path, f"no annotation for {_some(lacking, 'frame')} of split "
                                              f"{truth.split!r} (stale? {rewrite})", "panoptic-mismatch"))
        extra = sorted(ids - frames)
        if extra:
            out.append(Problem(WARNING, path, f"{_some(extra, 'image_id')} of no annotated frame of split "
                                              f"{truth.split!r} (stale? {rewrite})", "panoptic-mismatch"))
    return out


def _some(names: List[str], what: str = "file") -> str:
    """``"3 files: a, b, c"``, the first few of many."""
    shown = ", ".join(names[:_MAX_LISTED]) + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")
    return f"{len(names)} {what}{'s' if len(names) != 1 else ''}: {shown}"


def _disagreement(expected: np.ndarray, got: np.ndarray, source: np.ndarray, got_kind: str,
                  source_kind: str, what: str) -> Optional[str]:
    """How ``got`` (a ``got_kind`` image) differs from ``expected`` (derived from ``source``, a
    ``source_kind`` image), or None when it does not."""
    diff = expected != got
    n = int(np.count_nonzero(diff))
    if not n:
        return None
    i = int(np.argmax(diff.reshape(-1)))
    y, x = divmod(i, got.shape[1])
    return (f"{n} of {got.size} pixels disagree with {source_kind} (first at x={x}, y={y}: {got_kind} "
            f"{int(got.reshape(-1)[i])}, {source_kind} {int(source.reshape(-1)[i])} -> {what} "
            f"{int(expected.reshape(-1)[i])})")


def _attempt(out: List[Problem], frame, kind: Optional[str], fn, code: Optional[str] = None):
    """Run a decode; on failure append a problem naming the file and return None. ``code`` is
    the code of an invalid file (``corrupt-png`` by default)."""
    try:
        return fn()
    except CityscapesIOError as exc:  # the decoders turn every fault of a file into one of these
        out.append(_from_exception(exc, default_path=_path(frame, kind), code=code))
    return None


def _unknown_values(arr: np.ndarray, known: np.ndarray, as_instances: bool) -> List[Tuple[int, int, int]]:
    """``(value, label_id, pixels)`` for every pixel value whose label is not known."""
    if arr.size == 0:
        return []
    flat = arr.reshape(-1)
    if flat.dtype.kind not in "u" or flat.dtype.itemsize > 2:
        flat = flat.astype(np.int64)
        if flat.min() < 0 or flat.max() >= 1 << 16:
            flat = np.clip(flat, 0, (1 << 16) - 1)
    counts = np.bincount(flat)
    values = np.flatnonzero(counts)
    classes = _CLASS_OF[values] if as_instances else values
    bad = ~known[classes]
    return [(int(v), int(c), int(counts[v])) for v, c in zip(values[bad], classes[bad])]


def _unknown_problem(path: str, bad: List[Tuple[int, int, int]], labels, as_instances: bool) -> Problem:
    items = []
    for v, c, n in bad[:_MAX_LISTED]:
        if as_instances and v != c:
            items.append(f"{v} (label {c}, {n} px)")
        else:
            items.append(f"{v} ({n} px)")
    more = f" and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
    ids = sorted({c for _, c, _ in bad})
    shown = ", ".join(map(str, ids[:_MAX_LISTED])) + (", ..." if len(ids) > _MAX_LISTED else "")
    return Problem(
        ERROR, path,
        f"{len(bad)} pixel value(s) refer to label id(s) {shown} not in the label map "
        f"({labels.source}, {len(labels)} labels): {', '.join(items)}{more}",
        "unknown-label")


# -- helpers ----------------------------------------------------------------------------------------

def _from_exception(exc: Exception, default_path: str = "", code: Optional[str] = None) -> Problem:
    path = getattr(exc, "path", None) or default_path
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    if isinstance(exc, UnknownLabelError):
        code = "unknown-label"
    elif isinstance(exc, LabelMapError):
        code = "label-file"
    elif isinstance(exc, DatasetNotFoundError):
        code = "not-found"
    elif isinstance(exc, StorageError):
        code = "unreadable"
    elif code is None:
        code = "corrupt-png" if isinstance(exc, InvalidFileError) else "unreadable"
    return Problem(ERROR, str(path), str(reason), code)


def _display(roots, fs, path: str) -> str:
    """``path`` (as the filesystem names it) under the URL of the root holding it: an S3 key gets
    its ``s3://``, a member of an archive the archive's name."""
    for root in roots:
        if fs is not None and root.fs is not fs:
            continue
        base = root.path.rstrip("/")
        p = path if base.startswith("/") else path.lstrip("/")
        if not base:
            rel = p
        elif p.startswith(base + "/"):
            rel = p[len(base) + 1:]
        else:
            continue
        return root.display(rel)
    return path


def _with_display_paths(problems: List[Problem], frame, roots) -> List[Problem]:
    names = {path: _display(roots, fs, path) for fs, path in frame.source.locations().values()}
    return [Problem(p.severity, names.get(p.path, p.path), p.reason, p.code) for p in problems]


def _gt_kind(frame) -> Optional[str]:
    """The file the frame's ``instance_ids()`` decodes (formats choose it)."""
    return frame.source.gt_kind


def _path(frame, kind: Optional[str]) -> str:
    if kind is not None and kind in frame.files:
        return frame.path(kind)
    return f"{frame.split}/{frame.id}"


def _main_path(frame) -> str:
    files = frame.files
    for kind in _KIND_ORDER:
        if kind in files:
            return files[kind]
    for path in files.values():
        return path
    return f"{frame.split}/{frame.id}"


def _kind_name(kind: str) -> str:
    return "photo" if kind == "image" else kind


def _src_name(src) -> str:
    if isinstance(src, (list, tuple)):
        return " + ".join(map(str, src))
    return str(src)


def _as_list(value) -> List[str]:
    return [value] if isinstance(value, str) else list(value)


def _split_path(ds, split: str) -> str:
    """The split's folder(s), for a Cityscapes tree; the split name elsewhere."""
    found = ds.reader.split_locations(split)
    if found:
        return " + ".join(found)
    roots = " + ".join(ds.roots)
    return f"{roots}:{split}" if roots else split
