"""Writing a dataset: frames through a writer, one execution strategy, and a report.

Every frame of the input is either written or reported: a frame that cannot be read or encoded
is skipped as a whole (none of its files are written) under ``on_error="skip"``, and the report
lists it with the reason.

The strategy is chosen once, outside the loop:

- in process (``workers=1, decode_ahead=False``);
- in process with a decode-ahead thread (``workers=1``, the default): the next frame is decoded
  while the current one is encoded and written;
- a process pool (``workers=N``): at most ``2N`` frames in flight, results taken in input order
  so the output is identical to a single run;
- the caller's executor (``executor=``: a local ``ProcessPoolExecutor``, a Dask client's
  ``get_executor()``, a Ray executor; :func:`cityscapes_io.dask.convert_on_dask` is this with a
  Dask client): a task is ``partition`` units (or a city's), sent with what its worker opens the
  writer with (``storage_options`` included); the worker writes the files and sends back the
  index entries, recorded here in input order, so the output is identical to a single run.

``shard=(I, N)`` converts only frames number ``k`` with ``k % N == I`` and writes no index
files; :func:`finalize_dataset` then writes them, once, from what the shards wrote. ``resume=True``
passes over frames whose output files are all present (files appear atomically, so present
means complete) and rewrites the index files at the end.

What is handed out is a writer's *unit* (:meth:`~cityscapes_io.formats.base.Writer.units`): one
frame for most formats, a whole tar shard for ``"wds"``. Units are numbered over the whole
input (``shard`` takes units ``u % N == I``), a worker (a process, an executor's) writes whole units, and resume
and finalize check a unit's files as a whole.

The modules: ``strategies`` (:func:`writer`, the one unit loop :func:`put_unit` every strategy
runs, and :func:`run_writer`, which picks the strategy once and accounts for every outcome),
``runs`` (:func:`write_dataset`: shards and resume; :func:`finalize_dataset`), ``job`` (the
job record kept with a folder's output, and the guards on the destination), ``report``
(:class:`Report`, and :meth:`Report.account`, the one record step of every driver). A writer
is driven only through its public unit protocol (:mod:`cityscapes_io.formats.base`).
"""
from .job import JOB_FILE, claim_destination, job_record, options_for_workers, refuse_in_parts, refuse_overwriting_source
from .report import Report
from .runs import finalize_dataset, items_for, parse_shard, write_dataset
from .strategies import put_unit, run_writer, writer

__all__ = ["Report", "write_dataset", "finalize_dataset", "parse_shard", "writer", "put_unit", "run_writer",
           "items_for", "JOB_FILE", "job_record", "claim_destination", "options_for_workers",
           "refuse_overwriting_source", "refuse_in_parts"]
