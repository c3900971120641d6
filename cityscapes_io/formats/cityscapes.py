"""Reading a Cityscapes tree: ``leftImg8bit/<split>/<city>/…`` and ``gtFine/<split>/<city>/…``
(or the coarse annotations, ``gtCoarse/<split>/<city>/…``, with the ``train_extra`` split).

One annotation tree is read at a time: ``annotations="gtFine"`` or ``"gtCoarse"``; by default
gtFine when the dataset has it, else gtCoarse. Photo-only splits that belong to the other tree
(``leftImg8bit/train_extra`` when gtFine is read) are not listed.

A frame's ground truth is its ``instanceIds`` (or ``labelIds``) with the dataset's label map, or,
in a tree mapped to train ids, its ``instanceTrainIds`` (or ``labelTrainIds``) with the 19-class
train map.

The photos may also sit under ``imgsFine/leftImg8bit/<split>/<city>/``, where Datumaro's first
Cityscapes plugin (the releases with ``is_crowd``) wrote and looked for them; both layouts are
read, alone or together, in a folder, in zips and on object stores.

The COCO panoptic ground truth that ``csCreatePanopticImgs`` (and ``prepare --kinds panoptic``)
writes beside the splits, ``gtFine/cityscapes_panoptic_<split>[_trainId]/`` and its ``.json``, is
not a split: the reader lists it in :attr:`CityscapesReader.panoptic`.

Nothing is listed before it is needed: opening reads the label files and the top-level folders
(and, when ``cities=`` is given, the split folders, to check that each city exists); the cities
of a split are listed when the split is reached, and each city folder when iteration reaches
that city.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

import numpy as np

from ..counting import apply_lut
from .. import png
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, OnError, StorageError, apply_policy
from ..frame import DerivedSource, Frame
from ..labels import LabelMap
from ..names import (ANNOTATION_DIRS, GT_DIR, IMAGE_DIR, IMGS_FINE_DIR, frame_dir, gt_path, image_path, is_part_folder,
                     photo_file_word, sort_key, split_suffix)
from ..parts import image_file_suffix, parse_image_key
from ..release import DEFAULT_IMAGE_KEY, FrameParts, PartFolders, missing_key, part_relpath
from ..storage import Root, find_files, is_remote, listdir, resolve_roots, storage_errors
from ..instances import class_of, train_value_lut
from ..mapping import mapping_between, value_lut
from .base import Reader
from .base import (PARTS, SAVE_DATASET_META, Encoded, Files, Option, Segments, Writer, covers_photo, missing_parts,
                   parse_parts)
from . import read_label_file

__all__ = ["CityscapesReader", "CityscapesWriter", "PanopticTruth"]

#: Official-id and train-id ground-truth kinds (the label map is chosen by which a frame has).
OFFICIAL_KINDS = ("instanceIds", "labelIds")
TRAIN_KINDS = ("instanceTrainIds", "labelTrainIds")
#: Where the photos of Datumaro's first Cityscapes layout are: ``imgsFine/leftImg8bit/<split>/``.
OLD_IMAGE_BASE = f"{IMGS_FINE_DIR}/{IMAGE_DIR}"
_TRAIN_MAP = LabelMap.cityscapes_train()
META_FILE = "dataset_meta.json"
COLORS_FILE = "label_colors.txt"
#: The names ``csCreatePanopticImgs`` gives its output in an annotation folder: the folder of
#: PNGs ``cityscapes_panoptic_<split>[_trainId]`` and its ``.json``.
_PANOPTIC_NAME = re.compile(r"^cityscapes_panoptic_(?P<split>.+?)(?P<train>_trainId)?(?P<json>\.json)?$")


@dataclass(frozen=True)
class PanopticTruth:
    """The COCO panoptic ground truth of one split, as ``csCreatePanopticImgs`` (and
    ``prepare --kinds panoptic``) writes it in an annotation folder:
    ``<tree>/cityscapes_panoptic_<split>[_trainId].json`` and the folder of its PNGs (the stem
    without ``.json``). Either may be missing (an interrupted run leaves the folder alone).

    Attributes
    ----------
    split : str
        The split it is the ground truth of.
    train_ids : bool
        Train ids as category ids (``--use-train-id``: the ``_trainId`` names).
    root : Root
        The root holding it.
    stem : str
        ``<tree>/cityscapes_panoptic_<split>[_trainId]``, relative to ``root``.
    has_json, has_folder : bool
        Whether the ``.json`` and the folder are there.
    """

    split: str
    train_ids: bool
    root: Root = field(repr=False)
    stem: str
    has_json: bool
    has_folder: bool

    @property
    def json_path(self) -> str:
        """The JSON, relative to the root."""
        return f"{self.stem}.json"

    def display(self, rel: Optional[str] = None) -> str:
        """How messages name the JSON (or ``rel``, relative to the root)."""
        return self.root.display(self.json_path if rel is None else rel)

    def as_dict(self) -> Dict[str, object]:
        """``{"split", "train_ids", "json", "folder"}`` (URLs; None for a part that is missing)."""
        return {"split": self.split, "train_ids": self.train_ids,
                "json": self.display() if self.has_json else None,
                "folder": self.root.display(self.stem) if self.has_folder else None}


class CityscapesReader(Reader):
    """Lists a Cityscapes tree spread over one or more roots.

    Parameters
    ----------
    url : str or list of str
        Roots; see :func:`cityscapes_io.open`.
    split : str or list of str, optional
    cities : str or list of str, optional
    storage_options : dict, optional
    on_error : "raise", "skip" or callable
    annotations : {"gtFine", "gtCoarse"}, optional
        The annotation tree to read; default gtFine when present, else gtCoarse.
    image : str, optional
        The photo key of the frames' own photo (default ``leftImg8bit``): ``rightImg8bit``,
        ``leftImg8bit_foggy@beta_0.02``, ... Its folder then lists the photo-only frames.
    """

    format = "cityscapes"
    #: Top-level folders that mark a Cityscapes tree (``imgsFine/`` is Datumaro's first layout).
    TREE_DIRS = ("gtFine", "gtCoarse", "leftImg8bit", "imgsFine")
    EVIDENCE = "gtFine/ or leftImg8bit/"
    FINDS_WRAPPED_TREE = True
    ANNOTATION_TREES = ANNOTATION_DIRS
    PHOTO_KEYS = True
    NAME_GRAMMAR = True
    INSTANCE_KINDS = ("instanceIds", "instanceTrainIds")

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """A ``gtFine/``, ``gtCoarse/``, ``leftImg8bit/`` or ``imgsFine/`` folder, or a folder of
        the release's other parts (``rightImg8bit/``, ``disparity/``, ...)."""
        found = [d for d in cls.TREE_DIRS if listing.get(d) == "directory"]
        found += sorted(n for n, t in listing.items() if t == "directory" and is_part_folder(n))
        return f"{found[0]}/" if found else None

    @classmethod
    def root_hint(cls, url) -> Optional[str]:
        """A hint when ``url`` names a folder inside a Cityscapes tree (``…/gtFine``,
        ``…/gtFine/val``, ``…/leftImg8bit/train/aachen``) rather than the tree's root; None
        otherwise. Looks at the name only (no I/O)."""
        text = str(url).rstrip("/\\")
        parts = re.split(r"[/\\]", text)
        for back in range(1, min(3, len(parts)) + 1):
            if parts[-back] in cls.TREE_DIRS:
                parent = "/".join(parts[:-back]) or ("/" if text.startswith("/") else ".")
                return f"give the folder that holds gtFine/ and leftImg8bit/: {parent}"
        return None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise",
                 annotations: Optional[str] = None, image: Optional[str] = None):
        if annotations is not None and annotations not in ANNOTATION_DIRS:
            raise ValueError(f"annotations must be one of {', '.join(ANNOTATION_DIRS)}, got {annotations!r}")
        #: The photo key of the frames' own photo, its folder and what ends its file names.
        self.image_key = DEFAULT_IMAGE_KEY if image is None else image
        self._photo_folder = parse_image_key(self.image_key)[0]
        self._image_suffix = image_file_suffix(self.image_key)
        trees = [_find_tree(r) for r in resolve_roots(url, storage_options)]
        self.roots: List[Root] = [root for root, _, _ in trees]
        #: The release's part folders the roots hold (listed when a frame needs them).
        self.part_folders = PartFolders(_part_folders(trees))
        if self._photo_folder != IMAGE_DIR:
            if self._photo_folder not in self.part_folders.folders:
                raise missing_key(self.image_key, self.part_folders, " + ".join(map(str, self.roots)))
        found = [(root, _with_photo_folder(bases, entries, self._photo_folder)) for root, bases, entries in trees]
        #: The annotation trees the dataset has (``["gtFine", "gtCoarse"]``), and the one read.
        self.trees: List[str] = [t for t in ANNOTATION_DIRS if any(k == t for _, bs in found for k, _ in bs)]
        if annotations is not None and annotations not in self.trees and self.trees:
            raise DatasetNotFoundError(
                " + ".join(map(str, self.roots)),
                f"no {annotations}/ annotations (found: {', '.join(self.trees)})")
        self.annotations: str = annotations or (self.trees[0] if self.trees else GT_DIR)
        self._kind_dirs = (self.annotations, IMAGE_DIR)
        self.on_error = on_error
        #: Called with the path of every file under a split folder that is not a frame file.
        self.on_ignored = None
        self._split_filter = _as_list(split)
        self._city_filter = set(_as_list(cities) or ()) or None
        # The top-level listing: which kind folders each root has (``(kind, folder)``: the
        # photos' folder is ``leftImg8bit`` or ``imgsFine/leftImg8bit``), and their splits.
        self._kinds: List[List[Tuple[str, str]]] = [
            [(k, b) for k, b in bases if k in self._kind_dirs] for _, bases in found]
        self._top: List[Dict[str, str]] = [listdir(r, base) for r, bs in zip(self.roots, self._kinds) for _, base in bs]
        # Splits of the other annotation trees: their photo-only splits are theirs, not ours.
        self._other_splits: Set[str] = set()
        for root, bases in found:
            for k, base in bases:
                if k in ANNOTATION_DIRS and k != self.annotations:
                    self._other_splits.update(_split_names(listdir(root, base), annotations=True))
        self.labels = self._read_labels()
        #: The COCO panoptic ground truth beside the splits of the annotation tree read (of the
        #: splits asked for), by split: what ``csCreatePanopticImgs`` and ``prepare --kinds
        #: panoptic`` write there. Not splits: they hold no frames.
        self.panoptic: List[PanopticTruth] = self._find_panoptic()
        self._splits = self._find_splits()
        if self._city_filter is not None:
            self._check_cities()

    # -- labels -------------------------------------------------------------------------------
    def _read_labels(self) -> LabelMap:
        """``dataset_meta.json``, else ``label_colors.txt``, of the first root that has one;
        else the official map."""
        for fname in (META_FILE, COLORS_FILE):
            for root in self.roots:
                labels = read_label_file(root, fname)
                if labels is not None:
                    return labels
        return LabelMap.cityscapes()

    # -- listing ------------------------------------------------------------------------------
    def _find_splits(self) -> List[str]:
        found: Set[str] = set()
        annotated: Set[str] = set()
        kinds = [k for bs in self._kinds for k, _ in bs]
        for kind, listing in zip(kinds, self._top):
            dirs = _split_names(listing, annotations=kind in ANNOTATION_DIRS)
            found.update(dirs)
            if kind == self.annotations:
                annotated.update(dirs)
        found -= self._other_splits - annotated
        if self._split_filter is not None:
            missing = [s for s in self._split_filter if s not in found]
            if missing:
                elsewhere = [t for t in self.trees if t != self.annotations]
                hint = (f"; {', '.join(m for m in missing if m in self._other_splits)} belongs to "
                        f"{elsewhere[0]}: --annotations {elsewhere[0]}"
                        if elsewhere and any(m in self._other_splits for m in missing) else "")
                panoptic = [(m, _PANOPTIC_NAME.match(m)) for m in missing]
                hint += "".join(f"; {m} is not a split but the panoptic ground truth of split {match['split']}"
                                for m, match in panoptic if match is not None)
                raise DatasetNotFoundError(
                    " + ".join(map(str, self.roots)),
                    f"no split {', '.join(map(repr, missing))} in {self.annotations} "
                    f"(found: {', '.join(sorted(found)) or 'none'}){hint}",
                )
            return sorted(self._split_filter)
        if not found:
            only = (f" ({self.annotations}/ holds only panoptic ground truth: "
                    f"{', '.join(sorted({p.display() for p in self.panoptic}))})" if self.panoptic else "")
            raise DatasetNotFoundError(
                " + ".join(map(str, self.roots)),
                f"not a Cityscapes dataset: no {self.annotations}/<split>/ or {self._photo_folder}/<split>/ folder{only}",
            )
        return sorted(found)

    def _find_panoptic(self) -> List[PanopticTruth]:
        """The panoptic ground truth in the top listings of the annotation tree read."""
        parts: Dict[Tuple[int, str], Tuple[str, bool, Set[str]]] = {}
        folders = [(i, k, base) for i, bs in enumerate(self._kinds) for k, base in bs]
        for (i, kind, base), listing in zip(folders, self._top):
            if kind != self.annotations:
                continue
            for name, typ in listing.items():
                match = _panoptic_match(name, typ)
                if match is None:
                    continue
                stem = f"{base}/{name[:-len('.json')] if match['json'] else name}"
                split = match["split"]
                if self._split_filter is None or split in self._split_filter:
                    parts.setdefault((i, stem), (split, bool(match["train"]), set()))[2].add(typ)
        found = [PanopticTruth(split, train, self.roots[i], stem, "file" in types, "directory" in types)
                 for (i, stem), (split, train, types) in parts.items()]
        return sorted(found, key=lambda p: (p.split, p.train_ids, p.root.url))

    def splits(self) -> List[str]:
        return list(self._splits)

    def annotation_roots(self) -> List[Root]:
        """The roots holding the annotation tree read (``gtFine/`` or ``gtCoarse/``)."""
        return [root for root, bases in zip(self.roots, self._kinds) if any(k == self.annotations for k, _ in bases)]

    def _split_folders(self, split: str) -> Iterator[Tuple[Root, str, str]]:
        """``(root, kind, folder)`` of every folder holding the split: ground truth first."""
        for root, bases in zip(self.roots, self._kinds):
            for kind in self._kind_dirs:
                for k, base in bases:
                    if k == kind:
                        yield root, kind, f"{base}/{split}"

    def split_locations(self, split: str) -> List[str]:
        found = []
        for root, rel in self._split_dirs(split):
            try:
                if root.fs.isdir(root.join(rel)):
                    found.append(root.display(rel))
            except OSError:  # only naming the folder: never fail over it
                continue
        return found

    def _split_dirs(self, split: str) -> Iterator[Tuple[Root, str]]:
        """``(root, folder)`` of every folder holding the split."""
        for root, _, rel in self._split_folders(split):
            yield root, rel

    def _check_cities(self) -> None:
        """Refuse a requested city that no read split has (one listing per split folder)."""
        assert self._city_filter is not None
        present: Set[str] = set()
        for split in self._splits:
            for root, rel in self._split_dirs(split):
                present.update(n for n, t in listdir(root, rel).items() if t == "directory")
        missing = sorted(self._city_filter - present)
        if missing:
            raise DatasetNotFoundError(
                " + ".join(map(str, self.roots)),
                f"no city {', '.join(map(repr, missing))} in split(s) {', '.join(self._splits)} "
                f"(found: {', '.join(sorted(present)) or 'none'})",
            )

    def _split_listing(self, split: str) -> Tuple[List[str], List[Tuple[Root, str, str, str]]]:
        """Cities (folders) of a split, and ``(root, kind, folder, name)`` of the files lying
        directly in the split folder."""
        cities: Set[str] = set()
        loose: List[Tuple[Root, str, str, str]] = []
        for root, kind, rel in self._split_folders(split):
            try:
                entries = listdir(root, rel)
            except CityscapesIOError as exc:
                apply_policy(self.on_error, exc)
                continue
            for name, typ in entries.items():
                if typ == "directory":
                    cities.add(name)
                else:
                    loose.append((root, kind, rel, name))
        if self._city_filter is not None:
            cities &= self._city_filter
        return sorted(cities), loose

    def cities(self, split: str) -> List[str]:
        return self._split_listing(split)[0]

    def iter_frames(self, split: str) -> Iterator[Frame]:
        cities, loose = self._split_listing(split)
        if loose and self._city_filter is None:
            yield from self._group(split, [(r, kind, rel, r.join(rel, n)) for r, kind, rel, n in loose])
        for city in cities:
            yield from self.iter_city(split, city)

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        files: List[Tuple[Root, str, str, str]] = []
        for root, kind, rel in self._split_folders(split):
            path = root.join(rel, city)
            try:
                with storage_errors(root.display(f"{rel}/{city}"), "cannot list"):
                    found = find_files(root.fs, path)
            except FileNotFoundError:
                continue
            except StorageError as exc:  # the on_error policy decides: raise, or skip the folder
                apply_policy(self.on_error, exc)
                continue
            files.extend((root, kind, rel, p) for p in found)
        try:
            yield from self._group(split, files)
        finally:
            # Object stores cache listings (and the sizes that spare a HEAD per read): keep the
            # city's while its frames are read, then drop it, so memory stays bounded however
            # many cities a split has.
            for root, rel in self._split_dirs(split):
                if is_remote(root.fs):
                    root.fs.invalidate_cache(root.join(rel, city))

    def _group(self, split: str, files) -> Iterator[Frame]:
        frames: Dict[str, Dict[str, Tuple[object, str]]] = {}
        for root, kind, rel, path in files:
            sub = root.relative(path)
            prefix = rel + "/"
            if not sub.startswith(prefix):
                continue
            parsed = split_suffix(sub[len(prefix):], kind, self._image_suffix)
            if parsed is None:
                # Not a frame file (`validate` reports these), unless another photo of the folder
                # read (a fog density other than the one chosen).
                other_photo = kind == IMAGE_DIR and f"_{photo_file_word(self._photo_folder)}_" in sub.rsplit("/", 1)[-1]
                if self.on_ignored is not None and not other_photo:
                    self.on_ignored(path)
                continue
            frame_id, kind = parsed
            frames.setdefault(frame_id, {}).setdefault(kind, (root.fs, path))
        train_map = self.labels if self.labels.is_train_ids else _TRAIN_MAP
        for frame_id in sorted(frames, key=sort_key):
            files = frames[frame_id]
            # Train-id files without official ones are read with the 19-class train map (road = 0).
            official = any(k in files for k in OFFICIAL_KINDS)
            labels = train_map if not official and any(k in files for k in TRAIN_KINDS) else self.labels
            yield Frame(frame_id, split, labels, files, on_error=self.on_error, annotations=self.annotations,
                        parts=FrameParts(self.part_folders, split, frame_id, self.image_key))



def _find_tree(root: Root) -> Tuple[Root, List[Tuple[str, str]], Dict[str, str]]:
    """The root of the tree, its kind folders (see :func:`_kind_folders`) and its top listing,
    descending into a single wrapping folder (an archive holding ``Cityscapes/gtFine/…``). A
    root holding only the release's other parts (``disparity_trainvaltest.zip``: ``disparity/``)
    is a root too."""
    for _ in range(3):
        entries = listdir(root, "")
        bases = _kind_folders(root, entries)
        dirs = [n for n, t in entries.items() if t == "directory"]
        if bases or any(is_part_folder(n) for n in dirs) or len(dirs) != 1:
            return root, bases, entries
        root = root.child(dirs[0])
    entries = listdir(root, "")
    return root, _kind_folders(root, entries), entries


def _with_photo_folder(bases: List[Tuple[str, str]], entries: Dict[str, str], folder: str) -> List[Tuple[str, str]]:
    """A root's kind folders with the photos read from ``folder`` (a photo key's folder) instead
    of ``leftImg8bit/``."""
    if folder == IMAGE_DIR:
        return bases
    kept = [(k, b) for k, b in bases if k != IMAGE_DIR]
    return kept + [(IMAGE_DIR, folder)] if entries.get(folder) == "directory" else kept


def _part_folders(trees) -> Dict[str, List[Tuple[Root, str]]]:
    """``{folder: [(root, base)]}`` of the release's part folders at the top of the roots (and
    the photos of Datumaro's first layout, ``imgsFine/leftImg8bit``)."""
    out: Dict[str, List[Tuple[Root, str]]] = {}
    for root, bases, entries in trees:
        for name, typ in sorted(entries.items()):
            if typ == "directory" and is_part_folder(name):
                out.setdefault(name, []).append((root, name))
        if (IMAGE_DIR, OLD_IMAGE_BASE) in bases:
            out.setdefault(IMAGE_DIR, []).append((root, OLD_IMAGE_BASE))
    return out


def _kind_folders(root: Root, entries: Dict[str, str]) -> List[Tuple[str, str]]:
    """``(kind, folder)`` of the kind folders at the top of ``root`` (its listing is
    ``entries``): ``gtFine``, ``gtCoarse``, ``leftImg8bit``, and ``imgsFine/leftImg8bit``
    (Datumaro's first layout), in that order."""
    bases = [(k, k) for k in ANNOTATION_DIRS + (IMAGE_DIR,) if entries.get(k) == "directory"]
    if entries.get(IMGS_FINE_DIR) == "directory" and listdir(root, IMGS_FINE_DIR).get(IMAGE_DIR) == "directory":
        bases.append((IMAGE_DIR, OLD_IMAGE_BASE))
    return bases


def _panoptic_match(name: str, typ: str) -> Optional["re.Match[str]"]:
    """The parts of a panoptic name (``split``, ``train``, ``json``) when ``name``, a ``typ``
    entry of an annotation folder, is ``csCreatePanopticImgs`` output: a folder
    ``cityscapes_panoptic_<split>[_trainId]`` or its ``.json`` file."""
    match = _PANOPTIC_NAME.match(name)
    if match is None or (typ == "directory") == bool(match["json"]):
        return None
    return match


def _split_names(listing: Dict[str, str], *, annotations: bool) -> Set[str]:
    """The split folders of a kind folder's listing: every folder, but in an annotation folder
    not the panoptic ground truth's (see :class:`PanopticTruth`)."""
    return {n for n, t in listing.items()
            if t == "directory" and not (annotations and _panoptic_match(n, t) is not None)}


def _as_list(value) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


class CityscapesWriter(Writer):
    """Writes ``<tree>/<split>/<id>_<tree>_{instanceIds,labelIds,color}.png`` (``<tree>`` is the
    frame's annotation tree, ``gtFine`` or ``gtCoarse``), the polygons files, the photos under
    ``leftImg8bit/<split>/`` (with ``save_media``), and ``label_colors.txt`` (or
    ``dataset_meta.json`` with ``save_dataset_meta``, when the ids have gaps, or with
    ``save_train_ids``, see below).

    ``leftImg8bit/<split>/`` is made for every split with ground truth, empty when no photo
    goes there, where the destination has folders (local disk; not an object store, where a
    prefix exists only through its objects): Datumaro imports a split only when that folder
    exists.

    instanceIds are 16-bit (``label * 1000 + instance``, the plain label for crowd and stuff
    regions); labelIds 8-bit; color RGBA like the official files. When the output labels are
    the input's, the original encoded files are copied instead of re-encoded.

    Output labels that are Cityscapes train ids (:func:`cityscapes_io.to_train_ids`) go into
    ``_instanceTrainIds.png`` and ``_labelTrainIds.png``, never into ``_labelIds.png`` (which
    every tool reads as official label ids). ``save_train_ids`` also writes those two files
    beside the official ones, as ``cityscapes-io prepare`` and the official scripts do; the
    label file is then ``dataset_meta.json``, whose ``labels`` list the 19 train classes: in
    such a tree Datumaro reads ``_labelTrainIds.png`` alone, and names their values by the
    label file (this library and the official scripts read the label ids as before).

    ``_color.png`` and the label file have the labels' colours; those of a map whose names are
    the official ones are the official colours (:meth:`LabelMap.with_official_colors`), even
    when the map was read back from a format that made its colours unique (VOC).

    A frame's polygons file is copied when its labels are unchanged, rewritten with the new
    names when the labels were only renamed, and otherwise not written (one warning at the
    end says why).

    ``parts`` (:func:`~cityscapes_io.formats.base.parse_parts`: part names, photo folders or
    keys, ``_sequence`` folders, or ``"all"``) copies the frame's files of the release's other
    parts byte for byte, each to ``<folder>/<split>/<city>/<its name>`` as the release has it
    (:meth:`Frame.part_files <cityscapes_io.Frame.part_files>`). A frame lacking a part named
    in the selection gets nothing of it, and a note in the report (``all`` asks only for what
    each frame has). The frame's own photo is a file of the selection too when the selection
    holds its key (``all``, its folder, or the key): it is then copied to its own place
    (``leftImg8bit/…_leftImg8bit.png`` for the default key, the same file ``save_media``
    writes; ``leftImg8bit_foggy/…_leftImg8bit_foggy_beta_0.02.png`` for a dataset opened with
    ``image="leftImg8bit_foggy@beta_0.02"``). ``save_media`` writes the frame's photo as
    ``leftImg8bit/…_leftImg8bit<ext>`` as without parts, except when the selection holds the
    release's own ``leftImg8bit`` photo of a frame opened with another key: that file keeps its
    place, and the frame's photo goes to its own place instead. So ``save_media=True,
    parts="all"`` writes every file of a tree as it is, whatever photo key it was opened with.
    """

    format = "cityscapes"
    ENCODES_AHEAD = True
    OPTIONS = Writer.OPTIONS + (SAVE_DATASET_META, Option(
        "save_train_ids", "also write _labelTrainIds.png and _instanceTrainIds.png (cityscapes)",
        argparse={"action": "store_true"}), PARTS)

    def __init__(self, url, *, save_dataset_meta: bool = False, save_train_ids: bool = False,
                 parts: Union[str, Sequence[str], None] = None, **options):
        self.save_dataset_meta = bool(save_dataset_meta)
        self.save_train_ids = bool(save_train_ids)
        #: The release's parts copied (:func:`~cityscapes_io.formats.base.parse_parts`), checked
        #: before the destination is opened.
        self.parts: Tuple[str, ...] = parse_parts(parts)
        super().__init__(url, **options)

    def setup(self, labels: LabelMap) -> None:
        #: The labels as the label file and ``_color.png`` give them (official colours for
        #: official names).
        self._shown = labels.with_official_colors()
        self._colors = self._shown.color_table(256)
        self._train = labels.is_train_ids
        self._train_table = labels.train_id_table(256)
        #: The (instance, class) kinds the masks go into.
        self._kinds = ("instanceTrainIds", "labelTrainIds") if self._train else ("instanceIds", "labelIds")

    def _gt_kinds(self, frame: Frame) -> Tuple[str, ...]:
        """The ground-truth files written for ``frame``."""
        extra = TRAIN_KINDS if not self._train and (self.save_train_ids or self._has_train_ids(frame)) else ()
        return self._kinds + ("color",) + extra

    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:
        files = []
        tree = frame.annotations
        if seg is not None:
            if max((class_of(v) for v in seg.values), default=0) > 255:
                raise InvalidFileError(frame.id, "Cityscapes labelIds are 8-bit: label ids must be below 256")
            inst_kind, class_kind = self._kinds
            # Unchanged pixels: the original files are copied, not re-encoded.
            original = frame.original if seg.unchanged else (lambda kind: None)
            ids_png = original(inst_kind)
            label_png = original(class_kind) if ids_png is not None else None
            recolored = self._shown is not self.labels
            color_png = original("color") if ids_png is not None and seg.same_colors and not recolored else None
            if ids_png is None:
                ids_png = png.encode_label_png(seg.ids.astype(np.uint16, copy=False))
            label_ids: Optional[np.ndarray] = None
            if label_png is None or color_png is None or (self.save_train_ids and not self._copied_train_ids(frame, seg)):
                label_ids = apply_lut(value_lut(seg.values, class_of), seg.ids)
            if label_png is None:
                assert label_ids is not None
                label_png = png.encode_label_png(label_ids)
            if color_png is None:
                assert label_ids is not None
                rgba = np.empty(label_ids.shape + (4,), dtype=np.uint8)
                rgba[..., :3] = self._colors[label_ids]
                rgba[..., 3] = 255
                color_png = png.encode_label_png(rgba)
            files += [
                (gt_path(frame.split, frame.id, inst_kind, tree), ids_png),
                (gt_path(frame.split, frame.id, class_kind, tree), label_png),
                (gt_path(frame.split, frame.id, "color", tree), color_png),
            ]
            if not self._train:
                files += self._train_id_files(frame, seg, label_ids)
        polygons, _ = self.output_polygons(frame, seg)
        if polygons is not None:
            files.append((gt_path(frame.split, frame.id, "polygons", tree), polygons))
        plan = self._part_plan(frame)
        if self.save_media and not plan.photo_taken:
            photo = self.photo(frame, None if seg is None else seg.ids.shape)
            if photo is not None:
                files.append((image_path(frame.split, frame.id, photo[1]), photo[0]))
        return files + self._part_files(frame, plan)

    def encode(self, frame: Frame) -> Encoded:
        """As every writer encodes; a frame lacking some of the parts named in :attr:`parts`
        says so in its entry's warnings (the report lists it)."""
        encoded = super().encode(frame)
        notes = missing_parts(frame, self.parts)
        if not notes:
            return encoded
        return replace(encoded, entry=replace(encoded.entry, warnings=encoded.entry.warnings + notes))

    def _part_plan(self, frame: Frame) -> "_PartPlan":
        """Where the frame's files of the selected parts go (listing their folders, reading
        nothing): what :meth:`frame_files` writes and :meth:`planned_files` expects."""
        parts = frame.parts
        if not self.parts or parts is None:
            return _NO_PARTS
        files = tuple((part_relpath(folder, frame.split, frame.id, name), loc)
                      for folder, name, loc in parts.selected_files(self.parts))
        if not frame.has_image:
            return _PartPlan(files, None, False)
        key = frame.image_key
        ext = self.photo_ext(frame) if self.save_media else None
        photo = image_path(frame.split, frame.id, ext) if ext else None
        taken = photo is not None and any(rel == photo for rel, _ in files)
        own: Optional[str] = None
        if taken or covers_photo(self.parts, key):
            name = frame_dir(frame.id)[1] + image_file_suffix(key) + (frame.image_ext or ".png")
            own = part_relpath(parse_image_key(key)[0], frame.split, frame.id, name)
            if own == photo and not taken:  # the default key: save_media writes that very file
                own = None
        return _PartPlan(files, own, taken)

    def _part_files(self, frame: Frame, plan: "_PartPlan") -> List[Tuple[str, bytes]]:
        """The files of ``plan``, read: the selected parts' bytes, and the frame's own photo's."""
        out = []
        if plan.files:
            parts = frame.parts
            assert parts is not None
            out = [(rel, parts.read(loc, rel.split("/", 1)[0])) for rel, loc in plan.files]
        if plan.own is not None:
            data = frame.image_bytes()
            assert data is not None  # (the plan has its place only when the frame has a photo)
            out.append((plan.own, data))
        return out

    def _copied_train_ids(self, frame: Frame, seg: Segments) -> Optional[List[bytes]]:
        """The frame's own train-id files (``instanceTrainIds``, ``labelTrainIds``), when its ids
        are written unchanged and it has both: copied, whether or not ``save_train_ids`` asks for
        them, so that nothing of the input is lost (those of the official scripts, drawn from the
        polygons, can differ at edges from train ids made from instanceIds)."""
        if not seg.unchanged:
            return None
        found = [frame.original(kind) for kind in TRAIN_KINDS]
        return None if any(data is None for data in found) else [d for d in found if d is not None]

    def _train_id_files(self, frame: Frame, seg: Segments, label_ids: Optional[np.ndarray]) -> List[Tuple[str, bytes]]:
        """``_instanceTrainIds.png`` and ``_labelTrainIds.png`` beside official ids: the frame's
        own when they can be copied, else made from the ids with ``save_train_ids``."""
        copied = self._copied_train_ids(frame, seg)
        if copied is None and not self.save_train_ids:
            return []
        if copied is None:
            assert label_ids is not None
            inst_train: np.ndarray = apply_lut(train_value_lut(seg.values, self._train_table), seg.ids)
            copied = [png.encode_label_png(inst_train),
                      png.encode_label_png(apply_lut(self._train_table, label_ids))]
        return [(gt_path(frame.split, frame.id, kind, frame.annotations), data) for kind, data in zip(TRAIN_KINDS, copied)]

    def lost_part(self, frame: Frame, files: Files) -> str:
        if not (frame.has("polygons") or isinstance(frame.source, DerivedSource)):
            return ""
        polygons = gt_path(frame.split, frame.id, "polygons", frame.annotations)
        if any(rel == polygons for rel, _ in files):
            return ""
        return self.output_polygons(frame, None)[1]

    def planned_files(self, frame: Frame) -> List[str]:
        files = []
        if frame.has_annotations:
            files += [gt_path(frame.split, frame.id, k, frame.annotations) for k in self._gt_kinds(frame)]
        plan = self._part_plan(frame)
        ext = self.photo_ext(frame) if self.save_media and not plan.photo_taken else None
        if ext:
            files.append(image_path(frame.split, frame.id, ext))
        files += [rel for rel, _ in plan.files]
        if plan.own is not None:
            files.append(plan.own)
        return files

    def _has_train_ids(self, frame: Frame) -> bool:
        """Whether the frame's own train-id files are copied (see :meth:`_copied_train_ids`)."""
        assert self.labels is not None
        return all(frame.has(kind) for kind in TRAIN_KINDS) and mapping_between(frame.labels, self.labels).identity

    def index_files(self) -> Files:
        labels = self._shown
        train_names = labels.train_class_names() if self.save_train_ids and not self._train else None
        if train_names is not None:
            return [(META_FILE, labels.to_dataset_meta(labels_first=train_names).encode("utf-8"))]
        # label_colors.txt holds ids 0..N-1 only: a map with gaps (the train ids' 255) goes to
        # dataset_meta.json, which keeps its ids.
        if self.save_dataset_meta or not labels.is_dense:
            return [(META_FILE, labels.to_dataset_meta().encode("utf-8"))]
        return [(COLORS_FILE, labels.to_label_colors().encode("utf-8"))]

    def close_warnings(self) -> List[str]:
        if self.save_train_ids and not self._train and self._shown.train_class_names() is None:
            return [f"the output labels ({self._shown.source}) lack some of the 19 train classes: Datumaro will "
                    f"name the values of _labelTrainIds.png by the label file's order, not as train ids"]
        return []

    def index_info(self, frame: Frame) -> tuple:
        # Whether the frame has ground truth: its split then gets leftImg8bit/<split>/.
        return (True,) if frame.has_annotations else ()

    def index_folders(self) -> List[str]:
        # Datumaro imports gtFine/<split>/ only beside leftImg8bit/<split>/ (its own exporter
        # makes that folder empty without photos).
        return [f"{IMAGE_DIR}/{split}" for split in dict.fromkeys(split for split, _ in self.infos)]


@dataclass(frozen=True)
class _PartPlan:
    """Where a frame's files of the selected parts go: ``files``, ``(path in the output,
    location for FrameParts.read)`` of each; ``own``, where the frame's own photo is copied as
    a file of the selection (None: it is not); ``photo_taken``, whether a selected file holds
    the place ``save_media`` writes the photo to (the photo then goes to ``own``)."""

    files: Tuple[Tuple[str, Any], ...]
    own: Optional[str]
    photo_taken: bool


_NO_PARTS = _PartPlan((), None, False)
