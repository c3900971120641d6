"""Mapping labels between label maps, and the colour palettes written for them.

:class:`LabelMapping` maps the label ids of one map onto another by name (what a writer with
``label_map=...`` and every label operation do); :func:`resolve_label_map` turns a writer's
``label_map`` option into a map; :func:`distinct_colors` and :func:`voc_colormap` give the
palettes of colour-keyed outputs.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import fsspec
import numpy as np

from .errors import InvalidFileError, LabelMapError, RefusedError
from .instances import INSTANCE_DIVISOR, instance_value, split_value
from .labels import Label, LabelMap

__all__ = ["LabelMapping", "resolve_label_map", "background_id", "value_lut", "distinct_colors", "voc_colormap",
           "mapping_between", "pack_color", "label_color_table", "colors_to_ids"]


def resolve_label_map(label_map, source: Optional[LabelMap], storage_options=None) -> Optional[LabelMap]:
    """The output label map for a writer's ``label_map`` option.

    ``"source"`` (the input's labels), ``"cityscapes"`` (the official map), a path or URL of a
    ``label_colors.txt`` / ``dataset_meta.json``, a dict ``{name: (r, g, b)}``, or a LabelMap.
    """
    if label_map is None or label_map == "source":
        return source
    if isinstance(label_map, LabelMap):
        return label_map
    if isinstance(label_map, Mapping):
        return LabelMap.from_colors(label_map, source="label_map option")
    if label_map == "cityscapes":
        return LabelMap.cityscapes()
    path = str(label_map)
    try:
        with fsspec.open(path, "rb", **(storage_options or {})) as f:
            data = f.read()
    except FileNotFoundError:
        raise RefusedError(path, "label map file not found (expected 'source', 'cityscapes' or a file)") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelMapError(path, f"not UTF-8 text: {exc}") from None
    if path.lower().endswith(".json"):
        return LabelMap.parse_dataset_meta(text, source=path)
    return LabelMap.parse_label_colors(text, source=path)


def background_id(labels: LabelMap) -> int:
    """Id of the background label: the first black one, else one named background, else 0."""
    for lab in labels:
        if lab.color == (0, 0, 0) and lab.id >= 0:
            return lab.id
    bg = labels.find("background")
    return bg.id if bg is not None else 0


class LabelMapping:
    """Maps label ids of a source map onto a target map by name; labels the target lacks go to
    its background (one warning names them)."""

    def __init__(self, source: LabelMap, target: LabelMap, ids: Optional[Mapping[int, Optional[int]]] = None,
                 background: Optional[int] = None):
        self.source, self.target = source, target
        self.background = background_id(target) if background is None else background
        self.ids: Dict[int, int] = {}
        self.missing: Dict[int, str] = {}  # source id -> name, for labels the target lacks
        for lab in source:
            if lab.id < 0:
                continue
            if ids is not None:  # an explicit mapping (None: dropped on purpose, no warning)
                new = ids.get(lab.id)
                self.ids[lab.id] = self.background if new is None else new
                continue
            hit = target.get(lab.name) or target.find(lab.name)
            if hit is None or hit.id < 0:
                self.missing[lab.id] = lab.name
                self.ids[lab.id] = self.background
            else:
                self.ids[lab.id] = hit.id
        self.identity = source is target or (not self.missing and all(k == v for k, v in self.ids.items()))
        #: Whether every mapped label keeps its colour (a colour-coded file may then be copied).
        self.same_colors = source is target or all(
            source[s].color == target[t].color for s, t in self.ids.items() if t in target)

    def renames(self) -> Optional[Dict[str, str]]:
        """``{source name: target name}`` when the mapping only renames labels (one target label
        per source label, none dropped), so that name-based annotations (polygons) can follow
        it; None when labels are merged or dropped."""
        targets = list(self.ids.values())
        if self.missing or len(set(targets)) != len(targets) or any(t not in self.target for t in targets):
            return None
        out = {self.source[s].name: self.target[t].name for s, t in self.ids.items()}
        for lab in self.source:
            if lab.id < 0:  # never drawn (license plate): renamed when the target has it
                hit = self.target.get(lab.name) or self.target.get(lab.id)
                out[lab.name] = hit.name if hit is not None else lab.name
        return out

    def lut(self, values) -> np.ndarray:
        """Lookup table remapping instanceIds values (``out = lut[arr]``); the array's distinct
        known values are ``values``.

        Instance numbers are kept; when two source instances land on the same output value
        (two labels merged into one), the later one gets the next free number. Pixels of
        unknown labels become background."""
        lut = np.full(65536, self.background, dtype=np.uint16)
        used: Dict[int, set] = {}
        for v in sorted(int(x) for x in values):
            lab, number = split_value(v)
            if number is not None:
                num = number
                new_lab = self.ids.get(lab, self.background)
                if new_lab == self.background:  # dropped: the pixels become plain background
                    lut[v] = self.background
                    continue
                nums = used.setdefault(new_lab, set())
                if num in nums:
                    num = next(n for n in range(INSTANCE_DIVISOR) if n not in nums)
                nums.add(num)
                try:
                    lut[v] = instance_value(new_lab, num)
                except ValueError as exc:
                    raise LabelMapError(self.target.source, str(exc)) from None
            else:
                lut[v] = self.ids.get(v, self.background)
        return lut


def value_lut(values, fn, dtype=np.uint8) -> np.ndarray:
    """A 65536-entry lookup table with ``table[v] = fn(v)`` for the given instanceIds values.
    (Apply it with :func:`cityscapes_io.counting.apply_lut`.)"""
    table = np.zeros(65536, dtype=dtype)
    for v in values:
        table[v] = fn(v)
    return table


def distinct_colors(labels: List[Label], reserved=()) -> List[Tuple[int, int, int]]:
    """One colour per label, all different: a label keeps its colour unless an earlier label
    (or ``reserved``) took it (Cityscapes ids 0–4 are all black, pole/polegroup and
    car/license plate share one); then the nearest free colour is used. Labels without a
    colour get free ones."""
    used = set(tuple(c) for c in reserved)
    out = []
    for lab in labels:
        base = lab.color if lab.color is not None else _fallback_color(lab.id)
        color = base
        d = 1
        while color in used:
            r, g, b = base
            for cand in ((r, g, b + d), (r, g + d, b), (r + d, g, b), (r, g, b - d), (r, g - d, b), (r - d, g, b)):
                if all(0 <= c <= 255 for c in cand) and cand not in used:
                    color = cand
                    break
            d += 1
        used.add(color)
        out.append(color)
    return out


def _fallback_color(i: int) -> Tuple[int, int, int]:
    return voc_colormap(256)[i % 256]


def voc_colormap(n: int = 256) -> List[Tuple[int, int, int]]:
    """The Pascal VOC palette: index bits spread over the high bits of R, G and B."""
    out = []
    for i in range(n):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        out.append((r, g, b))
    return out


_MAPPINGS: "Dict[Tuple[int, int], Tuple[LabelMap, LabelMap, LabelMapping]]" = {}
_MAPPINGS_KEPT = 64


def mapping_between(source: LabelMap, target: LabelMap) -> LabelMapping:
    """The name-based :class:`LabelMapping` from ``source`` to ``target``, made once per pair of
    maps (frames of one dataset share their label map objects). Keyed by the maps themselves,
    not their equality, so that messages name the right map's source."""
    key = (id(source), id(target))
    hit = _MAPPINGS.get(key)
    if hit is not None and hit[0] is source and hit[1] is target:
        return hit[2]
    mapping = LabelMapping(source, target)
    if len(_MAPPINGS) >= _MAPPINGS_KEPT:
        try:  # (two threads may evict at once: the oldest may be gone, the dict may change meanwhile)
            _MAPPINGS.pop(next(iter(_MAPPINGS)), None)
        except (StopIteration, RuntimeError):
            pass
    _MAPPINGS[key] = (source, target, mapping)
    return mapping


# -- colour masks: colours to label ids (VOC's and CamVid's masks) -------------------------------
def pack_color(color) -> int:
    """An ``(r, g, b)`` colour as one integer, ``r << 16 | g << 8 | b``."""
    return (int(color[0]) << 16) | (int(color[1]) << 8) | int(color[2])


def label_color_table(labels: LabelMap) -> Dict[int, int]:
    """``{packed (r << 16 | g << 8 | b): label id}``; a colour shared by two labels reads as the
    first. When no label has a colour, label ``i`` has VOC's colour ``i`` (as Datumaro paints
    such maps, for VOC and CamVid alike)."""
    table: Dict[int, int] = {}
    if not any(lab.color is not None for lab in labels):
        cmap = voc_colormap(256)
        for lab in labels:
            if 0 <= lab.id < 256:
                table.setdefault(pack_color(cmap[lab.id]), lab.id)
        return table
    for lab in labels:
        if lab.color is not None and lab.id >= 0:
            table.setdefault(pack_color(lab.color), lab.id)
    return table


def colors_to_ids(rgb: np.ndarray, table: Dict[int, int], path: str, what: str) -> np.ndarray:
    """Map an ``H×W×3`` colour mask to ids through ``table`` (``{packed colour: id}``).

    One binary search per pixel over the table's colours (no sort of the pixels), so a
    2048×1024 mask costs a few tens of milliseconds.

    Raises
    ------
    InvalidFileError
        A colour is not in the table; the message names ``path``, the first such pixel
        ``(x, y)`` in row order, its colour, and ``what`` the table is.
    """
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    keys = np.array(sorted(table), dtype=np.uint32)
    values = np.array([table[k] for k in keys.tolist()], dtype=np.uint16)
    if keys.size == 0:
        keys, values = np.array([0xFFFFFFFF], np.uint32), np.zeros(1, np.uint16)  # matches no colour
    pos = np.searchsorted(keys, packed)
    np.minimum(pos, keys.size - 1, out=pos)
    known = keys[pos] == packed
    if not known.all():
        y, x = divmod(int(np.argmin(known)), packed.shape[1])
        color = tuple(int(c) for c in rgb[y, x, :3])
        raise InvalidFileError(path, f"pixel (x={x}, y={y}) has colour {color}, which is not in {what}")
    return values[pos]
