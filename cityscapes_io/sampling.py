"""Per-frame class statistics for rare-class sampling, in the files DAFormer, HRDA and MIC read.

Rare-class sampling (RCS, Hoyer et al., DAFormer, CVPR 2022) draws a class ``c`` with
probability ``p_c ∝ exp((1 - f_c) / T)``, ``f_c`` the share of the training pixels that are of
class ``c``, then a frame uniformly among those with more than ``min_pixels`` pixels of ``c``. Its
preparation script (``tools/convert_datasets/cityscapes.py`` in lhoyer/DAFormer) writes the
per-frame pixel counts of the 19 train ids of every frame whose path has ``train/`` in it, into
the dataset root:

``sample_class_stats.json``
    A list, one object per frame: ``{"<train id>": pixels, ..., "file": path}``; only the train
    ids present (``pixels > 0``), ascending, as strings, then ``file``: the path of the frame's
    ``_labelTrainIds.png`` as the script was given the root (``data/cityscapes/gtFine/train/
    aachen/aachen_000000_000019_gtFine_labelTrainIds.png`` when run as its README says).
``samples_with_class.json``
    ``{"<train id>": [[file, pixels], ...]}``: for each train id (in the order they first occur
    among the frames), every frame that has it, in frame order, with its pixels. Not filtered:
    the reader (``get_rcs_class_probs`` and ``UDADataset`` in ``mmseg/datasets/uda_dataset.py``)
    keeps the frames with ``pixels > min_pixels`` (3000 in DAFormer's configs) and matches them
    to its dataset by the file's base name (``file.split('/')[-1]``).
``sample_class_stats_dict.json``
    ``{file: {"<train id>": pixels, ...}}``, which the script writes too (nothing reads it).

All three are JSON with an indent of 2 (``json.dump(..., indent=2)``), no newline at the end.
:func:`class_stats` computes the counts one frame at a time (:meth:`Frame.train_ids`, counted
by :func:`cityscapes_io.counting.count_pairs`) and writes the three files byte for byte as the
script does (in the dataset's frame order); :class:`RareClassTable` reads them back, or takes
the computed statistics, and holds what the sampler draws from
(:class:`cityscapes_io.torch.RareClassSampler`).
"""
from __future__ import annotations

import json
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import (TYPE_CHECKING, Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence,
                    Tuple, Union)

import numpy as np

from .counting import count_pairs
from .errors import InvalidFileError
from .jsonfile import loads
from .names import gt_path
from .storage import read_file, resolve_root
from .storage.sinks import open_sink

if TYPE_CHECKING:
    from .frame import Frame

__all__ = ["NUM_CLASSES", "MIN_PIXELS", "TEMPERATURE", "DEFAULT_ROOT", "STATS_FILE", "SAMPLES_FILE",
           "STATS_DICT_FILE", "ClassStats", "RareClassTable", "class_stats", "frame_class_counts", "label_file",
           "read_class_stats", "read_samples_with_class", "write_class_stats", "class_probabilities"]

#: The train ids counted (DAFormer counts ``range(19)``; 255, ignore, is not counted).
NUM_CLASSES = 19
#: DAFormer's ``rare_class_sampling.min_pixels`` (its configs): a frame is a candidate for a
#: class when it has more than this many pixels of it.
MIN_PIXELS = 3000
#: DAFormer's ``rare_class_sampling.class_temp`` (its configs).
TEMPERATURE = 0.01
#: The root DAFormer's README gives its script (``python tools/convert_datasets/cityscapes.py
#: data/cityscapes``), with which ``file`` paths begin.
DEFAULT_ROOT = "data/cityscapes"
STATS_FILE = "sample_class_stats.json"
SAMPLES_FILE = "samples_with_class.json"
STATS_DICT_FILE = "sample_class_stats_dict.json"

#: Frames sent to an executor's worker at a time, and chunks in flight.
_CHUNK = 16
_WINDOW = 4

SamplesWithClass = Dict[int, List[Tuple[str, int]]]


# -- one frame ------------------------------------------------------------------------------------
def label_file(frame: "Frame", root: str = DEFAULT_ROOT) -> str:
    """The ``file`` DAFormer records for ``frame``: the path of its ``_labelTrainIds.png``
    under ``root`` as given (``data/cityscapes/gtFine/train/aachen/aachen_000000_000019_gtFine_
    labelTrainIds.png``); ``root=""`` gives the path relative to the dataset root."""
    rel = gt_path(frame.split, frame.id, "labelTrainIds", frame.annotations)
    return f"{root.rstrip('/')}/{rel}" if root else rel


def frame_class_counts(frame: "Frame") -> Optional[np.ndarray]:
    """The pixels of each train id ``0 .. 18`` in ``frame`` (int64, :data:`NUM_CLASSES`
    counters; ignored pixels, 255, are not counted), or None when the frame has no ground
    truth. Decodes the frame's labels once; the caller releases the frame."""
    ids = frame.train_ids()
    if ids is None:
        return None
    counts: np.ndarray = count_pairs(np.ascontiguousarray(ids, dtype=np.uint8), None, 1, 256)
    return counts[:NUM_CLASSES]


def _count_chunk(frames: Sequence["Frame"]) -> List[Optional[np.ndarray]]:
    """:func:`frame_class_counts` of each frame (run on an executor's worker)."""
    out = []
    for frame in frames:
        try:
            out.append(frame_class_counts(frame))
        finally:
            frame.release()
    return out


# -- the statistics ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ClassStats:
    """Per-frame pixel counts of the train ids: what ``sample_class_stats.json`` holds.

    Attributes
    ----------
    files : tuple of str
        Each frame's ``file`` (:func:`label_file`), in order.
    counts : ndarray
        ``len(files) × classes`` int64: ``counts[i, c]`` pixels of train id ``c`` in frame ``i``
        (at least :data:`NUM_CLASSES` columns; more when a file read names higher ids).
    skipped : tuple of str
        Frames of the dataset that had no ground truth (``split/id``), left out.
    """

    files: Tuple[str, ...]
    counts: np.ndarray
    skipped: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.counts.ndim != 2 or self.counts.shape[0] != len(self.files):
            raise ValueError(f"counts of shape {self.counts.shape} for {len(self.files)} files")

    def __len__(self) -> int:
        return len(self.files)

    def totals(self) -> np.ndarray:
        """Pixels of each train id over all frames (int64)."""
        out: np.ndarray = self.counts.sum(axis=0, dtype=np.int64)
        return out

    def frame(self, i: int) -> Dict[int, int]:
        """Frame ``i``'s ``{train id: pixels}``, ids present only, ascending."""
        row = self.counts[i]
        return {int(c): int(row[c]) for c in np.flatnonzero(row)}

    def samples_with_class(self) -> SamplesWithClass:
        """``{train id: [(file, pixels), ...]}`` as ``samples_with_class.json`` holds it: ids in
        the order they first occur, frames in order, all that have the id (not filtered)."""
        out: SamplesWithClass = {}
        for file, row in self._unique_rows():
            for c in np.flatnonzero(row):
                out.setdefault(int(c), []).append((file, int(row[c])))
        return out

    def _unique_rows(self) -> Iterator[Tuple[str, np.ndarray]]:
        """The rows by file, as DAFormer's dict of them (a file twice: its last row, at its
        first place)."""
        last = {f: i for i, f in enumerate(self.files)}
        for file, i in last.items():
            yield file, self.counts[i]

    def to_json(self) -> Dict[str, bytes]:
        """The three files' bytes, by name, as DAFormer's script writes them."""
        rows = [{**{str(c): n for c, n in self.frame(i).items()}, "file": f} for i, f in enumerate(self.files)]
        by_file = {f: {str(c): int(row[c]) for c in np.flatnonzero(row)} for f, row in self._unique_rows()}
        samples = {str(c): [[f, n] for f, n in pairs] for c, pairs in self.samples_with_class().items()}
        return {STATS_FILE: _dump(rows), STATS_DICT_FILE: _dump(by_file), SAMPLES_FILE: _dump(samples)}


def _dump(value: Any) -> bytes:
    return json.dumps(value, indent=2).encode("ascii")


def class_stats(frames: Iterable["Frame"], out: Optional[str] = None, *, root: str = DEFAULT_ROOT,
                storage_options: Optional[dict] = None, executor: Optional[Executor] = None,
                progress: Optional[Callable[[int], None]] = None) -> ClassStats:
    """Count the train ids of every frame, one frame's pixels at a time; write DAFormer's files
    into ``out`` when given.

    Parameters
    ----------
    frames : Dataset or iterable of Frame
        The frames to count, in the order the files list them (DAFormer's script counts the
        ``train`` split: ``ds.filter(split="train")``). Frames without ground truth are left
        out (named in ``skipped``).
    out : str, optional
        A folder: local path or any fsspec URL (DAFormer reads the files from its
        ``data_root``, the dataset root). The three files of the module's docstring are
        written there (replacing files of those names; nothing else is touched).
    root : str
        How ``file`` paths begin (:func:`label_file`): the dataset root as DAFormer's config
        names it, ``data/cityscapes`` by default. Its reader uses only the base name.
    storage_options : dict, optional
        For ``out``'s filesystem.
    executor : concurrent.futures.Executor, optional
        Count chunks of frames there (a process pool, ``distributed.Client.get_executor()``);
        frames travel as file references, results come back in order. The counts equal a run
        without one.
    progress : callable, optional
        Called with the number of frames counted so far.

    Returns
    -------
    ClassStats
    """
    files: List[str] = []
    rows: List[np.ndarray] = []
    skipped: List[str] = []
    done = 0
    for frame, counts in _counted(frames, executor):
        if counts is None:
            skipped.append(f"{frame.split}/{frame.id}")
        else:
            files.append(label_file(frame, root))
            rows.append(counts)
        done += 1
        if progress is not None:
            progress(done)
    matrix = np.stack(rows) if rows else np.zeros((0, NUM_CLASSES), np.int64)
    stats = ClassStats(tuple(files), matrix.astype(np.int64, copy=False), tuple(skipped))
    if out is not None:
        write_class_stats(stats, out, storage_options)
    return stats


def _counted(frames: Iterable["Frame"], executor: Optional[Executor]
             ) -> Iterator[Tuple["Frame", Optional[np.ndarray]]]:
    """``(frame, counts)`` in order; on ``executor``, chunks of frames a few at a time."""
    if executor is None:
        for frame in frames:
            try:
                counts = frame_class_counts(frame)
            finally:
                frame.release()
            yield frame, counts
        return
    it = iter(frames)
    window: List[Tuple[List["Frame"], Any]] = []  # (chunk, future): a few chunks in flight
    try:
        while True:
            while len(window) < _WINDOW:
                chunk = [f for _, f in zip(range(_CHUNK), it)]
                if not chunk:
                    break
                window.append((chunk, executor.submit(_count_chunk, chunk)))
            if not window:
                return
            chunk, future = window.pop(0)
            yield from zip(chunk, future.result())
    finally:
        for _, future in window:  # stopped early (an error, the caller): what has not started is not
            future.cancel()


def write_class_stats(stats: ClassStats, out: str, storage_options: Optional[dict] = None) -> List[str]:
    """Write ``stats`` as DAFormer's three files into the folder ``out`` (any fsspec URL; files
    of other names there are kept). Returns the paths written."""
    sink = open_sink(out, storage_options, existing="keep")
    files = stats.to_json()
    try:
        sink.put_many(list(files.items()))
    except BaseException:
        sink.abort()
        raise
    sink.close()
    return [sink.path(name) for name in files]


# -- reading the files ----------------------------------------------------------------------------
def _read_json(url: str, name: str, storage_options: Optional[dict]) -> Tuple[Any, str]:
    root = resolve_root(url, storage_options)
    path = root.join(name)
    return loads(read_file(root.fs, path), root.display(name)), root.display(name)


def _class_id(key: Any, where: str) -> int:
    if not isinstance(key, str) or not key.isdigit() or not key.isascii():
        raise InvalidFileError(where, f"key {key!r} is not a train id (a decimal string)")
    return int(key)


def _pixels(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidFileError(where, f"{what}: pixels {value!r} is not a count (an integer >= 0)")
    return value


def read_class_stats(url: str, storage_options: Optional[dict] = None) -> ClassStats:
    """``sample_class_stats.json`` in the folder ``url``, checked (a list of objects, each with
    a string ``file`` and integer pixel counts keyed by train ids).

    Raises
    ------
    InvalidFileError
        Naming the file and what is wrong (the entry and the key).
    """
    data, where = _read_json(url, STATS_FILE, storage_options)
    if not isinstance(data, list):
        raise InvalidFileError(where, f"a JSON list of per-frame objects expected, not {type(data).__name__}")
    files: List[str] = []
    entries: List[Dict[int, int]] = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise InvalidFileError(where, f"entry {i}: an object with a string \"file\" expected")
        files.append(entry["file"])
        entries.append({_class_id(k, where): _pixels(v, where, f"entry {i} class {k}")
                        for k, v in entry.items() if k != "file"})
    width = max([NUM_CLASSES] + [c + 1 for e in entries for c in e])
    if width > 65536:
        raise InvalidFileError(where, f"train id {width - 1} is out of range (at most 65535)")
    counts: np.ndarray = np.zeros((len(files), width), np.int64)
    for i, e in enumerate(entries):
        for c, n in e.items():
            counts[i, c] = n
    return ClassStats(tuple(files), counts)


def read_samples_with_class(url: str, storage_options: Optional[dict] = None) -> SamplesWithClass:
    """``samples_with_class.json`` in the folder ``url``, checked: ``{train id: [(file,
    pixels), ...]}`` in the file's order."""
    data, where = _read_json(url, SAMPLES_FILE, storage_options)
    if not isinstance(data, dict):
        raise InvalidFileError(where, f"a JSON object keyed by train id expected, not {type(data).__name__}")
    out: SamplesWithClass = {}
    for key, pairs in data.items():
        c = _class_id(key, where)
        if not isinstance(pairs, list):
            raise InvalidFileError(where, f"class {key}: a list of [file, pixels] expected")
        rows = out.setdefault(c, [])
        for j, pair in enumerate(pairs):
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
                raise InvalidFileError(where, f"class {key}, item {j}: [file, pixels] expected, got {pair!r:.80}")
            rows.append((pair[0], _pixels(pair[1], where, f"class {key}, item {j}")))
    return out


# -- what RCS draws from --------------------------------------------------------------------------
def class_probabilities(stats: ClassStats, temperature: float = TEMPERATURE) -> Tuple[Tuple[int, ...], np.ndarray]:
    """DAFormer's class probabilities: the classes with pixels, ordered by their pixels over
    all frames (fewest first; equal counts in the order they first occur), and
    ``softmax((1 - f) / temperature)`` of their frequencies ``f`` (pixels over the pixels of
    them all), in float64."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    totals = stats.totals()
    present = np.flatnonzero(totals)
    if not len(present):
        raise ValueError("no pixel of any train id: nothing to sample")
    first = {int(c): int(np.argmax(stats.counts[:, c] > 0)) for c in present}
    classes = tuple(sorted((int(c) for c in present), key=lambda c: (int(totals[c]), first[c], c)))
    freq = totals[list(classes)].astype(np.float64) / float(totals[list(classes)].sum())
    z = (1.0 - freq) / float(temperature)
    z -= z.max()
    p = np.exp(z)
    return classes, p / p.sum()


@dataclass(frozen=True, eq=False)
class RareClassTable:
    """The classes RCS draws, their probabilities, and per class the frames it then draws from.

    Attributes
    ----------
    classes : tuple of int
        Train ids, fewest pixels first (:func:`class_probabilities`).
    probabilities : ndarray
        float64, one per class, summing to 1.
    candidates : tuple of tuple of str
        Per class (in ``classes`` order) the ``file`` of every frame with more than
        ``min_pixels`` pixels of it, in the files' order (a frame may appear under several
        classes).
    temperature : float
    min_pixels : int
    """

    classes: Tuple[int, ...]
    probabilities: np.ndarray
    candidates: Tuple[Tuple[str, ...], ...]
    temperature: float
    min_pixels: int

    @classmethod
    def from_stats(cls, stats: ClassStats, *, temperature: float = TEMPERATURE, min_pixels: int = MIN_PIXELS,
                   samples_with_class: Optional[Mapping[int, Sequence[Tuple[str, int]]]] = None,
                   where: str = "the statistics") -> "RareClassTable":
        """The table of ``stats``; the candidates from ``samples_with_class`` when given (as
        DAFormer reads them from their own file), else from ``stats``.

        Raises
        ------
        ValueError
            A class has pixels but no frame has more than ``min_pixels`` of it (DAFormer stops
            there too): lower ``min_pixels``. ``InvalidFileError`` (a ValueError) when
            ``samples_with_class`` lacks a class: ``where`` names the file.
        """
        if isinstance(min_pixels, bool) or not isinstance(min_pixels, (int, np.integer)) or min_pixels < 0:
            raise ValueError(f"min_pixels must be an integer >= 0, got {min_pixels!r}")
        classes, p = class_probabilities(stats, temperature)
        pairs = samples_with_class if samples_with_class is not None else stats.samples_with_class()
        candidates = []
        for c in classes:
            if c not in pairs:
                raise InvalidFileError(where, f"no entry for train id {c}, which {STATS_FILE} has")
            kept = tuple(f for f, n in pairs[c] if n > min_pixels)
            if not kept:
                raise ValueError(f"{where}: no frame has more than min_pixels={min_pixels} pixels of train id {c} "
                                 f"({int(stats.totals()[c])} pixels in all): lower min_pixels")
            candidates.append(kept)
        return cls(classes, p, tuple(candidates), float(temperature), int(min_pixels))

    @classmethod
    def read(cls, url: str, *, temperature: float = TEMPERATURE, min_pixels: int = MIN_PIXELS,
             storage_options: Optional[dict] = None) -> "RareClassTable":
        """The table from DAFormer's two files in the folder ``url`` (any fsspec URL), read as
        its ``UDADataset`` reads them: the probabilities from ``sample_class_stats.json``, the
        candidates from ``samples_with_class.json``."""
        stats = read_class_stats(url, storage_options)
        samples = read_samples_with_class(url, storage_options)
        return cls.from_stats(stats, temperature=temperature, min_pixels=min_pixels, samples_with_class=samples,
                              where=resolve_root(url, storage_options).display(SAMPLES_FILE))

    def draw(self, n: int, seed: int, epoch: int) -> Tuple[np.ndarray, np.ndarray]:
        """``n`` draws fixed by ``(seed, epoch)``: for each, the index of its class in
        ``classes`` and the index of its frame in that class's ``candidates``."""
        if n < 0 or seed < 0 or epoch < 0:
            raise ValueError(f"n, seed and epoch must be >= 0, got {n}, {seed}, {epoch}")
        rng = np.random.default_rng([int(seed), int(epoch)])
        which = rng.choice(len(self.classes), size=n, p=self.probabilities)
        sizes = np.array([len(c) for c in self.candidates], dtype=np.int64)
        member = rng.integers(0, sizes[which]) if n else np.zeros(0, np.int64)
        return which.astype(np.int64), np.asarray(member, dtype=np.int64)
