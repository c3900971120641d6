"""cityscapes_io: lazy, streaming reading and writing of the Cityscapes dataset format over fsspec.

>>> import cityscapes_io
>>> ds = cityscapes_io.open(cityscapes_io.sample_path())
>>> for frame in ds:
...     for inst in frame.instances():
...         print(frame.id, inst.label.name, inst.id, inst.area, inst.bbox)  # doctest: +SKIP

The public names are imported on first use (PEP 562): ``import cityscapes_io`` alone imports
no numpy, imageio, Pillow or fsspec, so that ``cityscapes-io --version`` and ``--help`` start
fast. ``from cityscapes_io import open`` and ``cityscapes_io.open`` import what they need then;
a submodule (``cityscapes_io.png``) is imported when it is first named as an attribute.
"""
from __future__ import annotations

import importlib as _importlib
import importlib.util as _importlib_util
import os as _os
import sys as _sys
import types as _types
from typing import TYPE_CHECKING, Any, Dict, List

if TYPE_CHECKING:  # the real imports, for type checkers and IDEs; at run time, __getattr__ below
    from .convert import Report, convert
    from .dataset import Dataset, open
    from .evaluation import check_predictions, evaluate, export_predictions
    from .errors import (
        CityscapesIOError,
        DatasetNotFoundError,
        InvalidFileError,
        LabelMapError,
        RefusedError,
        StorageError,
        UnknownLabelError,
        UnsafePathError,
    )
    from .frame import Frame
    from .instances import Instance
    from .labels import Label, LabelMap
    from .ops import merge
    from .writing import writer
    from .polygons import Polygons, PolygonObject, parse_polygons, rasterize
    from .prepare import prepare
    from .parts import Camera, Person
    from .release import SequenceFrame
    from .boxes3d import Box3d, Boxes3d

__version__ = "0.1.0"

__all__ = [
    "open",
    "convert",
    "prepare",
    "evaluate",
    "check_predictions",
    "export_predictions",
    "rasterize",
    "parse_polygons",
    "Polygons",
    "PolygonObject",
    "writer",
    "merge",
    "Report",
    "Dataset",
    "Frame",
    "Instance",
    "Label",
    "LabelMap",
    "CityscapesIOError",
    "DatasetNotFoundError",
    "InvalidFileError",
    "LabelMapError",
    "UnknownLabelError",
    "StorageError",
    "UnsafePathError",
    "RefusedError",
    "sample_path",
    "Camera",
    "Person",
    "SequenceFrame",
    "Box3d",
    "Boxes3d",
]

#: Public name -> the submodule that defines it (imported when the name is first asked for).
_LAZY: Dict[str, str] = {
    "Report": "convert", "convert": "convert",
    "Dataset": "dataset", "open": "dataset",
    "check_predictions": "evaluation", "evaluate": "evaluation", "export_predictions": "evaluation",
    "CityscapesIOError": "errors", "DatasetNotFoundError": "errors", "InvalidFileError": "errors",
    "LabelMapError": "errors", "RefusedError": "errors", "StorageError": "errors", "UnknownLabelError": "errors",
    "UnsafePathError": "errors",
    "Frame": "frame",
    "Instance": "instances",
    "Label": "labels", "LabelMap": "labels",
    "merge": "ops",
    "writer": "writing",
    "Polygons": "polygons", "PolygonObject": "polygons", "parse_polygons": "polygons", "rasterize": "polygons",
    "prepare": "prepare",
    "Camera": "parts", "Person": "parts", "SequenceFrame": "release", "Box3d": "boxes3d", "Boxes3d": "boxes3d",
}

#: Public functions named like the submodule that defines them: ``cityscapes_io.convert`` is the
#: function, as it was when this file imported everything (see :class:`_Package`).
_SHADOWED = frozenset(name for name, module in _LAZY.items() if name == module)


def __getattr__(name: str) -> Any:
    """A public name, imported from its submodule on first use (then kept here, so this runs
    once per name); or a submodule, imported, as ``import cityscapes_io.<name>`` would."""
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value
    if not name.startswith("__") and _importlib_util.find_spec(f"{__name__}.{name}") is not None:
        return _importlib.import_module(f"{__name__}.{name}")  # the import system binds it here
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))


class _Package(_types.ModuleType):
    """This package's module type. Importing a submodule binds it as an attribute of the
    package; for ``convert`` and ``prepare`` that would replace the public function of the same
    name (the first time some code imports ``cityscapes_io.convert``), so the function is bound
    instead: ``cityscapes_io.convert`` stays the function, the module stays in ``sys.modules``."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _SHADOWED and isinstance(value, _types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


def sample_path() -> str:
    """Path of the tiny sample dataset shipped inside the package (two splits, two cities)."""
    return _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "data", "sample")
