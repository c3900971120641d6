"""Projects: a small, readable JSON file recording sources and the operations applied to them.

``project.json``::

    {
      "cityscapes_io_project": 1,
      "sources": [{"name": "cityscapes", "url": "/data/Cityscapes", "format": "cityscapes",
                   "storage_options": null}],
      "operations": [{"op": "filter", "split": ["val"]},
                     {"op": "remap_labels", "mapping": {"car": "vehicle"}, "default": "keep"}],
      "merge": {"on_duplicate": "error"}
    }

Exporting streams the sources through the operations into a writer; nothing is copied into the
project.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from .errors import CityscapesIOError, DatasetNotFoundError

__all__ = ["Project", "apply_operations", "PROJECT_FILE"]

PROJECT_FILE = "project.json"
_OPS = ("filter", "remap_labels", "train_ids", "rename_splits")


def apply_operations(ds, operations: List[Dict[str, Any]]):
    """Apply recorded operations (dicts with an ``op`` key) to a dataset, lazily, in order."""
    for op in operations:
        kind = op.get("op")
        if kind == "filter":
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


class Project:
    """A project folder holding ``project.json``."""

    def __init__(self, path: str, data: Dict[str, Any]):
        self.path = path
        self.data = data

    @property
    def file(self) -> str:
        return os.path.join(self.path, PROJECT_FILE)

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
            with open(file, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise DatasetNotFoundError(file, "no project here (create one with 'project create')") from None
        except ValueError as exc:
            raise CityscapesIOError(file, f"not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or "sources" not in data:
            raise CityscapesIOError(file, "not a cityscapes_io project file")
        return cls(path, data)

    def save(self) -> None:
        tmp = self.file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, self.file)

    def add_source(self, url, *, format: str = "cityscapes", name: Optional[str] = None,
                   storage_options: Optional[dict] = None) -> Dict[str, Any]:
        """Record a source (checked by opening it); local paths are stored absolute."""
        from .dataset import open as open_dataset

        urls = url if isinstance(url, (list, tuple)) else [url]
        urls = [u if ("://" in str(u) or "::" in str(u)) else os.path.abspath(str(u)) for u in urls]
        open_dataset(urls if len(urls) > 1 else urls[0], format=format, storage_options=storage_options)
        names = {s["name"] for s in self.data["sources"]}
        if name is None:
            base = os.path.basename(str(urls[0]).rstrip("/")) or "source"
            name, n = base, 1
            while name in names:
                n += 1
                name = f"{base}-{n}"
        elif name in names:
            raise CityscapesIOError(self.file, f"a source named {name!r} exists already")
        source = {"name": name, "url": urls if len(urls) > 1 else urls[0], "format": format,
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

    def dataset(self):
        """The project's dataset: its sources merged, then its operations applied (lazy)."""
        from .dataset import open as open_dataset
        from .ops import merge

        if not self.data["sources"]:
            raise DatasetNotFoundError(self.file, "the project has no sources (add one with 'project import')")
        datasets = [open_dataset(s["url"], format=s.get("format", "cityscapes"),
                                 storage_options=s.get("storage_options")) for s in self.data["sources"]]
        ds = datasets[0] if len(datasets) == 1 else merge(
            *datasets, on_duplicate=self.data.get("merge", {}).get("on_duplicate", "error"))
        return apply_operations(ds, self.data.get("operations", []))
