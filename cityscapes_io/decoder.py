"""Which PNG decoder (and pixel counter) is active, decided once, without importing numpy or Pillow.

The fast path decodes a PNG's pixels with the library's own C extension
(:mod:`cityscapes_io._png`, an optional build: it unfilters the image in place) after inflating
the image data with libdeflate (the ``deflate`` package), or with Python's ``zlib`` when
``deflate`` is not installed. Without the extension (no C compiler at install time, another
platform) every image is decoded by Pillow, through imageio: the pure-Python path. Setting the
environment variable ``CITYSCAPES_IO_PURE_PYTHON=1`` before the first import forces that path.

Evaluation counts pixel pairs with a second optional extension, :mod:`cityscapes_io._count`,
or with numpy's ``bincount`` without it (or with ``CITYSCAPES_IO_PURE_PYTHON=1``).

This module is imported by ``cityscapes-io --version`` and ``info``, which must start fast: it
imports the two small compiled modules only.
"""
from __future__ import annotations

import os
from types import ModuleType
from typing import Optional, Tuple

__all__ = ["ENV_PURE_PYTHON", "unfilter_module", "inflate_module", "deflate_module", "count_module", "describe",
           "why_pure_python"]

#: Environment variable that forces the pure-Python (Pillow) decoder when set to anything but
#: ``""`` or ``"0"``.
ENV_PURE_PYTHON = "CITYSCAPES_IO_PURE_PYTHON"


def _load() -> Tuple[Optional[ModuleType], Optional[ModuleType], str]:
    if os.environ.get(ENV_PURE_PYTHON, "") not in ("", "0"):
        return None, None, f"forced by {ENV_PURE_PYTHON}={os.environ[ENV_PURE_PYTHON]}"
    try:
        from . import _png  # (the optional C extension; its types: _png.pyi)
    except ImportError:
        return None, None, "the C extension cityscapes_io._png is not built"
    try:
        import deflate
    except ImportError:
        return _png, None, ""
    return _png, deflate, ""


_UNFILTER, _INFLATE, _WHY = _load()


def _load_count() -> Optional[ModuleType]:
    if os.environ.get(ENV_PURE_PYTHON, "") not in ("", "0"):
        return None
    try:
        from . import _count  # (the optional C extension of evaluation's counting; types: _count.pyi)
    except ImportError:
        return None
    return _count


_COUNT = _load_count()


def count_module() -> Optional[ModuleType]:
    """The C extension that counts pixel pairs for evaluation, or None (numpy counts)."""
    return _COUNT


def _load_deflate() -> Optional[ModuleType]:
    try:
        import deflate
    except ImportError:
        return None
    return deflate


_DEFLATE = _INFLATE if _INFLATE is not None else _load_deflate()


def deflate_module() -> Optional[ModuleType]:
    """The ``deflate`` package (libdeflate) for compressing the label PNGs the writers write and
    for CRCs, whenever it is installed (on the pure-Python path too: it is a wheel like
    Pillow's, not code of ours); None without it (zlib compresses)."""
    return _DEFLATE


def unfilter_module() -> Optional[ModuleType]:
    """The C extension, or None on the pure-Python path."""
    return _UNFILTER


def inflate_module() -> Optional[ModuleType]:
    """The ``deflate`` package (libdeflate) when the fast path inflates with it, else None
    (Python's ``zlib`` inflates, or Pillow decodes everything)."""
    return _INFLATE


def why_pure_python() -> str:
    """Why the pure-Python path is taken ("" when it is not)."""
    return _WHY


def describe() -> str:
    """The active PNG decoder in a few words, as ``--version`` and ``info`` print it."""
    if _UNFILTER is None:
        return f"Pillow (pure-Python path: {_WHY})"
    if _INFLATE is None:
        return "C unfilter + zlib (install the deflate package for libdeflate)"
    return f"C unfilter + libdeflate (deflate {getattr(_INFLATE, '__version__', '?')})"
