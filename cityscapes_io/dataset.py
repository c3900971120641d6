"""The lazy :class:`Dataset` and :func:`open`.

Iteration walks split → city → frame in sorted order, listing each city folder only when it is
reached and decoding nothing. On remote filesystems (S3 and other asynchronous fsspec backends)
the files of the next few frames are fetched concurrently in the background, bounded to a few
frames ahead, so iteration is not bound by request latency.
"""
from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Deque, Iterable, Iterator, List, Optional, Sequence, Set, Union

from .errors import DatasetNotFoundError
from .formats import reader_class
from .frame import Frame, OnError
from .labels import LabelMap
from .names import sort_key
from .storage import is_remote

__all__ = ["Dataset", "open", "DEFAULT_PREFETCH"]

#: Frames fetched ahead of the consumer on remote filesystems.
DEFAULT_PREFETCH = 4


class Dataset:
    """A lazy, iterable dataset. Create one with :func:`open` or :meth:`import_from`.

    ``for frame in ds`` yields :class:`~cityscapes_io.Frame` objects in sorted order (split,
    city, sequence, frame number). Nothing is decoded until a frame's pixels are asked for.
    """

    def __init__(self, reader, *, prefetch: Optional[int] = None):
        self._reader = reader
        self.format = getattr(reader, "format", None)
        if prefetch is None:
            prefetch = DEFAULT_PREFETCH if any(is_remote(r.fs) for r in getattr(reader, "roots", ())) else 0
        self.prefetch = int(prefetch)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def import_from(cls, path, format: str = "cityscapes", **kwargs) -> "Dataset":
        """Open a dataset (Datumaro's spelling of :func:`open`)."""
        return open(path, format=format, **kwargs)

    @classmethod
    def from_iterable(cls, frames: Iterable[Frame], labels: Optional[LabelMap] = None) -> "Dataset":
        """A dataset of frames built in memory (:meth:`Frame.from_arrays`).

        ``labels`` is the label map the frames' label ids refer to (default: the official
        Cityscapes map)."""
        return cls(_MemoryReader(frames, labels if labels is not None else LabelMap.cityscapes()), prefetch=0)

    def export(self, url, format: str = "cityscapes", *, storage_options=None, on_error: OnError = "raise",
               **options):
        """Write the dataset in ``format`` (see :func:`cityscapes_io.convert` for the options);
        returns the conversion report."""
        from .convert import write_dataset

        return write_dataset(self, url, format, storage_options=storage_options, on_error=on_error, **options)

    # -- operations (lazy) -------------------------------------------------------------------
    def filter(self, *, split=None, cities=None, ids=None, labels=None) -> "Dataset":
        """Keep frames of the given split(s), city(ies), ids (exact or glob) and/or containing
        any of the given labels. Lazy."""
        from .ops import filter_dataset

        return filter_dataset(self, split=split, cities=cities, ids=ids, labels=labels)

    def remap_labels(self, mapping, *, default: str = "keep") -> "Dataset":
        """Rename, merge (``{"car": "vehicle", "truck": "vehicle"}``) or drop (``{"bicycle":
        None}``) labels; unmapped labels kept or dropped (``default="delete"``). Lazy."""
        from .ops import remap_labels

        return remap_labels(self, mapping, default=default)

    def to_train_ids(self) -> "Dataset":
        """Labels mapped to the 19 training ids, 255 = ignore, by lookup table. Lazy."""
        from .ops import to_train_ids

        return to_train_ids(self)

    def rename_splits(self, names) -> "Dataset":
        """Rename splits: ``{"train": "training"}``. Lazy."""
        from .ops import rename_splits

        return rename_splits(self, names)

    # -- metadata -----------------------------------------------------------------------------
    @property
    def labels(self) -> LabelMap:
        """The label map (its ``source`` tells where it came from)."""
        return self._reader.labels

    @property
    def roots(self) -> List[str]:
        return [str(r) for r in getattr(self._reader, "roots", ())]

    def splits(self) -> List[str]:
        """Split names, sorted."""
        return self._reader.splits()

    def cities(self, split: str) -> List[str]:
        """City folders of a split, sorted (lists the split folder)."""
        return self._reader.cities(split)

    def count(self) -> int:
        """Number of frames (lists every city folder; decodes nothing)."""
        return sum(1 for split in self.splits() for _ in self._reader.iter_frames(split))

    def frame(self, frame_id: str, split: Optional[str] = None) -> Frame:
        """One frame by id; lists only the folder it would be in."""
        find = getattr(self._reader, "find_frame", None)
        if find is not None:
            return find(frame_id, split)
        city = frame_id.split("/", 1)[0] if "/" in frame_id else None
        for s in ([split] if split is not None else self.splits()):
            by_city = city is not None and hasattr(self._reader, "iter_city")
            for f in (self._reader.iter_city(s, city) if by_city else self._reader.iter_frames(s)):
                if f.id == frame_id:
                    return f
        raise DatasetNotFoundError(frame_id, f"no such frame in split(s) {', '.join([split] if split else self.splits())}")

    # -- iteration ----------------------------------------------------------------------------
    def frames(self, split: Optional[str] = None, city: Optional[str] = None) -> Iterator[Frame]:
        """Frames of one split and/or one city (lists only what it walks); all when None."""
        for s in ([split] if split is not None else self.splits()):
            if city is None:
                yield from self._reader.iter_frames(s)
            else:
                yield from self._reader.iter_city(s, city)

    def __iter__(self) -> Iterator[Frame]:
        if self.prefetch > 0:
            return _prefetching(self.frames(), self.prefetch)
        return self.frames()

    def __repr__(self) -> str:
        return f"Dataset({self.format}, roots={self.roots}, splits={self.splits()}, labels={self.labels!r})"


class _MemoryReader:
    """Serves frames held in memory, grouped by split."""

    format = "memory"
    roots: tuple = ()

    def __init__(self, frames: Iterable[Frame], labels: LabelMap):
        self.labels = labels
        self._frames: List[Frame] = []
        for f in frames:
            if not f._labels_given:
                f.labels = labels
            self._frames.append(f)

    def splits(self) -> List[str]:
        return sorted({f.split for f in self._frames})

    def cities(self, split: str) -> List[str]:
        return sorted({f.city for f in self._frames if f.split == split and f.city})

    def iter_frames(self, split: str) -> Iterator[Frame]:
        return iter(sorted((f for f in self._frames if f.split == split), key=lambda f: sort_key(f.id)))

    def iter_city(self, split: str, city: str) -> Iterator[Frame]:
        return (f for f in self.iter_frames(split) if f.city == city)


def _prefetching(frames: Iterator[Frame], depth: int) -> Iterator[Frame]:
    """Yield ``frames`` while fetching the files of up to ``depth`` frames ahead concurrently.

    Which files are fetched is learned from the consumer: the kinds it has read so far (the
    photo, the instanceIds, ...). Memory is bounded by ``depth`` frames of encoded files.
    """
    wanted: Set[str] = set()
    lock = threading.Lock()

    def note(kind: str) -> None:
        with lock:
            wanted.add(kind)

    window: Deque[Frame] = collections.deque()
    pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="cityscapes-io-prefetch")

    def submit(frame: Frame) -> None:
        with lock:
            kinds = [k for k in wanted if k in frame._files and k not in frame._pending]
        if not kinds:
            return
        # One batched request for all of a frame's files (concurrent on async filesystems).
        by_fs = {}
        for k in kinds:
            fs, path = frame._files[k]
            by_fs.setdefault(id(fs), (fs, []))[1].append((k, path))
        for fs, items in by_fs.values():
            paths = [p for _, p in items]
            # Ranged from byte 0 on object stores: one GET each, no HEAD (empty files fall back
            # to a plain read in Frame.read_bytes).
            fut = pool.submit(fs.cat, paths, on_error="return", **({"start": 0} if is_remote(fs) else {}))
            for k, _ in items:
                frame._pending[k] = fut

    try:
        it = iter(frames)
        exhausted = False
        while True:
            while not exhausted and len(window) < depth + 1:
                try:
                    f = next(it)
                except StopIteration:
                    exhausted = True
                    break
                f._on_read = note
                window.append(f)
            if not window:
                return
            for f in list(window)[1:]:
                submit(f)
            frame = window.popleft()
            yield frame
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def open(
    url,
    *,
    split: Union[str, Sequence[str], None] = None,
    cities: Union[str, Sequence[str], None] = None,
    storage_options: Optional[dict] = None,
    on_error: OnError = "raise",
    format: str = "cityscapes",
    prefetch: Optional[int] = None,
) -> Dataset:
    """Open a dataset lazily.

    Parameters
    ----------
    url : str, path or list of them
        A local path, any fsspec URL (``s3://bucket/prefix``, ``zip://::data.zip``, chains such
        as ``zip::s3://bucket/data.zip``), a path ending in ``.zip`` (opened as an archive), or
        a list of roots that together form one dataset (e.g. ``gtFine_trainvaltest.zip`` and
        ``leftImg8bit_trainvaltest.zip``).
    split : str or list of str, optional
        Splits to read; all splits found when None.
    cities : str or list of str, optional
        Cities to read; all when None.
    storage_options : dict, optional
        Options for the filesystem (``{"anon": True}``, ``{"client_kwargs": {...}}``, ...).
    on_error : "raise", "skip" or callable
        What to do with a problem in one item (a label value not in the label map, an
        unreadable folder): raise it, skip the item with a warning, or hand the error to a
        callable and skip the item.
    format : str
        Dataset format (``"cityscapes"``).
    prefetch : int, optional
        Frames fetched ahead in the background; default 4 on remote filesystems, 0 otherwise.

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetNotFoundError
        A root does not exist or holds no recognisable dataset, or a requested split is absent.
    LabelMapError
        ``dataset_meta.json`` or ``label_colors.txt`` is invalid.
    """
    if not (on_error in ("raise", "skip") or callable(on_error)):
        raise ValueError(f"on_error must be 'raise', 'skip' or a callable, got {on_error!r}")
    reader = reader_class(format)(url, split=split, cities=cities, storage_options=storage_options, on_error=on_error)
    return Dataset(reader, prefetch=prefetch)
