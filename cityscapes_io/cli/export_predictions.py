"""``cityscapes-io export-predictions``: predictions held as a dataset, written in the official
submission layout."""
from __future__ import annotations

import sys

from .args import formats_help, command, input_format, json_object, open_source, progress


def register(subparsers, help: str) -> None:
    p = command(subparsers, "export-predictions", help=help,
                description="cityscapes-io export-predictions SRC OUT --task semantic|instance|panoptic "
                            "[--train-ids]: semantic, OUT/<city>/<frame>_pred.png; instance, "
                            "OUT/<city>/<frame>_pred.txt and its masks in OUT/<city>/<frame>_pred/; panoptic, "
                            "OUT/cityscapes_panoptic_<split>.json and its PNGs in "
                            "OUT/cityscapes_panoptic_<split>/ (evaluate with: eval GT "
                            "OUT/cityscapes_panoptic_<split>.json --task panoptic)", quiet="no progress bar")
    p.add_argument("src", metavar="SRC", help="the predictions as a dataset (path, .zip or fsspec URL)")
    p.add_argument("output", metavar="OUT", help="folder, .zip or URL written")
    p.add_argument("--task", default="semantic", choices=("semantic", "instance", "panoptic"))
    p.add_argument("--train-ids", action="store_true",
                   help="the values are train ids (0..18), whatever the dataset's label map says")
    p.add_argument("--split", help="only this split")
    p.add_argument("-if", "--input-format", metavar="FORMAT",
                   help=f"input format: {formats_help()} (default: detected)")
    p.add_argument("--overwrite", action="store_true", help="replace what OUT holds")
    p.add_argument("--storage-options", type=json_object, metavar="JSON", help="fsspec options of SRC")
    p.add_argument("--dst-storage-options", type=json_object, metavar="JSON", help="fsspec options of OUT")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation import export_predictions

    ds = open_source(args.src, input_format(args, args.src, args.input_format), args.storage_options)
    if args.split is not None:
        ds = ds.filter(split=args.split)
    args.given = [(args.src, args.storage_options), (args.output, args.dst_storage_options)]
    bar = progress(args, f"{args.task} predictions", ds)
    report = export_predictions(ds, args.output, args.task, train_ids=args.train_ids,
                                out_storage_options=args.dst_storage_options, overwrite=bool(args.overwrite),
                                progress=bar)
    bar.close()
    skipped = f"; {report['skipped_regions']} region(s) that are not instances left out" \
        if report["skipped_regions"] else ""
    print(f"{report['frames']} frame(s) written to {args.output}{skipped}", file=sys.stderr)
    return 0
