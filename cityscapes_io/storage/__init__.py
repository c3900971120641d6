"""Where bytes live: resolving dataset roots to fsspec filesystems, and reading many files at once.

A *root* is one filesystem object and a path inside it. A dataset may be spread over several
roots (the official release ships ``gtFine_trainvaltest.zip`` and ``leftImg8bit_trainvaltest.zip``
separately). Each root keeps one filesystem object for its whole life: archives are opened once,
never per member.

Writing goes through the sinks of :mod:`cityscapes_io.storage.sinks` (a folder, an object
store, a zip archive), which use what this module resolves.
"""
from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from ..errors import CityscapesIOError, DatasetNotFoundError, StorageError, UnsafePathError

__all__ = ["Root", "resolve_root", "resolve_roots", "is_remote", "is_read_only", "resolve_inside", "check_inside"]


@dataclass(frozen=True)
class Root:
    """One filesystem and a path inside it. Picklable (fsspec filesystems pickle by their
    constructor arguments and reopen nothing until used)."""

    fs: Any
    path: str
    url: str

    def join(self, *parts: str) -> str:
        base = self.path.rstrip("/")
        rel = "/".join(p.strip("/") for p in parts if p)
        if not base:
            return rel
        return f"{base}/{rel}" if rel else base

    def relative(self, path: str) -> str:
        base = self.path.rstrip("/")
        path = path.lstrip("/") if not base.startswith("/") else path
        if base and path.startswith(base + "/"):
            return path[len(base) + 1 :]
        return path

    def display(self, rel: str = "") -> str:
        """How messages name ``rel`` under this root: the root's URL, then the relative path."""
        return f"{self.url.rstrip('/')}/{rel}".rstrip("/") if rel else self.url

    def child(self, name: str) -> "Root":
        """The root of the folder ``name`` inside this one."""
        return Root(self.fs, self.join(name), self.display(name))

    def __str__(self) -> str:
        return self.url


def _protocol(fs) -> str:
    p = fs.protocol
    return p[0] if isinstance(p, (tuple, list)) else p


def is_read_only(fs) -> bool:
    """True for filesystems that cannot take new files: archives read in place (zip, tar) and
    plain HTTP."""
    return _protocol(fs) in ("zip", "tar", "libarchive", "http", "https", "github")


def is_remote(fs) -> bool:
    """True for filesystems where each request has network latency worth hiding (S3, GCS, HTTP…)."""
    return bool(getattr(fs, "async_impl", False))


def resolve_root(url: Union[str, "os.PathLike[str]"], storage_options: Optional[Mapping] = None) -> Root:
    """Turn a path or URL into a :class:`Root`.

    Accepts local paths, any fsspec URL (``s3://bucket/prefix``, ``zip://::file.zip``, chains
    such as ``zip::s3://bucket/file.zip``) and paths ending in ``.zip`` (opened as an archive,
    local or remote). ``storage_options`` go to the filesystem that holds the data; for a chained
    URL they may also be keyed by protocol (``{"s3": {...}}``), as fsspec does.
    """
    url = str(url)
    opts: Dict[str, Any] = dict(storage_options or {})
    try:
        if "::" not in url and url.rstrip("/").lower().endswith(".zip"):
            inner_fs, inner_path = url_to_fs(url, **opts)
            if not inner_fs.isfile(inner_path):
                raise DatasetNotFoundError(url, "archive not found")
            fs = fsspec.filesystem("zip", fo=inner_path, target_protocol=_protocol(inner_fs),
                                   target_options=opts or None)
            return Root(fs, "", url)
        if "::" in url and url.split("::", 1)[0].split("://", 1)[0] in ("zip", "tar") and opts:
            inner = url.split("::", 1)[1].split("://", 1)[0] if "://" in url.split("::", 1)[1] else "file"
            protocols = set(fsspec.available_protocols())
            if not any(k in protocols and isinstance(v, dict) for k, v in opts.items()):
                opts = {inner: opts}  # plain options are meant for the filesystem holding the archive
        fs, path = url_to_fs(url, **opts)
    except DatasetNotFoundError:
        raise
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(url, f"not found ({exc})") from exc
    except ImportError as exc:  # fsspec: the backend of a protocol is not installed
        raise StorageError(url, _missing_backend(url, exc)) from exc
    except ValueError as exc:
        raise DatasetNotFoundError(url, f"cannot open: {exc}") from exc
    except TypeError as exc:  # a filesystem refusing the options it was given
        raise StorageError(url, f"cannot open: {exc} (check storage_options)") from exc
    except Exception as exc:  # noqa: BLE001 - the storage's own errors (network, credentials, bad archive)
        if not is_storage_error(exc):
            raise
        raise StorageError(url, f"cannot open: {_describe(exc)}") from exc
    path = path.rstrip("/") if path not in ("/", "") else path
    if _protocol(fs) in ("zip", "tar"):
        path = path.strip("/")
    try:
        if path and not fs.isdir(path):
            raise DatasetNotFoundError(url, _missing(fs, path))
    except CityscapesIOError:
        raise
    except Exception as exc:  # noqa: BLE001 - network or server errors while looking at the root
        if not is_storage_error(exc):
            raise
        raise StorageError(url, f"cannot read: {_describe(exc)}") from exc
    return Root(fs, path, url)


def _missing(fs, path: str) -> str:
    """Why ``path`` is not a folder of ``fs``: on an object store, a bucket that does not exist
    is said as such (not "no such directory")."""
    if fs.exists(path):
        return "not a directory"
    bucket = path.split("/", 1)[0]
    if is_remote(fs) and bucket and (bucket == path.rstrip("/") or not fs.exists(bucket)):
        return f"bucket {bucket!r} does not exist (or these credentials cannot see it)"
    return "no such directory"


#: The extra of this package that installs a protocol's fsspec backend.
_EXTRAS = {"s3": "s3", "s3a": "s3"}


def _missing_backend(url: str, exc: ImportError) -> str:
    """What to install when fsspec cannot import the backend of a protocol in ``url``."""
    protocols = [part.split("://", 1)[0] for part in url.split("::") if "://" in part]
    protocols += [part for part in url.split("::")[:-1] if "://" not in part]
    for proto in protocols:
        if proto in _EXTRAS:
            return f"{proto}:// needs s3fs: pip install 'cityscapes-io[{_EXTRAS[proto]}]' ({exc})"
    named = f" for {protocols[0]}://" if protocols else ""
    return f"the fsspec backend{named} is not installed: {exc}"


def resolve_roots(url, storage_options: Optional[Mapping] = None) -> List[Root]:
    """One :class:`Root` per URL; ``url`` may be a single URL or a list of them."""
    urls: Sequence = [url] if isinstance(url, (str, bytes)) or hasattr(url, "__fspath__") else list(url)
    if not urls:
        raise DatasetNotFoundError(None, "no dataset root given")
    return [resolve_root(u, storage_options) for u in urls]


Location = Tuple[str, str]


def location(fs, path: str) -> Location:
    """``(protocol, path)`` naming a place independently of how its URL was spelled (local paths
    resolved, trailing slashes dropped), so that two places can be compared."""
    if isinstance(fs, LocalFileSystem):
        return "file", os.path.realpath(path)
    return _protocol(fs), path.rstrip("/")


def display_path(fs, path: str) -> str:
    """How messages name ``path`` of ``fs``: inside an archive, the archive's path followed by
    the member's (``/data/gtFine.zip/gtFine/val/…png``), so a file of a dataset spread over
    several archives can be found; elsewhere the path itself."""
    if _protocol(fs) in ("zip", "tar"):
        archive = getattr(getattr(fs, "of", None), "path", None)
        if archive:
            return f"{str(archive).rstrip('/')}/{path.lstrip('/')}"
    return path


def root_locations(root: Root) -> List[Location]:
    """Where a root's data lives: its folder and, for a root inside an archive, the archive
    itself (fsspec's archive filesystems keep the archive's OpenFile as ``of``)."""
    out = [location(root.fs, root.path)] if _protocol(root.fs) not in ("zip", "tar") else []
    archive = getattr(root.fs, "of", None)
    if archive is not None and hasattr(archive, "fs") and hasattr(archive, "path"):
        out.append(location(archive.fs, archive.path))
    return out


def overlap(a: Location, b: Location) -> Optional[str]:
    """``"same"`` when two locations are one place, ``"inside"`` when ``a`` lies inside ``b``,
    ``"holds"`` when ``a`` holds ``b``; None when they are apart."""
    if a[0] != b[0]:
        return None
    pa, pb = a[1].rstrip("/") or "/", b[1].rstrip("/") or "/"
    if pa == pb:
        return "same"
    if pa.startswith(pb.rstrip("/") + "/"):
        return "inside"
    if pb.startswith(pa.rstrip("/") + "/"):
        return "holds"
    return None


def resolve_single_root(url, storage_options: Optional[Mapping], what: str) -> Root:
    """The one root of a format whose dataset lives under a single folder (VOC, CamVid)."""
    roots = resolve_roots(url, storage_options)
    if len(roots) != 1:
        raise ValueError(f"a {what} dataset has one root, got {len(roots)}")
    return roots[0]


def listdir(root: Root, rel: str) -> Dict[str, str]:
    """``{name: "directory"|"file"}`` of a folder under ``root``; empty when it does not exist."""
    path = root.join(rel)
    try:
        with storage_errors(root.display(rel), "cannot list"):
            entries = root.fs.ls(path, detail=True)
    except FileNotFoundError:
        return {}
    out = {}
    for e in entries:
        name = posixpath.basename(e["name"].rstrip("/"))
        if not name or e["name"].rstrip("/") == path.rstrip("/"):
            continue
        out[name] = "directory" if e.get("type") == "directory" else "file"
    return out


def find_files(fs, path: str) -> List[str]:
    """Every file under ``path`` (``fs.find``). On local disk the folders are walked directly:
    fsspec's local ``find`` stats every file, which is most of the time of listing a city of
    thousands of frames (links to folders below ``path`` are not descended into, as there).
    Raises FileNotFoundError when ``path`` does not exist."""
    if _protocol(fs) in ("file", "local"):
        if not os.path.isdir(path):
            if os.path.exists(path):
                return [path]
            raise FileNotFoundError(path)
        out: List[str] = []
        for dirpath, dirnames, filenames in os.walk(path):  # links to folders not followed, as in fsspec
            dirnames.sort()
            base = dirpath.replace(os.sep, "/")
            out.extend(f"{base}/{name}" for name in sorted(filenames))
        return out
    return fs.find(path)


# -- paths found inside dataset files -------------------------------------------------------------
_DRIVE = re.compile(r"^[A-Za-z]:")


def resolve_inside(fs, root: str, rel: str, *, base: Optional[str] = None, index: str, entry: str) -> str:
    """The filesystem path of ``rel``, a path read from inside a dataset file (an index such as
    ``shards.json``, a list line, a COCO ``file_name``, a prediction's mask path), resolved
    against ``base`` (the folder it is relative to; ``root`` when not given) and kept inside
    ``root``. This is the one place such paths are interpreted: every reader calls it.

    Refused with :class:`UnsafePathError` naming ``index`` (the file the path was found in)
    and ``entry`` (which entry of it): an empty path, an absolute one, a drive letter, a NUL
    byte, a URL, a path that leaves ``root`` once normalised, and, on local disk, a path through
    a symbolic link whose target lies outside ``root`` (see :func:`check_inside`).
    """
    if not isinstance(rel, str):
        raise UnsafePathError(index, f"{entry}: a path must be a string, got {type(rel).__name__}")

    def refuse(why: str) -> UnsafePathError:
        return UnsafePathError(index, f"{entry}: path {rel!r} {why} (refused)")

    if not rel:
        raise refuse("is empty")
    if "\0" in rel:
        raise refuse("contains a NUL byte")
    if rel.startswith(("/", "\\")) or _DRIVE.match(rel):
        raise refuse("is absolute: paths inside a dataset or submission are relative to its root")
    if "://" in rel or "::" in rel:
        raise refuse("is a URL: paths inside a dataset or submission are relative to its root")
    top = root.rstrip("/") if root not in ("/",) else root
    start = (base if base is not None else root).rstrip("/") or top
    if not _under(start, top):
        raise refuse(f"is relative to {start!r}, outside the root {top!r}")
    rel_posix = rel.replace("\\", "/")
    joined = posixpath.normpath(f"{start}/{rel_posix}" if start else rel_posix)
    if not _under(joined, top):
        raise refuse("leads outside its root")
    check_inside(fs, top, joined, index=index, entry=entry, rel=rel)
    return joined


def _under(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or lies below it (both normalised, ``/``-separated)."""
    if top in ("", "."):
        return not (path == ".." or path.startswith("../") or path.startswith("/"))
    if top == "/":
        return path.startswith("/")
    return path == top or path.startswith(top + "/")


@functools.lru_cache(maxsize=256)
def _real_root(root: str) -> str:
    # A root's real path, once per root (a list of 10 000 lines checks one root 10 000 times).
    return os.path.realpath(root)


def check_inside(fs, root: str, path: str, *, index: Optional[str] = None, entry: Optional[str] = None,
                 rel: Optional[str] = None) -> str:
    """On local disk, refuse ``path`` when symbolic links take it outside ``root`` (a prediction
    folder whose ``.txt`` links to ``/etc/passwd``); other filesystems have no links. Returns
    ``path``. ``index``/``entry`` name where the path was found (by default the path itself)."""
    if not isinstance(fs, LocalFileSystem):
        return path
    real_root = _real_root(root or ".")
    real = os.path.realpath(path)
    if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
        return path
    if index is None:
        raise UnsafePathError(path, f"a symbolic link to {real}, outside the root {root} (refused)")
    raise UnsafePathError(index, f"{entry}: path {rel or path!r} leads through a symbolic link to {real}, "
                                 f"outside the root {root} (refused)")


# -- reading files --------------------------------------------------------------------------------
@contextlib.contextmanager
def storage_errors(where: str, doing: str) -> Iterator[None]:
    """Inside the block, the storage's own failures (an OSError, a backend's or its HTTP client's
    exception) become ``StorageError(where, "<doing>: <reason>")``; a missing file and this
    library's own errors pass through; anything else is a bug and propagates as it is."""
    try:
        yield
    except (FileNotFoundError, CityscapesIOError):
        raise
    except Exception as exc:  # noqa: BLE001 - sorted below: only storage failures are turned into errors
        if not is_storage_error(exc):
            raise
        raise StorageError(where, f"{doing}: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    """A storage failure in words: the storage's own message, or, for a builtin exception raised
    inside a storage library (an archive it cannot index), what that means."""
    if isinstance(exc, OSError) or type(exc).__module__ != "builtins":
        return str(exc)
    return f"corrupt archive or storage ({type(exc).__name__} inside the storage library: {exc})"


def read_file(fs, path: str) -> bytes:
    """A whole file. On object stores as one ranged GET from byte 0 (a plain read first asks for
    the size, a HEAD, unless a listing is cached); an empty object refuses the range, so it is
    read plainly then. Failures become errors naming the file."""
    try:
        with storage_errors(display_path(fs, path), "cannot read"):
            if is_remote(fs):
                try:
                    return fs.cat_file(path, start=0)
                except FileNotFoundError:
                    raise
                except OSError:
                    pass  # an empty object refuses the range: read it plainly
            return fs.cat_file(path)
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(display_path(fs, path), "file disappeared or cannot be read") from exc


def read_range(fs, path: str, start: int, end: int) -> bytes:
    """Bytes ``start:end`` of a file (a PNG header), errors naming the file."""
    try:
        with storage_errors(display_path(fs, path), "cannot read"):
            return fs.cat_file(path, start=start, end=end)
    except FileNotFoundError as exc:
        raise DatasetNotFoundError(display_path(fs, path), "file disappeared or cannot be read") from exc


def fetch_many(fs, paths: Sequence[str]) -> Dict[str, Any]:
    """``{path: bytes or exception}`` for several files in one batched call (concurrent on
    asynchronous filesystems; ranged from byte 0 on object stores, so no HEAD per file)."""
    return fs.cat(list(paths), on_error="return", **({"start": 0} if is_remote(fs) else {}))


def is_storage_error(exc: BaseException) -> bool:
    """Whether an exception is a storage failure: an OSError, or one of a storage library's own
    (fsspec and its backends, their HTTP clients) rather than a bug of this library's code."""
    if isinstance(exc, OSError):
        return True
    if any(cls.__module__.split(".", 1)[0] in _STORAGE_LIBRARIES for cls in type(exc).__mro__):
        return True
    # A builtin exception raised inside a storage library's own code (zipfile indexing an
    # archive with a member of empty name raises IndexError there): the storage failed on its
    # input, not this library.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return isinstance(exc, (IndexError, KeyError, ValueError, TypeError, AttributeError, EOFError)) and \
        str(module).split(".", 1)[0] in _STORAGE_LIBRARIES


#: Top-level packages whose exceptions are storage failures (fsspec backends and their clients).
_STORAGE_LIBRARIES = frozenset({"fsspec", "s3fs", "gcsfs", "adlfs", "botocore", "aiobotocore", "boto3", "aiohttp",
                                "requests", "urllib3", "azure", "zipfile"})
