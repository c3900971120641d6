"""The ``cityscapes-io`` command line.

Datumaro's spellings work where they make sense (``convert -if cityscapes -i SRC -f voc -o DST
-- --save-media``, ``project import -p DIR -f cityscapes SRC``). Only :func:`main` catches
errors: each error class maps to an exit status, and messages read ``error: <path>: <reason>``.

The contract of a command: a row of :data:`COMMANDS` (its name, its module in this package, the
one line ``--help`` lists it with), and in its module ``register(subparsers, help)``, which adds
its parser (with that help) and sets ``func=run``, and ``run(args) -> int``, which does the work
and returns the exit status, importing what it works with when it runs. The command line starts
fast: :func:`main` imports the module of the command given, and builds that command's parser
only (the others are listed by name and help); ``--version`` and ``--help`` import no command
module, and nothing of numpy, Pillow or fsspec. A command raises; it does not print its errors:
:func:`main` maps each error class to an exit status here, once (the statuses are in
:mod:`.status`), and prints ``error: <where>: <reason>``. :mod:`.args` holds the argument groups
several commands share and how they are read. Which writer options a format takes is asked of
its writer class (``Writer.OPTIONS``), not written here.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import warnings
from typing import AbstractSet, List, NamedTuple, Optional, TextIO

from .. import __version__
from ..errors import CityscapesIOError, RefusedError, StorageError
from .args import as_given
from .status import (EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_STATUSES, EXIT_STORAGE,
                     EXIT_USAGE, UsageError)

__all__ = ["main", "build_parser", "EXIT_ERROR", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_NOT_FOUND", "EXIT_STORAGE",
           "EXIT_INTERRUPTED"]


class Command(NamedTuple):
    """A command of the command line: what ``--help`` lists without importing its module."""

    name: str
    module: str  # in this package
    help: str


#: The commands, in the order ``--help`` lists them.
COMMANDS = (
    Command("info", "info", "splits, cities, frame counts, label map and its source, file kinds"),
    Command("stats", "stats", "per split and label: frames, pixels, instances, crowds; image sizes"),
    Command("validate", "validate", "list every problem of a dataset, with file and reason"),
    Command("convert", "convert", "convert a dataset to another format, frame by frame"),
    Command("prepare", "prepare", "write the train-id files (_labelTrainIds.png, _instanceTrainIds.png) as the "
                                  "official preparation scripts do"),
    Command("merge", "merge", "merge several datasets into one output"),
    Command("show", "show", "draw a frame's instances over its photo, with a legend"),
    Command("synthetic", "synthetic", "write a synthetic Cityscapes dataset"),
    Command("eval", "eval", "evaluate predictions against the ground truth with the official rules"),
    Command("export-predictions", "export_predictions",
            "write predictions held as a dataset into the official submission layout (label ids)"),
    Command("project", "project", "projects: sources and operations recorded in project.json"),
    Command("index", "index", "write a Parquet index of the frames and their instances (paths, parts, size, RLE)"),
)


class _Version(argparse.Action):
    """``--version``: the version and the active PNG decoder, on one line of stdout. The decoder
    is asked only when this runs (argparse's own version action would ask when the parser is
    built, and wrap the line at the terminal's width)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="show program's version number and exit"):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..decoder import describe

        print(f"{parser.prog} {__version__} (PNG decoder: {describe()})", flush=True)
        parser.exit()


def build_parser(commands: Optional[AbstractSet[str]] = None) -> argparse.ArgumentParser:
    """The parser of the command line. The commands named in ``commands`` (None: all) get their
    full parser, which imports their module (and the format registry, for the help texts that
    list formats); the others are listed with their help line only, and cannot be parsed."""
    parser = argparse.ArgumentParser(prog="cityscapes-io", description="Read, convert and inspect Cityscapes datasets.",
                                     epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action=_Version)
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        if commands is None or command.name in commands:
            importlib.import_module(f"{__name__}.{command.module}").register(sub, command.help)
        else:
            sub.add_parser(command.name, help=command.help)
    return parser


def _command_in(argv: List[str]) -> AbstractSet[str]:
    """The command ``argv`` runs: its first argument that is not an option (no option before
    the command takes a value). Empty for ``--version``, ``--help`` or no command."""
    return {next((arg for arg in argv if not arg.startswith("-")), "")} - {""}


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
    from ..storage import is_storage_error  # on an error only: it imports fsspec

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
    first, *rest = as_given(_API_SPELLING.sub(r"\1", text), args).split("\n")
    if rest and all(line.startswith("  ") for line in rest):
        return "\n".join([first, *rest])
    return " ".join([first, *rest])


def _message(exc: BaseException, args) -> str:
    """``error: <where>: <reason>``, one line (or a list: one item a line)."""
    from ..storage import is_storage_error

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
    dst = str(getattr(args, "where", None) or "")
    if getattr(args, "resumable", False) and dst and not dst.lower().endswith(".zip") and not getattr(args, "scheduler", None):
        again = f"add -o {dst} --resume" if getattr(args, "default_output", False) else "add --resume"
        text += f"; the frames written to {dst} are kept: run the same command again and {again} to continue"
    print(text, file=sys.stderr)
    return EXIT_INTERRUPTED


#: Set to ``default`` to keep glibc's allocator settings in the ``cityscapes-io`` program.
ENV_MALLOC = "CITYSCAPES_IO_MALLOC"


def keep_freed_memory() -> bool:
    """Ask glibc's allocator to keep freed memory for reuse, in the ``cityscapes-io`` program only
    (never for a process that imports the library: its allocator is its owner's policy).

    By default glibc hands a block larger than its mmap threshold back to the system when it is
    freed, and trims the top of its heap, so a frame's arrays (a few MB each, allocated and freed
    for every frame) are faulted in afresh, zeroed page by page, for every frame: measured here,
    that is a quarter to a third of the time of iterating, converting or evaluating 2048×1024
    frames on the fast path. The program raises the mmap threshold to 256 MiB and the trim
    threshold to 1 GiB (what ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` do),
    unless the user set either variable or ``CITYSCAPES_IO_MALLOC=default``. Memory stays
    bounded: freed blocks are reused by the next frame, not lost. Returns whether it was done."""
    if (os.environ.get(ENV_MALLOC) == "default" or "MALLOC_MMAP_THRESHOLD_" in os.environ
            or "MALLOC_TRIM_THRESHOLD_" in os.environ or not sys.platform.startswith("linux")):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError, ValueError):  # not glibc
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # (glibc's malloc.h)
    # (older glibc caps the mmap threshold at 32 MiB on 64-bit systems: then that)
    mmap_set = bool(mallopt(m_mmap_threshold, 256 << 20)) or bool(mallopt(m_mmap_threshold, 32 << 20))
    trim_set = bool(mallopt(m_trim_threshold, 1 << 30))
    return mmap_set and trim_set


def console() -> None:
    """The ``cityscapes-io`` program: :func:`main` after :func:`keep_freed_memory`."""
    keep_freed_memory()
    sys.exit(main())


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: List[str] = []
    if "--" in argv:  # Datumaro passes writer options after '--'
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1:]
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    if extra:
        from .args import add_writer_options

        extra_parser = argparse.ArgumentParser(prog=f"{parser.prog} {args.command} --", add_help=False)
        add_writer_options(extra_parser)
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
