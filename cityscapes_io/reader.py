"""The reader contract: what every format's reader (and every lazy operation) implements.

A reader lists a dataset and yields :class:`~cityscapes_io.Frame` objects; it decodes nothing.
``splits`` and ``iter_frames`` are required; the rest have defaults built on them, which a
reader overrides when it can do better (the Cityscapes reader lists one city folder for
``iter_city`` and ``find_frame``). :class:`~cityscapes_io.Dataset` uses only this surface.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterator, List, Optional, Sequence

from .errors import CityscapesIOError, DatasetNotFoundError
from .frame import Frame
from .labels import LabelMap
from .names import parse_frame_id
from .storage import Root, is_remote

__all__ = ["Reader"]


class Reader(ABC):
    """Base class of readers.

    Attributes
    ----------
    format : str
        The format name (``"cityscapes"``, ``"voc"``, ...).
    labels : LabelMap
        The dataset's label map.
    roots : sequence of Root
        Where the data lives (empty for datasets held in memory).
    on_ignored : callable or None
        Called with the path of every file a listing passes over because it is not a frame's
        (``validate`` reports them). Readers that never pass files over ignore it.
    """

    format: str = ""
    labels: LabelMap
    roots: Sequence[Root] = ()
    on_ignored: Optional[Callable[[str], None]] = None

    @abstractmethod
    def splits(self) -> List[str]:
        """Split names, sorted."""

    @abstractmethod
    def iter_frames(self, split: str) -> Iterator[Frame]:
        """The frames of a split, in sorted order."""

    def cities(self, split: str) -> List[str]:
        """City folders of a split, sorted (none for formats without cities)."""
        return sorted({f.city for f in self.iter_frames(split) if f.city})

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        """The frames of one city of a split."""
        return (f for f in self.iter_frames(split) if f.city == city)

    def find_frame(self, frame_id: str, split: Optional[str] = None) -> Frame:
        """One frame by id (in ``split``, or in the only split that has it)."""
        splits = [split] if split is not None else self.splits()
        city = frame_id.split("/", 1)[0] if "/" in frame_id else None
        hits: List[Frame] = []
        for s in splits:
            frames = self.iter_city(s, city) if city else self.iter_frames(s)
            hits.extend(f for f in frames if f.id == frame_id)
        if not hits:
            raise DatasetNotFoundError(frame_id, f"no such frame in split(s) {', '.join(splits) or 'none'}"
                                                 f"{_id_hint(frame_id)}")
        if len(hits) > 1:
            raise CityscapesIOError(frame_id, f"frame exists in splits {', '.join(f.split for f in hits)}: pass split=")
        return hits[0]

    @property
    def remote(self) -> bool:
        """Whether any root is on a filesystem with request latency worth hiding (S3, ...)."""
        return any(is_remote(r.fs) for r in self.roots)

    def split_locations(self, split: str) -> List[str]:
        """URLs of the folders holding a split, for messages (none by default)."""
        return []

    def frame_count(self, split: str) -> int:
        """Frames of a split (lists; decodes nothing)."""
        return sum(1 for _ in self.iter_frames(split))


def _id_hint(frame_id: str) -> str:
    """A hint for a Cityscapes frame id given without its city folder."""
    name = parse_frame_id(frame_id)
    if "/" not in frame_id and name.seq is not None and name.city:
        return f" (Cityscapes ids include the city folder: {name.city}/{frame_id})"
    return ""
