"""Reading a Cityscapes tree: ``leftImg8bit/<split>/<city>/…`` and ``gtFine/<split>/<city>/…``.

Nothing is listed before it is needed: opening reads the label files and the top-level folders;
the cities of a split are listed when the split is reached, and each city folder when iteration
reaches that city.
"""
from __future__ import annotations

from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from .. import png
from ..errors import CityscapesIOError, DatasetNotFoundError, InvalidFileError, LabelMapError
from ..frame import Frame, OnError, apply_policy
from ..labels import LabelMap
from ..names import GT_DIR, IMAGE_DIR, gt_path, image_path, sort_key, split_suffix
from ..storage import Root, is_remote, listdir, resolve_roots
from ..writers import Writer, class_of, value_lut

__all__ = ["CityscapesReader", "CityscapesWriter"]

KIND_DIRS = (GT_DIR, IMAGE_DIR)
_TRAIN_MAP = LabelMap.cityscapes_train()
META_FILE = "dataset_meta.json"
COLORS_FILE = "label_colors.txt"


class CityscapesReader:
    """Lists a Cityscapes tree spread over one or more roots.

    Parameters
    ----------
    url : str or list of str
        Roots; see :func:`cityscapes_io.open`.
    split : str or list of str, optional
    cities : str or list of str, optional
    storage_options : dict, optional
    on_error : "raise", "skip" or callable
    """

    format = "cityscapes"

    def __init__(self, url, *, split=None, cities=None, storage_options=None, on_error: OnError = "raise"):
        self.roots: List[Root] = [_find_tree(r) for r in resolve_roots(url, storage_options)]
        self.on_error = on_error
        #: Called with the path of every file under a split folder that is not a frame file.
        self.on_ignored = None
        self._split_filter = _as_list(split)
        self._city_filter = set(_as_list(cities) or ()) or None
        # The top-level listing: which kind folders each root has, and the splits inside them.
        self._kinds = [
            [k for k, t in listdir(r, "").items() if t == "directory" and k in KIND_DIRS] for r in self.roots
        ]
        self._top: List[Dict[str, str]] = [listdir(r, k) for r, ks in zip(self.roots, self._kinds) for k in ks]
        self.labels = self._read_labels()
        self._splits = self._find_splits()

    # -- labels -------------------------------------------------------------------------------
    def _read_labels(self) -> LabelMap:
        for fname, parse in ((META_FILE, LabelMap.parse_dataset_meta), (COLORS_FILE, LabelMap.parse_label_colors)):
            for root in self.roots:
                path = root.join(fname)
                try:
                    data = root.fs.cat_file(path)
                except (FileNotFoundError, IsADirectoryError):
                    continue
                except Exception as exc:
                    raise CityscapesIOError(_display(root, fname), f"cannot read: {exc}") from exc
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise LabelMapError(_display(root, fname), f"not UTF-8 text: {exc}") from exc
                lm = parse(text, source=_display(root, fname))
                if len(lm) == 0:
                    raise LabelMapError(_display(root, fname), "defines no labels")
                return lm
        return LabelMap.cityscapes()

    # -- listing ------------------------------------------------------------------------------
    def _find_splits(self) -> List[str]:
        found = set()
        for listing in self._top:
            found.update(n for n, t in listing.items() if t == "directory")
        if self._split_filter is not None:
            missing = [s for s in self._split_filter if s not in found]
            if missing:
                raise DatasetNotFoundError(
                    " + ".join(map(str, self.roots)),
                    f"no split {', '.join(map(repr, missing))} (found: {', '.join(sorted(found)) or 'none'})",
                )
            return sorted(self._split_filter)
        if not found:
            raise DatasetNotFoundError(
                " + ".join(map(str, self.roots)),
                f"not a Cityscapes dataset: no {GT_DIR}/<split>/ or {IMAGE_DIR}/<split>/ folder",
            )
        return sorted(found)

    def splits(self) -> List[str]:
        return list(self._splits)

    def _split_dirs(self, split: str) -> Iterator[Tuple[Root, str]]:
        for root, kinds in zip(self.roots, self._kinds):
            for kind in KIND_DIRS:
                if kind in kinds:
                    yield root, f"{kind}/{split}"

    def _split_listing(self, split: str) -> Tuple[List[str], List[Tuple[Root, str, str]]]:
        """Cities (folders) of a split, and files lying directly in the split folder."""
        cities, loose = set(), []
        for root, rel in self._split_dirs(split):
            try:
                entries = listdir(root, rel)
            except CityscapesIOError as exc:
                apply_policy(self.on_error, exc)
                continue
            for name, typ in entries.items():
                if typ == "directory":
                    cities.add(name)
                else:
                    loose.append((root, rel, name))
        if self._city_filter is not None:
            cities &= self._city_filter
        return sorted(cities), loose

    def cities(self, split: str) -> List[str]:
        return self._split_listing(split)[0]

    def iter_frames(self, split: str) -> Iterator[Frame]:
        cities, loose = self._split_listing(split)
        if loose and self._city_filter is None:
            yield from self._group(split, [(r, rel, r.join(rel, n)) for r, rel, n in loose])
        for city in cities:
            yield from self.iter_city(split, city)

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        files = []
        for root, rel in self._split_dirs(split):
            path = root.join(rel, city)
            try:
                found = root.fs.find(path)
            except FileNotFoundError:
                continue
            except Exception as exc:  # network or server errors: name the folder
                apply_policy(self.on_error, CityscapesIOError(_display(root, f"{rel}/{city}"), f"cannot list: {exc}"))
                continue
            files.extend((root, rel, p) for p in found)
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
        for root, rel, path in files:
            sub = root.relative(path)
            prefix = rel + "/"
            if not sub.startswith(prefix):
                continue
            parsed = split_suffix(sub[len(prefix):], rel.split("/", 1)[0])
            if parsed is None:
                if self.on_ignored is not None:  # not a frame file; `validate` reports these
                    self.on_ignored(path)
                continue
            frame_id, kind = parsed
            frames.setdefault(frame_id, {}).setdefault(kind, (root.fs, path))
        for frame_id in sorted(frames, key=sort_key):
            files = frames[frame_id]
            # labelTrainIds without instanceIds are read with the 19-class train map (road = 0).
            labels = _TRAIN_MAP if "labelTrainIds" in files and "instanceIds" not in files else self.labels
            yield Frame(frame_id, split, labels, files, on_error=self.on_error)

    def find_frame(self, frame_id: str, split: Optional[str] = None) -> Frame:
        splits = [split] if split is not None else self._splits
        hits = []
        city = frame_id.split("/", 1)[0] if "/" in frame_id else None
        for s in splits:
            frames = self.iter_city(s, city) if city else self.iter_frames(s)
            hits.extend(f for f in frames if f.id == frame_id)
        if not hits:
            raise DatasetNotFoundError(frame_id, f"no such frame in split(s) {', '.join(splits)}")
        if len(hits) > 1:
            raise CityscapesIOError(frame_id, f"frame exists in splits {', '.join(f.split for f in hits)}: pass split=")
        return hits[0]

    def describe(self) -> Dict[str, object]:
        return {"roots": [str(r) for r in self.roots], "labels_source": self.labels.source}


def _find_tree(root: Root) -> Root:
    """Descend into a single wrapping folder (an archive holding ``Cityscapes/gtFine/…``)."""
    for _ in range(3):
        entries = listdir(root, "")
        if any(n in KIND_DIRS and t == "directory" for n, t in entries.items()):
            return root
        dirs = [n for n, t in entries.items() if t == "directory"]
        if len(dirs) != 1:
            return root
        root = Root(root.fs, root.join(dirs[0]), f"{root.url.rstrip('/')}/{dirs[0]}")
    return root


def _display(root: Root, rel: str) -> str:
    return f"{root.url.rstrip('/')}/{rel}"


def _as_list(value) -> Optional[List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    return list(value)


class CityscapesWriter(Writer):
    """Writes ``gtFine/<split>/<id>_gtFine_{instanceIds,labelIds,color}.png``, the photos under
    ``leftImg8bit/<split>/`` (with ``save_media``), and ``label_colors.txt`` (or
    ``dataset_meta.json`` with ``save_dataset_meta``).

    instanceIds are 16-bit (``label * 1000 + instance``, the plain label for crowd and stuff
    regions); labelIds 8-bit; color RGBA like the official files. When the output labels are
    the input's, the original encoded files are copied instead of re-encoded.
    """

    format = "cityscapes"

    def __init__(self, url, *, save_dataset_meta: bool = False, **options):
        super().__init__(url, **options)
        self.save_dataset_meta = bool(save_dataset_meta)
        self._color_table: Optional[np.ndarray] = None

    def encode(self, frame: Frame):
        files = []
        seg = self.output_instance_ids(frame) if frame.has_annotations else None
        if seg is not None:
            inst, values = seg
            if max((class_of(v) for v in values), default=0) > 255:
                raise InvalidFileError(frame.id, "Cityscapes labelIds are 8-bit: label ids must be below 256")
            copy = inst is frame.instance_ids() and "instanceIds" in frame._files
            if copy:
                ids_png = frame.read_bytes("instanceIds")
            else:
                ids_png = png.encode_png(inst.astype(np.uint16, copy=False), compress_level=GT_COMPRESS)
            label_ids = value_lut(values, class_of)[inst]
            if copy and "labelIds" in frame._files:
                label_png = frame.read_bytes("labelIds")
            else:
                label_png = png.encode_png(label_ids, compress_level=GT_COMPRESS)
            if copy and "color" in frame._files:
                color_png = frame.read_bytes("color")
            else:
                rgba = np.empty(label_ids.shape + (4,), dtype=np.uint8)
                rgba[..., :3] = self._colors()[label_ids]
                rgba[..., 3] = 255
                color_png = png.encode_png(rgba, compress_level=GT_COMPRESS)
            files += [
                (gt_path(frame.split, frame.id, "instanceIds"), ids_png),
                (gt_path(frame.split, frame.id, "labelIds"), label_png),
                (gt_path(frame.split, frame.id, "color"), color_png),
            ]
        if self.save_media:
            photo = self.photo(frame, None if seg is None else seg[0].shape)
            if photo is not None:
                files.append((image_path(frame.split, frame.id, photo[1]), photo[0]))
        return files

    def planned_files(self, frame: Frame) -> List[str]:
        files = []
        if frame.has_annotations:
            files += [gt_path(frame.split, frame.id, k) for k in ("instanceIds", "labelIds", "color")]
        ext = self.photo_ext(frame) if self.save_media else None
        if ext:
            files.append(image_path(frame.split, frame.id, ext))
        return files

    def _colors(self) -> np.ndarray:
        if self._color_table is None:
            self._color_table = self.labels.color_table(256)
        return self._color_table

    def index_files(self):
        # label_colors.txt holds ids 0..N-1 only: a map with gaps (the train ids' 255) goes to
        # dataset_meta.json, which keeps its ids.
        if self.save_dataset_meta or not self.labels.is_dense:
            return [(META_FILE, self.labels.to_dataset_meta().encode("utf-8"))]
        return [(COLORS_FILE, self.labels.to_label_colors().encode("utf-8"))]


#: zlib level of written ground-truth PNGs (they are flat images: low levels lose little size).
GT_COMPRESS = 3

