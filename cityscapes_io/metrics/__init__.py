"""The official Cityscapes metrics inside a training loop: no prediction files, no temporary
folder, no rank 0 reading everyone's PNGs.

>>> from cityscapes_io.metrics import SemanticMetric
>>> metric = SemanticMetric(ids="train")                     # doctest: +SKIP
>>> for frame in cityscapes_io.open(root, split="val"):       # doctest: +SKIP
...     metric.update(model(frame.image()).argmax(0), frame)
>>> metric.sync()          # under torch.distributed: every rank's frames, on every rank
>>> print(metric.compute())  # the official tables; .to_dict(): the official results JSON

:class:`SemanticMetric`, :class:`InstanceMetric` and :class:`PanopticMetric` (:mod:`.core`)
each run their evaluation task's own per-frame function (:mod:`cityscapes_io.evaluation`) on a
prediction held in memory and keep the frame's statistics, not its pixels. ``compute()``
returns the very object :func:`cityscapes_io.evaluate` returns for the task, with the same
numbers bit for bit for the same frames, whatever the order of the updates, ``merge()`` and
``sync()``: integer sums are added as frames come, and the floating-point parts are kept per
frame and added at ``compute()`` in the order ``evaluate()`` adds frames (:mod:`.state`).

- ``update(prediction, target)``: predictions as numpy arrays or torch tensors; targets as a
  :class:`~cityscapes_io.Frame` (ground truth read when needed, from any root) or an
  ``instanceIds`` array with the frame's id (:mod:`.inputs`).
- ``merge(other)``, ``reset()``, ``compute()``; ``sync(group=None)`` across
  ``torch.distributed`` ranks (all-reduce of the sums, all-gather of the records).
- ``to_bytes()`` / ``from_bytes()``; a metric pickles through them.

Adapters, each importing its framework only when imported: :mod:`.torchmetrics`
(``torchmetrics.Metric`` subclasses) and :mod:`.detectron2` (evaluators with detectron2's
``reset`` / ``process`` / ``evaluate``, without importing detectron2).
:mod:`.mmengine`: ``BaseMetric`` subclasses for mmsegmentation's and mmdetection's data samples (extra ``mmengine``).
"""
from __future__ import annotations

from .core import InstanceMetric, Metric, PanopticMetric, SemanticMetric

__all__ = ["SemanticMetric", "InstanceMetric", "PanopticMetric", "Metric"]
