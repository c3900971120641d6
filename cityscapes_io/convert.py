"""Conversion: open a dataset and write it in another format, frame by frame in constant memory.

The writing itself (strategies, shards, resume, the report) is :mod:`cityscapes_io.writing`.
"""
from __future__ import annotations

from concurrent.futures import Executor
from typing import Callable, Optional, Tuple, Union

from .dataset import open as open_dataset
from .errors import OnError
from .writing import Report, parse_shard, write_dataset

__all__ = ["Report", "convert", "write_dataset", "parse_shard"]


def convert(src, dst, *, src_format: str = "cityscapes", format: str = "cityscapes", storage_options=None,
            dst_storage_options=None, on_error: OnError = "raise", split=None, cities=None,
            progress: Optional[Callable[[int], None]] = None, workers: int = 1,
            shard: Union[str, Tuple[int, int], None] = None, resume: bool = False, finalize: bool = False,
            decode_ahead: bool = True, overwrite: bool = False, annotations: Optional[str] = None,
            image: Optional[str] = None, executor: Optional[Executor] = None, **options) -> Report:
    """Convert a dataset from one format to another, frame by frame in constant memory.

    Parameters
    ----------
    src : str or list of str
        Input root(s) (path, ``.zip``, fsspec URL).
    dst : str
        Output root (path, ``.zip``, fsspec URL). A destination that is not empty is refused
        unless ``overwrite``, ``resume``, ``shard`` or ``finalize`` is given.
    src_format, format : str
        ``"cityscapes"``, ``"voc"`` or ``"camvid"``.
    storage_options, dst_storage_options : dict, optional
        fsspec options of the input and of the output.
    on_error : "raise", "skip" or callable
        ``"skip"`` (or a callable, which receives each error) skips a frame that cannot be read
        or written and lists it in the report.
    split, cities :
        Only these splits / cities.
    workers : int
        Processes converting frames (output identical to one process).
    executor : concurrent.futures.Executor, optional
        Convert on this executor instead (a local ``ProcessPoolExecutor``,
        ``distributed.Client(...).get_executor()``, a Ray executor; not with ``workers``): each
        task is a unit (a frame, a tar shard for ``"wds"``; ``partition=N`` units or ``"city"``
        per task), sent with the file references of its frames (no pixels) and what its worker
        opens the writer with, ``dst_storage_options`` included; the worker writes the files to
        ``dst`` (a place it can reach: a URL, or a folder it shares) and sends back the index
        entries, recorded here in input order: the output is identical to one process. Works
        with ``shard`` and ``resume``; not with a ``.zip`` destination (written in one go).
    decode_ahead : bool
        With ``workers=1``, decode the next frame in a second thread while the current one is
        encoded and written (about 1.8× faster on two cores); turn off to keep a job on one core.
    shard : "I/N" or (I, N)
        Convert only frames ``k`` with ``k % N == I``, and write no index files.
    resume : bool
        Skip frames whose output files are all present; rewrite the index files.
    finalize : bool
        Write only the index files, from the frames whose outputs are present (after shards).
    overwrite : bool
        Replace what the destination holds (Datumaro's ``--overwrite``).
    annotations : {"gtFine", "gtCoarse"}, optional
        Cityscapes input: the annotation tree to read (see :func:`cityscapes_io.open`).
    image : str, optional
        Cityscapes input: the photo key of the frames' photo, the one ``save_media`` writes
        (``leftImg8bit_foggy@beta_0.02``; see :func:`cityscapes_io.open`).
    **options :
        Writer options: ``save_media``, ``image_ext``, ``label_map``, ``save_dataset_meta``,
        ``save_train_ids`` (Cityscapes: also the ``_labelTrainIds`` / ``_instanceTrainIds`` files),
        ``parts`` (Cityscapes and tar shards: the release's other parts copied byte for byte,
        a list of part names, photo folders or keys, ``_sequence`` folders, or ``"all"``).

    Returns
    -------
    Report
    """
    # Frames raise their errors; write_dataset applies the policy to whole frames, so a frame
    # with a bad pixel value is skipped entirely rather than written without the instance.
    ds = open_dataset(src, split=split, cities=cities, storage_options=storage_options, format=src_format,
                      annotations=annotations, image=image)
    return write_dataset(ds, dst, format, storage_options=dst_storage_options, on_error=on_error,
                         progress=progress, workers=workers, shard=shard, resume=resume, finalize=finalize,
                         decode_ahead=decode_ahead, overwrite=overwrite, executor=executor, **options)
