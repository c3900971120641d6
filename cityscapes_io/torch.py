"""PyTorch datasets over any Cityscapes source (the optional extra ``torch``).

- :class:`CityscapesDataset` is map-style (``len``, indexing): any sampler works with it,
  ``DistributedSampler`` included.
- :class:`CityscapesIterable` splits the frames by rank × DataLoader worker itself: one epoch
  over all ranks and workers yields every frame exactly once, in an order fixed by ``seed`` and
  the epoch (:meth:`~CityscapesIterable.set_epoch`).

Both list the dataset when they are made (file references, no pixels) and decode a frame only
when its sample is asked for. A sample is a dict: the frame's ``id`` and ``split`` and one entry
per target (see :func:`sample`); :func:`collate` batches them.

Worker processes: the frame list crosses to a worker as one pickled blob, unpickled on first
use in that process; a process that inherited the list by ``fork`` rebuilds it once the same
way. So every worker has filesystem objects of its own (fsspec recreates them from their
constructor arguments): an s3fs event loop or a zip archive's file handle opened in the parent
is never used after a fork, and a worker opens nothing before it is asked for a sample.

``import cityscapes_io`` never imports this module (nor torch).
"""
from __future__ import annotations

import importlib
import multiprocessing
import multiprocessing.context
import os
import pickle
import warnings
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

# Imported by name, not by a static import: mypy would otherwise analyse torch's own sources,
# which need a newer Python than the one setup.cfg checks against. Tensors are typed Any here.
try:
    torch: Any = importlib.import_module("torch")
    _data: Any = importlib.import_module("torch.utils.data")
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("cityscapes_io.torch needs PyTorch: pip install 'cityscapes_io[torch]'") from exc
default_collate = _data.default_collate
get_worker_info = _data.get_worker_info

from .dataset import Dataset
from .dataset import open as open_dataset
from .errors import DatasetNotFoundError
from .formats.wds import attach_streams
from .frame import Frame
from .labels import has_instances
from .panoptic import panoptic_frame
from .parallel import read_ahead
from .sources import FileSource
from .storage import is_remote

__all__ = ["CityscapesDataset", "CityscapesIterable", "collate", "sample", "TARGETS"]

#: The targets a sample can hold, besides ``id`` and ``split``.
TARGETS = ("image", "semantic", "train_ids", "instance_ids", "instances", "panoptic")

#: File kinds no target reads (not fetched ahead).
_NOT_FETCHED = ("polygons", "color")

#: Frames whose files are fetched ahead of decoding on remote filesystems (per worker).
PREFETCH = 4

Source = Union[str, "os.PathLike[str]", Sequence[str], Dataset]
Transform = Callable[[Dict[str, Any]], Any]


# -- samples ------------------------------------------------------------------------------------
def _tensor(arr: np.ndarray) -> Any:
    """A tensor of ``arr`` (its memory when writable: decoded PNGs may be read-only views)."""
    arr = np.ascontiguousarray(arr)
    return torch.from_numpy(arr if arr.flags.writeable else arr.copy())


def _needed(frame: Frame, what: Optional[np.ndarray], kind: str) -> np.ndarray:
    if what is None:
        raise DatasetNotFoundError(frame.where, f"frame {frame.split}/{frame.id} has no {kind}")
    return what


def _instances(frame: Frame) -> Dict[str, Any]:
    """The frame's objects in torchvision's detection format: instances of the classes that have
    instances, and crowds of them (values below 1000 of such a class); stuff is left out."""
    ids = _needed(frame, frame.instance_ids(), "ground truth")
    kept = [i for i in frame.instances() if has_instances(i.label, False)]
    values = np.array([i.value for i in kept], dtype=np.int64)
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h in (i.bbox for i in kept)], dtype=np.float32)
    return {
        "masks": _tensor(ids[None, :, :] == values.astype(ids.dtype)[:, None, None]),
        "boxes": _tensor(boxes.reshape(len(kept), 4)),
        "labels": _tensor(np.array([i.label_id for i in kept], dtype=np.int64)),
        "iscrowd": _tensor(np.array([i.is_crowd for i in kept], dtype=bool)),
        "area": _tensor(np.array([i.area for i in kept], dtype=np.float32)),
        "ids": _tensor(values),
    }


def _panoptic(frame: Frame) -> Dict[str, Any]:
    """The official panoptic encoding (:func:`cityscapes_io.panoptic.panoptic_frame`) as
    tensors: ``segments`` (H×W uint16, the segment id of every pixel, 0 = void) and per segment
    ``ids``, ``labels`` (category ids: train ids for a train-id dataset), ``iscrowd``, ``area``."""
    got = panoptic_frame(frame, train_ids=frame.labels.is_train_ids)
    if got is None:
        raise DatasetNotFoundError(frame.where, f"frame {frame.split}/{frame.id} has no ground truth")
    pixels, _, annotation = got
    segs = annotation["segments_info"]
    return {
        "segments": _tensor(pixels[..., 0].astype(np.uint16) | (pixels[..., 1].astype(np.uint16) << 8)),
        "ids": torch.tensor([s["id"] for s in segs], dtype=torch.int64),
        "labels": torch.tensor([s["category_id"] for s in segs], dtype=torch.int64),
        "iscrowd": torch.tensor([bool(s["iscrowd"]) for s in segs], dtype=torch.bool),
        "area": torch.tensor([s["area"] for s in segs], dtype=torch.int64),
    }


def sample(frame: Frame, targets: Sequence[str] = ("image", "semantic"), *,
           channels_first: bool = False) -> Dict[str, Any]:
    """One frame as a dict of tensors: ``id``, ``split`` and one entry per target.

    Targets
    -------
    image
        ``H×W×3`` uint8 (``3×H×W`` with ``channels_first``).
    semantic
        ``H×W`` label ids of the frame's label map: official ids, or train ids (255 = ignore)
        for a dataset mapped with ``to_train_ids()``; uint8, uint16 for a map with ids > 255.
    train_ids
        ``H×W`` uint8, the 19 Cityscapes training classes, 255 = ignore, whatever the map.
    instance_ids
        ``H×W`` torch.uint16, the raw instanceIds (``label * 1000 + n``), never cast to 8 bits
        (an 8-bit file is widened). torch has few operators for uint16 (``max`` is not one):
        ``.to(torch.int32)`` or ``.numpy()`` before arithmetic.
    instances
        torchvision's detection target: ``masks`` N×H×W bool, ``boxes`` N×4 float32
        ``x1, y1, x2, y2`` (exclusive ends), ``labels`` int64 label ids, ``iscrowd`` bool,
        ``area`` float32, ``ids`` int64 (the instanceIds value of each object). Objects are the
        instances and crowds of classes that have instances; stuff is not there.
    panoptic
        ``segments`` H×W uint16 (segment ids, 0 = void) and per segment ``ids``, ``labels``,
        ``iscrowd``, ``area``, by the rules of the official ``csCreatePanopticImgs``.
    """
    out: Dict[str, Any] = {"id": frame.id, "split": frame.split}
    for target in targets:
        if target == "image":
            img = _tensor(_needed(frame, frame.image(), "photo"))
            out["image"] = img.permute(2, 0, 1).contiguous() if channels_first else img
        elif target == "semantic":
            out["semantic"] = _tensor(_needed(frame, frame.label_ids(), "ground truth"))
        elif target == "train_ids":
            out["train_ids"] = _tensor(_needed(frame, frame.train_ids(), "ground truth"))
        elif target == "instance_ids":
            out["instance_ids"] = _tensor(_needed(frame, frame.instance_ids(), "ground truth").astype(np.uint16,
                                                                                                      copy=False))
        elif target == "instances":
            out["instances"] = _instances(frame)
        elif target == "panoptic":
            out["panoptic"] = _panoptic(frame)
        else:
            raise ValueError(f"unknown target {target!r} (one of {', '.join(TARGETS)})")
    return out


def collate(batch: Sequence[Any]) -> Any:
    """Batch samples: tensors of one shape are stacked (``default_collate``); tensors of
    different shapes (frames of several sizes, random crops), strings and per-frame dicts of
    variable length (``instances``, ``panoptic``) are kept as lists; tuples and lists (a
    transform returning ``(image, target)`` as torchvision's detection models take it) are
    batched position by position."""
    if not batch:
        return default_collate(batch)
    first = batch[0]
    if isinstance(first, Mapping):
        return {key: _collate_values([b[key] for b in batch]) for key in first}
    if isinstance(first, (tuple, list)):
        columns = [_collate_values(list(column)) for column in zip(*batch)]
        return tuple(columns) if isinstance(first, tuple) else columns
    return _collate_values(list(batch))


def _collate_values(values: List[Any]) -> Any:
    first = values[0]
    if isinstance(first, (Mapping, str)):
        return values
    if isinstance(first, (tuple, list)):
        return collate(values)
    if isinstance(first, torch.Tensor) and any(v.shape != first.shape for v in values):
        return values
    if isinstance(first, np.ndarray) and any(v.shape != first.shape for v in values):
        return values
    return default_collate(values)


# -- the frame list, one copy per process ---------------------------------------------------------
class _FrameList:
    """The frames of a dataset (file references, no pixels). Pickles as one blob, unpickled on
    first use; a process that got it by fork rebuilds it before first use, so no process uses a
    filesystem object another one created."""

    def __init__(self, frames: List[Frame]):
        self._frames: Optional[List[Frame]] = frames
        self._blob: Optional[bytes] = None
        self._pid: Optional[int] = os.getpid()
        self._count = len(frames)

    def get(self) -> List[Frame]:
        if self._frames is None or self._pid != os.getpid():
            blob = self._blob if self._frames is None else pickle.dumps(self._frames)
            assert blob is not None
            self._frames = pickle.loads(blob)
            self._blob, self._pid = None, os.getpid()
        return self._frames

    def __len__(self) -> int:
        return self._count

    def __getstate__(self):
        frames = self._frames
        blob = self._blob if frames is None else pickle.dumps(frames)
        return {"blob": blob, "count": len(self)}

    def __setstate__(self, state) -> None:
        self._frames, self._blob, self._pid = None, state["blob"], None
        self._count = state["count"]


def _list_frames(source: Source, split, storage_options, open_options) -> List[Frame]:
    if isinstance(source, Dataset):
        if open_options or storage_options:
            raise TypeError("storage_options and open options apply to a url, not to a Dataset")
        ds = source if split is None else source.filter(split=split)
    else:
        ds = open_dataset(source, split=split, storage_options=storage_options, **open_options)
    return [ds[i] for i in range(len(ds))]  # each a fresh frame: nothing decoded is kept


def _check_targets(targets: Sequence[str]) -> Tuple[str, ...]:
    targets = (targets,) if isinstance(targets, str) else tuple(targets)
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        raise ValueError(f"unknown target(s) {', '.join(map(repr, bad))} (one of {', '.join(TARGETS)})")
    return targets


def _fetch_kinds(frame: Frame, targets: Sequence[str]) -> List[str]:
    """The file kinds the targets read (fetched ahead on remote storage): the photo, the
    ground truth, and for class targets the class image beside the instanceIds when there is
    one. Every file but polygons and colours when the kinds are not Cityscapes'."""
    files = frame.files
    gt = [k for k in FileSource.GT_KINDS if k in files]
    if not gt:
        return [k for k in files if k not in _NOT_FETCHED]
    kinds = ["image"] if "image" in targets and "image" in files else []
    if set(targets) & {"instance_ids", "instances", "panoptic"}:
        kinds.append(gt[0])
    if set(targets) & {"semantic", "train_ids"}:
        cls = FileSource.CLASS_KIND.get(gt[0], "")
        kinds.append(cls if cls in files else gt[0])
    return list(dict.fromkeys(kinds))


def _remote(frame: Frame) -> bool:
    return any(is_remote(fs) for fs, _ in frame.source.locations().values())


class _Samples:
    """What both datasets share: the frame list, the targets and how a frame becomes a sample."""

    def __init__(self, source: Source, *, split=None, targets: Sequence[str] = ("image", "semantic"),
                 transform: Optional[Transform] = None, storage_options: Optional[dict] = None,
                 channels_first: bool = False, **open_options):
        self.targets = _check_targets(targets)
        self.transform = transform
        self.channels_first = channels_first
        self._frames = _FrameList(_list_frames(source, split, storage_options, open_options))

    @property
    def frames(self) -> List[Frame]:
        """The frames, in the dataset's order (file references; this process's own copies)."""
        return self._frames.get()

    def _sample(self, frame: Frame) -> Any:
        """The sample of a frame fresh from the list (decoded, then released)."""
        try:
            out = sample(frame, self.targets, channels_first=self.channels_first)
        finally:
            frame.release()
        return self.transform(out) if self.transform is not None else out

    def _samples(self, frames: Sequence[Frame]) -> Iterator[Any]:
        """Samples of ``frames`` in order; on remote filesystems the files of the next
        :data:`PREFETCH` frames are fetched concurrently while one decodes."""
        def kinds(frame: Frame) -> List[str]:
            return _fetch_kinds(frame, self.targets)

        # Tar shards: runs of one shard read in sequence, ahead of the decoding.
        frames = attach_streams(frames, kinds)
        for f in read_ahead(frames, PREFETCH if frames and _remote(frames[0]) else 0, kinds):
            yield self._sample(f)


# -- map-style ------------------------------------------------------------------------------------
class CityscapesDataset(_Samples, _data.Dataset):
    """A map-style PyTorch dataset of Cityscapes frames.

    Parameters
    ----------
    source : str, path, list of them, or Dataset
        Anything :func:`cityscapes_io.open` takes (``"s3://bucket/cityscapes"``, a ``.zip``, a
        list of roots), or a :class:`~cityscapes_io.Dataset` (so its filters, remaps and
        ``to_train_ids()`` apply).
    split : str or list of str, optional
        Splits to read (all when None).
    targets : sequence of str
        What each sample holds besides ``id`` and ``split``: ``image``, ``semantic``,
        ``train_ids``, ``instance_ids``, ``instances``, ``panoptic`` (see :func:`sample`).
    transform : callable, optional
        Called on each sample dict; its result is the sample.
    storage_options : dict, optional
        For the filesystem (a url source only).
    channels_first : bool
        Images ``3×H×W`` instead of ``H×W×3``.
    **open_options
        Passed to :func:`cityscapes_io.open` (``format``, ``cities``, ``annotations``, ...).

    The dataset is listed when it is made; nothing is decoded until an item is asked for.
    ``dataset[i]`` is the sample of the i-th frame in the dataset's order; a batch of indices
    (``__getitems__``, used by DataLoader) fetches its files concurrently on remote storage.
    """

    def __len__(self) -> int:
        return len(self._frames)

    def __getitem__(self, index: int) -> Any:
        if not isinstance(index, int) and not hasattr(index, "__index__"):
            raise TypeError(f"{type(self).__name__} indices are ints, not {type(index).__name__} "
                            "(a DataLoader batches through __getitems__)")
        return self._sample(self.frames[index.__index__()].fresh())

    def __getitems__(self, indices: Sequence[int]) -> List[Any]:
        frames = self.frames
        return list(self._samples([frames[i] for i in indices]))


# -- iterable, split by rank × worker ---------------------------------------------------------------
def _shares(n: int, parts: int) -> List[Tuple[int, int]]:
    """``[start, stop)`` of ``parts`` contiguous shares of ``n``: the first ``n % parts`` shares
    hold one more."""
    base, extra = divmod(n, parts)
    out: List[Tuple[int, int]] = []
    start = 0
    for p in range(parts):
        stop = start + base + (p < extra)
        out.append((start, stop))
        start = stop
    return out


def epoch_order(n: int, shuffle: int, seed: int, epoch: int) -> np.ndarray:
    """The positions of ``n`` frames in an epoch's order: storage order with ``shuffle == 0``;
    else, as WebDataset shuffles shards then samples, blocks of ``shuffle`` consecutive
    positions in an order drawn from ``(seed, epoch)``, then a shuffle buffer of ``shuffle``
    positions over that. Each rank and worker takes a contiguous share of the order, so the
    block permutation gives it other parts of the dataset every epoch, while reads stay near
    each other (a tar shard is read nearly in sequence)."""
    if shuffle <= 0 or n <= 1:
        return np.arange(n)
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed {seed}, epoch {epoch}")
    rng = np.random.default_rng([int(seed), int(epoch)])
    blocks = [np.arange(i, min(i + shuffle, n)) for i in range(0, n, shuffle)]
    source = np.concatenate([blocks[int(k)] for k in rng.permutation(len(blocks))])
    buf: List[int] = []
    out: np.ndarray = np.empty(n, dtype=np.int64)
    k = 0
    for i in source.tolist():
        buf.append(i)
        if len(buf) >= shuffle:
            j = int(rng.integers(len(buf)))
            buf[j], buf[-1] = buf[-1], buf[j]
            out[k] = buf.pop()
            k += 1
    while buf:
        j = int(rng.integers(len(buf)))
        buf[j], buf[-1] = buf[-1], buf[j]
        out[k] = buf.pop()
        k += 1
    return out


def _default_rank() -> Tuple[int, int]:
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class CityscapesIterable(_Samples, _data.IterableDataset):
    """An iterable PyTorch dataset that splits the frames by rank × DataLoader worker itself.

    Takes the arguments of :class:`CityscapesDataset` and:

    Parameters
    ----------
    shuffle : int
        Size of the shuffle buffer (0: storage order). The epoch's order is the storage order
        through a buffer of that many frame positions (:func:`epoch_order`), the same on every
        rank and worker; bounded, so a frame is read near its neighbours in storage.
    seed : int
        With the epoch, fixes the order.
    rank, world_size : int, optional
        This process's rank and the number of ranks; from ``torch.distributed`` when it is
        initialised (when the dataset is made), else 0 and 1.
    even : bool
        Give every rank the same number of frames by leaving out the last ``len % world_size``
        frames of each epoch's order (different frames each epoch when shuffling). Default
        False: every frame exactly once per epoch, and ranks' counts may differ by one.

    The epoch's order is cut into ``world_size`` contiguous shares (rank ``r`` takes the r-th),
    and a rank's share into one contiguous share per DataLoader worker; shares differ by at most
    one frame, the first ones holding the extra. So one epoch over all ranks and workers yields
    every frame exactly once. ``len()`` is this rank's count. :meth:`set_epoch` reaches workers
    that are already running (``persistent_workers=True``) through a shared counter.
    """

    def __init__(self, source: Source, *, split=None, targets: Sequence[str] = ("image", "semantic"),
                 transform: Optional[Transform] = None, storage_options: Optional[dict] = None,
                 channels_first: bool = False, shuffle: int = 0, seed: int = 0, rank: Optional[int] = None,
                 world_size: Optional[int] = None, even: bool = False, **open_options):
        super().__init__(source, split=split, targets=targets, transform=transform, storage_options=storage_options,
                         channels_first=channels_first, **open_options)
        if rank is None or world_size is None:
            d_rank, d_world = _default_rank()
            rank = d_rank if rank is None else rank
            world_size = d_world if world_size is None else world_size
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in range for world_size {world_size}")
        if shuffle < 0:
            raise ValueError(f"shuffle must be a buffer size >= 0, got {shuffle}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.shuffle, self.seed, self.rank, self.world_size, self.even = int(shuffle), int(seed), rank, world_size, even
        n = len(self._frames)
        if world_size > 1 and not even and n % world_size:
            warnings.warn(f"{n} frames over {world_size} ranks: the ranks' shares differ by one frame (every frame "
                          "once per epoch); with DistributedDataParallel unequal batch counts can stall the last "
                          "all-reduce: pass even=True (drops n % world_size frames an epoch) or use DDP's join()",
                          stacklevel=2)
        # Shared with worker processes (inherited by fork, passed at spawn) so that set_epoch
        # reaches persistent workers.
        self._epoch: Any = multiprocessing.RawValue("q", 0)

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` from the next iteration on (call it before each epoch, as
        with ``DistributedSampler``)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.value = int(epoch)

    def _rank_positions(self) -> np.ndarray:
        n = len(self._frames)
        order = epoch_order(n, self.shuffle, self.seed, self.epoch)
        if self.even:
            order = order[: n - n % self.world_size]
        start, stop = _shares(len(order), self.world_size)[self.rank]
        return order[start:stop]

    def __len__(self) -> int:
        n = len(self._frames)
        if self.even:
            n -= n % self.world_size
        start, stop = _shares(n, self.world_size)[self.rank]
        return stop - start

    def positions(self, worker: int = 0, num_workers: int = 1) -> List[int]:
        """The frame positions one worker of this rank yields this epoch, in order."""
        mine = self._rank_positions()
        start, stop = _shares(len(mine), num_workers)[worker]
        return [int(i) for i in mine[start:stop]]

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        positions = self.positions(worker, workers)
        frames = self.frames  # this process's own copies: opened here, not before
        return self._samples([frames[i] for i in positions])

    def __getstate__(self):
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            # Not a worker being started: a shared counter cannot be pickled, its value can.
            state["_epoch"] = _EpochValue(self.epoch)
        return state

    def __setstate__(self, state) -> None:
        if isinstance(state.get("_epoch"), _EpochValue):
            # A copy (pickle, deepcopy) gets a shared counter of its own again, so that its
            # set_epoch reaches the persistent workers it starts.
            state["_epoch"] = multiprocessing.RawValue("q", int(state["_epoch"].value))
        self.__dict__.update(state)


class _EpochValue:
    """The epoch of a dataset pickled outside process start (no shared counter)."""

    def __init__(self, value: int):
        self.value = value
