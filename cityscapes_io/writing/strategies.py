"""The execution strategies: each turns a writer's units into outcomes, in input order.

- in process (``workers=1, decode_ahead=False``);
- in process with a decode-ahead thread (``workers=1``, the default): the next frame is decoded
  while the current one is encoded and written;
- a process pool (``workers=N``, the one ordered map :func:`~cityscapes_io.parallel.ordered_map`): at most ``2N`` units in flight, results taken in input order
  so the output is identical to a single run;
- the caller's executor (``executor=``: a local ``ProcessPoolExecutor``, a Dask client's
  ``get_executor()``, a Ray executor), on the same ordered map: a task is a group of units
  (``partition``: a number of units, or ``"city"``), sent with what a worker needs to open its
  writer (format, destination, ``storage_options``, the writer options: nothing is set up in the
  workers beforehand); the worker writes the units' files to the destination and sends back
  the frames' index entries (no pixels, no file bytes), which this process records in input
  order: the output is identical to a single run.

Every strategy writes a unit by the one loop :func:`put_unit`, and :func:`run_writer` accounts
for every outcome by the one record step, :meth:`~cityscapes_io.writing.report.Report.account`.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import threading
import uuid
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Callable, Deque, Dict, Generator, Iterable, Iterator, List, Optional, Tuple, Union

from ..errors import CityscapesIOError, OnError, apply_policy
from ..formats import writer_class
from ..frame import Frame
from ..parallel import Collector, WorkerDied, collecting, ordered_map
from ..formats.base import Result, Writer
from .job import options_for_workers
from .report import Report

__all__ = ["writer", "put_unit", "run_writer", "Item", "Unit", "Outcome", "check_partition"]

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


def put_unit(w: Writer, key: Any, frames: List[Frame], *, written: Optional[Callable[[], None]] = None,
             decoder: Optional[ThreadPoolExecutor] = None, following: Optional[Frame] = None,
             ahead: Optional[Dict[int, "Future[Any]"]] = None) -> List[Result]:
    """Write one unit, the one loop every strategy runs: :meth:`Writer.start_unit`, each frame
    by :meth:`Writer.try_put` (while ``decoder``, a thread, works on the frame after it: the
    unit's next one, else ``following``), stopping at the first error when the run raises on
    it (``w.stop_on_error``), then :meth:`Writer.end_unit`, which gives every frame's result.
    ``written()`` is called after each frame is put, before the unit's results come (a tar
    shard's frames come out when the shard is complete).

    The thread decodes the next frame, or, when the writer allows it
    (:meth:`Writer.encodes_ahead`), encodes it whole while this thread encodes the current
    one: frames are then encoded two at a time, in turns (this thread the one, the other the
    next), and put in order. ``ahead`` holds the frames encoded ahead (by ``id``), across units."""
    w.start_unit(key)
    results: List[Result] = []
    for k, frame in enumerate(frames):
        nxt = frames[k + 1] if k + 1 < len(frames) else following
        done = ahead.pop(id(frame), None) if ahead is not None else None
        if done is not None:  # encoded by the other thread while the frame before was
            results.append(w.try_put_encoded(frame, done.result()))
        else:
            fut = None
            if decoder is not None and nxt is not None:
                if ahead is not None and w.encodes_ahead():
                    ahead[id(nxt)] = decoder.submit(w.encode_ahead, nxt)
                else:
                    fut = decoder.submit(_touch, w, nxt)
            try:
                results.append(w.try_put(frame))  # written while the next frame decodes (or encodes)
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
                   decoder: Optional[ThreadPoolExecutor] = None, following: Optional[Frame] = None,
                   ahead: Optional[Dict[int, "Future[Any]"]] = None) -> Iterator[Outcome]:
    """Write the frames of one unit that are not complete already (all of them, or none)."""
    todo = [frame for frame, done in items if done is None]
    results = iter(put_unit(w, key, todo, written=written, decoder=decoder, following=following, ahead=ahead)
                   if todo else ())
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
    encoded: Dict[int, "Future[Any]"] = {}  # frames encoded ahead, by id (one at most)
    try:
        it = iter(units)
        unit = next(it, None)
        while unit is not None:
            following = next(it, None)  # listed now: its first frame decodes while this unit's last is written
            ahead = [frame for frame, done in following[1] if done is None][:1] if following is not None else []
            yield from _unit_outcomes(w, unit[0], unit[1], written, pool, ahead[0] if ahead else None, encoded)
            unit = following
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_WORKER: Optional[Writer] = None


def _init_worker(format, url, storage_options, options: dict) -> None:
    global _WORKER
    _WORKER = writer(url, format, storage_options=storage_options, existing="keep", **options)


#: A unit as sent to a worker process: its key and the frames to write (none: nothing to send).
_Sent = Tuple[Any, List[Frame]]


def _write_in_worker(stop_on_error: bool, sent: _Sent) -> List[Tuple[Result, List[Exception]]]:
    """Write one unit; per frame its result and the errors its policy was handed (the warnings
    raised meanwhile go back with them: :func:`~cityscapes_io.parallel.ordered_map`)."""
    assert _WORKER is not None
    key, frames = sent
    w = _WORKER
    w.stop_on_error = stop_on_error
    collectors = [frame.on_error if isinstance(frame.on_error, Collector) else None for frame in frames]
    results = put_unit(w, key, frames)
    return [(result, c.errors if c is not None else []) for result, c in zip(results, collectors)]


def _in_pool(w: Writer, units: Iterable[Unit], *, format, url, storage_options, options: dict,
             workers: int, stop_on_error: bool = False) -> Generator[Outcome, None, None]:
    """Units written in ``workers`` processes (one task per unit), at most ``2 × workers`` in
    flight, outcomes in input order (so the index files come out as from one process)."""
    opts = options_for_workers(w, options)
    held: Deque[List[Item]] = collections.deque()  # the items of the units in the pool, in order

    def sent() -> Iterator[_Sent]:
        for key, items in units:
            todo = [frame for frame, done in items if done is None]
            frames = [collecting(f) for f in todo]
            for frame in todo:
                frame.release()
            held.append(items)
            yield key, frames

    results = ordered_map(functools.partial(_write_in_worker, stop_on_error), sent(), workers=workers,
                          skip=lambda unit: not unit[1], initializer=_init_worker,
                          initargs=(format, url, storage_options, opts), ignore_interrupt=True)
    try:
        with contextlib.closing(results):  # closed with this generator: the pool stops now
            for done in results:
                yield from _outcomes(held[0], done or [])
                held.popleft()
    except WorkerDied as exc:
        raise _worker_died(url, exc.lost) from exc.__cause__


def _worker_died(url, lost: List[_Sent], foreign: bool = False) -> CityscapesIOError:
    """The error of a pool that lost a worker process (killed: out of memory, a signal, a
    crash below Python), or of an executor that lost a worker (``foreign``): the frames sent
    that no worker reported written."""
    ids = [frame.id for key, frames in lost for frame in frames]
    shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    what = ("the executor lost a worker (it died, was killed, or its cluster went away)" if foreign else
            "a worker process died (killed by a signal, out of memory, or a crash)")
    return CityscapesIOError(str(url), f"{what} before {len(ids)} frames were accounted for: {shown}; the frames "
                                       f"written are kept: run the same conversion again with resume=True "
                                       f"(--resume) to continue")


# -- on the caller's executor ---------------------------------------------------------------------

#: What a worker of an executor opens its writer with: a token naming the run (a worker keeps
#: its writer while the tasks of one run come), the format, the destination and its storage
#: options (credentials travel here, with the task), the writer options.
_Job = Tuple[str, Any, Any, Any, Dict[str, Any]]

#: Per thread of a worker: the token of the run and the writer opened for it.
_JOB_WRITERS = threading.local()


def _job_writer(job: _Job) -> Writer:
    """The writer of ``job`` in this thread (opened on its first task, kept for the next)."""
    held = getattr(_JOB_WRITERS, "held", None)
    if held is None or held[0] != job[0]:
        if held is not None:
            held[1].abort()  # another run's: it wrote its files, it has nothing to finish
        token, format, url, storage_options, options = job
        _JOB_WRITERS.held = held = (token, writer(url, format, storage_options=storage_options, existing="keep",
                                                  **options))
    return held[1]


def _write_on_executor(job: _Job, stop_on_error: bool, group: List[_Sent]
                       ) -> List[List[Tuple[Result, List[Exception]]]]:
    """On a worker: write the units of one task; per unit, per frame, its result and the errors
    its policy was handed (as :func:`_write_in_worker`)."""
    w = _job_writer(job)
    w.stop_on_error = stop_on_error
    out: List[List[Tuple[Result, List[Exception]]]] = []
    for key, frames in group:
        if not frames:  # complete already (resume): nothing to write
            out.append([])
            continue
        collectors = [frame.on_error if isinstance(frame.on_error, Collector) else None for frame in frames]
        results = put_unit(w, key, frames)
        out.append([(result, c.errors if c is not None else []) for result, c in zip(results, collectors)])
    return out


def check_partition(partition: Union[str, int]) -> Union[str, int]:
    """``partition`` checked: ``"city"`` or a positive number of units."""
    if partition == "city" or (isinstance(partition, int) and not isinstance(partition, bool) and partition > 0):
        return partition
    raise ValueError(f"partition must be 'city' or a positive number of units, got {partition!r}")


def _groups(units: Iterable[Unit], partition: Union[str, int]) -> Iterator[List[Unit]]:
    """Consecutive units grouped into tasks: ``partition`` units each, or those of one city
    (the split and city of a unit's first frame)."""
    group: List[Unit] = []
    city = None
    for unit in units:
        if partition == "city":
            first = unit[1][0][0] if unit[1] else None
            key = (first.split, first.city) if first is not None else None
            if group and key != city:
                yield group
                group = []
            city = key
        elif group and len(group) >= int(partition):
            yield group
            group = []
        group.append(unit)
    if group:
        yield group


def _on_executor(w: Writer, units: Iterable[Unit], *, executor: Executor, format, url, storage_options,
                 options: dict, partition: Union[str, int] = 1, stop_on_error: bool = False
                 ) -> Generator[Outcome, None, None]:
    """Units written on ``executor``, a task per group of units (``partition``), at most twice
    the executor's width of tasks in flight, outcomes in input order."""
    job: _Job = (uuid.uuid4().hex, format, url, storage_options, options_for_workers(w, options))
    held: Deque[List[List[Item]]] = collections.deque()  # the items of the tasks in flight, in order

    def sent() -> Iterator[List[_Sent]]:
        for group in _groups(units, partition):
            task: List[_Sent] = []
            for key, items in group:
                todo = [frame for frame, done in items if done is None]
                task.append((key, [collecting(f) for f in todo]))
                for frame in todo:
                    frame.release()  # the driver holds no pixels: the worker reads its own
            held.append([items for _, items in group])
            yield task

    results = ordered_map(functools.partial(_write_on_executor, job, stop_on_error), sent(), executor=executor,
                          skip=lambda task: not any(frames for _, frames in task))
    try:
        with contextlib.closing(results):
            for done in results:
                group = held.popleft()
                for items, unit_done in zip(group, done or [[] for _ in group]):
                    yield from _outcomes(items, unit_done)
    except WorkerDied as exc:
        raise _worker_died(url, [unit for task in exc.lost for unit in task], foreign=True) from exc.__cause__


def _outcomes(items: List[Item], done: List[Tuple[Result, List[Exception]]]) -> Iterator[Outcome]:
    results = iter(done)
    for frame, complete in items:
        if complete is not None:
            yield frame.split, frame.id, complete, True
            continue
        result, errors = next(results)
        for error in errors:  # handed to the frame's policy in the worker: applied here, in order
            apply_policy(frame.on_error, error)
        yield frame.split, frame.id, result, False


def run_writer(w: Writer, units: Iterable[Unit], report: Report, *, format, url, storage_options, options: dict,
               workers: int = 1, decode_ahead: bool = True, on_error: OnError = "raise",
               progress: Optional[Callable[[int], None]] = None, index: bool = True,
               executor: Optional[Executor] = None, partition: Union[str, int] = 1) -> None:
    """Drive ``w`` over ``units`` (from :func:`items_for`) with the strategy ``executor``,
    ``workers`` and ``decode_ahead`` choose, accounting every frame in ``report``; then close
    the writer (``index``: with its index files) or, after an error, abort it. ``format``,
    ``url``, ``storage_options`` and ``options`` are what worker processes (and an executor's
    workers) open their own writers with; ``partition``: the units of a task on ``executor``."""
    outcomes: Generator[Outcome, None, None]
    w.stop_on_error = on_error == "raise"
    count = _Count(progress)
    if executor is not None:
        outcomes = _on_executor(w, units, executor=executor, format=format, url=url, storage_options=storage_options,
                                options=options, partition=check_partition(partition),
                                stop_on_error=on_error == "raise")
    elif workers > 1:
        outcomes = _in_pool(w, units, format=format, url=url, storage_options=storage_options, options=options,
                            workers=workers, stop_on_error=on_error == "raise")
    elif decode_ahead:
        outcomes = _decoding_ahead(w, units, count.written)
    else:
        outcomes = _in_process(w, units, count.written)
    try:
        for split, frame_id, result, complete in outcomes:
            report.account(w, split, frame_id, result, on_error, complete)
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
