"""Projects: a small, readable JSON file recording sources and the operations applied to them.

``project.json``::

    {
      "cityscapes_io_project": 1,
      "sources": [{"name": "cityscapes", "url": "../data/Cityscapes", "format": "cityscapes",
                   "storage_options": null}],
      "operations": [{"op": "filter", "split": ["val"]},
                     {"op": "remap_labels", "mapping": {"car": "vehicle"}, "default": "keep"}],
      "merge": {"on_duplicate": "error"}
    }

Local sources are stored relative to the project folder, so the folder can be moved together
with its data; URLs (``s3://…``, chained ``zip::…``) are stored as given. Absolute paths
(written by earlier versions) still load. Exporting streams the sources through the operations
into a writer; nothing is copied into the project.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from . import jsonfile
from .errors import CityscapesIOError, DatasetNotFoundError
from .formats import resolve_format
from .dataset import open as open_dataset
from .ops import MergedReader, merge
from .storage import Root, resolve_root

__all__ = ["Project", "apply_operations", "require_cities", "check_unique_ids", "source_format", "PROJECT_FILE"]

PROJECT_FILE = "project.json"
_OPS = ("filter", "remap_labels", "train_ids", "rename_splits")


def _as_list(value) -> Optional[List[str]]:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def require_cities(ds, cities: Union[str, Sequence[str]], splits: Optional[Sequence[str]] = None) -> None:
    """Raise :class:`DatasetNotFoundError` naming the cities found when one of ``cities`` is in
    none of ``splits`` (all splits when None), as an unknown split is an error.

    Lists the split folders; only when a city is not among their folders (formats without city
    folders, such as VOC and CamVid) are the frames listed, for the cities of their ids (nothing
    is decoded)."""
    wanted = _as_list(cities) or []
    names = list(splits) if splits else ds.splits()
    if not set(names) <= set(ds.splits()):
        return  # the filter reports the unknown split
    found = {c for s in names for c in ds.cities(s)}
    if not set(wanted) <= found:  # VOC, CamVid, or merged with them: the cities of the frame ids
        found |= {f.city for s in names for f in ds.frames(s) if f.city}
    missing = [c for c in wanted if c not in found]
    if missing:
        where = f" in split {', '.join(names)}" if splits else ""
        raise DatasetNotFoundError(", ".join(ds.roots) or None,
                                   f"no city {', '.join(map(repr, missing))}{where} "
                                   f"(found: {', '.join(sorted(found)) or 'none'})")


def apply_operations(ds, operations: List[Dict[str, Any]]):
    """Apply recorded operations (dicts with an ``op`` key) to a dataset, lazily, in order.

    A filter naming a city that the dataset does not have is an error (as an unknown split is),
    not an empty result."""
    for op in operations:
        kind = op.get("op")
        if kind == "filter":
            if op.get("cities"):
                require_cities(ds, op["cities"], _as_list(op.get("split")))
            ds = ds.filter(split=op.get("split"), cities=op.get("cities"), ids=op.get("ids"),
                           labels=op.get("labels"))
        elif kind == "remap_labels":
            ds = ds.remap_labels(op["mapping"], default=op.get("default", "keep"))
        elif kind == "train_ids":
            ds = ds.to_train_ids()
        elif kind == "rename_splits":
            ds = ds.rename_splits(op["names"])
        else:
            raise CityscapesIOError(None, f"unknown operation {kind!r} (known: {', '.join(_OPS)})")
    return ds


def check_unique_ids(ds, operations: Iterable[Dict[str, Any]] = ()) -> None:
    """Raise before anything is written when a split of ``ds`` (a merged dataset) holds a frame
    id twice.

    Lists frames only, decoding nothing: of ``operations`` only what selects frames by name
    (filters by split, city and id, split renames) is applied; a label filter, which would
    decode every frame, is left out, so the check may see more frames than the export."""
    by_name: List[Dict[str, Any]] = []
    for op in operations:
        if op.get("op") == "filter":
            op = {k: v for k, v in op.items() if k != "labels"}
            if len(op) > 1:
                by_name.append(op)
        elif op.get("op") == "rename_splits":
            by_name.append(op)
    view = apply_operations(ds, by_name)
    for split in view.splits():
        seen = set()
        for frame in view.frames(split):
            if frame.id in seen:
                raise CityscapesIOError(frame.id, f"duplicate frame id in split {split!r} (nothing written); "
                                                  "merge with on_duplicate 'first' or 'rename'")
            seen.add(frame.id)


def source_format(ds) -> str:
    """The format ``ds`` was read from, under its operations (a project's dataset is a view of
    its sources); for merged sources, their formats (``"cityscapes + voc"``, each once)."""
    reader = ds.source_reader
    if isinstance(reader, MergedReader):
        return " + ".join(dict.fromkeys(source_format(d) for d in reader.datasets))
    return str(reader.format)


def _is_url(url: str) -> bool:
    return "://" in url or "::" in url


class Project:
    """A project folder holding ``project.json``."""

    def __init__(self, path: str, data: Dict[str, Any]):
        self.path = path
        self.data = data

    @property
    def file(self) -> str:
        return os.path.join(self.path, PROJECT_FILE)

    @property
    def folder(self) -> Root:
        """The project folder as a root: an input of every export, which no output may
        overlap (see :func:`cityscapes_io.storage.sinks.refuse_sources`)."""
        return resolve_root(os.path.abspath(self.path))

    @classmethod
    def create(cls, path: str, *, overwrite: bool = False) -> "Project":
        os.makedirs(path, exist_ok=True)
        project = cls(path, {"cityscapes_io_project": 1, "sources": [], "operations": [],
                             "merge": {"on_duplicate": "error"}})
        if os.path.exists(project.file) and not overwrite:
            raise CityscapesIOError(project.file, "a project exists here already (use --overwrite)")
        project.save()
        return project

    @classmethod
    def load(cls, path: str) -> "Project":
        file = os.path.join(path, PROJECT_FILE)
        try:
            with open(file, "rb") as f:
                data = jsonfile.loads(f.read(), file)
        except FileNotFoundError:
            raise DatasetNotFoundError(file, "no project here (create one with 'project create')") from None
        if not isinstance(data, dict) or "sources" not in data:
            raise CityscapesIOError(file, "not a cityscapes_io project file")
        return cls(path, data)

    def save(self) -> None:
        tmp = self.file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, self.file)

    # -- source locations ---------------------------------------------------------------------
    def _stored(self, url: str) -> str:
        """How a source location is written in project.json: local paths relative to the
        project folder, URLs as given."""
        if _is_url(url):
            return url
        return os.path.relpath(os.path.abspath(url), os.path.abspath(self.path))

    def resolve(self, url: str) -> str:
        """Where a stored source location points: relative paths are taken from the project
        folder; absolute paths and URLs are used as they are."""
        if _is_url(url) or os.path.isabs(url):
            return url
        return os.path.normpath(os.path.join(os.path.abspath(self.path), url))

    def source_urls(self, source: Dict[str, Any]) -> Union[str, List[str]]:
        """A recorded source's location(s), resolved (one URL, or a list for several roots)."""
        url = source["url"]
        if isinstance(url, (list, tuple)):
            return [self.resolve(u) for u in url]
        return self.resolve(url)

    @staticmethod
    def _identity(url) -> tuple:
        """What makes two locations the same source: real local paths, URLs without a trailing /."""
        urls = url if isinstance(url, (list, tuple)) else [url]
        return tuple(u.rstrip("/") if _is_url(u) else os.path.realpath(u) for u in map(str, urls))

    # -- editing ------------------------------------------------------------------------------
    def add_source(self, url, *, format: str = "cityscapes", name: Optional[str] = None,
                   storage_options: Optional[dict] = None) -> Dict[str, Any]:
        """Record a source (checked by opening it). Local paths are stored relative to the
        project folder. The same location in the same format cannot be added twice."""

        format = resolve_format(format)
        urls = [str(u) for u in (url if isinstance(url, (list, tuple)) else [url])]
        absolute = [u if _is_url(u) else os.path.abspath(u) for u in urls]
        ident = self._identity(absolute)
        for s in self.data["sources"]:
            if self._identity(self.source_urls(s)) == ident and resolve_format(s.get("format", "cityscapes")) == format:
                raise CityscapesIOError(self.file, f"{', '.join(urls)} ({format}) is imported already, "
                                                   f"as source {s['name']!r}")
        open_dataset(absolute if len(absolute) > 1 else absolute[0], format=format, storage_options=storage_options)
        names = {s["name"] for s in self.data["sources"]}
        if name is None:
            base = os.path.basename(absolute[0].rstrip("/")) or "source"
            name, n = base, 1
            while name in names:
                n += 1
                name = f"{base}-{n}"
        elif name in names:
            raise CityscapesIOError(self.file, f"a source named {name!r} exists already")
        stored = [self._stored(u) for u in absolute]
        source = {"name": name, "url": stored if len(stored) > 1 else stored[0], "format": format,
                  "storage_options": storage_options}
        self.data["sources"].append(source)
        self.save()
        return source

    def add_operations(self, operations: List[Dict[str, Any]]) -> None:
        for op in operations:
            if op.get("op") not in _OPS:
                raise CityscapesIOError(self.file, f"unknown operation {op.get('op')!r}")
        self.data["operations"].extend(operations)
        self.save()

    # -- reading ------------------------------------------------------------------------------
    @property
    def on_duplicate(self) -> str:
        return self.data.get("merge", {}).get("on_duplicate", "error")

    def sources(self) -> List:
        """The sources' datasets, opened lazily, in the order they were imported."""

        if not self.data["sources"]:
            raise DatasetNotFoundError(self.file, "the project has no sources (add one with 'project import')")
        return [open_dataset(self.source_urls(s), format=s.get("format", "cityscapes"),
                             storage_options=s.get("storage_options")) for s in self.data["sources"]]

    def merged(self):
        """The sources merged (one source: its dataset), before the operations."""

        datasets = self.sources()
        return datasets[0] if len(datasets) == 1 else merge(*datasets, on_duplicate=self.on_duplicate)

    def check_unique_ids(self) -> None:
        """Raise when the merged sources hold a frame id twice in a split and the project's
        merge policy is ``"error"``; lists frames, decodes nothing (see :func:`check_unique_ids`)."""
        if len(self.data["sources"]) > 1 and self.on_duplicate == "error":
            check_unique_ids(self.merged(), self.data.get("operations", []))

    def dataset(self):
        """The project's dataset: its sources merged, then its operations applied (lazy)."""
        return apply_operations(self.merged(), self.data.get("operations", []))
