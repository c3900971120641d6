"""Sinks: where writers put files.

A :class:`Sink` is a small contract — ``put``, ``put_frame``, ``put_many``, ``close``, ``abort`` —
that each destination implements fully:

- :class:`LocalSink`: a folder on local disk; every file is written under a temporary name in
  its folder and renamed, so it appears complete or not at all; ``put_many`` stages a set of
  files and renames them together.
- :class:`ObjectStoreSink`: a prefix on any other fsspec filesystem (S3, memory, ...); a PUT is
  atomic already, and a frame's files go up concurrently in one batched call.
- :class:`ZipSink`: a ``.zip`` archive on any fsspec filesystem, written as a stream (members one
  after another, the central directory on close); it writes nothing outside the archive.

Every relative path is checked with :func:`~cityscapes_io.names.safe_relpath`, so nothing is
ever written outside the destination. A destination that already holds files is refused
(``existing="refuse"``), replaced (``"replace"``), or kept (``"keep"``: resume, shards and the
final step of a sharded job, which share a destination by design).
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import uuid
import zipfile
from abc import ABC, abstractmethod
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from ..errors import CityscapesIOError, InvalidFileError, RefusedError, StorageError
from ..names import safe_relpath
from . import Root, find_files, is_remote, location, overlap, root_locations, storage_errors

__all__ = ["Sink", "LocalSink", "ObjectStoreSink", "ZipSink", "open_sink", "refuse_sources", "written_in_one_go",
           "TMP_PREFIX"]

TMP_PREFIX = ".cityscapes-io-tmp-"
EXISTING = ("refuse", "replace", "keep")

class Chunks:
    """A file's content made piece by piece when it is written (a large index file, such as the
    COCO JSON of a split, is never held whole in memory). ``make()`` returns a fresh iterator of
    ``bytes`` each time it is called; a sink iterates it once."""

    def __init__(self, make: Callable[[], Iterator[bytes]]):
        self.make = make

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.make())


Data = Union[bytes, Chunks]
Files = Iterable[Tuple[str, Data]]


def _checked(rel: str) -> str:
    try:
        return safe_relpath(rel)
    except ValueError as exc:
        raise InvalidFileError(rel, f"refused to write outside the destination: {exc}") from None


def _refuse_existing(url: str, entries: List[str]) -> None:
    shown = ", ".join(sorted(entries)[:5]) + (f", ... ({len(entries)} entries)" if len(entries) > 5 else "")
    raise RefusedError(url, f"destination is not empty (holds {shown}): pass overwrite=True (--overwrite) to "
                       f"replace it, or resume=True (--resume) to continue an interrupted conversion")


class Sink(ABC):
    """Where a writer puts files; see the module docstring.

    Attributes
    ----------
    url : str
    resumable : bool
        Whether a later run can continue what an interrupted one wrote (``listing`` tells what
        is there).
    has_folders : bool
        Whether an empty folder can exist there (:meth:`put_folder`): not on an object store.
    """

    url: str
    resumable = True
    has_folders = True

    @abstractmethod
    def put(self, rel: str, data: Data) -> None:
        """Write one file (bytes, or :class:`Chunks` for a large one), complete or not at all."""

    def put_frame(self, files: Files) -> None:
        """Write one frame's files."""
        for rel, data in files:
            self.put(rel, data)

    @abstractmethod
    def put_many(self, files: Files) -> None:
        """Write a set of files (the index files) so that they appear together."""

    def put_folder(self, rel: str) -> None:
        """Make the folder ``rel``, empty when nothing is put there, where the destination has
        folders; nothing where it has none (an object store: a prefix exists only through the
        objects under it)."""

    def close(self) -> None:
        """Finish: what was written is complete."""

    def abort(self) -> None:
        """Give up: finish nothing more (a partial archive never appears)."""

    def path(self, rel: str) -> str:
        """Full path of ``rel`` in this destination (as :meth:`listing` gives them)."""
        return _checked(rel)

    def listing(self, prefix: str = "") -> Set[str]:
        """Full paths of every file already under the destination, or under its folder
        ``prefix`` (for resume)."""
        return set()

    def read(self, rel: str) -> Optional[bytes]:
        """The bytes of a file already in the destination (a job record, for resume), or None
        when there is none."""
        return None

    def remove_temporaries(self) -> int:
        """Delete temporary files left by an interrupted run; returns how many."""
        return 0

    def __str__(self) -> str:
        return self.url


class _FolderSink(Sink):
    """A folder (local) or prefix (object store) on one fsspec filesystem."""

    def __init__(self, url: str, fs: Any, root: str, existing: str):
        self.url, self.fs, self.root = url, fs, root.rstrip("/") or root
        entries = self._entries()
        if entries and existing == "refuse":
            _refuse_existing(url, entries)
        if entries and existing == "replace":
            self._clear()
        self._made: Set[str] = set()

    def _entries(self) -> List[str]:
        with storage_errors(self.url, "cannot open destination"):
            if not self.fs.exists(self.root):
                return []
            if not self.fs.isdir(self.root):
                raise RefusedError(self.url, "destination exists and is not a folder")
            return [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self.root, detail=False)
                    if p.rstrip("/") != self.root]

    def _clear(self) -> None:
        with storage_errors(self.url, "cannot replace the destination's contents"):
            for p in self.fs.ls(self.root, detail=False):
                if p.rstrip("/") != self.root:
                    self.fs.rm(p, recursive=True)

    def path(self, rel: str) -> str:
        rel = _checked(rel)
        return f"{self.root}/{rel}" if self.root else rel

    @property
    def has_folders(self) -> bool:  # type: ignore[override]
        return not is_remote(self.fs)

    def put_folder(self, rel: str) -> None:
        if not self.has_folders:
            return
        path = self.path(rel)
        with storage_errors(path, "cannot create the folder"):
            self.fs.makedirs(path, exist_ok=True)

    def read(self, rel: str) -> Optional[bytes]:
        path = self.path(rel)
        try:
            with storage_errors(path, "cannot read"):
                return self.fs.cat_file(path)
        except FileNotFoundError:
            return None

    def listing(self, prefix: str = "") -> Set[str]:
        top = self.path(prefix) if prefix else self.root
        try:
            with storage_errors(self.url, "cannot list"):
                return set(find_files(self.fs, top))
        except FileNotFoundError:
            return set()


class LocalSink(_FolderSink):
    """A folder on local disk, every file written atomically (temporary name, then rename)."""

    def __init__(self, url: str, fs: Any, root: str, existing: str):
        super().__init__(url, fs, os.path.abspath(root), existing)
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise StorageError(self.url, f"cannot create destination: {exc.strerror or exc}") from exc

    def _staged(self, rel: str, data: Data) -> Tuple[str, str]:
        path = self.path(rel)
        parent = os.path.dirname(path)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        tmp = os.path.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as f:
                for piece in ((data,) if isinstance(data, bytes) else data):
                    f.write(piece)
        except BaseException:
            _unlink(tmp)
            raise
        return tmp, path

    def put(self, rel: str, data: Data) -> None:
        try:
            tmp, path = self._staged(rel, data)
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(self.path(rel), f"cannot write: {exc.strerror or exc}") from exc

    def put_many(self, files: Files) -> None:
        staged: List[Tuple[str, str]] = []
        try:
            for rel, data in files:
                staged.append(self._staged(rel, data))
            for tmp, path in staged:
                os.replace(tmp, path)
        except BaseException as exc:  # Ctrl-C or a failing stream too: no staged file is left behind
            for tmp, _ in staged:
                _unlink(tmp)
            if not isinstance(exc, OSError):
                raise
            where = getattr(exc, "filename", None) or self.url
            raise StorageError(str(where), f"cannot write the index files: {exc.strerror or exc}") from exc

    def remove_temporaries(self) -> int:
        removed = 0
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(TMP_PREFIX):
                    removed += _unlink(os.path.join(dirpath, name))
        return removed

    def _clear(self) -> None:
        try:
            for name in os.listdir(self.root):
                path = os.path.join(self.root, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
        except OSError as exc:
            raise StorageError(self.url, f"cannot replace the destination's contents: {exc.strerror or exc}") from exc


class ObjectStoreSink(_FolderSink):
    """A prefix on an object store (or any non-local fsspec filesystem); each PUT is atomic."""

    def put(self, rel: str, data: Data) -> None:
        path = self.path(rel)
        try:
            with storage_errors(path, "cannot write"):
                if not is_remote(self.fs):  # filesystems with folders (memory, ...) need them made
                    parent = posixpath.dirname(path)
                    if parent and parent not in self._made:
                        self.fs.makedirs(parent, exist_ok=True)
                        self._made.add(parent)
                if isinstance(data, bytes):
                    self.fs.pipe_file(path, data)
                else:
                    self._stream(path, data)
        except FileNotFoundError as exc:  # a bucket that does not exist, for one
            raise StorageError(path, f"cannot write: {exc}") from exc

    def _stream(self, path: str, data: Chunks) -> None:
        """A multipart upload: the object appears when the file is closed, and only then; a
        stream that fails midway is discarded (closing it would commit what was written)."""
        f = self.fs.open(path, "wb")
        try:
            for piece in data:
                f.write(piece)
        except BaseException:
            discard = getattr(f, "discard", None)
            with contextlib.suppress(Exception):  # failing already: the cause is what is raised
                if callable(discard):
                    discard()
                if self.fs.exists(path):
                    self.fs.rm(path)
            raise
        f.close()

    def put_frame(self, files: Files) -> None:
        files = list(files)
        if len(files) < 2 or not is_remote(self.fs) or not all(isinstance(d, bytes) for _, d in files):
            return super().put_frame(files)
        batch = {self.path(rel): data for rel, data in files}
        try:
            with storage_errors(self.url, "cannot write"):
                self.fs.pipe(batch)  # one batched call: the PUTs run concurrently
        except StorageError:  # once more one by one: a transient error may pass, a lasting one names its file
            super().put_frame(files)

    def put_many(self, files: Files) -> None:
        # Each object appears whole; a set of objects cannot appear at once on a store.
        for rel, data in files:
            self.put(rel, data)


class _Stream:
    """The file an archive is streamed into, as zipfile sees it: writes go through until the
    archive is abandoned, after which nothing more reaches the file (so closing the ZipFile then
    cannot complete a short archive). A write that fails abandons it: the file holds part of
    those bytes, and zipfile's own cleanup (closing the member) must neither write behind them
    nor try the upload again, which would take the retries twice and hide the cause under
    "File not in write mode". It does not seek: zipfile writes data descriptors."""

    def __init__(self, file: Any):
        self.file = file
        self.abandoned = False
        self._pos = 0

    def write(self, data: bytes) -> int:
        if not self.abandoned:
            try:
                self.file.write(data)
            except BaseException:
                self.abandoned = True
                raise
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        if not self.abandoned:
            self.file.flush()


class ZipSink(Sink):
    """A ``.zip`` archive written as a stream on any fsspec filesystem. On an object store the
    upload is completed on close and abandoned on abort; elsewhere (local disk, memory, ...) the
    archive is written under a temporary name beside it and renamed on close, deleted on abort,
    so an interrupted archive never appears under its name. Members are stored (photos and PNGs
    are compressed already)."""

    resumable = False

    def __init__(self, url: str, fs: Any, path: str, existing: str):
        self.url, self.fs, self.archive = url, fs, path
        self.local = isinstance(fs, LocalFileSystem)
        with storage_errors(url, "cannot create the archive"):
            exists = fs.exists(path)
            if exists and fs.isdir(path):
                raise RefusedError(url, "destination is a folder, not an archive")
            if exists and existing == "refuse":
                raise RefusedError(url, "archive exists already: pass overwrite=True (--overwrite) to replace it")
            parent = posixpath.dirname(path)
            if parent and not is_remote(fs):
                fs.makedirs(parent, exist_ok=True)
            self._tmp = None if is_remote(fs) else f"{path}{TMP_PREFIX}{uuid.uuid4().hex}"
            self._file = fs.open(self._tmp or path, "wb")
        self._stream = _Stream(self._file)
        self._zip: Optional[zipfile.ZipFile] = zipfile.ZipFile(self._stream, "w",  # type: ignore[call-overload]
                                                               compression=zipfile.ZIP_STORED)
        self._names: Set[str] = set()
        self._broken: Optional[str] = None  # why the archive cannot be completed any more

    def put(self, rel: str, data: Data) -> None:
        name = _checked(rel)
        if name in self._names:
            raise InvalidFileError(f"{self.url}/{name}", "already written to this archive")
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_STORED
        self._write(info, data)

    def put_folder(self, rel: str) -> None:
        """A directory entry ``rel/``, unless a member is in that folder already."""
        name = _checked(rel).rstrip("/") + "/"
        if any(n.startswith(name) for n in self._names):
            return
        info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = (0o40755 << 16) | 0x10  # a folder, drwxr-xr-x (unzip makes it 0600 without)
        self._write(info, b"")

    def _write(self, info: zipfile.ZipInfo, data: Data) -> None:
        name = info.filename
        if self._zip is None:
            raise ValueError(f"{self.url}: archive closed")
        if self._broken is not None:
            raise StorageError(f"{self.url}/{name}", f"cannot write: the archive was abandoned ({self._broken})")
        try:
            with storage_errors(f"{self.url}/{name}", "cannot write"):
                if isinstance(data, bytes):
                    self._zip.writestr(info, data)
                else:
                    with self._zip.open(info, "w", force_zip64=True) as member:
                        for piece in data:
                            member.write(piece)
        except BaseException as exc:
            self._break(exc)
            raise
        self._names.add(name)

    def _break(self, exc: BaseException) -> None:
        """A member was not written whole: the archive cannot be completed (a later frame, under
        ``on_error="skip"``, must not be added behind it, nor the short archive committed).
        Nothing more reaches its file, and an upload is given up now, so that nothing is sent
        for it any more: every later ``put`` and ``close`` raises at once, naming the cause."""
        self._broken = str(exc) or type(exc).__name__
        self._stream.abandoned = True
        if self._tmp is None:
            _give_up(self._file)

    def put_many(self, files: Files) -> None:
        for rel, data in files:
            self.put(rel, data)

    def listing(self, prefix: str = "") -> Set[str]:
        return {n for n in self._names if not prefix or n.startswith(prefix.rstrip("/") + "/")}

    def close(self) -> None:
        if self._zip is None:
            return
        if self._broken is not None:
            self.abort()
            raise StorageError(self.url, f"cannot finish the archive: it was abandoned ({self._broken})")
        zf, self._zip = self._zip, None
        try:
            with storage_errors(self.url, "cannot finish the archive"):
                zf.close()
                self._file.close()
                if self._tmp and self.local:
                    os.replace(self._tmp, self.archive)
                elif self._tmp:
                    self.fs.mv(self._tmp, self.archive)
        except BaseException:
            self._stream.abandoned = True
            if self._tmp is None:
                _give_up(self._file)
            else:
                with contextlib.suppress(Exception):  # the temporary goes either way
                    self._file.close()
                with contextlib.suppress(Exception):
                    self._remove_tmp()
            raise

    def _remove_tmp(self) -> None:
        assert self._tmp is not None
        if self.local:
            _unlink(self._tmp)
        else:
            self.fs.rm(self._tmp)

    def abort(self) -> None:
        if self._zip is None:
            return
        zf, self._zip = self._zip, None
        self._stream.abandoned = True
        zf.close()  # writes its directory into the void: nothing reaches the file any more
        if self._tmp is None:  # an upload: abandoned, never completed
            if self._broken is None:  # else given up already (each abort takes the storage's retries)
                _give_up(self._file)
            return
        with contextlib.suppress(Exception):  # the temporary goes either way
            self._file.close()
        with contextlib.suppress(Exception):
            self._remove_tmp()


def _give_up(file: Any) -> None:
    """Abandon an upload for good: its multipart upload aborted (one request, whose failure is
    not reported: the cause is), and the file marked closed, so that nothing is sent later
    (fsspec's buffered files otherwise retry the whole upload when they are collected, and
    report "File not in write mode" when they were discarded)."""
    discard = getattr(file, "discard", None)
    with contextlib.suppress(Exception):  # giving up already: nothing more to report
        if callable(discard):
            discard()
    with contextlib.suppress(Exception):  # a plain file's `closed` cannot be set; it has no upload
        file.closed = True


def is_archive_url(url) -> bool:
    """Whether ``url`` names an archive to write (a path or URL ending in ``.zip``, not a chain)."""
    url = str(url)
    return url.lower().rstrip("/").endswith(".zip") and "::" not in url


def written_in_one_go(sink: Sink, asked: str) -> Optional[ValueError]:
    """The one rule for a destination that is one archive (a sink that is not
    :attr:`~Sink.resumable`): it is written in one go by one process, so whatever writes it in
    parts — shards, resume, worker processes, the final step after shards, Dask — is refused.
    Returns the ValueError to raise (after abandoning the writer) naming what was ``asked``
    (``"workers"``, ``"shard, resume or workers"``, ...), or None when ``sink`` can be written in
    parts."""
    if sink.resumable:
        return None
    return ValueError(f"{sink.url}: an archive is written in one go by one process: no {asked}")


def refuse_sources(url: str, fs: Any, path: str, sources: Sequence[Root], existing: str = "refuse") -> None:
    """The one guard between a writing command and its inputs: raise when the destination
    ``path`` on ``fs`` is one of ``sources`` (its files would be overwritten while read), holds
    one (writing there could overwrite them, replacing it would delete them), or lies inside
    one and is to be replaced (``existing="replace"``: the replacement deletes source files).
    Writing into a new folder inside a source destroys nothing and is allowed. Places are
    compared by filesystem and resolved path, whatever the URLs' spelling (local, ``file://``,
    ``s3://``, archives)."""
    dst = location(fs, path)
    for root in sources:
        for src in root_locations(root):
            rel = overlap(dst, src)
            if rel == "same":
                raise RefusedError(url, f"destination is the source {root}: choose another place")
            if rel == "holds":
                raise RefusedError(url, f"destination holds the source {root}: writing there could overwrite "
                                   f"or delete its files, choose another place")
            if rel == "inside" and existing == "replace":
                raise RefusedError(url, f"refused to replace a folder inside the source {root}: its files "
                                   f"would be deleted")


def open_sink(url, storage_options: Optional[dict] = None, *, existing: str = "refuse",
              sources: Sequence[Root] = ()) -> Sink:
    """The sink for ``url``: a :class:`ZipSink` when it ends in ``.zip`` or is a chained zip
    (``zip::s3://bucket/out.zip``, ``storage_options`` then going to the filesystem that holds
    the archive, plain or keyed by its protocol), a :class:`LocalSink`
    on local disk, an :class:`ObjectStoreSink` elsewhere. A destination that overlaps one of
    ``sources`` (the roots the command reads, a project folder) is refused by
    :func:`refuse_sources` before anything is deleted or written."""
    if existing not in EXISTING:
        raise ValueError(f"existing must be one of {EXISTING}, got {existing!r}")
    url = str(url)
    inner = _zip_chain(url)
    if inner is not None:  # zip::s3://bucket/out.zip: the archive is written on the inner filesystem
        options = {k: v for k, v in (storage_options or {}).items() if k != "zip"}
        fs, root = _open_fs(inner, options, url)
        refuse_sources(url, fs, root, sources, existing)
        return ZipSink(url, fs, root, existing)
    fs, root = _open_fs(url, storage_options)
    refuse_sources(url, fs, root, sources, existing)
    if is_archive_url(url):
        return ZipSink(url, fs, root, existing)
    if isinstance(fs, LocalFileSystem):
        return LocalSink(url, fs, root, existing)
    return ObjectStoreSink(url, fs, root, existing)


def _zip_chain(url: str) -> Optional[str]:
    """The URL of the archive itself when ``url`` is a chained zip destination
    (``zip::s3://bucket/out.zip``, ``zip://::file.zip``), else None. fsspec opens such a chain
    for reading only, so a writer opens the archive's own filesystem and streams the zip there."""
    head, sep, rest = url.partition("::")
    return rest if sep and head in ("zip", "zip://") and rest else None


def _open_fs(url: str, storage_options: Optional[dict], name: Optional[str] = None) -> Tuple[Any, str]:
    """``url``'s filesystem and path. Options are given as to :func:`fsspec.core.url_to_fs`:
    plain, or keyed by protocol (``{"s3": {...}}``, which fsspec gives to that filesystem of a
    chain); ``name`` is the URL errors are reported under (the destination as the user spelled
    it), ``url`` by default."""
    url_name = name or url
    try:
        return url_to_fs(url, **(storage_options or {}))
    except ImportError as exc:
        raise StorageError(url_name, f"cannot open: {exc} (for s3:// install the extra: pip install "
                                     f"'cityscapes-io[s3]')") from exc
    except (ValueError, OSError) as exc:
        raise StorageError(url_name, f"cannot open: {exc}") from exc


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
        return 1
    except OSError:
        return 0
