"""The ``cityscapes-io`` command line.

Datumaro's spellings work where they make sense (``convert -if cityscapes -i SRC -f voc -o DST
-- --save-media``, ``project import -p DIR -f cityscapes SRC``). Only :func:`main` catches
errors: each error class maps to an exit status, and messages read ``error: <path>: <reason>``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import warnings
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import __version__
from .dataset import open as open_dataset
from .eval_common import FRAMES_PER_PROCESS, processes_for
from .errors import CityscapesIOError, DatasetNotFoundError, RefusedError, StorageError
from .formats import detect, format_names, resolve_format, root_hint
from .names import ANNOTATION_DIRS, parse_frame_id
from .prepare import TRAIN_ID_KINDS, kinds_from, prepare
from .ops import merge
from .progress import Progress
from .project import apply_operations, check_unique_ids, Project, require_cities, source_format
from .show import save
from .stats import compute_stats, format_stats
from .storage import Root, is_storage_error
from .synthetic import generate
from .validate import summarize, validate

__all__ = ["main", "build_parser"]

EXIT_ERROR = 1
EXIT_REFUSED = EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_STORAGE = 4
EXIT_INTERRUPTED = 130

EXIT_STATUSES = f"""exit status:
  0    done
  {EXIT_ERROR}    an error in the data (a corrupt file, a bad label map, predictions with problems), frames
       failed (skipped), validate problems
  {EXIT_REFUSED}    refused, nothing done: a wrong command line, a bad option value, a destination that holds
       data (--overwrite) or is a source, a label-map file that does not exist
  {EXIT_NOT_FOUND}    a dataset, split, city, frame or file that does not exist
  {EXIT_STORAGE}    the storage failed (disk, network, credentials, a missing fsspec backend)
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
errors print 'error: <where>: <reason>' (a list: its count, then one item a line); --debug shows the
traceback instead. Warnings print one line each, 'warning: <where>: <reason>'; -q counts them instead"""


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


_FORMATS_HELP = ", ".join(format_names())


def _add_source(p: argparse.ArgumentParser, *, project: bool = True, many: bool = True,
                per_source_format: bool = False) -> None:
    p.add_argument("src", nargs="*" if project else ("+" if many else 1), metavar="SRC",
                   help="dataset root(s): path, .zip or fsspec URL (several roots form one dataset)")
    if project:
        p.add_argument("-p", "--project", metavar="DIR", help="use a project instead of SRC")
    if per_source_format:
        p.add_argument("-if", "--input-format", action="append", metavar="FORMAT",
                       help=f"input format ({_FORMATS_HELP}): once for all sources, or once per SRC in order "
                            "(default: detected)")
    else:
        p.add_argument("-if", "--input-format", metavar="FORMAT",
                       help=f"input format: {_FORMATS_HELP} (default: detected from the folders, and said on a terminal)")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON",
                   help='fsspec options of the input, e.g. \'{"anon": true}\'')
    p.add_argument("--annotations", choices=ANNOTATION_DIRS, default=None,
                   help="cityscapes: the fine (gtFine) or coarse (gtCoarse, with train_extra) annotations "
                        "(default: gtFine when present)")


def _add_operations(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filter and transform (lazy, applied in this order; flags repeatable, and "
                             "--split, --city, --remap, --rename-split also take comma-separated lists)")
    g.add_argument("--split", action="append", help="only this split (an unknown split is an error)")
    g.add_argument("--city", action="append", dest="cities", metavar="CITY",
                   help="only this city (a city that no split has is an error)")
    g.add_argument("--id", action="append", dest="ids", metavar="ID",
                   help="only this frame id or glob, e.g. 'aachen/*_000019' (repeatable)")
    g.add_argument("--with-label", action="append", dest="with_labels", metavar="LABEL",
                   help="only frames containing this label (repeatable: any of them)")
    g.add_argument("--remap", action="append", metavar="SRC:DST[,SRC:DST...]",
                   help="rename or merge labels (car:vehicle,truck:vehicle); 'bicycle:' drops one to background")
    g.add_argument("--remap-default", choices=("keep", "delete"), default="keep",
                   help="what --remap does with labels it does not name (default keep)")
    g.add_argument("--train-ids", action="store_true", help="map labels to the 19 train ids (255 = ignore)")
    g.add_argument("--rename-split", action="append", metavar="OLD:NEW[,OLD:NEW...]", help="rename splits")


def _add_writer_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("writer options (also accepted after '--', as in Datumaro)")
    g.add_argument("--save-media", action="store_true", default=None, help="also write the photos")
    g.add_argument("--image-ext", metavar="EXT",
                   help="extension of the photos --save-media writes (default: keep, png if unknown); "
                        "without --save-media no photo is written and a warning says so")
    g.add_argument("--save-dataset-meta", action="store_true", default=None,
                   help="write dataset_meta.json instead of label_colors.txt (cityscapes) or labelmap.txt (voc)")
    g.add_argument("--save-train-ids", action="store_true", default=None,
                   help="also write _labelTrainIds.png and _instanceTrainIds.png (cityscapes)")
    g.add_argument("--classes", metavar="things|all|NAME[,NAME...]",
                   help="coco_instances: the classes annotated (default things: the 8 evaluated classes with "
                        "instances; all: stuff too)")
    g.add_argument("--segmentation", choices=("rle", "polygon"), default=None,
                   help="coco_instances: compressed RLE (default) or polygons with holes")
    g.add_argument("--category-ids", choices=("label", "contiguous"), default=None,
                   help="coco_instances: category ids = label ids (default) or 1..N")
    g.add_argument("--no-instance-ids", dest="keep_instance_ids", action="store_false", default=None,
                   help="coco_instances: leave out cityscapes_instance_id (exactly mmdetection's keys; instances "
                        "read back are renumbered)")
    g.add_argument("--layout", choices=("mmdetection", "datumaro"), default=None,
                   help="coco_instances: where the JSON and photos go: mmdetection (default; "
                        "annotations/instancesonly_filtered_gtFine_<split>.json, photos in leftImg8bit/<split>/) or "
                        "datumaro (annotations/instances_<split>.json, photos in images/<split>/, which Datumaro's "
                        "coco_instances importer reads)")
    g.add_argument("--label-map", "--label_map", metavar="MAP",
                   help="output labels: source (default), cityscapes, or a label_colors.txt / dataset_meta.json")
    g.add_argument("--frames-per-shard", type=int, metavar="N",
                   help="wds: frames per tar shard (default 100)")


def _add_output(p: argparse.ArgumentParser, *, default_output: str = "") -> None:
    p.add_argument("-o", "--output", metavar="DST",
                   help="output root (a path ending in .zip writes an archive)" + default_output)
    p.add_argument("-f", "--format", metavar="FORMAT", help=f"output format: {_FORMATS_HELP}")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace a dataset already at DST (otherwise writing into it is refused)")
    p.add_argument("--dst-storage-options", type=_json_object, metavar="JSON", help="fsspec options of the output")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="skip frames that cannot be read or written and list them (exit status 1)")
    p.add_argument("--allow-skipped", action="store_true",
                   help="exit 0 even when frames were skipped (they are still listed)")
    g = p.add_argument_group("scale")
    g.add_argument("-j", "--workers", type=int, default=1, help="convert in N processes (same output)")
    g.add_argument("--no-decode-ahead", dest="decode_ahead", action="store_false",
                   help="with one process, do not decode the next frame in a second thread (stay on one core)")
    g.add_argument("--shard", metavar="I/N", help="convert only frames k with k %% N == I (0 <= I < N; -f wds: "
                                                 "whole tar shards k); no index files: run --finalize after all "
                                                 "shards")
    g.add_argument("--resume", action="store_true",
                   help="skip frames whose outputs are all present (after an interruption or a failure)")
    g.add_argument("--finalize", action="store_true", help="write the index files from what shards wrote")
    g.add_argument("--scheduler", metavar="ADDRESS", help="convert on a Dask cluster (tcp://host:8786)")
    g.add_argument("--partition", default="city", help="Dask partitions: 'city' or a number of frames")
    _add_writer_options(p)


def _items(values: Optional[List[str]]) -> List[str]:
    """Values of a repeatable flag, each possibly a comma-separated list."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def _pairs(values: Optional[List[str]], what: str) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for item in _items(values):
        if ":" not in item:
            raise UsageError(f"{what} takes OLD:NEW (a list: OLD:NEW,OLD:NEW), got {item!r}")
        old, new = (part.strip() for part in item.split(":", 1))
        if not old:
            raise UsageError(f"{what}: the name before ':' is missing in {item!r}")
        if old in out and out[old] != (new or None):
            raise UsageError(f"{what} names {old!r} twice, with different targets")
        out[old] = new or None
    return out


def operations_from_args(args) -> List[Dict[str, Any]]:
    """The filter/transform flags as recorded operations (shared by convert and projects)."""
    ops: List[Dict[str, Any]] = []
    filt: Dict[str, Any] = {}
    for key, attr in (("split", "split"), ("cities", "cities")):
        if getattr(args, attr, None):
            filt[key] = _items(getattr(args, attr))
    for key, attr in (("ids", "ids"), ("labels", "with_labels")):
        if getattr(args, attr, None):
            filt[key] = getattr(args, attr)
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


# -- formats and sources ---------------------------------------------------------------------------
def _format(name: str) -> str:
    """A format name from the command line, as registered (aliases accepted)."""
    try:
        return resolve_format(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _source_format(args, src, given: Optional[str]) -> str:
    """The input format: the one given, else detected from the folders (and said on stderr)."""
    if given:
        return _format(given)
    fmt, evidence = detect(src, getattr(args, "storage_options", None))
    # On a terminal only, like the progress line: a script's stderr keeps its error line first.
    if _terminal(args):
        print(f"input format: {fmt} (detected: {evidence}; -if to choose)", file=sys.stderr)
    return fmt


def _open(src, fmt: str, storage_options, **kwargs):
    """Open SRC; a folder inside a Cityscapes tree gets a hint naming the tree's root."""

    if kwargs.get("annotations") is None:
        kwargs.pop("annotations", None)
    elif fmt != "cityscapes":
        raise UsageError(f"--annotations applies to cityscapes datasets, not {fmt}")
    try:
        return open_dataset(src, format=fmt, storage_options=storage_options, **kwargs)
    except DatasetNotFoundError as exc:
        hint = root_hint(src) if isinstance(src, str) else None
        if hint is None:
            raise
        raise DatasetNotFoundError(exc.path, f"{exc.reason}; {hint}") from exc


def _dataset(args, *, with_ops: bool = True):
    """The dataset a command works on: a project's, or SRC's, with the operation flags applied."""

    if getattr(args, "project", None):
        if args.src:
            raise UsageError("give SRC or -p DIR, not both")
        ds = Project.load(args.project).dataset()
    else:
        if not args.src:
            raise UsageError("no dataset given: SRC or -p DIR")
        src = args.src[0] if len(args.src) == 1 else args.src
        fmt = _source_format(args, src, args.input_format)
        # Cities are selected by the filter operation, which names the cities found when one is not.
        ds = _open(src, fmt, args.storage_options, split=_items(getattr(args, "split", None)) or None,
                   annotations=getattr(args, "annotations", None))
    return apply_operations(ds, operations_from_args(args)) if with_ops else ds


def _terminal(args) -> bool:
    """Whether a progress line is shown: on a terminal, without -q."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _progress(args, label: str, ds=None, total: Optional[int] = None) -> Progress:
    """The progress line (on a terminal) of ``total`` frames, or of the frames of ``ds``
    (listed only when the line is shown); kept on ``args`` so that an interruption can say how
    many frames were done, and a warning can clear it first."""
    enabled = _terminal(args)
    if ds is not None and enabled:
        total = ds.count()
    args.progress_bar = Progress(total, label=label, enabled=enabled)
    return args.progress_bar


def _writer_options(args) -> dict:
    opts = {}
    for key in ("save_media", "image_ext", "save_dataset_meta", "save_train_ids", "label_map", "segmentation",
                "category_ids", "keep_instance_ids", "layout", "frames_per_shard"):
        value = getattr(args, key, None)
        if value is not None:
            opts[key] = value
    classes = getattr(args, "classes", None)
    if classes is not None:
        opts["classes"] = classes if classes in ("things", "all") else [c for c in classes.split(",") if c]
    return opts


def _default_output(fmt: str) -> str:
    """Datumaro's default export folder: ``export-<format>`` here, or ``export-<format>.N`` with
    the next free number when that exists."""
    base = f"export-{fmt}"
    taken = [m for m in (re.fullmatch(re.escape(base) + r"(?:\.(\d+))?", n) for n in os.listdir(".")) if m]
    if not taken:
        return base
    return f"{base}.{max(int(m.group(1) or 0) for m in taken) + 1}"


# -- commands ------------------------------------------------------------------------------------
def cmd_info(args) -> int:
    ds = _dataset(args)
    kinds_by_split: Dict[str, Dict[str, int]] = {}
    out: Dict[str, Any] = {"roots": ds.roots, "format": source_format(ds),
                           "labels": {"source": ds.labels.source, "count": len(ds.labels),
                                      "names": [f"{l.id}:{l.name}" for l in ds.labels]},
                           "splits": {}, "frames": 0}
    base = ds.source_reader
    if getattr(base, "trees", None) is not None:
        out["annotations"] = {"trees": list(base.trees), "read": base.annotations}
    if getattr(base, "panoptic", None):
        out["panoptic"] = [p.as_dict() for p in base.panoptic]
    for split in ds.splits():
        cities: Dict[str, int] = {}
        kinds = kinds_by_split.setdefault(split, {})
        for frame in ds.frames(split):
            key = frame.city if frame.city is not None else "(no city folder)"
            cities[key] = cities.get(key, 0) + 1
            in_memory = ["in memory"] if frame.has_image or frame.has_annotations else []
            for kind in frame.files or in_memory:
                kinds[kind] = kinds.get(kind, 0) + 1
        n = sum(cities.values())
        out["splits"][split] = {"frames": n, "cities": cities, "files": kinds}
        out["frames"] += n
    if args.json:
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(f"roots:   {', '.join(ds.roots) or '-'}")
    print(f"format:  {out['format']}")
    if "annotations" in out:
        trees = ", ".join(t + (" (read)" if t == out["annotations"]["read"] else "")
                          for t in out["annotations"]["trees"])
        print(f"annotations: {trees or 'none'}" + (" (--annotations to choose)" if len(out["annotations"]["trees"]) > 1
                                                  else ""))
    print(f"labels:  {len(ds.labels)} from {ds.labels.source}")
    print("          " + ", ".join(out["labels"]["names"]))
    print(f"frames:  {out['frames']}")
    for split, info in out["splits"].items():
        files = ", ".join(f"{k} {v}" for k, v in sorted(info["files"].items()))
        print(f"  {split}: {info['frames']} frames in {len(info['cities'])} cities; files: {files or 'none'}")
        for city, n in info["cities"].items():
            print(f"    {city}: {n}")
    if out.get("panoptic"):
        print("panoptic ground truth (not splits):")
        for p in out["panoptic"]:
            where = p["json"] or f"{p['folder']} (no JSON)"
            print(f"  {p['split']}{' (train ids)' if p['train_ids'] else ''}: {where}")
    return 0


def cmd_stats(args) -> int:

    ds = _dataset(args)
    bar = _progress(args, "stats", ds)
    stats = compute_stats(ds, progress=bar)
    bar.close()
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0


def cmd_validate(args) -> int:

    src = args.src[0] if len(args.src) == 1 else args.src
    fmt = _source_format(args, src, args.input_format)
    splits, cities = _items(args.split) or None, _items(args.cities) or None
    problems = []
    enabled = _terminal(args)
    total = None
    if enabled or cities:  # one listing pass, nothing decoded: the cities asked for, a total for the time left
        try:
            ds = _open(src, fmt, args.storage_options, split=splits, on_error=lambda exc: None,
                       annotations=args.annotations)
        except (CityscapesIOError, OSError):
            ds = None  # validate reports it
        if ds is not None and cities:
            require_cities(ds, cities, splits)
        if ds is not None and enabled:
            total = ds.filter(cities=cities).count() if cities else ds.count()
    bar = args.progress_bar = Progress(total, label="validate", enabled=enabled)
    for problem in validate(src, format=fmt, split=splits, cities=cities,
                            storage_options=args.storage_options, progress=bar, annotations=args.annotations):
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


def _finalize_summary(report, dst, fmt: str) -> str:
    """The summary of --finalize, which indexes what the shards wrote (it writes no frame)."""
    # Until Report.indexed lands (the lead's convert/pipeline change), finalize counts its frames
    # in ``written``; afterwards ``written`` is 0 there and ``indexed`` holds them.
    indexed = report.indexed
    lines = [f"{indexed} frames indexed, {len(report.skipped)} missing -> {dst} ({fmt}, "
             f"{report.seconds:.1f} s)"]
    lines += [f"  missing {split}/{fid}: {reason}" for split, fid, reason in report.skipped]
    return "\n".join(lines)


def _output_format(args) -> str:
    """-f, checked before any input is opened."""
    if not args.format:
        raise UsageError(f"the output format is missing: -f FORMAT ({_FORMATS_HELP})")
    return _format(args.format)


def _export(args, ds, dst, *, default_output: bool = False, protect: Sequence[Root] = ()) -> int:
    fmt = args.format = _output_format(args)
    if not dst and default_output:
        if args.resume or args.finalize or args.shard:
            raise UsageError("--resume, --shard and --finalize continue one output: give it with -o DST")
        dst = os.path.abspath(_default_output(fmt))
        args.default_output = True
    if not dst:
        raise UsageError("the output is missing: DST or -o DST")
    opts = _writer_options(args)
    if fmt not in ("cityscapes", "voc") and opts.pop("save_dataset_meta", None):
        raise UsageError("--save-dataset-meta applies to -f cityscapes and -f voc only")
    if fmt != "cityscapes" and opts.pop("save_train_ids", None):
        raise UsageError("--save-train-ids applies to -f cityscapes only")
    for key in ("classes", "segmentation", "category_ids", "keep_instance_ids", "layout"):
        if fmt != "coco_instances" and opts.pop(key, None) is not None:
            raise UsageError(f"--{key.replace('_', '-')} applies to -f coco_instances only")
    if fmt != "wds" and opts.pop("frames_per_shard", None) is not None:
        raise UsageError("--frames-per-shard applies to -f wds only")
    if opts.get("image_ext") and not opts.get("save_media") and not args.finalize and fmt != "wds":
        warnings.warn(f"--image-ext {opts['image_ext']} has no effect without --save-media (no photos are written)")
    if args.overwrite:
        opts["overwrite"] = True
    bar = _progress(args, fmt, ds)
    args.where = str(dst)
    if args.scheduler:
        from .dask import convert_on_dask  # on use: the dask extra is optional

        if args.shard or args.resume or args.finalize or args.workers > 1:
            raise UsageError("--scheduler distributes the work itself: no --shard/--resume/--finalize/--workers")
        partition = int(args.partition) if args.partition.isdigit() else args.partition
        report = convert_on_dask(ds, dst, fmt, scheduler=args.scheduler, partition=partition,
                                 storage_options=args.dst_storage_options, on_error=args.on_error, protect=protect,
                                 **opts)
    else:
        report = ds.export(dst, fmt, storage_options=args.dst_storage_options, on_error=args.on_error,
                           progress=bar, workers=args.workers, shard=args.shard, resume=args.resume,
                           finalize=args.finalize, decode_ahead=args.decode_ahead, protect=protect, **opts)
    bar.close()
    if not args.quiet or report.skipped:
        text = _finalize_summary(report, dst, fmt) if args.finalize else report.summary()
        print(text, file=sys.stderr if report.skipped else sys.stdout)
    if default_output and not args.quiet:
        print(f"exported to {dst}")
    if report.read == 0 and not args.finalize:
        print(f"error: {' '.join(map(str, args.src)) or args.project or 'input'}: no frames to convert "
              "(empty dataset, or filters that match nothing)", file=sys.stderr)
        return EXIT_ERROR
    return 0 if report.ok or args.allow_skipped else EXIT_ERROR


def cmd_prepare(args) -> int:
    src = args.src[0] if len(args.src) == 1 else args.src
    fmt = _source_format(args, src, args.input_format)
    if fmt != "cityscapes":
        raise UsageError(f"prepare works on Cityscapes datasets, not {fmt}")
    kinds = _items(args.kinds) or list(TRAIN_ID_KINDS)
    allowed = kinds_from(args.source)
    bad = [k for k in kinds if k not in allowed]
    if bad:
        raise UsageError(f"--kinds {','.join(bad)}: not available --from {args.source} "
                         f"(choose from {', '.join(allowed)})")
    if args.save_media and not args.output:
        raise UsageError("--save-media copies the photos into -o DST: give -o DST (without it the files are "
                         "written next to the source, beside its photos)")
    enabled = _terminal(args)
    total = None
    if enabled:  # one listing pass, of every tree prepared, for the time left
        first = _open(src, fmt, args.storage_options, annotations=args.annotations)
        total = 0
        trees = [args.annotations] if args.annotations else first.reader.trees or [None]
        if set(kinds) == {"panoptic"}:
            trees = ["gtFine"]
        for tree in trees:
            ds = _open(src, fmt, args.storage_options, annotations=tree)
            splits = [s for s in _items(args.split) if s in ds.splits()] or None
            if args.split and not splits:
                continue
            cities = [c for c in _items(args.cities) if any(c in ds.cities(s) for s in splits or ds.splits())]
            if args.cities and not cities:
                continue
            total += ds.filter(split=splits, cities=cities or None).count()
    bar = args.progress_bar = Progress(total, label="prepare", enabled=enabled)
    args.where = args.output or str(src)
    report = prepare(src, kinds, source=args.source, dst=args.output, overwrite=bool(args.overwrite),
                     workers=args.workers, on_error=args.on_error, storage_options=args.storage_options,
                     dst_storage_options=args.dst_storage_options, annotations=args.annotations,
                     split=_items(args.split) or None, cities=_items(args.cities) or None, progress=bar,
                     decode_ahead=args.decode_ahead, train_ids=args.train_ids, save_media=args.save_media)
    bar.close()
    if not args.quiet or report.skipped:
        print(report.summary(), file=sys.stderr if report.skipped else sys.stdout)
    if report.read == 0:
        print(f"error: {src}: no annotated frames to prepare", file=sys.stderr)
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
    _output_format(args)
    return _export(args, _dataset(args), dst)


def _merge_formats(args) -> List[Optional[str]]:
    formats: List[Optional[str]] = list(args.input_format or [None])
    if len(formats) == 1:
        formats = formats * len(args.src)
    if len(formats) != len(args.src):
        raise UsageError(f"give -if once, or once per SRC ({len(args.src)}), not {len(formats)} times")
    return formats


def cmd_merge(args) -> int:

    if len(args.src) < 2:
        raise UsageError("merge needs two or more SRC")
    formats = [None if f is None else _format(f) for f in _merge_formats(args)]
    _output_format(args)
    datasets = [_open(s, _source_format(args, s, f), args.storage_options) for s, f in zip(args.src, formats)]
    merged = merge(*datasets, on_duplicate=args.on_duplicate)
    ops = operations_from_args(args)
    if args.on_duplicate == "error" and not args.finalize:
        check_unique_ids(merged, ops)  # listing only: fail before the first frame is written
    return _export(args, apply_operations(merged, ops), args.output)


def cmd_show(args) -> int:

    args.src = [args.src_one]
    ds = _dataset(args, with_ops=False)
    split = args.split[0] if args.split else None
    try:
        frame = ds.frame(args.frame_id, split=split)
    except DatasetNotFoundError as exc:
        city = parse_frame_id(args.frame_id).city
        if "/" in args.frame_id or city is None:
            raise
        candidate = f"{city}/{args.frame_id}"
        try:
            ds.frame(candidate, split=split)
        except DatasetNotFoundError:
            raise exc from None
        raise DatasetNotFoundError(args.frame_id, f"no such frame; frame ids include the city folder: "
                                                  f"{candidate}") from None
    save(frame, args.output, max_width=args.max_width)
    print(f"wrote {args.output}")
    return 0


def cmd_synthetic(args) -> int:

    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT, got {args.size!r}") from None
    splits = _split_counts(args.splits, args.frames, "--splits")
    coarse = _split_counts(args.coarse, args.frames, "--coarse") if args.coarse else None
    # Every gtFine frame, and the coarse frames of splits without fine ones (train_extra).
    total = sum(splits.values()) + sum(n for s, n in (coarse or {}).items() if s not in splits)
    bar = _progress(args, "synthetic", total=total)
    ids = generate(args.dst, splits=splits, cities=tuple(c for c in args.cities.split(",") if c), size=(w, h),
                   seed=args.seed, photos=args.photos, distinct=args.distinct, storage_options=args.storage_options,
                   coarse=coarse, overwrite=args.overwrite, progress=bar)
    bar.close()
    print(f"wrote {len(ids)} frames to {args.dst}")
    return 0


def _split_counts(text: str, default: int, flag: str) -> Dict[str, int]:
    """``train,val`` (``default`` frames each) or ``train=4,val=2``."""
    out: Dict[str, int] = {}
    for item in (t for t in text.split(",") if t):
        name, sep, n = item.partition("=")
        if sep and not n.isdigit():
            raise UsageError(f"{flag}: {item!r} is not SPLIT or SPLIT=N")
        out[name] = int(n) if sep else default
    return out


def cmd_project_create(args) -> int:

    project = Project.create(args.output or ".", overwrite=args.overwrite)
    print(f"created {project.file}")
    return 0


def cmd_project_import(args) -> int:

    project = Project.load(args.project)
    src = args.src if len(args.src) > 1 else args.src[0]
    fmt = _source_format(args, src, args.format)
    source = project.add_source(src, format=fmt, name=args.name, storage_options=args.storage_options)
    print(f"imported {source['name']} ({source['format']}) into {project.file}")
    return 0


def cmd_project_ops(args) -> int:

    ops = operations_from_args(args)
    if not ops:
        raise UsageError("no operation given (see --help)")
    project = Project.load(args.project)
    project.add_operations(ops)
    print(f"recorded {', '.join(o['op'] for o in ops)} in {project.file}")
    return 0


def cmd_project_info(args) -> int:

    project = Project.load(args.project)
    print(f"project: {project.file}")
    for s in project.data["sources"]:
        urls = s["url"] if isinstance(s["url"], list) else [s["url"]]
        print(f"  source {s['name']}: {', '.join(urls)} ({s['format']})")
    for op in project.data["operations"]:
        print(f"  operation: {json.dumps(op, ensure_ascii=False)}")
    if project.data["sources"]:
        args.src, args.json = [], False
        return cmd_info(args)
    return 0


def cmd_project_export(args) -> int:

    args.src = []
    _output_format(args)
    project = Project.load(args.project)
    if not args.finalize:
        project.check_unique_ids()  # listing only: fail before the first frame is written
    # The project folder is an input too: an output there, holding it, or replacing a folder in it is refused.
    return _export(args, project.dataset(), args.output, default_output=True, protect=[project.folder])


def cmd_eval(args) -> int:
    from .evaluation import check_predictions, evaluate

    options = {"pred_train_ids": True} if args.pred_train_ids else {}
    if args.pred_train_ids and args.task != "semantic":
        raise UsageError("--pred-train-ids applies to --task semantic")
    if args.jobs < 1:
        raise UsageError(f"-j takes a number of processes, 1 or more, got {args.jobs}")
    args.given = [(args.gt, args.storage_options), (args.pred, args.pred_storage_options)]
    workers = 1
    total = None
    if args.jobs > 1 or _terminal(args):  # one listing pass: the processes that pay, the time left
        total = open_dataset(args.gt, split=args.split, storage_options=args.storage_options).count()
        workers = processes_for(args.jobs, total)
    bar = _progress(args, "check" if args.check_only else args.task, total=total)
    common = dict(split=args.split, storage_options=args.storage_options,
                  pred_storage_options=args.pred_storage_options, workers=workers, progress=bar, **options)
    if args.check_only:
        problems = check_predictions(args.gt, args.pred, args.task, **common)
        bar.close()
        if problems:  # the count first, then one problem a line
            print(f"{len(problems)} problem(s) with the predictions:", file=sys.stderr)
        for problem in problems:
            print(_as_given(problem, args))
        if not problems:
            print("no problems: the predictions can be evaluated", file=sys.stderr)
        return EXIT_ERROR if problems else 0
    result = evaluate(args.gt, args.pred, args.task, **common)
    bar.close()
    print(result)
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as f:
            json.dump(result.to_dict(), f, indent=2)
    return 0


def cmd_export_predictions(args) -> int:
    from .evaluation import export_predictions

    ds = _open(args.src, _source_format(args, args.src, args.input_format), args.storage_options)
    if args.split is not None:
        ds = ds.filter(split=args.split)
    args.given = [(args.src, args.storage_options), (args.output, args.dst_storage_options)]
    bar = _progress(args, f"{args.task} predictions", ds)
    report = export_predictions(ds, args.output, args.task, train_ids=args.train_ids,
                                out_storage_options=args.dst_storage_options, overwrite=bool(args.overwrite),
                                progress=bar)
    bar.close()
    skipped = f"; {report['skipped_regions']} region(s) that are not instances left out" \
        if report["skipped_regions"] else ""
    print(f"{report['frames']} frame(s) written to {args.output}{skipped}", file=sys.stderr)
    return 0


# -- parser --------------------------------------------------------------------------------------
_QUIET_WRITING = "no progress bar; print only problems"


def _command(sub, name: str, *, quiet: str = "", **kwargs) -> argparse.ArgumentParser:
    """A command's parser, with what every command has: --debug, and -q (``quiet``: what else
    it silences besides warnings)."""
    p = sub.add_parser(name, epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the traceback instead of one line")
    p.add_argument("-q", "--quiet", action="store_true",
                   help=(f"{quiet}; " if quiet else "") + "no warnings (their count at the end instead)")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityscapes-io", description="Read, convert and inspect Cityscapes datasets.",
                                     epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = _command(sub, "info", help="splits, cities, frame counts, label map and its source, file kinds",
                 quiet="do not say which input format was detected")
    _add_source(p)
    _add_operations(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_info)

    p = _command(sub, "stats", help="per split and label: frames, pixels, instances, crowds; image sizes",
                 quiet="no progress bar")
    _add_source(p)
    _add_operations(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stats)

    p = _command(sub, "validate", help="list every problem of a dataset, with file and reason",
                 quiet="no progress line")
    _add_source(p, project=False)
    p.add_argument("--split", action="append", help="only this split (repeatable, or a comma-separated list)")
    p.add_argument("--city", action="append", dest="cities", metavar="CITY",
                   help="only this city (repeatable, or a comma-separated list; an unknown city is an error)")
    p.add_argument("--strict", action="store_true", help="exit non-zero on warnings too")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_validate)

    p = _command(sub, "convert", help="convert a dataset to another format, frame by frame", quiet=_QUIET_WRITING,
                 description="cityscapes-io convert SRC DST -f voc [--save-media]  "
                             "(or, as in Datumaro: convert -if cityscapes -i SRC -f voc -o DST -- --save-media)")
    _add_source(p)
    p.add_argument("-i", "--input", metavar="SRC", help="input dataset (Datumaro's spelling)")
    _add_output(p)
    _add_operations(p)
    p.set_defaults(func=cmd_convert)

    p = _command(sub, "prepare", help="write the train-id files (_labelTrainIds.png, _instanceTrainIds.png) "
                                      "as the official preparation scripts do", quiet=_QUIET_WRITING,
                 description="cityscapes-io prepare SRC [--kinds labelTrainIds,instanceTrainIds] "
                             "[--from png|polygons] [-o DST] [--overwrite] [-j N]: next to the source files "
                             "(or in a mirrored tree under DST); existing files are kept unless --overwrite")
    _add_source(p, project=False)
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
    p.add_argument("--dst-storage-options", type=_json_object, metavar="JSON", help="fsspec options of DST")
    p.add_argument("--split", action="append", help="only this split (repeatable, or a comma-separated list)")
    p.add_argument("--city", action="append", dest="cities", metavar="CITY", help="only this city")
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="skip frames that cannot be prepared and list them (exit status 1)")
    p.add_argument("--allow-skipped", action="store_true", help="exit 0 even when frames were skipped")
    p.add_argument("-j", "--workers", type=int, default=1, help="prepare in N processes")
    p.add_argument("--no-decode-ahead", dest="decode_ahead", action="store_false",
                   help="with one process, do not decode the next frame in a second thread")
    p.set_defaults(func=cmd_prepare)

    p = _command(sub, "merge", help="merge several datasets into one output", quiet=_QUIET_WRITING)
    _add_source(p, project=False, per_source_format=True)
    p.add_argument("--on-duplicate", choices=("error", "first", "rename"), default="error",
                   help="what to do with a frame id present in two sources (default error, checked before "
                        "anything is written)")
    _add_output(p)
    _add_operations(p)
    p.set_defaults(func=cmd_merge)

    p = _command(sub, "show", help="draw a frame's instances over its photo, with a legend")
    p.add_argument("src_one", metavar="SRC")
    p.add_argument("frame_id", metavar="FRAME_ID", help="the frame's id, with its city folder: aachen/aachen_000000_000019")
    p.add_argument("-o", "--output", required=True, metavar="PNG")
    p.add_argument("-if", "--input-format", metavar="FORMAT",
                   help=f"input format: {_FORMATS_HELP} (default: detected from the folders)")
    p.add_argument("--split", action="append", help="the frame's split (when the id is in several)")
    p.add_argument("--max-width", type=int, default=None, help="downscale the picture to this width")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON")
    p.set_defaults(func=cmd_show, project=None)

    p = _command(sub, "synthetic", help="write a synthetic Cityscapes dataset", quiet="no progress bar")
    p.add_argument("dst", metavar="DST", help="destination path or fsspec URL")
    p.add_argument("--frames", type=int, default=3, help="frames per split (default 3)")
    p.add_argument("--splits", default="train",
                   help="comma-separated split names, each SPLIT or SPLIT=N frames (default: train)")
    p.add_argument("--coarse", metavar="SPLIT[=N],...",
                   help="also a gtCoarse tree for these splits (train_extra: photos too), e.g. train=3,train_extra=5")
    p.add_argument("--cities", default="aachen,bad-honnef", help="comma-separated city names")
    p.add_argument("--size", default="2048x1024", help="WIDTHxHEIGHT (default 2048x1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-photos", dest="photos", action="store_false", help="ground truth only")
    p.add_argument("--distinct", type=int, default=None,
                   help="generate only this many distinct frames per split and copy them for the rest")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what DST holds (a destination that is not empty is refused otherwise)")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON")
    p.set_defaults(func=cmd_synthetic)

    p = _command(sub, "eval", help="evaluate predictions against the ground truth with the official rules",
                 description="cityscapes-io eval GT PRED --task semantic|instance|panoptic [--split val] [-j N] "
                             "[--json OUT] [--check-only]", quiet="no progress bar")
    p.add_argument("gt", metavar="GT", help="Cityscapes root with the ground truth (path, .zip or fsspec URL)")
    p.add_argument("pred", metavar="PRED",
                   help="the predictions in the official layout: semantic, a folder of PNGs (label ids) named "
                        "<city>_<seq>_<frame>*.png; instance, a folder of <city>_<seq>_<frame>*.txt files "
                        "(lines: mask.png labelId confidence); panoptic, the COCO panoptic JSON (PNGs in the "
                        "folder of the same stem beside it)")
    p.add_argument("--task", default="semantic", choices=("semantic", "instance", "panoptic"),
                   help="semantic (default), instance or panoptic")
    p.add_argument("--split", default="val", help="the split evaluated (default val)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="processes (default 1, which already works on two frames at once in two threads): "
                        "more pay only above 2, with as many cores and %d frames or more each; otherwise "
                        "one process runs (the results are the same)" % FRAMES_PER_PROCESS)
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the official results JSON here")
    p.add_argument("--check-only", action="store_true",
                   help="list every problem of the predictions (one per line, naming the file) without "
                        "evaluating; exit 1 when there is any")
    p.add_argument("--pred-train-ids", action="store_true", help="semantic: the PNGs hold train ids, not label ids")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON", help="for GT")
    p.add_argument("--pred-storage-options", type=_json_object, metavar="JSON", help="for PRED")
    p.set_defaults(func=cmd_eval)

    p = _command(sub, "export-predictions",
                 help="write predictions held as a dataset into the official submission layout (label ids)",
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
    p.add_argument("-if", "--input-format", metavar="FORMAT", help=f"input format: {_FORMATS_HELP} (default: detected)")
    p.add_argument("--overwrite", action="store_true", help="replace what OUT holds")
    p.add_argument("--storage-options", type=_json_object, metavar="JSON", help="fsspec options of SRC")
    p.add_argument("--dst-storage-options", type=_json_object, metavar="JSON", help="fsspec options of OUT")
    p.set_defaults(func=cmd_export_predictions)

    p = _command(sub, "project", help="projects: sources and operations recorded in project.json")
    psub = p.add_subparsers(dest="project_command", metavar="ACTION")
    psub.required = True
    q = _command(psub, "create", help="create a project")
    q.add_argument("-o", "--output", metavar="DIR", help="project folder (default: here)")
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_project_create)
    q = _command(psub, "import", help="add a source to a project (local paths are recorded relative to it)",
                 quiet="do not say which input format was detected")
    q.add_argument("src", nargs="+", metavar="SRC")
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    q.add_argument("-f", "--format", metavar="FORMAT",
                   help=f"the source's format: {_FORMATS_HELP} (default: detected from the folders)")
    q.add_argument("-n", "--name", help="source name")
    q.add_argument("--storage-options", type=_json_object, metavar="JSON")
    q.set_defaults(func=cmd_project_import)
    for action, help_ in (("filter", "record a filter"), ("transform", "record a label or split transform")):
        q = _command(psub, action, help=help_)
        q.add_argument("-p", "--project", default=".", metavar="DIR")
        _add_operations(q)
        q.set_defaults(func=cmd_project_ops)
    q = _command(psub, "info", help="the project's sources, operations and resulting dataset")
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    q.set_defaults(func=cmd_project_info, src=[])
    q = _command(psub, "export", help="export the project's dataset", quiet=_QUIET_WRITING)
    q.add_argument("-p", "--project", default=".", metavar="DIR")
    _add_output(q, default_output=" (default, as in Datumaro: export-<format> here, "
                                  "export-<format>.1 ... when that exists)")
    q.set_defaults(func=cmd_project_export, src=[])
    return parser


# -- errors --------------------------------------------------------------------------------------
def _exit_status(exc: BaseException) -> Optional[int]:
    """The exit status of an error, None for an exception that is a bug (shown as a traceback).
    A plain ValueError is the library refusing an argument's value (errors in the data are
    :class:`CityscapesIOError`)."""
    if isinstance(exc, (UsageError, RefusedError)):
        return EXIT_REFUSED
    if isinstance(exc, FileNotFoundError):  # DatasetNotFoundError included
        return EXIT_NOT_FOUND
    if isinstance(exc, StorageError):
        return EXIT_STORAGE
    if isinstance(exc, CityscapesIOError):
        return EXIT_ERROR
    if is_storage_error(exc):
        return EXIT_STORAGE
    if isinstance(exc, ValueError):
        return EXIT_REFUSED
    return None


def _where(args) -> Optional[str]:
    """What a command was working on when an error names no path: the output while exporting,
    else the input."""
    where = getattr(args, "where", None)
    if where:
        return where
    src = getattr(args, "src", None) or ([args.src_one] if getattr(args, "src_one", None) else [])
    return " ".join(map(str, src)) or getattr(args, "project", None)


#: The API's spelling of an option beside the command line's in library messages:
#: ``pass overwrite=True (--overwrite)``; the command line shows its own only.
_API_SPELLING = re.compile(r"\b[A-Za-z_]\w*=\S+ \((--[\w-]+)\)")


def _lines(text: str, args) -> str:
    """A message as the command line prints it: its own spelling of options, paths as the user
    gave them, and one line, or, for a list (a count, then items indented on lines of their
    own), one item a line."""
    first, *rest = _as_given(_API_SPELLING.sub(r"\1", text), args).split("\n")
    if rest and all(line.startswith("  ") for line in rest):
        return "\n".join([first, *rest])
    return " ".join([first, *rest])


def _as_given(text: str, args) -> str:
    """``text`` with the local roots of the command (``args.given``: its inputs and outputs, as
    typed, with their storage options) spelled as they were given, not as absolute paths."""
    for given, options in getattr(args, "given", ()):
        if not isinstance(given, str) or "://" in given or "::" in given or options or os.path.isabs(given):
            continue
        for full in dict.fromkeys((os.path.abspath(given), os.path.realpath(given))):
            text = text.replace(full.rstrip(os.sep) + os.sep, given.rstrip("/" + os.sep) + "/")
    return text


def _message(exc: BaseException, args) -> str:
    """``error: <where>: <reason>``, one line (or a list: one item a line)."""
    if isinstance(exc, UsageError):
        text = f"error: {exc}"
    elif isinstance(exc, CityscapesIOError):
        where = exc.path or _where(args)
        text = f"error: {where}: {exc.reason}" if where else f"error: {exc.reason}"
    elif isinstance(exc, ValueError) and not is_storage_error(exc):
        text = f"error: {exc}"
    else:
        where = getattr(exc, "filename", None)
        strerror = getattr(exc, "strerror", None)
        reason = (strerror if where and strerror else str(exc)) or type(exc).__name__
        where = where or _where(args)
        text = f"error: {where}: {reason}" if where else f"error: {reason}"
    return _lines(text, args)


class _Warnings:
    """Python warnings while a command runs, one line each on stderr, ``warning: <message>``
    (the library's read ``<where>: <reason>``), the progress line cleared first; with -q they
    are counted instead, and :meth:`hidden` says how many."""

    def __init__(self, args):
        self.args = args
        self.count = 0

    def show(self, message, category, filename, lineno, file: Optional[TextIO] = None, line=None) -> None:
        if getattr(self.args, "quiet", False):
            self.count += 1
            return
        bar = getattr(self.args, "progress_bar", None)
        if bar is not None:
            bar.clear()
        print("warning: " + " ".join(_lines(str(message), self.args).split("\n")), file=sys.stderr, flush=True)

    def hidden(self) -> Optional[str]:
        """The line that says how many warnings -q left out (None when none)."""
        if not self.count:
            return None
        return f"{self.count} warning{'s' if self.count > 1 else ''} not shown (-q)"


def _interrupted(args) -> int:
    """After Ctrl-C: how many frames were done and, for a conversion, how to continue."""
    bar = getattr(args, "progress_bar", None)
    if bar is not None:
        bar.clear()
    text = "interrupted" if bar is None else f"interrupted after {bar.done} frames"
    exporting = getattr(args, "command", None) in ("convert", "merge") or \
        getattr(args, "project_command", None) == "export"
    dst = str(getattr(args, "where", None) or "")
    if exporting and dst and not dst.lower().endswith(".zip") and not getattr(args, "scheduler", None):
        again = f"add -o {dst} --resume" if getattr(args, "default_output", False) else "add --resume"
        text += f"; the frames written to {dst} are kept: run the same command again and {again} to continue"
    print(text, file=sys.stderr)
    return EXIT_INTERRUPTED


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
    said = _Warnings(args)
    with warnings.catch_warnings():  # the caller's filters kept; how a warning is shown restored after
        warnings.showwarning = said.show
        try:
            return _run(args)
        finally:
            hidden = said.hidden()
            if hidden:
                print(hidden, file=sys.stderr)


def _run(args) -> int:
    """The command, its errors mapped to exit statuses and printed."""
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _interrupted(args)
    except Exception as exc:  # noqa: BLE001 - mapped to an exit status; anything else is re-raised
        status = _exit_status(exc)
        if status is None or args.debug:
            raise
        bar = getattr(args, "progress_bar", None)
        if bar is not None:
            bar.clear()
        print(_message(exc, args), file=sys.stderr)
        return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
