"""Pascal VOC segmentation: ``JPEGImages/``, ``SegmentationClass/``, ``SegmentationObject/``,
``ImageSets/Segmentation/<subset>.txt`` and ``labelmap.txt`` (Datumaro's label file).

Masks are 8-bit paletted PNGs. SegmentationClass holds the class index of every pixel (255 is
void); SegmentationObject numbers every segment 1..N (0 is background, 255 void). The writer
numbers every segment, stuff and crowd regions included (a reader that trusts
SegmentationObject would otherwise lose their class), and gives every label its own palette
colour, so that readers taking palette indices and readers mapping colours back to labels both
get the class ids back exactly.

VOC has no crowd flag and no instance numbers: reading back, a numbered segment of a class
with instances becomes instance ``class * 1000 + object number``; segments of classes without
instances (road, sky) become whole-class regions.
"""
from __future__ import annotations

import posixpath
from typing import Dict, Iterator, List, Optional

import numpy as np

from .. import png
from ..errors import DatasetNotFoundError, InvalidFileError, LabelMapError
from ..frame import Frame, OnError
from ..instances import INSTANCE_DIVISOR
from ..labels import Label, LabelMap
from ..names import sort_key
from ..storage import Root, listdir, resolve_single_root
from ..writers import Writer, class_of, distinct_colors, value_lut, voc_colormap

__all__ = ["VocReader", "VocWriter", "VOC_LABELS", "parse_labelmap", "format_labelmap"]

VOID = 255
VOID_COLOR = (224, 224, 192)
LABELMAP_FILE = "labelmap.txt"
SETS_DIR = "ImageSets/Segmentation"

#: The 21 Pascal VOC classes, used when a dataset has no labelmap.txt.
VOC_LABELS = ("background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse "
              "motorbike person pottedplant sheep sofa train tvmonitor").split()
_OFFICIAL = LabelMap.cityscapes()


def parse_labelmap(text: str, source: str = LABELMAP_FILE) -> LabelMap:
    """Parse Datumaro's ``labelmap.txt`` (``name:r,g,b:parts:actions``; id = line order)."""
    labels = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        color_text = rest.split(":", 1)[0].strip()
        color = None
        if color_text:
            try:
                color = tuple(int(c) for c in color_text.split(","))
            except ValueError:
                raise LabelMapError(source, f"line {lineno}: colour {color_text!r} is not r,g,b") from None
            if len(color) != 3 or not all(0 <= c <= 255 for c in color):
                raise LabelMapError(source, f"line {lineno}: colour {color_text!r} is not r,g,b in 0..255")
        labels.append(Label(name, len(labels), color))
    return LabelMap(labels, source=source)


def format_labelmap(labels: List[Label], colors) -> str:
    lines = ["# label:color_rgb:parts:actions"]
    for lab, (r, g, b) in zip(labels, colors):
        if ":" in lab.name or "\n" in lab.name:
            raise LabelMapError(LABELMAP_FILE, f"label name {lab.name!r} cannot be written (contains ':')")
        lines.append(f"{lab.name}:{r},{g},{b}::")
    return "\n".join(lines) + "\n"


def default_labels() -> LabelMap:
    cmap = voc_colormap(len(VOC_LABELS))
    return LabelMap((Label(n, i, cmap[i]) for i, n in enumerate(VOC_LABELS)), source="voc")


def has_instances(label: Optional[Label]) -> bool:
    """Whether numbered segments of this label are instances (official name lookup)."""
    if label is None:
        return True
    if label.has_instances is not None:
        return label.has_instances
    official = _OFFICIAL.find(label.name)
    return official.has_instances if official is not None else True


class VocFrame(Frame):
    """A VOC frame: classes from SegmentationClass, segments from SegmentationObject."""

    def _gt_kind(self) -> Optional[str]:
        return "class" if "class" in self._files else None

    def _class_indices(self) -> np.ndarray:
        # VOC's palette indices are the class ids (colour-coded RGB masks are mapped by colour).
        return decode_class_mask(self.read_bytes("class"), self.path("class"), self.labels, palette="indices")

    def _decode_instance_ids(self) -> Optional[np.ndarray]:
        if "class" not in self._files:
            return None
        cls = self._class_indices()
        cls = np.where(cls == VOID, 0, cls).astype(np.uint16)
        if "object" not in self._files:
            return cls
        obj = png.decode_gray(self.read_bytes("object"), self.path("object"))
        if obj.shape != cls.shape:
            raise InvalidFileError(self.path("object"), f"size {obj.shape[::-1]} differs from SegmentationClass "
                                                        f"{cls.shape[::-1]}")
        obj = np.where(obj == VOID, 0, obj).astype(np.uint16)
        # Each object takes the class most of its pixels have; a pixel of another class keeps it.
        pair = obj * 256 + np.minimum(cls, 255)
        counts = np.bincount(pair.ravel(), minlength=65536).reshape(256, 256)
        lut = np.tile(np.arange(256, dtype=np.uint16), 256)
        for k in np.flatnonzero(counts[1:].any(axis=1)) + 1:
            c = int(counts[k].argmax())
            if has_instances(self.labels.get(c)):
                lut[k * 256 + c] = c * INSTANCE_DIVISOR + k
        return lut[pair]


def decode_class_mask(data: bytes, path: str, labels: LabelMap, *, palette: str) -> np.ndarray:
    """Label ids of a class mask: RGB masks mapped by colour; paletted ones by index
    (``palette="indices"``) or by their palette's colours (``palette="colors"``); gray as is."""
    ctype = png.read_header(data, path).color_type
    if ctype in (2, 6):
        return colors_to_ids(png.decode_rgb(data, path), labels, path)
    if ctype == 3 and palette == "colors":
        indices, table_rgb = png.decode_paletted(data, path)
        used = np.unique(indices)
        table = np.zeros(256, np.uint16)
        table[used] = colors_to_ids(table_rgb[used][None, :, :], labels, path)[0]
        return table[indices]
    return png.decode_gray(data, path)


def colors_to_ids(rgb: np.ndarray, labels: LabelMap, path: str) -> np.ndarray:
    """Map an ``H×W×3`` colour mask to label ids by the labels' colours."""
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    table: Dict[int, int] = {}
    for lab in labels:
        if lab.color is not None and lab.id >= 0:
            table.setdefault((lab.color[0] << 16) | (lab.color[1] << 8) | lab.color[2], lab.id)
    uniq, inverse = np.unique(packed, return_inverse=True)
    ids = np.empty(len(uniq), dtype=np.uint16)
    for i, p in enumerate(uniq.tolist()):
        if p not in table:
            raise InvalidFileError(path, f"colour {(p >> 16, (p >> 8) & 255, p & 255)} is not in the label map "
                                         f"({labels.source})")
        ids[i] = table[p]
    return ids[inverse.reshape(packed.shape)]


class VocReader:
    """Lists a Pascal VOC segmentation dataset."""

    format = "voc"

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
        path = self.root.join(LABELMAP_FILE)
        try:
            text = self.root.fs.cat_file(path).decode("utf-8")
        except FileNotFoundError:
            return default_labels()
        return parse_labelmap(text, source=f"{self.root.url.rstrip('/')}/{LABELMAP_FILE}")

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

    def cities(self, split: str) -> List[str]:
        return []

    def _ids(self, split: str) -> List[str]:
        if split in self._lists:
            text = self.root.fs.cat_file(self.root.join(SETS_DIR, self._lists[split])).decode("utf-8")
            return [_unquote(line.strip()) for line in text.splitlines() if line.strip()]
        return sorted((i for i, k in self._files().items() if "class" in k), key=sort_key)

    def iter_frames(self, split: str) -> Iterator[Frame]:
        index = self._files()
        for frame_id in self._ids(split):
            kinds = index.get(frame_id, {})
            if not kinds:
                err = DatasetNotFoundError(frame_id, f"listed in {SETS_DIR}/{split}.txt but has no files")
                if self.on_error == "raise":
                    raise err
            files = {k: (self.root.fs, p) for k, p in kinds.items()}
            yield VocFrame(frame_id, split, self.labels, files, on_error=self.on_error)



def _quote(frame_id: str) -> str:
    """Ids with whitespace are written in double quotes (as Datumaro does)."""
    return f'"{frame_id}"' if any(c.isspace() for c in frame_id) else frame_id


def _unquote(line: str) -> str:
    if len(line) >= 2 and line[0] == line[-1] == '"':
        return line[1:-1]
    return line.split()[0] if " " in line and not line.startswith('"') else line


class VocWriter(Writer):
    """Writes Pascal VOC segmentation (see the module docstring)."""

    format = "voc"

    def __init__(self, url, **options):
        super().__init__(url, **options)
        self._palette: Optional[np.ndarray] = None

    def encode(self, frame: Frame):
        files = []
        seg = self.output_instance_ids(frame) if frame.has_annotations else None
        if seg is not None:
            inst, values = seg
            palette, _ = self._palettes()
            top = max((class_of(v) for v in values), default=0)
            if top > VOID or (top == VOID and VOID not in self.labels):
                raise InvalidFileError(frame.id, f"label id {top} does not fit a VOC class index (< 255)")
            cls = value_lut(values, class_of)[inst]
            # Number every segment but the background's 1..N, in value order.
            numbered = [v for v in values if class_of(v) not in (self._background, VOID)]
            if len(numbered) > VOID - 1:
                raise InvalidFileError(frame.id, f"{len(numbered)} segments: SegmentationObject holds at most 254")
            number = {v: k for k, v in enumerate(numbered, 1)}
            number.update({v: VOID for v in values if class_of(v) == VOID})
            obj = value_lut(values, lambda v: number.get(v, 0))[inst]
            files.append((f"SegmentationClass/{frame.id}.png", png.encode_png(cls, palette=palette, compress_level=3)))
            files.append((f"SegmentationObject/{frame.id}.png",
                          png.encode_png(obj, palette=self._object_palette, compress_level=3)))
        if self.save_media:
            photo = self.photo(frame, None if seg is None else seg[0].shape)
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

    def _palettes(self):
        if self._palette is None:
            labels = self._dense_labels()
            colors = distinct_colors(labels, reserved=[VOID_COLOR])
            pal = np.zeros((256, 3), np.uint8)
            pal[: len(colors)] = colors
            pal[VOID] = VOID_COLOR
            self._palette = pal
            self._colors = colors
            self._background = next((l.id for l in labels if l.color == (0, 0, 0)), 0)
            obj = np.array(voc_colormap(256), np.uint8)
            obj[VOID] = VOID_COLOR
            self._object_palette = obj
        return self._palette, self._colors

    def _dense_labels(self) -> List[Label]:
        # A label with id 255 (the train ids' "ignore") is VOC's void, outside labelmap.txt.
        rest = LabelMap((l for l in self.labels if l.id != VOID), source=self.labels.source)
        labels = rest._dense()
        if len(labels) > VOID:
            raise LabelMapError(self.labels.source, f"{len(labels)} labels: VOC class indices stop at 254")
        return labels

    def index_files(self):
        _, colors = self._palettes()
        files = [(f"{SETS_DIR}/{subset}.txt", "".join(_quote(i) + "\n" for i in ids).encode("utf-8"))
                 for subset, ids in self.subsets.items()]
        files.append((LABELMAP_FILE, format_labelmap(self._dense_labels(), colors).encode("utf-8")))
        return files
