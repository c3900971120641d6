"""A frame, and the sources built on frames.

A :class:`Frame` is an id, a split, a label map and a :class:`~cityscapes_io.sources.Source`.
The source says where the pixels come from: files (:class:`~cityscapes_io.sources.FileSource`,
and one subclass per format that decodes its own masks, in :mod:`cityscapes_io.sources`), arrays
built in memory (:class:`ArraySource`), or another frame passed through a lookup table
(:class:`DerivedSource`). The frame decodes through its source at most once while
the caller holds it; :meth:`Frame.instances` is always computed from the one ``instanceIds``
array, so every writer's files agree with each other and with ``frame.instances()`` however the
frame was made.

A frame read from files holds file references and no pixels; it can be pickled (a process pool
or Dask can ship it) and opens nothing until asked.
"""
from __future__ import annotations

import dataclasses
from concurrent.futures import Executor
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import png
from .errors import DatasetNotFoundError, OnError, UnknownLabelError, apply_policy, check_policy
from .instances import Instance, class_of_array, segment_stats, split_value, train_value_lut
from .labels import LabelMap
from .names import GT_DIR, parse_frame_id
from .polygons import Polygons, parse_polygons, rasterize, rename_polygons
from .parts import Camera, Person, parse_image_key
from .release import DEFAULT_IMAGE_KEY, FrameParts, SequenceFrame, camera_depth, part_relpath
from .sources import FileSource, Source, painted_values
from .storage import display_path

__all__ = ["Frame", "ArraySource", "DerivedSource"]

_CITYSCAPES = LabelMap.cityscapes()


# -- sources built on frames --------------------------------------------------------------------
class ArraySource(Source):
    """Pixels built in memory: a photo and :class:`~cityscapes_io.Instance` records made with
    :meth:`Instance.from_mask`, painted in order (a later instance covers an earlier one)."""

    def __init__(self, image: Optional[np.ndarray], instances: Sequence[Instance]):
        self._image = None if image is None else np.asarray(image)
        self._instances = list(instances)
        shapes = {tuple(i.shape) for i in self._instances}
        if self._image is not None:
            shapes.add(tuple(self._image.shape[:2]))
        if len(shapes) > 1:
            raise ValueError(f"image and masks differ in size: {sorted(shapes)}")
        self._shape: Optional[Tuple[int, int]] = shapes.pop() if shapes else None  # type: ignore[assignment]

    def has_image(self) -> bool:
        return self._image is not None

    def has_annotations(self) -> bool:
        return bool(self._instances)

    def image(self) -> Optional[np.ndarray]:
        if self._image is None:
            return None
        img = self._image
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        return img[:, :, :3].astype(np.uint8, copy=False)

    def image_bytes(self) -> Optional[bytes]:
        img = self.image()
        return None if img is None else png.encode_png(img)

    def instance_ids(self) -> Optional[np.ndarray]:
        if not self._instances:
            return None
        return compose_instances(self._instances, self._shape)  # type: ignore[arg-type]

    def size(self) -> Optional[Tuple[int, int]]:
        return self._shape

    def given_instances(self) -> Optional[List[Instance]]:
        return list(self._instances)


def compose_instances(instances: Sequence[Instance], shape: Tuple[int, int]) -> np.ndarray:
    """Paint instances into an instanceIds array, in order, with :func:`painted_values`."""
    out = np.zeros(shape, dtype=np.uint16)
    for inst, value in zip(instances, painted_values(instances)):
        x, y, w, h = inst.bbox
        out[y : y + h, x : x + w][inst.mask_crop] = value
    return out


class DerivedSource(Source):
    """Another frame's pixels with its instanceIds passed through a lookup table (label remaps,
    train ids, merged label maps). The photo is the parent's (its bytes are copied, not
    re-encoded); the ground truth is computed on demand."""

    def __init__(self, parent: "Frame", lut: Callable[[Sequence[int]], np.ndarray],
                 renames: Optional[Mapping[str, str]] = None):
        self.parent = parent
        self._lut = lut
        #: ``{parent label name: label name}`` when the lookup table only renames labels (the
        #: polygons can follow, renamed); None when it merges or drops some.
        self.renames = None if renames is None else dict(renames)

    def _kept(self, kind: str) -> bool:
        return kind == "image" or (kind == "polygons" and self.renames is not None)

    def files(self) -> Dict[str, str]:
        return {k: p for k, p in self.parent.files.items() if self._kept(k)}

    def locations(self) -> Dict[str, Tuple[Any, str]]:
        return {k: v for k, v in self.parent.source.locations().items() if self._kept(k)}

    def polygons(self) -> Tuple[Optional[bytes], Optional[str]]:
        data, lost = self.parent.source.polygons()
        if data is None:
            return None, lost
        if self.renames is None:
            return None, "labels were merged or dropped: the polygons cannot follow the masks"
        if all(k == v for k, v in self.renames.items()):
            return data, None
        try:
            return rename_polygons(data, self.renames, self.parent.where), None
        except KeyError as exc:
            return None, f"polygon label {exc.args[0]!r} is not in the label map: the polygons cannot be renamed"

    def has_image(self) -> bool:
        return self.parent.has_image

    def has_annotations(self) -> bool:
        return self.parent.has_annotations

    def image_ext(self) -> Optional[str]:
        return self.parent.image_ext

    def image_bytes(self) -> Optional[bytes]:
        return self.parent.image_bytes()

    def image(self) -> Optional[np.ndarray]:
        return self.parent.image()

    def instance_ids(self) -> Optional[np.ndarray]:
        arr = self.parent.instance_ids()
        if arr is None:
            return None
        return self._lut([i.value for i in self.parent.instances()])[arr]

    def where(self) -> Optional[str]:
        return self.parent.where

    def size(self) -> Optional[Tuple[int, int]]:
        return self.parent.size()

    def given_instances(self) -> Optional[List[Instance]]:
        given = self.parent.source.given_instances()
        if given is None:
            return None
        lut = self._lut([i.value for i in given])
        out = []
        for inst in given:
            value = int(lut[inst.value])
            label_id, number = split_value(value)
            # A numbered instance mapped to a plain value (train id 255, a class without
            # instances) becomes a region; an unnumbered one stays unnumbered.
            out.append(dataclasses.replace(inst, value=value, label_id=label_id, label=None, id=number,
                                           is_crowd=inst.is_crowd or (number is None and inst.id is not None)))
        return out

    def scores(self) -> Dict[int, float]:
        given = self.parent.source.scores()
        if not given:
            return {}
        lut = self._lut(list(given))
        out: Dict[int, float] = {}
        for value, score in given.items():  # values merged into one: the best score
            new = int(lut[value])
            out[new] = max(score, out.get(new, score))
        return out

    def fetch_ahead(self, kinds: Iterable[str], pool: Executor) -> None:
        self.parent.source.fetch_ahead(kinds, pool)

    def watch(self, callback: Optional[Callable[[str], None]]) -> None:
        self.parent.source.watch(callback)

    def release(self) -> None:
        self.parent.release()

    def fresh(self) -> "DerivedSource":
        return DerivedSource(self.parent.fresh(), self._lut, self.renames)

    def with_on_error(self, on_error: "OnError") -> "DerivedSource":
        return DerivedSource(self.parent.with_on_error(on_error), self._lut, self.renames)


# -- the frame ----------------------------------------------------------------------------------
def _frame_id(value: Any) -> str:
    """A frame id as given to :meth:`Frame.from_arrays`: a string, or an integer made its
    decimal string; ValueError for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    raise ValueError(f"frame id must be a string (or an integer), got {type(value).__name__} {value!r}")


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
    source : Source
        Where the pixels come from.
    annotations : str
        The annotation tree the ground truth belongs to: ``"gtFine"`` or ``"gtCoarse"``.
    """

    def __init__(self, id: str, split: str, labels: Optional[LabelMap],
                 source: Union[Source, Mapping[str, Tuple[Any, str]], None] = None, *, on_error: OnError = "raise",
                 annotations: str = GT_DIR, parts: Optional["FrameParts"] = None):
        name = parse_frame_id(id)
        self.id = id
        self.split = split
        self.annotations = annotations
        self.city, self.seq, self.frame = name.city, name.seq, name.frame
        #: Whether the label map was given (False for in-memory frames that take their dataset's).
        self.labels_given = labels is not None
        self.labels: LabelMap = labels if labels is not None else _CITYSCAPES
        self.source: Source = source if isinstance(source, Source) else FileSource(source)
        self.on_error = check_policy(on_error)
        #: Where the frame's other parts of the release are (None: the frame has none, as one
        #: built in memory). See :mod:`cityscapes_io.release`.
        self.parts = parts
        self._cache: Dict[str, Any] = {}

    @classmethod
    def from_arrays(cls, *, id: Union[str, int], split: str = "default", image: Optional[np.ndarray] = None,
                    instances: Sequence[Instance] = (), labels: Optional[LabelMap] = None) -> "Frame":
        """A frame built in memory, written by the same writers as frames read from disk.

        Parameters
        ----------
        id : str or int
            Frame id (``"aachen/aachen_000000_000019"``, ``"a/b/1"``, ...); an integer (as in
            Datumaro's examples) becomes its decimal string (``1`` is ``"1"``).
        split : str
        image : ndarray, optional
            ``H×W×3`` (or ``H×W``) uint8 photo.
        instances : list of Instance
            Made with :meth:`Instance.from_mask`, all of the frame's size; painted in order. An
            instance without a number (and not a crowd) gets the lowest number free for its
            label.
        labels : LabelMap, optional
            What the instances' label ids mean. When omitted the frame has none of its own
            (``labels_given`` is False): it takes its dataset's in :meth:`Dataset.from_iterable`,
            and a writer's (``labels=``) when written; read alone, its ids are the official ones.
        """
        id = _frame_id(id)
        try:
            source = ArraySource(image, instances)
        except ValueError as exc:
            raise ValueError(f"frame {id!r}: {exc}") from None
        return cls(id, split, labels, source)

    def renamed(self, *, split: Optional[str] = None, id: Optional[str] = None,
                labels: Optional[LabelMap] = None) -> "Frame":
        """The same frame (same source, nothing decoded) under another split, id or label map."""
        out = Frame(self.id if id is None else id, self.split if split is None else split,
                    self.labels if labels is None else labels, self.source, on_error=self.on_error,
                    annotations=self.annotations, parts=self.parts)
        out.labels_given = self.labels_given or labels is not None
        return out

    def fresh(self) -> "Frame":
        """The same frame with nothing decoded or buffered, sharing no caches with this one."""
        out = Frame(self.id, self.split, self.labels, self.source.fresh(), on_error=self.on_error,
                    annotations=self.annotations, parts=None if self.parts is None else self.parts.fresh())
        out.labels_given = self.labels_given
        return out

    def with_on_error(self, on_error: OnError) -> "Frame":
        """The same frame (nothing decoded) with another ``on_error`` policy, for the frames it
        is derived from too."""
        out = Frame(self.id, self.split, self.labels, self.source.with_on_error(on_error), on_error=on_error,
                    annotations=self.annotations, parts=self.parts)
        out.labels_given = self.labels_given
        return out

    def derived(self, labels: LabelMap, lut: Callable[[Sequence[int]], np.ndarray],
                renames: Optional[Mapping[str, str]] = None) -> "Frame":
        """This frame with its instanceIds mapped through ``lut(values)`` onto ``labels``.
        ``renames`` (``{old name: new name}``) says that the table only renames labels, so the
        frame's polygons can follow; without it they are dropped."""
        return Frame(self.id, self.split, labels, DerivedSource(self, lut, renames), on_error=self.on_error,
                     annotations=self.annotations, parts=self.parts)

    # -- files --------------------------------------------------------------------------------
    @property
    def files(self) -> Dict[str, str]:
        """``{kind: path}`` of the frame's encoded files (kinds ``image``, ``instanceIds``,
        ``labelIds``, ``labelTrainIds``, ``color``, ``polygons``; other formats' own kinds)."""
        return self.source.files()

    def shown(self, kind: str) -> Optional[str]:
        """How messages name the frame's file of ``kind`` (inside an archive: the archive's path,
        then the member's); None without such a file."""
        location = self.source.locations().get(kind)
        return display_path(*location) if location is not None else self.files.get(kind)

    def has(self, kind: str) -> bool:
        """Whether the frame has a file of this kind (``"image"``: a photo of any origin)."""
        return self.has_image if kind == "image" else kind in self.source.files()

    @property
    def has_image(self) -> bool:
        return self.source.has_image()

    @property
    def has_annotations(self) -> bool:
        return self.source.has_annotations()

    @property
    def image_ext(self) -> Optional[str]:
        """Extension of the photo (``.png``), or None."""
        return self.source.image_ext()

    @property
    def built_in_memory(self) -> bool:
        """Whether the frame's pixels were given as arrays (:meth:`from_arrays`), not read."""
        return isinstance(self.source, ArraySource)

    @property
    def where(self) -> str:
        """The file naming the frame's ground truth in messages (its split and id otherwise)."""
        return self.source.where() or f"{self.split}/{self.id}"

    def path(self, kind: str) -> str:
        try:
            return self.source.path(kind)
        except DatasetNotFoundError:
            raise DatasetNotFoundError(f"{self.split}/{self.id}", f"frame has no {kind} file") from None

    def read_bytes(self, kind: str) -> bytes:
        """The encoded bytes of one of the frame's files (from the prefetch when there is one)."""
        try:
            return self.source.read_bytes(kind)
        except DatasetNotFoundError as exc:
            if exc.path is None:
                raise DatasetNotFoundError(f"{self.split}/{self.id}", f"frame has no {kind} file") from None
            raise

    def original(self, kind: str) -> Optional[bytes]:
        """The encoded file of ``kind`` when its pixels are exactly the frame's (a writer may
        copy it), else None."""
        return self.source.original(kind)

    # -- pixels -------------------------------------------------------------------------------
    def image_bytes(self) -> Optional[bytes]:
        """The encoded photo, for copying without re-encoding; None when there is no photo."""
        return self.source.image_bytes()

    def image(self, key: Optional[str] = None) -> Optional[np.ndarray]:
        """The photo as an ``H×W×3`` array (uint8; uint16 for a 16-bit photo), or None when the
        frame has no such photo.

        ``key`` chooses another photo of the release than the frame's own (see
        :meth:`image_keys`): ``"rightImg8bit"``, ``"leftImg16bit"``,
        ``"leftImg8bit_foggy@beta_0.02"``, ... The frame's own is the one ``open(...,
        image=KEY)`` chose (``leftImg8bit`` by default)."""
        if key is None or key == self.image_key:
            return self._cached("image", self.source.image)
        if self.parts is None:
            parse_image_key(key)  # (a bad key is a ValueError everywhere)
            return None
        parts = self.parts
        return self._cached("image@" + key, lambda: parts.image(key))

    @property
    def image_key(self) -> str:
        """The photo key of the frame's own photo (``leftImg8bit`` unless ``open(...,
        image=KEY)`` chose another)."""
        return self.parts.image_key if self.parts is not None else DEFAULT_IMAGE_KEY

    def image_keys(self) -> List[str]:
        """The photo keys the frame has, sorted: its own photo's (when it has one) and those of
        the release's photo folders the dataset's roots hold (``rightImg8bit``,
        ``leftImg8bit_foggy@beta_0.02``, ...; lists each such folder's city once)."""
        keys = set(self.parts.image_keys()) if self.parts is not None else set()
        if self.has_image:
            keys.add(self.image_key)
        elif self.parts is not None:
            keys.discard(self.image_key)  # (not read as the frame's photo: it is not there)
        return sorted(keys)

    # -- the release's other parts (None when the frame has no such file) ----------------------
    def _part(self, name: str, read: Callable[["FrameParts"], Any]) -> Any:
        parts = self.parts
        if parts is None:
            return None
        return self._cached("part:" + name, lambda: read(parts))

    def disparity(self) -> Optional[np.ndarray]:
        """The stereo disparity in pixels (``H×W`` float32): ``(p - 1) / 256`` of the 16-bit
        ``disparity/…/<id>_disparity.png``, NaN where ``p == 0`` (no measurement); None
        without the file."""
        return self._part("disparity", lambda p: p.disparity())

    def camera(self) -> Optional[Camera]:
        """The calibration of ``camera/…/<id>_camera.json`` (:class:`~cityscapes_io.parts.Camera`:
        ``fx``, ``fy``, ``u0``, ``v0``, ``baseline``, ``x``, ``y``, ``z``, ``yaw``, ``pitch``,
        ``roll``; ``intrinsics()``), None without the file."""
        return self._part("camera", lambda p: p.camera())

    def depth(self) -> Optional[np.ndarray]:
        """Depth in metres (``H×W`` float32): ``baseline · fx / disparity`` with the frame's own
        camera, NaN where the disparity is invalid; None without disparity or camera."""
        return self._part("depth", lambda p: camera_depth(self.disparity(), self.camera()))

    def vehicle(self) -> Optional[Dict[str, float]]:
        """``vehicle/…/<id>_vehicle.json`` as a dict (``speed``, ``yawRate``, ``gpsLatitude``,
        ``gpsLongitude``, ``gpsHeading``, ``gpsAltitude``, ``outsideTemperature``), None
        without the file."""
        return self._part("vehicle", lambda p: p.vehicle())

    def timestamp(self) -> Optional[int]:
        """The integer of ``timestamp/…/<id>_timestamp.txt``, None without the file."""
        return self._part("timestamp", lambda p: p.timestamp())

    def persons(self) -> Optional[List[Person]]:
        """CityPersons' boxes (``gtBboxCityPersons/…/<id>_gtBboxCityPersons.json``) as
        :class:`~cityscapes_io.parts.Person` records (``label``, ``bbox`` and ``bbox_vis`` as
        ``(x, y, w, h)``, ``instance_id``), None without the file."""
        return self._part("persons", lambda p: p.persons())

    def boxes3d(self) -> Any:
        """Cityscapes 3D's boxes and sensor (``gtBbox3d/…/<id>_gtBbox3d.json``) as
        :class:`cityscapes_io.boxes3d.Boxes3d`, None without the file."""
        return self._part("boxes3d", lambda p: p.boxes3d())

    def snippet(self, before: int = 19, after: int = 10, step: int = 1) -> List[SequenceFrame]:
        """The frames of the ``_sequence`` folders around this one (``leftImg8bit_sequence``,
        ``vehicle_sequence``, ``timestamp_sequence``, ...): frame numbers from ``before``
        before this frame's to ``after`` after it, every ``step``-th counted from this one,
        which is included. The defaults give the release's 30-frame snippet (numbers 0 to 29
        around 19). Frames no sequence folder has are left out; each is a lazy
        :class:`~cityscapes_io.release.SequenceFrame` (``number``, ``image()``,
        ``timestamp()``, ``vehicle()``)."""
        if self.parts is None:
            return []
        return self.parts.snippet(before, after, step)

    def has_part(self, part: str) -> bool:
        """Whether the frame has a part: ``disparity``, ``camera``, ``vehicle``, ``timestamp``,
        ``gtBboxCityPersons``, ``gtBbox3d``, a photo folder or key, a ``_sequence`` folder."""
        if self.parts is None:
            return False
        return self.parts.has(part)

    def part_files(self, parts: Sequence[str]) -> List[Tuple[str, bytes]]:
        """``(path in a Cityscapes tree, bytes)`` of the frame's files of the selected parts
        (names as :meth:`has_part` takes them, or ``"all"``), to copy byte for byte. Paths use
        the frame's split and id; the frame's own photo is not among them."""
        if self.parts is None:
            return []
        return [(part_relpath(folder, self.split, self.id, name), self.parts.read(loc, folder))
                for folder, name, loc in self.parts.selected_files(parts)]

    def instance_ids(self) -> Optional[np.ndarray]:
        """The raw ``instanceIds`` array (``uint16``, or ``uint8`` for an 8-bit file), or None
        when the frame has no ground truth. Without an instanceIds file, the class image
        (labelTrainIds or labelIds) is returned: every segment is then a whole-class region."""
        return self._cached("instanceIds", self.source.instance_ids)

    def label_ids(self) -> Optional[np.ndarray]:
        """The class index of every pixel (``uint8`` when it fits, else ``uint16``), or None
        when the frame has no ground truth.

        Read from ``_labelIds.png`` when it exists beside the instanceIds, otherwise derived
        from the instanceIds (``v // 1000`` for ``v >= 1000``, ``v`` below)."""

        def decode() -> Optional[np.ndarray]:
            arr = self.source.label_ids()
            if arr is not None:
                return arr
            ids = self.instance_ids()
            return None if ids is None else class_of_array(ids)

        return self._cached("labelIds", decode)

    def train_ids(self) -> Optional[np.ndarray]:
        """The Cityscapes train id of every pixel (``H×W`` uint8; 255 = ignore), by lookup table
        from :meth:`label_ids` (the 19 evaluated classes 0..18), or None without ground truth:
        what ``*_gtFine_labelTrainIds.png`` holds."""

        def decode() -> Optional[np.ndarray]:
            ids = self.label_ids()
            if ids is None:
                return None
            return self.labels.train_id_table(256 if ids.dtype == np.uint8 else 65536)[ids]

        return self._cached("trainIds", decode)

    def instance_train_ids(self) -> Optional[np.ndarray]:
        """``instanceIds`` in train ids (``H×W`` uint16): ``train id * 1000 + instance`` for
        instances, the plain train id for groups and stuff, 255 where the class is ignored;
        what ``*_gtFine_instanceTrainIds.png`` holds. None without ground truth."""

        def decode() -> Optional[np.ndarray]:
            arr = self.instance_ids()
            if arr is None:
                return None
            table = self.labels.train_id_table(65536)
            return train_value_lut([i.value for i in self.instances()], table)[arr]

        return self._cached("instanceTrainIds", decode)

    def polygons(self) -> Optional[Polygons]:
        """The frame's polygons file parsed (:class:`~cityscapes_io.polygons.Polygons`: size and
        objects in file order), or None without one. Nothing frame-sized is allocated; draw it
        with :func:`cityscapes_io.rasterize`."""

        def decode() -> Optional[Polygons]:
            data, _ = self.source.polygons()
            if data is None:
                return None
            return parse_polygons(data, self.shown("polygons") or f"{self.split}/{self.id} polygons", self.labels)

        return self._cached("polygons", decode)

    def rasterize(self, encoding: str = "ids") -> Optional[np.ndarray]:
        """The frame's polygons drawn by the official rules (:func:`cityscapes_io.rasterize`;
        ``encoding`` one of ``ids``, ``trainIds``, ``color``, ``instanceIds``,
        ``instanceTrainIds``), kept like the other decoded arrays until :meth:`release`; None
        without a polygons file."""
        polygons = self.polygons()
        if polygons is None:
            return None
        return self._cached("polygons:" + encoding, lambda: rasterize(polygons, encoding))

    def instances(self) -> List[Instance]:
        """The frame's segments, one :class:`Instance` each, sorted by raw value.

        Values ``>= 1000`` are instances of label ``v // 1000`` numbered ``v % 1000``; values
        below are whole-class regions (``is_crowd`` True, ``id`` None). A value whose label is
        not in the label map raises :class:`UnknownLabelError` (or is dropped and reported under
        ``on_error="skip"`` or a callable). Areas and boxes come from one pass over the array;
        no mask is built until asked for. A segment's ``score`` is the confidence its source
        keeps for its value (an instance built in memory with one, a tar shard that stored
        it), None otherwise.
        """
        return self._cached("instances", self._list_instances)

    def original_instances(self) -> Optional[List[Instance]]:
        """The instances as they were made, for a frame built in memory
        (:meth:`from_arrays`, and views of it such as ``to_train_ids()``): each with its own
        full mask and ``score``, overlapping masks kept whole, in the order given. None for a
        frame read from files, whose :meth:`instances` are the segments of its instanceIds.
        Predictions (``evaluate``, ``export_predictions``) use them."""
        return self.source.given_instances()

    def _list_instances(self) -> List[Instance]:
        arr = self.instance_ids()
        if arr is None:
            return []
        values, areas, x0, y0, x1, y1 = segment_stats(arr)
        scores = self.source.scores()
        out = []
        for v, a, bx0, by0, bx1, by1 in zip(values.tolist(), areas.tolist(), x0.tolist(), y0.tolist(),
                                             x1.tolist(), y1.tolist()):
            label_id, num = split_value(v)
            label = self.labels.get(label_id)
            if label is None:
                apply_policy(self.on_error, UnknownLabelError(
                    self.where, f"pixel value {v} refers to label id {label_id}, which is not in the label map "
                                f"({self.labels.source}, {len(self.labels)} labels)"))
                continue
            out.append(Instance(v, label_id, label, num, num is None, a, (bx0, by0, bx1 - bx0, by1 - by0), arr, v,
                                (0, 0), arr.shape, scores.get(v)))
        return out

    def size(self) -> Optional[Tuple[int, int]]:
        """``(height, width)`` read from the headers of the frame's files, without decoding."""
        for key in ("instanceIds", "image"):
            arr = self._cache.get(key)
            if arr is not None:
                return int(arr.shape[0]), int(arr.shape[1])
        return self.source.size()

    def _cached(self, key: str, decode: Callable[[], Any]) -> Any:
        # (the value, not a second look-up: release() may clear the cache from another thread)
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = decode()
        return value

    # -- lifetime -----------------------------------------------------------------------------
    def release(self) -> None:
        """Drop every decoded array and buffered file of this frame."""
        self._cache.clear()
        self.source.release()
        if self.parts is not None:
            self.parts.release()

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state

    def __repr__(self) -> str:
        kinds = sorted(self.files) or (["in memory"] if isinstance(self.source, ArraySource) else [])
        return f"Frame({self.split}/{self.id}, files={kinds})"
