"""PyTorch datasets over any Cityscapes source (the optional extra ``torch``).

- :class:`CityscapesDataset` is map-style (``len``, indexing): any sampler works with it,
  ``DistributedSampler`` included.
- :class:`CityscapesIterable` splits the frames by rank × DataLoader worker itself: one epoch
  over all ranks and workers yields every frame exactly once, in an order fixed by ``seed`` and
  the epoch (:meth:`~CityscapesIterable.set_epoch`).
- :class:`RareClassSampler` draws positions of a map-style dataset by class rarity, as
  DAFormer's rare-class sampling does (:mod:`cityscapes_io.sampling`), split by rank × worker
  as :class:`CityscapesIterable` splits frames.

Both datasets list the dataset when they are made (file references, no pixels) and decode a frame only
when its sample is asked for. A sample is a dict: the frame's ``id`` and ``split`` and one entry
per target (see :func:`sample`); :func:`collate` batches them. Besides the ground truth, the
targets read the release's other parts (``right_image``, ``disparity``, ``depth``, ``camera``,
``persons``, ``snippet``: :mod:`cityscapes_io.release`).

Geometry: the datasets neither crop nor resize; their one hook is ``transform``, which gets
the whole sample. :func:`crop_sample` and :func:`resize_sample` crop or resize every spatial
target of a sample together, so that the camera's intrinsics, the disparity's values and the
boxes follow the pixels; call them from a transform.

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

from . import sampling
from .dataset import Dataset
from .dataset import open as open_dataset
from .errors import DatasetNotFoundError, InvalidFileError
from .formats.wds import attach_streams
from .frame import Frame
from .labels import has_instances
from .names import IMAGE_DIR, SEQUENCE_SUFFIX, is_photo_folder, part_suffix
from .panoptic import panoptic_frame
from .parallel import read_ahead
from .parts import Camera, parse_image_key
from .sources import FileSource
from .storage import is_remote

__all__ = ["CityscapesDataset", "CityscapesIterable", "collate", "sample", "crop_sample", "resize_sample",
           "TARGETS", "SNIPPET_DEFAULTS", "RareClassSampler"]

#: The targets a sample can hold, besides ``id`` and ``split``.
TARGETS = ("image", "semantic", "train_ids", "instance_ids", "instances", "panoptic",
           "right_image", "disparity", "depth", "camera", "persons", "snippet")

#: The options of the ``snippet`` target and their defaults: the release's 30-frame snippet
#: (frame numbers ``n - 19`` to ``n + 10``) of ``leftImg8bit_sequence/`` photos.
SNIPPET_DEFAULTS: Dict[str, Any] = {"before": 19, "after": 10, "step": 1, "key": IMAGE_DIR}

#: CityPersons labels that are not one person (``ignoreInEval`` in cityscapesScripts'
#: ``helpers/labels_cityPersons.py``): ignore regions and person groups.
_PERSONS_IGNORED = ("ignore", "person group")

#: Sample entries that are dicts of fixed-size tensors, batched key by key by :func:`collate`.
_STACKED_DICTS = ("camera",)

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


def _missing(frame: Frame, what: str, folder: str) -> DatasetNotFoundError:
    """The error for a frame without one of the release's parts: names the frame, the part and
    the file looked for."""
    split = frame.parts.split if frame.parts is not None else frame.split
    name = f"{folder}/{split}/{frame.id}{part_suffix(folder)}"
    if is_photo_folder(folder.replace(SEQUENCE_SUFFIX, "")):
        name += ".*"  # (any image extension)
    return DatasetNotFoundError(frame.where, f"frame {frame.split}/{frame.id} has no {what}: no {name} in the "
                                             f"dataset's roots")


def _part(frame: Frame, value: Any, what: str, folder: str) -> Any:
    """``value``, a part the frame read, or the error naming the file it lacks (:func:`_missing`)."""
    if value is None:
        raise _missing(frame, what, folder)
    return value


def _photo(frame: Frame, key: str, channels_first: bool) -> Any:
    img = frame.image(key)
    if img is None:
        folder = parse_image_key(key)[0]
        raise _missing(frame, f"{key} photo", folder)
    out = _tensor(img)
    return out.permute(2, 0, 1).contiguous() if channels_first else out


def _camera(camera: Camera) -> Dict[str, Any]:
    return {"intrinsics": torch.tensor(camera.intrinsics(), dtype=torch.float32),
            "baseline": torch.tensor(camera.baseline, dtype=torch.float32),
            "extrinsic": torch.tensor([camera.x, camera.y, camera.z, camera.yaw, camera.pitch, camera.roll],
                                      dtype=torch.float32)}


def _persons(frame: Frame) -> Dict[str, Any]:
    """CityPersons' objects in torchvision's detection format (every object, in the file's order)."""
    persons = frame.persons()
    if persons is None:
        raise _missing(frame, "CityPersons boxes", "gtBboxCityPersons")

    def boxes(which: str) -> Any:
        xywh = np.array([getattr(p, which) for p in persons], dtype=np.float64).reshape(len(persons), 4)
        xywh[:, 2:] += xywh[:, :2]
        return _tensor(xywh.astype(np.float32))

    return {
        "boxes": boxes("bbox"),
        "boxes_vis": boxes("bbox_vis"),
        "labels": torch.tensor([p.label_id for p in persons], dtype=torch.int64),
        "instance_ids": torch.tensor([p.instance_id for p in persons], dtype=torch.int64),
        "ignore": torch.tensor([p.label in _PERSONS_IGNORED for p in persons], dtype=torch.bool),
    }


def _snippet_options(options: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The ``snippet`` options with their defaults, checked."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(SNIPPET_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown snippet option(s) {', '.join(map(repr, unknown))} "
                         f"(options: {', '.join(SNIPPET_DEFAULTS)})")
    out = {**SNIPPET_DEFAULTS, **options}
    for name in ("before", "after", "step"):
        value = out[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (name == "step"):
            raise ValueError(f"snippet option {name} must be an integer >= {int(name == 'step')}, got {value!r}")
        out[name] = int(value)
    parse_image_key(out["key"])
    return out


def _snippet(frame: Frame, options: Mapping[str, Any], channels_first: bool) -> Any:
    """The photos of the frame's snippet stacked on a new first axis; every frame number of the
    clip must be there."""
    before, after, step, key = options["before"], options["after"], options["step"], options["key"]
    folder = parse_image_key(key)[0] + SEQUENCE_SUFFIX
    if frame.parts is None or frame.frame is None:
        raise _missing(frame, "sequence", folder)
    wanted = [frame.frame + k for k in range(-(before // step) * step, after + 1, step)]
    parts = frame.parts
    present = {seq.number: seq for seq in frame.snippet(before, after, step)
               if parts.photo(key, seq.id, folder) is not None}
    missing = [n for n in wanted if n not in present]
    if missing:
        raise DatasetNotFoundError(frame.where, f"frame {frame.split}/{frame.id}: its snippet (before={before}, "
                                                f"after={after}, step={step}) lacks frame number(s) "
                                                f"{', '.join(map(str, missing))} in {folder}/ (a clip holds every "
                                                f"frame number it spans)")
    clip: Optional[np.ndarray] = None
    for t, number in enumerate(wanted):
        seq = present[number]
        img = seq.image(key)
        if img is None:  # (gone since it was listed)
            raise DatasetNotFoundError(frame.where, f"frame {frame.split}/{frame.id}: snippet frame {seq.id} has "
                                                    f"no photo in {folder}/")
        if clip is None:
            clip = np.empty((len(wanted),) + img.shape, dtype=img.dtype)
        elif img.shape != clip.shape[1:] or img.dtype != clip.dtype:
            raise InvalidFileError(seq.files().get(folder, seq.id),
                                   f"snippet of frame {frame.split}/{frame.id}: a {img.dtype} photo of shape "
                                   f"{img.shape}, while frame {wanted[0]}'s is {clip.dtype} {clip.shape[1:]}")
        clip[t] = img
    assert clip is not None
    out = _tensor(clip)
    return out.permute(0, 3, 1, 2).contiguous() if channels_first and out.ndim == 4 else out


def sample(frame: Frame, targets: Sequence[str] = ("image", "semantic"), *,
           channels_first: bool = False, snippet: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
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

    The release's other parts (:mod:`cityscapes_io.release`):

    right_image
        The ``rightImg8bit`` photo, as ``image`` (``H×W×3`` uint8, ``3×H×W`` with
        ``channels_first``).
    disparity
        ``H×W`` float32 disparity in pixels, ``(p - 1) / 256`` of the 16-bit file; NaN where
        ``p == 0`` (no measurement).
    depth
        ``H×W`` float32 depth in metres, ``baseline · fx / disparity`` with the frame's own
        camera; NaN where the disparity is invalid or 0.
    camera
        A dict of float32 tensors: ``intrinsics`` (3×3 ``[[fx, 0, u0], [0, fy, v0], [0, 0, 1]]``,
        pixels), ``baseline`` (0-d, metres) and ``extrinsic`` (``x, y, z, yaw, pitch, roll``:
        metres, radians). :func:`collate` stacks it key by key (``B×3×3``, ``B``, ``B×6``).
    persons
        CityPersons in torchvision's detection format, every object of the file in its order:
        ``boxes`` N×4 float32 ``x1, y1, x2, y2`` of the full body (``x + w``: exclusive ends,
        as ``instances``), ``boxes_vis`` the same for the visible part, ``labels`` int64
        CityPersons ids (:data:`cityscapes_io.parts.PERSON_LABELS`: ignore 0, pedestrian 1,
        rider 2, sitting person 3, person (other) 4, person group 5), ``instance_ids`` int64
        (the object's gtFine instanceIds value, 0 for none) and ``ignore`` bool: True for the
        ignore regions and person groups (``ignoreInEval`` in cityscapesScripts'
        ``labels_cityPersons.py``). Those are kept, not dropped: filter on ``ignore`` or
        ``labels``.
    snippet
        The sequence photos around the frame stacked on a new first axis: ``T×H×W×3``
        (``T×3×H×W`` with ``channels_first``), uint8. ``snippet`` options (keys of
        :data:`SNIPPET_DEFAULTS`): ``before`` (19), ``after`` (10), ``step`` (1) as
        :meth:`Frame.snippet <cityscapes_io.Frame.snippet>` takes them, and ``key``, the photo
        key whose ``_sequence`` folder is read (``leftImg8bit``; ``rightImg8bit`` for
        ``rightImg8bit_sequence/``). ``T = 1 + before // step + after // step``, the annotated
        frame at index ``before // step``. A clip has that fixed length: a frame number missing
        from the sequence folder (or below 0) is an error naming the numbers, never a shorter
        or padded clip.

    A frame without a target's file raises :class:`~cityscapes_io.errors.DatasetNotFoundError`
    naming the frame and the file looked for, as a frame without a photo or ground truth does
    (filter the dataset first, e.g. ``Dataset.filter(ids=...)`` with ``frame.has_part(...)``).
    """
    out: Dict[str, Any] = {"id": frame.id, "split": frame.split}
    if snippet is not None and "snippet" not in targets:
        raise ValueError("snippet options given, but 'snippet' is not among the targets")
    snippet_options = _snippet_options(snippet) if "snippet" in targets else {}
    for target in targets:
        if target == "image":
            img = _tensor(_needed(frame, frame.image(), "photo"))
            out["image"] = img.permute(2, 0, 1).contiguous() if channels_first else img
        elif target == "right_image":
            out["right_image"] = _photo(frame, "rightImg8bit", channels_first)
        elif target == "disparity":
            out["disparity"] = _tensor(_part(frame, frame.disparity(), "disparity", "disparity"))
        elif target == "depth":
            _part(frame, frame.disparity(), "depth (no disparity)", "disparity")
            _part(frame, frame.camera(), "depth (no camera)", "camera")
            out["depth"] = _tensor(_part(frame, frame.depth(), "depth", "disparity"))
        elif target == "camera":
            out["camera"] = _camera(_part(frame, frame.camera(), "camera", "camera"))
        elif target == "persons":
            out["persons"] = _persons(frame)
        elif target == "snippet":
            out["snippet"] = _snippet(frame, snippet_options, channels_first)
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
    variable length (``instances``, ``panoptic``, ``persons``) are kept as lists; the
    ``camera`` dict, of fixed-size tensors, is batched key by key; tuples and lists (a
    transform returning ``(image, target)`` as torchvision's detection models take it) are
    batched position by position."""
    if not batch:
        return default_collate(batch)
    first = batch[0]
    if isinstance(first, Mapping):
        return {key: _collate_dict([b[key] for b in batch]) if key in _STACKED_DICTS
                else _collate_values([b[key] for b in batch]) for key in first}
    if isinstance(first, (tuple, list)):
        columns = [_collate_values(list(column)) for column in zip(*batch)]
        return tuple(columns) if isinstance(first, tuple) else columns
    return _collate_values(list(batch))


def _collate_dict(values: List[Any]) -> Any:
    if not all(isinstance(v, Mapping) and v.keys() == values[0].keys() for v in values):
        return _collate_values(values)
    return {key: _collate_values([v[key] for v in values]) for key in values[0]}


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


# -- geometry: crops and resizes that keep a sample consistent --------------------------------------
#: Photo targets (bilinear when resized) and maps (nearest), every one with the frame's size.
_PHOTOS = ("image", "right_image", "snippet")
_MAPS = ("semantic", "train_ids", "instance_ids", "disparity", "depth")
#: Targets the geometry functions refuse (masks, boxes and areas that would have to be redone).
_NOT_MOVED = ("instances", "panoptic")


def _row_axis(key: str, ndim: int, channels_first: bool) -> int:
    """The rows' axis of a spatial target (the columns' is the next one)."""
    return ndim - (3 if key in _PHOTOS and not channels_first else 2)


def _frame_size(sample: Mapping[str, Any], channels_first: bool, what: str) -> Tuple[int, int]:
    refused = [k for k in _NOT_MOVED if k in sample]
    if refused:
        raise ValueError(f"{what} does not move the {', '.join(refused)} target(s) (masks, boxes and areas): "
                         "leave them out of the targets, or crop them in your own transform")
    sizes = {}
    for key in _PHOTOS + _MAPS:
        if key in sample:
            t = sample[key]
            rows = _row_axis(key, t.ndim, channels_first)
            sizes[key] = (int(t.shape[rows]), int(t.shape[rows + 1]))
    if not sizes:
        raise ValueError(f"{what}: the sample has no photo or map to take the frame's size from")
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{k} {h}×{w}" for k, (h, w) in sizes.items())
        raise ValueError(f"{what}: the sample's targets differ in size ({shown}; channels_first={channels_first})")
    return next(iter(sizes.values()))


def _moved(sample: Mapping[str, Any], sx: float, sy: float, dx: float, dy: float) -> Dict[str, Any]:
    """``camera`` and ``persons`` of a sample whose pixels were scaled by ``(sx, sy)`` then
    shifted by ``(dx, dy)``; pixel centres at integer coordinates (OpenCV's camera-matrix
    convention), so a principal point moves as ``(u0 + 0.5) · sx - 0.5 + dx``; box edges
    (exclusive ends) as ``x · sx + dx``."""
    out: Dict[str, Any] = {}
    camera = sample.get("camera")
    if isinstance(camera, Mapping) and "intrinsics" in camera:
        k = camera["intrinsics"].to(torch.float64).clone()
        k[..., 0, 0] *= sx
        k[..., 1, 1] *= sy
        k[..., 0, 2] = (k[..., 0, 2] + 0.5) * sx - 0.5 + dx
        k[..., 1, 2] = (k[..., 1, 2] + 0.5) * sy - 0.5 + dy
        out["camera"] = {**camera, "intrinsics": k.to(camera["intrinsics"].dtype)}
    persons = sample.get("persons")
    if isinstance(persons, Mapping):
        scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float64)
        shift = torch.tensor([dx, dy, dx, dy], dtype=torch.float64)
        out["persons"] = {**persons, **{key: (persons[key].to(torch.float64) * scale + shift).to(persons[key].dtype)
                                        for key in ("boxes", "boxes_vis") if key in persons}}
    return out


def _whole(value: Any, name: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    return int(value)


def crop_sample(sample: Mapping[str, Any], top: int, left: int, height: int, width: int, *,
                channels_first: bool = False) -> Dict[str, Any]:
    """A sample cropped to rows ``top`` to ``top + height`` and columns ``left`` to
    ``left + width``, every spatial target together.

    Parameters
    ----------
    sample : dict
        A sample of :func:`sample` (one frame, not a batch).
    top, left, height, width : int
        The crop, inside the frame.
    channels_first : bool
        How the sample's photos are laid out (the dataset's ``channels_first``).

    Returns
    -------
    dict
        A new sample: photos, maps and the snippet cropped (copies); the camera's principal
        point ``u0 - left``, ``v0 - top``; the ``persons`` boxes shifted by ``(-left, -top)``,
        neither clipped nor dropped (filter them as your training needs); other entries as
        they were.

    Raises
    ------
    ValueError
        A crop outside the frame, targets of different sizes, or ``instances`` / ``panoptic``
        in the sample (not handled).
    """
    h, w = _frame_size(sample, channels_first, "crop_sample")
    top, left = _whole(top, "top", 0), _whole(left, "left", 0)
    height, width = _whole(height, "height", 1), _whole(width, "width", 1)
    if top + height > h or left + width > w:
        raise ValueError(f"crop {height}×{width} at ({top}, {left}) is outside the {h}×{w} frame")
    out = dict(sample)
    for key in _PHOTOS + _MAPS:
        if key in out:
            t = out[key]
            rows = _row_axis(key, t.ndim, channels_first)
            index = [slice(None)] * t.ndim
            index[rows], index[rows + 1] = slice(top, top + height), slice(left, left + width)
            out[key] = t[tuple(index)].clone()
    out.update(_moved(sample, 1.0, 1.0, -left, -top))
    return out


def _nearest(n_in: int, n_out: int) -> Any:
    """Source index of each of ``n_out`` pixels resampled from ``n_in``, pixel centres aligned
    (torch's ``nearest-exact``)."""
    return torch.clamp(torch.floor((torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out)),
                       max=n_in - 1).to(torch.int64)


def _resized_photo(t: Any, size: Tuple[int, int], channels_first: bool) -> Any:
    x = t if channels_first else t.movedim(-1, -3)
    lead = x.shape[:-3]
    x = x.reshape((-1,) + tuple(x.shape[-3:])).to(torch.float32)
    y = torch.nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    if not t.dtype.is_floating_point:
        y = y.round().clamp(0, torch.iinfo(t.dtype).max).to(t.dtype)
    y = y.reshape(tuple(lead) + tuple(y.shape[-3:]))
    return y.contiguous() if channels_first else y.movedim(-3, -1).contiguous()


def resize_sample(sample: Mapping[str, Any], size: Tuple[int, int], *,
                  channels_first: bool = False) -> Dict[str, Any]:
    """A sample resized to ``size`` (``(height, width)``), every spatial target together.

    Pixel centres are aligned (``align_corners=False``): with ``sx = width / W`` and
    ``sy = height / H``, a point at pixel coordinate ``u`` (centres at integers) moves to
    ``(u + 0.5) · sx - 0.5``.

    Parameters
    ----------
    sample : dict
        A sample of :func:`sample` (one frame, not a batch).
    size : (int, int)
        The new height and width.
    channels_first : bool
        How the sample's photos are laid out (the dataset's ``channels_first``).

    Returns
    -------
    dict
        A new sample: photos and the snippet resized bilinearly (antialiased, rounded back to
        their dtype); label maps, ``disparity`` and ``depth`` by nearest neighbour (no value
        made up between an object and the background, NaN kept); ``disparity`` values times
        ``sx`` (a disparity is a horizontal distance in pixels), depth unchanged; the camera's
        ``fx · sx``, ``fy · sy``, ``(u0 + 0.5) · sx - 0.5``, ``(v0 + 0.5) · sy - 0.5``
        (``baseline · fx / disparity`` stays the depth); ``persons`` boxes times
        ``(sx, sy)``; other entries as they were.

    Raises
    ------
    ValueError
        A bad size, targets of different sizes, or ``instances`` / ``panoptic`` in the sample.
    """
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"size must be (height, width), got {size!r}")
    height, width = _whole(size[0], "height", 1), _whole(size[1], "width", 1)
    h, w = _frame_size(sample, channels_first, "resize_sample")
    sx, sy = width / w, height / h
    rows, cols = _nearest(h, height), _nearest(w, width)
    out = dict(sample)
    for key in _PHOTOS:
        if key in out:
            out[key] = _resized_photo(out[key], (height, width), channels_first)
    for key in _MAPS:
        if key in out:
            t = out[key]
            t = t[..., rows[:, None], cols[None, :]]
            out[key] = t * sx if key == "disparity" else t.contiguous()
    out.update(_moved(sample, sx, sy, 0.0, 0.0))
    return out


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
                 channels_first: bool = False, snippet: Optional[Mapping[str, Any]] = None, **open_options):
        self.targets = _check_targets(targets)
        if snippet is not None and "snippet" not in self.targets:
            raise ValueError("snippet options given, but 'snippet' is not among the targets")
        #: The ``snippet`` target's options, defaults filled in (see :func:`sample`).
        self.snippet: Optional[Dict[str, Any]] = _snippet_options(snippet) if "snippet" in self.targets else None
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
            out = sample(frame, self.targets, channels_first=self.channels_first, snippet=self.snippet)
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
        ``train_ids``, ``instance_ids``, ``instances``, ``panoptic``, and from the release's
        other parts ``right_image``, ``disparity``, ``depth``, ``camera``, ``persons``,
        ``snippet`` (see :func:`sample`). A frame without a target's file is an error naming
        the frame and the file.
    transform : callable, optional
        Called on each sample dict; its result is the sample. The datasets apply no geometry
        of their own: crop or resize here with :func:`crop_sample` / :func:`resize_sample`,
        which keep the camera, disparity and boxes consistent with the pixels.
    storage_options : dict, optional
        For the filesystem (a url source only).
    channels_first : bool
        Images ``3×H×W`` instead of ``H×W×3`` (snippets ``T×3×H×W``).
    snippet : dict, optional
        Options of the ``snippet`` target: ``before``, ``after``, ``step``, ``key`` (defaults
        :data:`SNIPPET_DEFAULTS`: the 30-frame ``leftImg8bit_sequence`` snippet), e.g.
        ``targets=("image", "snippet"), snippet={"before": 2, "after": 2}``.
    **open_options
        Passed to :func:`cityscapes_io.open` (``format``, ``cities``, ``annotations``,
        ``image`` (the photo key of the ``image`` target: ``leftImg8bit_foggy@beta_0.02``), ...).

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


class _SharedEpoch:
    """An epoch counter shared with worker processes (inherited by fork, passed at spawn), so
    that ``set_epoch`` reaches persistent workers; a copy (pickle, deepcopy) gets a counter of
    its own. Call :meth:`_start_epochs` in ``__init__``."""

    _epoch: Any

    def _start_epochs(self) -> None:
        self._epoch = multiprocessing.RawValue("q", 0)

    @property
    def epoch(self) -> int:
        return int(self._epoch.value)

    def set_epoch(self, epoch: int) -> None:
        """Use ``epoch`` from the next iteration on (call it before each epoch, as with
        ``DistributedSampler``)."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self._epoch.value = int(epoch)

    def __getstate__(self):
        state = self.__dict__.copy()
        if multiprocessing.context.get_spawning_popen() is None:
            # Not a worker being started: a shared counter cannot be pickled, its value can.
            state["_epoch"] = _EpochValue(self.epoch)
        return state

    def __setstate__(self, state) -> None:
        if isinstance(state.get("_epoch"), _EpochValue):
            # A copy gets a shared counter of its own again, so that its set_epoch reaches the
            # persistent workers it starts.
            state["_epoch"] = multiprocessing.RawValue("q", int(state["_epoch"].value))
        self.__dict__.update(state)


class CityscapesIterable(_SharedEpoch, _Samples, _data.IterableDataset):
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
                 channels_first: bool = False, snippet: Optional[Mapping[str, Any]] = None, shuffle: int = 0,
                 seed: int = 0, rank: Optional[int] = None, world_size: Optional[int] = None, even: bool = False,
                 **open_options):
        super().__init__(source, split=split, targets=targets, transform=transform, storage_options=storage_options,
                         channels_first=channels_first, snippet=snippet, **open_options)
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
        self._start_epochs()

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

class _EpochValue:
    """The epoch of a dataset pickled outside process start (no shared counter)."""

    def __init__(self, value: int):
        self.value = value


# -- rare-class sampling ------------------------------------------------------------------------------
def _dataset_frames(dataset: Any) -> List[Frame]:
    """The frames whose positions a sampler yields: a torch dataset's, a Dataset's, or a
    sequence of frames."""
    if isinstance(dataset, _Samples):
        return dataset.frames
    if isinstance(dataset, Dataset):
        return [dataset[i] for i in range(len(dataset))]
    frames = list(dataset)
    bad = next((f for f in frames if not isinstance(f, Frame)), None)
    if bad is not None:
        raise TypeError(f"RareClassSampler needs a CityscapesDataset, a Dataset or frames, got a sequence holding "
                        f"{type(bad).__name__}")
    return frames


class RareClassSampler(_SharedEpoch, _data.Sampler):
    """Draws frame positions by class rarity, as rare-class sampling (RCS) in DAFormer, HRDA and
    MIC does, split exactly by rank × DataLoader worker.

    Each draw picks a train id ``c`` with probability ``p_c ∝ exp((1 - f_c) / temperature)``
    (``f_c``: the share of all counted pixels that are of ``c``), then a frame uniformly among
    those with more than ``min_pixels`` pixels of ``c``
    (:class:`cityscapes_io.sampling.RareClassTable`). DAFormer's other RCS step, cropping again
    until the crop holds enough of ``c``, belongs to the transform: :meth:`draws` gives the
    class of each draw.

    Parameters
    ----------
    dataset : CityscapesDataset, Dataset or sequence of Frame
        What the positions index (``dataset[i]``): a map-style :class:`CityscapesDataset`, given
        to ``DataLoader(dataset, sampler=sampler)``.
    temperature : float
        ``T`` (DAFormer's ``class_temp``, 0.01 in its configs).
    min_pixels : int
        A frame is drawn for class ``c`` when it has more than this many pixels of ``c``
        (DAFormer's ``min_pixels``, 3000 in its configs, for 2048×1024 frames).
    stats : str, ClassStats or RareClassTable, optional
        Where the per-frame statistics come from. None: counted from the dataset's frames when
        the sampler is made (each frame's labels decoded once, in this process). A folder (any
        fsspec URL) holding DAFormer's ``sample_class_stats.json`` and
        ``samples_with_class.json`` (written by ``cityscapes-io stats --per-frame`` or by
        DAFormer's script): read as DAFormer reads them, frames matched by the base name of
        their ``file``. Or statistics computed before
        (:func:`cityscapes_io.sampling.class_stats`, matched the same way).
    storage_options : dict, optional
        For the ``stats`` folder's filesystem.
    num_samples : int, optional
        Draws per epoch over all ranks and workers (default: the dataset's length, one draw per
        frame as DAFormer draws one per item).
    seed : int
        With the epoch, fixes the draws (:meth:`set_epoch`).
    rank, world_size : int, optional
        This process's rank and the number of ranks; from ``torch.distributed`` when it is
        initialised (when the sampler is made), else 0 and 1.
    even : bool
        Give every rank the same number of draws by leaving out the last
        ``num_samples % world_size`` draws of each epoch.

    Sharding follows :class:`CityscapesIterable`: every rank computes the same epoch's draws
    (:meth:`draws`, fixed by ``seed`` and the epoch), cuts them into ``world_size`` contiguous
    shares (the first ones holding one more) and takes the ``rank``-th; ``len()`` is its count.
    Iterated by a DataLoader (in the main process) it yields its rank's share, which the
    DataLoader hands out to its workers batch by batch (each draw to one worker); iterated
    inside a DataLoader worker (an ``IterableDataset`` of yours), it yields that worker's
    contiguous share of the rank's (:meth:`positions`). Either way, one epoch over all ranks and
    workers is the one-process draw, each draw once. :meth:`set_epoch` reaches workers that
    are already running through a shared counter.
    """

    def __init__(self, dataset: Any, *, temperature: float = sampling.TEMPERATURE,
                 min_pixels: int = sampling.MIN_PIXELS,
                 stats: Union[None, str, "os.PathLike[str]", sampling.ClassStats, sampling.RareClassTable] = None,
                 storage_options: Optional[dict] = None, num_samples: Optional[int] = None, seed: int = 0,
                 rank: Optional[int] = None, world_size: Optional[int] = None, even: bool = False):
        frames = _dataset_frames(dataset)
        if rank is None or world_size is None:
            d_rank, d_world = _default_rank()
            rank = d_rank if rank is None else rank
            world_size = d_world if world_size is None else world_size
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in range for world_size {world_size}")
        if int(seed) < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        n = len(frames) if num_samples is None else num_samples
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"num_samples must be an integer >= 0, got {num_samples!r}")
        if stats is None:
            def kinds(frame: Frame) -> List[str]:
                return _fetch_kinds(frame, ("train_ids",))

            counted = sampling.class_stats(read_ahead(frames, PREFETCH if frames and _remote(frames[0]) else 0, kinds),
                                           root="")
            table = sampling.RareClassTable.from_stats(counted, temperature=temperature, min_pixels=min_pixels,
                                                       where="the dataset")
            keys = {sampling.label_file(f, ""): i for i, f in reversed(list(enumerate(frames)))}
            key: Callable[[str], str] = str
        else:
            if isinstance(stats, sampling.RareClassTable):
                table = stats
            elif isinstance(stats, sampling.ClassStats):
                table = sampling.RareClassTable.from_stats(stats, temperature=temperature, min_pixels=min_pixels)
            else:
                table = sampling.RareClassTable.read(os.fspath(stats), temperature=temperature,
                                                     min_pixels=min_pixels, storage_options=storage_options)
            keys, key = self._by_base_name(frames), _base_name
        #: What the draws are made from (classes, probabilities, candidates).
        self.table = table
        self._members: List[np.ndarray] = []
        for c, files in zip(table.classes, table.candidates):
            positions = [keys.get(key(f), -1) for f in files]
            missing = [f for f, p in zip(files, positions) if p < 0]
            if missing:
                raise ValueError(f"{len(missing)} frame(s) drawn for train id {c} are not in the dataset, e.g. "
                                 f"{missing[0]!r} (statistics of other frames, or a dataset filtered since)")
            ambiguous = [f for f, p in zip(files, positions) if p == -2]
            if ambiguous:
                raise ValueError(f"several frames of the dataset have the base name of {ambiguous[0]!r}: the "
                                 "statistics' files cannot be matched to frames (compute them from the dataset: "
                                 "stats=None)")
            self._members.append(np.array(positions, dtype=np.int64))
        self.num_samples, self.seed, self.rank, self.world_size, self.even = int(n), int(seed), rank, world_size, even
        if world_size > 1 and not even and n % world_size:
            warnings.warn(f"{n} draws over {world_size} ranks: the ranks' shares differ by one draw; with "
                          "DistributedDataParallel unequal batch counts can stall the last all-reduce: pass even=True "
                          "(drops num_samples % world_size draws an epoch) or a num_samples that divides evenly",
                          stacklevel=2)
        self._start_epochs()

    @staticmethod
    def _by_base_name(frames: Sequence[Frame]) -> Dict[str, int]:
        """Base name of each frame's ``_labelTrainIds.png`` → its position (-2: several frames)."""
        out: Dict[str, int] = {}
        for i, f in enumerate(frames):
            name = _base_name(sampling.label_file(f, ""))
            out[name] = -2 if name in out else i
        return out

    @property
    def classes(self) -> Tuple[int, ...]:
        """The train ids drawn, fewest pixels first."""
        return self.table.classes

    @property
    def probabilities(self) -> np.ndarray:
        """The probability of each of :attr:`classes`."""
        return self.table.probabilities


    def draws(self, epoch: Optional[int] = None, *, classes: bool = False) -> Any:
        """The frame positions of one epoch's draws over all ranks and workers (what one
        process draws), ``epoch`` by default the current one; with ``classes``, also the train
        id each position was drawn for (two int64 arrays)."""
        which, member = self.table.draw(self.num_samples, self.seed, self.epoch if epoch is None else int(epoch))
        offsets = np.cumsum([0] + [len(m) for m in self._members])
        flat = np.concatenate(self._members) if self._members else np.zeros(0, np.int64)
        positions = flat[offsets[which] + member]
        if classes:
            return positions, np.asarray(self.table.classes, dtype=np.int64)[which]
        return positions

    def _rank_draws(self) -> np.ndarray:
        order = self.draws()
        if self.even:
            order = order[: len(order) - len(order) % self.world_size]
        start, stop = _shares(len(order), self.world_size)[self.rank]
        return order[start:stop]

    def __len__(self) -> int:
        n = self.num_samples - (self.num_samples % self.world_size if self.even else 0)
        start, stop = _shares(n, self.world_size)[self.rank]
        return stop - start

    def positions(self, worker: int = 0, num_workers: int = 1) -> List[int]:
        """The positions one worker of this rank draws this epoch, in order: a contiguous share
        of the rank's draws, as :meth:`CityscapesIterable.positions` shares frames."""
        if num_workers < 1 or not 0 <= worker < num_workers:
            raise ValueError(f"worker {worker} is not in range for {num_workers} workers")
        mine = self._rank_draws()
        start, stop = _shares(len(mine), num_workers)[worker]
        return [int(i) for i in mine[start:stop]]

    def __iter__(self) -> Iterator[int]:
        info = get_worker_info()
        if info is None:  # a DataLoader's sampler: its workers get the positions batch by batch
            return iter(self.positions())
        return iter(self.positions(info.id, info.num_workers))



def _base_name(file: str) -> str:
    """What DAFormer matches a ``file`` by: ``file.split('/')[-1]``."""
    return file.rsplit("/", 1)[-1]
