"""Reading ahead: the one loop that fetches the files of the next frames while one is used.

:func:`read_ahead` is what :class:`~cityscapes_io.Dataset` iteration and the PyTorch datasets
(:mod:`cityscapes_io.torch`) use on remote filesystems, where a file costs a request's latency:
the files of a few frames ahead are fetched concurrently in a small thread pool while the
consumer decodes the current one, so iteration is bound by bandwidth, not by latency.
"""
from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable, Deque, Iterable, Iterator, Optional, Sequence, Set

if TYPE_CHECKING:
    from .frame import Frame

__all__ = ["read_ahead"]


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
                window.append(f)
            if not window:
                return
            with lock:
                learned = sorted(wanted)
            for f in window:
                todo = kinds(f) if kinds is not None else learned
                if todo:
                    f.source.fetch_ahead(todo, pool)
            yield window.popleft()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
