"""Index records kept out of memory until a writer's ``close()`` streams them: the
:class:`Spool` of JSON records, :func:`json_lists` streaming them as one JSON object, and
:func:`temporary_errors` for the temporary files they live in."""
from __future__ import annotations

import contextlib
import json
import tempfile
from typing import IO, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from ..errors import CityscapesIOError, StorageError
from ..storage.sinks import Chunks

__all__ = ["Spool", "json_lists", "temporary_errors"]


@contextlib.contextmanager
def temporary_errors(doing: str) -> Iterator[None]:
    """Inside the block, the failure of a temporary file (a full or missing temporary folder)
    becomes a :class:`~cityscapes_io.errors.StorageError` naming the temporary folder, which
    is where room is missing, not the destination."""
    try:
        yield
    except CityscapesIOError:
        raise
    except OSError as exc:
        folder = tempfile.gettempdir()
        raise StorageError(folder, f"{doing} in the temporary folder: {exc.strerror or exc} (set TMPDIR to a "
                                   f"folder with room)") from exc


class Spool:
    """Index records kept out of memory: per key (a split, or a split and a section), JSON
    records appended in order to a temporary file, read back once when the index file is
    written (as :class:`~cityscapes_io.storage.sinks.Chunks`), so a writer's memory does not grow with
    the number of frames. Records go in as Python objects and come out as JSON text."""

    def __init__(self) -> None:
        self._files: Dict[object, IO[bytes]] = {}
        self._counts: Dict[object, int] = {}

    def add(self, key, record) -> int:
        """Append ``record`` (JSON-serialisable) under ``key``; returns its index under it (0, 1, ...)."""
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8") + b"\n"
        with temporary_errors("cannot keep the index records"):
            f = self._files.get(key)
            if f is None:
                f = self._files[key] = tempfile.TemporaryFile()
            f.write(line)
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return n

    def keys(self) -> List[object]:
        return list(self._files)

    def groups(self) -> List[Any]:
        """The distinct first parts of the keys that are tuples (the splits of ``(split,
        section)`` keys), in the order they came."""
        return list(dict.fromkeys(k[0] for k in self._files if isinstance(k, tuple)))

    def count(self, key) -> int:
        return self._counts.get(key, 0)

    def records(self, key) -> Iterable[dict]:
        """The records of ``key``, in order: an iterable read from the start each time it is
        iterated (a sink that writes a file twice gets the same records twice)."""
        spool = self

        class _Records:
            def __iter__(self) -> Iterator[dict]:
                return spool._read(key)

        return _Records()

    def _read(self, key) -> Iterator[dict]:
        f = self._files.get(key)
        if f is None:
            return
        with temporary_errors("cannot keep the index records"):
            f.seek(0)  # writes out what is buffered
            lines = iter(f)
        while True:
            with temporary_errors("cannot read the index records back"):
                line = next(lines, None)
            if line is None:
                break
            yield json.loads(line)
        f.seek(0, 2)  # appending may go on

    def close(self) -> None:
        for f in self._files.values():
            with contextlib.suppress(OSError):  # what is still buffered is not needed any more
                f.close()
        self._files.clear()
        self._counts.clear()


def json_lists(head: Sequence[Tuple[str, Iterable]], indent: Optional[int] = None) -> Chunks:
    """A JSON object whose values are lists, streamed: ``{"<key>": [records...], ...}`` in the
    order given (``records`` iterated when the file is written, e.g. :meth:`Spool.records`).
    With ``indent``, laid out as ``json.dump(..., indent=indent, sort_keys=True)`` lays out an
    object of lists of objects (give the keys sorted and the records' keys are sorted)."""
    def dumps(record, depth: int) -> bytes:
        if indent is None:
            return json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")
        text = json.dumps(record, sort_keys=True, indent=indent)
        pad = " " * (indent * depth)
        return "\n".join(pad + line for line in text.split("\n")).encode("utf-8")

    def make() -> Iterator[bytes]:
        nl = b"" if indent is None else b"\n"
        pad1 = b"" if indent is None else b" " * indent
        sep_kv = b":" if indent is None else b": "
        yield b"{" + nl
        for k, (key, records) in enumerate(head):
            yield (b"," + nl if k else b"") + pad1 + json.dumps(key).encode("utf-8") + sep_kv
            first = True
            for record in records:
                yield (b"[" + nl if first else b"," + nl) + dumps(record, 2)
                first = False
            yield b"[]" if first else nl + pad1 + b"]"
        yield nl + b"}"

    return Chunks(make)
