"""Where a frame's pixels come from: the :class:`Source` contract and the file-backed sources.

A source says where one frame's pixels come from. :class:`FileSource` reads encoded files
(``{kind: (filesystem, path)}``; Cityscapes' decoding by default), :class:`MaskSource` the
colour-coded masks of a format that decodes them with the dataset's labels (VOC, CamVid); each
format subclasses one of them for its own masks. Sources built on a :class:`~cityscapes_io.Frame`
(arrays made in memory, another frame through a lookup table) live with the frame in
:mod:`cityscapes_io.frame`.

A file source holds file references and no pixels; it can be pickled and opens nothing until
asked.
"""
from __future__ import annotations

import copy
from concurrent.futures import Executor, Future
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from . import png
from .errors import DatasetNotFoundError, OnError
from .instances import INSTANCE_DIVISOR, Instance
from .labels import LabelMap
from .storage import display_path, fetch_many, read_file, read_range

__all__ = ["Source", "FileSource", "MaskSource", "painted_values"]


# -- the contract -------------------------------------------------------------------------------
class Source:
    """Where one frame's pixels come from: the contract every source implements.

    ``instance_ids`` is the one required part; everything else has a default. A source does no
    caching of decoded arrays (the :class:`Frame` does); a file source keeps the encoded bytes
    it read until released, so writers copy files without reading them twice.
    """

    def files(self) -> Dict[str, str]:
        """``{kind: path}`` of the encoded files this source reads (empty for arrays)."""
        return {}

    def has_image(self) -> bool:
        return False

    def has_annotations(self) -> bool:
        return False

    def image_ext(self) -> Optional[str]:
        """Extension of the photo (``.png``), None without one."""
        return ".png" if self.has_image() else None

    def image_bytes(self) -> Optional[bytes]:
        """The encoded photo, None without one."""
        return None

    def image(self) -> Optional[np.ndarray]:
        """The photo as an ``H×W×3`` array (uint8; uint16 for a 16-bit PNG), None without one."""
        return None

    def instance_ids(self) -> Optional[np.ndarray]:  # pragma: no cover - abstract
        """The ``instanceIds`` array (``label * 1000 + instance``, plain label for regions), or
        None without ground truth."""
        raise NotImplementedError

    def label_ids(self) -> Optional[np.ndarray]:
        """The class image when the source holds one of its own (a ``_labelIds.png`` beside the
        instanceIds); None lets the frame derive it from the instanceIds."""
        return None

    def original(self, kind: str) -> Optional[bytes]:
        """The encoded file of ``kind`` when its pixels are exactly this frame's (so a writer
        may copy it instead of encoding); None otherwise."""
        return None

    def where(self) -> Optional[str]:
        """The path naming the ground truth in messages (None: the frame's id stands in)."""
        return None

    def polygons(self) -> Tuple[Optional[bytes], Optional[str]]:
        """``(encoded polygons file, None)``; ``(None, reason)`` when the frame's polygons
        cannot follow what was done to its masks; ``(None, None)`` without polygons."""
        return None, None

    @property
    def gt_kind(self) -> Optional[str]:
        """The kind of the file ``instance_ids`` decodes (None when it decodes no file)."""
        return None

    def locations(self) -> Dict[str, Tuple[Any, str]]:
        """``{kind: (filesystem, path)}`` of the encoded files (empty for arrays)."""
        return {}

    def read_bytes(self, kind: str) -> bytes:
        """The encoded bytes of one of the source's files."""
        raise DatasetNotFoundError(None, f"no {kind} file")

    def path(self, kind: str) -> str:
        raise DatasetNotFoundError(None, f"no {kind} file")

    def size(self) -> Optional[Tuple[int, int]]:
        """``(height, width)`` without decoding, where the source can tell."""
        return None

    def given_instances(self) -> Optional[List[Instance]]:
        """The instances as they were made in memory (each its own mask and score, overlaps
        kept), None for pixels read from files."""
        return None

    def scores(self) -> Dict[int, float]:
        """The confidence of each ``instanceIds`` value that has one (a prediction's
        ``Instance.score``); empty when none has. By default those of :meth:`given_instances`,
        at the values they are painted with (:func:`painted_values`; two instances painted
        with one value are one segment: the one painted last, on top, gives its score)."""
        given = self.given_instances()
        if not given:
            return {}
        return {value: inst.score for inst, value in zip(given, painted_values(given)) if inst.score is not None}

    def fetch_ahead(self, kinds: Iterable[str], pool: Executor) -> None:
        """Start fetching the files of ``kinds`` in ``pool`` (remote filesystems); files
        fetched or being fetched already are not fetched again (a read-ahead asks again as its
        window moves). No-op by default."""

    def watch(self, callback: Optional[Callable[[str], None]]) -> None:
        """Call ``callback(kind)`` whenever a file of this source is read (the prefetcher learns
        which kinds the consumer wants). No-op by default."""

    def release(self) -> None:
        """Drop buffered bytes."""

    def fresh(self) -> "Source":
        """A source of the same pixels sharing no buffers or decoded arrays with this one."""
        return self

    def with_on_error(self, on_error: "OnError") -> "Source":
        """This source with the frames it reads through (a derived source's parent) applying
        ``on_error``; the source itself when it reads through none."""
        return self


class FileSource(Source):
    """Pixels from encoded files: ``{kind: (filesystem, path)}``.

    The default decoding is Cityscapes': the ground truth is the first of ``instanceIds``,
    ``labelTrainIds``, ``labelIds`` the frame has, a gray PNG; the photo is ``image``. Formats
    with other masks subclass this and override :meth:`instance_ids` and ``GT_KINDS``.
    """

    #: File kinds that hold the ground truth, in order of preference: official ids before
    #: train ids (which lose classes), instances before classes.
    GT_KINDS: Tuple[str, ...] = ("instanceIds", "labelIds", "instanceTrainIds", "labelTrainIds")
    #: The class image that may sit beside an instance image (read instead of derived).
    CLASS_KIND = {"instanceIds": "labelIds", "instanceTrainIds": "labelTrainIds"}

    def __init__(self, files: Optional[Mapping[str, Tuple[Any, str]]] = None):
        self._files: Dict[str, Tuple[Any, str]] = dict(files or {})
        self._bytes: Dict[str, bytes] = {}
        self._pending: Dict[str, "Future[Any]"] = {}
        self._watch: Optional[Callable[[str], None]] = None

    # -- files ----------------------------------------------------------------------------
    def files(self) -> Dict[str, str]:
        return {k: p for k, (_, p) in self._files.items()}

    def locations(self) -> Dict[str, Tuple[Any, str]]:
        return dict(self._files)

    def has(self, kind: str) -> bool:
        return kind in self._files

    def path(self, kind: str) -> str:
        try:
            return self._files[kind][1]
        except KeyError:
            raise DatasetNotFoundError(None, f"no {kind} file") from None

    @property
    def gt_kind(self) -> Optional[str]:
        """The kind of the file holding the ground truth, None without one."""
        return next((k for k in self.GT_KINDS if k in self._files), None)

    def has_image(self) -> bool:
        return "image" in self._files

    def has_annotations(self) -> bool:
        return self.gt_kind is not None

    def where(self) -> Optional[str]:
        kind = self.gt_kind
        return self._shown(kind) if kind else None

    def _shown(self, kind: str) -> str:
        """How messages name the file of ``kind`` (inside an archive: the archive, then the member)."""
        fs, path = self._files[kind]
        return display_path(fs, path)

    def image_ext(self) -> Optional[str]:
        if "image" not in self._files:
            return None
        path = self._files["image"][1]
        dot = path.rfind(".")
        return path[dot:].lower() if dot > path.rfind("/") else None

    def read_bytes(self, kind: str) -> bytes:
        data = self._bytes.get(kind)
        if data is not None:
            return data
        if kind not in self._files:
            raise DatasetNotFoundError(None, f"no {kind} file")
        if self._watch is not None:
            self._watch(kind)
        fut = self._pending.pop(kind, None)
        data = self._fetched(kind, fut) if fut is not None else None
        if data is None:
            data = self._read(kind)
        # Kept while the frame is held: writers copy encoded files (the photo, and the ground
        # truth when labels are unchanged) without reading them twice.
        self._bytes[kind] = data
        return data

    def _fetched(self, kind: str, fut: "Future[Any]") -> Optional[bytes]:
        """A file's bytes from what :meth:`fetch_ahead` got (None: read it again, and report
        from there)."""
        try:
            got = fut.result().get(self._files[kind][1])
        except Exception:  # noqa: BLE001 - a failed prefetch is read again, and reported from there
            return None
        return got if isinstance(got, bytes) else None

    def _read(self, kind: str) -> bytes:
        """A file's bytes, read now."""
        fs, path = self._files[kind]
        return read_file(fs, path)

    # -- pixels ---------------------------------------------------------------------------
    def image_bytes(self) -> Optional[bytes]:
        return self.read_bytes("image") if "image" in self._files else None

    def image(self) -> Optional[np.ndarray]:
        if "image" not in self._files:
            return None
        return png.decode_photo(self.read_bytes("image"), self._shown("image"))

    def instance_ids(self) -> Optional[np.ndarray]:
        kind = self.gt_kind
        if kind is None:
            return None
        return png.decode_gray(self.read_bytes(kind), self._shown(kind))

    def label_ids(self) -> Optional[np.ndarray]:
        kind = self.CLASS_KIND.get(self.gt_kind or "")
        if kind is not None and kind in self._files:
            return png.decode_gray(self.read_bytes(kind), self._shown(kind))
        return None

    def original(self, kind: str) -> Optional[bytes]:
        return self.read_bytes(kind) if kind in self._files else None

    def polygons(self) -> Tuple[Optional[bytes], Optional[str]]:
        return (self.read_bytes("polygons") if "polygons" in self._files else None), None

    def size(self) -> Optional[Tuple[int, int]]:
        for kind in self.GT_KINDS + ("image",):
            if kind not in self._files:
                continue
            fs, path = self._files[kind]
            data = self._bytes.get(kind)
            if data is None:
                data = read_range(fs, path, 0, 64) if path.lower().endswith(".png") else self.read_bytes(kind)
            w, h = png.image_size(data, path)
            return h, w
        return None

    # -- prefetch -------------------------------------------------------------------------
    def fetch_ahead(self, kinds: Iterable[str], pool: Executor) -> None:
        todo = [k for k in kinds if k in self._files and k not in self._pending and k not in self._bytes]
        by_fs: Dict[int, Tuple[Any, List[str]]] = {}
        for k in todo:
            fs, _ = self._files[k]
            by_fs.setdefault(id(fs), (fs, []))[1].append(k)
        for fs, ks in by_fs.values():
            fut = pool.submit(fetch_many, fs, [self._files[k][1] for k in ks])
            for k in ks:
                self._pending[k] = fut

    def watch(self, callback: Optional[Callable[[str], None]]) -> None:
        self._watch = callback

    def release(self) -> None:
        self._bytes.clear()
        self._pending.clear()

    def fresh(self) -> "FileSource":
        return copy.copy(self)

    def __getstate__(self):
        # Only where the files are crosses a process boundary (or a copy): no bytes, futures or
        # observers.
        return {"_files": self._files}

    def __setstate__(self, state) -> None:
        FileSource.__init__(self, state["_files"])


class MaskSource(FileSource):
    """The files of a format whose masks decode with the dataset's labels (colour-coded masks:
    VOC, CamVid): the main mask (``GT_KINDS[0]``) and, when the frame has one, a second file
    (``EXTRA_KIND``) go to :meth:`decode`. Such files never equal a Cityscapes file, so nothing
    of them is copied as an original."""

    EXTRA_KIND = ""
    #: ``decode(data, path, extra_data, extra_path, labels) -> instanceIds``, the format's decoder.
    DECODE: Callable[[bytes, str, Optional[bytes], Optional[str], LabelMap], np.ndarray]

    def __init__(self, files: Optional[Mapping[str, Tuple[Any, str]]], labels: LabelMap):
        super().__init__(files)
        self.labels = labels

    def decode(self, data: bytes, path: str, extra: Optional[bytes], extra_path: Optional[str]) -> np.ndarray:
        """The instanceIds array from the main mask and the optional second file."""
        return type(self).DECODE(data, path, extra, extra_path, self.labels)

    def instance_ids(self) -> Optional[np.ndarray]:
        kind = self.gt_kind
        if kind is None:
            return None
        extra = self.EXTRA_KIND if self.EXTRA_KIND and self.has(self.EXTRA_KIND) else None
        return self.decode(self.read_bytes(kind), self.path(kind), self.read_bytes(extra) if extra else None,
                           self.path(extra) if extra else None)

    def label_ids(self) -> Optional[np.ndarray]:
        return None

    def original(self, kind: str) -> Optional[bytes]:
        return None

    def __getstate__(self):
        return {"_files": self._files, "labels": self.labels}

    def __setstate__(self, state) -> None:
        MaskSource.__init__(self, state["_files"], state["labels"])


def painted_values(instances: Sequence[Instance]) -> List[int]:
    """The ``instanceIds`` value each instance is painted with: numbered instances keep their
    number; an unnumbered, non-crowd instance takes the lowest number its label does not use;
    crowd instances are the plain label id."""
    used: Dict[int, set] = {}
    for inst in instances:
        if not inst.is_crowd and inst.id is not None:
            used.setdefault(inst.label_id, set()).add(inst.id)
    values = []
    for inst in instances:
        value = inst.value
        if not inst.is_crowd and inst.id is None:
            taken = used.setdefault(inst.label_id, set())
            num = next(n for n in range(INSTANCE_DIVISOR) if n not in taken)
            taken.add(num)
            value = inst.label_id * INSTANCE_DIVISOR + num
        values.append(value)
    return values
