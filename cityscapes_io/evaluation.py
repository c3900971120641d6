"""Evaluation of predictions against Cityscapes ground truth, with the official rules.

:func:`evaluate` opens the ground truth (any Cityscapes root this library reads: a folder, a
zip, a bucket) and hands its frames to the task: ``"semantic"`` (:mod:`.eval_semantic`, the
rules of ``evalPixelLevelSemanticLabeling``), ``"instance"`` (:mod:`.eval_instance`,
``evalInstanceLevelSemanticLabeling``) and ``"panoptic"`` (:mod:`.eval_panoptic`,
``evalPanopticSemanticLabeling``). :func:`check_predictions` lists every problem of a
submission without evaluating it; a real evaluation refuses a submission with the same list.

Ground truth and predictions are read frame by frame; the per-frame statistics are summed in
frame order in the calling process, so ``workers > 1`` gives the very same numbers as one.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from .dataset import open as open_dataset
from .errors import CityscapesIOError
from .eval_semantic import AVG_CLASS_SIZE, SemanticResult, evaluate_semantic, semantic_problems

__all__ = ["evaluate", "check_predictions", "SemanticResult", "TASKS", "AVG_CLASS_SIZE"]

#: The tasks :func:`evaluate` knows.
TASKS = ("semantic",)

#: Options each task takes (beyond the common arguments).
_OPTIONS: Dict[str, Tuple[str, ...]] = {"semantic": ("pred_train_ids",)}


def _task(task: str) -> Tuple[Callable[..., Any], Callable[..., List[str]]]:
    if task == "semantic":
        return evaluate_semantic, semantic_problems
    raise ValueError(f"unknown task {task!r}; the tasks are: {', '.join(TASKS)}")


def _frames(gt, split: str, storage_options) -> List[Any]:
    ds = open_dataset(gt, split=split, storage_options=storage_options)
    frames = list(ds)
    if not frames:
        raise CityscapesIOError(str(gt), f"no ground-truth frames in split {split!r}")
    return frames


def _check_options(task: str, options: Dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(_OPTIONS.get(task, ())))
    if unknown:
        raise TypeError(f"unknown option(s) for task {task!r}: {', '.join(unknown)}")


def evaluate(gt, predictions, task: str = "semantic", *, split: str = "val", storage_options=None,
             pred_storage_options=None, workers: int = 1, progress: Optional[Callable[[int], None]] = None,
             **options: Any):
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
        by name, so a train-id dataset works as is).
    task : str
        ``"semantic"``.
    split : str
        The split evaluated (default ``"val"``).
    workers : int
        Processes; frames are split over them with identical results.
    progress : callable, optional
        Called with the number of frames done.
    pred_train_ids : bool
        (semantic option) the prediction PNGs hold train ids (0..18), mapped to label ids by the
        official table.

    Returns
    -------
    SemanticResult
        ``print(result)`` gives the official tables, ``result.to_dict()`` the official results JSON.

    Raises
    ------
    CityscapesIOError
        Listing every problem of the predictions (a frame without prediction, a prediction that
        matches no frame or several, wrong sizes, values that are not label ids), with file names.
    """
    run, _ = _task(task)
    _check_options(task, options)
    return run(_frames(gt, split, storage_options), predictions, pred_storage_options=pred_storage_options,
               workers=workers, progress=progress, **options)


def check_predictions(gt, predictions, task: str = "semantic", *, split: str = "val", storage_options=None,
                      pred_storage_options=None, workers: int = 1, progress: Optional[Callable[[int], None]] = None,
                      **options: Any) -> List[str]:
    """Every problem of a submission, each naming its file, without evaluating (``[]`` when it
    is valid). The arguments are those of :func:`evaluate`."""
    _, check = _task(task)
    _check_options(task, options)
    return check(_frames(gt, split, storage_options), predictions, pred_storage_options=pred_storage_options,
                 workers=workers, progress=progress, **options)
