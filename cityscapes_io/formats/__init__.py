"""Format registry: a format name maps, lazily, to the module that reads and writes it.

The API (``open(format=...)``, ``convert(format=...)``) and the command line accept the same
names: :func:`format_names` lists them, :func:`resolve_format` turns one into the registered
name, and :func:`detect_format` tells which format a dataset root holds from its top-level
listing, asking each format's reader (``Reader.detect``) in :data:`DETECT_ORDER`. What a
format's module implements is written in :mod:`cityscapes_io.formats.base`.
"""
from __future__ import annotations

import importlib
import re
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Type

from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, LabelMapError
from ..labels import LabelMap
from ..storage import Root, check_inside, listdir, resolve_inside, resolve_root, storage_errors

__all__ = ["FORMATS", "DETECT_ORDER", "format_names", "resolve_format", "detect_format", "root_hint", "reader_class",
           "writer_class", "read_dataset_file", "decode_text", "text_lines", "resolve_listed", "read_label_file"]

#: format name -> ("module:ReaderClass", "module:WriterClass")
FORMATS: Dict[str, Tuple[str, str]] = {
    "cityscapes": ("cityscapes_io.formats.cityscapes:CityscapesReader",
                   "cityscapes_io.formats.cityscapes:CityscapesWriter"),
    "voc": ("cityscapes_io.formats.voc:VocReader", "cityscapes_io.formats.voc:VocWriter"),
    "camvid": ("cityscapes_io.formats.camvid:CamvidReader", "cityscapes_io.formats.camvid:CamvidWriter"),
    "coco_instances": ("cityscapes_io.formats.coco:CocoInstancesReader",
                       "cityscapes_io.formats.coco:CocoInstancesWriter"),
    "coco_panoptic": ("cityscapes_io.formats.coco_panoptic:CocoPanopticReader",
                      "cityscapes_io.formats.coco_panoptic:CocoPanopticWriter"),
    "wds": ("cityscapes_io.formats.wds:WdsReader", "cityscapes_io.formats.wds:WdsWriter"),
}
#: The order detection asks the formats in (each reader's ``detect``): the most particular
#: evidence first (COCO's ``annotations/`` beside photos in ``leftImg8bit/``, a panoptic JSON
#: beside an instances one, an index of tar shards).
DETECT_ORDER = ("coco_panoptic", "coco_instances", "wds", "cityscapes", "voc", "camvid")
#: Other names of registered formats (Datumaro's).
_ALIASES = {"voc_segmentation": "voc", "pascal_voc": "voc"}

#: Top-level folders that mark a Cityscapes tree (``imgsFine/`` is Datumaro's first layout).
CITYSCAPES_DIRS = ("gtFine", "gtCoarse", "leftImg8bit", "imgsFine")


def format_names() -> List[str]:
    """Every accepted format name: the registered ones, then their aliases."""
    return list(FORMATS) + [a for a in _ALIASES if a not in FORMATS]


def resolve_format(name: str) -> str:
    """The registered name of format ``name`` (case-insensitive; aliases such as
    ``voc_segmentation`` give ``voc``).

    Raises
    ------
    ValueError
        ``name`` is not a known format; the message lists the choices.
    """
    key = str(name).lower()
    key = _ALIASES.get(key, key)
    if key not in FORMATS:
        raise ValueError(f"unknown format {name!r}; choose from: {', '.join(format_names())}")
    return key


def _load(fmt: str, which: int):
    module, _, attr = FORMATS[resolve_format(fmt)][which].partition(":")
    return getattr(importlib.import_module(module), attr)


def reader_class(fmt: str):
    """The reader class registered for ``fmt``."""
    return _load(fmt, 0)


def writer_class(fmt: str):
    """The writer class registered for ``fmt``."""
    return _load(fmt, 1)


# -- text files the readers find at fixed places (lists, label files) ----------------------------
def read_dataset_file(root: Root, rel: str) -> Optional[bytes]:
    """The bytes of ``rel`` under ``root`` (a list or label file a reader looks for by name);
    None when there is no such file.

    Raises
    ------
    UnsafePathError
        On local disk, ``rel`` is a symbolic link leading outside ``root`` (nothing is read).
    StorageError
        The storage failed.
    """
    path = root.join(rel)
    check_inside(root.fs, root.path, path)
    try:
        with storage_errors(root.display(rel), "cannot read"):
            return root.fs.cat_file(path)
    except (FileNotFoundError, IsADirectoryError):
        return None


def decode_text(data: bytes, where: str, error: Type[InvalidFileError] = InvalidFileError) -> str:
    """``data`` as UTF-8 text, a byte-order mark at the start accepted (as the official readers
    and Datumaro accept it); otherwise ``error(where, "not UTF-8 text ...")``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(where, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from exc


def text_lines(text: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of the lines of ``text`` that are not blank, stripped. Lines end
    at ``\\n``, ``\\r\\n`` or ``\\r``, as a file read in text mode splits them (not at the other
    characters :meth:`str.splitlines` breaks on), so the numbers are those an editor shows."""
    for lineno, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = line.strip()
        if line:
            yield lineno, line


#: The longest path a list line may hold (Linux's ``PATH_MAX``), checked before resolving it.
MAX_PATH = 4096


def resolve_listed(root: Root, rel: str, where: str, entry: str, base: Optional[str] = None) -> str:
    """The filesystem path of ``rel``, a path (or id) read from line ``entry`` of the list file
    ``where``: at most :data:`MAX_PATH` characters, then resolved by
    :func:`~cityscapes_io.storage.resolve_inside` against ``base`` (default the root).

    Raises
    ------
    InvalidFileError
        The path is longer than :data:`MAX_PATH` characters.
    UnsafePathError
        It is empty, absolute, has a drive letter, a NUL or a URL, or leads outside the root.
    """
    if len(rel) > MAX_PATH:
        raise InvalidFileError(where, f"{entry}: a path of {len(rel)} characters (at most {MAX_PATH})")
    return resolve_inside(root.fs, root.path, rel, base=base, index=where, entry=entry)


def read_label_file(root: Root, name: str) -> Optional[LabelMap]:
    """The labels of ``dataset_meta.json`` or ``label_colors.txt`` (by ``name``'s extension) at
    the top of ``root``; None when the file is not there.

    Raises
    ------
    LabelMapError
        The file is not UTF-8, not valid JSON, or not a valid label file (the message names it).
    UnsafePathError
        On local disk, the file is a symbolic link leading outside ``root``.
    """
    data = read_dataset_file(root, name)
    if data is None:
        return None
    where = root.display(name)
    if name.endswith(".json"):
        return LabelMap.parse_dataset_meta(data, source=where)
    return LabelMap.parse_label_colors(decode_text(data, where, LabelMapError), source=where)


# -- detection ------------------------------------------------------------------------------------
def root_hint(url) -> Optional[str]:
    """A hint when ``url`` names a folder inside a Cityscapes tree (``…/gtFine``,
    ``…/gtFine/val``, ``…/leftImg8bit/train/aachen``) rather than the tree's root; None
    otherwise. Looks at the name only (no I/O)."""
    text = str(url).rstrip("/\\")
    parts = re.split(r"[/\\]", text)
    for back in range(1, min(3, len(parts)) + 1):
        if parts[-back] in CITYSCAPES_DIRS:
            parent = "/".join(parts[:-back]) or ("/" if text.startswith("/") else ".")
            return f"give the folder that holds gtFine/ and leftImg8bit/: {parent}"
    return None


def _ask_formats(root: Root, top: Mapping[str, str]) -> Optional[Tuple[str, str]]:
    """``(format, what was found)`` from a root's listing: the first format of
    :data:`DETECT_ORDER` whose reader's ``detect`` finds its evidence; None."""
    for name in DETECT_ORDER:
        evidence = reader_class(name).detect(root, top)
        if evidence is not None:
            return name, evidence
    return None


def detect(url, storage_options: Optional[Mapping] = None) -> Tuple[str, str]:
    """``(format, evidence)``: :func:`detect_format` and what it went by (``"gtFine/ in
    data/Cityscapes"``)."""
    if isinstance(url, (list, tuple)):
        results = [detect(u, storage_options) for u in url]
        names = sorted({r[0] for r in results})
        if len(names) > 1:
            raise CityscapesIOError(", ".join(map(str, url)), f"the roots hold different formats: {', '.join(names)}")
        return results[0][0], "; ".join(r[1] for r in results)
    root = resolve_root(url, storage_options)
    top = listdir(root, "")
    hit = _ask_formats(root, top)
    if hit is not None:
        return hit[0], f"{hit[1]} in {root.url}"
    dirs = [n for n, t in top.items() if t == "directory"]
    if len(dirs) == 1:  # one wrapping folder (an archive holding Cityscapes/gtFine/...)
        inner = root.child(dirs[0])
        hit = _ask_formats(inner, listdir(inner, ""))
        if hit is not None and hit[0] == "cityscapes":
            return hit[0], f"{hit[1]} in {inner.url}"
        if hit is not None:  # the VOC and CamVid readers take the dataset's own folder
            raise DatasetNotFoundError(str(url), f"no dataset at the top; a {hit[0]} dataset is inside: "
                                                 f"give {inner.url}")
    hint = root_hint(url)
    raise DatasetNotFoundError(
        str(url), "cannot tell the format: no gtFine/ or leftImg8bit/ (cityscapes), SegmentationClass/ (voc), "
                  "<subset>annot/ or <subset>.txt (camvid), annotations/instances_*.json or panoptic_*.json (coco), "
                  "shards.json (wds)"
                  + (f"; {hint}" if hint else "; give it with -if"))


def detect_format(url, storage_options: Optional[Mapping] = None) -> str:
    """The format of the dataset at ``url``, from its top-level listing (and that of one
    wrapping folder, for Cityscapes archives): ``"cityscapes"`` (a ``gtFine/``,
    ``leftImg8bit/`` or ``imgsFine/`` folder), ``"voc"`` (``SegmentationClass/`` or
    ``ImageSets/Segmentation/``), ``"camvid"`` (``<subset>annot/`` folders, or
    ``<subset>.txt`` lists of CamVid's form), ``"coco_instances"`` / ``"coco_panoptic"``
    (``annotations/instances*_<split>.json`` / ``annotations/panoptic_<split>.json``). Nothing
    is decoded; at most one list file is read.

    Parameters
    ----------
    url : str, path or list of them
        A root as :func:`cityscapes_io.open` takes it (a list: all roots must agree).
    storage_options : dict, optional
        fsspec options.

    Raises
    ------
    DatasetNotFoundError
        The root does not exist or holds none of these (the message says what it looked for, and
        where the dataset root is when ``url`` is a folder inside a Cityscapes tree).
    """
    return detect(url, storage_options)[0]
