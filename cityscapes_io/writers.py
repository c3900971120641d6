"""What every writer shares: the ``write(frame)`` / ``close()`` contract, and mapping the labels of
incoming frames onto the output label map.

A writer's output labels are resolved when it is constructed (from ``labels`` and the
``label_map`` option). ``encode(frame)`` turns a frame into its files and its index entry and
changes nothing in the writer; ``write(frame)`` encodes, puts the files into the destination and
records the entry; ``close()`` writes the index files (subset lists, label maps) as a set. A
writer keeps no pixels of a frame once ``write()`` returns: only its index entry.

A format's writer subclasses :class:`Writer` and implements the hooks ``_frame_files``,
``_planned_files`` and ``_index_files`` (``_setup`` and ``_index_info`` when it needs them).
Parallel, sharded and resumed conversion (:mod:`cityscapes_io.pipeline`, and its Dask strategy in
:mod:`cityscapes_io.dask`) drive a writer through its private methods ``_put``, ``_record``,
``_entry`` and ``_abort``; nothing else uses them. They hand out *units*, the frames written
together (``_units``, ``_unit_files``, ``_unit_entries``, ``_put_unit``): each frame alone
by default; a format whose files hold several frames (the tar shards of ``"wds"``) groups them.
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

import numpy as np

from . import png
from .errors import CityscapesIOError, InvalidFileError, LabelMapError, StorageError
from .frame import Frame
from .instances import class_of
from .labels import LabelMap
from .mapping import LabelMapping, mapping_between, resolve_label_map
from .names import safe_relpath
from .output import Chunks, Data, Sink, open_sink
from .storage import Root

__all__ = ["Writer", "Entry", "Encoded", "Segments", "Files", "Spool", "json_lists", "temporary_errors"]


#: A frame's (or the index's) files: relative path and content (bytes, or
#: :class:`~cityscapes_io.output.Chunks` for a large index file).
Files = Sequence[Tuple[str, Data]]


@dataclass(frozen=True)
class Entry:
    """What the index files need to know of one written frame."""

    split: str
    id: str
    info: tuple = ()
    dropped: Tuple[str, ...] = ()
    warnings: Tuple[str, ...] = ()
    #: Why the frame's polygons were not written (the masks changed in a way they cannot follow).
    polygons_lost: str = ""
    #: The frame's instances had scores (predictions' confidences) that the format cannot keep.
    scores_lost: bool = False


@dataclass(frozen=True)
class Encoded:
    """A frame encoded: its files (relative paths and bytes) and its index entry."""

    files: Files
    entry: Entry


@dataclass(frozen=True)
class Segments:
    """A frame's instanceIds in output label ids, their distinct values (sorted), the names of
    the frame's labels that the output map lacks (written as background), whether the ids are
    the frame's own unchanged, and whether the labels also keep their colours."""

    ids: np.ndarray
    values: List[int]
    dropped: Tuple[str, ...]
    unchanged: bool
    same_colors: bool
    mapping: Optional[LabelMapping] = None


@contextlib.contextmanager
def temporary_errors(doing: str) -> Iterator[None]:
    """Inside the block, the failure of a temporary file (a full or missing temporary folder)
    becomes a :class:`~cityscapes_io.errors.StorageError` naming the temporary folder, which
    is where room is missing, not the destination."""
    try:
        yield
    except CityscapesIOError:
        raise
    except OSError as exc:
        folder = tempfile.gettempdir()
        raise StorageError(folder, f"{doing} in the temporary folder: {exc.strerror or exc} (set TMPDIR to a "
                                   f"folder with room)") from exc


class Spool:
    """Index records kept out of memory: per key (a split, or a split and a section), JSON
    records appended in order to a temporary file, read back once when the index file is
    written (as :class:`~cityscapes_io.output.Chunks`), so a writer's memory does not grow with
    the number of frames. Records go in as Python objects and come out as JSON text."""

    def __init__(self) -> None:
        self._files: Dict[object, IO[bytes]] = {}
        self._counts: Dict[object, int] = {}

    def add(self, key, record) -> int:
        """Append ``record`` (JSON-serialisable) under ``key``; returns its index under it (0, 1, ...)."""
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"
        with temporary_errors("cannot keep the index records"):
            f = self._files.get(key)
            if f is None:
                f = self._files[key] = tempfile.TemporaryFile()
            f.write(line)
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return n

    def keys(self) -> List[object]:
        return list(self._files)

    def groups(self) -> List[Any]:
        """The distinct first parts of the keys that are tuples (the splits of ``(split,
        section)`` keys), in the order they came."""
        return list(dict.fromkeys(k[0] for k in self._files if isinstance(k, tuple)))

    def count(self, key) -> int:
        return self._counts.get(key, 0)

    def records(self, key) -> Iterable[dict]:
        """The records of ``key``, in order: an iterable read from the start each time it is
        iterated (a sink that writes a file twice gets the same records twice)."""
        spool = self

        class _Records:
            def __iter__(self) -> Iterator[dict]:
                return spool._read(key)

        return _Records()

    def _read(self, key) -> Iterator[dict]:
        f = self._files.get(key)
        if f is None:
            return
        with temporary_errors("cannot keep the index records"):
            f.seek(0)  # writes out what is buffered
            lines = iter(f)
        while True:
            with temporary_errors("cannot read the index records back"):
                line = next(lines, None)
            if line is None:
                break
            yield json.loads(line)
        f.seek(0, 2)  # appending may go on

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):  # what is still buffered is not needed any more
                f.close()
        self._files.clear()
        self._counts.clear()


def json_lists(head: Sequence[Tuple[str, Iterable]], indent: Optional[int] = None) -> Chunks:
    """A JSON object whose values are lists, streamed: ``{"<key>": [records...], ...}`` in the
    order given (``records`` iterated when the file is written, e.g. :meth:`Spool.records`).
    With ``indent``, laid out as ``json.dump(..., indent=indent, sort_keys=True)`` lays out an
    object of lists of objects (give the keys sorted and the records' keys are sorted)."""
    def dumps(record, depth: int) -> bytes:
        if indent is None:
            return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")
        text = json.dumps(record, sort_keys=True, indent=indent)
        pad = " " * (indent * depth)
        return "\n".join(pad + line for line in text.split("\n")).encode("utf-8")

    def make() -> Iterator[bytes]:
        nl = b"" if indent is None else b"\n"
        pad1 = b"" if indent is None else b" " * indent
        sep_kv = b":" if indent is None else b": "
        yield b"{" + nl
        for k, (key, records) in enumerate(head):
            yield (b"," + nl if k else b"") + pad1 + json.dumps(key).encode("utf-8") + sep_kv
            first = True
            for record in records:
                yield (b"[" + nl if first else b"," + nl) + dumps(record, 2)
                first = False
            yield b"[]" if first else nl + pad1 + b"]"
        yield nl + b"}"

    return Chunks(make)


def check_names(frame: Frame) -> None:
    """Refuse frame ids and split names that would write outside the destination."""
    for part, what in ((frame.id, "frame id"), (frame.split or "default", "split name")):
        try:
            safe_relpath(part)
        except ValueError as exc:
            raise InvalidFileError(part, f"refused to write outside the destination: bad {what}: {exc}") from None
    if "/" in (frame.split or "default"):
        raise InvalidFileError(frame.split, "refused: a split name cannot contain '/'")


class Writer:
    """Base class of the format writers: a context manager with ``write(frame)``.

    Parameters
    ----------
    url : str
        Destination root (path or fsspec URL; ``.zip`` writes an archive).
    storage_options : dict, optional
    labels : LabelMap, optional
        Labels of the frames to come. Without it (and with ``label_map="source"``) the first
        frame written gives them. A frame built without labels of its own
        (:meth:`Frame.from_arrays` without ``labels=``) takes these (without them, the output
        labels); a frame built in memory with other labels given explicitly is refused
        (:class:`~cityscapes_io.errors.LabelMapError` naming the frame). Frames read from files
        keep the labels their reader gave them and are mapped onto the output labels by name.
    label_map : str, dict or LabelMap
        Output labels: ``"source"`` (default), ``"cityscapes"``, a label file, a dict.
    save_media : bool
        Also write the photos.
    image_ext : str, optional
        Extension of written photos (``.jpg``); default: keep the original, png when unknown.
    overwrite : bool
        Replace what the destination holds. Without it, a destination that is not empty is
        refused (nothing is merged into an existing dataset silently).
    """

    format = ""
    #: Set by the pipeline when the run stops at the first error (``on_error="raise"``): a
    #: unit of several frames then stops there and is not written.
    _stop_on_error = False
    #: The report's note on a frame written without ground truth.
    NO_GROUND_TRUTH = "no ground truth: written without masks"
    #: Whether the format keeps :attr:`Instance.score` (the others say at the end how many
    #: frames' scores were not written).
    KEEPS_SCORES = False

    def __init__(self, url, *, storage_options=None, labels: Optional[LabelMap] = None,
                 label_map: Union[str, dict, LabelMap, None] = "source", save_media: bool = False,
                 image_ext: Optional[str] = None, overwrite: bool = False, _existing: Optional[str] = None,
                 _sources: Sequence[Root] = (), **options):
        if options:
            raise TypeError(f"{type(self).__name__}: unknown option(s) {', '.join(sorted(options))}")
        if image_ext and not image_ext.startswith("."):
            image_ext = "." + image_ext
        if image_ext and image_ext.lower() not in png.IMAGE_EXTS:
            raise ValueError(f"image_ext {image_ext!r} not supported (one of {', '.join(png.IMAGE_EXTS)})")
        #: Index records kept out of memory until close() streams them (the COCO formats'
        #: JSON); closed with the writer.
        self._spool = Spool()
        self.save_media = bool(save_media)
        self.image_ext = image_ext.lower() if image_ext else None
        self._label_map_option = label_map
        self._storage_options = storage_options
        self.labels: Optional[LabelMap] = None
        #: The labels of the frames to come, as given (``labels=``): what frames without labels
        #: of their own take, and what frames built in memory must agree with.
        self._frame_labels: Optional[LabelMap] = labels
        if labels is not None or label_map not in (None, "source"):
            self._use_labels(resolve_label_map(label_map, labels, storage_options))
        self.subsets: "OrderedDict[str, List[str]]" = OrderedDict()
        self._info: Dict[Tuple[str, str], tuple] = {}
        self._dropped: Set[str] = set()
        self._polygons_lost: Dict[str, int] = {}
        self._scores_dropped = 0
        self.written = 0
        self._closed = False
        existing = _existing or ("replace" if overwrite else "refuse")
        self.dest: Sink = open_sink(url, storage_options, existing=existing, sources=_sources)

    # -- labels -----------------------------------------------------------------------------
    def _use_labels(self, labels: Optional[LabelMap]) -> None:
        if labels is None:
            raise ValueError("no output labels")
        self.labels = labels
        self._setup(labels)

    def _setup(self, labels: LabelMap) -> None:
        """Derive what the format needs from the output labels (palettes, colour tables)."""

    def _with_labels(self, frame: Frame) -> Frame:
        """``frame`` with the labels its pixels mean: a frame without labels of its own takes
        the writer's (``labels=``, else the output labels once known); a frame built in memory
        whose labels were given and say otherwise than the writer's ``labels=`` is refused."""
        given = self._frame_labels
        if not frame.labels_given:
            labels = given if given is not None else self.labels
            return frame if labels is None else frame.renamed(labels=labels)
        if (given is not None and frame.labels is not given and frame.labels != given and frame.built_in_memory
                and not mapping_between(frame.labels, given).identity):
            raise LabelMapError(f"{frame.split or 'default'}/{frame.id}",
                                f"the frame was built with labels ({frame.labels.source}, {len(frame.labels)} "
                                f"labels) other than the writer's ({given.source}, {len(given)} labels): give the "
                                f"frame the writer's labels, or none (it then takes the writer's)")
        return frame

    def _output_segments(self, frame: Frame) -> Optional[Segments]:
        """The frame's instanceIds in output label ids, validated: unknown labels raise, or go
        to background under ``on_error="skip"``. The values come from the single pass that
        lists the instances, so no writer searches the array for them again."""
        arr = frame.instance_ids()
        if arr is None:
            return None
        assert self.labels is not None
        insts = frame.instances()
        m = mapping_between(frame.labels, self.labels)
        values = [i.value for i in insts]
        # Every pixel belongs to a known instance unless unknown labels were skipped.
        covered = sum(i.area for i in insts) == arr.size
        if m.identity and covered:
            return Segments(arr, sorted(values), (), True, m.same_colors, m)
        lut = m.lut(values)
        dropped = tuple(sorted({m.missing[class_of(v)] for v in values if class_of(v) in m.missing}))
        out_values = {int(lut[v]) for v in values}
        if not covered:
            out_values.add(m.background)
        return Segments(lut[arr], sorted(out_values), dropped, False, False, m)

    # -- photos -----------------------------------------------------------------------------
    def _photo(self, frame: Frame, shape: Optional[Tuple[int, int]] = None) -> Optional[Tuple[bytes, str]]:
        """``(bytes, ext)`` of the photo to write: the original bytes when the extension is
        kept, re-encoded otherwise. ``shape`` is the ground truth's (height, width), which the
        photo must match. Bytes copied as they are are checked structurally on the way (PNG
        chunks, CRCs and IEND; JPEG SOI and EOI), not decoded: a cut or foreign file raises."""
        ext = self._photo_ext(frame)
        if ext is None:
            return None
        data = frame.image_bytes()
        assert data is not None
        path = frame.shown("image")
        src_ext = frame.image_ext or ".png"
        if ext == src_ext:
            png.check_structure(data, path or f"{frame.id} (photo)", src_ext)
        if shape is not None and path is not None:
            w, h = png.image_size(data, path)
            if (h, w) != tuple(shape):
                raise InvalidFileError(path, f"photo is {w}x{h} but the ground truth is {shape[1]}x{shape[0]}")
        if ext == src_ext:
            return data, ext
        image = frame.image()
        assert image is not None  # the frame has a photo: _photo_ext said so
        return png.encode_image(image, ext), ext

    def _photo_ext(self, frame: Frame) -> Optional[str]:
        """Extension the frame's photo is written with (None without a photo)."""
        if not frame.has_image:
            return None
        src_ext = frame.image_ext or ".png"
        ext = self.image_ext or (src_ext if src_ext in png.IMAGE_EXTS else ".png")
        if ext in (".jpg", ".jpeg") and src_ext in (".jpg", ".jpeg"):
            ext = src_ext
        return ext

    # -- the contract -----------------------------------------------------------------------
    def encode(self, frame: Frame) -> Encoded:
        """The frame's files and index entry; raises when the frame cannot be encoded (then
        nothing of it is written). Changes nothing in the writer."""
        check_names(frame)
        if self.labels is None:
            raise ValueError("the writer has no labels yet: give labels= or write a frame first")
        frame = self._with_labels(frame)
        seg = self._output_segments(frame) if frame.has_annotations else None
        files = self._frame_files(frame, seg)
        notes = []
        if not frame.has_annotations:
            notes.append(self.NO_GROUND_TRUTH)
        if self.save_media and not frame.has_image:
            notes.append("no photo: written without one")
        entry = Entry(frame.split or "default", frame.id, self._entry_info(frame, seg), seg.dropped if seg else (),
                      tuple(notes), self._lost(frame, files), self._scores_lost(frame))
        return Encoded(files, entry)

    def _scores_lost(self, frame: Frame) -> bool:
        """Whether the frame's segments have scores this format does not keep."""
        return not self.KEEPS_SCORES and frame.has_annotations and any(
            i.score is not None for i in frame.instances())

    def write(self, frame: Frame) -> None:
        """Write one frame's files (all of them, or none when the frame cannot be encoded)."""
        self._record(self._put(frame))

    def close(self) -> None:
        """Write the index files (all together) and close the destination."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.labels is None:  # nothing written: the official map stands in for "source"
                self._use_labels(LabelMap.cityscapes())
            assert self.labels is not None
            if self._dropped:
                warnings.warn(f"{self.dest.url}: labels not in the output label map ({self.labels.source}) were written as "
                              f"background: {', '.join(sorted(self._dropped))}", stacklevel=2)
            if self._polygons_lost:
                reasons = "; ".join(f"{r} ({n} frames)" for r, n in sorted(self._polygons_lost.items()))
                warnings.warn(f"{self.dest.url}: polygons files not written: {reasons}", stacklevel=2)
            if self._scores_dropped:
                warnings.warn(f"{self.dest.url}: the scores (Instance.score) of {self._scores_dropped} frame(s) not "
                              f"written: {self.format} has no place for a prediction's confidence (coco_instances "
                              f"and wds keep them)", stacklevel=2)
            for message in self._close_warnings():
                warnings.warn(message, stacklevel=2)
            for rel in self._index_folders():
                self.dest.put_folder(rel)
            # All index files are encoded first, then written together: they appear as a set.
            self.dest.put_many(self._index_files())
        except BaseException:
            self.dest.abort()
            raise
        finally:
            self._spool.close()
        self.dest.close()

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    # -- driven by the pipeline -------------------------------------------------------------
    def _put(self, frame: Frame) -> Entry:
        """Encode the frame and put its files into the destination; returns its entry."""
        encoded = self._encode_next(frame)
        self.dest.put_frame(encoded.files)
        return encoded.entry

    def _encode_next(self, frame: Frame) -> Encoded:
        """The next frame to write, encoded (the first one gives the labels, when none were)."""
        if self._closed:
            raise ValueError("write() on a closed writer")
        frame = self._with_labels(frame)
        if self.labels is None:
            self._use_labels(resolve_label_map(self._label_map_option, frame.labels, self._storage_options))
        return self.encode(frame)

    def _record(self, entry: Entry) -> None:
        """Record a written frame for the index files."""
        self.subsets.setdefault(entry.split, []).append(entry.id)
        if entry.info:
            self._info[(entry.split, entry.id)] = entry.info
        self._dropped.update(entry.dropped)
        if entry.polygons_lost:
            self._polygons_lost[entry.polygons_lost] = self._polygons_lost.get(entry.polygons_lost, 0) + 1
        self._scores_dropped += entry.scores_lost
        self.written += 1

    def _entry(self, frame: Frame) -> Entry:
        """The index entry of a frame whose files are already written (no decoding)."""
        check_names(frame)
        return Entry(frame.split or "default", frame.id, self._index_info(self._with_labels(frame)))

    def _abort(self) -> None:
        """Close without writing the index files (after an error, or in a shard)."""
        self._spool.close()
        if not self._closed:
            self._closed = True
            self.dest.abort()

    # -- units: the frames written together ----------------------------------------------------
    def _units(self, frames: Iterable[Frame]) -> Iterator[Tuple[Any, List[Frame]]]:
        """The frames, in order, grouped into the units that are written together and appear
        together (what ``shard`` and ``workers`` hand out, what ``resume`` and ``finalize``
        check), each with the writer's key for it: by default each frame alone, key None."""
        for frame in frames:
            yield None, [frame]

    def _unit_files(self, key: Any, frames: List[Frame]) -> List[str]:
        """Paths that writing the unit produces (its frames' ``_planned_files`` by default)."""
        return [p for frame in frames for p in self._planned_files(frame)]

    def _unit_entries(self, key: Any, frames: List[Frame],
                      entry_of: Callable[[Frame], "Union[Entry, CityscapesIOError]"]
                      ) -> "List[Union[Entry, CityscapesIOError]]":
        """Per frame of a unit whose files are all there: its entry, or the error that stops
        it (``entry_of(frame)`` by default, the pipeline's safe ``_entry``)."""
        return [entry_of(frame) for frame in frames]

    def _put_unit(self, key: Any, frames: List[Frame], put: Callable[[Frame], "Union[Entry, CityscapesIOError]"]
                  ) -> "List[Union[Entry, CityscapesIOError]]":
        """Write the frames of one unit, each with ``put(frame)`` (the pipeline's safe
        ``_put``: an entry, or the error that left the frame out), and whatever the unit
        needs besides; per frame, its result. A unit of several frames that meets an error
        while ``_stop_on_error`` is set (the run raises on the first error) writes nothing of
        itself."""
        return [put(frame) for frame in frames]

    # -- format hooks -----------------------------------------------------------------------
    def _frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:  # pragma: no cover - abstract
        """The frame's own files, from its segments in output label ids (None without ground
        truth)."""
        raise NotImplementedError

    def _planned_files(self, frame: Frame) -> List[str]:  # pragma: no cover - abstract
        """Paths (relative to the destination) that writing this frame produces, known
        without decoding anything: what ``resume`` checks for."""
        raise NotImplementedError

    def _index_info(self, frame: Frame) -> tuple:
        """Format-specific data the index files need about a frame (none by default)."""
        return ()

    def _entry_info(self, frame: Frame, seg: Optional[Segments]) -> tuple:
        """The index data of a frame being encoded, given its segments (``_index_info`` by
        default; formats whose records come from the segments use them instead of decoding
        again)."""
        return self._index_info(frame)

    def _touch(self, frame: Frame) -> None:
        """Decode what writing ``frame`` will need (run one frame ahead, in another thread):
        the ground truth, and the photo's bytes when photos are written."""
        if frame.has_annotations:
            frame.instances()
        if self.save_media and frame.has_image:
            frame.image_bytes()

    def _lost(self, frame: Frame, files: Files) -> str:
        """Why a part of the frame the format keeps (Cityscapes: polygons) is not among its
        encoded ``files`` ("" when nothing was lost)."""
        return ""

    def _index_files(self) -> Files:
        """The index files (subset lists, label files), written together by close()."""
        return []

    def _index_folders(self) -> List[str]:
        """Folders the layout has even when nothing is in them, made by close() before the
        index files (none by default)."""
        return []

    def _close_warnings(self) -> List[str]:
        """What close() warns about the output as a whole (nothing by default)."""
        return []
