"""CamVid, in Datumaro's layout: ``<subset>/<id>.<ext>``, ``<subset>annot/<id>.png``,
``<subset>.txt`` (lines ``/<subset>/<id>.<ext> /<subset>annot/<id>.png``) and
``label_colors.txt``.

Masks are paletted PNGs whose palette holds one colour per label (made distinct when the
input's colours collide): tools that expand the palette see the label colours, tools that read
indices see the label ids. CamVid is a semantic format with no instances; so that a round trip
keeps them, the writer also puts the frame's instanceIds (16-bit, the Cityscapes encoding) in
``<subset>annot_instances/<id>.png`` (``save_instances=False`` leaves it out). Other tools
ignore that folder; this reader uses it when its classes agree with the colour mask, and
otherwise reads every class region as one whole-class segment (``is_crowd`` True).
"""
from __future__ import annotations

import posixpath
import warnings
from typing import Dict, Iterator, List, Optional

import numpy as np

from .. import png
from ..errors import DatasetNotFoundError, InvalidFileError, LabelMapError
from ..frame import Frame, OnError
from ..labels import Label, LabelMap
from ..names import sort_key
from ..storage import Root, listdir, resolve_single_root
from ..writers import Writer, class_of, distinct_colors, value_lut
from .voc import decode_class_mask

__all__ = ["CamvidReader", "CamvidWriter"]

COLORS_FILE = "label_colors.txt"
ANNOT = "annot"
INSTANCES = "annot_instances"


class CamvidFrame(Frame):
    def _gt_kind(self) -> Optional[str]:
        return "mask" if "mask" in self._files else None

    def _decode_instance_ids(self) -> Optional[np.ndarray]:
        if "mask" not in self._files:
            return None
        # Masks are coloured: a paletted one is read by its palette's colours, not its indices.
        ids = decode_class_mask(self.read_bytes("mask"), self.path("mask"), self.labels, palette="colors")
        ids = ids.astype(np.uint16, copy=False)
        if "instances" in self._files:
            inst = png.decode_gray(self.read_bytes("instances"), self.path("instances"))
            # The instances are used only where they agree with the mask, the file other tools edit.
            if inst.shape == ids.shape:
                classes = np.where(inst >= 1000, inst // 1000, inst)
                if np.array_equal(classes, ids):
                    return inst.astype(np.uint16, copy=False)
            warnings.warn(f"{self.path('instances')}: does not match its colour mask; read as classes only")
        return ids


class CamvidReader:
    """Lists a CamVid dataset (subsets from ``<subset>.txt``, else ``<subset>annot/`` folders)."""

    format = "camvid"

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.root: Root = resolve_single_root(url, storage_options, "CamVid")
        self.roots = [self.root]
        self.on_error = on_error
        top = listdir(self.root, "")
        src = f"{self.root.url.rstrip('/')}/{COLORS_FILE}"
        try:
            self.labels = LabelMap.parse_label_colors(self.root.fs.cat_file(self.root.join(COLORS_FILE)).decode("utf-8"),
                                                      source=src)
        except FileNotFoundError:
            raise LabelMapError(src, "a CamVid dataset needs label_colors.txt") from None
        self._lists = {n[:-4]: n for n, t in top.items() if t == "file" and n.endswith(".txt") and n != COLORS_FILE}
        subsets = set(self._lists) or {n[: -len(ANNOT)] for n, t in top.items()
                                       if t == "directory" and n.endswith(ANNOT) and len(n) > len(ANNOT)}
        if not subsets:
            raise DatasetNotFoundError(self.root.url, "not a CamVid dataset: no <subset>.txt or <subset>annot/")
        wanted = [split] if isinstance(split, str) else (list(split) if split else None)
        if wanted is not None:
            missing = [s for s in wanted if s not in subsets]
            if missing:
                raise DatasetNotFoundError(self.root.url, f"no subset {', '.join(map(repr, missing))}")
            subsets = set(wanted)
        self._splits = sorted(subsets)

    def splits(self) -> List[str]:
        return list(self._splits)

    def cities(self, split: str) -> List[str]:
        return []

    def _pairs(self, split: str) -> Iterator[tuple]:
        if split in self._lists:
            text = self.root.fs.cat_file(self.root.join(self._lists[split])).decode("utf-8")
            for lineno, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if not line:
                    continue
                marker = f" /{split}{ANNOT}/"
                # Paths may contain spaces: cut at the mask path when it is there.
                parts = [line[: line.index(marker)], line[line.index(marker) + 1:]] if marker in line else line.split()
                image = parts[0].lstrip("/")
                mask = parts[1].lstrip("/") if len(parts) > 1 else None
                prefix = f"{split}/"
                stem = posixpath.splitext(image[len(prefix):] if image.startswith(prefix) else posixpath.basename(image))[0]
                yield stem, image, mask
            return
        annot = self.root.join(f"{split}{ANNOT}")
        for path in sorted(self.root.fs.find(annot)):
            rel = self.root.relative(path)[len(split) + len(ANNOT) + 1:]
            stem = posixpath.splitext(rel)[0]
            yield stem, None, self.root.relative(path)

    def _listing(self, folder: str) -> Dict[str, str]:
        """``{stem: path}`` of the files under a folder, from one listing."""
        out: Dict[str, str] = {}
        try:
            for p in self.root.fs.find(self.root.join(folder)):
                out[posixpath.splitext(self.root.relative(p)[len(folder) + 1:])[0]] = p
        except FileNotFoundError:
            pass
        return out

    def iter_frames(self, split: str) -> Iterator[Frame]:
        images = self._listing(split)
        image_paths = set(images.values())
        instances = self._listing(f"{split}{INSTANCES}")
        for stem, image, mask in sorted(self._pairs(split), key=lambda p: sort_key(p[0])):
            files = {}
            if mask:
                files["mask"] = (self.root.fs, self.root.join(mask))
            if image is not None and self.root.join(image) in image_paths:
                files["image"] = (self.root.fs, self.root.join(image))
            elif stem in images:
                files["image"] = (self.root.fs, images[stem])
            if mask and stem in instances:
                files["instances"] = (self.root.fs, instances[stem])
            yield CamvidFrame(stem, split, self.labels, files, on_error=self.on_error)



class CamvidWriter(Writer):
    """Writes CamVid (see the module docstring)."""

    format = "camvid"

    def __init__(self, url, *, save_instances: bool = True, **options):
        super().__init__(url, **options)
        self.save_instances = bool(save_instances)
        self._color_table: Optional[np.ndarray] = None

    def encode(self, frame: Frame):
        files = []
        split = frame.split or "default"
        seg = self.output_instance_ids(frame) if frame.has_annotations else None
        photo = self.photo(frame, None if seg is None else seg[0].shape) if self.save_media else None
        if photo is not None:
            files.append((f"{split}/{frame.id}{photo[1]}", photo[0]))
        if seg is not None:
            inst, values = seg
            palette = self._palette()
            pos = self._position
            unknown = sorted({class_of(v) for v in values} - set(pos))
            if unknown:
                raise InvalidFileError(frame.id, f"label id {unknown[0]} is not in the output label map")
            # A paletted PNG: colour readers see the label colours, index readers the label index
            # (the label's line in label_colors.txt: its id, unless the map has gaps).
            cls = value_lut(values, lambda v: pos[class_of(v)])[inst]
            files.append((f"{split}{ANNOT}/{frame.id}.png", png.encode_png(cls, palette=palette, compress_level=3)))
            if self.save_instances:
                if not self._dense:
                    inst = value_lut(values, lambda v: pos[class_of(v)] * 1000 + v % 1000 if v >= 1000 else pos[v],
                                     np.uint16)[inst]
                files.append((f"{split}{INSTANCES}/{frame.id}.png",
                              png.encode_png(inst.astype(np.uint16, copy=False), compress_level=3)))
        return files

    def index_info(self, frame: Frame) -> tuple:
        # <subset>.txt names the photo path, written or not.
        return (self.photo_ext(frame) or self.image_ext or frame.image_ext or ".png",)

    def planned_files(self, frame: Frame) -> List[str]:
        split = frame.split or "default"
        files = []
        if frame.has_annotations:
            files.append(f"{split}{ANNOT}/{frame.id}.png")
            if self.save_instances:
                files.append(f"{split}{INSTANCES}/{frame.id}.png")
        ext = self.photo_ext(frame) if self.save_media else None
        if ext:
            files.append(f"{split}/{frame.id}{ext}")
        return files

    def _palette(self) -> np.ndarray:
        if self._color_table is None:
            # label_colors.txt numbers labels by line: a map with gaps (the train ids' 255) is
            # written in id order, each label at its line's index.
            self._dense = self.labels.is_dense
            labels = sorted((l for l in self.labels if l.id >= 0), key=lambda l: l.id)
            labels += [l for l in self.labels if l.id < 0]
            self._position = {l.id: i for i, l in enumerate(labels) if l.id >= 0}
            if len(labels) > 256:
                raise LabelMapError(self.labels.source, f"{len(labels)} labels: CamVid masks hold at most 256")
            colors = distinct_colors(labels)
            table = np.zeros((256, 3), np.uint8)
            table[: len(colors)] = colors
            self._color_table = table
            self._out_labels = LabelMap((Label(l.name, i, c) for i, (l, c) in enumerate(zip(labels, colors))),
                                        source=self.labels.source)
        return self._color_table

    def index_files(self):
        self._palette()
        files = []
        for subset, ids in self.subsets.items():
            lines = [f"/{subset}/{i}{self._info.get((subset, i), ('.png',))[0]} /{subset}{ANNOT}/{i}.png\n"
                     for i in ids]
            files.append((f"{subset}.txt", "".join(lines).encode("utf-8")))
        files.append((COLORS_FILE, self._out_labels.to_label_colors().encode("utf-8")))
        return files
