"""Format registry: a format name maps, lazily, to the module that reads and writes it."""
from __future__ import annotations

import importlib
from typing import Dict

__all__ = ["FORMATS", "reader_class"]

#: format name -> "module:ReaderClass"
FORMATS: Dict[str, str] = {
    "cityscapes": "cityscapes_io.formats.cityscapes:CityscapesReader",
}


def reader_class(fmt: str):
    """The reader class registered for ``fmt``."""
    try:
        target = FORMATS[fmt.lower()]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; known formats: {', '.join(sorted(FORMATS))}") from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
