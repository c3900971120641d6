"""``cityscapes-io convert``: a dataset to another format, frame by frame; and the export that
``merge`` and ``project export`` share with it (output format, default output folder, writer
options, the summary)."""
from __future__ import annotations

import os
import re
import sys
import warnings
from typing import TYPE_CHECKING, Sequence

from ..formats import writer_class
from .args import (formats_help, QUIET_WRITING, add_output, add_operations, add_source, command, dataset,
                   executor_from_args, format_name, progress, writer_options)
from .status import EXIT_ERROR, UsageError

if TYPE_CHECKING:
    from ..storage import Root

__all__ = ["register", "run", "output_format", "export"]


def register(subparsers, help: str) -> None:
    p = command(subparsers, "convert", help=help, quiet=QUIET_WRITING,
                description="cityscapes-io convert SRC DST -f voc [--save-media]  "
                            "(or, as in Datumaro: convert -if cityscapes -i SRC -f voc -o DST -- --save-media)")
    add_source(p)
    p.add_argument("-i", "--input", metavar="SRC", help="input dataset (Datumaro's spelling)")
    add_output(p)
    add_operations(p)
    p.set_defaults(func=run)


def run(args) -> int:
    paths = list(args.src)
    if args.input:
        paths.insert(0, args.input)
    dst = args.output
    if dst is None and len(paths) >= 2:
        dst = paths.pop()
    args.src = paths
    output_format(args)
    return export(args, dataset(args), dst)


def finalize_summary(report, dst, fmt: str) -> str:
    """The summary of --finalize, which indexes what the shards wrote (it writes no frame)."""
    # Until Report.indexed lands (the lead's convert/pipeline change), finalize counts its frames
    # in ``written``; afterwards ``written`` is 0 there and ``indexed`` holds them.
    indexed = report.indexed
    lines = [f"{indexed} frames indexed, {len(report.skipped)} missing -> {dst} ({fmt}, "
             f"{report.seconds:.1f} s)"]
    lines += [f"  missing {split}/{fid}: {reason}" for split, fid, reason in report.skipped]
    return "\n".join(lines)


def output_format(args) -> str:
    """-f, checked before any input is opened."""
    if not args.format:
        raise UsageError(f"the output format is missing: -f FORMAT ({formats_help()})")
    return format_name(args.format)


def export(args, ds, dst, *, default_output: bool = False, protect: Sequence[Root] = ()) -> int:
    """Write ``ds`` to ``dst`` in the format of -f, with the writer, output and scale options;
    the summary printed, the exit status returned."""
    fmt = args.format = output_format(args)
    if not dst and default_output:
        if args.resume or args.finalize or args.shard:
            raise UsageError("--resume, --shard and --finalize continue one output: give it with -o DST")
        dst = os.path.abspath(default_output_folder(fmt))
        args.default_output = True
    if not dst:
        raise UsageError("the output is missing: DST or -o DST")
    opts = writer_options(args, fmt)
    # A format that always writes its photos (a tar shard holds them) takes image_ext alone.
    if (opts.get("image_ext") and not opts.get("save_media") and not args.finalize
            and not writer_class(fmt).ALWAYS_SAVES_MEDIA):
        warnings.warn(f"--image-ext {opts['image_ext']} has no effect without --save-media (no photos are written)")
    if args.overwrite:
        opts["overwrite"] = True
    bar = progress(args, fmt, ds)
    args.where = str(dst)
    args.resumable = True  # Ctrl-C from here on: the frames written are kept, --resume continues
    scale: dict = {}
    if args.scheduler:
        if args.finalize:
            raise UsageError("--finalize writes the index files here, from what the shards wrote: no --scheduler")
        partition = args.partition
        if partition != "city":
            if not partition.isdigit() or int(partition) < 1:
                raise UsageError(f"--partition takes 'city' or a number of frames, got {partition!r}")
            partition = int(partition)
        scale["partition"] = partition
    with executor_from_args(args, args.workers) as executor:
        if executor is not None:
            scale["executor"] = executor
        report = ds.export(dst, fmt, storage_options=args.dst_storage_options, on_error=args.on_error,
                           progress=bar, workers=args.workers, shard=args.shard, resume=args.resume,
                           finalize=args.finalize, decode_ahead=args.decode_ahead, protect=protect, **scale, **opts)
    bar.close()
    if not args.quiet or report.skipped:
        text = finalize_summary(report, dst, fmt) if args.finalize else report.summary()
        print(text, file=sys.stderr if report.skipped else sys.stdout)
    if default_output and not args.quiet:
        print(f"exported to {dst}")
    if report.read == 0 and not args.finalize:
        print(f"error: {' '.join(map(str, args.src)) or args.project or 'input'}: no frames to convert "
              "(empty dataset, or filters that match nothing)", file=sys.stderr)
        return EXIT_ERROR
    return 0 if report.ok or args.allow_skipped else EXIT_ERROR


def default_output_folder(fmt: str) -> str:
    """Datumaro's default export folder: ``export-<format>`` here, or ``export-<format>.N`` with
    the next free number when that exists."""
    base = f"export-{fmt}"
    taken = [m for m in (re.fullmatch(re.escape(base) + r"(?:\.(\d+))?", n) for n in os.listdir(".")) if m]
    if not taken:
        return base
    return f"{base}.{max(int(m.group(1) or 0) for m in taken) + 1}"
