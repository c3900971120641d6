"""``cityscapes-io stats``: per split and label, frames, pixels, instances, crowds; image sizes."""
from __future__ import annotations

import json

from .args import dataset, progress, report_command


def register(subparsers, help: str) -> None:
    report_command(subparsers, "stats", run, help=help, quiet="no progress bar")


def run(args) -> int:
    from ..stats import compute_stats, format_stats

    ds = dataset(args)
    bar = progress(args, "stats", ds)
    stats = compute_stats(ds, progress=bar)
    bar.close()
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0
