"""``cityscapes-io prepare``: the train-id files (and panoptic ground truth) the official
preparation scripts write."""
from __future__ import annotations

import sys

from ..formats import reader_class
from .args import (QUIET_WRITING, add_scheduler, add_source, command, executor_from_args, input_format, items,
                   json_object, open_source, terminal)
from .status import EXIT_ERROR, UsageError


def register(subparsers, help: str) -> None:
    p = command(subparsers, "prepare", help=help, quiet=QUIET_WRITING,
                description="cityscapes-io prepare SRC [--kinds labelTrainIds,instanceTrainIds] "
                            "[--from png|polygons] [-o DST] [--overwrite] [-j N | --scheduler ADDRESS]: next to the source files "
                            "(or in a mirrored tree under DST); existing files are kept unless --overwrite")
    add_source(p, project=False)
    p.add_argument("--kinds", action="append", metavar="KIND[,KIND...]",
                   help="what to write: labelTrainIds, instanceTrainIds (default both), panoptic (COCO panoptic "
                        "as csCreatePanopticImgs writes it); --from polygons: also labelIds, instanceIds, color")
    p.add_argument("--train-ids", action="store_true",
                   help="panoptic: train ids as category ids (cityscapes_panoptic_<split>_trainId.json)")
    p.add_argument("--from", dest="source", choices=("png", "polygons"), default="png",
                   help="png (default): a lookup of the shipped labelIds/instanceIds; polygons: draw the "
                        "polygons as the official scripts do (pixel-identical to them)")
    p.add_argument("-o", "--output", metavar="DST",
                   help="write into a tree mirroring SRC under DST (needed for a read-only SRC, e.g. a zip)")
    p.add_argument("--save-media", action="store_true",
                   help="with -o: also copy the photos of the frames prepared into DST (leftImg8bit/, bytes "
                        "unchanged), so that DST is a tree mmsegmentation's CityscapesDataset reads")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace files that exist (otherwise they are kept: a rerun continues where it stopped)")
    p.add_argument("--dst-storage-options", type=json_object, metavar="JSON", help="fsspec options of DST")
    p.add_argument("--split", action="append", help="only this split (repeatable, or a comma-separated list)")
    p.add_argument("--city", action="append", dest="cities", metavar="CITY", help="only this city")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="skip frames that cannot be prepared and list them (exit status 1)")
    p.add_argument("--allow-skipped", action="store_true", help="exit 0 even when frames were skipped")
    p.add_argument("-j", "--workers", type=int, default=1, help="prepare in N processes")
    add_scheduler(p, "prepare")
    p.add_argument("--no-decode-ahead", dest="decode_ahead", action="store_false",
                   help="with one process, do not decode the next frame in a second thread")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..prepare import TRAIN_ID_KINDS, kinds_from, prepare
    from ..progress import Progress

    src = args.src[0] if len(args.src) == 1 else args.src
    fmt = input_format(args, src, args.input_format)
    if not reader_class(fmt).ANNOTATION_TREES:
        raise UsageError(f"prepare works on Cityscapes datasets, not {fmt}")
    kinds = items(args.kinds) or list(TRAIN_ID_KINDS)
    allowed = kinds_from(args.source)
    bad = [k for k in kinds if k not in allowed]
    if bad:
        raise UsageError(f"--kinds {','.join(bad)}: not available --from {args.source} "
                         f"(choose from {', '.join(allowed)})")
    if args.save_media and not args.output:
        raise UsageError("--save-media copies the photos into -o DST: give -o DST (without it the files are "
                         "written next to the source, beside its photos)")
    enabled = terminal(args)
    total = None
    if enabled:  # one listing pass, of every tree prepared, for the time left
        first = open_source(src, fmt, args.storage_options, annotations=args.annotations, image=args.image)
        total = 0
        trees = [args.annotations] if args.annotations else first.reader.trees or [None]
        if set(kinds) == {"panoptic"}:
            trees = ["gtFine"]
        for tree in trees:
            ds = open_source(src, fmt, args.storage_options, annotations=tree, image=args.image)
            splits = [s for s in items(args.split) if s in ds.splits()] or None
            if args.split and not splits:
                continue
            cities = [c for c in items(args.cities) if any(c in ds.cities(s) for s in splits or ds.splits())]
            if args.cities and not cities:
                continue
            total += ds.filter(split=splits, cities=cities or None).count()
    bar = args.progress_bar = Progress(total, label="prepare", enabled=enabled)
    args.where = args.output or str(src)
    with executor_from_args(args, args.workers) as executor:
        report = prepare(src, kinds, source=args.source, dst=args.output, overwrite=bool(args.overwrite),
                         workers=args.workers, on_error=args.on_error, storage_options=args.storage_options,
                         dst_storage_options=args.dst_storage_options, annotations=args.annotations,
                         split=items(args.split) or None, cities=items(args.cities) or None, progress=bar,
                         decode_ahead=args.decode_ahead, train_ids=args.train_ids, save_media=args.save_media,
                         image=args.image, executor=executor)
    bar.close()
    if not args.quiet or report.skipped:
        print(report.summary(), file=sys.stderr if report.skipped else sys.stdout)
    if report.read == 0:
        print(f"error: {src}: no annotated frames to prepare", file=sys.stderr)
        return EXIT_ERROR
    return 0 if report.ok or args.allow_skipped else EXIT_ERROR
