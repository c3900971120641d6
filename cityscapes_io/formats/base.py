"""The format contract: what a format's module implements, on one page.

A format is one module (of this package, or anywhere importable) holding a :class:`Reader`
and a :class:`Writer` subclass, registered by one line,
:func:`cityscapes_io.formats.register` ``(name, module, reader, writer, aliases=, rank=)``
(``rank``: its place in detection, when its trees can be told from their listing). Nothing
outside this package tests a format's name: what differs between formats is declared by
their classes as **capabilities** (class attributes), which the library and the command line
ask instead:

- ``Reader.EVIDENCE`` (and ``EVIDENCE_GROUP``): what ``detect`` looks for, in a few words,
  for the message when no format is found; ``Reader.FINDS_WRAPPED_TREE``: the reader opens
  a root whose one folder holds the dataset (an archive of ``Cityscapes/gtFine/…``);
  ``Reader.root_hint(url)``: where the root is when ``url`` names a folder inside a tree;
- ``Reader.ANNOTATION_TREES``: the annotation trees a dataset may hold, one read at a time
  (``annotations=``, ``--annotations``), and which ``prepare`` writes train ids into; empty
  for a format with one annotation tree;
- ``Reader.NAME_GRAMMAR`` and ``Reader.INSTANCE_KINDS``: the checks ``validate`` applies
  (frame ids in the Cityscapes name grammar; which ground-truth kinds hold instance values);
- ``Writer.OPTIONS`` (the keyword options the command line offers, each an :class:`Option` the
  writer declares with its help, as Datumaro's exporters declare theirs), ``Writer.KEEPS_SCORES``,
  ``Writer.ALWAYS_SAVES_MEDIA`` (photos are written without ``save_media``), and
  ``Writer.GROUPS_FRAMES`` (below).

**Detecting.** ``Reader.detect(root, listing)``, a classmethod, returns what in a root's
top-level listing shows the format (``"gtFine/"``, ``"annotations/panoptic_val.json"``), or
None; the registry asks each format in turn (:func:`~cityscapes_io.formats.detect_order`),
the most particular evidence first.

**Reading.** A reader lists a dataset and yields :class:`~cityscapes_io.Frame` objects; it
decodes nothing. ``splits`` and ``iter_frames`` are required; the rest have defaults built on
them, which a reader overrides when it can do better (the Cityscapes reader lists one city
folder for ``iter_city`` and ``find_frame``). :class:`~cityscapes_io.Dataset` uses only this
surface.

**Writing.** A writer's output labels are resolved when it is constructed (from ``labels`` and
the ``label_map`` option). ``encode(frame)`` turns a frame into its files and its index entry
and changes nothing in the writer; ``write(frame)`` encodes, puts the files into the
destination and records the entry; ``close()`` writes the index files (subset lists, label
maps) as a set. A writer keeps no pixels of a frame once ``write()`` returns: only its index
entry.

A format's writer subclasses :class:`Writer` and implements its **extension points**:
``frame_files(frame, segments)`` (the frame's files from its segments in output label ids) or,
for a format whose files do not come from segments, ``encode(frame)`` itself;
``planned_files(frame)`` (what ``resume`` checks for) and ``index_files()`` (written by
``close``); when it needs them ``setup(labels)``, ``index_info(frame)``, ``entry_info``,
``lost_part``, ``index_folders``, ``close_warnings``, ``touch(frame)`` (what decoding ahead
reads), and ``record(entry)`` for index records numbered in order (COCO's).

Parallel, sharded and resumed conversion (:mod:`cityscapes_io.writing`, and its Dask
strategy in :mod:`cityscapes_io.dask`) drive a writer through its **unit protocol**; the
driver calls the writer and gets each frame's result back (a :data:`Result`: its
:class:`Entry`, or the error that left it out), never handing it a callback:

- ``units(frames)``: ``(key, frames)`` per unit, the frames written together and appearing
  together: each frame alone by default; a writer that groups them (the tar shards of
  ``"wds"``) declares the capability :attr:`Writer.GROUPS_FRAMES`;
- ``start_unit(key)``, then ``try_put(frame)`` per frame (the frame's result; ``put`` is
  the raising form ``write`` uses), then ``end_unit(key, frames, results)``: every frame's
  result once the unit is complete (a shard is put whole, or not at all when the run stops
  at an error, ``stop_on_error``);
- ``unit_files(key, frames)`` and ``unit_entries(key, frames)``: what ``resume`` and
  ``finalize`` check and record for a unit whose files are there (``try_entry`` per frame
  by default);
- ``record(entry)`` once a frame is accounted for, ``close()`` to write the index files, or
  ``abort()`` to leave without them (after an error, or in a shard).
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..counting import apply_lut
from .. import png
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, LabelMapError
from ..frame import Frame
from ..instances import class_of
from ..labels import LabelMap
from ..mapping import LabelMapping, mapping_between, resolve_label_map
from ..names import is_part_folder, is_photo_folder, parse_frame_id, safe_relpath
from ..parts import parse_image_key
from ..polygons import rename_polygons
from ..release import PART_NAMES
from ..storage.sinks import Data, Sink, open_sink
from ..storage import Root, is_remote
from .spool import Spool

__all__ = ["Reader", "Writer", "Option", "Entry", "Result", "Encoded", "Segments", "Files", "check_names", "parse_parts",
           "PARTS"]


class Reader(ABC):
    """Base class of readers.

    Attributes
    ----------
    format : str
        The format name (``"cityscapes"``, ``"voc"``, ...).
    labels : LabelMap
        The dataset's label map.
    roots : sequence of Root
        Where the data lives (empty for datasets held in memory).
    on_ignored : callable or None
        Called with the path of every file a listing passes over because it is not a frame's
        (``validate`` reports them). Readers that never pass files over ignore it.
    """

    format: str = ""
    labels: LabelMap
    roots: Sequence[Root] = ()
    on_ignored: Optional[Callable[[str], None]] = None

    #: Capability: what :meth:`detect` looks for, in a few words (``"gtFine/ or
    #: leftImg8bit/"``), listed when no format is found; "" for a format opened by name only.
    EVIDENCE: str = ""
    #: The name the "cannot tell the format" message lists :attr:`EVIDENCE` under (the
    #: format's name when None); formats of one group are listed together (``"coco"``).
    EVIDENCE_GROUP: Optional[str] = None
    #: Capability: a root whose one folder holds a dataset of this format (an archive of
    #: ``Cityscapes/gtFine/…``) is opened as it is: the reader looks one folder down.
    FINDS_WRAPPED_TREE: bool = False
    #: Capability: the annotation trees a dataset of this format may hold, one read at a time
    #: (``annotations=``, ``--annotations``; Cityscapes: ``gtFine``, ``gtCoarse``), the trees
    #: ``prepare`` writes train-id files into. Empty for a format with one annotation tree.
    ANNOTATION_TREES: Tuple[str, ...] = ()
    #: Capability: the format holds the release's other photos beside the frame's own, chosen by
    #: photo key (``image=``, ``--image``; Cityscapes: ``rightImg8bit``,
    #: ``leftImg8bit_foggy@beta_0.02``, ...).
    PHOTO_KEYS: bool = False
    #: Capability: frame ids follow the Cityscapes name grammar ``<city>_<seq>_<frame>``;
    #: ``validate`` warns about an id outside it.
    NAME_GRAMMAR: bool = False
    #: Capability: in a format whose files hold either instance values (``class * 1000 + n``)
    #: or plain class ids by their kind, the kinds holding instance values (Cityscapes:
    #: ``instanceIds``, ``instanceTrainIds``; its ``labelIds`` hold classes), and ``validate``
    #: warns about 8-bit ``instanceIds`` (classes only). None: a frame's ground truth always
    #: holds instance values.
    INSTANCE_KINDS: Optional[Tuple[str, ...]] = None

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """What in ``root`` shows a dataset of this format (``"gtFine/"``), or None: from its
        top-level ``listing`` (name to ``"file"`` or ``"directory"``), listing or reading as
        little more as it can. :func:`cityscapes_io.formats.detect_format` asks each format in
        turn (:func:`~cityscapes_io.formats.detect_order`); a format that is only opened by
        name keeps this default."""
        return None

    @classmethod
    def root_hint(cls, url) -> Optional[str]:
        """A hint when ``url`` names a folder inside a tree of this format rather than the
        tree's root (``give the folder that holds …``); None (the default) otherwise. Looks at
        the name only (no I/O)."""
        return None

    @abstractmethod
    def splits(self) -> List[str]:
        """Split names, sorted."""

    @abstractmethod
    def iter_frames(self, split: str) -> Iterator[Frame]:
        """The frames of a split, in sorted order."""

    def cities(self, split: str) -> List[str]:
        """City folders of a split, sorted (none for formats without cities)."""
        return sorted({f.city for f in self.iter_frames(split) if f.city})

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        """The frames of one city of a split."""
        return (f for f in self.iter_frames(split) if f.city == city)

    def find_frame(self, frame_id: str, split: Optional[str] = None) -> Frame:
        """One frame by id (in ``split``, or in the only split that has it)."""
        splits = [split] if split is not None else self.splits()
        city = frame_id.split("/", 1)[0] if "/" in frame_id else None
        hits: List[Frame] = []
        for s in splits:
            frames = self.iter_city(s, city) if city else self.iter_frames(s)
            hits.extend(f for f in frames if f.id == frame_id)
        if not hits:
            raise DatasetNotFoundError(frame_id, f"no such frame in split(s) {', '.join(splits) or 'none'}"
                                                 f"{_id_hint(frame_id)}")
        if len(hits) > 1:
            raise CityscapesIOError(frame_id, f"frame exists in splits {', '.join(f.split for f in hits)}: pass split=")
        return hits[0]

    @property
    def remote(self) -> bool:
        """Whether any root is on a filesystem with request latency worth hiding (S3, ...)."""
        return any(is_remote(r.fs) for r in self.roots)

    def split_locations(self, split: str) -> List[str]:
        """URLs of the folders holding a split, for messages (none by default)."""
        return []

    def frame_count(self, split: str) -> int:
        """Frames of a split (lists; decodes nothing)."""
        return sum(1 for _ in self.iter_frames(split))


def _id_hint(frame_id: str) -> str:
    """A hint for a Cityscapes frame id given without its city folder."""
    name = parse_frame_id(frame_id)
    if "/" not in frame_id and name.seq is not None and name.city:
        return f" (Cityscapes ids include the city folder: {name.city}/{frame_id})"
    return ""


#: A frame's (or the index's) files: relative path and content (bytes, or
#: :class:`~cityscapes_io.storage.sinks.Chunks` for a large index file).
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


#: A frame's result: its entry, or the error that left it out (nothing of it written).
Result = Union[Entry, CityscapesIOError]


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



def check_names(frame: Frame) -> None:
    """Refuse frame ids and split names that would write outside the destination."""
    for part, what in ((frame.id, "frame id"), (frame.split or "default", "split name")):
        try:
            safe_relpath(part)
        except ValueError as exc:
            raise InvalidFileError(part, f"refused to write outside the destination: bad {what}: {exc}") from None
    if "/" in (frame.split or "default"):
        raise InvalidFileError(frame.split, "refused: a split name cannot contain '/'")



@dataclass(frozen=True)
class Option:
    """A writer's keyword option as the command line offers it (``--save-media`` for
    ``save_media``), declared by the writer class in :attr:`Writer.OPTIONS`: the command line
    builds its writer options from the registered writers and holds none of its own.

    ``flags`` are its spellings (default ``--<name with ->``), ``argparse`` the other keywords of
    ``add_argument`` (``action``, ``choices``, ``type``, ``metavar``, ``dest``), and ``value``
    turns what the command line gives into the keyword's value (default: as given)."""

    name: str
    help: str
    flags: Tuple[str, ...] = ()
    argparse: Mapping[str, Any] = field(default_factory=dict)
    value: Optional[Callable[[Any], Any]] = None

    def add_to(self, group: Any) -> None:
        """Add the option to an ``argparse`` parser or group (unset: None)."""
        keywords = {"dest": self.name, "default": None, **self.argparse}
        group.add_argument(*(self.flags or ("--" + self.name.replace("_", "-"),)), help=self.help, **keywords)

    def parse(self, given: Any) -> Any:
        """The keyword's value from what the command line gave."""
        return given if self.value is None else self.value(given)


#: The options every writer takes (:attr:`Writer.OPTIONS`).
SAVE_MEDIA = Option("save_media", "also write the photos", argparse={"action": "store_true"})
IMAGE_EXT = Option("image_ext", "extension of the photos --save-media writes (default: keep, png if unknown); without "
                                "--save-media no photo is written and a warning says so", argparse={"metavar": "EXT"})
LABEL_MAP = Option("label_map", "output labels: source (default), cityscapes, or a label_colors.txt / "
                                "dataset_meta.json", flags=("--label-map", "--label_map"), argparse={"metavar": "MAP"})
#: An option several formats take: the format's label file written as ``dataset_meta.json``.
SAVE_DATASET_META = Option("save_dataset_meta", "write dataset_meta.json instead of label_colors.txt (cityscapes) "
                                                "or labelmap.txt (voc)", argparse={"action": "store_true"})


def parse_parts(value: Union[str, Sequence[str], None]) -> Tuple[str, ...]:
    """The release's parts a writer copies (``parts=``, ``--parts``), checked before anything
    is written: ``"all"`` (every part folder), or names, as a list or one comma-separated
    string: part names (``disparity``, ``camera``, ``vehicle``, ``timestamp``,
    ``gtBboxCityPersons``, ``gtBbox3d``), photo folders (``rightImg8bit``;
    ``leftImg8bit_foggy``: all its variants), photo keys (``leftImg8bit_foggy@beta_0.02``) and
    ``_sequence`` folders (``leftImg8bit_sequence``: the files of the frame's default snippet).
    Names in their first order, each once; empty for None.

    Raises
    ------
    ValueError
        A name that is none of these, or an empty name.
    """
    if value is None:
        return ()
    names = value.split(",") if isinstance(value, str) else list(value)
    out: Dict[str, None] = {}
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"parts: expected part names, got {type(name).__name__} {name!r}")
        name = name.strip()
        if not _is_part(name):
            raise ValueError(f"parts: unknown part {name!r}: give part names ({', '.join(PART_NAMES)}), photo "
                             f"folders (rightImg8bit, leftImg8bit_foggy, ...), photo keys "
                             f"(leftImg8bit_foggy@beta_0.02), _sequence folders (leftImg8bit_sequence, ...), or all")
        out[name] = None
    return tuple(out)


def _is_part(name: str) -> bool:
    """Whether ``name`` names parts of the release (see :func:`parse_parts`)."""
    if name == "all" or name in PART_NAMES:
        return True
    if "@" in name:
        try:
            folder, _ = parse_image_key(name)
        except ValueError:
            return False
        return is_photo_folder(folder)
    return is_part_folder(name)


def covers_photo(parts: Sequence[str], key: str) -> bool:
    """Whether the selection ``parts`` (from :func:`parse_parts`) holds the photo ``key``: by
    ``all``, by the key or by its folder."""
    return "all" in parts or key in parts or parse_image_key(key)[0] in parts


def missing_parts(frame: Frame, parts: Sequence[str]) -> Tuple[str, ...]:
    """The report's note on a frame that lacks some of the parts named in ``parts`` (nothing of
    them is written; ``all`` asks for whatever the frame has, so it lacks none)."""
    lacking = [name for name in parts if name != "all" and not frame.has_part(name)]
    return (f"selected parts not there (nothing of them written): {', '.join(lacking)}",) if lacking else ()


def _parts_given(text: str) -> Union[str, List[str]]:
    """``--parts`` as the keyword's value: ``"all"``, or the list of names (checked), spelled
    as in Python (``parts="all"``, ``parts=["disparity", "camera"]``) so that a job's record
    reads the same from either."""
    names = parse_parts(text)
    return "all" if names == ("all",) else list(names)


#: The release's parts a writer copies byte for byte (:func:`parse_parts`).
PARTS = Option("parts", "also copy these parts of the release, byte for byte: comma-separated part names (disparity, "
                        "camera, vehicle, timestamp, gtBboxCityPersons, gtBbox3d), photo folders (rightImg8bit, "
                        "leftImg8bit_foggy), photo keys (leftImg8bit_foggy@beta_0.02), _sequence folders "
                        "(leftImg8bit_sequence: the default snippet), or all (cityscapes, wds)",
               argparse={"metavar": "LIST|all"}, value=_parts_given)


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
    existing : {"refuse", "replace", "keep"}, optional
        What is done with what the destination holds, when the driver says (it takes the place
        of ``overwrite``): ``"keep"`` is how shards, ``resume``, ``finalize`` and worker
        processes open a destination that other writers fill too.
    sources : sequence of Root
        Places the destination may not overlap (the input's roots): a destination that is one of
        them, holds one, or lies inside one and is to be replaced, is refused.
    """

    format = ""
    #: Set by the driver when the run stops at the first error (``on_error="raise"``): a
    #: unit of several frames then stops there and is not written.
    stop_on_error = False
    #: Capability: :meth:`units` groups several frames into one unit (the tar shards of
    #: ``"wds"``), so frames can only be handed out by unit, never cut elsewhere (Dask).
    GROUPS_FRAMES = False
    #: What a unit is called in messages.
    UNIT = "unit"
    #: The report's note on a frame written without ground truth.
    NO_GROUND_TRUTH = "no ground truth: written without masks"
    #: Whether the format keeps :attr:`Instance.score` (the others say at the end how many
    #: frames' scores were not written).
    KEEPS_SCORES = False
    #: Capability: the format writes each frame's photo whether or not ``save_media`` is given
    #: (a tar shard holds its photos), so ``image_ext`` applies without it.
    ALWAYS_SAVES_MEDIA = False
    #: Capability: :meth:`encode` depends only on the frame and on what :meth:`setup` derived
    #: from the labels (no state that putting frames changes), so once the labels are known the
    #: next frame is encoded in a second thread while this one is encoded and put (PNG encoding
    #: and numpy release the GIL: a conversion on one process uses two cores).
    ENCODES_AHEAD = False
    #: The keyword options this writer accepts besides the destination's (``storage_options``,
    #: ``labels``, ``overwrite``), each with how the command line offers it: the command line
    #: offers these and refuses the others for this format.
    OPTIONS: Tuple[Option, ...] = (SAVE_MEDIA, IMAGE_EXT, LABEL_MAP)

    @classmethod
    def option_names(cls) -> Tuple[str, ...]:
        """The names of :attr:`OPTIONS` (the writer's keywords)."""
        return tuple(o.name for o in cls.OPTIONS)

    def __init__(self, url, *, storage_options=None, labels: Optional[LabelMap] = None,
                 label_map: Union[str, dict, LabelMap, None] = "source", save_media: bool = False,
                 image_ext: Optional[str] = None, overwrite: bool = False, existing: Optional[str] = None,
                 sources: Sequence[Root] = (), **options):
        if options:
            raise TypeError(f"{type(self).__name__}: unknown option(s) {', '.join(sorted(options))}")
        if image_ext and not image_ext.startswith("."):
            image_ext = "." + image_ext
        if image_ext and image_ext.lower() not in png.IMAGE_EXTS:
            raise ValueError(f"image_ext {image_ext!r} not supported (one of {', '.join(png.IMAGE_EXTS)})")
        #: Index records kept out of memory until close() streams them (the COCO formats'
        #: JSON); closed with the writer.
        self.spool = Spool()
        self.save_media = bool(save_media)
        self.image_ext = image_ext.lower() if image_ext else None
        self._label_map_option = label_map
        self._storage_options = storage_options
        self.labels: Optional[LabelMap] = None
        #: The labels of the frames to come, as given (``labels=``): what frames without labels
        #: of their own take, and what frames built in memory must agree with.
        self._frame_labels: Optional[LabelMap] = labels
        if labels is not None or label_map not in (None, "source"):
            self.use_labels(resolve_label_map(label_map, labels, storage_options))
        self.subsets: "OrderedDict[str, List[str]]" = OrderedDict()
        self.infos: Dict[Tuple[str, str], tuple] = {}
        self._dropped: Set[str] = set()
        self._polygons_lost: Dict[str, int] = {}
        self._scores_dropped = 0
        self.written = 0
        self._closed = False
        existing = existing or ("replace" if overwrite else "refuse")
        self.dest: Sink = open_sink(url, storage_options, existing=existing, sources=sources)

    # -- labels -----------------------------------------------------------------------------
    def use_labels(self, labels: Optional[LabelMap]) -> None:
        """Take ``labels`` as the output labels (and :meth:`setup` what depends on them)."""
        if labels is None:
            raise ValueError("no output labels")
        self.labels = labels
        self.setup(labels)

    def resolve_labels(self, frame: Frame) -> LabelMap:
        """The output labels; when none are known yet (``label_map="source"`` without
        ``labels=``), those ``frame`` gives (the first frame written)."""
        if self.labels is None:
            self.use_labels(resolve_label_map(self._label_map_option, frame.labels, self._storage_options))
        assert self.labels is not None
        return self.labels

    def setup(self, labels: LabelMap) -> None:
        """Derive what the format needs from the output labels (palettes, colour tables)."""

    def with_labels(self, frame: Frame) -> Frame:
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

    def output_segments(self, frame: Frame) -> Optional[Segments]:
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
        return Segments(apply_lut(lut, arr), sorted(out_values), dropped, False, False, m)

    # -- photos -----------------------------------------------------------------------------

    def output_polygons(self, frame: Frame, seg: Optional[Segments]) -> Tuple[Optional[bytes], str]:
        """The frame's polygons file as the output labels have it, and why it is left out (""
        when it is not, or there is none): copied when the labels are the frame's, rewritten
        with the new names when they are only renamed, left out when labels were merged or
        dropped (the polygons cannot follow the masks). ``seg``: the frame's segments, whose
        mapping is reused (None: worked out)."""
        data, lost = frame.source.polygons()
        if data is None:
            return None, lost or ""
        assert self.labels is not None
        m = seg.mapping if seg is not None and seg.mapping is not None else mapping_between(frame.labels, self.labels)
        if m.identity:
            return data, ""
        names = m.renames()
        if names is None:
            return None, f"labels were merged or dropped for the output label map ({self.labels.source})"
        try:
            return rename_polygons(data, names, frame.where), ""
        except KeyError as exc:
            return None, f"polygon label {exc.args[0]!r} is not in the label map: the polygons cannot be renamed"

    def photo(self, frame: Frame, shape: Optional[Tuple[int, int]] = None) -> Optional[Tuple[bytes, str]]:
        """``(bytes, ext)`` of the photo to write: the original bytes when the extension is
        kept, re-encoded otherwise. ``shape`` is the ground truth's (height, width), which the
        photo must match. Bytes copied as they are are checked structurally on the way (PNG
        chunks, CRCs and IEND; JPEG SOI and EOI), not decoded: a cut or foreign file raises."""
        ext = self.photo_ext(frame)
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
        assert image is not None  # the frame has a photo: photo_ext said so
        return png.encode_image(image, ext), ext

    def photo_ext(self, frame: Frame) -> Optional[str]:
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
        frame = self.with_labels(frame)
        seg = self.output_segments(frame) if frame.has_annotations else None
        files = self.frame_files(frame, seg)
        notes = []
        if not frame.has_annotations:
            notes.append(self.NO_GROUND_TRUTH)
        if self.save_media and not frame.has_image:
            notes.append("no photo: written without one")
        entry = Entry(frame.split or "default", frame.id, self.entry_info(frame, seg), seg.dropped if seg else (),
                      tuple(notes), self.lost_part(frame, files), self.scores_lost(frame))
        return Encoded(files, entry)

    def scores_lost(self, frame: Frame) -> bool:
        """Whether the frame's segments have scores this format does not keep."""
        return not self.KEEPS_SCORES and frame.has_annotations and any(
            i.score is not None for i in frame.instances())

    def write(self, frame: Frame) -> None:
        """Write one frame's files (all of them, or none when the frame cannot be encoded)."""
        self.record(self.put(frame))

    def close(self) -> None:
        """Write the index files (all together) and close the destination."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.labels is None:  # nothing written: the official map stands in for "source"
                self.use_labels(LabelMap.cityscapes())
            assert self.labels is not None
            if self._dropped:
                warnings.warn(f"{self.dest.url}: labels not in the output label map ({self.labels.source}) were "
                              f"written as background: {', '.join(sorted(self._dropped))}", stacklevel=2)
            if self._polygons_lost:
                reasons = "; ".join(f"{r} ({n} frames)" for r, n in sorted(self._polygons_lost.items()))
                warnings.warn(f"{self.dest.url}: polygons files not written: {reasons}", stacklevel=2)
            if self._scores_dropped:
                warnings.warn(f"{self.dest.url}: the scores (Instance.score) of {self._scores_dropped} frame(s) not "
                              f"written: {self.format} has no place for a prediction's confidence (coco_instances "
                              f"and wds keep them)", stacklevel=2)
            for message in self.close_warnings():
                warnings.warn(message, stacklevel=2)
            for rel in self.index_folders():
                self.dest.put_folder(rel)
            # All index files are encoded first, then written together: they appear as a set.
            self.dest.put_many(self.index_files())
        except BaseException:
            self.dest.abort()
            raise
        finally:
            self.spool.close()
        self.dest.close()

    @property
    def closed(self) -> bool:
        """Whether the writer is closed (by :meth:`close` or :meth:`abort`): it writes no more."""
        return self._closed

    def __enter__(self) -> "Writer":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- the unit protocol: what a driver (cityscapes_io.writing, cityscapes_io.dask) calls ---------
    def put(self, frame: Frame) -> Entry:
        """Encode the frame and put its files into the destination; returns its entry (raises
        when the frame cannot be written: nothing of it is). A format that puts files
        elsewhere than in the destination (into an open tar shard) overrides it."""
        encoded = self.encode_next(frame)
        self.dest.put_frame(encoded.files)
        return encoded.entry

    def try_put(self, frame: Frame) -> Result:
        """:meth:`put`, the frame's error returned instead of raised (nothing of the frame is
        written then); the frame's pixels and buffered bytes are released either way."""
        return _result_of(self.put, frame)

    def encodes_ahead(self) -> bool:
        """Whether the next frame may be encoded by :meth:`encode_ahead` in another thread now:
        the format says so (:attr:`ENCODES_AHEAD`, declared by the class itself: a subclass that
        adds state of its own does not inherit it), its frames are put by this class's
        :meth:`put`, and the labels are known (the first frame may give them)."""
        cls = type(self)
        return (cls.__dict__.get("ENCODES_AHEAD", False) and self.labels is not None and cls.put is Writer.put
                and cls.try_put is Writer.try_put and cls.encode_next is Writer.encode_next)

    def encode_ahead(self, frame: Frame) -> Union[Encoded, CityscapesIOError]:
        """:meth:`encode` of a frame to be put later (see :meth:`encodes_ahead`), the frame's
        error returned instead of raised."""
        try:
            return self.encode(self.with_labels(frame))
        except CityscapesIOError as exc:
            return exc

    def try_put_encoded(self, frame: Frame, encoded: Union[Encoded, CityscapesIOError]) -> Result:
        """:meth:`try_put` of a frame whose :meth:`encode_ahead` result is ``encoded``."""
        def put(f: Frame) -> Entry:
            if self._closed:
                raise ValueError("write() on a closed writer")
            if isinstance(encoded, CityscapesIOError):
                raise encoded
            self.dest.put_frame(encoded.files)
            return encoded.entry
        return _result_of(put, frame)

    def encode_next(self, frame: Frame) -> Encoded:
        """The next frame to write, encoded (the first one gives the labels, when none were)."""
        if self._closed:
            raise ValueError("write() on a closed writer")
        frame = self.with_labels(frame)
        self.resolve_labels(frame)
        return self.encode(frame)

    def record(self, entry: Entry) -> None:
        """Record a written frame for the index files (formats whose index records are
        numbered in order, as COCO's are, number them here)."""
        self.subsets.setdefault(entry.split, []).append(entry.id)
        if entry.info:
            self.infos[(entry.split, entry.id)] = entry.info
        self._dropped.update(entry.dropped)
        if entry.polygons_lost:
            self._polygons_lost[entry.polygons_lost] = self._polygons_lost.get(entry.polygons_lost, 0) + 1
        self._scores_dropped += entry.scores_lost
        self.written += 1

    def entry(self, frame: Frame) -> Entry:
        """The index entry of a frame whose files are already written (no decoding)."""
        check_names(frame)
        return Entry(frame.split or "default", frame.id, self.index_info(self.with_labels(frame)))

    def try_entry(self, frame: Frame) -> Result:
        """:meth:`entry`, the error returned instead of raised (formats that recompute their
        index records from the frame decode it here); the frame's pixels are released either
        way."""
        return _result_of(self.entry, frame)

    def abort(self) -> None:
        """Close without writing the index files (after an error, or in a shard)."""
        self.spool.close()
        if not self._closed:
            self._closed = True
            self.dest.abort()

    def units(self, frames: Iterable[Frame]) -> Iterator[Tuple[Any, List[Frame]]]:
        """The frames, in order, grouped into the units that are written together and appear
        together (what ``shard`` and ``workers`` hand out, what ``resume`` and ``finalize``
        check), each with the writer's key for it: by default each frame alone, key None. A
        writer that groups frames says so with :attr:`GROUPS_FRAMES`."""
        for frame in frames:
            yield None, [frame]

    def unit_files(self, key: Any, frames: List[Frame]) -> List[str]:
        """Paths that writing the unit produces (its frames' ``planned_files`` by default)."""
        return [p for frame in frames for p in self.planned_files(frame)]

    def unit_entries(self, key: Any, frames: List[Frame]) -> List[Result]:
        """Per frame of a unit whose files are all there: its entry, or the error that stops
        it (:meth:`try_entry` by default)."""
        return [self.try_entry(frame) for frame in frames]

    def start_unit(self, key: Any) -> None:
        """Begin writing the unit ``key`` (its frames come next, by :meth:`try_put`); nothing
        to do by default."""

    def end_unit(self, key: Any, frames: List[Frame], results: List[Result]) -> List[Result]:
        """Finish the unit ``key`` whose frames were put with these ``results`` (fewer than
        ``frames`` when the run stopped at an error, ``stop_on_error``), and return every
        frame's result: by default the frames not put are reported not written."""
        if len(results) < len(frames):
            failed = frames[len(results) - 1].id
            results = results + [CityscapesIOError(f.id, f"not written: frame {failed} of the same {self.UNIT} failed")
                                 for f in frames[len(results):]]
        return results

    # -- format hooks -----------------------------------------------------------------------
    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:  # pragma: no cover - abstract
        """The frame's own files, from its segments in output label ids (None without ground
        truth). A format whose files do not come from segments overrides :meth:`encode`
        instead and leaves this alone."""
        raise NotImplementedError(f"{type(self).__name__} implements neither frame_files nor encode")

    def planned_files(self, frame: Frame) -> List[str]:  # pragma: no cover - abstract
        """Paths (relative to the destination) that writing this frame produces, known
        without decoding anything: what ``resume`` checks for."""
        raise NotImplementedError

    def index_info(self, frame: Frame) -> tuple:
        """Format-specific data the index files need about a frame (none by default)."""
        return ()

    def entry_info(self, frame: Frame, seg: Optional[Segments]) -> tuple:
        """The index data of a frame being encoded, given its segments (``index_info`` by
        default; formats whose records come from the segments use them instead of decoding
        again)."""
        return self.index_info(frame)

    def touch(self, frame: Frame) -> None:
        """Decode what writing ``frame`` will need (run one frame ahead, in another thread):
        the ground truth, and the photo's bytes when photos are written."""
        if frame.has_annotations:
            frame.instances()
        if self.save_media and frame.has_image:
            frame.image_bytes()

    def lost_part(self, frame: Frame, files: Files) -> str:
        """Why a part of the frame the format keeps (Cityscapes: polygons) is not among its
        encoded ``files`` ("" when nothing was lost)."""
        return ""

    def index_files(self) -> Files:
        """The index files (subset lists, label files), written together by close()."""
        return []

    def index_folders(self) -> List[str]:
        """Folders the layout has even when nothing is in them, made by close() before the
        index files (none by default)."""
        return []

    def close_warnings(self) -> List[str]:
        """What close() warns about the output as a whole (nothing by default)."""
        return []


def _result_of(step: Callable[[Frame], Entry], frame: Frame) -> Result:
    """``step(frame)``, or the error that stopped it; the frame's pixels and buffered bytes
    are released either way."""
    try:
        return step(frame)
    except CityscapesIOError as exc:
        return exc
    finally:
        frame.release()
