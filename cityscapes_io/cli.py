"""The ``cityscapes-io`` command line.

Only :func:`main` catches errors: each error class maps to an exit status, and messages read
``error: <path>: <reason>``.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional

from . import __version__
from .dataset import open as open_dataset
from .errors import CityscapesIOError, DatasetNotFoundError

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
FORMAT_NAMES = ("cityscapes", "voc", "camvid")


def _storage_options(text: Optional[str]) -> Optional[dict]:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--storage-options must be JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("--storage-options must be a JSON object")
    return value


def _add_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", nargs="+", metavar="SRC",
                   help="dataset root(s): path, .zip, or fsspec URL (several roots form one dataset)")
    p.add_argument("--split", action="append", help="only this split (repeatable)")
    p.add_argument("--city", action="append", dest="cities", help="only this city (repeatable)")
    p.add_argument("--storage-options", type=_storage_options, metavar="JSON",
                   help='fsspec storage options, e.g. \'{"anon": true}\'')


def _open(args):
    src = args.src[0] if len(args.src) == 1 else args.src
    return open_dataset(src, split=args.split, cities=args.cities, storage_options=args.storage_options)


def cmd_info(args) -> int:
    ds = _open(args)
    total = 0
    out = {"roots": ds.roots, "format": ds.format, "labels": {"source": ds.labels.source, "count": len(ds.labels)},
           "splits": {}}
    for split in ds.splits():
        cities = {}
        loose = 0
        for frame in ds.frames(split):
            if frame.city is None:
                loose += 1
            else:
                cities[frame.city] = cities.get(frame.city, 0) + 1
        if loose:
            cities["(no city folder)"] = loose
        out["splits"][split] = {"frames": sum(cities.values()), "cities": cities}
        total += sum(cities.values())
    out["frames"] = total
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"roots:   {', '.join(ds.roots)}")
    print(f"format:  {ds.format}")
    print(f"labels:  {len(ds.labels)} from {ds.labels.source}")
    print(f"frames:  {total}")
    for split, info in out["splits"].items():
        print(f"  {split}: {info['frames']} frames in {len(info['cities'])} cities")
        for city, n in info["cities"].items():
            print(f"    {city}: {n}")
    return 0


def _add_writer_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("writer options (also accepted after '--', as in Datumaro)")
    g.add_argument("--save-media", action="store_true", default=None, help="also write the photos")
    g.add_argument("--image-ext", metavar="EXT", help="extension of written photos (default: keep, png if unknown)")
    g.add_argument("--save-dataset-meta", action="store_true", default=None,
                   help="write dataset_meta.json instead of label_colors.txt (cityscapes)")
    g.add_argument("--label-map", "--label_map", metavar="MAP",
                   help="output labels: source (default), cityscapes, or a label_colors.txt / dataset_meta.json")


def _writer_options(args) -> dict:
    opts = {}
    for key in ("save_media", "image_ext", "save_dataset_meta", "label_map"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    return opts


def cmd_convert(args) -> int:
    from .convert import convert

    paths = list(args.paths)
    src = args.input or (paths.pop(0) if paths else None)
    dst = args.output or (paths.pop(0) if paths else None)
    if not src or not dst or paths:
        raise argparse.ArgumentTypeError("convert needs SRC and DST (or -i SRC -o DST)")
    if not args.format:
        raise argparse.ArgumentTypeError("convert needs the output format: -f cityscapes|voc|camvid")
    opts = _writer_options(args)
    if args.format != "cityscapes" and opts.pop("save_dataset_meta", None):
        raise argparse.ArgumentTypeError("--save-dataset-meta applies to -f cityscapes only")
    report = convert(src, dst, src_format=args.input_format, format=args.format,
                     storage_options=args.storage_options, dst_storage_options=args.dst_storage_options,
                     on_error=args.on_error, split=args.split, cities=args.cities, **opts)
    print(report.summary(), file=sys.stderr if args.quiet else sys.stdout) if not args.quiet or report.skipped else None
    return 0 if report.ok else EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityscapes-io", description="Read, convert and inspect Cityscapes datasets.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="splits, cities, frame counts and where the labels came from")
    _add_source(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("convert", help="convert a dataset to another format, frame by frame",
                       description="cityscapes-io convert SRC DST -f voc [--save-media]  "
                                   "(or, as in Datumaro: convert -if cityscapes -i SRC -f voc -o DST -- --save-media)")
    p.add_argument("paths", nargs="*", metavar="SRC DST", help="input and output (or use -i / -o)")
    p.add_argument("-i", "--input", metavar="SRC", help="input dataset")
    p.add_argument("-o", "--output", metavar="DST", help="output root (a path ending in .zip writes an archive)")
    p.add_argument("-if", "--input-format", default="cityscapes", choices=FORMAT_NAMES, help="input format")
    p.add_argument("-f", "--format", choices=FORMAT_NAMES, help="output format")
    p.add_argument("--split", action="append", help="only this split (repeatable)")
    p.add_argument("--city", action="append", dest="cities", help="only this city (repeatable)")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="skip frames that cannot be read or written and list them (exit status 1)")
    p.add_argument("--storage-options", type=_storage_options, metavar="JSON", help="fsspec options of the input")
    p.add_argument("--dst-storage-options", type=_storage_options, metavar="JSON", help="fsspec options of the output")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing unless frames were skipped")
    _add_writer_options(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("synthetic", help="write a synthetic Cityscapes dataset")
    p.add_argument("dst", metavar="DST", help="destination path or fsspec URL")
    p.add_argument("--frames", type=int, default=3, help="frames per split (default 3)")
    p.add_argument("--splits", default="train", help="comma-separated split names (default: train)")
    p.add_argument("--cities", default="aachen,bad-honnef", help="comma-separated city names")
    p.add_argument("--size", default="2048x1024", help="WIDTHxHEIGHT (default 2048x1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-photos", dest="photos", action="store_false", help="ground truth only")
    p.add_argument("--distinct", type=int, default=None,
                   help="generate only this many distinct frames per split and copy them for the rest")
    p.add_argument("--storage-options", type=_storage_options, metavar="JSON")
    p.set_defaults(func=cmd_synthetic)
    return parser


def cmd_synthetic(args) -> int:
    from .synthetic import generate

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must be WIDTHxHEIGHT, got {args.size!r}") from None
    splits = {s: args.frames for s in args.splits.split(",") if s}
    ids = generate(args.dst, splits=splits, cities=tuple(c for c in args.cities.split(",") if c), size=(w, h),
                   seed=args.seed, photos=args.photos, distinct=args.distinct, storage_options=args.storage_options)
    print(f"wrote {len(ids)} frames to {args.dst}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:  # Datumaro passes writer options after '--'
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    args = parser.parse_args(argv)
    if extra:
        extra_parser = argparse.ArgumentParser(prog=f"{parser.prog} {args.command} --", add_help=False)
        _add_writer_options(extra_parser)
        for key, value in vars(extra_parser.parse_args(extra)).items():
            if value is not None:
                setattr(args, key, value)
    try:
        return args.func(args)
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatasetNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except CityscapesIOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
