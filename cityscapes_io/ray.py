"""Ray: a dataset as a ``ray.data.Dataset``, and the long operations on a Ray cluster.

``pip install '.[ray]'`` (Ray is imported when these are used, never by ``import cityscapes_io``).

- :func:`to_ray_dataset` lists the frames on the driver (file references only: a frame pickles
  without pixels, with its filesystem and the ``storage_options`` it was opened with) and hands
  Ray one descriptor per frame through ``ray.data.from_items``; the pixels are decoded on the
  workers in ``map_batches``. No custom ``Datasource`` (Ray's documentation advises building on
  ``from_items``/``read_*`` rather than writing one).
- :class:`RayExecutor` is a :class:`concurrent.futures.Executor` over Ray tasks: pass it as
  ``executor=`` to the operations that take one (``convert``, ``prepare``, ``evaluate``,
  ``validate``, ``compute_stats``), which send it frames (or shards) and merge the results on the
  driver in order, so the bytes and numbers are those of one process.

Tar shards written with ``format="wds"`` are also read by ``ray.data.read_webdataset`` as they
are: one row per frame, ``__key__`` its id, each member a column named by its suffix
(``image.png``, ``instance_ids.png``, ``label_ids.png``, ``json``, ...). The 16-bit
``instance_ids.png`` needs nothing: Ray's default decoder (Pillow, mode ``I;16``) gives its
values as uint16, ``label * 1000 + instance`` intact (tested). With ``decoder=None`` the members
stay bytes; :func:`decode_webdataset_row` decodes their PNGs with this library (the C decoder).
"""
from __future__ import annotations

import pickle
from concurrent.futures import Executor, Future
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np

__all__ = ["to_ray_dataset", "RayExecutor", "ARRAY_TARGETS", "decode_webdataset_row"]

#: The targets :func:`to_ray_dataset` gives, each an array per row (Ray's tensor columns).
ARRAY_TARGETS = ("image", "semantic", "train_ids", "instance_ids", "right_image", "disparity", "depth")


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the extra is installed where this is used
        raise ImportError("cityscapes_io.ray needs Ray: pip install 'cityscapes_io[ray]' (or pip install ray)") from exc
    return ray


def _frame_arrays(frame: Any, targets: Sequence[str]) -> Dict[str, np.ndarray]:
    """One frame's targets as arrays (decoded here: on a Ray worker)."""
    from .errors import DatasetNotFoundError

    getters: Dict[str, Callable[[], Optional[np.ndarray]]] = {
        "image": frame.image, "semantic": frame.label_ids, "train_ids": frame.train_ids,
        "instance_ids": frame.instance_ids, "right_image": lambda: frame.image("rightImg8bit"),
        "disparity": frame.disparity, "depth": frame.depth}
    out: Dict[str, np.ndarray] = {}
    for target in targets:
        value = getters[target]()
        if value is None:
            raise DatasetNotFoundError(f"{frame.split}/{frame.id}", f"frame has no {target}")
        out[target] = np.ascontiguousarray(value)
    frame.release()
    return out


def _decode_batch(batch: Mapping[str, Any], targets: Sequence[str]) -> Dict[str, Any]:
    """``map_batches``' function: the descriptors of a batch → their ids and targets."""
    rows: List[Dict[str, np.ndarray]] = [_frame_arrays(pickle.loads(data), targets) for data in batch["frame"]]
    out: Dict[str, Any] = {"id": np.asarray(batch["id"]), "split": np.asarray(batch["split"])}
    for target in targets:
        arrays = [row[target] for row in rows]
        same = all(a.shape == arrays[0].shape and a.dtype == arrays[0].dtype for a in arrays)
        out[target] = np.stack(arrays) if same else _ragged(arrays)
    return out


def _ragged(arrays: List[np.ndarray]) -> np.ndarray:
    """Arrays of different shapes as one object array (Ray makes it a variable-shaped tensor column)."""
    out: np.ndarray = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


def to_ray_dataset(ds: Any, targets: Sequence[str] = ("image", "semantic"), *, batch_size: int = 4,
                   concurrency: Optional[int] = None) -> Any:
    """A ``ray.data.Dataset`` of ``ds``'s frames: one row per frame, ``id``, ``split`` and one
    array per target.

    Parameters
    ----------
    ds : Dataset
        Any dataset (opened over any fsspec URL: its frames carry their filesystem and
        ``storage_options`` to the workers; nothing process-global).
    targets : sequence of str
        Among :data:`ARRAY_TARGETS`: ``image`` (H×W×3, uint8 or uint16), ``semantic`` (label ids),
        ``train_ids``, ``instance_ids`` (uint16), ``right_image``, ``disparity``, ``depth``
        (float32, NaN where invalid). Instances as masks are a PyTorch target
        (:mod:`cityscapes_io.torch`); rows hold arrays only.
    batch_size : int
        Frames decoded per ``map_batches`` call.
    concurrency : int, optional
        Workers decoding at once (Ray's default when None).

    Returns
    -------
    ray.data.Dataset
        Lazy: frames are decoded when the dataset is consumed (``iter_batches``,
        ``iter_torch_batches``, ``take``, ...). Each row has its frame's ``id``: Ray yields rows
        as its workers finish unless ``ray.data.DataContext.get_current().execution_options.
        preserve_order`` is set (a setting of the caller's: this function changes no global).

    Raises
    ------
    ValueError
        A target that is not one of :data:`ARRAY_TARGETS`.
    """
    ray = _require_ray()
    unknown = [t for t in targets if t not in ARRAY_TARGETS]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(map(repr, unknown))}; the targets are: {', '.join(ARRAY_TARGETS)}")
    items = [{"id": f.id, "split": f.split, "frame": pickle.dumps(f.fresh())} for f in ds.frames()]
    data = ray.data.from_items(items)
    kwargs: Dict[str, Any] = {"fn_kwargs": {"targets": tuple(targets)}, "batch_format": "numpy",
                              "batch_size": batch_size}
    if concurrency is not None:
        kwargs["concurrency"] = concurrency
    return data.map_batches(_decode_batch, **kwargs)


def _call(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """A :class:`concurrent.futures.Executor` running each call as a Ray task.

    Parameters
    ----------
    address : str, optional
        A Ray cluster to connect to (``"ray://host:10001"``, ``"auto"``); without it, Ray as
        already initialised in this process, else a local Ray started here (and shut down by
        :meth:`shutdown`).
    num_cpus : int, optional
        CPUs each task asks for (default 1).
    **init_options :
        Passed to ``ray.init`` when this executor starts Ray.
    """

    def __init__(self, address: Optional[str] = None, *, num_cpus: Optional[float] = None, **init_options: Any):
        ray = _require_ray()
        self._own = not ray.is_initialized()
        if self._own:
            ray.init(address=address, **init_options)
        cpus = 1 if num_cpus is None else num_cpus
        self._remote = ray.remote(num_cpus=cpus)(_call)
        self._closed = False
        #: Tasks the cluster runs at once (its CPUs over those a task asks for): the window of
        #: tasks in flight of :func:`cityscapes_io.parallel.ordered_map`.
        self.max_workers = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        #: What a lost worker or node raises here (a task that died, not one that failed).
        self.lost_worker_errors = tuple(getattr(ray.exceptions, name) for name in (
            "WorkerCrashedError", "NodeDiedError", "RayActorError", "ObjectLostError", "OutOfMemoryError")
            if hasattr(ray.exceptions, name))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> "Future[Any]":
        if self._closed:
            raise RuntimeError("cannot submit to a RayExecutor that was shut down")
        return self._remote.remote(fn, args, kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._closed = True
        if self._own:
            import ray

            ray.shutdown()
            self._own = False


def decode_webdataset_row(row: Mapping[str, Any]) -> Dict[str, Any]:
    """A row of ``ray.data.read_webdataset(shards, decoder=None)`` (members as bytes) with its
    PNG members decoded by this library: gray members (``instance_ids.png`` uint16,
    ``label_ids.png``) as ``H×W``, photos as ``H×W×3``; other members unchanged."""
    from . import png

    out: Dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, (bytes, bytearray)) and name.endswith(".png"):
            where = f"{row.get('__key__', '?')}.{name}"
            out[name] = png.decode_gray(bytes(value), where) if png.read_header(bytes(value), where).color_type in (0, 3) \
                else png.decode_photo(bytes(value), where)
        else:
            out[name] = value
    return out
