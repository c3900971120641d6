"""The lazy :class:`Dataset` and :func:`open`.

Iteration walks split → city → frame in sorted order, listing each city folder only when it is
reached and decoding nothing. On remote filesystems (S3 and other asynchronous fsspec backends)
the files of the next few frames are fetched concurrently in the background, bounded to a few
frames ahead, so iteration is not bound by request latency.

A Dataset reads through a :class:`~cityscapes_io.formats.base.Reader` and uses only that contract.
"""
from __future__ import annotations

from typing import Iterable, Iterator, List, Optional, Sequence, Union

from . import ops
from .errors import CityscapesIOError, DatasetNotFoundError, OnError, check_policy
from .formats import detect, reader_class, resolve_format
from .frame import Frame
from .labels import LabelMap
from .names import sort_key
from .parallel import read_ahead
from .writing import Report, write_dataset
from .formats.base import Reader

__all__ = ["Dataset", "open", "DEFAULT_PREFETCH"]

#: Frames fetched ahead of the consumer on remote filesystems.
DEFAULT_PREFETCH = 4


class Dataset:
    """A lazy, iterable dataset. Create one with :func:`open` or :meth:`import_from`.

    ``for frame in ds`` yields :class:`~cityscapes_io.Frame` objects in sorted order (split,
    city, sequence, frame number). Nothing is decoded until a frame's pixels are asked for.
    ``len(ds)`` and ``ds[i]`` (a position, or a frame id) list the dataset once and keep the
    frames' file references (no pixels), so a map-style training loop or a sampler can use a
    Dataset directly.
    """

    def __init__(self, reader: Reader, *, prefetch: Optional[int] = None):
        if not isinstance(reader, Reader):
            raise TypeError(f"Dataset needs a cityscapes_io.formats.base.Reader, got {type(reader).__name__}")
        self.reader = reader
        self.format = reader.format
        self.prefetch = int(DEFAULT_PREFETCH if prefetch is None and reader.remote else prefetch or 0)
        self._index: Optional[List[Frame]] = None

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
        return cls(MemoryReader(frames, labels if labels is not None else LabelMap.cityscapes()), prefetch=0)

    def derive(self, reader: Reader) -> "Dataset":
        """A dataset reading through ``reader`` (an operation over this one), prefetching as this
        one does."""
        return Dataset(reader, prefetch=self.prefetch)

    def export(self, url, format: str = "cityscapes", *, storage_options=None, on_error: OnError = "raise",
               **options) -> Report:
        """Write the dataset in ``format`` (see :func:`cityscapes_io.convert` for the options);
        returns the conversion report."""
        return write_dataset(self, url, format, storage_options=storage_options, on_error=on_error, **options)

    # -- operations (lazy; see cityscapes_io.ops) -----------------------------------------------
    def filter(self, *, split=None, cities=None, ids=None, labels=None) -> "Dataset":
        """Keep frames of the given split(s), city(ies), ids (exact or glob) and/or containing
        any of the given labels. Lazy."""
        return ops.filter_dataset(self, split=split, cities=cities, ids=ids, labels=labels)

    def remap_labels(self, mapping, *, default: str = "keep") -> "Dataset":
        """Rename, merge (``{"car": "vehicle", "truck": "vehicle"}``) or drop (``{"bicycle":
        None}``) labels; unmapped labels kept or dropped (``default="delete"``). Lazy."""
        return ops.remap_labels(self, mapping, default=default)

    def to_train_ids(self) -> "Dataset":
        """Labels mapped to the 19 training ids, 255 = ignore, by lookup table. Lazy."""
        return ops.to_train_ids(self)

    def rename_splits(self, names) -> "Dataset":
        """Rename splits: ``{"train": "training"}``. Lazy."""
        return ops.rename_splits(self, names)

    # -- metadata -----------------------------------------------------------------------------
    @property
    def labels(self) -> LabelMap:
        """The label map (its ``source`` tells where it came from)."""
        return self.reader.labels

    @property
    def source_reader(self) -> Reader:
        """The format's own reader under this dataset's operations (filters, remaps, renamed
        splits): where its files are, and what the format knows of them (Cityscapes: the
        annotation trees)."""
        reader = self.reader
        while isinstance(reader, ops.View):
            reader = reader.base.reader
        return reader

    @property
    def roots(self) -> List[str]:
        return [str(r) for r in self.reader.roots]

    def splits(self) -> List[str]:
        """Split names, sorted."""
        return self.reader.splits()

    def cities(self, split: str) -> List[str]:
        """City folders of a split, sorted (lists the split folder)."""
        return self.reader.cities(split)

    def count(self) -> int:
        """Number of frames (lists every city folder; decodes nothing)."""
        if self._index is not None:
            return len(self._index)
        return sum(self.reader.frame_count(split) for split in self.splits())

    def frame(self, frame_id: str, split: Optional[str] = None) -> Frame:
        """One frame by id; lists only the folder it would be in."""
        return self.reader.find_frame(frame_id, split)

    # -- map-style access ------------------------------------------------------------------------
    def _frames_index(self) -> List[Frame]:
        if self._index is None:
            # Only where the files are is kept: an operation may have decoded a frame to decide on
            # it (a label filter), and the index must not hold those pixels.
            self._index = [_kept(f) for f in self.frames()]
        return self._index

    def __len__(self) -> int:
        return len(self._frames_index())

    def __getitem__(self, key: Union[int, str]) -> Frame:
        """``ds[i]``: the frame at position ``i`` in iteration order (negative from the end);
        ``ds["aachen/aachen_000000_000019"]``: the frame with that id (see :meth:`frame`)."""
        if isinstance(key, str):
            return self.frame(key)
        if isinstance(key, bool) or not isinstance(key, int):
            try:
                key = key.__index__()
            except AttributeError:
                raise TypeError(f"Dataset indices are ints or frame ids, not {type(key).__name__}") from None
        frames = self._frames_index()
        try:
            frame = frames[key]
        except IndexError:
            raise IndexError(f"frame index {key} out of range ({len(frames)} frames)") from None
        return frame.fresh()  # decoded pixels and buffered bytes are never kept in the index

    # -- iteration ----------------------------------------------------------------------------
    def frames(self, split: Optional[str] = None, city: Optional[str] = None) -> Iterator[Frame]:
        """Frames of one split and/or one city (lists only what it walks); all when None."""
        for s in ([split] if split is not None else self.splits()):
            if city is None:
                yield from self.reader.iter_frames(s)
            else:
                yield from self.reader.iter_city(s, city)

    def __iter__(self) -> Iterator[Frame]:
        if self.prefetch > 0:
            return read_ahead(self.frames(), self.prefetch)
        return self.frames()

    def __repr__(self) -> str:
        return f"Dataset({self.format}, roots={self.roots}, splits={self.splits()}, labels={self.labels!r})"


def _kept(frame: Frame) -> Frame:
    """A copy of ``frame`` holding no pixels or bytes; ``frame`` itself is released."""
    out = frame.fresh()
    frame.release()
    return out


class MemoryReader(Reader):
    """Serves frames held in memory, grouped by split. Frames built without a label map take
    the dataset's."""

    format = "memory"

    def __init__(self, frames: Iterable[Frame], labels: LabelMap):
        self.labels = labels
        self._frames: List[Frame] = [f if f.labels_given else f.renamed(labels=labels) for f in frames]

    def splits(self) -> List[str]:
        return sorted({f.split for f in self._frames})

    def iter_frames(self, split: str) -> Iterator[Frame]:
        return iter(sorted((f for f in self._frames if f.split == split), key=lambda f: sort_key(f.id)))


def open(
    url,
    *,
    split: Union[str, Sequence[str], None] = None,
    cities: Union[str, Sequence[str], None] = None,
    storage_options: Optional[dict] = None,
    on_error: OnError = "raise",
    format: str = "cityscapes",
    prefetch: Optional[int] = None,
    annotations: Optional[str] = None,
    image: Optional[str] = None,
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
    annotations : {"gtFine", "gtCoarse"}, optional
        Cityscapes only: the annotation tree to read, the fine annotations or the coarse ones
        (``gtCoarse/``, with the ``train_extra`` split). Default: gtFine when the dataset has
        it, else gtCoarse.
    image : str, optional
        Cityscapes only: the photo key of the frames' own photo, the one ``frame.image()``, the
        writers' ``save_media`` and the PyTorch ``image`` target use (default ``leftImg8bit``):
        ``rightImg8bit``, ``leftImg16bit``, ``leftImg8bit_foggy@beta_0.02``,
        ``leftImg8bit_rain@alpha_0.01_beta_0.005_dropsize_0.01_pattern_1``, ... Its folder
        (``leftImg8bit_foggy/``) must be in a root; a frame without that photo has none.
        Every photo stays readable by key (``frame.image(key)``, ``frame.image_keys()``).

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
    check_policy(on_error)
    extra = {}
    if annotations is not None:
        if not reader_class(format).ANNOTATION_TREES:
            raise ValueError(f"annotations= is a Cityscapes option; format {format!r} has one annotation tree")
        extra["annotations"] = annotations
    if image is not None:
        if not reader_class(format).PHOTO_KEYS:
            raise ValueError(f"image= is a Cityscapes option; format {format!r} has one photo a frame")
        extra["image"] = image
    try:
        reader = reader_class(format)(url, split=split, cities=cities, storage_options=storage_options,
                                      on_error=on_error, **extra)
    except DatasetNotFoundError as exc:
        raise _with_format_hint(exc, url, format, storage_options) from None
    return Dataset(reader, prefetch=prefetch)


def _with_format_hint(exc: DatasetNotFoundError, url, format: str, storage_options) -> DatasetNotFoundError:
    """``exc``, saying which format the root holds when it is another one than ``format``
    (``cityscapes_io.open(voc_dir)``: pass ``format="voc"``)."""
    try:
        found, evidence = detect(url, storage_options)
    except (CityscapesIOError, OSError, ValueError):
        return exc
    if found == resolve_format(format):
        return exc
    return DatasetNotFoundError(exc.path, f"{exc.reason}; it holds a {found} dataset ({evidence}): "
                                          f"pass format={found!r}")
