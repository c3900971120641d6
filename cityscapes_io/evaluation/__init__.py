"""Evaluation of predictions against Cityscapes ground truth, with the official rules.

:func:`evaluate` opens the ground truth (any Cityscapes root this library reads: a folder, a
zip, a bucket) and hands its frames to the task registered in :data:`TASKS`: ``"semantic"``
(:mod:`.semantic`, the rules of ``evalPixelLevelSemanticLabeling``), ``"instance"``
(:mod:`.instance`, ``evalInstanceLevelSemanticLabeling``) and ``"panoptic"`` (:mod:`.panoptic`,
``evalPanopticSemanticLabeling``). :func:`check_predictions` lists every problem of a
submission without evaluating it; a real evaluation refuses a submission with the same list.
:func:`export_predictions` (:mod:`.submission`) writes a dataset of predictions in a task's
official submission layout. The task contract and the driver are in :mod:`.base`.

Ground truth and predictions are read frame by frame; the per-frame statistics are summed in
frame order in the calling process, so ``workers > 1`` gives the very same numbers as one.
"""
from __future__ import annotations

from .base import TASKS, Matched, Task, check_predictions, evaluate
from .citypersons import CityPersonsResult, CityPersonsTask
from .instance import InstanceResult, InstanceTask
from .panoptic import PanopticResult, PanopticTask
from .semantic import AVG_CLASS_SIZE, SemanticResult, SemanticTask
from .submission import export_predictions

__all__ = ["evaluate", "check_predictions", "export_predictions", "SemanticResult", "InstanceResult",
           "PanopticResult", "CityPersonsResult", "CityPersonsTask", "TASKS", "Task", "Matched", "AVG_CLASS_SIZE"]

# The registry: a new task is its module and one line here.
TASKS["semantic"] = SemanticTask()
TASKS["instance"] = InstanceTask()
TASKS["panoptic"] = PanopticTask()
TASKS["citypersons"] = CityPersonsTask()
