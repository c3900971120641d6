"""A dataset written: the strategy picked once, shards (``shard=(I, N)``), ``resume`` and
``finalize``, over a writer's units (see the package's docstring)."""
from __future__ import annotations

import time
from concurrent.futures import Executor
from typing import Callable, Iterator, List, Optional, Sequence, Set, Tuple, Union

from ..errors import CityscapesIOError, OnError, check_policy
from ..formats.base import Result, Writer
from ..storage import Root
from .job import claimed, job_record, refuse_in_parts
from .report import Report
from .strategies import Unit, check_partition, run_writer, writer

__all__ = ["write_dataset", "finalize_dataset", "parse_shard", "items_for"]


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


def write_dataset(ds, url, format: str, *, storage_options=None, on_error: OnError = "raise",
                  progress: Optional[Callable[[int], None]] = None, workers: int = 1,
                  shard: Union[str, Tuple[int, int], None] = None, resume: bool = False,
                  finalize: bool = False, decode_ahead: bool = True, overwrite: bool = False,
                  protect: Sequence[Root] = (), executor: Optional[Executor] = None,
                  partition: Union[str, int] = 1, **options) -> Report:
    """Write every frame of ``ds`` to ``url`` in ``format``; see :func:`cityscapes_io.convert`.
    ``protect``: places the destination may not overlap besides the dataset's roots (a project
    folder). ``executor``: write the units on it, ``partition`` units (or a city's) per task."""
    check_policy(on_error)
    check_partition(partition)
    if executor is not None and workers > 1:
        raise ValueError("give workers (processes started here) or executor (the caller's), not both")
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
    w = writer(url, format, storage_options=storage_options, labels=ds.labels, existing=existing,
               sources=[*ds.reader.roots, *protect], **options)
    if sharded or resume or workers > 1 or executor is not None:
        refuse_in_parts(w, "shard, resume, workers or executor")
    if w.dest.resumable:
        claimed(w, job_record(ds, w, options), fresh=existing != "keep")
    run_writer(w, items_for(ds, w, shard, resume), report, format=format, url=url, storage_options=storage_options,
               options=options, workers=workers, decode_ahead=decode_ahead, on_error=on_error, progress=progress,
               index=not sharded,  # a shard writes no index files: finalize does, once
               executor=executor, partition=partition)
    report.seconds = time.perf_counter() - start
    return report


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
    w = writer(url, format, storage_options=storage_options, labels=ds.labels, existing="keep",
               sources=[*ds.reader.roots, *protect], **options)
    refuse_in_parts(w, "shards to finalize")
    claimed(w, job_record(ds, w, options), fresh=False)
    try:
        w.dest.remove_temporaries()
        present = w.dest.listing()
        for key, frames in w.units(ds):
            missing = [p for p in w.unit_files(key, frames) if w.dest.path(p) not in present]
            results: List[Result] = w.unit_entries(key, frames) if not missing else [
                CityscapesIOError(f.id, f"output missing (no shard wrote it): {', '.join(missing)}") for f in frames]
            for frame, result in zip(frames, results):
                report.account(w, frame.split, frame.id, result, on_error, indexing=True)
                if progress is not None:
                    progress(report.read)
    except BaseException:
        w.abort()
        raise
    w.close()
    report.seconds = time.perf_counter() - start
    return report
