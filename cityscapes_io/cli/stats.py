"""``cityscapes-io stats``: per split and label, frames, pixels, instances, crowds; image sizes."""
from __future__ import annotations

import json

from .args import add_operations, add_source, command, dataset, progress


def register(subparsers) -> None:
    p = command(subparsers, "stats", help="per split and label: frames, pixels, instances, crowds; image sizes",
                quiet="no progress bar")
    add_source(p)
    add_operations(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..stats import compute_stats, format_stats

    ds = dataset(args)
    bar = progress(args, "stats", ds)
    stats = compute_stats(ds, progress=bar)
    bar.close()
    print(json.dumps(stats, indent=2, ensure_ascii=False) if args.json else format_stats(stats))
    return 0
