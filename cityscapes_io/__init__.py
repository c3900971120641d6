"""cityscapes_io: lazy, streaming reading and writing of the Cityscapes dataset format over fsspec.

>>> import cityscapes_io
>>> ds = cityscapes_io.open(cityscapes_io.sample_path())
>>> for frame in ds:
...     for inst in frame.instances():
...         print(frame.id, inst.label.name, inst.id, inst.area, inst.bbox)  # doctest: +SKIP
"""
from __future__ import annotations

import os as _os

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
]


def sample_path() -> str:
    """Path of the tiny sample dataset shipped inside the package (two splits, two cities)."""
    return _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "data", "sample")
