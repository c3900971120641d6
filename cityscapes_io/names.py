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
    "COARSE_DIR",
    "ANNOTATION_DIRS",
    "GT_KINDS",
    "GT_SUFFIXES",
    "gt_suffix",
    "IMAGE_SUFFIX",
    "FrameName",
    "parse_frame_id",
    "split_suffix",
    "gt_path",
    "image_path",
    "DISPARITY_DIR",
    "CAMERA_DIR",
    "disparity_path",
    "camera_path",
    "safe_relpath",
    "sort_key",
    "PART_SUFFIXES",
    "SEQUENCE_SUFFIX",
    "is_photo_folder",
    "is_part_folder",
    "part_suffix",
    "frame_dir",
    "split_photo_ext",
    "photo_file_word",
]

IMAGE_DIR = "leftImg8bit"
GT_DIR = "gtFine"
#: The coarse annotations (``gtCoarse/<split>/``, with the ``train_extra`` split).
COARSE_DIR = "gtCoarse"
#: The annotation trees, in order of preference when a dataset has several.
ANNOTATION_DIRS = (GT_DIR, COARSE_DIR)
#: The stereo disparity maps (``disparity/<split>/<id>_disparity.png``) and the camera
#: calibrations (``camera/<split>/<id>_camera.json``), beside ``gtFine/``.
DISPARITY_DIR = "disparity"
CAMERA_DIR = "camera"
#: Parent of ``leftImg8bit/`` in Datumaro's first Cityscapes layout (``imgsFine/leftImg8bit/<split>/``).
IMGS_FINE_DIR = "imgsFine"

#: Ground-truth file kinds, mapped to what follows ``_<tree>_`` in their names.
GT_KINDS = {
    "instanceIds": "instanceIds.png",
    "labelIds": "labelIds.png",
    "labelTrainIds": "labelTrainIds.png",
    "instanceTrainIds": "instanceTrainIds.png",
    "color": "color.png",
    "polygons": "polygons.json",
}
#: Ground-truth file kinds read from an annotation tree, mapped to the suffix that follows the
#: id (``_gtFine_instanceIds.png``, ``_gtCoarse_instanceIds.png``, ...).
TREE_SUFFIXES = {tree: {kind: f"_{tree}_{rest}" for kind, rest in GT_KINDS.items()} for tree in ANNOTATION_DIRS}
#: The suffixes of ``gtFine/``.
GT_SUFFIXES = TREE_SUFFIXES[GT_DIR]
_KIND_OF_REST = {rest: kind for kind, rest in GT_KINDS.items()}
#: The photo suffix, before the extension (``.png`` in the release; other tools write ``.jpg``).
IMAGE_SUFFIX = "_leftImg8bit"

#: The release's parts with one file a frame, beside the photos: folder → what follows the id.
PART_SUFFIXES = {
    "disparity": "_disparity.png",
    "camera": "_camera.json",
    "vehicle": "_vehicle.json",
    "timestamp": "_timestamp.txt",
    "gtBboxCityPersons": "_gtBboxCityPersons.json",
    "gtBbox3d": "_gtBbox3d.json",
}
#: What ends the folder of a part's 30-frame snippets (``leftImg8bit_sequence``,
#: ``vehicle_sequence``, ...); their files are named as the part's own (``_leftImg8bit.png``).
SEQUENCE_SUFFIX = "_sequence"
#: Photo folders: ``leftImg8bit``, ``rightImg16bit``, ``leftImg8bit_foggy``, ``leftImg8bit_rain``, ...
_PHOTO_FOLDER = re.compile(r"^(?:left|right)Img(?:8|16)bit(?:_[A-Za-z0-9]+)?$")

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


def split_suffix(relpath: str, folder: str, image_suffix: str = IMAGE_SUFFIX) -> Optional[Tuple[str, str]]:
    """Split a path relative to ``<folder>/<split>/`` into ``(frame_id, kind)``.

    ``folder`` is an annotation tree (:data:`GT_DIR`, :data:`COARSE_DIR`) or :data:`IMAGE_DIR`.
    Returns ``None`` for a file with none of the tree's suffixes (a ``_gtCoarse_`` file under
    ``gtFine/`` is not a frame file). For photos, ``kind`` is ``"image"``, and ``image_suffix``
    what ends their names before the extension (``_leftImg8bit``; ``_leftImg8bit_foggy_beta_0.02``
    for another photo key, see :func:`cityscapes_io.parts.image_file_suffix`).
    """
    if folder == IMAGE_DIR:
        stem, ext = split_photo_ext(relpath)
        if ext and stem.endswith(image_suffix) and len(stem) > len(image_suffix):
            base = posixpath.basename(stem)
            if base != image_suffix:
                return stem[: -len(image_suffix)], "image"
        return None
    tree = folder if folder in TREE_SUFFIXES else GT_DIR
    marker = f"_{tree}_"
    cut = relpath.rfind(marker)
    if cut <= 0 or relpath[cut - 1] == "/":  # no id before the suffix
        return None
    kind = _KIND_OF_REST.get(relpath[cut + len(marker):])
    return None if kind is None else (relpath[:cut], kind)


def split_photo_ext(path: str) -> Tuple[str, str]:
    """``(stem, extension)`` where the extension is the part after the last dot of the name when
    begins with a letter (``.png``, ``.jpg``, ``.jp2``): a photo variant's numbers
    (``beta_0.02``) are not an extension."""
    stem, ext = posixpath.splitext(path)
    return (stem, ext) if ext[1:2].isalpha() and ext[1:].isalnum() else (path, "")


def gt_suffix(kind: str, annotations: str = GT_DIR) -> str:
    """What follows the id in a ground-truth file's name: ``_gtFine_labelTrainIds.png``."""
    try:
        return TREE_SUFFIXES[annotations][kind]
    except KeyError:
        raise ValueError(f"no ground-truth kind {kind!r} in annotation tree {annotations!r}") from None


def gt_path(split: str, frame_id: str, kind: str, annotations: str = GT_DIR) -> str:
    """Path of a ground-truth file, relative to the dataset root (``annotations`` is the tree,
    ``gtFine`` or ``gtCoarse``)."""
    return f"{annotations}/{split}/{safe_relpath(frame_id)}{gt_suffix(kind, annotations)}"


def image_path(split: str, frame_id: str, ext: str = ".png") -> str:
    """Path of a photo, relative to the dataset root. ``ext`` includes the dot."""
    return f"{IMAGE_DIR}/{split}/{safe_relpath(frame_id)}{IMAGE_SUFFIX}{ext}"


def disparity_path(split: str, frame_id: str) -> str:
    """Path of a frame's disparity PNG, relative to the dataset root."""
    return f"{DISPARITY_DIR}/{split}/{safe_relpath(frame_id)}_disparity.png"


def camera_path(split: str, frame_id: str) -> str:
    """Path of a frame's camera JSON, relative to the dataset root."""
    return f"{CAMERA_DIR}/{split}/{safe_relpath(frame_id)}_camera.json"


def is_photo_folder(name: str) -> bool:
    """Whether a top folder holds photos (``leftImg8bit``, ``rightImg8bit``, ``leftImg16bit``,
    ``leftImg8bit_blurred``, ``leftImg8bit_foggy``, ...; not the ``_sequence`` folders)."""
    return _PHOTO_FOLDER.match(name) is not None and not name.endswith(SEQUENCE_SUFFIX)


def photo_file_word(folder: str) -> str:
    """The word naming a photo folder's files after the frame id: the folder's name, but for
    Foggy Cityscapes-DBF's refined sets, whose files keep the plain set's name
    (``leftImg8bit_foggyDBF/…/<id>_leftImg8bit_foggy_beta_0.01.png``,
    ``leftImg8bit_transmittanceDBF/…/<id>_leftImg8bit_transmittance_beta_0.01.png``)."""
    return folder[: -len("DBF")] if folder.endswith("DBF") and is_photo_folder(folder) else folder


def is_part_folder(name: str) -> bool:
    """Whether a top folder is one of the release's parts: a photo folder, a folder of
    :data:`PART_SUFFIXES`, or the ``_sequence`` folder of either."""
    if name.endswith(SEQUENCE_SUFFIX):
        name = name[: -len(SEQUENCE_SUFFIX)]
    return name in PART_SUFFIXES or is_photo_folder(name)


def part_suffix(folder: str) -> str:
    """What follows the frame id in the name of a part's file, up to the extension for photos
    (``_rightImg8bit``, ``_leftImg8bit_foggy`` then ``_<variant>``) and with it for the others
    (``_disparity.png``); a ``_sequence`` folder's files are named as its part's."""
    if folder.endswith(SEQUENCE_SUFFIX):
        folder = folder[: -len(SEQUENCE_SUFFIX)]
    if folder in PART_SUFFIXES:
        return PART_SUFFIXES[folder]
    if is_photo_folder(folder):
        return f"_{photo_file_word(folder)}"
    raise ValueError(f"not a part folder: {folder!r}")


def frame_dir(frame_id: str) -> Tuple[str, str]:
    """``(folder, base)`` of a frame id: ``aachen/aachen_000000_000019`` → ``("aachen",
    "aachen_000000_000019")``; the folder is "" for an id without one."""
    folder, base = posixpath.split(frame_id)
    return folder, base


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
