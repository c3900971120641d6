"""What the evaluation tasks share: the official label table as the evaluators use it, matching
prediction files to ground-truth frames by ``<city>_<seq>_<frame>``, the error that lists a
submission's problems, and the ordered map of a per-frame function over processes or threads
(on the library's one pool, :func:`~cityscapes_io.parallel.ordered_map`).

Every task computes per-frame statistics in a module-level function (so that it pickles to a
worker process) and sums them in frame order in the calling process: ``workers > 1`` gives the
very same numbers as one process, and nothing holds more than a bounded window of frames.
"""
from __future__ import annotations

import contextlib
import functools
import os
from concurrent.futures import Executor
import posixpath
import re
from typing import Any, Callable, Dict, FrozenSet, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import CityscapesIOError
from ..labels import Label, LabelMap
from ..parallel import WorkerDied, executor_width, ordered_map
from ..parts import image_file_suffix
from ..storage import Root, find_files, resolve_root

__all__ = ["N", "NAME", "CATEGORY", "HAS_INSTANCES", "IGNORED", "CATEGORIES", "IDS", "TABLE", "KNOWN_IDS",
           "match_predictions", "refuse", "run_frames", "processes_for", "FRAMES_PER_PROCESS", "match_dataset", "few",
           "TRAIN_TO_ID", "official_lut", "ID_OF", "for_photo", "json_root"]

#: The official table, in its order (the license plate, id -1, included).
TABLE: List[Label] = list(LabelMap.cityscapes())
# Label ids 0..33 (the license plate, id -1, is not evaluated).
LABELS = [lab for lab in TABLE if lab.id >= 0]
IDS: List[int] = [lab.id for lab in LABELS]
N = max(IDS) + 1  # 34
NAME: Dict[int, str] = {lab.id: lab.name for lab in LABELS}
ID_OF: Dict[str, int] = {lab.name: lab.id for lab in LABELS}
CATEGORY: Dict[int, str] = {lab.id: str(lab.category) for lab in LABELS}
HAS_INSTANCES: Dict[int, bool] = {lab.id: bool(lab.has_instances) for lab in LABELS}
IGNORED: Dict[int, bool] = {lab.id: bool(lab.ignore_in_eval) for lab in LABELS}
#: Label ids the official table knows (the license plate, -1, included).
KNOWN_IDS: FrozenSet[int] = frozenset(lab.id for lab in TABLE)
#: Categories in the order of the official ``category2labels`` (first appearance in the table).
CATEGORIES: List[str] = list(dict.fromkeys(str(lab.category) for lab in TABLE))
# Train id -> label id (the official table); -1 for a value that is not a train id.
TRAIN_TO_ID: np.ndarray = np.full(256, -1, np.int64)
for _lab in LABELS:
    if _lab.train_id is not None and 0 <= _lab.train_id < 255:
        TRAIN_TO_ID[_lab.train_id] = _lab.id

_TAIL = re.compile(r"(?=(_\d+_\d+))")


def official_lut(labels: Any) -> np.ndarray:
    """A prediction dataset's label ids -> official label ids, by name (-1: a label the official
    table does not know, or the ignore label of a train-id map, which is not a prediction)."""
    ids = [lab.id for lab in labels]
    lut: np.ndarray = np.full(max(max(ids, default=0) + 1, 256), -1, np.int64)
    train = labels.is_train_ids
    for lab in labels:
        official = ID_OF.get(lab.name)
        if official is not None and not (train and lab.id == 255):
            lut[lab.id] = official
    return lut


def few(values: np.ndarray, limit: int = 10) -> str:
    """The first values of an array, for a message."""
    shown = ", ".join(str(int(v)) for v in values[:limit])
    return shown + (f" ... ({values.size} values)" if values.size > limit else "")


#: Words that follow a photo folder's name in the name of one of its variants' files
#: (``_leftImg8bit_foggy_beta_0.02``, ``_leftImg8bit_rain_alpha_…``, ``_leftImg8bit_blurred``).
_VARIANT_WORDS = re.compile(r"^_(?:foggy|foggyDBF|transmittance|transmittanceDBF|rain|blurred|beta|alpha)(?:_|\.|$)")


def for_photo(name: str, key: str) -> bool:
    """Whether a prediction file's name is that of the photo ``key``: it holds the key's file
    suffix (``_leftImg8bit_foggy_beta_0.02`` for ``leftImg8bit_foggy@beta_0.02``) not followed
    by more of a variant's text (another number: ``beta_0.025``; for a plain key such as
    ``leftImg8bit``, a variant's words: ``_foggy``, ``_rain``, ``_blurred``, ...)."""
    suffix = image_file_suffix(key)
    start = name.find(suffix)
    while start >= 0:
        rest = name[start + len(suffix):]
        if not re.match(r"^\.?\d", rest) and not _VARIANT_WORDS.match(rest):
            return True
        start = name.find(suffix, start + 1)
    return False


def match_predictions(frames: Sequence[Any], pred_root: Root, exts: Sequence[str] = (".png",),
                      files: Optional[Iterable[str]] = None, image: Optional[str] = None) -> Tuple[List[str], List[str]]:
    """The prediction file of each frame (``""`` when none) and the problems of the prediction tree.

    The official rule: a prediction file's name contains ``<city>_<seq>_<frame>`` of exactly one
    ground-truth frame, and each frame has exactly one such file (searched recursively). Files
    not ending in one of ``exts`` are not predictions (masks beside instance txt files, notes).
    ``image``: a photo key; only the predictions of that photo count (see :func:`for_photo`),
    when a tree holds those of several photos of each frame (Foggy Cityscapes' three densities).
    """
    keys: Dict[str, int] = {}
    by_tail: Dict[str, List[str]] = {}
    for k, frame in enumerate(frames):
        base = posixpath.basename(frame.id)
        keys[base] = k
        m = re.search(r"_\d+_\d+$", base)
        by_tail.setdefault(m.group(0) if m else "", []).append(base)
    if files is None:
        try:
            files = find_files(pred_root.fs, pred_root.path)
        except FileNotFoundError as exc:
            raise CityscapesIOError(str(pred_root), "the prediction folder does not exist") from exc
    found: Dict[int, List[str]] = {}
    problems = []
    untailed = by_tail.get("", [])
    lowered = tuple(e.lower() for e in exts)
    for path in files:
        name = posixpath.basename(path)
        if not name.lower().endswith(lowered) or (image is not None and not for_photo(name, image)):
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
            hint = ("; they are of several photos of the frame: give the photo key of the ones to evaluate "
                    "(image=KEY, --image KEY, e.g. leftImg8bit_foggy@beta_0.02)"
                    if image is None and _several_photos(paths) else "")
            problems.append(f"{frame.where}: several predictions for frame {frame.id}: {shown}{hint}")
        out.append(paths[0] if paths else "")
    return out, problems


def _several_photos(paths: Sequence[str]) -> bool:
    """Whether prediction files are named after several photos of one frame (their names differ
    after a photo folder's name)."""
    tails = set()
    for path in paths:
        name = posixpath.basename(path)
        m = _PHOTO_IN_NAME.search(name)
        tails.add(name[m.start():] if m else None)
    return len(tails) > 1 and None not in tails


_PHOTO_IN_NAME = re.compile(r"_(?:left|right)Img(?:8|16)bit")


def match_dataset(frames: Sequence[Any], predictions: Any) -> Tuple[List[Any], List[str]]:
    """The prediction Frame of each ground-truth frame (``None`` when none), by frame id, from a
    Dataset of predictions, and the problems: a frame predicted twice, a prediction matching
    no frame, a frame without prediction."""
    by_id: Dict[str, Any] = {}
    problems = []
    for f in predictions:
        if f.id in by_id:
            problems.append(f"{f.where or f.id}: several predictions for frame {f.id}")
        by_id[f.id] = f
    wanted = {f.id for f in frames}
    problems += [f"{f.where or f.id}: prediction {f.id} matches no ground-truth frame"
                 for f in by_id.values() if f.id not in wanted]
    problems += [f"{f.where}: no prediction for frame {f.id}" for f in frames if f.id not in by_id]
    return [by_id.get(f.id) for f in frames], problems


def refuse(problems: Sequence[str], where: Any) -> CityscapesIOError:
    """The error of a submission with problems, listing every one."""
    return CityscapesIOError(str(where), f"{len(problems)} problem(s) with the predictions:\n" +
                             "\n".join(f"  {p}" for p in problems))


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _one(fn: Callable[..., Any], frame: Any, extra: Tuple[Any, ...], common: Tuple[Any, ...]) -> Any:
    try:
        return fn(frame, *extra, *common)
    finally:
        frame.release()
        for arg in extra:  # a prediction frame (predictions given as a Dataset) holds pixels too
            if hasattr(arg, "release"):
                arg.release()


#: Frames a worker process must have for its start-up (a fresh interpreter importing numpy and
#: this library: half a second of one core) to pay.
FRAMES_PER_PROCESS = 32


def processes_for(workers: int, frames: int) -> int:
    """The processes of ``workers`` asked for that can beat one process, which works on two
    frames at once in two threads with no start-up (:func:`run_frames`): no more than the
    cores, :data:`FRAMES_PER_PROCESS` frames or more each, and more than two; else 1 (this
    process). The command line's ``-j N``; :func:`run_frames` itself starts what it is told."""
    n = min(workers, _cores(), frames // FRAMES_PER_PROCESS)
    return n if n > 2 else 1


def run_frames(fn: Callable[..., Any], frames: Sequence[Any], args: Sequence[Tuple[Any, ...]],
               common: Tuple[Any, ...] = (), *, workers: int = 1, threads: Optional[int] = None,
               executor: Optional[Executor] = None) -> Iterator[Any]:
    """``fn(frame, *args[k], *common)`` for every frame, yielded in frame order.

    With ``workers > 1`` the frames go in chunks to spawned processes (``fn`` and its arguments
    must pickle), a bounded window of chunks in flight, so memory does not grow with the split;
    their warnings are raised again here, in frame order. With ``executor`` (the caller's: a
    ``ProcessPoolExecutor``, a Dask client's ``get_executor()``, a Ray executor) the chunks go
    to it the same way: a frame travels as its file references (with its filesystem and the
    storage options it was opened with), its arguments and ``common`` with it, and what comes
    back is the frame's statistics. With one worker, ``threads`` frames
    are worked on at once in this process (default: two when two cores are available): PNG
    decoding and numpy release the GIL, so reading the next frame overlaps counting this one.
    ``fn`` must then not share state between frames. (Processes beat that only above two, on
    as many cores: :func:`processes_for`.) All are :func:`~cityscapes_io.parallel.ordered_map`.
    """
    call = functools.partial(_one_item, fn, common)
    if workers <= 1 and executor is None:
        n = min(2, _cores()) if threads is None else max(1, threads)
        yield from ordered_map(call, zip(frames, args), workers=n, processes=False)
        return
    width = executor_width(executor) if executor is not None else workers
    size = max(1, min(16, len(frames) // (width * 4) or 1))
    done = 0  # frames yielded: those after them are not accounted for when a worker dies
    results = ordered_map(call, zip(frames, args), workers=workers, chunk=size, executor=executor)
    try:
        with contextlib.closing(results):
            for result in results:
                done += 1
                yield result
    except WorkerDied as exc:
        raise _worker_died(frames[done:], exc.foreign) from (exc.__cause__ if exc.foreign else None)


def _one_item(fn: Callable[..., Any], common: Tuple[Any, ...], item: Tuple[Any, Tuple[Any, ...]]) -> Any:
    return _one(fn, item[0], item[1], common)


def _worker_died(frames: Sequence[Any], foreign: bool = False) -> CityscapesIOError:
    """The error of a worker process that ended abruptly (killed by a signal, out of memory), or
    of a worker the executor lost (``foreign``), naming the frames that have no result."""
    shown = ", ".join(str(f.id) for f in frames[:10]) + (f" ... ({len(frames)} frames)" if len(frames) > 10 else "")
    if foreign:
        return CityscapesIOError(None, f"the executor lost a worker (it died, was killed, or its cluster went away): "
                                       f"{len(frames)} frame(s) not accounted for: {shown}; no result is given, "
                                       f"run again")
    return CityscapesIOError(None, f"a worker process ended abruptly (killed by a signal or out of memory): "
                                   f"{len(frames)} frame(s) not accounted for: {shown}; no result is given, run "
                                   f"again (with fewer processes, -j, when memory is short)")


def json_root(url: str, storage_options: Any) -> Tuple[Root, str]:
    """The root of the folder holding a prediction JSON (local, URL or chained URL such as
    ``zip://preds.json::s3://bucket/run.zip``) and the JSON's name in it."""
    head, sep, rest = url.partition("::")
    folder, name = posixpath.split(head.rstrip("/"))
    if folder.endswith(":"):
        folder += "//"
    return resolve_root((folder or ".") + sep + rest, storage_options), name
