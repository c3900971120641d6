"""Dask (optional extra ``dask``: ``pip install 'cityscapes-io[dask]'``): a dataset as a bag, a
cluster as an executor, and conversion on a cluster.

Every long operation (:func:`cityscapes_io.convert`, :func:`~cityscapes_io.prepare`,
:func:`~cityscapes_io.evaluate`, :func:`~cityscapes_io.validate.validate`,
:func:`~cityscapes_io.stats.compute_stats`) takes ``executor=``; a Dask cluster is one through
``Client.get_executor()``, which :func:`executor` opens from a scheduler address (the command
line's ``--scheduler``). The driver lists the frames (cheap: no pixels) and sends them, as file
references, in tasks of a frame, a few frames or a tar shard; workers decode and write or
compute, and send back index entries or small statistics, merged here in input order, so the
output equals a one-process run. :func:`convert_on_dask` is conversion on that mechanism.
"""
from __future__ import annotations

import contextlib
import importlib
from typing import Any, Iterator, List, Optional, Sequence, Union

from .dataset import Dataset, open as open_dataset
from .errors import OnError, check_policy
from .frame import Frame
from .storage import Root
from .writing import Report, write_dataset

__all__ = ["to_bag", "convert_on_dask", "partitions", "executor"]


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


@contextlib.contextmanager
def executor(scheduler: Optional[str] = None, *, client: Any = None) -> Iterator[Any]:
    """The executor of a Dask cluster: ``client.get_executor(pure=False)`` (every task runs, none is
    taken for another with equal arguments), for the operations' ``executor=``. With
    ``scheduler`` (``"tcp://host:8786"``) a client is connected here and closed on exit; with
    ``client``, that one is used and left open.

    >>> with cityscapes_io.dask.executor("tcp://10.0.0.5:8786") as ex:    # doctest: +SKIP
    ...     cityscapes_io.prepare("s3://bucket/cityscapes", executor=ex)
    """
    if client is not None:
        yield client.get_executor(pure=False)
        return
    if not scheduler:
        raise ValueError("give the address of a Dask scheduler (tcp://host:8786) or a client")
    try:
        from distributed import Client  # on use: an optional extra
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("a Dask cluster needs distributed: pip install 'cityscapes-io[dask]'") from exc
    own = Client(scheduler)
    try:
        yield own.get_executor(pure=False)
    finally:
        own.close()


def convert_on_dask(ds: Union[Dataset, str], url, format: str, *, client=None, scheduler: Optional[str] = None,
                    partition: Union[str, int] = "city", storage_options=None, on_error: OnError = "raise",
                    src_format: str = "cityscapes", src_storage_options=None, protect: Sequence[Root] = (),
                    **options) -> Report:
    """Convert ``ds`` (a Dataset or a source URL) to ``url`` in ``format`` on a Dask cluster:
    :func:`cityscapes_io.convert` with the cluster's executor (see :func:`executor`).

    Parameters
    ----------
    client : distributed.Client, optional
        The cluster to use; or give ``scheduler`` (``"tcp://host:8786"``) to connect to one.
        With neither, the conversion runs in this process (the same output).
    partition : "city" or int
        One task per city, or per this many units (frames; tar shards for ``"wds"``).
    storage_options : dict, optional
        fsspec options of the destination (they travel to the workers with each task).
    protect : sequence of Root
        Places the destination may not overlap besides the dataset's roots (a project folder).
    on_error, **options :
        As for :func:`cityscapes_io.convert` (``resume``, ``shard``, ``overwrite`` included).
    """
    _require_dask()
    check_policy(on_error)
    if not isinstance(ds, Dataset):
        ds = open_dataset(ds, format=src_format, storage_options=src_storage_options)
    if client is None and not scheduler:
        return write_dataset(ds, url, format, storage_options=storage_options, on_error=on_error, protect=protect,
                             partition=partition, **options)
    with executor(scheduler, client=client) as ex:
        return write_dataset(ds, url, format, storage_options=storage_options, on_error=on_error, protect=protect,
                             executor=ex, partition=partition, **options)
