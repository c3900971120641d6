"""The metrics as ``torchmetrics.Metric`` subclasses (the optional extra ``torchmetrics``):
:class:`CityscapesSemantic`, :class:`CityscapesInstance`, :class:`CityscapesPanoptic`.

>>> from cityscapes_io.metrics.torchmetrics import CityscapesSemantic
>>> metric = CityscapesSemantic(ids="train")               # doctest: +SKIP
>>> for batch in loader:                                     # doctest: +SKIP
...     metric.update(model(batch["image"]).argmax(1), batch)   # batch["id"], batch["instance_ids"]
>>> result = metric.compute()   # synced across ranks by torchmetrics; a SemanticResult
>>> result.average_classes      # mIoU, the number evaluate() gives

Each ``update`` counts a batch with the metric of :mod:`cityscapes_io.metrics` and keeps its
state as bytes (:meth:`~cityscapes_io.metrics.Metric.to_bytes`, length-prefixed) in one list
state of uint8 tensors, ``dist_reduce_fx="cat"``: torchmetrics' own synchronisation gathers
them from every rank (uneven lengths included), and ``compute`` merges them and returns the
result object of :func:`cityscapes_io.evaluate` (``print`` gives the official tables,
``to_dict()`` the official JSON), with its numbers: log ``result.average_classes``,
``result.ap``, ``result.pq``.

A batch is a sequence of per-frame predictions (a B×H×W tensor for the semantic metric) and
its targets: a sequence of :class:`~cityscapes_io.Frame` (or of ``(id, array)`` pairs), a
B×H×W tensor of instanceIds with ``ids=[...]``, or a batch of :mod:`cityscapes_io.torch`
(``collate``'s dict with ``id``, ``split`` and ``instance_ids``).
"""
from __future__ import annotations

import importlib
import struct
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple

try:
    torch: Any = importlib.import_module("torch")
    _tm: Any = importlib.import_module("torchmetrics")
    _gather_all_tensors: Any = importlib.import_module("torchmetrics.utilities.distributed").gather_all_tensors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("cityscapes_io.metrics.torchmetrics needs torchmetrics: "
                      "pip install 'cityscapes_io[torchmetrics]'") from exc

from .core import InstanceMetric, Metric, PanopticMetric, SemanticMetric

__all__ = ["CityscapesSemantic", "CityscapesInstance", "CityscapesPanoptic", "gather_bytes"]


def gather_bytes(tensor: Any, group: Any = None) -> List[Any]:
    """torchmetrics' ``gather_all_tensors`` for the byte states: a rank that counted nothing
    sends an empty tensor that torchmetrics makes of its default float type; it is sent as
    uint8, the type of the others' bytes."""
    if tensor.numel() == 0 and tensor.dtype != torch.uint8:
        tensor = tensor.to(torch.uint8)
    return list(_gather_all_tensors(tensor, group))


def _is_tensor_batch(value: Any) -> bool:
    return hasattr(value, "shape") and not isinstance(value, (list, tuple)) and len(value.shape) == 3


def _frames(preds: Any, target: Any, ids: Optional[Sequence[str]], tensor_preds: bool
            ) -> Iterator[Tuple[Any, Any, Optional[str], Optional[str]]]:
    """``(prediction, target, id, split)`` of each frame of a batch."""
    if tensor_preds and _is_tensor_batch(preds):
        pred_list: Sequence[Any] = [preds[k] for k in range(preds.shape[0])]
    elif isinstance(preds, (list, tuple)):
        pred_list = preds
    else:
        raise TypeError("predictions: a sequence of per-frame predictions" +
                        (" or a B×H×W tensor" if tensor_preds else " (torchvision's list of dicts)"))
    if isinstance(target, Mapping):
        if ids is not None:
            raise TypeError("ids= given with a batch that has its own 'id'")
        if "id" not in target or "instance_ids" not in target:
            raise TypeError("a batch dict needs 'id' and 'instance_ids' (cityscapes_io.torch with the instance_ids "
                            "target)")
        frame_ids = list(target["id"])
        splits = list(target.get("split", [None] * len(frame_ids)))
        arrays = target["instance_ids"]
        items: List[Tuple[Any, Optional[str], Optional[str]]] = [
            (arrays[k], frame_ids[k], splits[k]) for k in range(len(frame_ids))]
    elif _is_tensor_batch(target):
        if ids is None:
            raise TypeError("a B×H×W target needs the frames' ids: update(preds, target, ids=[...])")
        items = [(target[k], i, None) for k, i in enumerate(ids)]
        if len(items) != target.shape[0]:
            raise ValueError(f"{target.shape[0]} targets and {len(items)} ids")
    elif isinstance(target, (list, tuple)):
        if ids is not None and len(ids) != len(target):
            raise ValueError(f"{len(target)} targets and {len(ids)} ids")
        items = [(t, None if ids is None else ids[k], None) for k, t in enumerate(target)]
    else:
        raise TypeError("targets: a sequence of Frames or (id, array) pairs, a B×H×W tensor with ids=, or a batch "
                        "dict of cityscapes_io.torch")
    if len(pred_list) != len(items):
        raise ValueError(f"{len(pred_list)} predictions and {len(items)} targets")
    for pred, (tgt, fid, split) in zip(pred_list, items):
        yield pred, tgt, fid, split


def _blobs(state: Any) -> Iterator[bytes]:
    """The length-prefixed metric states of the list state (a list of uint8 tensors, or one
    tensor once synced)."""
    parts = state if isinstance(state, (list, tuple)) else [state]
    data = b"".join(bytes(t.detach().to("cpu", torch.uint8).numpy().tobytes()) for t in parts)
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("a metric state ends early")
        (n,) = struct.unpack_from("<Q", data, pos)
        if pos + 8 + n > len(data):
            raise ValueError("a metric state ends early")
        yield data[pos + 8:pos + 8 + n]
        pos += 8 + n


class _Cityscapes(_tm.Metric):
    """The adapter: a list state of the bytes of the core metric's state per update."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True
    #: The metric of :mod:`cityscapes_io.metrics` that counts.
    core: Any = Metric
    _tensor_preds = False

    def __init__(self, options: Mapping[str, Any], **kwargs: Any):
        kwargs.setdefault("dist_sync_fn", gather_bytes)
        super().__init__(**kwargs)
        self._core_options = dict(options)
        self.core(**self._core_options)  # (refuses bad options now)
        self.add_state("blobs", default=[], dist_reduce_fx="cat")

    def update(self, preds: Any, target: Any, ids: Optional[Sequence[str]] = None) -> None:
        """Count a batch (see the module's documentation). ``ids``: the frame ids of a tensor of
        targets."""
        metric = self.core(**self._core_options)
        for pred, tgt, fid, split in _frames(preds, target, ids, self._tensor_preds):
            metric.update(pred, tgt, id=fid, split=split)
        data = metric.to_bytes()
        blob = torch.frombuffer(bytearray(struct.pack("<Q", len(data)) + data), dtype=torch.uint8)
        self.blobs.append(blob.to(self.device))

    def compute(self) -> Any:
        """The result object of :func:`cityscapes_io.evaluate` over every frame counted (on every
        rank, once torchmetrics has synced)."""
        metric = self.core(**self._core_options)
        for data in _blobs(self.blobs):
            metric.merge(self.core.from_bytes(data))
        return metric.compute()

    def sync(self, dist_sync_fn: Any = None, *args: Any, **kwargs: Any) -> None:
        """torchmetrics' ``sync``, with :func:`gather_bytes` unless told otherwise."""
        super().sync(dist_sync_fn or self.dist_sync_fn or gather_bytes, *args, **kwargs)


class CityscapesSemantic(_Cityscapes):
    """:class:`~cityscapes_io.metrics.SemanticMetric` as a ``torchmetrics.Metric``: ``update(preds,
    target, ids=None)`` with ``preds`` B×H×W (or a list of H×W) label ids, or train ids with
    ``ids="train"``; ``compute()`` a :class:`~cityscapes_io.evaluation.SemanticResult`. Other
    keyword arguments go to ``torchmetrics.Metric``."""

    core = SemanticMetric
    _tensor_preds = True

    def __init__(self, *, ids: str = "label", **kwargs: Any):
        super().__init__({"ids": ids}, **kwargs)


class CityscapesInstance(_Cityscapes):
    """:class:`~cityscapes_io.metrics.InstanceMetric` as a ``torchmetrics.Metric``: ``preds`` a
    list of torchvision detection dicts (``masks``, ``labels``, ``scores``); ``compute()`` an
    :class:`~cityscapes_io.evaluation.InstanceResult`."""

    core = InstanceMetric

    def __init__(self, *, ids: str = "label", mask_threshold: float = 0.5, **kwargs: Any):
        super().__init__({"ids": ids, "mask_threshold": mask_threshold}, **kwargs)


class CityscapesPanoptic(_Cityscapes):
    """:class:`~cityscapes_io.metrics.PanopticMetric` as a ``torchmetrics.Metric``: ``preds`` a
    list of ``{"ids": H×W, "segments": [{"id", "category_id"}, ...]}``; ``compute()`` a
    :class:`~cityscapes_io.evaluation.PanopticResult`."""

    core = PanopticMetric

    def __init__(self, *, ids: str = "label", categories: Optional[Sequence[Mapping[str, Any]]] = None,
                 **kwargs: Any):
        super().__init__({"ids": ids, "categories": None if categories is None else [dict(c) for c in categories]},
                         **kwargs)
