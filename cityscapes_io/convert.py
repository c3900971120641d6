"""Conversion: read frames, write them in another format, and report what happened.

Every frame of the input is either written or reported: a frame that cannot be read or encoded
is skipped as a whole (none of its files are written) under ``on_error="skip"``, and the report
lists it with the reason.

Scaling out:

- ``workers=N`` converts in N processes with a bounded number of frames in flight; results are
  taken in input order, so the output is identical to a single-process run.
- ``shard=(I, N)`` converts only frames number ``k`` (in the dataset's order) with
  ``k % N == I``; N such jobs together write every frame once. They write no index files:
  ``finalize=True`` then writes them from what the shards wrote (and reports frames missing).
- ``resume=True`` skips frames whose output files are all present (files appear atomically, so
  present means complete) and rewrites the index files at the end.
"""
from __future__ import annotations

import collections
import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Deque, List, Optional, Set, Tuple, Union

from .dataset import Dataset, open as open_dataset
from .errors import CityscapesIOError
from .frame import Frame, OnError
from .writers import Entry, Writer
from .writers import writer as open_writer

__all__ = ["Report", "convert", "write_dataset", "parse_shard"]


@dataclass
class Report:
    """What a conversion did.

    Every frame read is either written or in ``skipped``; frames written without a part
    (no photo with ``save_media``, no ground truth) are also listed in ``warnings``.

    Attributes
    ----------
    read : int
        Frames read from the input (in this shard).
    written : int
        Frames written (including frames found complete by ``resume``).
    resumed : int
        Frames skipped by ``resume`` because their output was complete already.
    skipped : list of (split, frame id, reason)
        Frames not written, with why. ``read == written + len(skipped)``.
    destination, format : str
    seconds : float
    """

    destination: str
    format: str
    read: int = 0
    written: int = 0
    resumed: int = 0
    skipped: List[Tuple[str, str, str]] = field(default_factory=list)
    warnings: List[Tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    shard: Optional[Tuple[int, int]] = None

    @property
    def ok(self) -> bool:
        return not self.skipped

    def record(self, writer: Writer, split: str, frame_id: str, result, on_error: OnError) -> None:
        """Account for one frame: an :class:`Entry` goes to the writer's index, an error is
        raised or listed as skipped, as ``on_error`` says."""
        if isinstance(result, Entry):
            writer.add_entry(result)
            self.written += 1
            self.warnings.extend((result.split, result.id, note) for note in result.warnings)
            return
        if on_error == "raise":
            raise result
        self.skipped.append((split, frame_id, str(result)))
        if callable(on_error):
            on_error(result)

    def summary(self) -> str:
        rate = (self.written - self.resumed) / self.seconds if self.seconds > 0 else 0.0
        extra = f", {self.resumed} already complete" if self.resumed else ""
        where = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        lines = [f"{self.read} frames read, {self.written} written{extra}, {len(self.skipped)} skipped{where} "
                 f"-> {self.destination} ({self.format}, {self.seconds:.1f} s, {rate:.1f} frames/s)"]
        lines += [f"  skipped {split}/{fid}: {reason}" for split, fid, reason in self.skipped]
        if self.warnings:
            lines.append(f"  {len(self.warnings)} frames written incomplete:")
            lines += [f"  warning {split}/{fid}: {reason}" for split, fid, reason in self.warnings[:20]]
            if len(self.warnings) > 20:
                lines.append(f"  ... and {len(self.warnings) - 20} more")
        return "\n".join(lines)


def parse_shard(shard: Union[str, Tuple[int, int], None]) -> Optional[Tuple[int, int]]:
    """``"I/N"`` or ``(I, N)`` with ``0 <= I < N``."""
    if shard is None:
        return None
    if isinstance(shard, str):
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise ValueError(f"shard must be I/N, got {shard!r}") from None
    else:
        i, n = shard
    if not (n >= 1 and 0 <= i < n):
        raise ValueError(f"shard {i}/{n}: need 0 <= I < N")
    return i, n


# -- decoding ahead -------------------------------------------------------------------------------
def _decode_ahead(frames, w: Writer):
    """Yield ``frames`` while a background thread decodes the next one's ground truth (and reads
    its photo when it will be written), so decoding overlaps the current frame's encoding and
    writing: zlib and Pillow release the GIL. One frame ahead at most; errors are left for the
    consumer, who meets them again when it asks for the same data."""
    from concurrent.futures import ThreadPoolExecutor

    def touch(frame: Frame) -> None:
        try:
            if frame.has_annotations:
                frame.instances()
            if w.save_media and frame.has_image:
                frame.image_bytes()
        except Exception:  # reported by the consumer's own call
            pass

    with ThreadPoolExecutor(1, thread_name_prefix="cityscapes-io-decode") as pool:
        ahead = None
        for frame in frames:
            fut = pool.submit(touch, frame)
            if ahead is not None:
                yield ahead
            fut.result()
            ahead = frame
        if ahead is not None:
            yield ahead


# -- worker processes -----------------------------------------------------------------------------
_WORKER: Optional[Writer] = None


def _init_worker(format: str, url, storage_options, options: dict) -> None:
    global _WORKER
    _WORKER = open_writer(url, format, storage_options=storage_options, **options)


def _write_in_worker(frame: Frame):
    try:
        return _WORKER.write_files(frame)
    except CityscapesIOError as exc:
        return exc
    finally:
        frame.release()


def write_dataset(ds: Dataset, url, format: str, *, storage_options=None, on_error: OnError = "raise",
                  progress: Optional[Callable[[int], None]] = None, workers: int = 1,
                  shard: Union[str, Tuple[int, int], None] = None, resume: bool = False,
                  finalize: bool = False, decode_ahead: bool = True, **options) -> Report:
    """Write every frame of ``ds`` to ``url`` in ``format``; see :func:`convert`."""
    _refuse_overwriting_source(ds, url)
    shard = parse_shard(shard)
    if finalize and shard is not None:
        raise ValueError("finalize runs once, over all shards: do not give shard")
    report = Report(str(url), format, shard=shard if shard and shard[1] > 1 else None)
    start = time.perf_counter()
    w = open_writer(url, format, storage_options=storage_options, labels=ds.labels, **options)
    from .output import ZipDestination

    if isinstance(w.dest, ZipDestination) and (report.shard or resume or finalize):
        w.abort()
        raise ValueError("a .zip destination is written in one go: no shard, resume or finalize")
    if resume or finalize:
        w.dest.remove_temporaries()  # left by an interrupted run
    pool = None
    try:
        present: Optional[Set[str]] = w.dest.listing() if (resume or finalize) else None
        pool = _Pool(w, format, url, storage_options, options, workers) if workers > 1 and not finalize else None

        def done(frame_split: str, frame_id: str, result) -> None:
            report.record(w, frame_split, frame_id, result, on_error)
            if progress is not None:
                progress(report.written + len(report.skipped))

        frames = (f for k, f in enumerate(ds) if shard is None or k % shard[1] == shard[0])
        if pool is None and decode_ahead and not finalize and not resume:
            frames = _decode_ahead(frames, w)
        for frame in frames:
            report.read += 1
            if present is not None:
                planned = w.planned_files(frame)
                if all(w.dest.path(p) in present for p in planned):
                    report.resumed += 0 if finalize else 1
                    done(frame.split, frame.id, w.entry(frame))
                    continue
                if finalize:
                    missing = [p for p in planned if w.dest.path(p) not in present]
                    done(frame.split, frame.id, CityscapesIOError(
                        frame.id, f"output missing (no shard wrote it): {', '.join(missing)}"))
                    continue
            if pool is not None:
                for item in pool.submit(frame):
                    done(*item)
                continue
            try:
                result = w.write_files(frame)
            except CityscapesIOError as exc:
                result = exc
            finally:
                frame.release()
            done(frame.split, frame.id, result)
        if pool is not None:
            for item in pool.drain():
                done(*item)
    except BaseException:
        if pool is not None:
            pool.executor.shutdown(wait=True, cancel_futures=True)
        w.abort()
        raise
    if report.shard is not None:
        w.abort()  # a shard writes no index files: finalize does, once
    else:
        w.close()
    report.seconds = time.perf_counter() - start
    return report


class _Pool:
    """Frames converted in worker processes, at most ``2 × workers`` in flight, results in input
    order (so the index files come out as from one process)."""

    def __init__(self, w: Writer, format, url, storage_options, options, workers: int):
        from .output import ZipDestination

        if isinstance(w.dest, ZipDestination):
            raise ValueError("a .zip destination is written by one process: use workers=1")
        opts = dict(options)
        opts["label_map"] = w.labels if w.labels is not None else opts.get("label_map", "source")
        ctx = multiprocessing.get_context("spawn")
        self.executor = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                            initargs=(format, url, storage_options, opts))
        self.limit = 2 * workers
        self.queue: Deque[Tuple[str, str, Future]] = collections.deque()

    def submit(self, frame: Frame):
        self.queue.append((frame.split, frame.id, self.executor.submit(_write_in_worker, frame)))
        frame.release()
        while len(self.queue) >= self.limit:
            split, fid, fut = self.queue.popleft()
            yield split, fid, fut.result()

    def drain(self):
        try:
            while self.queue:
                split, fid, fut = self.queue.popleft()
                yield split, fid, fut.result()
        finally:
            self.executor.shutdown(wait=True, cancel_futures=True)


def _refuse_overwriting_source(ds: Dataset, url) -> None:
    """Writing into a local source root would overwrite the frames being read."""
    if "://" in str(url) or "::" in str(url):
        return
    dst = os.path.realpath(str(url))
    for root in ds.roots:
        if "://" in root or "::" in root or root.lower().endswith(".zip"):
            continue
        if dst == os.path.realpath(root):
            raise CityscapesIOError(str(url), f"destination is the source {root}: choose another folder")


def convert(src, dst, *, src_format: str = "cityscapes", format: str = "cityscapes", storage_options=None,
            dst_storage_options=None, on_error: OnError = "raise", split=None, cities=None,
            progress: Optional[Callable[[int], None]] = None, workers: int = 1,
            shard: Union[str, Tuple[int, int], None] = None, resume: bool = False, finalize: bool = False,
            decode_ahead: bool = True, **options) -> Report:
    """Convert a dataset from one format to another, frame by frame in constant memory.

    Parameters
    ----------
    src : str or list of str
        Input root(s) (path, ``.zip``, fsspec URL).
    dst : str
        Output root (path, ``.zip``, fsspec URL).
    src_format, format : str
        ``"cityscapes"``, ``"voc"`` or ``"camvid"``.
    storage_options, dst_storage_options : dict, optional
        fsspec options of the input and of the output.
    on_error : "raise", "skip" or callable
        ``"skip"`` (or a callable, which receives each error) skips a frame that cannot be read
        or written and lists it in the report.
    split, cities :
        Only these splits / cities.
    workers : int
        Processes converting frames (output identical to one process).
    decode_ahead : bool
        With ``workers=1``, decode the next frame in a second thread while the current one is
        encoded and written (about 1.8× faster on two cores); turn off to keep a job on one core.
    shard : "I/N" or (I, N)
        Convert only frames ``k`` with ``k % N == I``, and write no index files.
    resume : bool
        Skip frames whose output files are all present; rewrite the index files.
    finalize : bool
        Write only the index files, from the frames whose outputs are present (after shards).
    **options :
        Writer options: ``save_media``, ``image_ext``, ``label_map``, ``save_dataset_meta``.

    Returns
    -------
    Report
    """
    # Frames raise their errors; write_dataset applies the policy to whole frames, so a frame
    # with a bad pixel value is skipped entirely rather than written without the instance.
    ds = open_dataset(src, split=split, cities=cities, storage_options=storage_options, format=src_format)
    return write_dataset(ds, dst, format, storage_options=dst_storage_options, on_error=on_error,
                         progress=progress, workers=workers, shard=shard, resume=resume, finalize=finalize,
                         decode_ahead=decode_ahead, **options)
