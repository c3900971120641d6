"""Destinations: where writers put files.

A :class:`Destination` is one fsspec filesystem and a root path. Every relative path is checked
with :func:`~cityscapes_io.names.safe_relpath`, so nothing is ever written outside the root. On
local disk each file is written to a temporary name in its folder and renamed, so it appears
complete or not at all; on object stores a PUT is already atomic. A destination ending in
``.zip`` is written as a streaming archive (members one after another, the central directory
on close), locally or on any fsspec filesystem.
"""
from __future__ import annotations

import os
import posixpath
import threading
import uuid
import zipfile
from typing import Optional

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from .errors import CityscapesIOError, InvalidFileError
from .names import safe_relpath

__all__ = ["Destination", "open_destination"]

TMP_PREFIX = ".cityscapes-io-tmp-"


class Destination:
    """A root to write files under.

    Parameters
    ----------
    url : str
        Path or fsspec URL of the root (created if missing).
    storage_options : dict, optional
    """

    def __init__(self, url: str, storage_options: Optional[dict] = None):
        self.url = str(url)
        self.fs, root = url_to_fs(self.url, **(storage_options or {}))
        self.root = root.rstrip("/") or root
        self.local = isinstance(self.fs, LocalFileSystem)
        self._made: set = set()
        self._lock = threading.Lock()
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except OSError as exc:
            raise CityscapesIOError(self.url, f"cannot create destination: {exc}") from exc

    def path(self, rel: str) -> str:
        try:
            rel = safe_relpath(rel)
        except ValueError as exc:
            raise InvalidFileError(rel, f"refused to write outside the destination: {exc}") from None
        return f"{self.root}/{rel}" if self.root else rel

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def listing(self) -> set:
        """Full paths of every file under the root (one listing; for resume)."""
        try:
            return set(self.fs.find(self.root))
        except FileNotFoundError:
            return set()

    def put_frame(self, files) -> None:
        """Write one frame's files: one by one on local disk; concurrently (one batched call)
        on object stores, where each PUT is atomic and there are no folders to create."""
        if self.local or len(files) < 2 or not getattr(self.fs, "async_impl", False):
            for rel, data in files:
                self.put(rel, data)
            return
        batch = {self.path(rel): data for rel, data in files}
        try:
            self.fs.pipe(batch)
        except Exception:
            # Once more one by one: transient errors may pass, and a lasting one names its file.
            for rel, data in files:
                self.put(rel, data)

    def put(self, rel: str, data: bytes) -> None:
        """Write ``data`` to ``rel`` (atomically on local disk)."""
        path = self.path(rel)
        parent = posixpath.dirname(path)
        try:
            if parent and parent not in self._made and not getattr(self.fs, "async_impl", False):
                self.fs.makedirs(parent, exist_ok=True)
                with self._lock:
                    self._made.add(parent)
            if self.local:
                tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{uuid.uuid4().hex}")
                try:
                    with open(tmp, "wb") as f:
                        f.write(data)
                    os.replace(tmp, path)
                except BaseException:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                    raise
            else:
                self.fs.pipe_file(path, data)
        except OSError as exc:
            raise CityscapesIOError(path, f"cannot write: {exc.strerror or exc}") from exc
        except Exception as exc:  # the storage's own (network) errors after its retries
            raise CityscapesIOError(path, f"cannot write: {exc}") from exc

    def put_many(self, files) -> None:
        """Write several files so that either all appear or none does (on local disk: all are
        written under temporary names first, then renamed; elsewhere one after another)."""
        if not self.local:
            for rel, data in files:
                self.put(rel, data)
            return
        staged = []
        try:
            for rel, data in files:
                path = self.path(rel)
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{uuid.uuid4().hex}")
                staged.append((tmp, path))
                with open(tmp, "wb") as f:
                    f.write(data)
            for tmp, path in staged:
                os.replace(tmp, path)
        except OSError as exc:
            for tmp, _ in staged:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
            where = getattr(exc, "filename", None) or self.url
            raise CityscapesIOError(str(where), f"cannot write the index files: {exc.strerror or exc}") from exc

    def abort(self) -> None:
        """Give up: close without finishing (nothing to undo for a folder)."""

    def remove_temporaries(self) -> int:
        """Delete temporary files left by an interrupted run (local disk); returns how many."""
        if not self.local:
            return 0
        removed = 0
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                if name.startswith(TMP_PREFIX):
                    try:
                        os.unlink(os.path.join(dirpath, name))
                        removed += 1
                    except OSError:
                        pass
        return removed

    def close(self) -> None:
        pass

    def __str__(self) -> str:
        return self.url


class ZipDestination(Destination):
    """A ``.zip`` archive written as a stream (members are not seekable back into)."""

    def __init__(self, url: str, storage_options: Optional[dict] = None):
        self.url = str(url)
        self.fs, self.root = url_to_fs(self.url, **(storage_options or {}))
        self.local = False
        self._lock = threading.Lock()
        parent = posixpath.dirname(self.root)
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        self._tmp = f"{self.root}{TMP_PREFIX}{uuid.uuid4().hex}" if isinstance(self.fs, LocalFileSystem) else None
        self._file = self.fs.open(self._tmp or self.root, "wb")
        self._zip = zipfile.ZipFile(self._file, "w", compression=zipfile.ZIP_STORED)
        self._names: set = set()

    def path(self, rel: str) -> str:
        try:
            return safe_relpath(rel)
        except ValueError as exc:
            raise InvalidFileError(rel, f"refused to write outside the destination: {exc}") from None

    def exists(self, rel: str) -> bool:
        return self.path(rel) in self._names

    def listing(self) -> set:
        return set(self._names)

    def put(self, rel: str, data: bytes) -> None:
        name = self.path(rel)
        with self._lock:
            if name in self._names:
                raise InvalidFileError(f"{self.url}/{name}", "already written to this archive")
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            self._zip.writestr(info, data)
            self._names.add(name)

    def put_many(self, files) -> None:
        for rel, data in files:
            self.put(rel, data)

    def remove_temporaries(self) -> int:
        return 0

    def abort(self) -> None:
        """Give up: the archive never appears under its final name."""
        if self._zip is None:
            return
        self._zip = None
        discard = getattr(self._file, "discard", None)
        if callable(discard):  # remote: abandon the upload
            try:
                discard()
            except Exception:  # pragma: no cover - best effort
                pass
        else:
            self._file.close()
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except OSError:
                pass

    def close(self) -> None:
        if self._zip is None:
            return
        self._zip.close()
        self._file.close()
        self._zip = None
        if self._tmp:
            os.replace(self._tmp, self.root)


def open_destination(url, storage_options: Optional[dict] = None) -> Destination:
    """A :class:`Destination` for ``url`` (a :class:`ZipDestination` when it ends in ``.zip``)."""
    if str(url).lower().endswith(".zip") and "::" not in str(url):
        return ZipDestination(url, storage_options)
    return Destination(url, storage_options)
