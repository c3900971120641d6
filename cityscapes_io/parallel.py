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
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import (TYPE_CHECKING, Any, Callable, Deque, Generator, Generic, Iterable, Iterator, List, Optional, Sequence,
                    Set, Tuple, TypeVar)

from .progress import Caught, reissue, with_warnings

if TYPE_CHECKING:
    from .frame import Frame

__all__ = ["ordered_map", "WorkerDied", "read_ahead"]

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
    a crash below Python). ``lost``: the items sent to the pool, in order, whose task did not
    complete (the items of tasks that did, and those not yet taken from the input, are not in
    it). The pool's own error is the ``__cause__``."""

    def __init__(self, lost: List[T]):
        super().__init__(f"a worker process ended abruptly: {len(lost)} item(s) not accounted for")
        self.lost = lost


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, workers: int, processes: bool = True,
                window: Optional[int] = None, chunk: int = 1, skip: Optional[Callable[[T], bool]] = None,
                start_method: str = "spawn", initializer: Optional[Callable[..., None]] = None,
                initargs: Tuple[Any, ...] = (), ignore_interrupt: bool = False
                ) -> Generator[Optional[R], None, None]:
    """Yield ``fn(item)`` for every item of ``items``, in their order, computed in ``workers``
    processes or threads with a bounded window in flight (the rules: this module's page).

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

    Raises
    ------
    WorkerDied
        A worker process ended abruptly; the caller turns it into its own error.
    """
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
