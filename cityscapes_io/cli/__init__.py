"""The ``cityscapes-io`` command line.

Datumaro's spellings work where they make sense (``convert -if cityscapes -i SRC -f voc -o DST
-- --save-media``, ``project import -p DIR -f cityscapes SRC``). Only :func:`main` catches
errors: each error class maps to an exit status, and messages read ``error: <path>: <reason>``.

The contract of a command: a module of this package (listed in :data:`COMMANDS`) with
``register(subparsers)``, which adds its parser and sets ``func=run``, and ``run(args) -> int``,
which does the work and returns the exit status, importing what it works with when it runs (so
that building the parser imports no command's machinery). A command raises; it does not print
its errors: :func:`main` maps each error class to an exit status here, once (the statuses are
in :mod:`.status`), and prints ``error: <where>: <reason>``. :mod:`.args` holds the argument
groups several commands share and how they are read. Which writer options a format takes is
asked of its writer class (``Writer.OPTIONS``), not written here.
"""
from __future__ import annotations

import argparse
import re
import sys
import warnings
from typing import List, Optional, TextIO

from .. import __version__
from ..errors import CityscapesIOError, RefusedError, StorageError
from ..storage import is_storage_error
from . import (convert, eval as eval_, export_predictions, info, merge, prepare, project, show, stats, synthetic,
               validate)
from .args import add_writer_options, as_given
from .status import (EXIT_ERROR, EXIT_INTERRUPTED, EXIT_NOT_FOUND, EXIT_REFUSED, EXIT_STATUSES, EXIT_STORAGE,
                     EXIT_USAGE, UsageError)

__all__ = ["main", "build_parser", "EXIT_ERROR", "EXIT_REFUSED", "EXIT_USAGE", "EXIT_NOT_FOUND", "EXIT_STORAGE",
           "EXIT_INTERRUPTED"]

#: The commands, in the order ``--help`` lists them.
COMMANDS = (info, stats, validate, convert, prepare, merge, show, synthetic, eval_, export_predictions, project)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cityscapes-io", description="Read, convert and inspect Cityscapes datasets.",
                                     epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="on an error, show the traceback instead of one line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
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
    first, *rest = as_given(_API_SPELLING.sub(r"\1", text), args).split("\n")
    if rest and all(line.startswith("  ") for line in rest):
        return "\n".join([first, *rest])
    return " ".join([first, *rest])


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
    dst = str(getattr(args, "where", None) or "")
    if getattr(args, "resumable", False) and dst and not dst.lower().endswith(".zip") and not getattr(args, "scheduler", None):
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
