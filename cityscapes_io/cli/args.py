"""The arguments several commands share, and how a command reads them.

The groups (:func:`add_source`, :func:`add_operations`, :func:`add_output` with its scale and
writer options) are declared here once; so are the readings every command makes of them: the
dataset a command works on (:func:`dataset`), the operation flags as recorded operations, the
writer options (refused when the chosen format's writer does not declare them), and the
progress line. What a format accepts is asked of its writer class (``Writer.OPTIONS``): nothing
here names a format.

Importing this module is cheap (the command line imports it to start): the format registry and
the library are imported by the functions that use them, when a command's parser is built or
the command runs.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from ..errors import DatasetNotFoundError
from .status import EXIT_STATUSES, UsageError

if TYPE_CHECKING:
    from ..progress import Progress

__all__ = ["formats_help", "QUIET_WRITING", "command", "json_object", "add_source", "add_operations",
           "add_writer_options", "add_output", "items", "operations_from_args", "format_name", "input_format",
           "open_source", "dataset", "terminal", "progress", "writer_option_table", "writer_options", "as_given",
           "add_scheduler", "executor_from_args"]


# -- argument groups ----------------------------------------------------------------------------
def json_object(text: str) -> dict:
    import json  # on use: --version and --help start without it

    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"must be JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def formats_help() -> str:
    """The registered format names, for help texts (asked when a parser is built, so that a
    format registered after import is listed)."""
    from ..formats import format_names

    return ", ".join(format_names())
#: What -q silences besides warnings, on the commands that write.
QUIET_WRITING = "no progress bar; print only problems"


def command(sub, name: str, *, quiet: str = "", **kwargs) -> argparse.ArgumentParser:
    """A command's parser, with what every command has: --debug, and -q (``quiet``: what else
    it silences besides warnings)."""
    p = sub.add_parser(name, epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the traceback instead of one line")
    p.add_argument("-q", "--quiet", action="store_true",
                   help=(f"{quiet}; " if quiet else "") + "no warnings (their count at the end instead)")
    return p


def report_command(sub, name: str, run, *, help: str, quiet: str) -> argparse.ArgumentParser:
    """The parser of a command that reports on a dataset (``info``, ``stats``): its sources, the
    filters and transforms, and ``--json``."""
    p = command(sub, name, help=help, quiet=quiet)
    add_source(p)
    add_operations(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)
    return p


def add_source(p: argparse.ArgumentParser, *, project: bool = True, many: bool = True,
                per_source_format: bool = False) -> None:
    from ..names import ANNOTATION_DIRS

    p.add_argument("src", nargs="*" if project else ("+" if many else 1), metavar="SRC",
                   help="dataset root(s): path, .zip or fsspec URL (several roots form one dataset)")
    if project:
        p.add_argument("-p", "--project", metavar="DIR", help="use a project instead of SRC")
    if per_source_format:
        p.add_argument("-if", "--input-format", action="append", metavar="FORMAT",
                       help=f"input format ({formats_help()}): once for all sources, or once per SRC in order "
                            "(default: detected)")
    else:
        p.add_argument("-if", "--input-format", metavar="FORMAT",
                       help=f"input format: {formats_help()} (default: detected from the folders, and said on a "
                            "terminal)")
    p.add_argument("--storage-options", type=json_object, metavar="JSON",
                   help='fsspec options of the input, e.g. \'{"anon": true}\'')
    p.add_argument("--annotations", choices=ANNOTATION_DIRS, default=None,
                   help="cityscapes: the fine (gtFine) or coarse (gtCoarse, with train_extra) annotations "
                        "(default: gtFine when present)")
    p.add_argument("--image", metavar="KEY", default=None,
                   help="cityscapes: the photo the frames have (their image, --save-media, the torch image target): "
                        "a photo key such as rightImg8bit, leftImg16bit, leftImg8bit_foggy@beta_0.02 "
                        "(default: leftImg8bit; `info` lists the keys present)")


def add_operations(p: argparse.ArgumentParser) -> None:
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


def writer_option_table() -> Dict[str, Any]:
    """Every writer option of the registered formats, by name (an :class:`~cityscapes_io.formats.base.Option`
    each, first declaration wins), in registry order: the base writer's first."""
    from ..formats import format_names, resolve_format, writer_class

    table: Dict[str, Any] = {}
    for name in dict.fromkeys(resolve_format(n) for n in format_names()):
        for option in writer_class(name).OPTIONS:
            table.setdefault(option.name, option)
    return table


def add_writer_options(p: argparse.ArgumentParser) -> None:
    """The writer options, as the registered writers declare them (``Writer.OPTIONS``)."""
    g = p.add_argument_group("writer options (also accepted after '--', as in Datumaro)")
    for option in writer_option_table().values():
        option.add_to(g)


def add_output(p: argparse.ArgumentParser, *, default_output: str = "") -> None:
    p.add_argument("-o", "--output", metavar="DST",
                   help="output root (a path ending in .zip writes an archive)" + default_output)
    p.add_argument("-f", "--format", metavar="FORMAT", help=f"output format: {formats_help()}")
    p.add_argument("--overwrite", action="store_true", default=None,
                   help="replace a dataset already at DST (otherwise writing into it is refused)")
    p.add_argument("--dst-storage-options", type=json_object, metavar="JSON", help="fsspec options of the output")
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
    add_scheduler(g, "convert")
    g.add_argument("--partition", default="city",
                   help="with --scheduler: the frames of a task, 'city' (default) or a number of frames (-f wds: "
                        "of tar shards)")
    add_writer_options(p)


def add_scheduler(p, what: str) -> None:
    """``--scheduler ADDRESS``: run the command's work on a Dask cluster (read by
    :func:`executor_from_args`). ``p``: a parser or an argument group."""
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help=f"{what} on a cluster: a Dask scheduler's address (tcp://host:8786; extra: dask), or a Ray "
                        "cluster's (ray://host:10001, or ray for a local Ray / the one RAY_ADDRESS names; extra: "
                        "ray); the workers read the inputs and write the outputs themselves (give places they "
                        "reach: URLs, or folders they share), the results are the same as in one process")


@contextlib.contextmanager
def executor_from_args(args, workers: Optional[int] = None) -> Iterator[Any]:
    """The executor of ``--scheduler ADDRESS`` (a Dask client's ``get_executor()``, the client
    closed on exit; or, for ``ray`` and ``ray://…``, a :class:`~cityscapes_io.ray.RayExecutor`,
    shut down on exit when it started Ray), or None without it. ``workers``: the command's ``-j`` value, refused with
    ``--scheduler`` when above 1 (the cluster has its own workers)."""
    address = getattr(args, "scheduler", None)
    if not address:
        yield None
        return
    if workers is not None and workers > 1:
        raise UsageError("--scheduler runs the work on the cluster's workers: no -j")
    from ..errors import StorageError

    if address == "ray" or address.startswith("ray://"):
        try:
            from ..ray import RayExecutor  # on use: the ray extra is optional

            ray_executor = RayExecutor(None if address == "ray" else address)
        except ImportError:
            raise UsageError("--scheduler ray needs Ray: pip install 'cityscapes-io[ray]'") from None
        except ConnectionError as exc:
            raise StorageError(address, f"cannot reach the Ray cluster: {exc}") from exc
        with ray_executor:
            yield ray_executor
        return
    from ..dask import executor  # on use: the dask extra is optional

    with contextlib.ExitStack() as stack:
        try:
            found = stack.enter_context(executor(address))
        except ImportError:
            raise UsageError("--scheduler needs Dask's distributed: pip install 'cityscapes-io[dask]'") from None
        except (OSError, TimeoutError) as exc:
            raise StorageError(address, f"cannot reach the Dask scheduler: {exc}") from exc
        yield found


def items(values: Optional[List[str]]) -> List[str]:
    """Values of a repeatable flag, each possibly a comma-separated list."""
    return [item.strip() for value in values or () for item in value.split(",") if item.strip()]


def _pairs(values: Optional[List[str]], what: str) -> Dict[str, Optional[str]]:
    out: Dict[str, Optional[str]] = {}
    for item in items(values):
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
            filt[key] = items(getattr(args, attr))
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
def format_name(name: str) -> str:
    """A format name from the command line, as registered (aliases accepted)."""
    from ..formats import resolve_format

    try:
        return resolve_format(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def input_format(args, src, given: Optional[str]) -> str:
    """The input format: the one given, else detected from the folders (and said on stderr)."""
    from ..formats import detect

    if given:
        return format_name(given)
    fmt, evidence = detect(src, getattr(args, "storage_options", None))
    # On a terminal only, like the progress line: a script's stderr keeps its error line first.
    if terminal(args):
        print(f"input format: {fmt} (detected: {evidence}; -if to choose)", file=sys.stderr)
    return fmt


def open_source(src, fmt: str, storage_options, **kwargs):
    """Open SRC; a folder inside a Cityscapes tree gets a hint naming the tree's root."""
    from ..formats import reader_class, root_hint

    if kwargs.get("annotations") is None:
        kwargs.pop("annotations", None)
    elif not reader_class(fmt).ANNOTATION_TREES:
        raise UsageError(f"--annotations applies to cityscapes datasets, not {fmt}")
    if kwargs.get("image") is None:
        kwargs.pop("image", None)
    elif not reader_class(fmt).PHOTO_KEYS:
        raise UsageError(f"--image applies to cityscapes datasets, not {fmt}")
    else:
        from ..parts import parse_image_key

        try:
            parse_image_key(kwargs["image"])
        except ValueError as exc:
            raise UsageError(f"--image: {exc}") from None
    from ..dataset import open as open_dataset  # on use: the command line starts without it

    try:
        return open_dataset(src, format=fmt, storage_options=storage_options, **kwargs)
    except DatasetNotFoundError as exc:
        hint = root_hint(src) if isinstance(src, str) else None
        if hint is None:
            raise
        raise DatasetNotFoundError(exc.path, f"{exc.reason}; {hint}") from exc


def dataset(args, *, with_ops: bool = True):
    """The dataset a command works on: a project's, or SRC's, with the operation flags applied."""
    from ..project import Project, apply_operations

    if getattr(args, "project", None):
        if args.src:
            raise UsageError("give SRC or -p DIR, not both")
        ds = Project.load(args.project).dataset()
    else:
        if not args.src:
            raise UsageError("no dataset given: SRC or -p DIR")
        src = args.src[0] if len(args.src) == 1 else args.src
        fmt = input_format(args, src, args.input_format)
        # Cities are selected by the filter operation, which names the cities found when one is not.
        ds = open_source(src, fmt, args.storage_options, split=items(getattr(args, "split", None)) or None,
                         annotations=getattr(args, "annotations", None), image=getattr(args, "image", None))
    return apply_operations(ds, operations_from_args(args)) if with_ops else ds


def terminal(args) -> bool:
    """Whether a progress line is shown: on a terminal, without -q."""
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def progress(args, label: str, ds=None, total: Optional[int] = None) -> Progress:
    """The progress line (on a terminal) of ``total`` frames, or of the frames of ``ds``
    (listed only when the line is shown); kept on ``args`` so that an interruption can say how
    many frames were done, and a warning can clear it first."""
    from ..progress import Progress

    enabled = terminal(args)
    if ds is not None and enabled:
        total = ds.count()
    args.progress_bar = Progress(total, label=label, enabled=enabled)
    return args.progress_bar


#: The writer options of the command line (:func:`add_writer_options`), in the order they are
#: checked.
def writer_options(args, fmt: str) -> dict:
    """The writer options given, as keywords of format ``fmt``'s writer. An option that writer
    does not declare (its class's ``OPTIONS``) is refused, naming the formats whose writers do."""
    from ..formats import format_names, resolve_format, writer_class

    accepted = writer_class(fmt).option_names()
    opts = {}
    for key, option in writer_option_table().items():
        value = getattr(args, key, None)
        if value is None:
            continue
        if key not in accepted:
            names = dict.fromkeys(resolve_format(name) for name in format_names())  # registered, in order
            takers = " and ".join(f"-f {name}" for name in names if key in writer_class(name).option_names())
            raise UsageError(f"--{key.replace('_', '-')} applies to {takers} only")
        opts[key] = option.parse(value)
    return opts


def as_given(text: str, args) -> str:
    """``text`` with the local roots of the command (``args.given``: its inputs and outputs, as
    typed, with their storage options) spelled as they were given, not as absolute paths."""
    for given, options in getattr(args, "given", ()):
        if not isinstance(given, str) or "://" in given or "::" in given or options or os.path.isabs(given):
            continue
        for full in dict.fromkeys((os.path.abspath(given), os.path.realpath(given))):
            text = text.replace(full.rstrip(os.sep) + os.sep, given.rstrip("/" + os.sep) + "/")
    return text


