"""Format registry: a format name maps, lazily, to the module that reads and writes it.

The API (``open(format=...)``, ``convert(format=...)``) and the command line accept the same
names: :func:`format_names` lists them, :func:`resolve_format` turns one into the registered
name, and :func:`detect_format` tells which format a dataset root holds from its top-level
listing, asking each format's reader (``Reader.detect``) in :func:`detect_order`. What a
format's module implements is written in :mod:`cityscapes_io.formats.base`; a new format is
that module plus one :func:`register` line (below, or at run time), and nothing outside this
package names it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Type

from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, LabelMapError
from ..labels import LabelMap
from ..storage import Root, check_inside, listdir, resolve_inside, resolve_root, storage_errors

__all__ = ["FORMATS", "Format", "register", "unregister", "detect_order", "format_names", "resolve_format",
           "detect_format", "root_hint", "reader_class", "writer_class", "read_dataset_file", "decode_text",
           "text_lines", "resolve_listed", "read_label_file"]


@dataclass(frozen=True)
class Format:
    """One registered format: the module holding it, its reader and writer classes (by name:
    the module is imported when one of them is first asked for), its other names, and its
    rank in detection (lower is asked first; None: opened by name only, never detected)."""

    module: str
    reader: str
    writer: str
    aliases: Tuple[str, ...] = ()
    rank: Optional[int] = None


#: format name -> :class:`Format`, in registration order (the order of :func:`format_names`
#: and of the "cannot tell the format" message).
FORMATS: Dict[str, Format] = {}


def register(name: str, module: str, reader: str, writer: str, *, aliases: Tuple[str, ...] = (),
             rank: Optional[int] = None) -> None:
    """Register format ``name``: ``module`` holds the classes ``reader`` and ``writer``
    (:mod:`cityscapes_io.formats.base`'s contract). ``aliases`` are other names for it;
    ``rank`` is its place in detection, lower first: the most particular evidence goes first
    (COCO's ``annotations/`` beside photos in ``leftImg8bit/``, a panoptic JSON beside an
    instances one, an index of tar shards); None leaves the format out of detection.
    Registering a name again replaces it."""
    name = name.lower()
    taken = [a for a in aliases if a in FORMATS or _aliases().get(a, name) != name]
    if taken:
        raise ValueError(f"format {name!r}: the name {taken[0]!r} is another format's")
    FORMATS[name] = Format(module, reader, writer, tuple(aliases), rank)


def unregister(name: str) -> None:
    """Remove format ``name`` (its registered name) from the registry."""
    del FORMATS[name.lower()]


def detect_order() -> List[str]:
    """The registered formats detection asks, in order (their ``rank``)."""
    return sorted((n for n, f in FORMATS.items() if f.rank is not None), key=lambda n: FORMATS[n].rank or 0)


def _aliases() -> Dict[str, str]:
    """Other names of registered formats (Datumaro's), to the registered name."""
    return {a: name for name, f in FORMATS.items() for a in f.aliases}


def format_names() -> List[str]:
    """Every accepted format name: the registered ones, then their aliases."""
    return list(FORMATS) + [a for a in _aliases() if a not in FORMATS]


def resolve_format(name: str) -> str:
    """The registered name of format ``name`` (case-insensitive; aliases such as
    ``voc_segmentation`` give ``voc``).

    Raises
    ------
    ValueError
        ``name`` is not a known format; the message lists the choices.
    """
    key = str(name).lower()
    key = _aliases().get(key, key)
    if key not in FORMATS:
        raise ValueError(f"unknown format {name!r}; choose from: {', '.join(format_names())}")
    return key


def reader_class(fmt: str):
    """The reader class registered for ``fmt``."""
    entry = FORMATS[resolve_format(fmt)]
    return getattr(importlib.import_module(entry.module), entry.reader)


def writer_class(fmt: str):
    """The writer class registered for ``fmt``."""
    entry = FORMATS[resolve_format(fmt)]
    return getattr(importlib.import_module(entry.module), entry.writer)


# One line per format.
register("cityscapes", "cityscapes_io.formats.cityscapes", "CityscapesReader", "CityscapesWriter", rank=40)
register("voc", "cityscapes_io.formats.voc", "VocReader", "VocWriter", aliases=("voc_segmentation", "pascal_voc"),
         rank=50)
register("camvid", "cityscapes_io.formats.camvid", "CamvidReader", "CamvidWriter", rank=60)
register("coco_instances", "cityscapes_io.formats.coco", "CocoInstancesReader", "CocoInstancesWriter", rank=20)
register("coco_panoptic", "cityscapes_io.formats.coco_panoptic", "CocoPanopticReader", "CocoPanopticWriter", rank=10)
register("wds", "cityscapes_io.formats.wds", "WdsReader", "WdsWriter", rank=30)
register("coco_citypersons", "cityscapes_io.formats.coco_citypersons", "CocoCityPersonsReader", "CocoCityPersonsWriter",
         rank=15)
register("yolo", "cityscapes_io.formats.yolo", "YoloReader", "YoloWriter", rank=25)
register("voc_detection", "cityscapes_io.formats.voc_detection", "VocDetectionReader", "VocDetectionWriter", rank=55)


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
    """A hint when ``url`` names a folder inside a dataset tree rather than the tree's root
    (``…/gtFine/val``: asking each format's ``Reader.root_hint``); None otherwise. Looks at the
    name only (no I/O)."""
    for name in FORMATS:
        hint = reader_class(name).root_hint(url)
        if hint is not None:
            return hint
    return None


def _ask_formats(root: Root, top: Mapping[str, str]) -> Optional[Tuple[str, str]]:
    """``(format, what was found)`` from a root's listing: the first format of
    :func:`detect_order` whose reader's ``detect`` finds its evidence; None."""
    for name in detect_order():
        evidence = reader_class(name).detect(root, top)
        if evidence is not None:
            return name, evidence
    return None


def _looked_for() -> str:
    """What detection looks for, from each reader's ``EVIDENCE`` (in registry order; formats
    of one ``EVIDENCE_GROUP`` together): ``gtFine/ or leftImg8bit/ (cityscapes), …``."""
    groups: Dict[str, List[str]] = {}
    for name in FORMATS:
        cls = reader_class(name)
        if cls.EVIDENCE:
            groups.setdefault(cls.EVIDENCE_GROUP or name, []).append(cls.EVIDENCE)
    return ", ".join(f"{' or '.join(found)} ({group})" for group, found in groups.items())


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
        if hit is not None and reader_class(hit[0]).FINDS_WRAPPED_TREE:
            return hit[0], f"{hit[1]} in {inner.url}"
        if hit is not None:  # the VOC and CamVid readers take the dataset's own folder
            raise DatasetNotFoundError(str(url), f"no dataset at the top; a {hit[0]} dataset is inside: "
                                                 f"give {inner.url}")
    hint = root_hint(url)
    raise DatasetNotFoundError(
        str(url), f"cannot tell the format: no {_looked_for()}" + (f"; {hint}" if hint else "; give it with -if"))


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
