"""Dataset operations as lazy, streaming steps: filter, remap labels, train ids, rename splits,
merge. Each returns a new :class:`~cityscapes_io.Dataset` that reads through its input frame
by frame; nothing is materialised.
"""
from __future__ import annotations

import dataclasses
import fnmatch
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set

from .errors import CityscapesIOError, DatasetNotFoundError
from .frame import Frame
from .labels import TRAIN_IGNORE, Label, LabelMap, has_instances, official_label
from .mapping import LabelMapping, mapping_between
from .formats.base import Reader

__all__ = ["filter_dataset", "remap_labels", "to_train_ids", "rename_splits", "merge", "View", "MergedReader"]


def _derive(frame: Frame, labels: LabelMap, mapping: LabelMapping) -> Frame:
    """``frame`` with its instanceIds passed through ``mapping`` onto ``labels`` (lazily)."""
    return frame.derived(labels, mapping.lut, mapping.renames())


class View(Reader):
    """A reader over another dataset: listing and frames pass through ``frame_fn``."""

    format = "view"

    def __init__(self, base, *, labels: Optional[LabelMap] = None,
                 splits: Optional[Callable[[List[str]], List[str]]] = None,
                 cities: Optional[Set[str]] = None,
                 frame_fn: Optional[Callable[[Frame], Optional[Frame]]] = None,
                 split_names: Optional[Mapping[str, str]] = None):
        self.base = base
        self.labels = labels if labels is not None else base.labels
        self.roots = base.reader.roots
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
                frame = frame.renamed(split=split)
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
    city_set = _as_set(cities)
    if city_set is not None:
        chosen = sorted(splits) if splits is not None else ds.splits()
        found = {c for s in chosen for c in ds.cities(s)}
        missing = city_set - found
        if missing:
            raise DatasetNotFoundError(", ".join(ds.roots) or None,
                                       f"no city {', '.join(map(repr, sorted(missing)))} in split(s) "
                                       f"{', '.join(chosen)} (found: {', '.join(sorted(found)) or 'none'})")

    def keep(frame: Frame) -> Optional[Frame]:
        if patterns and not any(fnmatch.fnmatchcase(frame.id, p) for p in patterns):
            return None
        if wanted_labels is not None and not any(i.label is not None and i.label.name in wanted_labels
                                                 for i in frame.instances()):
            frame.release()
            return None
        return frame

    return ds.derive(View(ds, splits=(lambda names: [s for s in names if s in splits]) if splits else None,
                           cities=city_set, frame_fn=keep if patterns or wanted_labels else None))


def remap_labels(ds, mapping: Mapping[str, Optional[str]], *, default: str = "keep"):
    """Rename, merge or drop labels: ``{"car": "vehicle", "truck": "vehicle", "bicycle": None}``.

    Labels mapped to None or ``""`` are dropped (their pixels become background); labels not in
    ``mapping`` are kept (``default="keep"``) or dropped (``default="delete"``). Labels mapped to
    one name merge (instance numbers that collide are renumbered). The output map is numbered
    0..N-1 in the order of the input, as Datumaro does; labels with negative ids (license plate,
    -1) keep them; the background label (the first black one) is kept, or ``background`` is
    added at 0. A kept label keeps its attributes; a renamed or merged one has instances when
    any of its sources has.
    """
    if default not in ("keep", "delete"):
        raise ValueError("default must be 'keep' or 'delete'")
    src = ds.labels
    unknown = [k for k in mapping if src.get(k) is None and src.find(k) is None]
    if unknown:
        raise CityscapesIOError(src.source, f"labels not in the label map: {', '.join(unknown)}")
    by_name = {_label_named(src, k).name: v for k, v in mapping.items()}
    groups: Dict[str, List[Label]] = {}  # output name -> its source labels, in input order
    target_of: Dict[int, Optional[str]] = {}
    for lab in src:
        new = by_name[lab.name] if lab.name in by_name else (lab.name if default == "keep" else None)
        target_of[lab.id] = new or None
        if new:
            groups.setdefault(new, []).append(lab)
    labels: List[Label] = []
    for name, members in groups.items():
        negative = all(m.id < 0 for m in members)
        new_id = members[0].id if negative else sum(1 for l in labels if l.id >= 0)
        labels.append(_merged_label(name, new_id, members))
    if not any(l.color == (0, 0, 0) for l in labels) and "background" not in groups:
        labels = [Label("background", 0, (0, 0, 0), has_instances=False)] + [
            dataclasses.replace(l, id=l.id + 1) if l.id >= 0 else l for l in labels]
    target = LabelMap(labels, source=f"{src.source} (remapped)")
    ids = {i: (target[n].id if n else None) for i, n in target_of.items()}
    main = LabelMapping(src, target, ids)

    def derive(frame: Frame) -> Frame:
        same = frame.labels is src or frame.labels == src
        return _derive(frame, target, main if same else mapping_between(frame.labels, target))

    return ds.derive(View(ds, labels=target, frame_fn=derive))


def _label_named(labels: LabelMap, name: str) -> Label:
    hit = labels.get(name) or labels.find(name)
    if hit is None:
        raise CityscapesIOError(labels.source, f"no label {name!r} in the label map")
    return hit


def _merged_label(name: str, new_id: int, members: Sequence[Label]) -> Label:
    """The output label of ``members`` mapped to ``name``: the source label itself (renumbered)
    when it keeps its name alone, otherwise a label with the first member's colour that has
    instances when any member has."""
    first = members[0]
    if len(members) == 1 and first.name == name:
        return dataclasses.replace(first, id=new_id)
    things = [has_instances(m) for m in members]
    return Label(name, new_id, first.color, has_instances=any(t for t in things if t is not None)
                 if any(t is not None for t in things) else None)


def to_train_ids(ds):
    """Map labels to the 19 Cityscapes training ids (0 = road .. 18 = bicycle) with 255 for
    everything ignored in evaluation, through a lookup table (never by redrawing). Instances
    keep their numbers: a car ``26003`` becomes ``13003``."""
    target = LabelMap.cityscapes_train()

    def train_id(lab: Label) -> int:
        ref = official_label(lab.name)
        t = lab.train_id if lab.train_id is not None else (ref.train_id if ref is not None else None)
        return t if t is not None and 0 <= t < TRAIN_IGNORE else TRAIN_IGNORE

    def mapping_for(labels: LabelMap) -> LabelMapping:
        return LabelMapping(labels, target, {l.id: train_id(l) for l in labels}, background=TRAIN_IGNORE)

    src = ds.labels
    main = mapping_for(src)

    def derive(frame: Frame) -> Frame:
        if frame.labels == target:  # already train ids
            return frame
        return _derive(frame, target, main if frame.labels is src else mapping_for(frame.labels))

    return ds.derive(View(ds, labels=target, frame_fn=derive))


def rename_splits(ds, names: Mapping[str, str]):
    """Rename splits: ``{"train": "training"}``."""
    have = set(ds.splits())
    missing = set(names) - have
    if missing:
        raise DatasetNotFoundError(", ".join(ds.roots) or None, f"no split {', '.join(sorted(missing))}")
    new = [names.get(s, s) for s in have]
    if len(set(new)) != len(new):
        raise CityscapesIOError(None, f"renaming gives two splits one name: {sorted(new)}")
    return ds.derive(View(ds, split_names={v: k for k, v in names.items()}))


class MergedReader(Reader):
    """A reader over several datasets, one after the other (:func:`merge`)."""

    format = "merged"

    def __init__(self, datasets: Sequence, on_duplicate: str):
        if on_duplicate not in ("error", "first", "rename"):
            raise ValueError("on_duplicate must be 'error', 'first' or 'rename'")
        self.datasets = list(datasets)
        self.on_duplicate = on_duplicate
        self.roots = tuple(r for d in self.datasets for r in d.reader.roots)
        # Union of the label maps by name: the first map's ids, then new names appended.
        base = self.datasets[0].labels
        labels = list(base)
        for d in self.datasets[1:]:
            for lab in d.labels:
                if base.get(lab.name) is None and base.find(lab.name) is None and \
                        all(l.name != lab.name for l in labels):
                    labels.append(dataclasses.replace(lab, id=max([l.id for l in labels] + [-1]) + 1)
                                  if lab.id >= 0 else lab)
        self.labels = LabelMap(labels, source=" + ".join(d.labels.source for d in self.datasets))

    def splits(self) -> List[str]:
        return sorted({s for d in self.datasets for s in d.splits()})

    def cities(self, split: str) -> List[str]:
        return sorted({c for d in self.datasets if split in d.splits() for c in d.cities(split)})

    def _relabel(self, frame: Frame) -> Frame:
        if frame.labels == self.labels or all(
                self.labels.get(l.id) is not None and self.labels[l.id].name == l.name for l in frame.labels):
            return frame
        return _derive(frame, self.labels, mapping_between(frame.labels, self.labels))

    def _chain(self, split: str, city: Optional[str]) -> Iterator[Frame]:
        seen: Set[str] = set()
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
                    frame = frame.renamed(id=f"{frame.id}_{n}")
                seen.add(frame.id)
                yield self._relabel(frame)

    def iter_frames(self, split: str) -> Iterator[Frame]:
        return self._chain(split, None)

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        return self._chain(split, city)


def merge(*datasets, on_duplicate: str = "error"):
    """One dataset from several: splits united, label maps unified by name (the first map's ids
    kept, new labels appended), frames of the later datasets relabelled when their maps differ.
    Duplicate frame ids within a split: ``"error"`` (default), ``"first"`` (keep the first
    one), or ``"rename"`` (later ones get ``_1``, ``_2``, ... appended). Accepts the datasets
    as arguments or as one list."""
    if len(datasets) == 1 and isinstance(datasets[0], (list, tuple)):
        datasets = tuple(datasets[0])
    if not datasets:
        raise ValueError("merge() needs at least one dataset")
    reader = MergedReader(datasets, on_duplicate)
    return type(datasets[0])(reader, prefetch=max(d.prefetch for d in datasets))
