"""Writing a dataset: frames through a writer, one execution strategy, and a report.

Every frame of the input is either written or reported: a frame that cannot be read or encoded
is skipped as a whole (none of its files are written) under ``on_error="skip"``, and the report
lists it with the reason.

The strategy is chosen once, outside the loop:

- in process (``workers=1, decode_ahead=False``);
- in process with a decode-ahead thread (``workers=1``, the default): the next frame is decoded
  while the current one is encoded and written;
- a process pool (``workers=N``): at most ``2N`` frames in flight, results taken in input order
  so the output is identical to a single run;
- Dask (:func:`cityscapes_io.dask.convert_on_dask`), which puts frames by :meth:`Writer.try_put`.

``shard=(I, N)`` converts only frames number ``k`` with ``k % N == I`` and writes no index
files; :func:`finalize_dataset` then writes them, once, from what the shards wrote. ``resume=True``
passes over frames whose output files are all present (files appear atomically, so present
means complete) and rewrites the index files at the end.

What is handed out is a writer's *unit* (:meth:`~cityscapes_io.formats.base.Writer.units`): one
frame for most formats, a whole tar shard for ``"wds"``. Units are numbered over the whole
input (``shard`` takes units ``u % N == I``), a worker process writes whole units, and resume
and finalize check a unit's files as a whole.
"""
from __future__ import annotations

import collections
import contextlib
import hashlib
import inspect
import json
import multiprocessing
import signal
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Generator, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from fsspec.core import url_to_fs

from . import jsonfile
from .errors import CityscapesIOError, InvalidFileError, OnError, RefusedError, apply_policy, check_policy
from .formats import writer_class
from .frame import Frame
from .storage.sinks import refuse_sources
from .progress import Caught, reissue, with_warnings
from .storage import Root, root_locations
from .formats.base import Entry, Result, Writer

__all__ = ["Report", "write_dataset", "finalize_dataset", "parse_shard", "writer", "put_unit", "run_writer",
           "items_for", "JOB_FILE", "job_record", "claim_destination"]

#: A frame to write, or a frame already complete with its index entry (resume) or the error
#: that stopped its entry (a format whose index records are recomputed from the frame).
Item = Tuple[Frame, Optional[Result]]
#: Frames written together (:meth:`Writer.units`; one frame for most formats): the writer's key
#: for them, and their items.
Unit = Tuple[Any, List[Item]]
Outcome = Tuple[str, str, Result, bool]  # split, frame id, entry or error, found complete already


def writer(url, format, *, storage_options=None, **options) -> Writer:
    """Open a writer for ``format`` (``"cityscapes"``, ``"voc"``, ``"camvid"``, or a
    :class:`Writer` subclass) at ``url``.

    Use it as a context manager::

        with cityscapes_io.writer("out/", "voc", labels=ds.labels, save_media=True) as w:
            for frame in ds:
                w.write(frame)

    A destination that is not empty is refused unless ``overwrite=True`` (which replaces it).
    """
    cls = format if isinstance(format, type) and issubclass(format, Writer) else writer_class(format)
    return cls(url, storage_options=storage_options, **options)


@dataclass
class Report:
    """What a conversion did.

    Every frame read is either written (or, by ``finalize``, indexed) or in ``skipped``; frames
    written without a part (no photo with ``save_media``, no ground truth) are also listed in
    ``warnings``.

    Attributes
    ----------
    read : int
        Frames read from the input (in this shard).
    written : int
        Frames written, including those ``resume`` found complete. ``finalize`` writes none.
    resumed : int
        Frames ``resume`` found complete already (not written again).
    indexed : int
        Frames ``finalize`` found complete and put in the index files.
    skipped : list of (split, frame id, reason)
        Frames not written, with why. ``read == written + indexed + len(skipped)``.
    destination, format : str
    seconds : float
    """

    destination: str
    format: str
    read: int = 0
    written: int = 0
    resumed: int = 0
    indexed: int = 0
    skipped: List[Tuple[str, str, str]] = field(default_factory=list)
    warnings: List[Tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    shard: Optional[Tuple[int, int]] = None

    @property
    def ok(self) -> bool:
        return not self.skipped

    def record(self, split: str, frame_id: str, result: Result, on_error: OnError, complete: bool = False,
               indexing: bool = False) -> None:
        """Account for one frame: an :class:`Entry` is counted written (or indexed), an error is
        raised or listed as skipped, as ``on_error`` says."""
        if isinstance(result, Entry):
            if indexing:
                self.indexed += 1
                return
            self.written += 1
            self.resumed += int(complete)
            self.warnings.extend((result.split, result.id, note) for note in result.warnings)
            return
        if on_error == "raise":
            raise result
        self.skipped.append((split, frame_id, str(result)))
        if callable(on_error):
            on_error(result)

    def summary(self) -> str:
        where = f" (shard {self.shard[0]}/{self.shard[1]})" if self.shard else ""
        if self.indexed or (self.read and not self.written and not self.skipped):
            lines = [f"{self.read} frames listed, {self.indexed} indexed, {len(self.skipped)} missing{where} "
                     f"-> {self.destination} ({self.format}, index files written, {self.seconds:.1f} s)"]
        else:
            rate = (self.written - self.resumed) / self.seconds if self.seconds > 0 else 0.0
            extra = f", {self.resumed} already complete" if self.resumed else ""
            # Written now apart from found complete (``written`` counts both, as the API documents).
            lines = [f"{self.read} frames read, {self.written - self.resumed} written{extra}, {len(self.skipped)} "
                     f"skipped{where} "
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


# -- the job record: which conversion a destination belongs to -----------------------------------
#: The record of the conversion a folder destination holds, kept with its output (resume,
#: shards and finalize check it; readers list no frame from it).
JOB_FILE = ".cityscapes-io-job.json"


def job_record(ds, w: Writer, options: Dict[str, Any]) -> Dict[str, Any]:
    """What decides the bytes a conversion writes: the output format, the sources (places, not
    URL spellings), the output labels and the writer options (``label_map`` is recorded by the
    labels it resolved to)."""
    assert w.labels is not None
    labels = hashlib.sha256(repr(list(w.labels)).encode("utf-8")).hexdigest()[:16]
    defaults = _defaults(type(w))
    return {"cityscapes_io_job": 1, "format": w.format,
            "sources": [f"{proto}://{path}" for root in ds.reader.roots for proto, path in root_locations(root)],
            "labels": f"{len(w.labels)} labels, sha256 {labels}",  # (not their file: its URL's spelling varies)
            "options": {k: _plain(v) for k, v in sorted(options.items())
                        if k not in ("label_map", "overwrite") and not (k in defaults and defaults[k] == v)}}


def _defaults(cls: type) -> Dict[str, Any]:
    """The default values of a writer class's options (an option given at its default is not
    recorded, so a job reads the same however its options were spelled)."""
    out: Dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty:
                out[name] = param.default
    return out


def _plain(value: Any) -> Any:
    """An option's value as JSON can hold it (its repr when it is not a plain value)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return repr(value)


def claim_destination(w: Writer, job: Dict[str, Any], *, fresh: bool) -> None:
    """Record ``job`` in the destination (``fresh``: an empty one, as it is on a first run), or
    check that the job recorded there is this one (resume, shards, finalize). A destination
    holding no record (written by hand, or by an earlier version) is taken as it is. A record
    that differs is refused, saying what differs, before anything is written."""
    data = (json.dumps(job, indent=2, sort_keys=True) + "\n").encode("utf-8")
    if not fresh:
        found = w.dest.read(JOB_FILE)
        if found is not None:
            differs = _differences(w.dest.path(JOB_FILE), found, job)
            if not differs:
                return
            raise RefusedError(w.dest.url, f"holds the output of another job ({'; '.join(differs)}): "
                               f"pass overwrite=True (--overwrite) to replace it, or choose another destination")
    w.dest.put(JOB_FILE, data)


def _differences(path: str, found: bytes, job: Dict[str, Any]) -> List[str]:
    try:
        there = jsonfile.loads(found, path)
    except InvalidFileError:
        there = None
    if not isinstance(there, dict) or there.get("cityscapes_io_job") != 1:
        raise RefusedError(path, "not a job record of cityscapes_io: the destination's record cannot be "
                           "checked; pass overwrite=True (--overwrite) to replace the destination")
    out = []
    for key, what in (("format", "format"), ("sources", "sources"), ("labels", "output labels")):
        if there.get(key) != job[key]:
            out.append(f"{what} {_shown(there.get(key))} there, {_shown(job[key])} now")
    old, new = there.get("options") or {}, job["options"]
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"option {key} {_shown(old.get(key, 'not given'))} there, {_shown(new.get(key, 'not given'))} now")
    return out


def _shown(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


# -- strategies: each turns units into outcomes, in input order -------------------------------------
def put_unit(w: Writer, key: Any, frames: List[Frame], *, written: Optional[Callable[[], None]] = None,
             decoder: Optional[ThreadPoolExecutor] = None, following: Optional[Frame] = None) -> List[Result]:
    """Write one unit, the one loop every strategy runs: :meth:`Writer.start_unit`, each frame
    by :meth:`Writer.try_put` (while ``decoder``, a thread, decodes the frame after it: the
    unit's next one, else ``following``), stopping at the first error when the run raises on
    it (``w.stop_on_error``), then :meth:`Writer.end_unit`, which gives every frame's result.
    ``written()`` is called after each frame is put, before the unit's results come (a tar
    shard's frames come out when the shard is complete)."""
    w.start_unit(key)
    results: List[Result] = []
    for k, frame in enumerate(frames):
        nxt = frames[k + 1] if k + 1 < len(frames) else following
        fut = decoder.submit(_touch, w, nxt) if decoder is not None and nxt is not None else None
        try:
            results.append(w.try_put(frame))  # written while the next frame decodes
        finally:
            if fut is not None:
                fut.result()
        if written is not None:
            written()
        if w.stop_on_error and isinstance(results[-1], CityscapesIOError):
            break
    return w.end_unit(key, frames, results)


def _touch(w: Writer, frame: Frame) -> None:
    """Decode ahead what writing ``frame`` will need; an error is left for the writer, which
    meets it again when it asks for the same data."""
    try:
        w.touch(frame)
    except CityscapesIOError:  # reported by the writer's own call
        pass


def _unit_outcomes(w: Writer, key: Any, items: List[Item], written: Optional[Callable[[], None]] = None,
                   decoder: Optional[ThreadPoolExecutor] = None, following: Optional[Frame] = None
                   ) -> Iterator[Outcome]:
    """Write the frames of one unit that are not complete already (all of them, or none)."""
    todo = [frame for frame, done in items if done is None]
    results = iter(put_unit(w, key, todo, written=written, decoder=decoder, following=following) if todo else ())
    for frame, done in items:
        yield frame.split, frame.id, done if done is not None else next(results), done is not None


def _in_process(w: Writer, units: Iterable[Unit], written: Optional[Callable[[], None]] = None
                ) -> Generator[Outcome, None, None]:
    for key, items in units:
        yield from _unit_outcomes(w, key, items, written=written)


def _decoding_ahead(w: Writer, units: Iterable[Unit], written: Optional[Callable[[], None]] = None
                    ) -> Generator[Outcome, None, None]:
    """In process, while a background thread decodes the next frame's ground truth (and reads
    its photo when it will be written): zlib and Pillow release the GIL. One frame ahead at
    most. The thread is this generator's own and is stopped when the generator ends or is
    closed, in the thread that closes it."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="cityscapes-io-decode")
    try:
        it = iter(units)
        unit = next(it, None)
        while unit is not None:
            following = next(it, None)  # listed now: its first frame decodes while this unit's last is written
            ahead = [frame for frame, done in following[1] if done is None][:1] if following is not None else []
            yield from _unit_outcomes(w, unit[0], unit[1], written, pool, ahead[0] if ahead else None)
            unit = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER: Optional[Writer] = None


def _init_worker(format, url, storage_options, options: dict) -> None:
    global _WORKER
    # Ctrl-C goes to the whole process group: the parent stops the pool; workers just finish.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER = writer(url, format, storage_options=storage_options, _existing="keep", **options)


class _Collector:
    """A frame's ``on_error`` while it is written in a worker process: the errors it is handed
    come back to the parent, which applies the caller's own policy to them there (a callable
    may not pickle, and its effects belong to the caller's process)."""

    def __init__(self) -> None:
        self.errors: List[Exception] = []

    def __call__(self, error: Exception) -> None:
        self.errors.append(error)


def _write_in_worker(key: Any, frames: List[Frame], stop_on_error: bool = False
                     ) -> Tuple[List[Tuple[Result, List[Exception]]], Caught]:
    """Write one unit; per frame its result and the errors its policy was handed, and the
    warnings raised meanwhile (raised again in the parent, where the caller sees them)."""
    assert _WORKER is not None
    w = _WORKER
    w.stop_on_error = stop_on_error
    collectors = [frame.on_error if isinstance(frame.on_error, _Collector) else None for frame in frames]
    results, caught = with_warnings(put_unit, w, key, frames)
    return [(result, c.errors if c is not None else []) for result, c in zip(results, collectors)], caught


def _in_pool(w: Writer, units: Iterable[Unit], *, format, url, storage_options, options: dict,
             workers: int, stop_on_error: bool = False) -> Generator[Outcome, None, None]:
    """Units written in ``workers`` processes (one task per unit), at most ``2 × workers`` in
    flight, outcomes in input order (so the index files come out as from one process)."""
    opts = options_for_workers(w, options)
    ctx = multiprocessing.get_context("spawn")
    queue: Deque[Tuple[List[Item], Optional[Future]]] = collections.deque()  # items, future of those to write
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(format, url, storage_options, opts)) as pool:
        try:
            submitted = 0
            for key, items in units:
                todo = [frame for frame, done in items if done is None]
                fut = None
                if todo:
                    sent = [f if f.on_error == "raise" else f.with_on_error(_Collector()) for f in todo]
                    if submitted >= workers:
                        fut = pool.submit(_write_in_worker, key, sent, stop_on_error)
                    else:  # the first submits start the workers: they start with Ctrl-C ignored
                        with _sigint_ignored():
                            fut = pool.submit(_write_in_worker, key, sent, stop_on_error)
                    submitted += 1
                    for frame in todo:
                        frame.release()
                queue.append((items, fut))
                while len(queue) >= 2 * workers:
                    yield from _outcomes(queue[0])  # taken off once accounted for
                    queue.popleft()
            while queue:
                yield from _outcomes(queue[0])
                queue.popleft()
        except BrokenProcessPool as exc:
            pool.shutdown(wait=True, cancel_futures=True)
            raise _worker_died(url, queue) from exc
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _worker_died(url, queue: Deque[Tuple[List[Item], Optional[Future]]]) -> CityscapesIOError:
    """The error of a pool that lost a worker process (killed: out of memory, a signal, a
    crash below Python): the frames sent to the pool that no worker reported written."""
    lost = [frame.id for items, fut in queue if fut is not None and not _succeeded(fut)
            for frame, done in items if done is None]
    shown = ", ".join(lost[:10]) + (f" and {len(lost) - 10} more" if len(lost) > 10 else "")
    return CityscapesIOError(str(url), f"a worker process died (killed by a signal, out of memory, or a crash) "
                                       f"before {len(lost)} frames were accounted for: {shown}; the frames "
                                       f"written are kept: run the same conversion again with resume=True "
                                       f"(--resume) to continue")


def _succeeded(fut: Future) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes are started, so they inherit that and never print
    a traceback of their own on Ctrl-C (the parent stops the pool). Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _outcomes(queued: Tuple[List[Item], Optional[Future]]) -> Iterator[Outcome]:
    items, fut = queued
    done, caught = fut.result() if fut is not None else ([], [])
    reissue(caught)
    results = iter(done)
    for frame, done in items:
        if done is not None:
            yield frame.split, frame.id, done, True
            continue
        result, errors = next(results)
        for error in errors:  # handed to the frame's policy in the worker: applied here, in order
            apply_policy(frame.on_error, error)
        yield frame.split, frame.id, result, False


# -- the loop ---------------------------------------------------------------------------------------
def write_dataset(ds, url, format: str, *, storage_options=None, on_error: OnError = "raise",
                  progress: Optional[Callable[[int], None]] = None, workers: int = 1,
                  shard: Union[str, Tuple[int, int], None] = None, resume: bool = False,
                  finalize: bool = False, decode_ahead: bool = True, overwrite: bool = False,
                  protect: Sequence[Root] = (), **options) -> Report:
    """Write every frame of ``ds`` to ``url`` in ``format``; see :func:`cityscapes_io.convert`.
    ``protect``: places the destination may not overlap besides the dataset's roots (a project
    folder)."""
    check_policy(on_error)
    if finalize:
        if shard is not None:
            raise ValueError("finalize runs once, over all shards: do not give shard")
        return finalize_dataset(ds, url, format, storage_options=storage_options, on_error=on_error,
                                progress=progress, protect=protect, **options)
    shard = parse_shard(shard)
    sharded = shard is not None and shard[1] > 1
    if overwrite and (resume or sharded):
        raise ValueError("overwrite replaces the destination: it cannot go with resume or shard")
    report = Report(str(url), format, shard=shard if sharded else None)
    start = time.perf_counter()
    existing = "keep" if resume or sharded else ("replace" if overwrite else "refuse")
    w = writer(url, format, storage_options=storage_options, labels=ds.labels, _existing=existing,
               _sources=[*ds.reader.roots, *protect], **options)
    if not w.dest.resumable and (sharded or resume or workers > 1):
        w.abort()
        raise ValueError(f"{url}: an archive is written in one go by one process: no shard, resume or workers")
    if w.dest.resumable:
        _claimed(w, job_record(ds, w, options), fresh=existing != "keep")
    run_writer(w, items_for(ds, w, shard, resume), report, format=format, url=url, storage_options=storage_options,
               options=options, workers=workers, decode_ahead=decode_ahead, on_error=on_error, progress=progress,
               index=not sharded)  # a shard writes no index files: finalize does, once
    report.seconds = time.perf_counter() - start
    return report


def run_writer(w: Writer, units: Iterable[Unit], report: Report, *, format, url, storage_options, options: dict,
               workers: int = 1, decode_ahead: bool = True, on_error: OnError = "raise",
               progress: Optional[Callable[[int], None]] = None, index: bool = True) -> None:
    """Drive ``w`` over ``units`` (from :func:`items_for`) with the strategy ``workers`` and ``decode_ahead`` choose,
    accounting every frame in ``report``; then close the writer (``index``: with its index
    files) or, after an error, abort it. ``format``, ``url``, ``storage_options`` and
    ``options`` are what worker processes open their own writers with."""
    outcomes: Generator[Outcome, None, None]
    w.stop_on_error = on_error == "raise"
    count = _Count(progress)
    if workers > 1:
        outcomes = _in_pool(w, units, format=format, url=url, storage_options=storage_options, options=options,
                            workers=workers, stop_on_error=on_error == "raise")
    elif decode_ahead:
        outcomes = _decoding_ahead(w, units, count.written)
    else:
        outcomes = _in_process(w, units, count.written)
    try:
        for split, frame_id, result, complete in outcomes:
            report.read += 1
            if isinstance(result, Entry):
                w.record(result)
            report.record(split, frame_id, result, on_error, complete)
            count.accounted()
    except BaseException:
        outcomes.close()  # stops the pool or the decoding thread now
        w.abort()
        raise
    if index:
        w.close()
    else:
        w.abort()


class _Count:
    """``progress`` called once per frame, in order: when the frame is written in this process
    (a unit of many frames, a tar shard, advances frame by frame, not all at once when the
    shard is complete), or when its outcome arrives for a frame written elsewhere (a worker
    process) or found complete already."""

    def __init__(self, progress: Optional[Callable[[int], None]]):
        self.progress = progress
        self.done = 0  # outcomes accounted for
        self.ahead = 0  # frames written whose outcome has not come yet
        self.shown = 0

    def written(self) -> None:
        self.ahead += 1
        self._show()

    def accounted(self) -> None:
        self.done += 1
        self.ahead = max(self.ahead - 1, 0)
        self._show()

    def _show(self) -> None:
        if self.progress is not None and self.done + self.ahead > self.shown:
            self.shown = self.done + self.ahead
            self.progress(self.shown)


def items_for(ds, w: Writer, shard: Optional[Tuple[int, int]] = None, resume: bool = False,
              folders: Sequence[str] = ("",)) -> Iterator[Unit]:
    """The units of this shard (units ``u`` with ``u % N == I``); with ``resume``, those
    complete already come with their frames' entries (what is present is listed under the
    destination's ``folders``, all of it by default)."""
    present: Optional[Set[str]] = None
    if resume:
        w.dest.remove_temporaries()  # left by an interrupted run
        present = set().union(*(w.dest.listing(f) for f in folders))
    for u, (key, frames) in enumerate(w.units(ds)):
        if shard is not None and u % shard[1] != shard[0]:
            continue
        if present is not None and all(w.dest.path(p) in present for p in w.unit_files(key, frames)):
            yield key, list(zip(frames, w.unit_entries(key, frames)))
        else:
            yield key, [(frame, None) for frame in frames]


def finalize_dataset(ds, url, format: str, *, storage_options=None, on_error: OnError = "raise",
             progress: Optional[Callable[[int], None]] = None, protect: Sequence[Root] = (),
             **options) -> Report:
    """Write the index files of a sharded conversion, once, from the frames whose output files
    the shards wrote; frames with missing files are reported (or raise, as ``on_error`` says).
    Writes no frame files."""
    check_policy(on_error)
    report = Report(str(url), format)
    start = time.perf_counter()
    w = writer(url, format, storage_options=storage_options, labels=ds.labels, _existing="keep",
               _sources=[*ds.reader.roots, *protect], **options)
    if not w.dest.resumable:
        w.abort()
        raise ValueError(f"{url}: an archive is written in one go: nothing to finalize")
    _claimed(w, job_record(ds, w, options), fresh=False)
    try:
        w.dest.remove_temporaries()
        present = w.dest.listing()
        for key, frames in w.units(ds):
            missing = [p for p in w.unit_files(key, frames) if w.dest.path(p) not in present]
            results: List[Result] = w.unit_entries(key, frames) if not missing else [
                CityscapesIOError(f.id, f"output missing (no shard wrote it): {', '.join(missing)}") for f in frames]
            for frame, result in zip(frames, results):
                report.read += 1
                if isinstance(result, Entry):
                    w.record(result)
                report.record(frame.split, frame.id, result, on_error, indexing=True)
                if progress is not None:
                    progress(report.read)
    except BaseException:
        w.abort()
        raise
    w.close()
    report.seconds = time.perf_counter() - start
    return report


def refuse_overwriting_source(ds, url, storage_options=None, *, replacing: bool = False) -> None:
    """Refuse a destination that is a source of ``ds``, holds one, or lies inside one and is
    to be replaced: :func:`cityscapes_io.output.refuse_sources`, the guard every writer's sink
    goes through, for callers that check before opening one."""
    try:
        fs, path = url_to_fs(str(url), **(storage_options or {}))
    except (ImportError, ValueError, TypeError, OSError):
        return  # the destination cannot be opened at all: the sink says why
    refuse_sources(str(url), fs, path, ds.reader.roots, "replace" if replacing else "keep")


def _claimed(w: Writer, job: Dict[str, Any], *, fresh: bool) -> None:
    """:func:`claim_destination`, the writer aborted when it fails."""
    try:
        claim_destination(w, job, fresh=fresh)
    except BaseException:
        w.abort()
        raise


def options_for_workers(w: Writer, options: Dict[str, Any]) -> Dict[str, Any]:
    """Writer options for the writers of other processes: the labels the parent resolved (its
    destination is open already, so theirs keep what is there)."""
    opts = dict(options, label_map=w.labels)
    opts.pop("overwrite", None)
    return opts
