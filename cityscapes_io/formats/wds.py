"""Tar shards for streaming (``format="wds"``), in WebDataset's layout.

``<root>/<split>-000000.tar``, ``<split>-000001.tar``, ...: each shard holds ``frames_per_shard``
consecutive frames of one split. A frame's members share one key (its id, with ``%`` and ``.``
percent-encoded so that the key has no dot, as WebDataset's grouping needs):

- ``<key>.image.png`` (or ``.image.jpg``...): the photo, its original bytes;
- ``<key>.instance_ids.png``: the 16-bit instanceIds, the original bytes when the labels are
  unchanged (``instance_train_ids.png`` for a train-id dataset);
- ``<key>.label_ids.png``: the 8-bit labelIds (``label_train_ids.png``);
- ``<key>.json``: the frame's metadata (id, split, city, sequence, frame, annotation tree, size)
  and, for predictions, ``scores``: the confidence of each instance that has one, keyed by its
  value in ``instance_ids.png`` as a string (``{"26001": 0.93}``: ``Instance.score`` on read);
- what a Cityscapes frame has besides, after the metadata, when it has it: ``<key>.polygons.json``
  (its ``_polygons.json``; renamed with the labels, left out when they are merged or dropped, and
  then reported) and, beside official ids, ``<key>.instance_train_ids.png`` /
  ``<key>.label_train_ids.png`` (its train-id files, the original bytes, when the labels are
  unchanged; left out otherwise, each frame named in the report), so that a Cityscapes tree goes
  through the shards and back file for file;
- the release's other parts the writer's ``parts`` option selects (see
  :func:`~cityscapes_io.formats.base.parse_parts`), last, one member per file, named by
  :func:`part_member`: ``<key>.disparity.png``, ``<key>.camera.json``, ``<key>.vehicle.json``,
  ``<key>.timestamp.txt``, ``<key>.gtBboxCityPersons.json``, ``<key>.gtBbox3d.json`` (what
  follows the frame's id in the file's name); a photo by its photo key and extension,
  ``<key>.rightImg8bit.png``, ``<key>.leftImg8bit_foggy@beta_0.02.png``; a file of a
  ``_sequence`` folder by the folder, its frame number and the rest of its name:
  ``<key>.leftImg8bit_sequence.000005.png``, ``<key>.timestamp_sequence.000005.txt`` (a photo
  variant after the number: ``.000005@beta_0.02.png``). Each name gives back the folder and the
  file's name in the release (:func:`member_part`), so frames read from the shards have their
  parts (``frame.disparity()``, ``frame.image("rightImg8bit")``, ``frame.snippet()``,
  ``frame.part_files(...)``) and write them back to a Cityscapes tree as they were. The metadata
  and the index name the photo key of ``<key>.image.*`` when it is not ``leftImg8bit``
  (``"image": "leftImg8bit_foggy@beta_0.02"``: a dataset opened with ``image=``). The
  ``webdataset`` package lowercases what follows a key: its samples hold them as
  ``rightimg8bit.png``, ``leftimg8bit_foggy@beta_0.02.png``.

``<root>/shards.json`` indexes the shards: per split, each shard's file name, frame count and,
per frame, its id, the byte offset and size of each member and its ``scores`` (as in its JSON),
so a reader knows a split's length without opening a shard, and reaches one frame with one ranged
read. The labels go into the same file (``dataset_meta.json``'s content, under ``labels``). Every
other tool reading tar files in WebDataset's layout (the ``webdataset`` package) reads the shards
as they are. Shards written before scores, polygons and train ids were carried read as they are.

Reading iterates a split shard by shard, one sequential read per shard (frames are yielded as
their members are passed); a frame handed to another process, or asked for out of order, reads
its members by range.

The index may come from anywhere: when the dataset is opened, every value of ``shards.json`` is
checked (types, counts, each shard's ``file`` resolved inside the root, member names, sizes at
most :data:`MAX_MEMBER`, each frame id once per split) and the shards' real sizes are listed; a
member is checked against its shard's real size before it is read. ``resume`` and ``finalize``
check the tar headers they read back the same way, and read each frame's scores back from its
metadata member (at most :data:`MAX_META` bytes) to rebuild the index.
"""
from __future__ import annotations

import io
import math
import os
import json
import posixpath
import tarfile
import tempfile
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np

from ..counting import apply_lut
from .. import jsonfile, png
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, OnError
from ..frame import DerivedSource, Frame
from ..sources import FileSource
from ..instances import MAX_INSTANCE_VALUE, class_of
from ..labels import LabelMap
from ..mapping import value_lut
from ..names import (ANNOTATION_DIRS, GT_DIR, PART_SUFFIXES, SEQUENCE_SUFFIX, frame_dir, is_part_folder, photo_file_word,
                     is_photo_folder, parse_frame_id, split_photo_ext)
from ..parts import image_file_suffix, parse_image_key
from ..release import DEFAULT_IMAGE_KEY, FrameParts
from ..storage.sinks import Chunks
from .base import Reader
from ..storage import (Root, check_inside, display_path, read_range, resolve_inside, resolve_single_root,
                       storage_errors)
from .base import PARTS, Encoded, Entry, Files, Option, Result, Segments, Writer, missing_parts, parse_parts
from .spool import temporary_errors

__all__ = ["WdsReader", "WdsWriter", "INDEX_FILE", "frame_key", "MEMBER_KINDS", "attach_streams", "part_member",
           "member_part"]

INDEX_FILE = "shards.json"
INDEX_KIND = "cityscapes_io-wds"
#: Frame file kind -> member suffix.
MEMBER_KINDS = {"instanceIds": "instance_ids.png", "labelIds": "label_ids.png",
                "instanceTrainIds": "instance_train_ids.png", "labelTrainIds": "label_train_ids.png",
                "polygons": "polygons.json"}
_KIND_OF = {v: k for k, v in MEMBER_KINDS.items()}
#: The train-id files a frame of official ids may carry beside them.
TRAIN_ID_KINDS = ("instanceTrainIds", "labelTrainIds")
#: The kind of the frame's metadata member ``<key>.json``.
META_KIND = "json"
#: Members a shard's stream need not reach (it ends with the last of the others): the metadata,
#: which the index holds, and the polygons, which few reads ask for (the last frame's are read
#: by range; the others lie inside the stream).
UNSTREAMED = (META_KIND, "polygons")
#: The largest metadata member read back (``resume``, ``finalize``): far more than the scores of
#: 65536 instances take.
MAX_META = 2**24
#: Label maps the index names rather than spells out (they keep the official table's fields).
_NAMED_MAPS = {"cityscapes": LabelMap.cityscapes, "cityscapes_train": LabelMap.cityscapes_train}
#: Bytes read per request when a shard is streamed.
STREAM_BLOCK = 16 * 2**20
#: The largest member a shard may hold: a photo of ``png.MAX_PIXELS`` pixels stored uncompressed
#: at 8 bytes a pixel (RGBA, 16 bits a channel). A size declared beyond it, in ``shards.json`` or
#: in a tar header, is refused before anything is read.
MAX_MEMBER = 8 * png.MAX_PIXELS


def frame_key(frame_id: str) -> str:
    """The member key of a frame: its id with ``%`` and ``.`` percent-encoded (a WebDataset key
    ends at the first dot of a member's base name)."""
    return frame_id.replace("%", "%25").replace(".", "%2E")


def shard_name(split: str, number: int) -> str:
    return f"{split}-{number:06d}.tar"


# -- the release's parts as members ---------------------------------------------------------------
def _own_tail(part: str, rest: str) -> Optional[str]:
    """What stands for ``rest`` (what follows a frame's id in the name of its file of the
    part folder ``part``: ``_disparity.png``, ``_leftImg8bit_foggy_beta_0.02.png``) in a
    member's name: ``disparity.png``, ``leftImg8bit_foggy@beta_0.02.png``; None when the name
    is not one the release gives that folder's files."""
    if part in PART_SUFFIXES:
        return PART_SUFFIXES[part][1:] if rest == PART_SUFFIXES[part] else None
    if not is_photo_folder(part):
        return None
    stem, ext = split_photo_ext(rest)
    marker = "_" + photo_file_word(part)
    if ext.lower() not in png.IMAGE_EXTS or not stem.startswith(marker):
        return None
    variant = stem[len(marker):]
    if not variant:
        return part + ext
    key = f"{part}@{variant[1:]}"
    if not variant.startswith("_") or not _is_key(key) or image_file_suffix(key) != stem:
        return None
    return key + ext


def _own_rest(part: str, tail: str) -> Optional[str]:
    """The inverse of :func:`_own_tail`: ``rest`` from a member's ``tail``, None when ``tail``
    is not one that function gives for ``part``."""
    if part in PART_SUFFIXES:
        return PART_SUFFIXES[part] if tail == PART_SUFFIXES[part][1:] else None
    stem, ext = split_photo_ext(tail)
    if ext.lower() not in png.IMAGE_EXTS or not _is_key(stem) or parse_image_key(stem)[0] != part:
        return None
    return image_file_suffix(stem) + ext


def _is_key(key: str) -> bool:
    try:
        parse_image_key(key)
    except ValueError:
        return False
    return True


def _sequence_stem(base: str) -> Optional[str]:
    """``<city>_<seq>_`` of a frame's base name in the Cityscapes grammar, None otherwise."""
    return base[:-6] if len(base) > 7 and base[-6:].isdigit() and base[-7] == "_" else None


def part_member(folder: str, base: str, name: str) -> Optional[str]:
    """The member suffix (what follows ``<key>.``) of the file ``name`` of part folder
    ``folder`` of the frame whose base name is ``base`` (``aachen_000000_000019``); None for a
    name the release does not give that folder's files (such a file is not carried).

    ``disparity`` ``<base>_disparity.png`` → ``disparity.png``; ``leftImg8bit_foggy``
    ``<base>_leftImg8bit_foggy_beta_0.02.png`` → ``leftImg8bit_foggy@beta_0.02.png``;
    ``leftImg8bit_sequence`` ``<city>_<seq>_000005_leftImg8bit.png`` →
    ``leftImg8bit_sequence.000005.png``. :func:`member_part` is its inverse."""
    if folder.endswith(SEQUENCE_SUFFIX):
        stem = _sequence_stem(base)
        number = name[len(stem):len(stem) + 6] if stem is not None and name.startswith(stem) else ""
        if stem is None or len(number) != 6 or not number.isdigit() or not is_part_folder(folder):
            return None
        part = folder[: -len(SEQUENCE_SUFFIX)]
        tail = _own_tail(part, name[len(stem) + 6:])
        if tail is None or not tail.startswith(part):
            return None
        # the folder, the frame number, then a photo's variant (@...) and the extension
        return f"{folder}.{number}{tail[len(part):]}"
    if not name.startswith(base + "_") or not is_part_folder(folder):
        return None
    return _own_tail(folder, name[len(base):])


def member_part(suffix: str, base: str) -> Optional[Tuple[str, str]]:
    """``(folder, file name)`` in the release of a part member of the frame whose base name is
    ``base``, from its ``suffix`` (see :func:`part_member`); None when ``suffix`` is not a part
    member's. The folder is a part folder's name and the file name a plain name (no ``/``)."""
    head, dot, tail = suffix.partition(".")
    if dot and head.endswith(SEQUENCE_SUFFIX) and is_part_folder(head):
        stem, number, tail = _sequence_stem(base), tail[:6], tail[6:]
        part = head[: -len(SEQUENCE_SUFFIX)]
        if stem is None or len(number) != 6 or not number.isdigit() or tail[:1] not in (".", "@"):
            return None
        rest = _own_rest(part, part + tail)
        return None if rest is None else (head, stem + number + rest)
    stem, _ = split_photo_ext(suffix)
    if "@" in stem or is_photo_folder(stem):
        folder = parse_image_key(stem)[0] if _is_key(stem) else ""
    else:
        folder = next((f for f, end in PART_SUFFIXES.items() if suffix == end[1:]), "")
    rest = _own_rest(folder, suffix) if folder else None
    return None if rest is None else (folder, base + rest)


#: Where :class:`_ShardParts` finds a file: its member ``(name, offset, size)`` and
#: ``"<folder>/<file name>"``.
_PartLocation = Tuple[Tuple[str, int, int], str]


class _ShardParts:
    """The release's parts of one frame of a shard, for :class:`~cityscapes_io.release.FrameParts`
    to read: its part members (``{suffix: (name, offset, size)}``) as the part folders' files
    they stand for, and its own photo (the ``image`` member) as the file of its photo key.
    A location is ``((member name, offset, size), "<folder>/<file name>")`` (the shape of
    :data:`cityscapes_io.release.Location`: the file's name ends its second item); the member is
    checked against the shard's real size (``shard_size``; None: the shard is not there) before
    it is read."""

    def __init__(self, fs: Any, tar: str, shard_size: Optional[int], frame_id: str,
                 members: Mapping[str, Tuple[str, int, int]], image_key: str = DEFAULT_IMAGE_KEY,
                 image: Optional[Tuple[str, int, int]] = None):
        self.fs, self.tar, self.shard_size, self.frame_id = fs, tar, shard_size, frame_id
        self.members = dict(members)
        self.image_key, self.image = image_key, image
        base = frame_dir(frame_id)[1]
        self._folders: Dict[str, Dict[str, _PartLocation]] = {}
        for suffix, member in self.members.items():
            found = member_part(suffix, base)
            if found is not None:
                folder, name = found
                self._folders.setdefault(folder, {})[name] = (member, f"{folder}/{name}")
        if image is not None:
            folder = parse_image_key(image_key)[0]
            name = base + image_file_suffix(image_key) + split_photo_ext(image[0])[1]
            self._folders.setdefault(folder, {}).setdefault(name, (image, f"{folder}/{name}"))

    def names(self) -> List[str]:
        return sorted(self._folders)

    def photo_folders(self) -> List[str]:
        return [f for f in self.names() if is_photo_folder(f)]

    def listing(self, folder: str, split: str, city: str) -> Dict[str, "_PartLocation"]:
        """``{file name: location}`` of the frame's files of ``folder`` (``split`` and ``city``
        are the frame's: its members are all there is)."""
        return dict(self._folders.get(folder, {}))

    def read(self, location: "_PartLocation") -> bytes:
        name, offset, size = location[0]
        if self.shard_size is None:
            raise DatasetNotFoundError(self.tar, f"not there ({INDEX_FILE} lists it): cannot read {name}")
        if offset + size > self.shard_size:
            raise InvalidFileError(self.tar, f"truncated shard or wrong index: member {name} ({size} bytes at offset "
                                             f"{offset}) ends past the end of the shard ({self.shard_size} bytes)")
        return _ranged(self.fs, self.tar, offset, size)

    def shown(self, location: "_PartLocation") -> str:
        return display_path(self.fs, f"{self.tar}/{location[0][0]}")

    def __getstate__(self):
        return {"fs": self.fs, "tar": self.tar, "shard_size": self.shard_size, "frame_id": self.frame_id,
                "members": self.members, "image_key": self.image_key, "image": self.image}

    def __setstate__(self, state) -> None:
        _ShardParts.__init__(self, **state)

    def __repr__(self) -> str:
        return f"_ShardParts({self.tar}: {self.frame_id}, {', '.join(self.names())})"


# -- reading ------------------------------------------------------------------------------------
class _ShardStream:
    """One shard read front to back by a thread of its own, shared by the frames of one
    iteration over it: blocks of ``STREAM_BLOCK`` bytes (one request each on an object store)
    are read up to ``AHEAD`` blocks beyond the furthest member asked for, so the next frames
    download while this one is decoded; a block is dropped once the requests are ``BEHIND``
    blocks past it. A member the stream no longer holds (asked for far out of order, or after
    the stream failed or closed) is read by range. The stream is closed once its last member
    (ending at ``end``) is read, or when the iteration is given up; the thread also ends after
    ``IDLE`` seconds without a request (and starts again on the next one). A request beyond
    the next block skips what lies between when that is ``SKIP`` bytes or more (frames passed
    over); less (members no one asked for between those asked for: polygons, train ids) is
    read through, keeping the reads in sequence."""

    AHEAD = 1
    SKIP = 2**20
    BEHIND = 1
    IDLE = 10.0

    def __init__(self, fs: Any, path: str, end: int):
        self.fs, self.path, self.end = fs, path, end
        self._cond = threading.Condition()
        self._blocks: Dict[int, bytes] = {}  # block number -> bytes
        self._next = 0  # the next block the thread reads
        self._want = 0  # the furthest byte asked for
        self._thread: Optional[threading.Thread] = None
        self._failed = False
        self._closed = False
        self._finishing = False
        self._pid = os.getpid()
        #: Blocks read (for tests and benchmarks: one request each on an object store).
        self.blocks_read = 0

    def read(self, offset: int, size: int) -> bytes:
        if os.getpid() != self._pid:  # a forked process: the thread (and maybe the lock) stayed behind
            return _ranged(self.fs, self.path, offset, size)
        first, last = offset // STREAM_BLOCK, (offset + size - 1) // STREAM_BLOCK
        with self._cond:
            streamed = not (self._closed or self._failed or size <= 0 or offset + size > self.end
                            or (first < self._next and first not in self._blocks))
            if streamed:
                self._want = max(self._want, offset + size)
                if first > self._next + 1 and offset - self._next * STREAM_BLOCK >= self.SKIP:
                    # far ahead (frames passed over): skip what lies between
                    self._blocks.clear()
                    self._next = first
                self._cond.notify_all()
                while self._next <= last and not self._failed and not self._closed:
                    if self._thread is None or not self._thread.is_alive():
                        self._thread = threading.Thread(target=self._run, name="cityscapes-io-shard", daemon=True)
                        self._thread.start()
                    self._cond.wait(timeout=1.0)
                parts = [self._blocks.get(k) for k in range(first, last + 1)]
                if any(p is None for p in parts):
                    streamed = False
                else:
                    start = offset - first * STREAM_BLOCK
                    data = b"".join(parts)[start:start + size]  # type: ignore[arg-type]
                    if offset + size >= self.end:
                        self._close()
                    return data
        return _ranged(self.fs, self.path, offset, size)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed or self._next * STREAM_BLOCK >= self.end:
                        self._thread = None
                        self._cond.notify_all()
                        return
                    if self._next * STREAM_BLOCK < self._limit():
                        break  # a block to read
                    # Caught up after the iteration moved on, or idle (checked again once the
                    # lock is back: a request may have come meanwhile): end; a request starts another.
                    if self._finishing or (not self._cond.wait(timeout=self.IDLE)
                                           and self._next * STREAM_BLOCK >= self._limit()):
                        self._thread = None
                        return
                number = self._next
            start = number * STREAM_BLOCK
            n = min(STREAM_BLOCK, self.end - start)
            try:
                data = read_range(self.fs, self.path, start, start + n)
            except BaseException:  # noqa: BLE001 - the members are read by range instead, which reports
                data = b""
            with self._cond:
                self.blocks_read += 1
                if len(data) != n:
                    self._failed = True
                    self._thread = None
                    self._cond.notify_all()
                    return
                if self._next == number:  # (not skipped past while reading)
                    self._blocks[number] = data
                    self._next = number + 1
                behind = self._want // STREAM_BLOCK - self.BEHIND
                for k in [k for k in self._blocks if k < behind]:
                    del self._blocks[k]
                self._cond.notify_all()

    def _limit(self) -> int:
        """How far the thread reads: ``AHEAD`` blocks past the furthest request, none past it
        once the iteration moved on."""
        return self._want + (0 if self._finishing else self.AHEAD * STREAM_BLOCK)

    def finish(self) -> None:
        """The iteration has moved past this shard: read nothing ahead any more (frames fetched
        ahead are still served)."""
        with self._cond:
            self._finishing = True
            self._cond.notify_all()

    def _close(self) -> None:
        self._closed = True
        self._blocks.clear()
        self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._close()


def _span(fs: Any, path: str, offset: int, size: int) -> Tuple[int, bytes]:
    return offset, _ranged(fs, path, offset, size)


def _ranged(fs: Any, path: str, offset: int, size: int) -> bytes:
    data = read_range(fs, path, offset, offset + size)
    if len(data) != size:
        raise InvalidFileError(path, f"truncated shard: {size} bytes expected at offset {offset}")
    return data


class TarSource(FileSource):
    """A frame's files as members of a tar shard: ``{kind: (name, offset, size)}`` in ``tar``,
    whose real size is ``shard_size`` (None: the shard is not there), and the confidences its
    metadata keeps (``{instanceIds value: score}``). Shown (``where``, messages) as
    ``<shard>/<member>``. A member is checked against the shard's size before it is read, so
    that nothing is allocated for bytes the shard does not hold."""

    def __init__(self, fs: Any, tar: str, shard_size: Optional[int], members: Dict[str, Tuple[str, int, int]],
                 stream: Optional[_ShardStream] = None, scores: Optional[Dict[int, float]] = None):
        super().__init__({kind: (fs, f"{tar}/{name}") for kind, (name, _, _) in members.items()})
        self._fs, self._tar, self._shard_size = fs, tar, shard_size
        self._members = members
        self._stream = stream
        self._scores: Dict[int, float] = dict(scores or {})

    def scores(self) -> Dict[int, float]:
        return dict(self._scores)

    def _fault(self, name: str, offset: int, size: int) -> Optional[CityscapesIOError]:
        """Why the member ``name`` cannot be read (None: it lies inside the shard)."""
        if self._shard_size is None:
            return DatasetNotFoundError(self._tar, f"not there ({INDEX_FILE} lists it): cannot read {name}")
        if offset + size > self._shard_size:
            return InvalidFileError(self._tar, f"truncated shard or wrong index: member {name} ({size} bytes at offset "
                                               f"{offset}) ends past the end of the shard ({self._shard_size} bytes)")
        return None

    def _member(self, kind: str) -> Tuple[str, int, int]:
        """``(name, offset, size)`` of a member, checked before it is read."""
        member = self._members[kind]
        fault = self._fault(*member)
        if fault is not None:
            raise fault
        return member

    def _fetched(self, kind: str, fut: "Future[Any]") -> Optional[bytes]:
        _, offset, size = self._members[kind]
        try:
            lo, span = fut.result()  # (offset, bytes) of the span fetched ahead
        except Exception:  # noqa: BLE001 - a failed fetch ahead is read again, and reported from there
            return None
        data = span[offset - lo:offset - lo + size]
        return data if len(data) == size else None

    def _read(self, kind: str) -> bytes:
        _, offset, size = self._member(kind)
        stream = self._stream
        return stream.read(offset, size) if stream is not None else _ranged(self._fs, self._tar, offset, size)

    def size(self) -> Optional[Tuple[int, int]]:
        for kind in self.GT_KINDS + ("image",):
            if kind in self._members:
                name, offset, size = self._member(kind)
                data = self._bytes.get(kind)
                if data is None:
                    data = _ranged(self._fs, self._tar, offset, min(size, 64)) if name.endswith(".png") \
                        else self.read_bytes(kind)
                w, h = png.image_size(data, self.path(kind))
                return h, w
        return None

    def fetch_ahead(self, kinds, pool) -> None:
        """Without the shard's stream (a frame alone, as a map-style dataset reads it): the
        members asked for, read in one ranged request (they lie side by side in the tar). With
        the stream, nothing: it reads ahead by itself. A member past the shard's end is left to
        its own read, which reports it."""
        if self._stream is not None and not self._stream._closed:
            return
        todo = [k for k in kinds if k in self._members and k not in self._bytes and k not in self._pending
                and self._fault(*self._members[k]) is None]
        if not todo:
            return
        lo = min(self._members[k][1] for k in todo)
        hi = max(self._members[k][1] + self._members[k][2] for k in todo)
        fut = pool.submit(_span, self._fs, self._tar, lo, hi - lo)
        for k in todo:
            self._pending[k] = fut

    def fresh(self) -> "TarSource":
        return TarSource(self._fs, self._tar, self._shard_size, self._members, scores=self._scores)

    def __getstate__(self):
        return {"fs": self._fs, "tar": self._tar, "shard_size": self._shard_size, "members": self._members,
                "scores": self._scores}

    def __setstate__(self, state) -> None:
        TarSource.__init__(self, state["fs"], state["tar"], state["shard_size"], state["members"],
                           scores=state.get("scores"))


def attach_streams(frames: Sequence[Frame], kinds: Optional[Callable[[Frame], Sequence[str]]] = None
                   ) -> List[Frame]:
    """Fresh copies of ``frames`` where each run of consecutive frames from one tar shard, in
    increasing position, shares one stream (read front to back, ahead of the reads) instead of
    reading by range; other frames are copied as they are. What an iteration over a share of a
    split (a DataLoader worker's) uses to read its shards in sequence. ``kinds(frame)``: the
    members that will be read; when they are less than half of a run's bytes (labels without
    the photos), the run is not streamed, since a stream reads everything."""
    out: List[Frame] = []
    run: List[Frame] = []

    def worth_it() -> bool:
        if kinds is None:
            return True
        total = used = 0
        for f in run:
            members = f.source._members  # type: ignore[attr-defined]
            wanted = set(kinds(f))
            for kind, (_, _, n) in members.items():
                total += n
                used += n if kind in wanted else 0
        return 2 * used >= total

    def flush() -> None:
        if len(run) > 1 and worth_it():
            first = run[0].source
            assert isinstance(first, TarSource)
            end = max(o + n for f in run for k, (_, o, n) in f.source._members.items()  # type: ignore[attr-defined]
                      if k not in UNSTREAMED)
            stream = _ShardStream(first._fs, first._tar, min(end, first._shard_size or 0))
            for f in run:
                f.source._stream = stream  # type: ignore[attr-defined]
        out.extend(run)
        run.clear()

    def start(frame: Frame) -> int:
        return min(o for _, o, _ in frame.source._members.values())  # type: ignore[attr-defined]

    for frame in frames:
        fresh = frame.fresh()
        src = fresh.source
        if not isinstance(src, TarSource) or not src._members:
            flush()
            out.append(fresh)
            continue
        if run and (run[-1].source._tar != src._tar or start(fresh) < start(run[-1])):  # type: ignore[attr-defined]
            flush()
        run.append(fresh)
    flush()
    return out


def _load_index(root) -> Tuple[dict, str]:
    """``shards.json`` parsed, and its name as messages show it."""
    path, where = root.join(INDEX_FILE), root.display(INDEX_FILE)
    try:
        with storage_errors(where, "cannot read"):
            raw = root.fs.cat_file(check_inside(root.fs, root.path, path))
    except FileNotFoundError:
        raise DatasetNotFoundError(str(root), f"no {INDEX_FILE}: not a tar-shard dataset written by cityscapes_io")
    index = jsonfile.loads(raw, where)
    if not isinstance(index, dict) or index.get("kind") != INDEX_KIND or not isinstance(index.get("splits"), dict):
        raise InvalidFileError(where, f"not a shard index (expected an object with kind {INDEX_KIND!r} and splits)")
    return index, where


@dataclass(frozen=True)
class _Record:
    """A frame of the index, checked: its id, annotation tree, members, ``{kind: (name,
    offset, size)}``, scores, ``{instanceIds value: confidence}``, part members, ``{suffix:
    (name, offset, size)}`` (see :func:`member_part`), and the photo key of its ``image``."""

    id: str
    annotations: str
    members: Dict[str, Tuple[str, int, int]]
    scores: Dict[int, float]
    parts: Dict[str, Tuple[str, int, int]] = field(default_factory=dict)
    image: str = DEFAULT_IMAGE_KEY


@dataclass(frozen=True)
class _Shard:
    """A shard of the index, checked: its path inside the root, relative (``file``) and on the
    filesystem (``path``), its real size (None when it is not there) and its frames."""

    file: str
    path: str
    size: Optional[int]
    records: Tuple[_Record, ...]


def _shown(value: Any) -> str:
    """A value found where another was expected, for a message: scalars as written, else their type."""
    if value is None or isinstance(value, (str, int, float)):
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."
    return type(value).__name__


class _IndexCheck:
    """Reads the shards of ``shards.json`` (``where`` in messages) under ``root``, checking every
    value as it goes: types, counts, member names and sizes, every shard's path resolved inside
    the root (:func:`~cityscapes_io.storage.resolve_inside`), each frame id once per split.
    Faults are :class:`InvalidFileError` naming the index and the entry."""

    def __init__(self, root: Any, where: str):
        self.root, self.where = root, where

    def fail(self, entry: str, what: str) -> InvalidFileError:
        return InvalidFileError(self.where, f"{entry}: {what}")

    def field(self, obj: Any, key: str, entry: str, kind: type = object, want: str = "") -> Any:
        """``obj[key]`` (of type ``kind``, described as ``want``) where ``obj`` is ``entry``."""
        if not isinstance(obj, dict):
            raise self.fail(entry, f"expected an object, got {_shown(obj)}")
        if key not in obj:
            raise self.fail(entry, f"no {key!r}")
        value = obj[key]
        if not isinstance(value, kind):
            raise self.fail(f"{entry} {key!r}", f"expected {want}, got {_shown(value)}")
        return value

    def count(self, value: Any, entry: str) -> int:
        """``value`` (``entry``) as a count: a non-negative integer."""
        if type(value) is not int or value < 0:  # (a bool is not a count)
            raise self.fail(entry, f"expected a count, got {_shown(value)}")
        return value

    def split(self, split: str, shards: Any) -> List[Tuple[str, str, List[_Record]]]:
        """``(file, path, records)`` of each shard of ``split``."""
        if not isinstance(shards, list):
            raise self.fail(f"split {split!r}", f"expected a list of shards, got {_shown(shards)}")
        out = []
        first: Dict[str, int] = {}  # frame id -> the shard that lists it
        for k, shard in enumerate(shards):
            entry = f"split {split!r} shard {k}"
            rel = self.field(shard, "file", entry)  # (its type is checked with the path)
            path = resolve_inside(self.root.fs, self.root.path, rel, index=self.where, entry=f"{entry} 'file'")
            frames = self.count(self.field(shard, "frames", entry), f"{entry} 'frames'")
            members = self.field(shard, "members", entry, list, "a list of frames")
            if frames != len(members):
                raise self.fail(entry, f"'frames' is {frames} but 'members' lists {len(members)} frames")
            records = [self.record(m, f"{entry} frame {j}") for j, m in enumerate(members)]
            for record in records:
                if record.id in first:
                    raise InvalidFileError(self.where, f"frame id {record.id!r} appears twice in split {split!r} "
                                                       f"(in shard {first[record.id]}, and again in shard {k})")
                first[record.id] = k
            out.append((self.root.relative(path), path, records))
        return out

    def record(self, obj: Any, entry: str) -> _Record:
        frame_id = self.field(obj, "id", entry, str, "a frame id")
        if not frame_id or "\0" in frame_id:
            raise self.fail(f"{entry} 'id'", f"expected a frame id, got {_shown(frame_id)}")
        annotations = obj.get("annotations", GT_DIR)
        if annotations not in ANNOTATION_DIRS:
            raise self.fail(f"{entry} 'annotations'", f"expected {' or '.join(ANNOTATION_DIRS)}, "
                                                      f"got {_shown(annotations)}")
        image = obj.get("image", DEFAULT_IMAGE_KEY)
        if not (isinstance(image, str) and _is_key(image) and is_photo_folder(parse_image_key(image)[0])):
            raise self.fail(f"{entry} 'image'", f"expected a photo key such as leftImg8bit_foggy@beta_0.02, "
                                                f"got {_shown(image)}")
        files = self.field(obj, "files", entry, list, "a list of members")
        key = frame_key(frame_id) + "."
        base = frame_dir(frame_id)[1]
        members: Dict[str, Tuple[str, int, int]] = {}
        parts: Dict[str, Tuple[str, int, int]] = {}
        for j, member in enumerate(files):
            at = f"{entry} member {j}"
            if not isinstance(member, list) or len(member) != 3:
                raise self.fail(at, f"expected [name, offset, size], got {_shown(member)}")
            name = member[0]
            suffix = name[len(key):] if isinstance(name, str) and name.startswith(key) else ""
            if not suffix or "/" in suffix or "\0" in suffix:
                raise self.fail(at, f"the name {_shown(name)} is not the frame's key {key[:-1]!r} and a suffix "
                                    f"such as .image.png")
            offset = self.count(member[1], f"{at} {name!r} offset")
            size = self.count(member[2], f"{at} {name!r} size")
            if size > MAX_MEMBER:
                raise self.fail(f"{at} {name!r} size", f"{size} bytes is more than a member can hold "
                                                       f"({MAX_MEMBER} bytes; refused)")
            kind = "image" if suffix.startswith("image.") else _KIND_OF.get(suffix, suffix)
            # The release's parts (a name no other member has) are the frame's parts, not its files.
            table = parts if kind == suffix and member_part(suffix, base) is not None else members
            if kind in table:
                raise self.fail(at, f"a second {kind} member ({name})")
            table[kind] = (name, offset, size)
        return _Record(frame_id, annotations, members, self.scores(obj.get("scores", {}), f"{entry} 'scores'"), parts,
                       image)

    def scores(self, obj: Any, entry: str) -> Dict[int, float]:
        """A frame's ``scores`` (``entry``): instanceIds values, as decimal strings, to numbers."""
        return _parse_scores(obj, lambda what: self.fail(entry, what))


def _file_sizes(fs: Any, paths: Iterable[str]) -> Dict[str, int]:
    """The real size of each of ``paths`` that is a file, from one listing of each folder
    holding them (fresh, not a cached one: the shards may have been written since)."""
    sizes: Dict[str, int] = {}
    for folder in sorted({posixpath.dirname(p) for p in paths}):
        try:
            with storage_errors(folder, "cannot list"):
                entries = fs.ls(folder, detail=True, refresh=True)
        except FileNotFoundError:
            continue
        for e in entries:
            if e.get("type") == "file" and isinstance(e.get("size"), int):
                sizes[posixpath.join(folder, posixpath.basename(e["name"]))] = e["size"]
    return sizes


class WdsReader(Reader):
    """Reads tar shards written by :class:`WdsWriter`, listing them from ``shards.json``. The
    index is checked as it is read (see :class:`_IndexCheck`): a fault in it is an error when
    the dataset is opened; a member past the end of its shard, when the member is read."""

    format = "wds"
    EVIDENCE = "shards.json"

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """The index of the shards, ``shards.json``."""
        return INDEX_FILE if listing.get(INDEX_FILE) == "file" else None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root = resolve_single_root(url, storage_options, "wds")
        self.roots = [self.root]
        self.on_error = on_error
        index, where = _load_index(self.root)
        labels = index.get("labels")
        if isinstance(labels, str) and labels in _NAMED_MAPS:
            self.labels = _NAMED_MAPS[labels]()
        elif isinstance(labels, dict):
            self.labels = LabelMap.parse_dataset_meta(labels, where)
        else:
            raise InvalidFileError(where, "no labels (expected 'labels': a dataset_meta object or a map's name)")
        wanted = [split] if isinstance(split, str) else (list(split) if split is not None else None)
        have = sorted(index["splits"])
        if wanted is not None:
            missing = [s for s in wanted if s not in have]
            if missing:
                raise DatasetNotFoundError(str(self.root), f"no split(s) {', '.join(missing)} "
                                                           f"(the shards hold: {', '.join(have) or 'none'})")
        self._splits = [s for s in have if wanted is None or s in wanted]
        self._cities = set([cities] if isinstance(cities, str) else (cities or ())) or None
        check = _IndexCheck(self.root, where)
        listed = {s: check.split(s, index["splits"][s]) for s in self._splits}
        sizes = _file_sizes(self.root.fs, [path for shards in listed.values() for _, path, _ in shards])
        self._by_split = {s: [_Shard(file, path, sizes.get(path), tuple(records)) for file, path, records in shards]
                          for s, shards in listed.items()}

    def splits(self) -> List[str]:
        return list(self._splits)

    def _shards(self, split: str) -> List[_Shard]:
        return self._by_split.get(split, [])

    def iter_frames(self, split: str) -> Iterator[Frame]:
        fs = self.root.fs
        for shard in self._shards(split):
            # The stream ends with the last member a reader may ask for (not those UNSTREAMED),
            # not the frames the cities filter leaves out; never past the shard's end.
            end = max((o + n for r in shard.records if self._wanted(r.id)
                       for k, (_, o, n) in r.members.items() if k not in UNSTREAMED), default=0)
            stream = _ShardStream(fs, shard.path, min(end, shard.size or 0))
            try:
                for record in shard.records:
                    if not self._wanted(record.id):
                        continue
                    frame = self._frame(fs, shard, split, record, stream)
                    yield frame
                    del frame
            except BaseException:  # the iteration is given up (closed, or failed): so is the stream
                stream.close()
                raise
            stream.finish()

    def _wanted(self, frame_id: str) -> bool:
        return self._cities is None or parse_frame_id(frame_id).city in self._cities

    def _frame(self, fs, shard: _Shard, split: str, record: _Record, stream: Optional[_ShardStream]) -> Frame:
        parts = _ShardParts(fs, shard.path, shard.size, record.id, record.parts, record.image,
                            record.members.get("image"))
        return Frame(record.id, split, self.labels,
                     TarSource(fs, shard.path, shard.size, record.members, stream, record.scores),
                     on_error=self.on_error, annotations=record.annotations,
                     parts=FrameParts(parts, split, record.id, record.image))

    def frame_count(self, split: str) -> int:
        if self._cities is None:
            return sum(len(s.records) for s in self._shards(split))
        return super().frame_count(split)

    def cities(self, split: str) -> List[str]:
        return sorted({Frame(r.id, split, self.labels).city or "" for s in self._shards(split)
                       for r in s.records} - {""})

    def split_locations(self, split: str) -> List[str]:
        return [self.root.display(s.file) for s in self._shards(split)]


# -- writing ------------------------------------------------------------------------------------
class _OpenShard:
    """The shard being filled: a tar in a temporary file, and its frames' member tables."""

    def __init__(self, split: str, number: int):
        self.split, self.number = split, number
        with temporary_errors("cannot start a tar shard"):
            self.file = tempfile.TemporaryFile()
            self.tar = tarfile.open(fileobj=self.file, mode="w", format=tarfile.PAX_FORMAT)
        self.records: List[dict] = []

    def add(self, name: str, data: bytes) -> Tuple[int, int]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = 0
        info.mode = 0o644
        info.uname = info.gname = ""
        with temporary_errors("cannot build the tar shard"):
            self.tar.addfile(info, io.BytesIO(data))
        # The data ends the member, padded to whole 512-byte blocks, after its header(s).
        return self.tar.offset - -(-len(data) // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE, len(data)

    def chunks(self) -> Chunks:
        with temporary_errors("cannot build the tar shard"):
            self.tar.close()
        f = self.file

        def read() -> Iterator[bytes]:
            with temporary_errors("cannot read back the tar shard"):
                f.seek(0)
                while True:
                    block = f.read(8 * 2**20)
                    if not block:
                        return
                    yield block

        return Chunks(read)

    def discard(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # a temporary file that could not be written: it goes away all the same


class WdsWriter(Writer):
    """Writes tar shards (see the module docstring).

    Parameters
    ----------
    frames_per_shard : int
        Frames per tar shard (default 100: about 250 MB with 2048x1024 photos). A split's last
        shard holds the rest. Each shard appears complete or not at all.

    Shard ``k`` of a split holds the frames ``[k*F, (k+1)*F)`` of that split in the input's
    order (``F = frames_per_shard``), whichever process writes it: a shard is the unit that
    ``workers`` (one task per shard), ``shard=(I, N)`` (shards number ``u % N == I``, counted
    over all splits in order) and ``resume`` hand out, so the output is byte for byte the same
    in every mode. The positions are fixed by the listing: a frame left out under
    ``on_error="skip"`` makes its shard one frame shorter and moves no other frame (a shard
    whose frames all fail is not written). ``resume`` passes over shards that are present
    (complete: a shard appears at once) and reads their member headers for the index; a frame
    left out of a present shard is reported again (delete the shard to write it anew).
    ``finalize`` does the same for every shard and reports the frames of shards not there.
    """

    format = "wds"
    KEEPS_SCORES = True
    ALWAYS_SAVES_MEDIA = True
    GROUPS_FRAMES = True
    UNIT = "shard"
    OPTIONS = Writer.OPTIONS + (Option("frames_per_shard", "wds: frames per tar shard (default 100)",
                                       argparse={"type": int, "metavar": "N"}), PARTS)

    def __init__(self, url, *, frames_per_shard: int = 100, parts: Union[str, Sequence[str], None] = None,
                 **options):
        if int(frames_per_shard) < 1:
            raise ValueError(f"frames_per_shard must be at least 1, got {frames_per_shard}")
        self.frames_per_shard = int(frames_per_shard)
        #: The release's parts carried as members (:func:`~cityscapes_io.formats.base.parse_parts`).
        self.parts: Tuple[str, ...] = parse_parts(parts)
        self._open: Optional[_OpenShard] = None
        self._in_unit = False
        self._next: Dict[str, int] = {}  # write() used directly: the next shard number per split
        super().__init__(url, **options)

    def setup(self, labels: LabelMap) -> None:
        train = labels.is_train_ids
        self._kinds = ("instanceTrainIds", "labelTrainIds") if train else ("instanceIds", "labelIds")

    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:
        key = frame_key(frame.id)
        files: List[Tuple[str, Any]] = []
        shape = None
        if seg is not None:
            if max((class_of(v) for v in seg.values), default=0) > 255:
                raise InvalidFileError(frame.id, "labelIds are 8-bit: label ids must be below 256")
            inst_kind, class_kind = self._kinds
            ids_png = frame.original(inst_kind) if seg.unchanged else None
            label_png = frame.original(class_kind) if ids_png is not None else None
            if ids_png is None:
                ids_png = png.encode_label_png(seg.ids.astype(np.uint16, copy=False))
            if label_png is None:
                label_png = png.encode_label_png(apply_lut(value_lut(seg.values, class_of), seg.ids))
            files += [(f"{key}.{MEMBER_KINDS[inst_kind]}", ids_png), (f"{key}.{MEMBER_KINDS[class_kind]}", label_png)]
            shape = seg.ids.shape
        photo = self.photo(frame, shape) if frame.has_image else None
        if photo is not None:
            files.insert(0, (f"{key}.image{photo[1]}", photo[0]))
            if shape is None:
                w, h = png.image_size(photo[0], frame.files.get("image", frame.id))
                shape = (h, w)
        meta: Dict[str, Any] = {"id": frame.id, "split": frame.split, "city": frame.city, "seq": frame.seq,
                                "frame": frame.frame, "annotations": frame.annotations,
                                "width": shape[1] if shape else None, "height": shape[0] if shape else None}
        if frame.image_key != DEFAULT_IMAGE_KEY:  # (the key the frame's photo is, or would be)
            meta["image"] = frame.image_key
        scores = _output_scores(frame, seg) if seg is not None else {}
        if scores:
            meta["scores"] = {str(v): score for v, score in sorted(scores.items())}
        files.append((f"{key}.json", json.dumps(meta, sort_keys=True).encode("utf-8")))
        return files + self._cityscapes_files(frame, seg) + self._part_members(frame)

    def _part_members(self, frame: Frame) -> List[Tuple[str, Any]]:
        """The members of the frame's files of the selected parts (:func:`part_member`), read;
        a file whose name is not one the release gives its folder's files has no member name
        and is left out (:meth:`_left_parts`, reported)."""
        parts = frame.parts
        if not self.parts or parts is None:
            return []
        key = frame_key(frame.id)
        files: List[Tuple[str, Any]] = []
        for folder, name, loc in parts.selected_files(self.parts):
            suffix = part_member(folder, parts.base, name)
            if suffix is not None:
                files.append((f"{key}.{suffix}", parts.read(loc, folder)))
        return files

    def _left_parts(self, frame: Frame) -> List[str]:
        """The frame's files of the selected parts that no member name holds (listing, no read)."""
        parts = frame.parts
        if not self.parts or parts is None:
            return []
        return [parts.shown(loc) for folder, name, loc in parts.selected_files(self.parts)
                if part_member(folder, parts.base, name) is None]

    def _cityscapes_files(self, frame: Frame, seg: Optional[Segments]) -> List[Tuple[str, Any]]:
        """The members a Cityscapes frame has besides its ids (after the metadata): its
        train-id files beside official ids, copied when the labels are unchanged, and its
        polygons file (see :meth:`~cityscapes_io.formats.base.Writer.output_polygons`)."""
        assert self.labels is not None
        key = frame_key(frame.id)
        files: List[Tuple[str, Any]] = []
        if seg is not None and seg.unchanged and not self.labels.is_train_ids:
            for kind in TRAIN_ID_KINDS:
                data = frame.original(kind)
                if data is not None:
                    files.append((f"{key}.{MEMBER_KINDS[kind]}", data))
        polygons, _ = self.output_polygons(frame, seg)
        if polygons is not None:
            files.append((f"{key}.{MEMBER_KINDS['polygons']}", polygons))
        return files

    def encode(self, frame: Frame) -> Encoded:
        """As every writer encodes; a frame whose train-id files stay out of the shard (its
        labels changed) says so in its entry's warnings (the conversion report lists it)."""
        encoded = super().encode(frame)
        names = {name for name, _ in encoded.files}
        key = frame_key(frame.id)
        notes = list(missing_parts(frame, self.parts))
        odd = self._left_parts(frame)
        if odd:
            notes.append(f"{len(odd)} file(s) of the selected parts not written: their names are not the release's "
                         f"names of their folder's files, which members are named after: {', '.join(odd[:3])}"
                         f"{' ...' if len(odd) > 3 else ''}")
        left = [kind for kind in TRAIN_ID_KINDS if frame.has(kind) and f"{key}.{MEMBER_KINDS[kind]}" not in names]
        if left:
            notes.append(f"{' and '.join(left)} not written: the labels changed for the output label map (train ids "
                         f"are carried beside unchanged official ids only)")
        if not notes:
            return encoded
        return replace(encoded, entry=replace(encoded.entry, warnings=encoded.entry.warnings + tuple(notes)))

    def lost_part(self, frame: Frame, files: Files) -> str:
        if not (frame.has("polygons") or isinstance(frame.source, DerivedSource)):
            return ""
        name = f"{frame_key(frame.id)}.{MEMBER_KINDS['polygons']}"
        if any(rel == name for rel, _ in files):
            return ""
        assert self.labels is not None
        return self.output_polygons(frame, None)[1]

    def photo_ext(self, frame: Frame) -> Optional[str]:
        # The photo is part of a sample: always kept (save_media is implied), bytes copied.
        if not frame.has_image:
            return None
        src = frame.image_ext or ".png"
        return self.image_ext or (src if src in png.IMAGE_EXTS else ".png")

    def touch(self, frame: Frame) -> None:
        super().touch(frame)
        if frame.has_image:  # the photo always goes into the shard
            frame.image_bytes()

    # -- units: one tar shard each -------------------------------------------------------------
    def units(self, frames: Iterable[Frame]) -> Iterator[Tuple[Any, List[Frame]]]:
        """Per split, ``frames_per_shard`` consecutive frames: key ``(split, shard number)``."""
        counts: Dict[str, int] = {}
        seen = set()
        key: Optional[Tuple[str, int]] = None
        group: List[Frame] = []
        for frame in frames:
            split = frame.split or "default"
            k = counts.get(split, 0)
            counts[split] = k + 1
            unit = (split, k // self.frames_per_shard)
            if unit != key:
                if group:
                    yield key, group
                if unit in seen:
                    raise ValueError(f"the frames of split {split} do not come one after another: "
                                     f"{shard_name(*unit)} would be written twice")
                seen.add(unit)
                key, group = unit, []
            group.append(frame)
        if group:
            yield key, group

    def unit_files(self, key: Any, frames: List[Frame]) -> List[str]:
        return [shard_name(*key)]

    def start_unit(self, key: Any) -> None:
        """Open shard ``key``: the frames put until :meth:`end_unit` go into it."""
        if self.closed:
            raise ValueError("write() on a closed writer")
        if self._open is not None:  # left open by a unit that never ended (an interrupted run)
            self._open.discard()
        self._open, self._in_unit = _OpenShard(*key), True

    def end_unit(self, key: Any, frames: List[Frame], results: List[Result]) -> List[Result]:
        """Put the shard into the destination whole, or, when the run stopped at one of its
        frames (``stop_on_error``), not at all (nothing half of it appears; a rerun or resume
        writes it whole)."""
        try:
            if self.stop_on_error and any(isinstance(r, CityscapesIOError) for r in results):
                return super().end_unit(key, frames, results)
            if any(isinstance(r, Entry) for r in results):
                try:
                    self._flush()
                except CityscapesIOError as exc:  # the shard is not there: none of its frames is
                    results = [exc if isinstance(r, Entry) else r for r in results]
        finally:
            self._in_unit = False
            if self._open is not None:
                self._open.discard()
                self._open = None
        return results

    def unit_entries(self, key: Any, frames: List[Frame]) -> List[Result]:
        """The entries of a shard that is there, from its member headers (one small read per
        member, none of the data)."""
        name = shard_name(*key)
        path = self.dest.path(name)
        try:
            members = _read_members(self.dest, path)
        except CityscapesIOError as exc:
            return [exc for _ in frames]
        wanted = {frame_key(f.id) for f in frames}
        strangers = sorted(set(members) - wanted)
        if strangers:
            error = InvalidFileError(path, f"holds frames that are not frames {key[1] * self.frames_per_shard} to "
                                           f"{(key[1] + 1) * self.frames_per_shard - 1} of split {key[0]} (written with "
                                           f"another frames_per_shard, or from another input?): {strangers[0]}")
            return [error for _ in frames]
        out: List[Result] = []
        for frame in frames:
            files = members.get(frame_key(frame.id))
            if files is None:
                out.append(InvalidFileError(path, f"frame {frame.id} is not in it: it was left out when the shard "
                                                  f"was written (delete the shard to write it again)"))
                continue
            try:
                scores = _stored_scores(self.dest, path, frame, files)
            except CityscapesIOError as exc:
                out.append(exc)
                continue
            record = _index_record(frame, files, scores)
            out.append(Entry(frame.split or "default", frame.id, (name, _record_text(record))))
        return out

    # -- writing a frame -------------------------------------------------------------------------
    def put(self, frame: Frame) -> Entry:
        encoded = self.encode_next(frame)
        split = encoded.entry.split
        shard = self._open
        if not self._in_unit:  # write() used directly: shards cut as the frames come
            if shard is not None and (shard.split != split or len(shard.records) >= self.frames_per_shard):
                self._flush()
                shard = None
            if shard is None:
                number = self._next.get(split, 0)
                self._next[split] = number + 1
                shard = self._open = _OpenShard(split, number)
        assert shard is not None and shard.split == split
        files = []
        scores: Dict[int, float] = {}
        meta = f"{frame_key(frame.id)}.json"
        for name, data in encoded.files:
            offset, size = shard.add(name, bytes(data))  # type: ignore[arg-type]
            files.append([name, offset, size])
            if name == meta:
                scores = _meta_scores(bytes(data), name)  # type: ignore[arg-type]
        record = _index_record(frame, files, scores)
        shard.records.append(record)
        return replace(encoded.entry, info=(shard_name(split, shard.number), _record_text(record)))

    def _flush(self) -> None:
        shard, self._open = self._open, None
        if shard is None:
            return
        try:
            self.dest.put(shard_name(shard.split, shard.number), shard.chunks())
        finally:
            shard.discard()

    def close(self) -> None:
        if not self.closed:
            try:
                self._flush()
            except BaseException:
                self.abort()
                raise
        super().close()

    def abort(self) -> None:
        if self._open is not None:
            self._open.discard()
            self._open = None
        super().abort()

    def planned_files(self, frame: Frame) -> List[str]:
        raise ValueError("tar shards are checked shard by shard (unit_files), not frame by frame")

    def index_files(self) -> Files:
        assert self.labels is not None
        named = [name for name, make in _NAMED_MAPS.items() if make() == self.labels]
        splits: Dict[str, List[dict]] = {}
        for split in sorted(self.subsets):
            shards = splits[split] = []
            for frame_id in self.subsets[split]:
                name, record = self.infos[(split, frame_id)]
                if not shards or shards[-1]["file"] != name:
                    shards.append({"file": name, "frames": 0, "members": []})
                shards[-1]["members"].append(jsonfile.loads(record, INDEX_FILE))
                shards[-1]["frames"] += 1
        index = {"kind": INDEX_KIND, "version": 1, "frames_per_shard": self.frames_per_shard,
                 "labels": named[0] if named else jsonfile.loads(self.labels.to_dataset_meta(), INDEX_FILE),
                 "splits": splits}
        return [(INDEX_FILE, json.dumps(index, sort_keys=True).encode("utf-8"))]


def _output_scores(frame: Frame, seg: Segments) -> Dict[int, float]:
    """The confidences of the frame's segments keyed by their values in the output ids
    (``seg``): values merged into one keep the best, a label the output lacks loses its score
    with its pixels. A score that is not a finite number is refused (JSON has none)."""
    given = {i.value: i.score for i in frame.instances() if i.score is not None}
    for value, score in given.items():
        if not math.isfinite(score):
            raise InvalidFileError(frame.where, f"instance value {value}: score {score} is not a finite number")
    if not given or seg.unchanged:
        return given
    m = seg.mapping
    assert m is not None
    lut = m.lut(list(given))
    out: Dict[int, float] = {}
    for value, score in given.items():
        if class_of(value) not in m.missing:
            new = int(lut[value])
            out[new] = max(score, out.get(new, score))
    return out


def _parse_scores(obj: Any, fail: Callable[[str], CityscapesIOError]) -> Dict[int, float]:
    """A frame's ``scores`` as its metadata and the index spell them (``{"26001": 0.93}``:
    instanceIds values as decimal strings, to finite numbers) as ``{26001: 0.93}``;
    ``fail(reason)`` is the error raised for a wrong entry."""
    if not isinstance(obj, dict):
        raise fail(f"expected an object of instanceIds values to scores, got {_shown(obj)}")
    out: Dict[int, float] = {}
    for key, score in obj.items():
        if not (key.isascii() and key.isdigit() and key == str(int(key)) and int(key) <= MAX_INSTANCE_VALUE):
            raise fail(f"{_shown(key)} is not an instanceIds value (0..{MAX_INSTANCE_VALUE} in decimal)")
        try:
            value = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None
        except OverflowError:
            value = None
        if value is None or not math.isfinite(value):
            raise fail(f"the score of {key} is not a finite number: {_shown(score)}")
        out[int(key)] = value
    return out


def _meta_scores(data: bytes, where: str) -> Dict[int, float]:
    """The ``scores`` of a frame's metadata member (``where`` in messages)."""
    meta = jsonfile.loads(data, where)
    if not isinstance(meta, dict):
        raise InvalidFileError(where, f"expected the frame's metadata, an object, got {_shown(meta)}")
    return _parse_scores(meta.get("scores", {}), lambda what: InvalidFileError(where, f"'scores': {what}"))


def _index_record(frame: Frame, files: List[list], scores: Dict[int, float]) -> dict:
    """A frame's record in the index: id, annotation tree, members and (when it has any) scores."""
    record: Dict[str, Any] = {"id": frame.id, "annotations": frame.annotations, "files": files}
    if frame.image_key != DEFAULT_IMAGE_KEY:
        record["image"] = frame.image_key
    if scores:
        record["scores"] = {str(v): score for v, score in sorted(scores.items())}
    return record


def _stored_scores(dest: Any, path: str, frame: Frame, files: List[list]) -> Dict[int, float]:
    """The scores a shard that is there (a sink's full ``path``) keeps in the metadata member
    of ``frame`` (its ``[name, offset, size]`` among ``files``): one ranged read of it."""
    meta = f"{frame_key(frame.id)}.json"
    for name, offset, size in files:
        if name == meta:
            where = f"{path}/{name}"
            if size > MAX_META:
                raise InvalidFileError(where, f"{size} bytes, more than a frame's metadata takes ({MAX_META} bytes; "
                                              f"refused)")
            with storage_errors(where, "cannot read"):
                data = read_range(dest.fs, path, offset, offset + size)
            if len(data) != size:
                raise InvalidFileError(path, f"truncated shard: {size} bytes expected at offset {offset}")
            return _meta_scores(data, where)
    return {}


def _record_text(record: dict) -> str:
    """A frame's record in the index, as the (hashable, picklable) text its entry carries."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"))


class _Bounded(io.RawIOBase):
    """A file for :mod:`tarfile` to read whose reads stop at its real size: a header declaring
    more (a PAX or long-name block of 10**12 bytes) allocates no more than the file holds."""

    def __init__(self, f: Any, size: int):
        super().__init__()
        self._f, self.size = f, size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, n: Optional[int] = -1) -> bytes:
        left = max(self.size - self._f.tell(), 0)
        return self._f.read(left if n is None or n < 0 else min(n, left))

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


def _read_members(dest: Any, path: str) -> Dict[str, List[list]]:
    """Per frame key, the ``[name, offset, size]`` of its members in the tar at ``path`` (a
    sink's full path), in the tar's order, read from the member headers. Every header is
    checked before the next is looked for: a size that is negative, or runs past the end of
    the file or past :data:`MAX_MEMBER`, a member name that is not a relative path, and
    anything but zeros after the last header are :class:`InvalidFileError` naming the shard."""
    fs = getattr(dest, "fs", None)
    if fs is None:
        raise InvalidFileError(path, "cannot read a shard back from this destination")
    members: Dict[str, List[list]] = {}
    try:
        with storage_errors(path, "cannot read"):
            with fs.open(path, "rb", block_size=2**16, cache_type="readahead") as f:
                total = f.size if isinstance(getattr(f, "size", None), int) else fs.size(path)
                with tarfile.open(fileobj=_Bounded(f, total), mode="r:") as tf:
                    for info in tf:
                        problem = _header_problem(info, total)
                        if problem is not None:
                            raise InvalidFileError(path, f"member {info.name!r}: {problem}")
                        if info.isfile():
                            folder, _, base = info.name.rpartition("/")
                            key = (folder + "/" if folder else "") + base.split(".", 1)[0]
                            members.setdefault(key, []).append([info.name, info.offset_data, info.size])
                    end = tf.offset  # where the listing stopped: the end-of-archive marker, if whole
                f.seek(end)
                tail = f.read(tarfile.RECORDSIZE + 2 * tarfile.BLOCKSIZE + 1)
    except CityscapesIOError:
        raise
    except (tarfile.TarError, ValueError) as exc:  # (tarfile lets a crafted PAX header's ValueError through)
        raise InvalidFileError(path, f"not a complete tar shard: {exc}") from None
    except RecursionError:  # tarfile follows each extended (long name, PAX) header by a recursive call
        raise InvalidFileError(path, "not a complete tar shard: a chain of extended headers too long to follow") \
            from None
    if tail.strip(b"\0") or end + len(tail) != total:
        raise InvalidFileError(path, f"not a complete tar shard: no tar header at byte {end} of {total} (a damaged "
                                     f"header, or data after the end of the archive)")
    return members


def _header_problem(info: tarfile.TarInfo, total: int) -> Optional[str]:
    """What is wrong with a member header of a tar of ``total`` bytes (None: nothing)."""
    size, offset = info.size, info.offset_data
    if size < 0:
        return f"declares {size} bytes (a negative size)"
    if offset + size > total:
        return f"declares {size} bytes at offset {offset}, past the end of the shard ({total} bytes)"
    if size > MAX_MEMBER:
        return f"declares {size} bytes, more than a member can hold ({MAX_MEMBER} bytes; refused)"
    parts = info.name.split("/")
    if info.isfile() and (info.name.startswith("/") or "\0" in info.name or any(p in ("", ".", "..") for p in parts)):
        return "the name is not a relative path inside the shard"
    return None
