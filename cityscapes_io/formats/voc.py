"""Pascal VOC segmentation: ``JPEGImages/``, ``SegmentationClass/``, ``SegmentationObject/``,
``ImageSets/Segmentation/<subset>.txt`` and ``labelmap.txt`` (Datumaro's label file), or
``dataset_meta.json`` instead (``save_dataset_meta``, as Datumaro's exporter writes it; a
reader takes it before ``labelmap.txt``, as Datumaro's importer does).

Masks are 8-bit paletted PNGs. SegmentationClass holds the class index of every pixel (255 is
void); SegmentationObject numbers every segment 1..N (0 is background, 255 void). The writer
numbers every segment, stuff and crowd regions included (a reader that trusts
SegmentationObject would otherwise lose their class), and gives every label its own palette
colour, so that readers taking palette indices and readers mapping colours back to labels both
get the class ids back exactly.

VOC has no crowd flag and no instance numbers: reading back, a numbered segment of a class
with instances becomes instance ``class * 1000 + object number``; segments of classes without
instances (road, sky) become whole-class regions.

Masks written by other tools are read too: paletted and gray masks by index (the official VOC
files; Datumaro's with ``apply_colormap=False``), RGB masks by colour (Datumaro's default):
SegmentationClass by the ``labelmap.txt`` colours, SegmentationObject by VOC's colour map, void
by (224, 224, 192). A colour that means nothing is an error naming the file, a pixel and the
colour.

The ids of ``ImageSets/Segmentation/<subset>.txt`` name files under the dataset's folders; an id
that would lead outside the root (``../../x``, ``/etc/passwd``) is refused, naming the list and
the line.
"""
from __future__ import annotations

import json
import posixpath
from typing import Dict, Iterator, List, Mapping, Optional, Set, Tuple

import numpy as np

from ..counting import apply_lut
from .. import png
from ..errors import DatasetNotFoundError, InvalidFileError, LabelMapError, OnError, apply_policy
from ..frame import Frame
from ..sources import MaskSource
from ..instances import INSTANCE_DIVISOR
from ..labels import MAX_LABELS, Label, LabelMap, excerpt, has_instances, meta_object, parse_color, too_many_labels
from ..names import sort_key
from ..storage import Root, check_inside, listdir, resolve_single_root
from ..instances import MAX_INSTANCE_VALUE, class_of
from ..mapping import colors_to_ids, distinct_colors, label_color_table, pack_color, value_lut, voc_colormap
from .base import Reader
from .base import SAVE_DATASET_META, Files, Segments, Writer
from . import decode_text, read_dataset_file, resolve_listed, text_lines

__all__ = ["VocReader", "VocWriter", "VOC_LABELS", "parse_labelmap", "format_labelmap", "parse_voc_meta",
           "format_voc_meta", "decode_voc", "decode_voc_class", "decode_voc_object", "colors_to_ids",
           "label_color_table"]

VOID = 255
VOID_COLOR = (224, 224, 192)
LABELMAP_FILE = "labelmap.txt"
META_FILE = "dataset_meta.json"
SETS_DIR = "ImageSets/Segmentation"

#: The 21 Pascal VOC classes, used when a dataset has no labelmap.txt.
VOC_LABELS = ("background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
              "motorbike person pottedplant sheep sofa train tvmonitor").split()


def parse_labelmap(text: str, source: str = LABELMAP_FILE) -> LabelMap:
    """Parse Datumaro's ``labelmap.txt`` (``name:r,g,b:parts:actions``; id = line order).

    Raises
    ------
    LabelMapError
        A colour that is not three integers in 0..255, a repeated name, or more than
        :data:`~cityscapes_io.labels.MAX_LABELS` labels; the message names ``source`` and the line.
    """
    labels: List[Label] = []
    for lineno, line in text_lines(text.lstrip("\ufeff")):
        if line.startswith("#"):
            continue
        if len(labels) == MAX_LABELS:
            raise too_many_labels(source)
        name, _, rest = line.partition(":")
        color_text = rest.split(":", 1)[0].strip()
        color = parse_color(color_text.split(","), source, f"line {lineno}") if color_text else None
        labels.append(Label(name, len(labels), color))
    return LabelMap(labels, source=source)


def format_labelmap(labels: List[Label], colors) -> str:
    lines = ["# label:color_rgb:parts:actions"]
    for lab, (r, g, b) in zip(labels, colors):
        if ":" in lab.name or "\n" in lab.name:
            raise LabelMapError(LABELMAP_FILE, f"label name {lab.name!r} cannot be written (contains ':')")
        lines.append(f"{lab.name}:{r},{g},{b}::")
    return "\n".join(lines) + "\n"


def parse_voc_meta(data: bytes, source: str = META_FILE) -> LabelMap:
    """Parse the ``dataset_meta.json`` of a VOC dataset as Datumaro's VOC importer reads it.

    The labels are the names of ``labels`` in order, then those of ``label_map`` not listed
    there (its keys are not ids: Datumaro ignores them); the ``i``-th name of ``label_map``
    has the colour ``segmentation_colors[i]``. A label's id is its position (its class index
    in the masks).

    Raises
    ------
    LabelMapError
        Not JSON, not an object, neither ``labels`` nor ``label_map``, names that are not
        strings or repeated, too few colours, colours that are not ``[r, g, b]`` in 0..255, or
        more than :data:`~cityscapes_io.labels.MAX_LABELS` labels; the message names ``source``.
    """
    meta = meta_object(data, source)
    listed, named = meta.get("labels", []), meta.get("label_map", {})
    if not isinstance(listed, list) or not isinstance(named, dict):
        raise LabelMapError(source, "'labels' must be a list of names and 'label_map' an object of id: name")
    if "labels" not in meta and "label_map" not in meta:
        raise LabelMapError(source, "missing key 'labels' (or 'label_map')")
    if max(len(listed), len(named)) > MAX_LABELS:
        raise too_many_labels(source)
    for name in listed + list(named.values()):
        if not isinstance(name, str):
            raise LabelMapError(source, f"label names must be strings, got {excerpt(repr(name))}")
    seen: Set[str] = set()
    for name in listed:
        if name in seen:
            raise LabelMapError(source, f"'labels' lists {excerpt(name)!r} twice")
        seen.add(name)
    names = list(dict.fromkeys(listed + list(named.values())))
    if len(names) > MAX_LABELS:
        raise too_many_labels(source)
    colors = meta.get("segmentation_colors") or []
    if not isinstance(colors, list):
        raise LabelMapError(source, "'segmentation_colors' must be a list of [r, g, b]")
    by_name: Dict[str, object] = {}
    if any(colors):  # Datumaro reads an empty (or all-null) list as no colours
        if len(colors) < len(named):
            raise LabelMapError(source, f"'segmentation_colors' has {len(colors)} entries: too few for the "
                                        f"{len(named)} names of 'label_map'")
        by_name = {name: color for name, color in zip(named.values(), colors)}
    ids = {str(i): name for i, name in enumerate(names)}
    return LabelMap.parse_dataset_meta({"label_map": ids, "segmentation_colors": [by_name.get(n) for n in names]},
                                       source=source)


def format_voc_meta(labels: List[Label], colors) -> str:
    """``dataset_meta.json`` as Datumaro's VOC exporter writes it (``save_dataset_meta``): the
    names in class-index order as ``labels``, the same as ``label_map`` (``{"<index>": name}``)
    with one colour each in ``segmentation_colors``, and no parts and no actions per label."""
    keys = [str(i) for i in range(len(labels))]
    meta = {
        "labels": [lab.name for lab in labels],
        "label_map": {k: lab.name for k, lab in zip(keys, labels)},
        "segmentation_colors": [[int(c) for c in color] for color in colors],
        "parts": {k: [] for k in keys},
        "actions": {k: [] for k in keys},
    }
    return json.dumps(meta, ensure_ascii=False, separators=(",", ":"))


def default_labels() -> LabelMap:
    cmap = voc_colormap(len(VOC_LABELS))
    return LabelMap((Label(n, i, cmap[i]) for i, n in enumerate(VOC_LABELS)), source="voc")


#: Names of a label 0 that means "no class": VOC's void reads as that label.
NO_CLASS_NAMES = frozenset({"background", "_background_", "unlabeled", "unlabelled", "void", "ignore"})


def with_void(labels: LabelMap) -> LabelMap:
    """The labels a VOC dataset is read with: as they are when label 0 means "no class" (VOC's
    ``background``, the official ``unlabeled``: void reads as label 0) or when an id 255 exists;
    else with ``ignore`` (id 255, black, as the train ids have it) added, so that void does not
    read as a class (a train-id map written as VOC has road at 0)."""
    zero = labels.get(0)
    if VOID in labels or zero is None or zero.name.lower() in NO_CLASS_NAMES:
        return labels
    return LabelMap([*labels, Label("ignore", VOID, (0, 0, 0))], source=labels.source)


def decode_voc(class_data: bytes, class_path: str, object_data: Optional[bytes], object_path: Optional[str],
               labels: LabelMap) -> np.ndarray:
    """The instanceIds array of a VOC frame.

    Parameters
    ----------
    class_data, class_path : bytes, str
        The SegmentationClass PNG and its path (for messages).
    object_data, object_path : bytes or None, str or None
        The SegmentationObject PNG, when the frame has one.
    labels : LabelMap
        The dataset's labels (``labelmap.txt``): the colours of RGB class masks.

    Returns
    -------
    ndarray
        ``uint16``: ``class * 1000 + object number`` for the numbered segments of classes with
        instances, the plain class elsewhere; void (255) reads as 255 when the labels have an id
        255 (see :func:`with_void`), else as 0.

    Raises
    ------
    InvalidFileError
        A mask is not a PNG, holds a colour that is neither a label's nor void, or the two
        masks differ in size.
    """
    cls = decode_voc_class(class_data, class_path, labels).astype(np.uint16)
    if VOID not in labels:
        cls[cls == VOID] = 0
    if object_data is None:
        return cls
    obj = decode_voc_object(object_data, object_path or "SegmentationObject")
    if obj.shape != cls.shape:
        raise InvalidFileError(object_path, f"size {obj.shape[::-1]} differs from SegmentationClass "
                                            f"{cls.shape[::-1]}")
    obj = np.where(obj == VOID, 0, obj).astype(np.uint16)
    # Each object takes the class most of its pixels have; a pixel of another class keeps it.
    pair = obj * 256 + np.minimum(cls, 255)
    counts = np.bincount(pair.ravel(), minlength=65536).reshape(256, 256)
    lut = np.tile(np.arange(256, dtype=np.uint16), 256)
    for k in np.flatnonzero(counts[1:].any(axis=1)) + 1:
        c = int(counts[k].argmax())
        # Instances need c * 1000 + k to fit 16 bits (label ids up to 65): a class above that
        # keeps its pixels as a whole-class region rather than wrapping onto another label.
        if has_instances(labels.get(c), default=True) and c * INSTANCE_DIVISOR + k <= MAX_INSTANCE_VALUE:
            lut[k * 256 + c] = c * INSTANCE_DIVISOR + k
    return lut[pair]


class VocSource(MaskSource):
    """A VOC frame's files: classes from SegmentationClass, segments from SegmentationObject
    (RGB masks are read by the colours of the labels)."""

    GT_KINDS = ("class",)
    EXTRA_KIND = "object"
    DECODE = staticmethod(decode_voc)


def decode_voc_class(data: bytes, path: str, labels: LabelMap) -> np.ndarray:
    """Class index of every pixel of a SegmentationClass mask (255 is void).

    Paletted and gray masks are read by index (the official VOC files, and Datumaro's with
    ``apply_colormap=False``); RGB(A) masks (Datumaro's default) by colour: each label's colour
    from ``labelmap.txt`` (VOC's colour map by index when no label has one), and VOC's void
    colour (224, 224, 192) for 255.
    """
    if _is_color(data, path):
        table = label_color_table(labels)
        table.setdefault(pack_color(VOID_COLOR), VOID)
        return colors_to_ids(png.decode_rgb(data, path), table, path, f"the label map ({labels.source}) or void")
    return png.decode_gray(data, path)


def decode_voc_object(data: bytes, path: str) -> np.ndarray:
    """Object number of every pixel of a SegmentationObject mask (0 background, 255 void).

    Paletted and gray masks are read by index; RGB(A) masks (Datumaro's default) by VOC's
    colour map (index ``i`` has colour ``voc_colormap()[i]``; 255 is (224, 224, 192))."""
    if _is_color(data, path):
        return colors_to_ids(png.decode_rgb(data, path), _OBJECT_COLORS, path, "the VOC colour map")
    return png.decode_gray(data, path)


def _is_color(data: bytes, path: str) -> bool:
    """Whether a mask PNG is RGB or RGBA (read by colour), not gray or paletted (by index)."""
    return png.read_header(data, path).color_type in (2, 6)


_OBJECT_COLORS = {pack_color(c): i for i, c in enumerate(voc_colormap(256))}


class VocReader(Reader):
    """Lists a Pascal VOC segmentation dataset."""

    format = "voc"
    EVIDENCE = "SegmentationClass/"

    @classmethod
    def detect(cls, root: Root, listing: Mapping[str, str]) -> Optional[str]:
        """A ``SegmentationClass/`` folder, or ``ImageSets/Segmentation/``."""
        if listing.get("SegmentationClass") == "directory":
            return "SegmentationClass/"
        if listing.get("ImageSets") == "directory" and listdir(root, "ImageSets").get("Segmentation") == "directory":
            return "ImageSets/Segmentation/"
        return None

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root: Root = resolve_single_root(url, storage_options, "VOC")
        self.roots = [self.root]
        self.on_error = on_error
        self._split_filter = [split] if isinstance(split, str) else (list(split) if split else None)
        top = listdir(self.root, "")
        if "SegmentationClass" not in top:
            raise DatasetNotFoundError(self.root.url, "not a VOC segmentation dataset: no SegmentationClass/")
        self.labels = self._read_labels()
        self._index: Optional[Dict[str, Dict[str, str]]] = None
        self._lists = {posixpath.splitext(n)[0]: n for n, t in listdir(self.root, SETS_DIR).items()
                       if t == "file" and n.endswith(".txt")}

    def _read_labels(self) -> LabelMap:
        """``dataset_meta.json``, else ``labelmap.txt`` (Datumaro's order), else the 21 VOC classes;
        void as :func:`with_void` says."""
        return with_void(self._label_file())

    def _label_file(self) -> LabelMap:
        data = read_dataset_file(self.root, META_FILE)
        if data is not None:
            return parse_voc_meta(data, source=self.root.display(META_FILE))
        data = read_dataset_file(self.root, LABELMAP_FILE)
        if data is None:
            return default_labels()
        where = self.root.display(LABELMAP_FILE)
        return parse_labelmap(decode_text(data, where, LabelMapError), source=where)

    def _files(self) -> Dict[str, Dict[str, str]]:
        """``{id: {kind: path}}`` from one listing of each folder."""
        if self._index is None:
            index: Dict[str, Dict[str, str]] = {}
            for folder, kind in (("SegmentationClass", "class"), ("SegmentationObject", "object"),
                                 ("JPEGImages", "image")):
                base = self.root.join(folder)
                try:
                    found = self.root.fs.find(base)
                except FileNotFoundError:
                    continue
                for path in found:
                    rel = self.root.relative(path)[len(folder) + 1:]
                    stem, ext = posixpath.splitext(rel)
                    if kind != "image" and ext.lower() != ".png":
                        continue
                    index.setdefault(stem, {})[kind] = path
            self._index = index
        return self._index

    def splits(self) -> List[str]:
        names = sorted(self._lists) or ["default"]
        if self._split_filter is not None:
            missing = [s for s in self._split_filter if s not in names]
            if missing:
                raise DatasetNotFoundError(self.root.url, f"no subset {', '.join(map(repr, missing))}")
            return sorted(self._split_filter)
        return names

    def _ids(self, split: str) -> List[Tuple[str, Optional[str]]]:
        """``(id, line)`` of a subset's frames: from its list (each id checked to stay inside
        the root, ``line`` naming where it was read), else every id SegmentationClass has."""
        if split not in self._lists:
            return [(i, None) for i in sorted((i for i, k in self._files().items() if "class" in k), key=sort_key)]
        rel = f"{SETS_DIR}/{self._lists[split]}"
        where = self.root.display(rel)
        data = read_dataset_file(self.root, rel)
        if data is None:
            raise DatasetNotFoundError(where, "list file disappeared or cannot be read")
        ids: List[Tuple[str, Optional[str]]] = []
        first: Dict[str, str] = {}
        for lineno, line in text_lines(decode_text(data, where)):
            frame_id, entry = _unquote(line), f"line {lineno}"
            # Ids name files in the folders beside SegmentationClass/: none may lead out of the root.
            resolve_listed(self.root, frame_id, where, entry, base=self.root.join("SegmentationClass"))
            if frame_id in first:  # the frame would be given (and written) twice
                apply_policy(self.on_error, InvalidFileError(where, f"{entry}: lists {frame_id!r} again "
                                                                    f"(first on {first[frame_id]})"))
                continue
            first[frame_id] = entry
            ids.append((frame_id, entry))
        return ids

    def iter_frames(self, split: str) -> Iterator[Frame]:
        index = self._files()
        where = self.root.display(f"{SETS_DIR}/{self._lists.get(split, split)}")
        for frame_id, entry in self._ids(split):
            kinds = index.get(frame_id, {})
            if not kinds:
                # The on_error policy decides: raise, or warn / call the callable and skip it.
                apply_policy(self.on_error, DatasetNotFoundError(where, f"lists {frame_id!r}, which has no files"))
                continue
            for path in kinds.values():  # a link out of the root (local disk) is refused
                if entry is None:
                    check_inside(self.root.fs, self.root.path, path)
                else:
                    check_inside(self.root.fs, self.root.path, path, index=where, entry=entry,
                                 rel=self.root.relative(path))
            files = {k: (self.root.fs, p) for k, p in kinds.items()}
            yield Frame(frame_id, split, self.labels, VocSource(files, self.labels), on_error=self.on_error)



def _quote(frame_id: str) -> str:
    """Ids with whitespace are written in double quotes (as Datumaro does)."""
    return f'"{frame_id}"' if any(c.isspace() for c in frame_id) else frame_id


def _unquote(line: str) -> str:
    if len(line) >= 2 and line[0] == line[-1] == '"':
        return line[1:-1]
    return line.split()[0] if " " in line and not line.startswith('"') else line


class VocWriter(Writer):
    """Writes Pascal VOC segmentation (see the module docstring).

    Parameters
    ----------
    save_dataset_meta : bool
        Write the labels to ``dataset_meta.json`` instead of ``labelmap.txt``, as Datumaro's
        VOC exporter does with that option.
    **options
        As :class:`~cityscapes_io.formats.base.Writer`.
    """

    format = "voc"
    ENCODES_AHEAD = True
    OPTIONS = Writer.OPTIONS + (SAVE_DATASET_META,)

    def __init__(self, url, *, save_dataset_meta: bool = False, **options):
        self.save_dataset_meta = bool(save_dataset_meta)
        super().__init__(url, **options)

    def frame_files(self, frame: Frame, seg: Optional[Segments]) -> Files:
        files = []
        if seg is not None:
            inst, values = seg.ids, seg.values
            top = max((class_of(v) for v in values), default=0)
            assert self.labels is not None  # resolved when the writer was set up
            if top > VOID or (top == VOID and VOID not in self.labels):
                raise InvalidFileError(frame.id, f"label id {top} does not fit a VOC class index (< 255)")
            cls: np.ndarray = apply_lut(value_lut(values, class_of), inst)
            # Number every segment but the background's 1..N, in value order.
            numbered = [v for v in values if class_of(v) not in (self._background, VOID)]
            if len(numbered) > VOID - 1:
                raise InvalidFileError(frame.id, f"{len(numbered)} segments: SegmentationObject holds at most 254")
            number = {v: k for k, v in enumerate(numbered, 1)}
            number.update({v: VOID for v in values if class_of(v) == VOID})
            obj: np.ndarray = apply_lut(value_lut(values, lambda v: number.get(v, 0)), inst)
            files.append((f"SegmentationClass/{frame.id}.png",
                          png.encode_label_png(cls, palette=self._palette)))
            files.append((f"SegmentationObject/{frame.id}.png",
                          png.encode_label_png(obj, palette=self._object_palette)))
        if self.save_media:
            photo = self.photo(frame, None if seg is None else seg.ids.shape)
            if photo is not None:
                files.append((f"JPEGImages/{frame.id}{photo[1]}", photo[0]))
        return files

    def planned_files(self, frame: Frame) -> List[str]:
        files = []
        if frame.has_annotations:
            files += [f"SegmentationClass/{frame.id}.png", f"SegmentationObject/{frame.id}.png"]
        ext = self.photo_ext(frame) if self.save_media else None
        if ext:
            files.append(f"JPEGImages/{frame.id}{ext}")
        return files

    def setup(self, labels: LabelMap) -> None:
        # A label with id 255 (the train ids' "ignore") is VOC's void, outside labelmap.txt.
        dense = LabelMap((l for l in labels if l.id != VOID), source=labels.source).dense()
        if len(dense) > VOID:
            raise LabelMapError(labels.source, f"{len(dense)} labels: VOC class indices stop at 254")
        self._dense_labels = dense
        self._colors = distinct_colors(dense, reserved=[VOID_COLOR])
        self._palette = np.zeros((256, 3), np.uint8)
        self._palette[: len(self._colors)] = self._colors
        self._palette[VOID] = VOID_COLOR
        self._background = next((l.id for l in dense if l.color == (0, 0, 0)), 0)
        self._object_palette = np.array(voc_colormap(256), np.uint8)
        self._object_palette[VOID] = VOID_COLOR

    def index_files(self) -> Files:
        files = [(f"{SETS_DIR}/{subset}.txt", "".join(_quote(i) + "\n" for i in ids).encode("utf-8"))
                 for subset, ids in self.subsets.items()]
        if self.save_dataset_meta:
            files.append((META_FILE, format_voc_meta(self._dense_labels, self._colors).encode("utf-8")))
        else:
            files.append((LABELMAP_FILE, format_labelmap(self._dense_labels, self._colors).encode("utf-8")))
        return files
