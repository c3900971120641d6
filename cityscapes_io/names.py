"""File names of the Cityscapes tree, as pure functions (no I/O).

The reader and every writer share these, so that writing a tree is the inverse of reading one.

A Cityscapes file name is ``<city>_<seq:06d>_<frame:06d>_<kind>.<ext>``; it is parsed from the
right, because city names contain hyphens and underscores (``bad-honnef``, ``stuttgart_00``).
Frame ids are Datumaro's: the path under ``<kind-folder>/<split>/`` without the file-kind suffix,
e.g. ``aachen/aachen_000000_000019``. Ids written by other tools (``1``, ``a/b/1``) do not follow
the grammar; they are kept verbatim.
"""
from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = [
    "IMAGE_DIR",
    "GT_DIR",
    "IMGS_FINE_DIR",
    "GT_SUFFIXES",
    "IMAGE_SUFFIX",
    "FrameName",
    "parse_frame_id",
    "split_suffix",
    "gt_path",
    "image_path",
    "safe_relpath",
    "sort_key",
]

IMAGE_DIR = "leftImg8bit"
GT_DIR = "gtFine"
#: Parent of ``leftImg8bit/`` in Datumaro's first Cityscapes layout (``imgsFine/leftImg8bit/<split>/``).
IMGS_FINE_DIR = "imgsFine"

#: Ground-truth file kinds read from ``gtFine/``, mapped to the suffix that follows the id.
GT_SUFFIXES = {
    "instanceIds": "_gtFine_instanceIds.png",
    "labelIds": "_gtFine_labelIds.png",
    "labelTrainIds": "_gtFine_labelTrainIds.png",
    "color": "_gtFine_color.png",
    "polygons": "_gtFine_polygons.json",
}
#: The photo suffix, before the extension (``.png`` in the release; other tools write ``.jpg``).
IMAGE_SUFFIX = "_leftImg8bit"

_GRAMMAR = re.compile(r"^(?P<city>.+)_(?P<seq>\d{6})_(?P<frame>\d{6})$")


@dataclass(frozen=True)
class FrameName:
    """What a frame id says: the city, sequence and frame number when it follows the grammar."""

    id: str
    city: Optional[str]
    seq: Optional[int]
    frame: Optional[int]


def parse_frame_id(frame_id: str) -> FrameName:
    """Parse a frame id such as ``aachen/aachen_000000_000019``.

    The city is the folder the frame sits in (``None`` for a frame directly under the split);
    ``seq`` and ``frame`` are parsed from the base name when it follows the Cityscapes grammar and
    are ``None`` otherwise.
    """
    folder, base = posixpath.split(frame_id)
    city = folder.split("/", 1)[0] if folder else None
    m = _GRAMMAR.match(base)
    if m is None:
        return FrameName(frame_id, city, None, None)
    if city is None:
        city = m.group("city")
    return FrameName(frame_id, city, int(m.group("seq")), int(m.group("frame")))


def sort_key(frame_id: str) -> tuple:
    """Sort key giving city name, then sequence, then frame number; other ids by name after."""
    n = parse_frame_id(frame_id)
    if n.seq is None:
        return (n.city or "", 1, 0, 0, frame_id)
    return (n.city or "", 0, n.seq, n.frame, frame_id)


def split_suffix(relpath: str, folder: str) -> Optional[Tuple[str, str]]:
    """Split a path relative to ``<folder>/<split>/`` into ``(frame_id, kind)``.

    ``folder`` is :data:`GT_DIR` or :data:`IMAGE_DIR`. Returns ``None`` for a file with none of
    the known suffixes. For photos, ``kind`` is ``"image"``.
    """
    if folder == IMAGE_DIR:
        stem, ext = posixpath.splitext(relpath)
        if ext and stem.endswith(IMAGE_SUFFIX) and len(stem) > len(IMAGE_SUFFIX):
            base = posixpath.basename(stem)
            if base != IMAGE_SUFFIX:
                return stem[: -len(IMAGE_SUFFIX)], "image"
        return None
    for kind, suffix in GT_SUFFIXES.items():
        if relpath.endswith(suffix) and posixpath.basename(relpath) != suffix:
            return relpath[: -len(suffix)], kind
    return None


def gt_path(split: str, frame_id: str, kind: str) -> str:
    """Path of a ground-truth file, relative to the dataset root."""
    return f"{GT_DIR}/{split}/{safe_relpath(frame_id)}{GT_SUFFIXES[kind]}"


def image_path(split: str, frame_id: str, ext: str = ".png") -> str:
    """Path of a photo, relative to the dataset root. ``ext`` includes the dot."""
    return f"{IMAGE_DIR}/{split}/{safe_relpath(frame_id)}{IMAGE_SUFFIX}{ext}"


def safe_relpath(path: str) -> str:
    """Return ``path`` if it is a safe relative path, else raise ``ValueError``.

    Safe means: not empty, not absolute, no ``..`` or ``.`` component, no backslash or NUL,
    so that joining it under a destination can never leave that destination.
    """
    if not path or "\x00" in path or "\\" in path or path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise ValueError(f"unsafe path {path!r}: must be a relative path inside the dataset")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe path {path!r}: empty, '.' or '..' component")
    return path
