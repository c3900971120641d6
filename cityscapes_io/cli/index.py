"""``cityscapes-io index SRC OUT``: the columnar index of a dataset, ``OUT/frames.parquet`` and
``OUT/instances.parquet`` (see :mod:`cityscapes_io.index`)."""
from __future__ import annotations

import sys

from .args import (add_operations, add_scheduler, add_source, command, dataset, executor_from_args, json_object,
                   progress)
from .status import EXIT_ERROR, UsageError


def register(subparsers, help: str) -> None:
    p = command(subparsers, "index", help=help, quiet="no progress bar; print only problems",
                description="cityscapes-io index SRC [SRC...] OUT (or -p DIR OUT): OUT/frames.parquet, one row "
                            "per frame (id, split, city, sequence, frame, size, the URL of each of its files and "
                            "of each part of the release it has) and OUT/instances.parquet, one row per segment "
                            "(label, instance id, crowd, area, bbox, COCO RLE), written in one pass; needs "
                            "pyarrow (pip install 'cityscapes-io[parquet]')")
    add_source(p)
    p.add_argument("-o", "--output", metavar="OUT",
                   help="the folder the two files go into (default: the last positional argument)")
    p.add_argument("--overwrite", action="store_true", help="replace an index already in OUT")
    p.add_argument("--dst-storage-options", type=json_object, metavar="JSON", help="fsspec options of OUT")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="leave out frames that cannot be read and list them (exit status 1)")
    p.add_argument("--allow-skipped", action="store_true", help="exit 0 even when frames were skipped")
    p.add_argument("-j", "--workers", type=int, default=1, help="decode the frames in N processes (same files)")
    add_scheduler(p, "decode the frames")
    add_operations(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..index import build_index

    if args.output is None:
        if len(args.src) < (1 if getattr(args, "project", None) else 2):
            raise UsageError("give SRC and OUT (cityscapes-io index SRC OUT), or -o OUT")
        args.output = args.src.pop()
    args.where = args.output
    args.given = [(s, args.storage_options) for s in args.src] + [(args.output, args.dst_storage_options)]
    try:
        import pyarrow  # noqa: F401  (said before the dataset is listed)
    except ImportError:
        raise UsageError("index needs pyarrow: pip install 'cityscapes-io[parquet]'") from None
    ds = dataset(args)
    bar = progress(args, "index", ds)
    try:
        with executor_from_args(args, args.workers) as executor:
            report = build_index(ds, args.output, dst_storage_options=args.dst_storage_options,
                                 workers=args.workers, executor=executor, progress=bar, overwrite=args.overwrite,
                                 on_error=args.on_error)
    finally:
        bar.close()
    if not args.quiet or report.skipped:
        print(report.summary(), file=sys.stderr if report.skipped else sys.stdout)
    return 0 if report.ok or args.allow_skipped else EXIT_ERROR
