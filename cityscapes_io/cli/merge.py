"""``cityscapes-io merge``: several datasets into one output (exported as ``convert`` does)."""
from __future__ import annotations

from typing import List, Optional

from .args import QUIET_WRITING, add_output, add_operations, add_source, command, format_name, input_format, \
    open_source, operations_from_args
from .convert import export, output_format
from .status import UsageError


def register(subparsers, help: str) -> None:
    p = command(subparsers, "merge", help=help, quiet=QUIET_WRITING)
    add_source(p, project=False, per_source_format=True)
    p.add_argument("--on-duplicate", choices=("error", "first", "rename"), default="error",
                   help="what to do with a frame id present in two sources (default error, checked before "
                        "anything is written)")
    add_output(p)
    add_operations(p)
    p.set_defaults(func=run)


def _merge_formats(args) -> List[Optional[str]]:
    formats: List[Optional[str]] = list(args.input_format or [None])
    if len(formats) == 1:
        formats = formats * len(args.src)
    if len(formats) != len(args.src):
        raise UsageError(f"give -if once, or once per SRC ({len(args.src)}), not {len(formats)} times")
    return formats


def run(args) -> int:
    from ..ops import merge
    from ..project import apply_operations, check_unique_ids

    if len(args.src) < 2:
        raise UsageError("merge needs two or more SRC")
    formats = [None if f is None else format_name(f) for f in _merge_formats(args)]
    output_format(args)
    datasets = [open_source(s, input_format(args, s, f), args.storage_options, image=args.image) for s, f in zip(args.src, formats)]
    merged = merge(*datasets, on_duplicate=args.on_duplicate)
    ops = operations_from_args(args)
    if args.on_duplicate == "error" and not args.finalize:
        check_unique_ids(merged, ops)  # listing only: fail before the first frame is written
    return export(args, apply_operations(merged, ops), args.output)
