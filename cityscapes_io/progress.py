"""What a long operation tells its user while it runs: a progress line (frames done, frames/s,
time left; shown only on a terminal, silent otherwise), and the warnings raised in a worker
process, carried back to be raised again in the calling process (where a warning filter, a test
or the command line's one-line warnings see them)."""
from __future__ import annotations

import sys
import time
import warnings
from typing import Any, Callable, List, Optional, TextIO, Tuple, Type

#: Warnings raised in a worker process: (category, message).
Caught = List[Tuple[Type[Warning], str]]


class Progress:
    """Call with the number of frames done; ``close()`` ends the line."""

    def __init__(self, total: Optional[int] = None, *, label: str = "", stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None, interval: float = 0.2):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.label, self.interval = total, label, interval
        self.start = time.monotonic()
        self._last = 0.0
        self._drawn = 0
        self.done = 0

    def __call__(self, done: int) -> None:
        """Redrawn at most every ``interval`` seconds, and whenever the count has moved by a
        hundredth of the total since the last drawing (frames that come in a burst, a worker's
        chunk, are drawn up to the last one, not left at the first)."""
        self.done = done
        now = time.monotonic()
        step = max(1.0, (self.total or 0) / 100)
        if not self.enabled or (now - self._last < self.interval and done - self._drawn < step
                                and done != self.total):
            return
        self._last, self._drawn = now, done
        self.stream.write("\r" + self.line(now) + "\033[K")
        self.stream.flush()

    def line(self, now: Optional[float] = None) -> str:
        elapsed = max((now or time.monotonic()) - self.start, 1e-9)
        rate = self.done / elapsed
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            width = 24
            filled = int(width * self.done / self.total)
            eta = _hms(left) if left != float("inf") else "?"
            return (f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} frames "
                    f"{rate:.1f}/s, {eta} left")
        return f"{self.label} {self.done} frames {rate:.1f}/s"

    def clear(self) -> None:
        """Erase the line (before printing something else); the next update redraws it."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._last = 0.0

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\r" + self.line() + "\033[K\n")
            self.stream.flush()


def _hms(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def with_warnings(fn: Callable[..., Any], *args: Any) -> Tuple[Any, Caught]:
    """``fn(*args)`` in a worker process, and every warning it raised (kept, not printed: the
    worker's stderr would show Python's format, out of order with the caller's output)."""
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        result = fn(*args)
    return result, [(w.category, str(w.message)) for w in records]


def reissue(caught: Caught) -> None:
    """Raise again, in this process and in order, the warnings a worker caught."""
    for category, message in caught:
        warnings.warn(message, category, stacklevel=2)
