"""Dataset operations as lazy, streaming steps: filter, remap labels, train ids, rename splits,
merge. Each returns a new :class:`~cityscapes_io.Dataset` that reads through its input frame
by frame; nothing is materialised.
"""
from __future__ import annotations

import copy
import fnmatch
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set

import numpy as np

from .errors import CityscapesIOError, DatasetNotFoundError
from .frame import Frame
from .labels import Label, LabelMap, TRAIN_IGNORE
from .names import parse_frame_id
from .writers import LabelMapping

__all__ = ["filter_dataset", "remap_labels", "to_train_ids", "rename_splits", "merge", "DerivedFrame"]


class DerivedFrame(Frame):
    """A frame whose instanceIds are its parent's passed through a value lookup table.

    The photo is the parent's (its bytes are still copied, not re-encoded); the ground truth is
    computed on demand from the parent's, so nothing is decoded before it is asked for.
    """

    def __init__(self, parent: Frame, labels: LabelMap, mapping: LabelMapping):
        super().__init__(parent.id, parent.split, labels, None, on_error=parent._on_error)
        self._parent = parent
        self._mapping = mapping
        if "image" in parent._files:
            self._files["image"] = parent._files["image"]
        elif "image" in parent._arrays:
            self._arrays["image"] = parent._arrays["image"]

    def _gt_kind(self) -> Optional[str]:
        return "derived" if self._parent.has_annotations else None

    def path(self, kind: str) -> str:
        if kind == "derived":
            parent_kind = self._parent._gt_kind()
            return self._parent.path(parent_kind) if parent_kind in self._parent._files else self._parent.id
        return super().path(kind)

    def _decode_instance_ids(self) -> Optional[np.ndarray]:
        arr = self._parent.instance_ids()
        if arr is None:
            return None
        values = [i.value for i in self._parent.instances()]
        return self._mapping.lut(values)[arr]

    def image(self):
        return self._parent.image()

    def image_bytes(self):
        return self._parent.image_bytes()

    def release(self) -> None:
        super().release()
        self._parent.release()


def _renamed(frame: Frame, *, split: Optional[str] = None, id: Optional[str] = None) -> Frame:
    out = copy.copy(frame)
    out._cache = {}
    out._pending = dict(frame._pending)
    if split is not None:
        out.split = split
    if id is not None:
        name = parse_frame_id(id)
        out.id, out.city, out.seq, out.frame = id, name.city, name.seq, name.frame
    return out


class _View:
    """A reader over another dataset: listing and frames pass through ``frame_fn``."""

    format = "view"

    def __init__(self, base, *, labels: Optional[LabelMap] = None,
                 splits: Optional[Callable[[List[str]], List[str]]] = None,
                 cities: Optional[Set[str]] = None,
                 frame_fn: Optional[Callable[[Frame], Optional[Frame]]] = None,
                 split_names: Optional[Mapping[str, str]] = None):
        self.base = base
        self.labels = labels if labels is not None else base.labels
        self.roots = getattr(base._reader, "roots", ())
        self._splits_fn = splits
        self._cities = cities
        self._frame_fn = frame_fn
        self._names = dict(split_names or {})  # new split name -> base split name

    def _base_split(self, split: str) -> str:
        return self._names.get(split, split)

    def splits(self) -> List[str]:
        names = self.base.splits()
        if self._splits_fn is not None:
            names = self._splits_fn(names)
        inverse = {v: k for k, v in self._names.items()}
        return sorted(inverse.get(s, s) for s in names)

    def cities(self, split: str) -> List[str]:
        cities = self.base.cities(self._base_split(split))
        return [c for c in cities if self._cities is None or c in self._cities]

    def _frames(self, split: str, city: Optional[str]) -> Iterator[Frame]:
        base_split = self._base_split(split)
        if self._cities is not None and city is None:
            source = (f for c in self.cities(split) for f in self.base.frames(base_split, c))
        else:
            source = self.base.frames(base_split, city)
        for frame in source:
            if split != base_split:
                frame = _renamed(frame, split=split)
            if self._frame_fn is not None:
                frame = self._frame_fn(frame)
                if frame is None:
                    continue
            yield frame

    def iter_frames(self, split: str) -> Iterator[Frame]:
        return self._frames(split, None)

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        if self._cities is not None and city not in self._cities:
            return iter(())
        return self._frames(split, city)



def _dataset(reader):
    from .dataset import Dataset

    bases = [reader.base] if hasattr(reader, "base") else list(getattr(reader, "datasets", ()))
    return Dataset(reader, prefetch=max((b.prefetch for b in bases), default=0))


def _as_set(value) -> Optional[Set[str]]:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def filter_dataset(ds, *, split=None, cities=None, ids=None, labels=None):
    """Frames of the given split(s), city(ies), ids (exact or glob patterns such as
    ``"aachen/*_000019"``) and/or containing any of the given labels (names or ids; this one
    decodes each frame's ground truth to decide)."""
    splits = _as_set(split)
    if splits is not None:
        missing = splits - set(ds.splits())
        if missing:
            raise DatasetNotFoundError(", ".join(ds.roots) or None, f"no split {', '.join(sorted(missing))}")
    patterns = sorted(_as_set(ids) or ())
    wanted_labels = None
    if labels is not None:
        wanted_labels = set()
        for lab in ([labels] if isinstance(labels, (str, int)) else labels):
            hit = ds.labels.get(lab) if isinstance(lab, int) else (ds.labels.get(lab) or ds.labels.find(lab))
            if hit is None:
                raise CityscapesIOError(ds.labels.source, f"no label {lab!r} in the label map")
            wanted_labels.add(hit.name)

    def keep(frame: Frame) -> Optional[Frame]:
        if patterns and not any(fnmatch.fnmatchcase(frame.id, p) for p in patterns):
            return None
        if wanted_labels is not None and not any(i.label.name in wanted_labels for i in frame.instances()):
            frame.release()
            return None
        return frame

    return _dataset(_View(ds, splits=(lambda names: [s for s in names if s in splits]) if splits else None,
                          cities=_as_set(cities), frame_fn=keep if patterns or wanted_labels else None))


def remap_labels(ds, mapping: Mapping[str, Optional[str]], *, default: str = "keep"):
    """Rename, merge or drop labels: ``{"car": "vehicle", "truck": "vehicle", "bicycle": None}``.

    Labels mapped to None or ``""`` are dropped (their pixels become background); labels not in
    ``mapping`` are kept (``default="keep"``) or dropped (``default="delete"``). Labels mapped to
    one name merge (instance numbers that collide are renumbered). The output map is numbered
    0..N-1 in the order of the input, as Datumaro does; the background label (the first black
    one) is kept, or ``background`` is added at 0.
    """
    if default not in ("keep", "delete"):
        raise ValueError("default must be 'keep' or 'delete'")
    src = ds.labels
    unknown = [k for k in mapping if src.get(k) is None and src.find(k) is None]
    if unknown:
        raise CityscapesIOError(src.source, f"labels not in the label map: {', '.join(unknown)}")
    by_name = {(src.get(k) or src.find(k)).name: v for k, v in mapping.items()}
    out: Dict[str, Label] = {}
    target_of: Dict[int, Optional[str]] = {}
    for lab in src:
        new = by_name.get(lab.name, lab.name if default == "keep" else None)
        if lab.name in by_name and not by_name[lab.name]:
            new = None
        target_of[lab.id] = new
        if new and new not in out:
            out[new] = Label(new, len(out), lab.color) if new != lab.name else Label(
                lab.name, len(out), lab.color, lab.train_id, lab.category, lab.has_instances, lab.ignore_in_eval)
    labels = list(out.values())
    if not any(l.color == (0, 0, 0) for l in labels) and "background" not in out:
        labels = [Label("background", 0, (0, 0, 0))] + [
            Label(l.name, l.id + 1, l.color, l.train_id, l.category, l.has_instances, l.ignore_in_eval) for l in labels]
    target = LabelMap(labels, source=f"{src.source} (remapped)")
    ids = {i: (target[n].id if n else None) for i, n in target_of.items()}
    mapping_obj = LabelMapping(src, target, ids)
    return _dataset(_View(ds, labels=target, frame_fn=_deriving(target, mapping_obj, src)))


def _deriving(target: LabelMap, main: LabelMapping, main_source: LabelMap):
    """frame -> DerivedFrame, with a name-based mapping for frames on another label map."""
    others: Dict[int, LabelMapping] = {}

    def derive(frame: Frame) -> Frame:
        if frame.labels is main_source or frame.labels == main_source:
            m = main
        else:
            m = others.get(id(frame.labels))
            if m is None:
                m = others[id(frame.labels)] = LabelMapping(frame.labels, target)
        return DerivedFrame(frame, target, m)

    return derive


def to_train_ids(ds):
    """Map labels to the 19 Cityscapes training ids (0 = road .. 18 = bicycle) with 255 for
    everything ignored in evaluation, through a lookup table (never by redrawing). Instances
    keep their numbers: a car ``26003`` becomes ``13003``."""
    target = LabelMap.cityscapes_train()
    official = LabelMap.cityscapes()

    def train_id(lab: Label) -> int:
        ref = official.get(lab.name) or official.find(lab.name)
        t = lab.train_id if lab.train_id is not None else (ref.train_id if ref is not None else None)
        return t if t is not None and 0 <= t < TRAIN_IGNORE else TRAIN_IGNORE

    src = ds.labels
    mapping_obj = LabelMapping(src, target, {l.id: train_id(l) for l in src}, background=TRAIN_IGNORE)

    def derive(frame: Frame) -> Frame:
        if frame.labels.source == "cityscapes-train":  # already train ids
            return frame
        m = mapping_obj if frame.labels is src else LabelMapping(
            frame.labels, target, {l.id: train_id(l) for l in frame.labels}, background=TRAIN_IGNORE)
        return DerivedFrame(frame, target, m)

    return _dataset(_View(ds, labels=target, frame_fn=derive))


def rename_splits(ds, names: Mapping[str, str]):
    """Rename splits: ``{"train": "training"}``."""
    have = set(ds.splits())
    missing = set(names) - have
    if missing:
        raise DatasetNotFoundError(", ".join(ds.roots) or None, f"no split {', '.join(sorted(missing))}")
    new = [names.get(s, s) for s in have]
    if len(set(new)) != len(new):
        raise CityscapesIOError(None, f"renaming gives two splits one name: {sorted(new)}")
    return _dataset(_View(ds, split_names={v: k for k, v in names.items()}))


class _MergedReader:
    format = "merged"

    def __init__(self, datasets: Sequence, on_duplicate: str):
        if on_duplicate not in ("error", "first", "rename"):
            raise ValueError("on_duplicate must be 'error', 'first' or 'rename'")
        self.datasets = list(datasets)
        self.on_duplicate = on_duplicate
        self.roots = tuple(r for d in self.datasets for r in getattr(d._reader, "roots", ()))
        # Union of the label maps by name: the first map's ids, then new names appended.
        base = self.datasets[0].labels
        labels = list(base)
        for d in self.datasets[1:]:
            for lab in d.labels:
                if base.get(lab.name) is None and base.find(lab.name) is None and \
                        all(l.name != lab.name for l in labels):
                    labels.append(Label(lab.name, max([l.id for l in labels] + [-1]) + 1, lab.color, lab.train_id,
                                        lab.category, lab.has_instances, lab.ignore_in_eval))
        self.labels = LabelMap(labels, source=" + ".join(d.labels.source for d in self.datasets))

    def splits(self) -> List[str]:
        return sorted({s for d in self.datasets for s in d.splits()})

    def cities(self, split: str) -> List[str]:
        return sorted({c for d in self.datasets if split in d.splits() for c in d.cities(split)})

    def _convert(self):
        mappings: Dict[int, LabelMapping] = {}

        def fn(frame: Frame) -> Frame:
            if frame.labels == self.labels or all(
                    self.labels.get(l.id) is not None and self.labels.get(l.id).name == l.name for l in frame.labels):
                return frame
            m = mappings.get(id(frame.labels))
            if m is None:
                m = mappings[id(frame.labels)] = LabelMapping(frame.labels, self.labels)
            return DerivedFrame(frame, self.labels, m)
        return fn

    def _chain(self, split: str, city: Optional[str]) -> Iterator[Frame]:
        seen: Set[str] = set()
        fn = self._convert()
        for k, d in enumerate(self.datasets):
            if split not in d.splits():
                continue
            for frame in d.frames(split, city):
                if frame.id in seen:
                    if self.on_duplicate == "error":
                        raise CityscapesIOError(frame.id, f"duplicate frame id in split {split!r} "
                                                          f"(source {k + 1}); use on_duplicate='first' or 'rename'")
                    if self.on_duplicate == "first":
                        continue
                    n = 1
                    while f"{frame.id}_{n}" in seen:
                        n += 1
                    frame = _renamed(frame, id=f"{frame.id}_{n}")
                seen.add(frame.id)
                yield fn(frame)

    def iter_frames(self, split: str) -> Iterator[Frame]:
        return self._chain(split, None)

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        return self._chain(split, city)



def merge(*datasets, on_duplicate: str = "error"):
    """One dataset from several: splits united, label maps unified by name (the first map's ids
    kept, new labels appended), frames of the later datasets relabelled when their maps differ.
    Duplicate frame ids within a split: ``"error"`` (default), ``"first"`` (keep the first
    one), or ``"rename"`` (later ones get ``_1``, ``_2``, ... appended)."""
    if len(datasets) == 1 and not hasattr(datasets[0], "splits"):
        datasets = tuple(datasets[0])
    if not datasets:
        raise ValueError("merge() needs at least one dataset")
    return _dataset(_MergedReader(datasets, on_duplicate))
