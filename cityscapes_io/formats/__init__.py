"""Format registry: a format name maps, lazily, to the module that reads and writes it."""
from __future__ import annotations

import importlib
from typing import Dict, Tuple

__all__ = ["FORMATS", "reader_class", "writer_class"]

#: format name -> ("module:ReaderClass", "module:WriterClass")
FORMATS: Dict[str, Tuple[str, str]] = {
    "cityscapes": ("cityscapes_io.formats.cityscapes:CityscapesReader",
                   "cityscapes_io.formats.cityscapes:CityscapesWriter"),
    "voc": ("cityscapes_io.formats.voc:VocReader", "cityscapes_io.formats.voc:VocWriter"),
    "camvid": ("cityscapes_io.formats.camvid:CamvidReader", "cityscapes_io.formats.camvid:CamvidWriter"),
}
_ALIASES = {"voc_segmentation": "voc", "pascal_voc": "voc"}


def _load(fmt: str, which: int):
    name = str(fmt).lower()
    name = _ALIASES.get(name, name)
    try:
        target = FORMATS[name][which]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(sorted(FORMATS))}") from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def reader_class(fmt: str):
    """The reader class registered for ``fmt``."""
    return _load(fmt, 0)


def writer_class(fmt: str):
    """The writer class registered for ``fmt``."""
    return _load(fmt, 1)
