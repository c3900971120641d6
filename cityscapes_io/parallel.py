"""Working ahead: the one ordered, bounded map and the one read-ahead.

:func:`ordered_map` is the one pool of the library: writing with ``workers=N`` (units of frames
to worker processes, :mod:`cityscapes_io.writing`) and evaluation (chunks of frames to worker
processes, or two threads in this process, :mod:`cityscapes_io.evaluation`) both run on it.
Its rules, the same for every caller:

- **In order.** ``fn(item)`` for every item, yielded in the order of ``items``, whatever order
  the workers finish in: a run with N workers gives what one run gives, byte for byte.
- **Bounded.** At most ``window`` tasks (an item, or a chunk of ``chunk`` items) are in flight,
  taken from ``items`` only as results are taken: memory does not grow with the input, and an
  iterator of items is consumed lazily.
- **Warnings come back in order.** What a worker process warns is caught there and raised again
  here, in the caller's process, just before the results of its task (threads share the
  process's warnings: theirs are raised where they happen).
- **A dead worker is the caller's error.** A worker process that ends abruptly (killed by a
  signal, out of memory, a crash below Python) raises :class:`WorkerDied`, which names the
  items sent to the pool that no worker accounted for; the caller turns it into its own error
  and message. An exception raised by ``fn`` comes back as itself, at its item's turn.
- **Stopped as the caller stops.** An error, or closing the generator, cancels the tasks not
  started and waits for those running; nothing is left behind.
- **Processes** (``processes=True``) are started by ``start_method`` (``"spawn"``: a fresh
  interpreter, safe with threads), each runs ``initializer(*initargs)`` once; ``fn``, the items
  and their results must pickle. ``ignore_interrupt``: the workers ignore Ctrl-C (sent to the
  whole process group), so the caller alone stops the pool and no worker prints a traceback.
  **Threads** (``processes=False``) suit work that releases the GIL (zlib, PNG decoding, numpy).
  One worker: ``fn`` runs in the calling thread, no pool.
- **An executor of the caller's** (``executor=``: any :class:`concurrent.futures.Executor`, a
  local :class:`~concurrent.futures.ProcessPoolExecutor`, ``distributed.Client(...).get_executor()``,
  a Ray executor) takes the place of the pool: tasks are submitted to it, none is made and it is
  not shut down. The same rules hold: results in order, a bounded window (twice
  :func:`executor_width` tasks), the warnings a task raised caught where it ran (per thread:
  workers running several tasks at once keep them apart) and raised again here in order. A
  worker the executor lost (:class:`~concurrent.futures.BrokenExecutor`, Dask's
  ``KilledWorker``, Ray's ``WorkerCrashedError``/``NodeDiedError``..., a task the executor
  cancelled) is :class:`WorkerDied`, as with the pool. On an error or when the caller stops, the
  tasks not done are cancelled and those that cannot be (running) are waited for.

:func:`read_ahead` is what :class:`~cityscapes_io.Dataset` iteration and the PyTorch datasets
(:mod:`cityscapes_io.torch`) use on remote filesystems, where a file costs a request's latency:
the files of a few frames ahead are fetched concurrently in a small thread pool while the
consumer decodes the current one, so iteration is bound by bandwidth, not by latency.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import multiprocessing
import signal
import threading
import warnings
from concurrent.futures import (BrokenExecutor, CancelledError, Executor, Future, ProcessPoolExecutor,
                                ThreadPoolExecutor, wait)
from concurrent.futures.process import BrokenProcessPool
from typing import (TYPE_CHECKING, Any, Callable, Deque, Generator, Generic, Iterable, Iterator, List, Optional, Sequence,
                    Set, Tuple, TypeVar)

from .progress import Caught, reissue, with_warnings

if TYPE_CHECKING:
    from .frame import Frame

__all__ = ["ordered_map", "WorkerDied", "read_ahead", "executor_width", "Collector", "collecting"]

T = TypeVar("T")
R = TypeVar("R")


def read_ahead(frames: Iterable["Frame"], depth: int,
               kinds: Optional[Callable[["Frame"], Sequence[str]]] = None) -> Iterator["Frame"]:
    """Yield ``frames`` in order while fetching the files of up to ``depth`` frames ahead of
    the one yielded, concurrently in ``depth`` threads (``depth`` 0: no reading ahead).

    Parameters
    ----------
    frames : iterable of Frame
    depth : int
        Frames whose files are fetched ahead. Memory is bounded by ``depth + 1`` frames of
        encoded files (the consumer releases each frame it is done with).
    kinds : callable, optional
        ``kinds(frame)``: the file kinds of a frame to fetch (the photo, the ground truth...).
        Without it they are learned from the consumer: the kinds it has read so far of the
        frames already yielded (nothing is fetched ahead before its first read).

    A fetch that fails is not reported here: the consumer's own read of that file tries again
    and reports from there. Closing the generator cancels the fetches not yet started.
    """
    if depth <= 0:
        yield from frames
        return
    wanted: Set[str] = set()
    lock = threading.Lock()

    def note(kind: str) -> None:
        with lock:
            wanted.add(kind)

    window: Deque["Frame"] = collections.deque()
    pool = ThreadPoolExecutor(max_workers=depth, thread_name_prefix="cityscapes-io-prefetch")
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
                if kinds is None:
                    f.source.watch(note)
                    if f.parts is not None:  # the release's other parts the consumer reads
                        f.parts.watch(note)
                window.append(f)
            if not window:
                return
            with lock:
                learned = sorted(wanted)
            for f in window:
                todo = kinds(f) if kinds is not None else learned
                if todo:
                    f.source.fetch_ahead(todo, pool)
                    if f.parts is not None:
                        f.parts.fetch_ahead(todo, pool)
            yield window.popleft()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


class WorkerDied(Exception, Generic[T]):
    """A worker process of :func:`ordered_map` ended abruptly (killed by a signal, out of memory,
    a crash below Python), or a worker of the caller's executor was lost. ``lost``: the items
    sent to the pool, in order, whose task did not complete (the items of tasks that did, and
    those not yet taken from the input, are not in it). ``foreign``: the worker was the
    executor's (``executor=``), not a process of a pool made here. The pool's or executor's own
    error is the ``__cause__``."""

    def __init__(self, lost: List[T], foreign: bool = False):
        what = "a worker of the executor was lost" if foreign else "a worker process ended abruptly"
        super().__init__(f"{what}: {len(lost)} item(s) not accounted for")
        self.lost = lost
        self.foreign = foreign


class Collector:
    """A frame's ``on_error`` while the frame is worked on elsewhere (a worker process, an
    executor's worker): the errors it is handed are kept, to go back with the frame's result
    and be handed there to the caller's own policy (a callable may not pickle, and its effects
    belong to the caller's process)."""

    def __init__(self) -> None:
        self.errors: List[Exception] = []

    def __call__(self, error: Exception) -> None:
        self.errors.append(error)


def collecting(frame: "Frame") -> "Frame":
    """``frame`` as it is sent: a policy other than ``"raise"`` becomes a :class:`Collector`
    (what it collects: ``frame.on_error.errors``, there)."""
    return frame if frame.on_error == "raise" else frame.with_on_error(Collector())


def executor_width(executor: Executor) -> int:
    """How many tasks ``executor`` runs at once, as far as it tells: its ``max_workers``
    attribute when it has one (what an executor written for this library declares), a
    :class:`~concurrent.futures.ProcessPoolExecutor`'s or ``ThreadPoolExecutor``'s workers, the
    threads of a Dask client's workers (``Client.get_executor()``); else 4. It sizes the window
    of tasks in flight and the chunks of frames, never the results."""
    for name in ("max_workers", "_max_workers"):
        n = getattr(executor, name, None)
        if isinstance(n, int) and n > 0:
            return n
    client = getattr(executor, "_client", None)  # distributed's ClientExecutor
    if client is not None and hasattr(client, "nthreads"):
        try:
            n = sum(client.nthreads().values())
        except Exception:  # a client that cannot answer now: the default  # noqa: BLE001
            n = 0
        if n > 0:
            return n
    return 4


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int = 1, processes: bool = True,
                window: Optional[int] = None, chunk: int = 1, skip: Optional[Callable[[T], bool]] = None,
                start_method: str = "spawn", initializer: Optional[Callable[..., None]] = None,
                initargs: Tuple[Any, ...] = (), ignore_interrupt: bool = False,
                executor: Optional[Executor] = None) -> Generator[Optional[R], None, None]:
    """Yield ``fn(item)`` for every item of ``items``, in their order, computed in ``workers``
    processes or threads, or on ``executor``, with a bounded window in flight (the rules: this
    module's page).

    Parameters
    ----------
    fn : callable
        Called with one item; module-level (it pickles) with processes.
    items : iterable
        Taken lazily, as the window frees.
    workers : int
        Processes or threads; 1 or less: ``fn`` runs in the calling thread, no pool.
    processes : bool
        Worker processes (default) or threads of this process.
    window : int, optional
        Tasks in flight at most (default: ``2 * workers`` processes, ``workers + 1`` threads).
    chunk : int
        Items per task: a task sent to a process costs a round trip, so small items go in chunks.
    skip : callable, optional
        ``skip(item)`` true: the item is not sent, its result is ``None`` (yielded in its place;
        it takes a place in the window like a task, so the window bounds the items held).
    start_method : str
        How processes start (:func:`multiprocessing.get_context`).
    initializer, initargs
        Run once in each worker process as it starts.
    ignore_interrupt : bool
        Worker processes ignore SIGINT from their start: the caller alone stops the pool.
    executor : concurrent.futures.Executor, optional
        Run the tasks on this executor instead (``workers``, ``processes``, ``start_method``,
        ``ignore_interrupt`` unused; ``initializer`` refused: an executor of the caller's has no
        start of its own, so what a task needs travels with it). ``fn``, the items and their
        results must pickle as the executor pickles (Dask and Ray: cloudpickle). The window
        defaults to twice :func:`executor_width`.

    Raises
    ------
    WorkerDied
        A worker process ended abruptly, or the executor lost a worker; the caller turns it into
        its own error.
    """
    if executor is not None:
        if initializer is not None:
            raise ValueError("an initializer runs in the processes of a pool made here: with executor=, send what "
                             "a task needs with it")
        bound = window if window is not None else 2 * executor_width(executor)
        yield from _on_executor(fn, items, executor, max(1, bound), chunk, skip)
        return
    if workers <= 1:
        for item in items:
            yield None if skip is not None and skip(item) else fn(item)
        return
    bound = window if window is not None else (2 * workers if processes else workers + 1)
    pool: Executor
    if processes:
        context = multiprocessing.get_context(start_method)
        if ignore_interrupt or initializer is not None:
            pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                       initargs=(ignore_interrupt, initializer, initargs))
        else:  # as evaluation's pool always started: with the initializer, a killed worker left it
            # waiting in one test (test_untrusted_eval after test_parallel); why is not established
            pool = ProcessPoolExecutor(workers, mp_context=context)
    else:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="cityscapes-io-map")
    queue: Deque[Tuple[List[T], Optional[Future]]] = collections.deque()  # a task's items, its future
    with pool:
        try:
            submitted = 0
            for task in _tasks(items, chunk, skip):
                fut = None
                if task[1]:
                    if processes:
                        # the first submits start the workers: they start with Ctrl-C ignored
                        quiet = ignore_interrupt and submitted < workers
                        with _sigint_ignored() if quiet else contextlib.nullcontext():
                            fut = pool.submit(_run_in_process, fn, task[0])
                    else:
                        fut = pool.submit(_run_in_thread, fn, task[0])
                    submitted += 1
                queue.append((task[0], fut))
                while len(queue) >= bound:
                    yield from _results(queue[0])  # taken off once accounted for
                    queue.popleft()
            while queue:
                yield from _results(queue[0])
                queue.popleft()
        except BrokenProcessPool as exc:
            pool.shutdown(wait=True, cancel_futures=True)
            raise WorkerDied([item for chunk_items, fut in queue if fut is not None and not _succeeded(fut)
                              for item in chunk_items]) from exc
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _on_executor(fn: Callable[[T], R], items: Iterable[T], executor: Executor, bound: int, chunk: int,
                 skip: Optional[Callable[[T], bool]]) -> Generator[Optional[R], None, None]:
    """:func:`ordered_map` on the caller's executor (see the module's page)."""
    queue: Deque[Tuple[List[T], Optional[Future]]] = collections.deque()
    submitting: List[T] = []  # the items of a task while it is submitted (an executor that broke refuses it)
    try:
        for task in _tasks(items, chunk, skip):
            submitting = task[0]
            queue.append((task[0], executor.submit(_run_captured, fn, task[0]) if task[1] else None))
            submitting = []
            while len(queue) >= bound:
                yield from _results(queue[0])
                queue.popleft()
        while queue:
            yield from _results(queue[0])
            queue.popleft()
    except BaseException as exc:
        _withdraw([fut for _, fut in queue if fut is not None])
        if _lost_worker(exc, executor):
            raise WorkerDied([item for chunk_items, fut in queue if fut is not None and not _succeeded(fut)
                              for item in chunk_items] + submitting, foreign=True) from exc
        raise


#: Names of the exceptions by which executors say a worker was lost (matched by name, so that
#: none of their packages is imported): Dask's ``KilledWorker``; Ray's.
_LOST_WORKER_ERRORS = frozenset({"KilledWorker", "WorkerCrashedError", "NodeDiedError", "OwnerDiedError",
                                 "ObjectLostError", "ActorDiedError", "RayActorError", "LocalRayletDiedError",
                                 "WorkerLostError"})


def _lost_worker(exc: BaseException, executor: Executor) -> bool:
    """Whether ``exc``, raised by a task's future, says that the executor lost the worker (or
    cancelled the task: its cluster went away) rather than that the task failed. An executor
    may name its own such errors in a ``lost_worker_errors`` attribute (a tuple of types)."""
    declared = getattr(executor, "lost_worker_errors", ())
    if declared and isinstance(exc, tuple(declared)):
        return True
    if isinstance(exc, (BrokenExecutor, CancelledError)):
        return True
    return any(cls.__name__ in _LOST_WORKER_ERRORS for cls in type(exc).__mro__)


def _withdraw(futures: List[Future]) -> None:
    """Cancel the tasks not started; wait for those that could not be cancelled (running)."""
    running = [fut for fut in futures if not fut.cancel()]
    if running:
        wait(running)


# The warnings of tasks run on an executor, caught per thread: a worker may run several tasks at
# once in threads (Dask), and ``warnings.catch_warnings`` is one state for the whole process.
_capture_lock = threading.Lock()
_captures = 0
_saved: Optional[Tuple[list, Any]] = None
_local = threading.local()


def _route(message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None) -> None:
    """``warnings.showwarning`` while tasks run: a task's warning kept for its caller, another
    thread's shown as it would have been."""
    records = getattr(_local, "records", None)
    if records is not None:
        records.append((category, str(message)))
    elif _saved is not None:
        _saved[1](message, category, filename, lineno, file, line)


@contextlib.contextmanager
def _captured() -> Iterator[Caught]:
    """The warnings this thread raises meanwhile, kept (every one: the filter is ``"always"``
    while a task runs, as in a worker process of the pool)."""
    global _captures, _saved
    with _capture_lock:
        if _captures == 0:
            _saved = (list(warnings.filters), warnings.showwarning)
            warnings.simplefilter("always")
            warnings.showwarning = _route
        _captures += 1
    records: Caught = []
    outer = getattr(_local, "records", None)
    _local.records = records
    try:
        yield records
    finally:
        _local.records = outer
        with _capture_lock:
            _captures -= 1
            if _captures == 0 and _saved is not None:
                warnings.filters = _saved[0]  # as catch_warnings restores them
                warnings.showwarning = _saved[1]
                warnings._filters_mutated()  # type: ignore[attr-defined]
                _saved = None


def _run_captured(fn: Callable[[T], R], items: List[T]) -> Tuple[List[R], Caught]:
    """On an executor's worker: the results of a task, and the warnings raised meanwhile."""
    with _captured() as caught:
        results = _run(fn, items)
    return results, list(caught)


def _tasks(items: Iterable[T], chunk: int, skip: Optional[Callable[[T], bool]]
           ) -> Iterator[Tuple[List[T], bool]]:
    """The tasks of ``items``: up to ``chunk`` items each, and whether they are sent (an item
    skipped is a task of its own, not sent)."""
    if skip is None:
        it = iter(items)
        while True:
            group = list(itertools.islice(it, max(1, chunk)))
            if not group:
                return
            yield group, True
    group = []
    for item in items:
        if skip(item):
            if group:
                yield group, True
                group = []
            yield [item], False
            continue
        group.append(item)
        if len(group) >= max(1, chunk):
            yield group, True
            group = []
    if group:
        yield group, True


def _run(fn: Callable[[T], R], items: List[T]) -> List[R]:
    return [fn(item) for item in items]


def _run_in_thread(fn: Callable[[T], R], items: List[T]) -> Tuple[List[R], Caught]:
    """In a thread: the results of a task (the warnings of threads are the process's own)."""
    return _run(fn, items), []


def _run_in_process(fn: Callable[[T], R], items: List[T]) -> Tuple[List[R], Caught]:
    """In a worker process: the results of a task, and the warnings raised meanwhile (kept,
    not printed: they are raised again in the caller's process, in order)."""
    results, caught = with_warnings(_run, fn, items)
    return results, caught


def _results(queued: Tuple[List[T], Optional[Future]]) -> Iterator[Any]:
    """The results of a task, in order, after the warnings its worker process raised."""
    items, fut = queued
    if fut is None:
        yield from [None] * len(items)
        return
    results, caught = fut.result()
    reissue(caught)
    yield from results


def _succeeded(fut: Future) -> bool:
    return fut.done() and not fut.cancelled() and fut.exception() is None


def _start_worker(ignore_interrupt: bool, initializer: Optional[Callable[..., None]],
                  initargs: Tuple[Any, ...]) -> None:
    if ignore_interrupt:  # Ctrl-C goes to the whole process group: the caller stops the pool; workers just finish
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer(*initargs)


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
