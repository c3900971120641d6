"""Labels and label maps: the official Cityscapes table, ``label_colors.txt``, ``dataset_meta.json``.

A :class:`LabelMap` tells what the pixel values of ``labelIds`` images and ``v // 1000`` of
``instanceIds`` images mean: each value is the ``id`` of one :class:`Label`.
"""
from __future__ import annotations

import json
import numbers
import re
from dataclasses import dataclass, replace
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import jsonfile
from .errors import InvalidFileError, LabelMapError

__all__ = ["Label", "LabelMap", "normalize_name", "official_label", "has_instances", "train_id_of", "meta_object"]

Color = Tuple[int, int, int]


@dataclass(frozen=True)
class Label:
    """One label.

    ``train_id``, ``category``, ``has_instances`` and ``ignore_in_eval`` are set for the official
    Cityscapes labels and ``None`` for custom ones.
    """

    name: str
    id: int
    color: Optional[Color] = None
    train_id: Optional[int] = None
    category: Optional[str] = None
    has_instances: Optional[bool] = None
    ignore_in_eval: Optional[bool] = None


# The official table (cityscapesScripts, helpers/labels.py): name, id, trainId, category,
# hasInstances, ignoreInEval, color.
_OFFICIAL = [
    ("unlabeled", 0, 255, "void", False, True, (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", False, True, (0, 0, 0)),
    ("rectification border", 2, 255, "void", False, True, (0, 0, 0)),
    ("out of roi", 3, 255, "void", False, True, (0, 0, 0)),
    ("static", 4, 255, "void", False, True, (0, 0, 0)),
    ("dynamic", 5, 255, "void", False, True, (111, 74, 0)),
    ("ground", 6, 255, "void", False, True, (81, 0, 81)),
    ("road", 7, 0, "flat", False, False, (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", False, False, (244, 35, 232)),
    ("parking", 9, 255, "flat", False, True, (250, 170, 160)),
    ("rail track", 10, 255, "flat", False, True, (230, 150, 140)),
    ("building", 11, 2, "construction", False, False, (70, 70, 70)),
    ("wall", 12, 3, "construction", False, False, (102, 102, 156)),
    ("fence", 13, 4, "construction", False, False, (190, 153, 153)),
    ("guard rail", 14, 255, "construction", False, True, (180, 165, 180)),
    ("bridge", 15, 255, "construction", False, True, (150, 100, 100)),
    ("tunnel", 16, 255, "construction", False, True, (150, 120, 90)),
    ("pole", 17, 5, "object", False, False, (153, 153, 153)),
    ("polegroup", 18, 255, "object", False, True, (153, 153, 153)),
    ("traffic light", 19, 6, "object", False, False, (250, 170, 30)),
    ("traffic sign", 20, 7, "object", False, False, (220, 220, 0)),
    ("vegetation", 21, 8, "nature", False, False, (107, 142, 35)),
    ("terrain", 22, 9, "nature", False, False, (152, 251, 152)),
    ("sky", 23, 10, "sky", False, False, (70, 130, 180)),
    ("person", 24, 11, "human", True, False, (220, 20, 60)),
    ("rider", 25, 12, "human", True, False, (255, 0, 0)),
    ("car", 26, 13, "vehicle", True, False, (0, 0, 142)),
    ("truck", 27, 14, "vehicle", True, False, (0, 0, 70)),
    ("bus", 28, 15, "vehicle", True, False, (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", True, True, (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", True, True, (0, 0, 110)),
    ("train", 31, 16, "vehicle", True, False, (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", True, False, (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", True, False, (119, 11, 32)),
    ("license plate", -1, -1, "vehicle", False, True, (0, 0, 142)),
]

#: Pixel value of "ignore" in ``labelTrainIds`` images.
TRAIN_IGNORE = 255
#: How many classes the train ids have (0 = road .. 18 = bicycle).
TRAIN_CLASSES = 19
#: Most labels a label file may define, and the largest label id (in absolute value) it may
#: use: masks hold at most 16-bit values, and a file read from a dataset is bounded before the
#: labels are built.
MAX_LABELS = 65536
MAX_LABEL_ID = 65535
_DIGITS = re.compile(r"[0-9]+")
_KEY = re.compile(r"\s*[+-]?[0-9]+\s*")


def normalize_name(name: str) -> str:
    """Name used to match labels across maps: ``"Traffic Light"``, ``"trafficlight"`` and
    ``"traffic_light"`` all match."""
    return re.sub(r"[\s_\-]+", "", name).lower()



def meta_object(data: Union[str, bytes], source: str) -> dict:
    """A label file's JSON object (``dataset_meta.json``, Datumaro's and ours), parsed as dataset
    files are (:func:`cityscapes_io.jsonfile.loads`); anything else is a :class:`LabelMapError`
    naming ``source``."""
    try:
        meta = jsonfile.loads(data, source)
    except InvalidFileError as exc:
        raise LabelMapError(source, exc.reason) from exc
    if not isinstance(meta, dict):
        raise LabelMapError(source, "expected a JSON object")
    return meta

class LabelMap:
    """An ordered set of labels, looked up by id (``lm[26]``) or by name (``lm["car"]``).

    Parameters
    ----------
    labels : iterable of Label
        Ids and names must each be unique.
    source : str
        Where the map came from (a file path, or ``"cityscapes"`` for the official table).
    """

    def __init__(self, labels: Iterable[Label], source: str = "custom"):
        self._labels: Tuple[Label, ...] = tuple(labels)
        self.source = source
        self._by_id: Dict[int, Label] = {}
        self._by_name: Dict[str, Label] = {}
        for lab in self._labels:
            if lab.id in self._by_id:
                raise LabelMapError(source, f"duplicate label id {lab.id}")
            if lab.name in self._by_name:
                raise LabelMapError(source, f"duplicate label name {lab.name!r}")
            self._by_id[lab.id] = lab
            self._by_name[lab.name] = lab
        self._by_norm = {normalize_name(l.name): l for l in reversed(self._labels)}

    # -- constructors ---------------------------------------------------------------------
    @classmethod
    def cityscapes(cls) -> "LabelMap":
        """The official Cityscapes label map (ids 0..33, plus license plate with id -1)."""
        return cls(
            (Label(n, i, c, t, cat, hi, ig) for n, i, t, cat, hi, ig, c in _OFFICIAL),
            source="cityscapes",
        )

    @classmethod
    def cityscapes_train(cls) -> "LabelMap":
        """The 19 training classes by train id (0 = road .. 18 = bicycle), plus 255 = ignore,
        as used by ``*_gtFine_labelTrainIds.png``."""
        labels = [
            Label(n, t, c, t, cat, hi, ig)
            for n, i, t, cat, hi, ig, c in _OFFICIAL
            if 0 <= t < TRAIN_IGNORE
        ]
        labels.append(Label("ignore", TRAIN_IGNORE, (0, 0, 0), TRAIN_IGNORE, "void", False, True))
        return cls(labels, source="cityscapes-train")

    @classmethod
    def from_colors(
        cls, colors: Mapping[str, Optional[Sequence[int]]], source: str = "custom"
    ) -> "LabelMap":
        """Build a map from ``{name: (r, g, b) or None}``, ids in order.

        Datumaro's rule: the first label coloured (0, 0, 0) is the background and stays where it
        is; when no label is, ``background`` is inserted at index 0 (coloured (0, 0, 0) when the
        other labels have colours).
        """
        items = [(str(n), _color(c, source, n)) for n, c in colors.items()]
        has_colors = any(c is not None for _, c in items)
        if not any(c == (0, 0, 0) for _, c in items):
            names = [n for n, _ in items]
            if "background" in names:
                # Move the existing background label to the front.
                bg = items.pop(names.index("background"))
                items.insert(0, bg)
            else:
                items.insert(0, ("background", (0, 0, 0) if has_colors else None))
        return cls((Label(n, i, c) for i, (n, c) in enumerate(items)), source=source)

    @classmethod
    def parse_label_colors(cls, text: str, source: str = "label_colors.txt") -> "LabelMap":
        """Parse ``label_colors.txt``: one label per line, ``R G B name`` or just ``name``;
        ``#`` starts a comment; the label id is the line's position among label lines, after
        Datumaro's background rule (see :meth:`from_colors`: with no black label, ``background``
        is inserted at 0). Names may contain spaces (``0 0 142 license plate``). A byte-order
        mark at the start is ignored, as the official readers ignore it.

        Raises
        ------
        LabelMapError
            A line that is neither form, a colour outside 0..255, a repeated name, or more
            than :data:`MAX_LABELS` labels; the message names ``source`` and the line.
        """
        entries: List[Tuple[str, Optional[Color]]] = []
        for lineno, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if _DIGITS.fullmatch(parts[0].lstrip("+-")):
                if len(parts) < 4 or not all(_DIGITS.fullmatch(p) for p in parts[:3]):
                    raise LabelMapError(
                        source, f"line {lineno}: expected 'R G B name' or 'name', got {excerpt(raw.strip())!r}"
                    )
                name = " ".join(parts[3:])
                color: Optional[Color] = parse_color(parts[:3], source, f"line {lineno}: label {name!r}")
            else:
                name, color = " ".join(parts), None
            entries.append((name, color))
            if len(entries) > MAX_LABELS:
                raise too_many_labels(source)
        seen: Dict[str, int] = {}
        for i, (name, _) in enumerate(entries):
            if name in seen:
                raise LabelMapError(source, f"duplicate label name {name!r} (entries {seen[name]} and {i})")
            seen[name] = i
        # Datumaro's rule applies, as it does when Datumaro reads this file: without a black
        # label, "background" comes first and the listed labels follow from index 1.
        return cls.from_colors(dict(entries), source=source)

    @classmethod
    def parse_dataset_meta(cls, text: Union[str, bytes, dict], source: str = "dataset_meta.json") -> "LabelMap":
        """Parse ``dataset_meta.json``.

        ``{"label_map": {"0": "background", ...}, "segmentation_colors": [[0, 0, 0], ...]}``
        (or ``"labels": [...]`` instead of ``label_map``). The label ids are the keys (integers
        up to :data:`MAX_LABEL_ID` in absolute value), the names strings. The
        colour of the label with key ``k`` is ``segmentation_colors[k]``, as Datumaro's parser
        reads it (``null`` entries are labels without a colour, or padding at unused ids); a list
        too short for that, with one colour per label, is read in label order (the files older
        versions of this library wrote for ids with gaps).

        Parameters
        ----------
        text : str, bytes or dict
            The file's text, or its parsed JSON object.
        source : str
            Where it came from, for messages and :attr:`LabelMap.source`.

        Raises
        ------
        LabelMapError
            Not JSON (also non-finite numbers and pathological nesting, see
            :func:`cityscapes_io.jsonfile.loads`), no ``label_map`` or ``labels``, no labels
            or more than :data:`MAX_LABELS`, keys that are not integers in range, names that
            are not strings, or colours that are not ``[r, g, b]`` in 0..255 for every label.
        """
        meta = text if isinstance(text, dict) else meta_object(text, source)
        if "label_map" in meta:
            lm = meta["label_map"]
            if not isinstance(lm, dict):
                raise LabelMapError(source, "'label_map' must be an object of id: name")
            if len(lm) > MAX_LABELS:
                raise too_many_labels(source)
            pairs = sorted((_label_key(k, source), _label_name(v, source, f"label {k!r}")) for k, v in lm.items())
        elif "labels" in meta:
            if not isinstance(meta["labels"], list):
                raise LabelMapError(source, "'labels' must be a list of names")
            if len(meta["labels"]) > MAX_LABELS:
                raise too_many_labels(source)
            pairs = [(i, _label_name(n, source, f"label {i}")) for i, n in enumerate(meta["labels"])]
        else:
            raise LabelMapError(source, "missing key 'label_map' (or 'labels')")
        if not pairs:
            raise LabelMapError(source, "defines no labels")
        colors = meta.get("segmentation_colors")
        if colors is not None and not isinstance(colors, list):
            raise LabelMapError(source, "'segmentation_colors' must be a list of [r, g, b]")
        if colors is not None and not any(colors):
            colors = None  # Datumaro reads an empty (or all-null) list as no colours
        if colors is None:
            picked: List[Optional[object]] = [None] * len(pairs)
        elif all(0 <= i < len(colors) for i, _ in pairs):
            picked = [colors[i] for i, _ in pairs]  # indexed by key, as Datumaro does
        elif len(colors) >= len(pairs):
            picked = colors[: len(pairs)]  # one colour per label, in label order
        else:
            raise LabelMapError(source, f"'segmentation_colors' has {len(colors)} entries: too few for "
                                        f"{len(pairs)} labels (ids up to {max(i for i, _ in pairs)})")
        return cls((Label(name, i, _color(c, source, name)) for (i, name), c in zip(pairs, picked)), source=source)

    # -- writers ---------------------------------------------------------------------------
    def dense(self) -> List[Label]:
        """Labels in id order, checking that non-negative ids are 0..N-1 (negative ids last)."""
        pos = sorted((l for l in self._labels if l.id >= 0), key=lambda l: l.id)
        neg = [l for l in self._labels if l.id < 0]
        if [l.id for l in pos] != list(range(len(pos))):
            raise LabelMapError(self.source, "label ids must be 0..N-1 to be written to a label file")
        return pos + neg

    def to_label_colors(self, keep_spaces: bool = False) -> str:
        """``label_colors.txt`` text (line order = id; labels with negative ids come last).

        Other tools split these lines on whitespace and keep one word as the name, so spaces in
        names are written as ``_`` unless ``keep_spaces`` (this library reads both; names match
        across maps ignoring spaces and underscores). ``dataset_meta.json`` keeps names exactly.
        """
        lines = ["# label_colors [color_rgb name]"]
        for lab in self.dense():
            if "\n" in lab.name or "#" in lab.name or not lab.name.strip():
                raise LabelMapError(self.source, f"label name {lab.name!r} cannot be written to label_colors.txt")
            name = lab.name if keep_spaces else "_".join(lab.name.split())
            if lab.color is None:
                lines.append(name)
            else:
                lines.append("%d %d %d %s" % (*lab.color, name))
        return "\n".join(lines) + "\n"

    @property
    def is_dense(self) -> bool:
        """Whether the non-negative ids are exactly 0..N-1 (what ``label_colors.txt`` can hold)."""
        ids = sorted(l.id for l in self._labels if l.id >= 0)
        return ids == list(range(len(ids)))

    def to_dataset_meta(self, labels_first: Sequence[str] = ()) -> str:
        """``dataset_meta.json`` text, keeping the ids (which may have gaps, e.g. the train
        map's 255).

        ``label_map`` holds ``{"<id>": name}`` in id order and ``segmentation_colors`` is
        indexed by id, as Datumaro reads it: for ids with gaps the list is padded so that every
        key indexes it. The padding entries take the colour of the label whose *position*
        they are when no key claims them (so readers that take colours in label order, as
        Datumaro's VOC plugin does, also get them right whenever the gaps come after the last
        dense id), and ``null`` otherwise. A label without a colour is written black when
        others have one. Labels with negative ids are written after the others, keyed by
        position, when the ids are 0..N-1, and left out otherwise.

        ``labels_first``, when given, is written as the ``labels`` list. Datumaro numbers its
        labels in that order first, then the names of ``label_map`` it has not seen; this
        library reads ``label_map`` alone. A Cityscapes tree with ``_labelTrainIds.png`` beside
        its label ids lists the 19 train classes there, as those are the masks Datumaro reads.
        """
        if self.is_dense:
            labels = self.dense()
            keys = list(range(len(labels)))
        else:
            labels = sorted((l for l in self._labels if l.id >= 0), key=lambda l: l.id)
            keys = [l.id for l in labels]
        meta: dict = {"label_map": {str(k): l.name for k, l in zip(keys, labels)}}
        if any(l.color is not None for l in labels):
            colors: List[Optional[List[int]]] = [None] * (max(keys) + 1)
            taken = set(keys)
            for pos, lab in enumerate(labels):
                if pos not in taken:
                    colors[pos] = list(lab.color or (0, 0, 0))
            for key, lab in zip(keys, labels):
                colors[key] = list(lab.color or (0, 0, 0))
            meta["segmentation_colors"] = colors
        bg = next((str(k) for k, l in zip(keys, labels) if l.color == (0, 0, 0)), None)
        if bg is not None:
            meta["background_label"] = bg
        if labels_first:
            meta["labels"] = list(labels_first)
        text = json.dumps(meta, indent=2, ensure_ascii=False)
        # One colour per line (a raw newline never occurs inside a JSON string).
        return re.sub(r"\[\n\s+(\d+),\n\s+(\d+),\n\s+(\d+)\n\s+\]", r"[\1, \2, \3]", text) + "\n"

    # -- lookup ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._labels)

    def __iter__(self) -> Iterator[Label]:
        return iter(self._labels)

    def __contains__(self, key: Union[int, str]) -> bool:
        return (key in self._by_name) if isinstance(key, str) else (key in self._by_id)

    def __getitem__(self, key: Union[int, str]) -> Label:
        try:
            if isinstance(key, str):
                return self._by_name[key]
            return self._by_id[int(key)]
        except KeyError:
            raise KeyError(f"no label {key!r} in label map ({self.source})") from None

    def get(self, key: Union[int, str], default=None) -> Optional[Label]:
        try:
            return self[key]
        except KeyError:
            return default

    def find(self, name: str) -> Optional[Label]:
        """Find a label by name, ignoring case, spaces, underscores and hyphens."""
        return self._by_name.get(name) or self._by_norm.get(normalize_name(name))

    @property
    def names(self) -> List[str]:
        return [l.name for l in self._labels]

    @property
    def ids(self) -> List[int]:
        return [l.id for l in self._labels]

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelMap) and self._labels == other._labels

    def __hash__(self):
        return hash(self._labels)

    def __repr__(self) -> str:
        return f"LabelMap({len(self)} labels from {self.source})"

    def known_ids(self, size: int = 65536) -> np.ndarray:
        """Boolean lookup table: ``table[v]`` is True when ``v`` is a label id of this map."""
        table: np.ndarray = np.zeros(size, dtype=bool)
        for i in self._by_id:
            if 0 <= i < size:
                table[i] = True
        return table

    def train_id_table(self, size: int = 256) -> np.ndarray:
        """``(size,)`` uint8 lookup table label id → Cityscapes train id, 255 (ignore) for
        labels without one: a label's own ``train_id``, else that of the official label of its
        name. ``table[frame.label_ids()]`` is the frame's ``labelTrainIds`` image."""
        table = np.full(size, TRAIN_IGNORE, dtype=np.uint8)
        for lab in self._labels:
            if 0 <= lab.id < size:
                table[lab.id] = train_id_of(lab)
        return table

    @property
    def is_train_ids(self) -> bool:
        """Whether this map's ids are Cityscapes train ids, as in :meth:`cityscapes_train`: the
        19 train classes, each with its train id as id (labels read from a file: the official
        class of that name), and nothing else but 255. Masks in these ids belong in
        ``_labelTrainIds.png`` files, never in ``_labelIds.png``."""
        # A map read back from a label file has no train ids: then its 19 classes must be the
        # official ones by name, with their train ids, and anything else 255.
        classes = [l for l in self._labels if l.id != TRAIN_IGNORE]
        if len(classes) != TRAIN_CLASSES:
            return False
        return all(train_id_of(l) == l.id for l in classes)

    def train_class_names(self) -> Optional[List[str]]:
        """The names of the 19 Cityscapes train classes in train-id order (road first), as this
        map spells them (found as :meth:`find` finds a name); None when the map lacks one."""
        found = [self.find(lab.name) for lab in _TRAIN_CLASSES]
        if any(lab is None for lab in found):
            return None
        return [lab.name for lab in found if lab is not None]

    def with_official_colors(self) -> "LabelMap":
        """This map with the official colours given back to the official labels that lost
        theirs only to stay apart from an earlier label.

        Formats that need one colour per label keep the first label of a shared colour and
        move the later ones to a free colour nearby; the Cityscapes labels share some (ids
        0–4 black, pole and polegroup, car and license plate), so VOC's ``labelmap.txt`` has
        ego vehicle (0, 0, 1), .... Here a label named as an official label (matched as
        :func:`official_label` matches names) whose colour is not the official one, while a
        label before it (in id order, negative ids last) has that official colour, takes it
        back. Any other colour is kept (a colour given on purpose, such as a recoloured
        road); a map with nothing to give back is returned as it is.
        """
        order = sorted(self._labels, key=lambda l: (l.id < 0, l.id))
        restored: Dict[int, Label] = {}
        seen: "set[Optional[Color]]" = set()
        for lab in order:
            ref = official_label(lab.name)
            if ref is not None and lab.color != ref.color and ref.color in seen:
                restored[lab.id] = replace(lab, color=ref.color)
            seen.add(lab.color)
        if not restored:
            return self
        return LabelMap((restored.get(l.id, l) for l in self._labels), source=self.source)

    def color_table(self, size: int = 256) -> np.ndarray:
        """``(size, 3)`` uint8 lookup table id → colour (black for unknown ids or no colour)."""
        table = np.zeros((size, 3), dtype=np.uint8)
        for lab in self._labels:
            if 0 <= lab.id < size and lab.color is not None:
                table[lab.id] = lab.color
        return table


def _color(value: Any, source: str, name: str) -> Optional[Color]:
    """A label's colour given as a sequence (a JSON list, a tuple): None, or three integers
    in 0..255; anything else (a string, two or four components, floats, booleans) is refused."""
    if value is None:
        return None
    comps: Tuple[Any, ...] = ()
    if not isinstance(value, (str, bytes, Mapping)):
        try:
            comps = tuple(value)
        except TypeError:
            pass
    if len(comps) != 3 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in comps):
        raise LabelMapError(source, f"label {name!r}: colour {excerpt(repr(value))} is not three integers")
    if not all(0 <= v <= 255 for v in comps):
        raise LabelMapError(source, f"label {name!r}: colour {excerpt(repr(value))} is not three integers in 0..255")
    return int(comps[0]), int(comps[1]), int(comps[2])


def parse_color(fields: Sequence[str], source: str, what: str) -> Color:
    """The colour written as three decimal numbers in a text label file (``label_colors.txt``,
    ``labelmap.txt``).

    Raises
    ------
    LabelMapError
        ``"<source>: <what>: colour ... is not ..."`` when a field is not ASCII digits, when
        there are not three, or when a value is outside 0..255 (checked on the text first: a
        number of thousands of digits is refused without converting it).
    """
    shown = excerpt(" ".join(fields))
    if len(fields) != 3 or not all(_DIGITS.fullmatch(f.strip()) for f in fields):
        raise LabelMapError(source, f"{what}: colour {shown!r} is not three integers")
    if any(len(f.strip().lstrip("0")) > 3 or int(f) > 255 for f in fields):
        raise LabelMapError(source, f"{what}: colour {shown!r} is not three integers in 0..255")
    r, g, b = (int(f) for f in fields)
    return r, g, b


def _label_key(key: Any, source: str) -> int:
    """A ``label_map`` key as a label id: a decimal integer (a JSON key is a string; a dict
    given directly may have ints) within :data:`MAX_LABEL_ID`, checked on the text before
    converting it."""
    text = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
    if not isinstance(text, str) or not _KEY.fullmatch(text):
        raise LabelMapError(source, f"'label_map' keys must be integers, got {excerpt(repr(key))}")
    digits = text.strip().lstrip("+-").lstrip("0")
    if len(digits) > len(str(MAX_LABEL_ID)) or abs(int(text)) > MAX_LABEL_ID:
        raise LabelMapError(source, f"label id {excerpt(text.strip())} is out of range "
                                    f"(-{MAX_LABEL_ID}..{MAX_LABEL_ID})")
    return int(text)


def _label_name(value: Any, source: str, what: str) -> str:
    if not isinstance(value, str):
        raise LabelMapError(source, f"{what}: the name must be a string, got {type(value).__name__}")
    return value


def too_many_labels(source: str) -> LabelMapError:
    """The error of a label file that defines more than :data:`MAX_LABELS` labels."""
    return LabelMapError(source, f"more than {MAX_LABELS} labels: at most {MAX_LABELS}")


def excerpt(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters for a message (crafted files hold huge values)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def official_label(name: str) -> Optional[Label]:
    """The official Cityscapes label of this name (matched ignoring case, spaces, underscores
    and hyphens), or None."""
    return _OFFICIAL_MAP.find(name)


def train_id_of(label: Label) -> int:
    """The Cityscapes train id of a label (its own, else that of the official label of its
    name); 255 (ignore) for labels without one."""
    t = label.train_id
    if t is None:
        ref = official_label(label.name)
        t = ref.train_id if ref is not None else None
    return t if t is not None and 0 <= t < TRAIN_IGNORE else TRAIN_IGNORE


def has_instances(label: Optional[Label], default: Optional[bool] = None) -> Optional[bool]:
    """Whether segments of ``label`` are countable objects (person, car, ...): the label's own
    ``has_instances``, else the official label of that name's, else ``default``."""
    if label is None:
        return default
    if label.has_instances is not None:
        return label.has_instances
    ref = official_label(label.name)
    return ref.has_instances if ref is not None else default


_OFFICIAL_MAP = LabelMap.cityscapes()
#: The 19 train classes, by train id.
_TRAIN_CLASSES = [lab for lab in LabelMap.cityscapes_train() if lab.id != TRAIN_IGNORE]
