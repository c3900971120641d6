"""A frame: where its files are, and its pixels decoded on demand.

A :class:`Frame` from a reader holds file references and no pixels; it can be pickled (a
process pool or Dask can ship it) and opens nothing until asked. Each file is decoded at most
once while the caller holds the frame.
"""
from __future__ import annotations

import dataclasses
import warnings
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import png
from .errors import DatasetNotFoundError, InvalidFileError, UnknownLabelError
from .instances import INSTANCE_DIVISOR, Instance, segment_stats
from .labels import LabelMap
from .names import parse_frame_id
from .storage import is_remote

__all__ = ["Frame", "apply_policy"]

OnError = Union[str, Callable[[Exception], Any]]


def apply_policy(on_error: OnError, error: Exception) -> None:
    """Apply an ``on_error`` policy to ``error``: re-raise it (``"raise"``), warn (``"skip"``) or
    hand it to a callable. Returns only when the caller should skip the offending item."""
    if on_error == "raise":
        raise error
    if on_error == "skip":
        warnings.warn(f"skipped: {error}", stacklevel=3)
        return
    if callable(on_error):
        on_error(error)
        return
    raise ValueError(f"on_error must be 'raise', 'skip' or a callable, got {on_error!r}")


class Frame:
    """One frame of a dataset.

    Attributes
    ----------
    id : str
        Datumaro's item id: the path under ``gtFine/<split>/`` without the file-kind suffix,
        e.g. ``aachen/aachen_000000_000019``.
    split : str
    city, seq, frame :
        Parsed from the Cityscapes grammar (``seq``/``frame`` are None for other ids).
    labels : LabelMap
        What ``label_ids()`` values and ``v // 1000`` of ``instance_ids()`` mean.
    files : dict
        ``{kind: path}`` of the frame's files (kinds ``image``, ``instanceIds``, ``labelIds``,
        ``labelTrainIds``, ``color``, ``polygons``).
    """

    def __init__(
        self,
        id: str,
        split: str,
        labels: LabelMap,
        files: Optional[Dict[str, Tuple[Any, str]]] = None,
        *,
        on_error: OnError = "raise",
        arrays: Optional[Dict[str, Any]] = None,
    ):
        name = parse_frame_id(id)
        self.id = id
        self.split = split
        self.city = name.city
        self.seq = name.seq
        self.frame = name.frame
        self.labels = labels
        self._files: Dict[str, Tuple[Any, str]] = dict(files or {})
        self._on_error = on_error
        self._arrays: Dict[str, Any] = dict(arrays or {})  # frames built in memory
        self._cache: Dict[str, Any] = {}
        self._pending: Dict[str, "Future[Dict[str, bytes]]"] = {}
        self._on_read: Optional[Callable[[str], None]] = None
        self._labels_given = True  # False for in-memory frames that take their dataset's labels

    @classmethod
    def from_arrays(
        cls,
        *,
        id: str,
        split: str = "default",
        image: Optional[np.ndarray] = None,
        instances: Sequence[Instance] = (),
        labels: Optional[LabelMap] = None,
    ) -> "Frame":
        """A frame built in memory, written by the same writers as frames read from disk.

        Parameters
        ----------
        id : str
            Frame id (``"aachen/aachen_000000_000019"``, ``"a/b/1"``, ...).
        split : str
        image : ndarray, optional
            ``H×W×3`` (or ``H×W``) uint8 photo.
        instances : list of Instance
            Made with :meth:`Instance.from_mask`; all of the frame's size.
        labels : LabelMap, optional
            Set by :meth:`Dataset.from_iterable` when omitted.
        """
        arrays: Dict[str, Any] = {}
        if image is not None:
            arrays["image"] = np.asarray(image)
        shapes = {tuple(i._frame_shape) for i in instances}
        if image is not None:
            shapes.add(tuple(np.asarray(image).shape[:2]))
        if len(shapes) > 1:
            raise ValueError(f"frame {id!r}: image and masks differ in size: {sorted(shapes)}")
        if instances:
            arrays["instances"] = list(instances)
        frame = cls(id, split, labels if labels is not None else LabelMap.cityscapes(), None, arrays=arrays)
        frame._labels_given = labels is not None
        return frame

    # -- files --------------------------------------------------------------------------------
    @property
    def files(self) -> Dict[str, str]:
        return {k: p for k, (_, p) in self._files.items()}

    def has(self, kind: str) -> bool:
        """Whether the frame has a file (or array) of this kind."""
        return kind in self._files or kind in self._arrays

    @property
    def has_image(self) -> bool:
        return self.has("image")

    @property
    def has_annotations(self) -> bool:
        return self._gt_kind() is not None or "instances" in self._arrays

    @property
    def image_ext(self) -> Optional[str]:
        """Extension of the photo file (``.png``), or None."""
        if "image" not in self._files:
            return ".png" if "image" in self._arrays else None
        path = self._files["image"][1]
        dot = path.rfind(".")
        return path[dot:].lower() if dot > path.rfind("/") else None

    def path(self, kind: str) -> str:
        return self._files[kind][1]

    def read_bytes(self, kind: str) -> bytes:
        """The encoded bytes of one of the frame's files (from the prefetch when there is one)."""
        key = "bytes:" + kind
        if key in self._cache:
            return self._cache[key]
        if kind not in self._files:
            raise DatasetNotFoundError(f"{self.split}/{self.id}", f"frame has no {kind} file")
        fs, path = self._files[kind]
        if self._on_read is not None:
            self._on_read(kind)
        data = None
        fut = self._pending.pop(kind, None)
        if fut is not None:
            try:
                data = fut.result().get(path)
            except Exception:  # a failed prefetch is retried below and reported from there
                data = None
            if isinstance(data, Exception):
                data = None
        if data is None:
            try:
                data = _read_whole(fs, path)
            except FileNotFoundError as exc:
                raise DatasetNotFoundError(path, "file disappeared or cannot be read") from exc
            except Exception as exc:  # OSError, and the storage's own (network) errors
                raise InvalidFileError(path, f"cannot read: {exc}") from exc
        # Kept while the frame is held: writers copy encoded files (the photo, and the ground
        # truth when labels are unchanged) without reading them twice.
        self._cache[key] = data
        return data

    # -- pixels -------------------------------------------------------------------------------
    def image_bytes(self) -> Optional[bytes]:
        """The encoded photo, for copying without re-encoding; None when there is no photo."""
        if "image" not in self._files:
            if "image" in self._arrays:
                return png.encode_png(self._arrays["image"])
            return None
        return self.read_bytes("image")

    def image(self) -> Optional[np.ndarray]:
        """The photo as an ``H×W×3`` uint8 array, or None when the frame has no photo."""
        if "image" not in self._cache:
            if "image" in self._arrays:
                img = np.asarray(self._arrays["image"])
                if img.ndim == 2:
                    img = np.repeat(img[:, :, None], 3, axis=2)
                self._cache["image"] = img[:, :, :3].astype(np.uint8, copy=False)
            elif "image" in self._files:
                self._cache["image"] = png.decode_rgb(self.read_bytes("image"), self.path("image"))
            else:
                return None
        return self._cache["image"]

    def _gt_kind(self) -> Optional[str]:
        for kind in ("instanceIds", "labelTrainIds", "labelIds"):
            if kind in self._files:
                return kind
        return None

    def instance_ids(self) -> Optional[np.ndarray]:
        """The raw ``instanceIds`` array (``uint16``, or ``uint8`` for an 8-bit file), or None
        when the frame has no ground truth. Without an instanceIds file, the class image
        (labelTrainIds or labelIds) is returned: every segment is then a whole-class region."""
        if "instanceIds" not in self._cache:
            arr = self._compose() if "instances" in self._arrays else self._decode_instance_ids()
            if arr is None:
                return None
            self._cache["instanceIds"] = arr
        return self._cache["instanceIds"]

    def _decode_instance_ids(self) -> Optional[np.ndarray]:
        """Decode the instanceIds of a frame read from files (formats override this)."""
        kind = self._gt_kind()
        if kind is None:
            return None
        return png.decode_gray(self.read_bytes(kind), self.path(kind))

    def label_ids(self) -> Optional[np.ndarray]:
        """The class index of every pixel (``uint8`` when it fits, else ``uint16``), or None
        when the frame has no ground truth.

        Read from ``_labelIds.png`` when it exists beside the instanceIds, otherwise derived
        from the instanceIds (``v // 1000`` for ``v >= 1000``, ``v`` below)."""
        if "labelIds" not in self._cache:
            if "instanceIds" in self._files and "labelIds" in self._files and "instances" not in self._arrays:
                arr = png.decode_gray(self.read_bytes("labelIds"), self.path("labelIds"))
            else:
                ids = self.instance_ids()
                if ids is None:
                    return None
                arr = _labels_from_instance_ids(ids)
            self._cache["labelIds"] = arr
        return self._cache["labelIds"]

    def instances(self) -> List[Instance]:
        """The frame's segments, one :class:`Instance` each, sorted by raw value.

        Values ``>= 1000`` are instances of label ``v // 1000`` numbered ``v % 1000``; values
        below are whole-class regions (``is_crowd`` True, ``id`` None). A value whose label is
        not in the label map raises :class:`UnknownLabelError` (or is dropped and reported under
        ``on_error="skip"`` or a callable). Areas and boxes come from one pass over the array;
        no mask is built until asked for.
        """
        if "instances" in self._cache:
            return self._cache["instances"]
        if "instances" in self._arrays:
            out = []
            for inst in self._arrays["instances"]:
                label = self.labels.get(inst.label_id)
                if label is None:
                    apply_policy(self._on_error, UnknownLabelError(
                        self.id, f"instance with label id {inst.label_id} not in the label map ({self.labels.source})"))
                    continue
                if inst.label != label:
                    inst = dataclasses.replace(inst, label=label)
                out.append(inst)
            self._cache["instances"] = out
            return out
        arr = self.instance_ids()
        if arr is None:
            self._cache["instances"] = []
            return []
        values, areas, x0, y0, x1, y1 = segment_stats(arr)
        shape = arr.shape
        kind = self._gt_kind()
        out = []
        for v, a, bx0, by0, bx1, by1 in zip(
            values.tolist(), areas.tolist(), x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist()
        ):
            if v >= INSTANCE_DIVISOR:
                label_id, num, crowd = v // INSTANCE_DIVISOR, v % INSTANCE_DIVISOR, False
            else:
                label_id, num, crowd = v, None, True
            label = self.labels.get(label_id)
            if label is None:
                apply_policy(
                    self._on_error,
                    UnknownLabelError(
                        self.path(kind) if kind else self.id,
                        f"pixel value {v} refers to label id {label_id}, which is not in the label map "
                        f"({self.labels.source}, {len(self.labels)} labels)",
                    ),
                )
                continue
            out.append(Instance(v, label_id, label, num, crowd, a, (bx0, by0, bx1 - bx0, by1 - by0), arr, v, (0, 0),
                                shape))
        self._cache["instances"] = out
        return out

    def size(self) -> Optional[Tuple[int, int]]:
        """``(height, width)`` read from the headers of the frame's files, without decoding."""
        for kind in ("instanceIds", "labelTrainIds", "labelIds", "image"):
            if kind in self._files:
                fs, path = self._files[kind]
                data = self._cache.get("bytes:" + kind)
                if data is None and path.lower().endswith(".png"):
                    try:
                        data = fs.cat_file(path, start=0, end=64)
                    except FileNotFoundError as exc:
                        raise DatasetNotFoundError(path, "file disappeared or cannot be read") from exc
                    except Exception as exc:
                        raise InvalidFileError(path, f"cannot read: {exc}") from exc
                elif data is None:
                    data = self.read_bytes(kind)
                w, h = png.image_size(data, path)
                return h, w
        return self._shape() if self._arrays else None

    def _shape(self) -> Tuple[int, int]:
        if "image" in self._arrays:
            return tuple(np.asarray(self._arrays["image"]).shape[:2])  # type: ignore[return-value]
        for inst in self._arrays.get("instances", ()):
            return inst._frame_shape
        raise ValueError(f"frame {self.id!r} has neither an image nor instances to give its size")

    def _compose(self) -> np.ndarray:
        """Paint in-memory instances into an instanceIds array; numbered instances keep their
        number, unnumbered ones get the lowest numbers their label does not use."""
        insts = self._arrays["instances"]
        out = np.zeros(self._shape(), dtype=np.uint16)
        used: Dict[int, set] = {}
        for inst in insts:
            if not inst.is_crowd and inst.id is not None:
                used.setdefault(inst.label_id, set()).add(inst.id)
        for inst in insts:
            value = inst.value
            if not inst.is_crowd and inst.id is None:
                taken = used.setdefault(inst.label_id, set())
                num = next(n for n in range(INSTANCE_DIVISOR) if n not in taken)
                taken.add(num)
                value = inst.label_id * INSTANCE_DIVISOR + num
            x, y, w, h = inst.bbox
            out[y : y + h, x : x + w][inst.mask_crop] = value
        return out

    # -- lifetime -----------------------------------------------------------------------------
    def release(self) -> None:
        """Drop every decoded array and buffered file of this frame."""
        self._cache.clear()
        self._pending.clear()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        state["_pending"] = {}
        state["_on_read"] = None
        if callable(state["_on_error"]) and state["_on_error"] not in ("raise", "skip"):
            state["_on_error"] = "raise"
        return state

    def __repr__(self) -> str:
        return f"Frame({self.split}/{self.id}, files={sorted(self._files) or sorted(self._arrays)})"


def _read_whole(fs, path: str) -> bytes:
    """A whole file. On object stores as one ranged GET from byte 0: a plain read first asks for
    the size (a HEAD) unless a listing is cached; an empty object refuses the range, so it is
    read plainly then."""
    if not is_remote(fs):
        return fs.cat_file(path)
    try:
        return fs.cat_file(path, start=0)
    except FileNotFoundError:
        raise
    except Exception:
        return fs.cat_file(path)


def _labels_from_instance_ids(ids: np.ndarray) -> np.ndarray:
    if ids.dtype == np.uint8:
        return ids
    lab = np.where(ids >= INSTANCE_DIVISOR, ids // INSTANCE_DIVISOR, ids)
    return lab.astype(np.uint8) if lab.size and lab.max() < 256 else lab.astype(np.uint16)
