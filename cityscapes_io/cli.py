"""The ``cityscapes-io`` command line.

Datumaro's spellings work where they make sense (``convert -if cityscapes -i SRC -f voc -o DST
-- --save-media``, ``project import -p DIR -f cityscapes SRC``). Only :func:`main` catches
errors: each error class maps to an exit status, and messages read ``error: <path>: <reason>``.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional

from . import __version__
from .errors import CityscapesIOError, DatasetNotFoundError

__all__ = ["main", "build_parser"]

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
FORMAT_NAMES = ("cityscapes", "voc", "camvid")


class UsageError(Exception):
    pass


# -- argument groups ----------------------------------------------------------------------------
def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def _add_source(p: argparse.ArgumentParser, *, project: bool = True, many: bool = True,
                per_source_format: bool = False) -> None:
    p.add_argument("src", nargs="*" if project else ("+" if many else 1), metavar="SRC",
                   help="dataset root(s): path, .zip or fsspec URL (several roots form one dataset)")
    if project:
        p.add_argument("-p", "--project", metavar="DIR", help="use a project instead of SRC")
    if per_source_format:
        p.add_argument("-if", "--input-format", action="append", choices=FORMAT_NAMES,
                       help="input format: once for all sources, or once per SRC in order (default cityscapes)")
    else:
        p.add_argument("-if", "--input-format", default="cityscapes", choices=FORMAT_NAMES, help="input format")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON",
                   help='fsspec options of the input, e.g. \'{"anon": true}\'')


def _add_operations(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filter and transform (lazy, applied in this order)")
    g.add_argument("--split", action="append", help="only this split (repeatable)")
    g.add_argument("--city", action="append", dest="cities", help="only this city (repeatable)")
    g.add_argument("--id", action="append", dest="ids", metavar="ID",
                   help="only this frame id or glob, e.g. 'aachen/*_000019' (repeatable)")
    g.add_argument("--with-label", action="append", dest="with_labels", metavar="LABEL",
                   help="only frames containing this label (repeatable: any of them)")
    g.add_argument("--remap", action="append", metavar="SRC:DST",
                   help="rename or merge a label (car:vehicle); 'bicycle:' drops it to background")
    g.add_argument("--remap-default", choices=("keep", "delete"), default="keep",
                   help="what --remap does with labels it does not name (default keep)")
    g.add_argument("--train-ids", action="store_true", help="map labels to the 19 train ids (255 = ignore)")
    g.add_argument("--rename-split", action="append", metavar="OLD:NEW", help="rename a split (repeatable)")


def _add_writer_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("writer options (also accepted after '--', as in Datumaro)")
    g.add_argument("--save-media", action="store_true", default=None, help="also write the photos")
    g.add_argument("--image-ext", metavar="EXT", help="extension of written photos (default: keep, png if unknown)")
    g.add_argument("--save-dataset-meta", action="store_true", default=None,
                   help="write dataset_meta.json instead of label_colors.txt (cityscapes)")
    g.add_argument("--label-map", "--label_map", metavar="MAP",
                   help="output labels: source (default), cityscapes, or a label_colors.txt / dataset_meta.json")


def _add_output(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="DST", help="output root (a path ending in .zip writes an archive)")
    p.add_argument("-f", "--format", choices=FORMAT_NAMES, help="output format")
    p.add_argument("--dst-storage-options", type=_json_object, metavar="JSON", help="fsspec options of the output")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="skip frames that cannot be read or written and list them (exit status 1)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar; print only problems")
    p.add_argument("--allow-skipped", action="store_true",
                   help="exit 0 even when frames were skipped (they are still listed)")
    g = p.add_argument_group("scale")
    g.add_argument("-j", "--workers", type=int, default=1, help="convert in N processes (same output)")
    g.add_argument("--no-decode-ahead", dest="decode_ahead", action="store_false",
                   help="with one process, do not decode the next frame in a second thread (stay on one core)")
    g.add_argument("--shard", metavar="I/N", help="convert only frames k with k %% N == I (0 <= I < N); "
                                                 "no index files: run --finalize after all shards")
    g.add_argument("--resume", action="store_true", help="skip frames whose outputs are all present")
    g.add_argument("--finalize", action="store_true", help="write the index files from what shards wrote")
    g.add_argument("--scheduler", metavar="ADDRESS", help="convert on a Dask cluster (tcp://host:8786)")
    g.add_argument("--partition", default="city", help="Dask partitions: 'city' or a number of frames")
    _add_writer_options(p)


def _pairs(values: Optional[List[str]], what: str) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for item in values or ():
        if ":" not in item:
            raise UsageError(f"{what} takes OLD:NEW, got {item!r}")
        old, new = item.split(":", 1)
        out[old] = new or None
    return out


def operations_from_args(args) -> List[Dict[str, Any]]:
    """The filter/transform flags as recorded operations (shared by convert and projects)."""
    ops: List[Dict[str, Any]] = []
    filt = {k: getattr(args, a) for k, a in (("split", "split"), ("cities", "cities"), ("ids", "ids"),
                                             ("labels", "with_labels")) if getattr(args, a, None)}
    if filt:
        ops.append({"op": "filter", **filt})
    if getattr(args, "remap", None):
        ops.append({"op": "remap_labels", "mapping": _pairs(args.remap, "--remap"), "default": args.remap_default})
    if getattr(args, "train_ids", False):
        ops.append({"op": "train_ids"})
    if getattr(args, "rename_split", None):
        names = _pairs(args.rename_split, "--rename-split")
        if any(v is None for v in names.values()):
            raise UsageError("--rename-split needs a new name: OLD:NEW")
        ops.append({"op": "rename_splits", "names": names})
    return ops


def _dataset(args, *, with_ops: bool = True):
    """The dataset a command works on: a project's, or SRC's, with the operation flags applied."""
    from .dataset import open as open_dataset
    from .project import Project, apply_operations

    if getattr(args, "project", None):
        if args.src:
            raise UsageError("give SRC or -p DIR, not both")
        ds = Project.load(args.project).dataset()
    else:
        if not args.src:
            raise UsageError("no dataset given: SRC or -p DIR")
        src = args.src[0] if len(args.src) == 1 else args.src
        ds = open_dataset(src, format=args.input_format, storage_options=args.storage_options,
                          split=getattr(args, "split", None), cities=getattr(args, "cities", None))
    return apply_operations(ds, operations_from_args(args)) if with_ops else ds


def _progress(args, ds, label: str):
    from .progress import Progress

    enabled = not getattr(args, "quiet", False) and sys.stderr.isatty()
    total = ds.count() if enabled else None
    return Progress(total, label=label, enabled=enabled)


def _writer_options(args) -> dict:
    opts = {}
    for key in ("save_media", "image_ext", "save_dataset_meta", "label_map"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    return opts


# -- commands ------------------------------------------------------------------------------------
def cmd_info(args) -> int:
    ds = _dataset(args)
    kinds_by_split: Dict[str, Dict[str, int]] = {}
    out: Dict[str, Any] = {"roots": ds.roots, "format": ds.format,
                           "labels": {"source": ds.labels.source, "count": len(ds.labels),
                                      "names": [f"{l.id}:{l.name}" for l in ds.labels]},
                           "splits": {}, "frames": 0}
    for split in ds.splits():
        cities: Dict[str, int] = {}
        kinds = kinds_by_split.setdefault(split, {})
        for frame in ds.frames(split):
            key = frame.city if frame.city is not None else "(no city folder)"
            cities[key] = cities.get(key, 0) + 1
            for kind in frame.files or (["in memory"] if frame._arrays else []):
                kinds[kind] = kinds.get(kind, 0) + 1
        n = sum(cities.values())
        out["splits"][split] = {"frames": n, "cities": cities, "files": kinds}
        out["frames"] += n
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"roots:   {', '.join(ds.roots) or '-'}")
    print(f"format:  {ds.format}")
    print(f"labels:  {len(ds.labels)} from {ds.labels.source}")
    print("          " + ", ".join(out["labels"]["names"]))
    print(f"frames:  {out['frames']}")
    for split, info in out["splits"].items():
        files = ", ".join(f"{k} {v}" for k, v in sorted(info["files"].items()))
        print(f"  {split}: {info['frames']} frames in {len(info['cities'])} cities; files: {files or 'none'}")
        for city, n in info["cities"].items():
            print(f"    {city}: {n}")
    return 0


def cmd_stats(args) -> int:
    from .stats import compute_stats, format_stats

    ds = _dataset(args)
    bar = _progress(args, ds, "stats")
    stats = compute_stats(ds, progress=bar)
    bar.close()
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0


def cmd_validate(args) -> int:
    from .validate import summarize, validate

    from .progress import Progress

    src = args.src[0] if len(args.src) == 1 else args.src
    problems = []
    enabled = not args.quiet and sys.stderr.isatty()
    total = None
    if enabled:  # a total for the time left: one listing pass, nothing decoded
        try:
            from .dataset import open as open_dataset

            total = open_dataset(src, format=args.input_format, split=args.split, cities=args.cities,
                                 storage_options=args.storage_options, on_error=lambda exc: None).count()
        except (CityscapesIOError, OSError):
            total = None  # validate reports it
    bar = Progress(total, label="validate", enabled=enabled)
    for problem in validate(src, format=args.input_format, split=args.split, cities=args.cities,
                            storage_options=args.storage_options, progress=bar):
        problems.append(problem)
        if not args.json:
            bar.clear()
            print(problem, flush=True)
    bar.close()
    summary = summarize(problems)
    if args.json:
        print(json.dumps({**summary, "problems": [p.as_dict() for p in problems]}, indent=2, ensure_ascii=False))
    else:
        print(f"{summary['error']} errors, {summary['warning']} warnings")
    return EXIT_ERROR if summary["error"] or (args.strict and summary["warning"]) else 0


def _export(args, ds, dst) -> int:
    from .convert import write_dataset

    if not args.format:
        raise UsageError("the output format is missing: -f cityscapes|voc|camvid")
    if not dst:
        raise UsageError("the output is missing: DST or -o DST")
    opts = _writer_options(args)
    if args.format != "cityscapes" and opts.pop("save_dataset_meta", None):
        raise UsageError("--save-dataset-meta applies to -f cityscapes only")
    bar = _progress(args, ds, f"{args.format}")
    if args.scheduler:
        from .dask import convert_on_dask

        if args.shard or args.resume or args.finalize or args.workers > 1:
            raise UsageError("--scheduler distributes the work itself: no --shard/--resume/--finalize/--workers")
        partition = int(args.partition) if args.partition.isdigit() else args.partition
        report = convert_on_dask(ds, dst, args.format, scheduler=args.scheduler, partition=partition,
                                 storage_options=args.dst_storage_options, on_error=args.on_error, **opts)
    else:
        report = write_dataset(ds, dst, args.format, storage_options=args.dst_storage_options,
                               on_error=args.on_error, progress=bar, workers=args.workers, shard=args.shard,
                               resume=args.resume, finalize=args.finalize, decode_ahead=args.decode_ahead, **opts)
    bar.close()
    if not args.quiet or report.skipped:
        print(report.summary(), file=sys.stderr if report.skipped else sys.stdout)
    if report.read == 0 and not args.finalize:
        print(f"error: {' '.join(map(str, args.src)) or args.project or 'input'}: no frames to convert "
              "(empty dataset, or filters that match nothing)", file=sys.stderr)
        return EXIT_ERROR
    return 0 if report.ok or args.allow_skipped else EXIT_ERROR


def cmd_convert(args) -> int:
    paths = list(args.src)
    if args.input:
        paths.insert(0, args.input)
    dst = args.output
    if dst is None and len(paths) >= 2:
        dst = paths.pop()
    args.src = paths
    return _export(args, _dataset(args), dst)


def cmd_merge(args) -> int:
    from .dataset import open as open_dataset
    from .ops import merge
    from .project import apply_operations

    if len(args.src) < 2:
        raise UsageError("merge needs two or more SRC")
    formats = args.input_format or ["cityscapes"]
    if len(formats) == 1:
        formats = formats * len(args.src)
    if len(formats) != len(args.src):
        raise UsageError(f"give -if once, or once per SRC ({len(args.src)}), not {len(formats)} times")
    datasets = [open_dataset(s, format=f, storage_options=args.storage_options) for s, f in zip(args.src, formats)]
    ds = apply_operations(merge(*datasets, on_duplicate=args.on_duplicate), operations_from_args(args))
    return _export(args, ds, args.output)


def cmd_show(args) -> int:
    from .show import save

    args.src = [args.src_one]
    ds = _dataset(args, with_ops=False)
    frame = ds.frame(args.frame_id, split=args.split[0] if args.split else None)
    save(frame, args.output, max_width=args.max_width)
    print(f"wrote {args.output}")
    return 0


def cmd_synthetic(args) -> int:
    from .synthetic import generate

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT, got {args.size!r}") from None
    splits = {s: args.frames for s in args.splits.split(",") if s}
    ids = generate(args.dst, splits=splits, cities=tuple(c for c in args.cities.split(",") if c), size=(w, h),
                   seed=args.seed, photos=args.photos, distinct=args.distinct, storage_options=args.storage_options)
    print(f"wrote {len(ids)} frames to {args.dst}")
    return 0


def cmd_project_create(args) -> int:
    from .project import Project

    project = Project.create(args.output or ".", overwrite=args.overwrite)
    print(f"created {project.file}")
    return 0


def cmd_project_import(args) -> int:
    from .project import Project

    project = Project.load(args.project)
    source = project.add_source(args.src if len(args.src) > 1 else args.src[0], format=args.format,
                                name=args.name, storage_options=args.storage_options)
    print(f"imported {source['name']} ({source['format']}) into {project.file}")
    return 0


def cmd_project_ops(args) -> int:
    from .project import Project

    ops = operations_from_args(args)
    if not ops:
        raise UsageError("no operation given (see --help)")
    project = Project.load(args.project)
    project.add_operations(ops)
    print(f"recorded {', '.join(o['op'] for o in ops)} in {project.file}")
    return 0


def cmd_project_info(args) -> int:
    from .project import Project

    project = Project.load(args.project)
    print(f"project: {project.file}")
    for s in project.data["sources"]:
        print(f"  source {s['name']}: {s['url']} ({s['format']})")
    for op in project.data["operations"]:
        print(f"  operation: {json.dumps(op, ensure_ascii=False)}")
    if project.data["sources"]:
        args.src, args.json = [], False
        return cmd_info(args)
    return 0


def cmd_project_export(args) -> int:
    args.src = []
    return _export(args, _dataset(args), args.output)


# -- parser --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityscapes-io", description="Read, convert and inspect Cityscapes datasets.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("info", help="splits, cities, frame counts, label map and its source, file kinds")
    _add_source(p)
    _add_operations(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("stats", help="per split and label: frames, pixels, instances, crowds; image sizes")
    _add_source(p)
    _add_operations(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("validate", help="list every problem of a dataset, with file and reason")
    _add_source(p, project=False)
    p.add_argument("--split", action="append", help="only this split (repeatable)")
    p.add_argument("--city", action="append", dest="cities", help="only this city (repeatable)")
    p.add_argument("--strict", action="store_true", help="exit non-zero on warnings too")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("convert", help="convert a dataset to another format, frame by frame",
                       description="cityscapes-io convert SRC DST -f voc [--save-media]  "
                                   "(or, as in Datumaro: convert -if cityscapes -i SRC -f voc -o DST -- --save-media)")
    _add_source(p)
    p.add_argument("-i", "--input", metavar="SRC", help="input dataset (Datumaro's spelling)")
    _add_output(p)
    _add_operations(p)
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("merge", help="merge several datasets into one output")
    _add_source(p, project=False, per_source_format=True)
    p.add_argument("--on-duplicate", choices=("error", "first", "rename"), default="error",
                   help="what to do with a frame id present in two sources (default error)")
    _add_output(p)
    _add_operations(p)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("show", help="draw a frame's instances over its photo, with a legend")
    p.add_argument("src_one", metavar="SRC")
    p.add_argument("frame_id", metavar="FRAME_ID")
    p.add_argument("-o", "--output", required=True, metavar="PNG")
    p.add_argument("-if", "--input-format", default="cityscapes", choices=FORMAT_NAMES)
    p.add_argument("--split", action="append", help="the frame's split (when the id is in several)")
    p.add_argument("--max-width", type=int, default=None, help="downscale the picture to this width")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON")
    p.set_defaults(func=cmd_show, project=None)

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
    p.add_argument("--storage-options", type=_json_object, metavar="JSON")
    p.set_defaults(func=cmd_synthetic)

    p = sub.add_parser("project", help="projects: sources and operations recorded in project.json")
    psub = p.add_subparsers(dest="project_command", metavar="ACTION")
    psub.required = True
    q = psub.add_parser("create", help="create a project")
    q.add_argument("-o", "--output", metavar="DIR", help="project folder (default: here)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_project_create)
    q = psub.add_parser("import", help="add a source to a project")
    q.add_argument("src", nargs="+", metavar="SRC")
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    q.add_argument("-f", "--format", default="cityscapes", choices=FORMAT_NAMES)
    q.add_argument("-n", "--name", help="source name")
    q.add_argument("--storage-options", type=_json_object, metavar="JSON")
    q.set_defaults(func=cmd_project_import)
    for action, help_ in (("filter", "record a filter"), ("transform", "record a label or split transform")):
        q = psub.add_parser(action, help=help_)
        q.add_argument("-p", "--project", default=".", metavar="DIR")
        _add_operations(q)
        q.set_defaults(func=cmd_project_ops)
    q = psub.add_parser("info", help="the project's sources, operations and resulting dataset")
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    q.set_defaults(func=cmd_project_info, src=[])
    q = psub.add_parser("export", help="export the project's dataset")
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    _add_output(q)
    q.set_defaults(func=cmd_project_export, src=[])
    return parser


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
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatasetNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except CityscapesIOError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, ValueError) as exc:
        where = getattr(exc, "filename", None)
        print(f"error: {where}: {exc}" if where else f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
