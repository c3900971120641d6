"""The evaluation task contract, and the one driver that runs every task.

A :class:`Task` is what an evaluation knows of one kind of submission, in four parts:

1. **Matching** (:meth:`Task.match`): which prediction goes with which ground-truth frame. The
   predictions are a folder or URL in the task's official submission layout, or a
   :class:`~cityscapes_io.Dataset` whose frames have the ground truth's ids. The answer, a
   :class:`Matched`, holds the frames that have a prediction with each one's arguments (a file
   path, a prediction Frame, an annotation), the arguments all frames share, the problems of the
   matching (a frame without prediction, a prediction of no frame or of several), and what the
   result will need (the categories, the option given).
2. **A frame's problems** (:attr:`Task.frame_problems`): ``fn(frame, *args, *common)`` returns
   the list of what is wrong with the frame's prediction (or its ground truth), each problem
   naming its file. It reads what it must to tell (headers, values) and counts nothing.
3. **A frame's statistics** (:attr:`Task.frame_statistics`): ``fn(frame, *args, *common)``
   returns the frame's statistics, an object whose ``problems`` lists the same problems (then it
   counts nothing). Statistics are small (a confusion matrix, per-segment sizes and
   intersections: no mask) and merge by addition, so that a total over any frames, in a process
   pool or a training loop, is a sum. Both functions are module-level (they pickle to a worker
   process) and see one frame at a time.
4. **Accumulation**: :meth:`Task.start` is the empty total, :meth:`Task.add` adds one frame's
   statistics to it (frames are added in frame order, so any number of processes gives the very
   same numbers), :meth:`Task.result` turns the total into the result (``to_dict()``: the
   official results JSON, ``str()``: the official tables), and :meth:`Task.warnings` says what
   the numbers alone do not (predictions that look like train ids, scores all equal).

The driver is :func:`evaluate` and :func:`check_predictions`: open the ground truth, ask the task
registered in :data:`TASKS` under the name given to match, map the frame function over the
matched frames (:func:`~.common.run_frames`: in order, in threads, processes or on the caller's
executor), and refuse a submission with problems, listing every one (a real evaluation refuses
with the list a check gives). A new task is a module with a :class:`Task` subclass and one line in :data:`TASKS`.
"""
from __future__ import annotations

import warnings
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..dataset import open as open_dataset
from ..errors import CityscapesIOError
from ..parts import parse_image_key
from .common import refuse, run_frames

__all__ = ["Task", "Matched", "TASKS", "evaluate", "check_predictions"]


@dataclass
class Matched:
    """Predictions matched to the ground-truth frames (what :meth:`Task.match` returns).

    Attributes
    ----------
    frames : list of Frame
        The ground-truth frames that have a prediction, in order.
    args : list of tuple
        Per frame of ``frames``, the arguments its frame function gets after the frame.
    common : tuple
        The arguments every frame function gets last (a prediction root, a lookup table).
    problems : list of str
        The problems of the matching.
    where : object
        The predictions as the error of a refused submission names them.
    context : object
        What :meth:`Task.result` and :meth:`Task.warnings` need besides the total.
    """

    frames: List[Any]
    args: List[Tuple[Any, ...]]
    common: Tuple[Any, ...] = ()
    problems: List[str] = field(default_factory=list)
    where: Any = None
    context: Any = None

    @classmethod
    def one_each(cls, frames: Sequence[Any], predictions: Sequence[Any], common: Tuple[Any, ...] = (),
                 problems: Sequence[str] = (), where: Any = None, context: Any = None) -> "Matched":
        """From one prediction per frame (``None`` or ``""`` for none, such a frame being left
        out): each frame's arguments are its prediction alone."""
        keep = [k for k, p in enumerate(predictions) if p is not None and p != ""]
        return cls([frames[k] for k in keep], [(predictions[k],) for k in keep], common, list(problems), where,
                   context)


class Task:
    """An evaluation task (see the module's documentation for the contract).

    Attributes
    ----------
    options : tuple of str
        The keyword options :func:`evaluate` takes for this task beyond the common arguments;
        they are handed to :meth:`match`.
    frame_problems : callable
        Module-level ``fn(frame, *args, *common) -> list of str``.
    frame_statistics : callable
        Module-level ``fn(frame, *args, *common) -> statistics`` with a ``problems`` list.
    """

    options: Tuple[str, ...] = ()
    frame_problems: Callable[..., List[str]]
    frame_statistics: Callable[..., Any]

    def match(self, frames: Sequence[Any], predictions: Any, *, pred_storage_options: Any = None,
              **options: Any) -> Matched:
        """The prediction of each frame, and the problems of the matching."""
        raise NotImplementedError

    def start(self, matched: Matched) -> Any:
        """The total of no frame."""
        raise NotImplementedError

    def add(self, total: Any, stats: Any) -> Any:
        """``total`` with one frame's statistics (without problems) added."""
        raise NotImplementedError

    def result(self, total: Any, matched: Matched, frames: int) -> Any:
        """The result of the total over the ``frames`` ground-truth frames."""
        raise NotImplementedError

    def warnings(self, result: Any, total: Any, matched: Matched) -> List[str]:
        """What the caller is warned of once the result is made (nothing by default)."""
        return []


#: The tasks, by name (``evaluate(..., task=name)``, the command line's ``--task``).
TASKS: Dict[str, Task] = {}


def _prepare(gt, predictions, task: str, split: str, storage_options, pred_storage_options,
             options: Dict[str, Any]) -> Tuple[Task, int, Matched]:
    """The task, the number of ground-truth frames and the predictions matched to them."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are: {', '.join(TASKS)}")
    the_task = TASKS[task]
    unknown = sorted(set(options) - set(the_task.options) - {"image"})
    if unknown:
        raise TypeError(f"unknown option(s) for task {task!r}: {', '.join(unknown)}")
    image = options.pop("image", None)
    if image is not None:
        parse_image_key(image)
        if "image" not in the_task.options:
            raise ValueError(f"image= picks prediction files by photo; task {task!r} does not match files by name")
        options["image"] = image
    ds = open_dataset(gt, split=split, storage_options=storage_options)
    frames = list(ds)
    if not frames:
        raise CityscapesIOError(str(gt), f"no ground-truth frames in split {split!r}")
    matched = the_task.match(frames, predictions, pred_storage_options=pred_storage_options, **options)
    return the_task, len(frames), matched


def _problems(task: Task, matched: Matched, workers: int, progress: Optional[Callable[[int], None]],
              executor: Optional[Executor] = None) -> List[str]:
    """The problems of the matching, then every frame's, in frame order."""
    problems = list(matched.problems)
    for done, found in enumerate(run_frames(task.frame_problems, matched.frames, matched.args, matched.common,
                                            workers=workers, executor=executor), 1):
        problems.extend(found)
        if progress is not None:
            progress(done)
    return problems


def evaluate(gt, predictions, task: str = "semantic", *, split: str = "val", storage_options=None,
             pred_storage_options=None, workers: int = 1, progress: Optional[Callable[[int], None]] = None,
             executor: Optional[Executor] = None, **options: Any):
    """Evaluate ``predictions`` against the ground truth ``gt`` with the official rules.

    Parameters
    ----------
    gt : str or path
        A Cityscapes root (local, zip, fsspec URL) with the ``gtFine`` ground truth.
    predictions : str, path or Dataset
        In the official submission layout of the task: ``semantic``, a folder or URL holding one
        single-channel PNG of label ids per ground-truth frame whose file name contains
        ``<city>_<seq>_<frame>`` (searched recursively); or a :class:`~cityscapes_io.Dataset`
        whose frames have the ground truth's ids (its labels are matched to the official ones
        by name, so a train-id dataset works as is). ``instance``, a folder or URL holding one
        ``<city>_<seq>_<frame>*.txt`` per frame (searched recursively), each line
        ``<mask path relative to the txt> <label id> <confidence>``, the masks images whose
        non-zero pixels are the instance; or a Dataset whose frames hold the predicted instances
        (label matched by name, confidence the instance's ``score``, 1 without one).
        ``panoptic``, the path or URL of a COCO panoptic JSON whose PNGs are in the folder of the
        same stem beside it, one annotation per frame with ``image_id`` the frame's base name
        (``frankfurt_000000_000294``) or, as COCO has it (and the ``coco_panoptic`` writer writes,
        ``annotations/panoptic_<split>.json``), an integer id of an entry of the JSON's ``images``
        whose ``file_name`` holds the frame id; or a Dataset whose frames hold instance ids, made
        into panoptic segments by the rules of ``csCreatePanopticImgs`` (labels matched by name),
        as :func:`export_predictions` writes them. The ground truth is
        ``gtFine/cityscapes_panoptic_<split>.json`` and its folder when there, else made
        from the instanceIds on the fly with the rules of ``csCreatePanopticImgs``.
    task : str
        A name of :data:`TASKS`: ``"semantic"``, ``"instance"`` or ``"panoptic"``.
    split : str
        The split evaluated (default ``"val"``).
    workers : int
        Processes; frames are split over them with identical results.
    executor : concurrent.futures.Executor, optional
        Compute the frames' statistics on this executor instead (a local
        ``ProcessPoolExecutor``, ``distributed.Client(...).get_executor()``, a Ray executor; not
        with ``workers``): frames go in chunks as file references (each with its filesystem and
        the storage options it was opened with: ``storage_options``, ``pred_storage_options``),
        the workers decode and count, and each frame's statistics (a confusion matrix, segment
        sizes and overlaps: no pixels) come back and are added here in frame order: the numbers
        are those of one process.
    progress : callable, optional
        Called with the number of frames done.
    pred_train_ids : bool
        (semantic option) the prediction PNGs hold train ids (0..18), mapped to label ids by the
        official table.

    Returns
    -------
    SemanticResult, InstanceResult or PanopticResult
        ``print(result)`` gives the official tables, ``result.to_dict()`` the official results JSON.

    Raises
    ------
    CityscapesIOError
        Listing every problem of the predictions (a frame without prediction, a prediction that
        matches no frame or several, wrong sizes, values that are not label ids), with file names.
    """
    _one_of(workers, executor)
    the_task, count, matched = _prepare(gt, predictions, task, split, storage_options, pred_storage_options, options)
    if matched.problems:  # refused with the whole list a check gives
        raise refuse(_problems(the_task, matched, workers, None, executor), matched.where)
    problems: List[str] = []
    total = the_task.start(matched)
    for done, stats in enumerate(run_frames(the_task.frame_statistics, matched.frames, matched.args, matched.common,
                                            workers=workers, executor=executor), 1):
        if stats.problems:
            problems.extend(stats.problems)
        elif not problems:
            total = the_task.add(total, stats)
        if progress is not None:
            progress(done)
    if problems:
        raise refuse(problems, matched.where)
    result = the_task.result(total, matched, count)
    for message in the_task.warnings(result, total, matched):
        warnings.warn(message, UserWarning, stacklevel=2)
    return result


def check_predictions(gt, predictions, task: str = "semantic", *, split: str = "val", storage_options=None,
                      pred_storage_options=None, workers: int = 1, progress: Optional[Callable[[int], None]] = None,
                      executor: Optional[Executor] = None, **options: Any) -> List[str]:
    """Every problem of a submission, each naming its file, without evaluating (``[]`` when it
    is valid). The arguments are those of :func:`evaluate` (``executor``: the frames' problems
    found on it, listed here in frame order)."""
    _one_of(workers, executor)
    the_task, _, matched = _prepare(gt, predictions, task, split, storage_options, pred_storage_options, options)
    return _problems(the_task, matched, workers, progress, executor)


def _one_of(workers: int, executor: Optional[Executor]) -> None:
    if executor is not None and workers > 1:
        raise ValueError("give workers (processes started here) or executor (the caller's), not both")
