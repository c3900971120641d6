"""A columnar index of a dataset: two Parquet files that engines read without this library.

:func:`build_index` writes ``OUT/frames.parquet`` (one row per frame: where its files are, the
release's parts it has, its size) and ``OUT/instances.parquet`` (one row per segment of its
``instanceIds``: label, instance number, crowd, area, box and the COCO RLE of its mask), so that
pandas, DuckDB, Spark or Polars can select frames ("every val frame with disparity and a
rider") and read masks without importing ``cityscapes_io``. It needs ``pyarrow`` (the
``parquet`` extra).

**One streaming pass.** Frames are read in the dataset's order; rows are buffered and written
as a Parquet row group whenever a buffer holds :data:`ROW_GROUP_ROWS` rows or about
:data:`ROW_GROUP_BYTES` bytes, so memory does not grow with the number of frames. The driver
lists the part folders (the listings are kept per city, as frames read them) and names every
file; the per-frame work, decoding ``instanceIds`` into areas, boxes and RLE (one column-major
pass over the array for all segments: :func:`cityscapes_io.rle.encode_segments`), runs in
``workers`` processes or on the caller's ``executor`` through
:func:`cityscapes_io.parallel.ordered_map`: results come back in input order, so the files are
byte for byte those of a one-process run. The driver never holds decoded pixels.

**The files appear whole.** On local disk (and other filesystems with folders) each file is
written under a temporary name and renamed when complete; on an object store it is a multipart
upload that appears when closed and is discarded on an error. Existing index files are refused
unless ``overwrite=True``.

**Paths are URLs fsspec opens**: a local file by its absolute path, an object by its URL
(``s3://bucket/key``), a member of an archive by fsspec's chained URL
(``zip://gtFine/val/…_instanceIds.png::/data/gtFine_trainvaltest.zip``), so that
``fsspec.open(path, **storage_options)`` reads the file (a frame of a tar shard, whose files have
no URL, is named as messages name it).

``frames.parquet``

=============== ======================= =====================================================
column          type                    what
=============== ======================= =====================================================
``id``          string                  frame id, ``aachen/aachen_000000_000019``
``split``       string                  ``train``, ``val``, ``test``, ``train_extra``, ...
``city``        string (null)           city, when the id follows ``<city>_<seq>_<frame>``
``sequence``    int32 (null)            sequence number
``frame``       int32 (null)            frame number
``height``      int32 (null)            image size in pixels (null: no file tells it)
``width``       int32 (null)
``annotations`` string (null)           ``gtFine`` or ``gtCoarse``; null without ground truth
``image_key``   string (null)           the photo key of ``files['image']``
``files``       map<string, string>     the frame's own files by kind: ``image``,
                                        ``instanceIds``, ``labelIds``, ``color``,
                                        ``polygons``, ...
``parts``       map<string, string>     every file of the release's parts the frame has, by
                                        key: ``disparity``, ``camera``, ``vehicle``,
                                        ``timestamp``, ``gtBboxCityPersons``, ``gtBbox3d``, a
                                        photo key (``leftImg8bit``, ``rightImg8bit``,
                                        ``leftImg8bit_foggy@beta_0.02``), a snippet frame of
                                        a ``_sequence`` folder (``leftImg8bit_sequence.000005``)
                                        (the tar shards' member names, without extension)
``part_names``  list<string>            the parts present, by name, sorted: ``disparity``,
                                        ``camera``, photo folders (any variant:
                                        ``leftImg8bit_foggy``), ``_sequence`` folders (as
                                        :meth:`FrameParts.present <cityscapes_io.release.FrameParts.present>`)
=============== ======================= =====================================================

``instances.parquet`` (segments in frame order, then by ``value``)

================= ============================ ================================================
column            type                         what
================= ============================ ================================================
``frame_id``      string                       the frame's ``id``
``split``         string                       the frame's ``split``
``value``         int32                        the ``instanceIds`` value
``label_id``      int32                        label id
``label``         string (null)                label name (null: not in the label map)
``train_id``      int32 (null)                 the label's train id (255: ignored)
``has_instances`` bool (null)                  the label is a thing class
``instance_id``   int32 (null)                 instance number; null for crowds and regions
``crowd``         bool                         a whole-class region (value below 1000)
``area``          int64                        pixels
``bbox_x``...     int32                        ``bbox_x``, ``bbox_y``, ``bbox_w``, ``bbox_h``
``rle``           struct<size: list<int32>,    COCO RLE: ``size`` ``[height, width]``,
                  counts: string>              ``counts`` compressed as pycocotools writes
================= ============================ ================================================

Queries, e.g. the frames with disparity: DuckDB ``SELECT id FROM 'OUT/frames.parquet' WHERE
list_contains(part_names, 'disparity')``; Spark ``array_contains(part_names, 'disparity')`` (or
``parts['disparity'] IS NOT NULL``); pandas ``df[df.part_names.map(lambda n: 'disparity' in
n)]``; pyarrow ``pc.is_valid(pc.map_lookup(t['parts'], 'disparity', 'first'))``. A mask:
``pycocotools.mask.decode(row['rle'])`` (``rle`` reads back as a dict with ``size`` and
``counts``). The file's key-value metadata ``cityscapes_io`` holds a JSON object: the index
version, the dataset's roots, format and label map source.
"""
from __future__ import annotations

import collections
import functools
import json
import os
import posixpath
import re
import uuid
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Deque, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from .dataset import Dataset, open as open_dataset
from .errors import CityscapesIOError, OnError, RefusedError, StorageError, apply_policy, check_policy
from .frame import Frame
from .names import SEQUENCE_SUFFIX
from .parallel import WorkerDied, ordered_map
from .release import FrameParts, PartFolders
from .rle import encode_segments
from .storage import Root, display_path, is_read_only, is_remote, is_storage_error, storage_errors
from .storage.sinks import TMP_PREFIX, is_archive_url, refuse_sources

if TYPE_CHECKING:
    import pyarrow

__all__ = ["build_index", "IndexReport", "frames_schema", "instances_schema", "file_url", "part_name", "FRAMES_FILE",
           "INSTANCES_FILE", "INDEX_VERSION", "ROW_GROUP_ROWS", "ROW_GROUP_BYTES"]

FRAMES_FILE = "frames.parquet"
INSTANCES_FILE = "instances.parquet"
#: The version of the two files' schemas (in their ``cityscapes_io`` metadata).
INDEX_VERSION = 1
#: Rows of a row group at most (a buffer is written as a row group when it holds this many).
ROW_GROUP_ROWS = 65536
#: Bytes of Arrow data of a row group at most (about: checked after each frame): what the
#: buffers hold at most, whatever the number of frames (a frame of the release has some 100 KB of
#: RLE, or 30 snippet paths per ``_sequence`` folder).
ROW_GROUP_BYTES = 16 << 20
#: Rows kept as Python objects at most before they are made one Arrow batch.
_COMPACT_ROWS = 2048
#: The part of an object store upload buffered before it is sent (S3 takes parts from 5 MiB).
_UPLOAD_BLOCK = 8 << 20
#: ``<city>_<seq>_<frame>`` at the start of a part file's name.
_STEM = re.compile(r"^(.+?_\d{6}_\d{6})_")


def _pyarrow():
    """``(pyarrow, pyarrow.parquet)``, or ImportError saying which extra installs them."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ImportError(f"the Parquet index needs pyarrow: pip install 'cityscapes-io[parquet]' ({exc})") from exc
    return pa, pq


def frames_schema() -> "pyarrow.Schema":
    """The schema of ``frames.parquet`` (see the module's page)."""
    pa, _ = _pyarrow()
    paths = pa.map_(pa.string(), pa.string())
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("city", pa.string()),
        pa.field("sequence", pa.int32()),
        pa.field("frame", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("annotations", pa.string()),
        pa.field("image_key", pa.string()),
        pa.field("files", paths, nullable=False),
        pa.field("parts", paths, nullable=False),
        pa.field("part_names", pa.list_(pa.string()), nullable=False),
    ])


def instances_schema() -> "pyarrow.Schema":
    """The schema of ``instances.parquet`` (see the module's page)."""
    pa, _ = _pyarrow()
    rle = pa.struct([pa.field("size", pa.list_(pa.int32()), nullable=False),
                     pa.field("counts", pa.string(), nullable=False)])
    return pa.schema([
        pa.field("frame_id", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("value", pa.int32(), nullable=False),
        pa.field("label_id", pa.int32(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("train_id", pa.int32()),
        pa.field("has_instances", pa.bool_()),
        pa.field("instance_id", pa.int32()),
        pa.field("crowd", pa.bool_(), nullable=False),
        pa.field("area", pa.int64(), nullable=False),
        pa.field("bbox_x", pa.int32(), nullable=False),
        pa.field("bbox_y", pa.int32(), nullable=False),
        pa.field("bbox_w", pa.int32(), nullable=False),
        pa.field("bbox_h", pa.int32(), nullable=False),
        pa.field("rle", rle, nullable=False),
    ])


# -- where files are ------------------------------------------------------------------------------
def _protocol(fs: Any) -> str:
    p = getattr(fs, "protocol", "file")
    return p[0] if isinstance(p, (tuple, list)) else p


def file_url(fs: Any, path: str) -> str:
    """A URL ``fsspec.open`` reads ``path`` of ``fs`` by: the path itself on local disk, the
    protocol's URL elsewhere (``s3://bucket/key``), fsspec's chained URL for a member of an
    archive (``zip://member::archive``); as messages name it when there is none."""
    proto = _protocol(fs)
    if proto in ("file", "local"):
        return path
    if proto in ("zip", "tar"):
        archive = getattr(fs, "of", None)
        if archive is not None and hasattr(archive, "fs") and hasattr(archive, "path"):
            return f"{proto}://{path.lstrip('/')}::{file_url(archive.fs, archive.path)}"
        return display_path(fs, path)
    try:
        return str(fs.unstrip_protocol(path))
    except Exception:  # noqa: BLE001 - a filesystem without URLs: as messages name the file
        return display_path(fs, path)


def _own_files(frame: Frame) -> List[Tuple[str, str]]:
    """``(kind, URL)`` of the frame's own files, sorted by kind."""
    locations = frame.source.locations()
    out = []
    for kind, path in sorted(frame.files.items()):
        loc = locations.get(kind)
        out.append((kind, file_url(*loc) if loc is not None else (frame.shown(kind) or path)))
    return out


class _PartFiles:
    """The files of the release's parts a frame has, found in the listings its
    :class:`~cityscapes_io.release.FrameParts` reads (listed once per city folder and kept
    there), each listing grouped by frame once, so that a frame costs its own files, not a scan of
    its city's folder per part and photo key."""

    #: Listings grouped and kept: as many as the part folders keep (the same listings).
    KEEP = PartFolders.LISTINGS

    def __init__(self) -> None:
        self._groups: "collections.OrderedDict[int, Tuple[Mapping[str, Any], Dict[str, List[Tuple[str, Any]]]]]" = \
            collections.OrderedDict()

    def _grouped(self, listing: Mapping[str, Any]) -> Dict[str, List[Tuple[str, Any]]]:
        key = id(listing)
        hit = self._groups.get(key)
        if hit is not None and hit[0] is listing:
            self._groups.move_to_end(key)
            return hit[1]
        groups: Dict[str, List[Tuple[str, Any]]] = {}
        for name, loc in listing.items():
            m = _STEM.match(name)
            groups.setdefault(m.group(1) if m else "", []).append((name, loc))
        self._groups[key] = (listing, groups)  # (the listing held: its id stays its own)
        while len(self._groups) > self.KEEP:
            self._groups.popitem(last=False)
        return groups

    def of(self, parts: FrameParts) -> List[Tuple[str, str]]:
        """``(key, URL)`` of every part file of the frame, sorted by key (see the module's page)."""
        from .formats.wds import part_member  # the one spelling of a part file's key

        base = parts.base
        m = _STEM.match(base + "_")
        grammar = m is not None and m.group(1) == base  # <city>_<seq>_<frame>: the listings grouped
        found: Dict[str, str] = {}
        for folder in parts.folders.names():
            listing = parts.folders.listing(folder, parts.split, parts.city)
            if not listing:
                continue
            groups = self._grouped(listing)
            if folder.endswith(SEQUENCE_SUFFIX):
                if not grammar:
                    continue
                stem = base[:-6]
                candidates = [entry for n in parts.snippet_numbers(19, 10, 1)
                              for entry in groups.get(f"{stem}{n:06d}", ())]
            elif grammar:
                candidates = list(groups.get(base, ()))
            else:
                candidates = [(n, loc) for n, loc in listing.items() if n.startswith(base + "_")]
            for name, loc in sorted(candidates, key=lambda entry: entry[0]):
                member = part_member(folder, base, name)
                if member is None:  # not a name the release gives that folder's files
                    continue
                key = member.rsplit(".", 1)[0]
                if key not in found:
                    found[key] = self._url(parts, loc)
        return sorted(found.items())

    @staticmethod
    def _url(parts: FrameParts, loc: Any) -> str:
        if isinstance(loc[0], Root):
            return file_url(loc[0].fs, loc[0].join(loc[1]))
        return parts.shown(loc)


def part_name(key: str) -> str:
    """The part a key of ``parts`` belongs to: ``leftImg8bit_foggy@beta_0.02`` →
    ``leftImg8bit_foggy``, ``leftImg8bit_sequence.000005`` → ``leftImg8bit_sequence``."""
    return key.split(".", 1)[0].split("@", 1)[0]


# -- the work of one frame (in a worker) -----------------------------------------------------------
@dataclass(frozen=True)
class _Rows:
    """What a worker sends back for one frame: its size and its segments' columns."""

    height: Optional[int]
    width: Optional[int]
    values: List[int] = field(default_factory=list)
    label_ids: List[int] = field(default_factory=list)
    labels: List[Optional[str]] = field(default_factory=list)
    train_ids: List[Optional[int]] = field(default_factory=list)
    things: List[Optional[bool]] = field(default_factory=list)
    ids: List[Optional[int]] = field(default_factory=list)
    crowd: List[bool] = field(default_factory=list)
    areas: List[int] = field(default_factory=list)
    boxes: List[Tuple[int, int, int, int]] = field(default_factory=list)
    counts: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Failed:
    """A frame that could not be read (its error, which pickles)."""

    error: CityscapesIOError


def _index_frame(frame: Frame, catch: bool = False) -> Union[_Rows, _Failed]:
    """The rows of one frame: its size, and per segment of its ``instanceIds`` the label,
    number, area, box and RLE (all segments' RLE in one pass over the array). With ``catch``, a
    problem of the frame's files comes back as :class:`_Failed` instead of being raised."""
    try:
        ids = frame.instance_ids()
        if ids is None:
            size = frame.size()
            return _Rows(*(size if size is not None else (None, None)))
        instances = frame.instances()
        rles = encode_segments(ids, [inst.value for inst in instances])
        rows = _Rows(int(ids.shape[0]), int(ids.shape[1]))
        for inst, rle in zip(instances, rles):
            label = inst.label
            rows.values.append(inst.value)
            rows.label_ids.append(inst.label_id)
            rows.labels.append(label.name if label is not None else None)
            rows.train_ids.append(label.train_id if label is not None else None)
            rows.things.append(label.has_instances if label is not None else None)
            rows.ids.append(inst.id)
            rows.crowd.append(inst.is_crowd)
            rows.areas.append(inst.area)
            rows.boxes.append(inst.bbox)
            rows.counts.append(rle["counts"])
        return rows
    except Exception as exc:  # noqa: BLE001 - a problem of the frame's files is the caller's to skip; bugs are raised
        if not catch:
            raise
        if isinstance(exc, CityscapesIOError):
            return _Failed(exc)
        if is_storage_error(exc):
            return _Failed(StorageError(frame.where, f"cannot read: {exc}"))
        raise
    finally:
        frame.release()


# -- row buffers and outputs -----------------------------------------------------------------------
class _Buffer:
    """Rows not yet written: Python columns (``columns``, filled by the caller, who counts
    ``added`` rows) turned into a compact Arrow batch every :data:`_COMPACT_ROWS` rows, so that
    what is held is about the Arrow size of the rows; full at ``rows`` rows or ``nbytes`` bytes
    of Arrow data, then written as one row group (:meth:`take`)."""

    def __init__(self, schema: "pyarrow.Schema", rows: int, nbytes: int):
        self.schema = schema
        self.columns: Dict[str, List[Any]] = {name: [] for name in schema.names}
        self.added = 0  # rows in ``columns``
        self.batches: List[Any] = []
        self.rows = 0  # rows in ``batches``
        self.nbytes = 0
        self.max_rows, self.max_bytes = rows, nbytes

    def full(self) -> bool:
        """Whether a row group is due (the Python columns compacted first when they grew)."""
        if self.added >= _COMPACT_ROWS:
            self._compact()
        return self.rows + self.added >= self.max_rows or self.nbytes >= self.max_bytes

    def _compact(self) -> None:
        if not self.added:
            return
        pa, _ = _pyarrow()
        batch = pa.RecordBatch.from_pydict(self.columns, schema=self.schema)
        for values in self.columns.values():
            values.clear()
        self.batches.append(batch)
        self.rows += batch.num_rows
        self.nbytes += batch.nbytes
        self.added = 0

    def take(self) -> "pyarrow.Table":
        """The rows held, as a table; the buffer is empty after."""
        pa, _ = _pyarrow()
        self._compact()
        table = pa.Table.from_batches(self.batches, schema=self.schema)
        self.batches = []
        self.rows = self.nbytes = 0
        return table


class _Stream:
    """The file a Parquet writer writes into; after :meth:`abandon` nothing more reaches it (an
    abandoned writer's footer goes nowhere)."""

    def __init__(self, file: Any):
        self.file = file
        self.abandoned = False
        self.closed = False
        self._pos = 0

    def write(self, data: Any) -> int:
        n = memoryview(data).nbytes
        if not self.abandoned:
            self.file.write(data)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if not self.abandoned:
            self.file.flush()

    def close(self) -> None:  # the writer does not close it: _Output does
        pass

    def abandon(self) -> None:
        self.abandoned = True


class _Output:
    """One Parquet file of the index, written row group by row group. On a filesystem with
    folders it is written under a temporary name in its folder and renamed by :meth:`commit`;
    on an object store it is a multipart upload that appears when closed (:meth:`close`) and
    is discarded by :meth:`abort`."""

    def __init__(self, fs: Any, path: str, url: str, schema: "pyarrow.Schema", metadata: Dict[str, Any]):
        _, pq = _pyarrow()
        self.fs, self.path, self.url = fs, path, url
        self.staged = not is_remote(fs)
        folder = posixpath.dirname(path)
        self.tmp = posixpath.join(folder, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(path)}") \
            if self.staged else path
        with storage_errors(url, "cannot write"):
            self.file = fs.open(self.tmp, "wb", **({} if self.staged else {"block_size": _UPLOAD_BLOCK}))
        self.stream = _Stream(self.file)
        self.writer = pq.ParquetWriter(self.stream, schema.with_metadata({"cityscapes_io": json.dumps(metadata)}),
                                       compression="snappy")
        self.row_groups = 0
        self.rows = 0

    def write(self, table: "pyarrow.Table") -> None:
        if table.num_rows == 0:
            return
        with storage_errors(self.url, "cannot write"):
            self.writer.write_table(table, row_group_size=table.num_rows)
        self.row_groups += 1
        self.rows += table.num_rows

    def close(self) -> None:
        """Write the footer and close the file (an object appears now on an object store)."""
        with storage_errors(self.url, "cannot write"):
            self.writer.close()
            self.file.close()

    def commit(self) -> None:
        """Give the file its name (on a filesystem with folders)."""
        if self.staged:
            with storage_errors(self.url, "cannot write"):
                if _protocol(self.fs) in ("file", "local"):
                    os.replace(self.tmp, self.path)
                else:
                    self.fs.mv(self.tmp, self.path)

    def abort(self) -> None:
        """Give up: nothing of this file is left (an upload is discarded)."""
        self.stream.abandon()
        try:
            self.writer.close()
        except Exception:  # noqa: BLE001 - failing already: the cause is what is raised
            pass
        discard = getattr(self.file, "discard", None)
        try:
            if callable(discard) and not self.staged:
                discard()  # (an upload begun is aborted)
                self.file.closed = True  # and never completed when the file object is collected
            else:
                self.file.close()
        except Exception:  # noqa: BLE001
            pass
        if self.staged:
            try:
                self.fs.rm(self.tmp)
            except Exception:  # noqa: BLE001
                pass


def _destination(out: Any, storage_options: Optional[dict], overwrite: bool,
                 sources: Sequence[Root]) -> Tuple[Any, str, str]:
    """``(filesystem, folder, URL)`` of the index's folder, checked: not an archive, not read-only,
    not a source of the dataset; its index files refused unless ``overwrite``."""
    from fsspec.core import url_to_fs

    url = str(out)
    if is_archive_url(url) or "::" in url:
        raise ValueError(f"{url}: the index is two Parquet files in a folder: give a folder, not an archive")
    try:
        fs, folder = url_to_fs(url, **(storage_options or {}))
    except ImportError as exc:
        raise StorageError(url, f"cannot open: {exc} (for s3:// install the extra: pip install "
                                f"'cityscapes-io[s3]')") from exc
    except (ValueError, OSError) as exc:
        raise StorageError(url, f"cannot open: {exc}") from exc
    if is_read_only(fs):
        raise ValueError(f"{url}: cannot write there (read-only filesystem)")
    folder = folder.rstrip("/") or folder
    if _protocol(fs) in ("file", "local"):
        folder = os.path.abspath(folder)
    refuse_sources(url, fs, folder, sources, "keep")
    with storage_errors(url, "cannot open destination"):
        if fs.exists(folder) and not fs.isdir(folder):
            raise RefusedError(url, "destination exists and is not a folder")
        for name in (FRAMES_FILE, INSTANCES_FILE):
            if not overwrite and fs.exists(posixpath.join(folder, name)):
                raise RefusedError(f"{url.rstrip('/')}/{name}", "an index is already there: pass overwrite=True "
                                                                 "(--overwrite) to replace it")
        if not is_remote(fs):
            fs.makedirs(folder, exist_ok=True)
    return fs, folder, url


# -- the build -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IndexReport:
    """What :func:`build_index` wrote.

    Attributes
    ----------
    frames_url, instances_url : str
        The two files.
    frames, instances : int
        Rows written to each.
    row_groups : (int, int)
        Row groups of each file.
    skipped : list of (str, str, str)
        ``(split, frame id, reason)`` of the frames left out (``on_error`` other than
        ``"raise"``), in the dataset's order.
    """

    frames_url: str
    instances_url: str
    frames: int
    instances: int
    row_groups: Tuple[int, int]
    skipped: List[Tuple[str, str, str]]

    @property
    def ok(self) -> bool:
        """Whether every frame was indexed."""
        return not self.skipped

    def summary(self) -> str:
        """One line, then one line per frame skipped."""
        lines = [f"indexed {self.frames} frames and {self.instances} segments: {self.frames_url}, "
                 f"{self.instances_url}" + (f"; {len(self.skipped)} frames skipped" if self.skipped else "")]
        lines += [f"  {split}/{frame_id}: {reason}" for split, frame_id, reason in self.skipped]
        return "\n".join(lines)


@dataclass
class _Pending:
    """The driver's half of a frame's row while its worker's half is under way."""

    frame: Frame
    row: Optional[Dict[str, Any]]
    error: Optional[CityscapesIOError] = None


def _frame_row(frame: Frame, finder: _PartFiles) -> Dict[str, Any]:
    """The columns of ``frames.parquet`` the driver knows without decoding (all but the size)."""
    parts = finder.of(frame.parts) if frame.parts is not None else []
    return {"id": frame.id, "split": frame.split, "city": frame.city, "sequence": frame.seq, "frame": frame.frame,
            "annotations": frame.annotations if frame.has_annotations else None,
            "image_key": frame.image_key if frame.has_image else None,
            "files": _own_files(frame), "parts": parts,
            "part_names": sorted({part_name(key) for key, _ in parts})}


def build_index(source: Union[str, "os.PathLike[str]", Sequence[str], Dataset], out: Union[str, "os.PathLike[str]"],
                *, storage_options: Optional[dict] = None, dst_storage_options: Optional[dict] = None,
                workers: int = 1, executor: Optional[Executor] = None,
                progress: Optional[Callable[[int], None]] = None, overwrite: bool = False,
                on_error: OnError = "raise", row_group_rows: int = ROW_GROUP_ROWS) -> IndexReport:
    """Write ``OUT/frames.parquet`` and ``OUT/instances.parquet``, the columnar index of a
    dataset (the schemas: this module's page), in one streaming pass.

    Parameters
    ----------
    source : str, path, list of them, or Dataset
        A dataset root (any URL :func:`cityscapes_io.open` takes, several roots as a list), or
        a :class:`~cityscapes_io.Dataset` (filtered, remapped, opened with ``image=``...).
    out : str or path
        The folder the two files go into: a local path or an fsspec URL (``s3://bucket/index``).
    storage_options : dict, optional
        fsspec options of ``source`` (when it is not a Dataset already).
    dst_storage_options : dict, optional
        fsspec options of ``out``.
    workers : int
        Decode the frames in this many processes (1: in this one).
    executor : concurrent.futures.Executor, optional
        Decode the frames on it instead (a ``ProcessPoolExecutor``, a Dask cluster's
        :func:`cityscapes_io.dask.executor`, a :class:`cityscapes_io.ray.RayExecutor`): a task
        per frame, the frame (where its files are, with its filesystem's options) pickled to the
        worker and its rows sent back, twice the executor's width in flight; the files are the
        same bytes as a one-process run.
    progress : callable, optional
        Called with the number of frames done, after each frame.
    overwrite : bool
        Replace index files already in ``out`` (otherwise refused).
    on_error : "raise", "skip" or callable
        A frame whose files cannot be read (a corrupt PNG, a label value not in the label map, a
        storage failure): raise (nothing is written), or leave it out of both files with a
        warning (``"skip"``) or handing the error to the callable; the report lists it.
    row_group_rows : int
        Rows of a row group at most (a row group is also written at about
        :data:`ROW_GROUP_BYTES` bytes of Arrow data).

    Returns
    -------
    IndexReport

    Raises
    ------
    RefusedError
        ``out`` holds an index already (without ``overwrite``), is not a folder, or is a source.
    ImportError
        pyarrow is not installed (the ``parquet`` extra).
    """
    check_policy(on_error)
    if isinstance(row_group_rows, bool) or not isinstance(row_group_rows, int) or row_group_rows < 1:
        raise ValueError(f"row_group_rows must be a positive integer, got {row_group_rows!r}")
    _pyarrow()
    ds = source if isinstance(source, Dataset) else open_dataset(source, storage_options=storage_options)
    roots = [r for r in getattr(ds.reader, "roots", ()) if isinstance(r, Root)]
    fs, folder, url = _destination(out, dst_storage_options, overwrite, roots)
    metadata = {"index_version": INDEX_VERSION, "roots": ds.roots, "format": ds.format,
                "labels": ds.labels.source}
    shown = url.rstrip("/")
    outputs: List[_Output] = []
    try:
        outputs.append(_Output(fs, posixpath.join(folder, FRAMES_FILE), f"{shown}/{FRAMES_FILE}", frames_schema(),
                               {**metadata, "file": "frames"}))
        outputs.append(_Output(fs, posixpath.join(folder, INSTANCES_FILE), f"{shown}/{INSTANCES_FILE}",
                               instances_schema(), {**metadata, "file": "instances"}))
        skipped = _build(ds, outputs[0], outputs[1], workers=workers, executor=executor, progress=progress,
                         on_error=on_error, row_group_rows=row_group_rows)
        for output in outputs:
            output.close()
        for output in outputs:
            output.commit()
    except BaseException:
        for output in outputs:
            output.abort()
        raise
    frames_out, instances_out = outputs
    return IndexReport(frames_out.url, instances_out.url, frames_out.rows, instances_out.rows,
                       (frames_out.row_groups, instances_out.row_groups), skipped)


def _build(ds: Dataset, frames_out: _Output, instances_out: _Output, *, workers: int,
           executor: Optional[Executor], progress: Optional[Callable[[int], None]], on_error: OnError,
           row_group_rows: int) -> List[Tuple[str, str, str]]:
    """The pass: frames listed and named here, decoded by ``_index_frame`` where the caller
    chose, rows buffered and written in order. Returns the frames skipped."""
    frames_buf = _Buffer(frames_out.writer.schema, row_group_rows, ROW_GROUP_BYTES)
    inst_buf = _Buffer(instances_out.writer.schema, row_group_rows, ROW_GROUP_BYTES)
    finder = _PartFiles()
    pending: Deque[_Pending] = collections.deque()
    catch = on_error != "raise"
    skipped: List[Tuple[str, str, str]] = []
    # Read ahead (on object stores) only where the frames are decoded: a frame sent to a worker
    # goes without the bytes fetched for it here.
    local = executor is None and workers <= 1
    frames = iter(ds) if local else ds.frames()

    def feed() -> Iterator[Frame]:
        for frame in frames:
            try:
                pending.append(_Pending(frame, _frame_row(frame, finder)))
            except Exception as exc:  # noqa: BLE001 - a listing that failed: the frame is skipped, or raised
                if not catch or not (isinstance(exc, CityscapesIOError) or is_storage_error(exc)):
                    raise
                error = exc if isinstance(exc, CityscapesIOError) else StorageError(frame.where, str(exc))
                pending.append(_Pending(frame, None, error))
            yield frame

    results = ordered_map(functools.partial(_index_frame, catch=catch), feed(), workers=workers, executor=executor,
                          ignore_interrupt=True)
    done = 0
    try:
        for result in results:
            item = pending.popleft()
            failed = item.error or (result.error if isinstance(result, _Failed) else None)
            if failed is not None or item.row is None or not isinstance(result, _Rows):
                error = failed or CityscapesIOError(item.frame.where, "no result")
                apply_policy(on_error, error)
                skipped.append((item.frame.split, item.frame.id, str(error)))
            else:
                _add(frames_buf, inst_buf, item.row, result)
            done += 1
            if frames_buf.full():
                frames_out.write(frames_buf.take())
            if inst_buf.full():
                instances_out.write(inst_buf.take())
            if progress is not None:
                progress(done)
    except WorkerDied as exc:
        lost = [f.id for f in exc.lost if isinstance(f, Frame)]
        shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
        raise CityscapesIOError(frames_out.url, f"{exc}: frames {shown or '(unknown)'} were not indexed; nothing "
                                                f"was written") from exc.__cause__
    finally:
        results.close()  # (on an error: the tasks not started are cancelled, those running waited for)
    frames_out.write(frames_buf.take())
    instances_out.write(inst_buf.take())
    return skipped


def _add(frames_buf: _Buffer, inst_buf: _Buffer, row: Dict[str, Any], rows: _Rows) -> None:
    """One frame's rows into the buffers."""
    fc = frames_buf.columns
    for key, value in row.items():
        fc[key].append(value)
    fc["height"].append(rows.height)
    fc["width"].append(rows.width)
    frames_buf.added += 1
    n = len(rows.values)
    if not n:
        return
    size = [rows.height, rows.width]
    ic = inst_buf.columns
    ic["frame_id"].extend([row["id"]] * n)
    ic["split"].extend([row["split"]] * n)
    ic["value"].extend(rows.values)
    ic["label_id"].extend(rows.label_ids)
    ic["label"].extend(rows.labels)
    ic["train_id"].extend(rows.train_ids)
    ic["has_instances"].extend(rows.things)
    ic["instance_id"].extend(rows.ids)
    ic["crowd"].extend(rows.crowd)
    ic["area"].extend(rows.areas)
    for name, i in (("bbox_x", 0), ("bbox_y", 1), ("bbox_w", 2), ("bbox_h", 3)):
        ic[name].extend(box[i] for box in rows.boxes)
    ic["rle"].extend({"size": size, "counts": counts} for counts in rows.counts)
    inst_buf.added += n
