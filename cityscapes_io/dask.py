"""Conversion on a Dask cluster (optional extra ``dask``: ``pip install 'cityscapes-io[dask]'``).

The driver lists the frames (cheap: no pixels) and cuts them into partitions, one per city or
chunks of N frames; each partition is converted on a worker by its own writer, which writes the
frames' files straight to the destination; the driver then writes the index files from the
workers' results, in input order, so the output equals a single-process run.
"""
from __future__ import annotations

import importlib
import time
from typing import Iterable, List, Optional, Sequence, Union

from .dataset import Dataset, open as open_dataset
from .errors import OnError, check_policy
from .frame import Frame
from .storage import Root
from .writing import Report, claim_destination, job_record, options_for_workers, refuse_in_parts, writer

__all__ = ["to_bag", "convert_on_dask", "partitions"]


def _require_dask():
    try:
        importlib.import_module("dask.bag")
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("cityscapes_io.dask needs dask: pip install 'cityscapes-io[dask]'") from exc


def partitions(ds: Dataset, partition: Union[str, int] = "city") -> List[List[Frame]]:
    """The frames of ``ds`` in order, grouped by (split, city) or in chunks of ``partition``
    frames."""
    groups: List[List[Frame]] = []
    key = None
    for frame in ds:
        if partition == "city":
            k = (frame.split, frame.city)
            if k != key or not groups:
                groups.append([])
                key = k
        elif isinstance(partition, int) and partition > 0:
            if not groups or len(groups[-1]) >= partition:
                groups.append([])
        else:
            raise ValueError(f"partition must be 'city' or a positive number of frames, got {partition!r}")
        groups[-1].append(frame.fresh())  # no pixels a filter may have decoded
        frame.release()
    return groups


def to_bag(ds: Dataset, partition: Union[str, int] = "city"):
    """A ``dask.bag.Bag`` of the dataset's frames, one partition per city (or per chunk of
    ``partition`` frames). Frames are picklable and hold no pixels; each worker reads its own."""
    _require_dask()
    import dask  # on use: dask is an optional extra
    import dask.bag as db

    return db.from_delayed([dask.delayed(group, traverse=False) for group in partitions(ds, partition)])


def _write_partition(frames: Iterable[Frame], format: str, url, storage_options, options) -> List[tuple]:
    w = writer(url, format, storage_options=storage_options, existing="keep", **options)
    try:
        return [(frame.split, frame.id, w.try_put(frame)) for frame in frames]
    finally:
        w.abort()  # per-frame files only; the driver writes the index files


def convert_on_dask(ds: Union[Dataset, str], url, format: str, *, client=None, scheduler: Optional[str] = None,
                    partition: Union[str, int] = "city", storage_options=None, on_error: OnError = "raise",
                    src_format: str = "cityscapes", src_storage_options=None, protect: Sequence[Root] = (),
                    **options) -> Report:
    """Convert ``ds`` (a Dataset or a source URL) to ``url`` in ``format`` on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client, optional
        The cluster to use; or give ``scheduler`` (``"tcp://host:8786"``) to connect to one.
        With neither, dask's default scheduler runs it locally.
    partition : "city" or int
        One task per city, or per this many frames.
    storage_options : dict, optional
        fsspec options of the destination (they travel to the workers).
    protect : sequence of Root
        Places the destination may not overlap besides the dataset's roots (a project folder).
    on_error, **options :
        As for :func:`cityscapes_io.convert`.
    """
    _require_dask()
    check_policy(on_error)
    if not isinstance(ds, Dataset):
        ds = open_dataset(ds, format=src_format, storage_options=src_storage_options)
    start = time.perf_counter()
    report = Report(str(url), format)
    w = writer(url, format, storage_options=storage_options, labels=ds.labels,
               sources=[*ds.reader.roots, *protect], **options)
    refuse_in_parts(w, "Dask partitions: convert it without Dask")
    if w.GROUPS_FRAMES:  # partitions cut by city or count would split its units
        w.abort()
        raise ValueError(f"{format} writes several frames per file: convert it without Dask (workers= writes "
                         f"whole files in processes)")
    own_client = None
    try:
        claim_destination(w, job_record(ds, w, options), fresh=True)
        if client is None and scheduler:
            from distributed import Client  # on use: an optional extra

            client = own_client = Client(scheduler)
        worker_options = options_for_workers(w, options)
        bag = to_bag(ds, partition).map_partitions(_write_partition, format, url, storage_options, worker_options)
        results = bag.compute(scheduler=client) if client is not None else bag.compute()
        for split, frame_id, result in results:
            report.account(w, split, frame_id, result, on_error)
    except BaseException:
        w.abort()
        raise
    finally:
        if own_client is not None:
            own_client.close()
    w.close()
    report.seconds = time.perf_counter() - start
    return report
